//! `enable_cache: auto`: use the cache for network paths, not for local ones.
//!
//! UNC (`\\server\share\…`) and `//server/share/…` paths are network paths everywhere. On Linux
//! the filesystem type of the path (or its nearest existing parent) decides, via `statfs`: SMB/CIFS,
//! NFS, AFS, 9p, Ceph, FUSE (sshfs and friends). On Windows the drive type decides
//! (`GetDriveTypeW`: remote drives, and mapped drives, which report as remote).

use std::path::Path;

use crate::config::EnableCache;

/// Whether to use the cache, and the rule that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Use the local cache.
    pub cached: bool,
    /// The rule that decided, for `status`.
    pub rule: String,
}

/// Decides from the config and the path.
///
/// ```
/// use sharecache::cache::detect::decide;
/// use sharecache::EnableCache;
/// assert!(decide(EnableCache::Auto, "//server/share/app.db".as_ref()).cached);
/// assert!(!decide(EnableCache::Off, "//server/share/app.db".as_ref()).cached);
/// ```
pub fn decide(setting: EnableCache, path: &Path) -> Decision {
    match setting {
        EnableCache::On => Decision {
            cached: true,
            rule: "enable_cache: true".into(),
        },
        EnableCache::Off => Decision {
            cached: false,
            rule: "enable_cache: false".into(),
        },
        EnableCache::Auto => match network_kind(path) {
            Some(kind) => Decision {
                cached: true,
                rule: format!("enable_cache: auto, and the path is on a network share ({kind})"),
            },
            None => Decision {
                cached: false,
                rule: "enable_cache: auto, and the path is local".into(),
            },
        },
    }
}

/// What kind of network location `path` is on, if any.
pub fn network_kind(path: &Path) -> Option<String> {
    let s = path.to_string_lossy();
    if s.starts_with("\\\\") || s.starts_with("//") {
        return Some("UNC path".into());
    }
    answered_within(path, PROBE_TIMEOUT)
}

/// How long the filesystem may take to say what it is.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// [`platform_kind`] on a helper thread: a hung share blocks `statfs` for as long as it hangs,
/// and opening a cache must not. A path whose filesystem does not answer is on a network share
/// (local disks answer).
fn answered_within(path: &Path, timeout: std::time::Duration) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("sharecache-statfs".into())
        .spawn(move || {
            let _ = tx.send(platform_kind(&owned));
        });
    if spawned.is_err() {
        return platform_kind(path);
    }
    match rx.recv_timeout(timeout) {
        Ok(kind) => kind,
        // The thread stays blocked until the share answers, then ends.
        Err(_) => Some(format!(
            "its filesystem did not answer within {}s, as a hung network share does",
            timeout.as_secs()
        )),
    }
}

#[cfg(target_os = "linux")]
fn platform_kind(path: &Path) -> Option<String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let mut p = Some(path);
    while let Some(dir) = p {
        if dir.as_os_str().is_empty() {
            break;
        }
        let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid C string and out-pointer.
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0 {
            return fs_type_name(st.f_type as i64).map(str::to_string);
        }
        p = dir.parent();
    }
    None
}

/// Network filesystem magic numbers (linux/magic.h and filesystem sources).
#[cfg(target_os = "linux")]
fn fs_type_name(t: i64) -> Option<&'static str> {
    Some(match t as u32 {
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x0000_517B => "smb",
        0x0000_6969 => "nfs",
        0x6B41_4653 => "afs",
        0x5346_414F => "openafs",
        0x0102_1997 => "9p",
        0x00C3_6400 => "ceph",
        0x6573_5546 => "fuse (sshfs or similar)",
        0x0000_564C => "ncp",
        _ => return None,
    })
}

#[cfg(windows)]
fn platform_kind(path: &Path) -> Option<String> {
    use std::os::windows::ffi::OsStrExt;
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetDriveTypeW(root: *const u16) -> u32;
    }
    const DRIVE_REMOTE: u32 = 4;
    let root: Vec<u16> = path
        .components()
        .next()?
        .as_os_str()
        .encode_wide()
        .chain("\\\0".encode_utf16())
        .collect();
    // SAFETY: NUL-terminated wide string.
    (unsafe { GetDriveTypeW(root.as_ptr()) } == DRIVE_REMOTE).then(|| "network drive".to_string())
}

#[cfg(not(any(target_os = "linux", windows)))]
fn platform_kind(_path: &Path) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unc_and_double_slash_paths_are_network_paths() {
        assert!(network_kind(Path::new(r"\\server\share\app.db")).is_some());
        assert!(network_kind(Path::new("//server/share/app.db")).is_some());
    }

    #[test]
    fn a_temp_dir_is_local_and_auto_keeps_it_direct() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("missing/app.db");
        let decision = decide(EnableCache::Auto, &p);
        assert!(!decision.cached, "{decision:?}");
        assert!(decision.rule.contains("local"));
    }
}
