//! Linux and the other Unixes: libc calls and std's Unix extensions.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{Access, FileIdentity, IoClass, ProcessState};

/// Every check is made on Linux; elsewhere network filesystems are not recognised by type.
#[cfg(target_os = "linux")]
pub const LIMITATIONS: &[&str] = &[];
#[cfg(not(target_os = "linux"))]
pub const LIMITATIONS: &[&str] = &[
    "enable_cache: auto recognises network filesystems only by a UNC path on this Unix (Linux reads the filesystem type)",
];

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

pub fn host_identity() -> std::io::Result<String> {
    let mut last = None;
    for file in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        match std::fs::read_to_string(file) {
            Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
            Ok(_) => last = Some(std::io::Error::other(format!("{file} is empty"))),
            Err(e) => last = Some(std::io::Error::new(e.kind(), format!("{file}: {e}"))),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no machine id")))
}

pub fn process_state(pid: u32) -> ProcessState {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return ProcessState::Gone;
    };
    // SAFETY: kill with signal 0 only checks for existence.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return ProcessState::Running;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => ProcessState::Gone,
        // EPERM: it exists, owned by someone else.
        _ => ProcessState::Unknown,
    }
}

pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let c = c_path(dir)?;
    // SAFETY: valid C string and out-pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between Unixes
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

pub fn file_identity(path: &Path) -> std::io::Result<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(FileIdentity {
        volume: m.dev(),
        index: m.ino(),
    })
}

pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

pub fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

pub fn open_private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

pub fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a valid fd.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

pub fn unlock(file: &File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: unlock a valid fd.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// access(2): checks with the real user and group ids, without opening anything (opening and
/// closing a descriptor on the database would drop this process's POSIX locks on it).
fn access(path: &Path, mode: libc::c_int) -> Access {
    let c = match c_path(path) {
        Ok(c) => c,
        Err(e) => return Access::Denied(e),
    };
    // SAFETY: `c` is a valid NUL-terminated path; access(2) only reads it.
    if unsafe { libc::access(c.as_ptr(), mode) } == 0 {
        Access::Allowed
    } else {
        Access::Denied(std::io::Error::last_os_error())
    }
}

pub fn may_read_write(path: &Path) -> Access {
    access(path, libc::R_OK | libc::W_OK)
}

pub fn may_create_in(dir: &Path) -> Access {
    access(dir, libc::W_OK | libc::X_OK)
}

pub fn classify_code(code: i32) -> IoClass {
    match code {
        libc::ENOSPC | libc::EDQUOT => IoClass::DiskFull,
        libc::EROFS => IoClass::ReadOnly,
        libc::EACCES | libc::EPERM => IoClass::PermissionDenied,
        libc::ENOTCONN
        | libc::EHOSTDOWN
        | libc::EHOSTUNREACH
        | libc::ENETDOWN
        | libc::ENETUNREACH
        | libc::ENETRESET
        | libc::ECONNABORTED
        | libc::ECONNRESET
        | libc::ETIMEDOUT
        | libc::ESTALE => IoClass::NetworkGone,
        _ => IoClass::Other,
    }
}

#[cfg(target_os = "linux")]
pub fn network_filesystem(path: &Path) -> Option<String> {
    let mut p = Some(path);
    while let Some(dir) = p {
        if dir.as_os_str().is_empty() {
            break;
        }
        let c = c_path(dir).ok()?;
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

/// Listed in [`LIMITATIONS`].
#[cfg(not(target_os = "linux"))]
pub fn network_filesystem(_path: &Path) -> Option<String> {
    None
}

pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to the default action; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
