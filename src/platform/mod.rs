//! Every operating-system-specific call, behind one `cfg` switch (as redb's file backend does):
//! `unix.rs` for Linux and the other Unixes, `windows.rs` for Windows. Nothing else in the crate
//! names an OS, so a port is one file, and a reader sees in one place what each platform can and
//! cannot check.
//!
//! A check that a platform cannot do is never a silent no-op: it answers
//! [`Access::Unknown`] (or an error) with the reason, and [`limitations`] lists what `status`
//! reports as not checked on this platform.

use std::fs::File;
use std::path::Path;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as os;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as os;

pub mod unc;

/// This machine's host name, as other clients of a share see it in a lease ("unknown" if the
/// OS does not say).
pub fn host_name() -> String {
    os::host_name().unwrap_or_else(|| "unknown".into())
}

/// A stable identifier of this machine installation, surviving reboots and renames: Linux's
/// `/etc/machine-id` (systemd, D-Bus), Windows' `MachineGuid`. An error says why it is unknown.
pub fn host_identity() -> std::io::Result<String> {
    os::host_identity()
}

/// Whether a process of this host is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// It runs (or the pid was reused by another process).
    Running,
    /// No process has this pid.
    Gone,
    /// The OS would not say (permissions); treat it as running.
    Unknown,
}

/// Whether process `pid` of this host runs (`kill(pid, 0)`; `OpenProcess` +
/// `GetExitCodeProcess` on Windows).
pub fn process_state(pid: u32) -> ProcessState {
    os::process_state(pid)
}

/// Bytes available to this user on the filesystem holding `dir` (`statvfs`;
/// `GetDiskFreeSpaceExW`).
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    os::free_bytes(dir)
}

/// Which file a path leads to: device and inode on Unix, volume serial number and file index
/// on Windows. Two paths (or one path at two moments) with the same identity are the same file;
/// a file replaced by another (rename over it, delete and create) gets a different one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Device (Unix) or volume serial number (Windows).
    pub volume: u64,
    /// Inode (Unix) or file index (Windows).
    pub index: u64,
}

/// The identity of the file at `path` (following symlinks).
pub fn file_identity(path: &Path) -> std::io::Result<FileIdentity> {
    os::file_identity(path)
}

/// Creates `dir` and its missing parents; the last one readable by this user only (mode 0700;
/// on Windows a protected DACL granting only this user and SYSTEM, inherited by the files made
/// in it).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    os::create_private_dir(dir)
}

/// Restricts an existing file to this user (0600; the owner-only DACL on Windows).
pub fn make_private(path: &Path) -> std::io::Result<()> {
    os::make_private(path)
}

/// Creates a new file (failing if it exists) readable by this user only: mode 0600 at creation
/// on Unix; on Windows the file inherits its directory's DACL (private for a cache directory),
/// and is then given the owner-only DACL explicitly.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    os::create_private_file(path)
}

/// Opens (creating if needed) a file that only this user may read, for read and write.
pub fn open_private_file(path: &Path) -> std::io::Result<File> {
    os::open_private_file(path)
}

/// Takes the exclusive advisory lock of `file` if it is free: `Ok(false)` when another handle
/// holds it. `flock` on Unix; on Windows `LockFileEx` on one byte far beyond the end of the file,
/// so that readers of the file's content (who holds it) are not blocked by the mandatory
/// byte-range lock. The OS drops the lock when the holder dies.
pub fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    os::try_lock_exclusive(file)
}

/// Releases the lock taken by [`try_lock_exclusive`] (closing the file releases it too).
pub fn unlock(file: &File) -> std::io::Result<()> {
    os::unlock(file)
}

/// Writes all of `buf` at `offset` without moving a shared cursor (`pwrite`; `WriteFile` with an
/// offset on Windows).
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    os::write_at(file, buf, offset)
}

/// Makes a rename in `dir` durable (fsync of the directory). Windows has no directory fsync: NTFS
/// journals the rename itself, so there it returns `Ok` having nothing to flush.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    os::sync_dir(dir)
}

/// The answer of a permission check.
#[derive(Debug)]
pub enum Access {
    /// This user may.
    Allowed,
    /// This user may not (the error says why).
    Denied(std::io::Error),
    /// This platform cannot tell without side effects; the operation itself will.
    Unknown(&'static str),
}

/// Whether this user may read and write the file at `path`, without disturbing the locks other
/// connections of this process hold on it (`access(2)`; on Windows the read-only attribute and
/// an open for writing, harmless there as its locks belong to handles).
pub fn may_read_write(path: &Path) -> Access {
    os::may_read_write(path)
}

/// Whether this user may create files in `dir` (SQLite's journal goes beside the database).
pub fn may_create_in(dir: &Path) -> Access {
    os::may_create_in(dir)
}

/// What an I/O error means to sharecache, whatever OS error code carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoClass {
    /// No space left (`ENOSPC`, `EDQUOT`; `ERROR_DISK_FULL`, `ERROR_HANDLE_DISK_FULL`).
    DiskFull,
    /// Read-only filesystem or write-protected medium (`EROFS`; `ERROR_WRITE_PROTECT`).
    ReadOnly,
    /// Permission denied (`EACCES`, `EPERM`; `ERROR_ACCESS_DENIED`).
    PermissionDenied,
    /// Another process has the file open in a way that excludes this one
    /// (`ERROR_SHARING_VIOLATION`, `ERROR_LOCK_VIOLATION`; Unix has no such error).
    SharingViolation,
    /// The network share is gone (`ENOTCONN`, `EHOSTDOWN`, `ESTALE`, …; `ERROR_NETNAME_DELETED`,
    /// `ERROR_BAD_NETPATH`, `ERROR_UNEXP_NET_ERR`, …).
    NetworkGone,
    /// Anything else.
    Other,
}

/// Classifies an I/O error (by std's portable kind first, then by the raw OS code).
pub fn classify(e: &std::io::Error) -> IoClass {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded => return IoClass::DiskFull,
        K::ReadOnlyFilesystem => return IoClass::ReadOnly,
        _ => {}
    }
    match e.raw_os_error().map(os::classify_code) {
        Some(class) if class != IoClass::Other => class,
        _ if e.kind() == K::PermissionDenied => IoClass::PermissionDenied,
        _ => IoClass::Other,
    }
}

/// What kind of network filesystem a local-looking path is on, if any: the filesystem type of
/// the path or its nearest existing parent on Linux (`statfs`), the drive type on Windows
/// (`GetDriveTypeW`; a mapped drive names its share via `WNetGetConnectionW`). May block as long
/// as a hung share does: call it off the caller's thread.
pub fn network_filesystem(path: &Path) -> Option<String> {
    os::network_filesystem(path)
}

/// Restores the default action of SIGPIPE so that printing into a closed pipe ends the process
/// quietly, as Unix tools do. Windows has no SIGPIPE (a write to a closed pipe fails with an
/// error), so there is nothing to restore.
pub fn default_sigpipe() {
    os::default_sigpipe()
}

/// The checks this platform cannot make, for `status` (empty when every check is made).
pub fn limitations() -> &'static [&'static str] {
    os::LIMITATIONS
}

#[cfg(test)]
mod tests;
