//! `enable_cache: auto`: use the cache for network paths, not for local ones.
//!
//! UNC paths in every spelling (`\\server\share\…`, `\\?\UNC\server\share\…`,
//! `//server/share/…`) are network paths everywhere. On Linux
//! the filesystem type of the path (or its nearest existing parent) decides, via `statfs`: SMB/CIFS,
//! NFS, AFS, 9p, Ceph, FUSE (sshfs and friends). On Windows the drive type decides
//! (`GetDriveTypeW`: remote drives, and mapped drives, which report as remote). The calls are in
//! `platform`.

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
/// use sharecache::store::detect::decide;
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
    // A PostgreSQL remote is a server over the network: `auto` caches it.
    if crate::config::is_postgres_url(&path.to_string_lossy()) {
        return Some("PostgreSQL server".into());
    }
    if crate::platform::unc::parse(&path.to_string_lossy()).is_some() {
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

fn platform_kind(path: &Path) -> Option<String> {
    crate::platform::network_filesystem(path)
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
