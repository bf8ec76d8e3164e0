//! Thin wrappers around the system calls the passthrough needs.

use std::ffi::CString;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo, TimeOrNow};

/// Open flags passed through to the backing file; everything else
/// (`O_CREAT`, `O_EXCL`, `O_DIRECT`, `O_NOFOLLOW`, ...) is handled here.
const PASS_FLAGS: i32 =
    libc::O_ACCMODE | libc::O_APPEND | libc::O_TRUNC | libc::O_SYNC | libc::O_DSYNC;

/// Errno of the last failed libc call.
pub(crate) fn last_errno() -> Errno {
    Errno::from(io::Error::last_os_error())
}

pub(crate) fn io_errno(e: io::Error) -> Errno {
    Errno::from(e)
}

pub(crate) fn cpath(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn check(rc: libc::c_int) -> Result<(), Errno> {
    if rc < 0 { Err(last_errno()) } else { Ok(()) }
}

/// `open(2)` with the pass-through subset of `flags` plus `extra`.
pub(crate) fn open(path: &Path, flags: i32, extra: i32, mode: u32) -> Result<File, Errno> {
    let c = cpath(path)?;
    let fl = (flags & PASS_FLAGS) | extra | libc::O_CLOEXEC;
    // SAFETY: `c` is a valid NUL-terminated string; the returned fd is owned by the File.
    let fd = unsafe { libc::open(c.as_ptr(), fl, mode as libc::c_uint) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens a directory for fsyncdir.
pub(crate) fn open_dir(path: &Path) -> Result<File, Errno> {
    open(path, libc::O_RDONLY, libc::O_DIRECTORY, 0)
}

pub(crate) fn lstat(path: &Path) -> Result<Metadata, Errno> {
    std::fs::symlink_metadata(path).map_err(io_errno)
}

pub(crate) fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nsecs as u64)
    }
}

/// FUSE attributes for node `ino` from the backing file's metadata
/// (mode, owner, times and sizes passed through unchanged).
pub(crate) fn attr(ino: u64, m: &Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: kind_of(m.mode()),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        flags: 0,
    }
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
            Err(e) => {
                let d = e.duration();
                let (mut s, mut ns) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
                if ns < 0 {
                    s -= 1;
                    ns += 1_000_000_000;
                }
                libc::timespec {
                    tv_sec: s as libc::time_t,
                    tv_nsec: ns as libc::c_long,
                }
            }
        },
    }
}

/// `utimensat`/`futimens` for the given optional times.
pub(crate) fn set_times(
    path: &Path,
    fd: Option<&File>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
) -> Result<(), Errno> {
    let ts = [timespec(atime), timespec(mtime)];
    // SAFETY: valid fd / path and a two-element timespec array.
    let rc = match fd {
        Some(f) => unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) },
        None => {
            let c = cpath(path)?;
            unsafe {
                libc::utimensat(
                    libc::AT_FDCWD,
                    c.as_ptr(),
                    ts.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            }
        }
    };
    check(rc)
}

pub(crate) fn chmod(path: &Path, mode: u32) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: valid path.
    check(unsafe { libc::chmod(c.as_ptr(), (mode & 0o7777) as libc::mode_t) })
}

pub(crate) fn lchown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
    let c = cpath(path)?;
    let u = uid.unwrap_or(u32::MAX);
    let g = gid.unwrap_or(u32::MAX);
    // SAFETY: valid path; -1 means "unchanged".
    check(unsafe { libc::lchown(c.as_ptr(), u, g) })
}

pub(crate) fn truncate(path: &Path, size: u64) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: valid path.
    check(unsafe { libc::truncate(c.as_ptr(), size as libc::off_t) })
}

/// Gives a file created on behalf of a non-root caller to that caller,
/// when the daemon runs as root (like a share mapping the client's identity).
pub(crate) fn give_to(path: &Path, uid: u32, gid: u32) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 && (uid != 0 || gid != 0) {
        let _ = lchown(path, Some(uid), Some(gid));
    }
}

pub(crate) fn access(path: &Path, mask: i32) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: valid path.
    check(unsafe { libc::access(c.as_ptr(), mask) })
}

pub(crate) fn mknod(path: &Path, mode: u32, rdev: u32) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: valid path.
    check(unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) })
}

pub(crate) fn rename(from: &Path, to: &Path, flags: u32) -> Result<(), Errno> {
    let (a, b) = (cpath(from)?, cpath(to)?);
    if flags == 0 {
        // SAFETY: valid paths.
        return check(unsafe { libc::rename(a.as_ptr(), b.as_ptr()) });
    }
    // SAFETY: valid paths; renameat2 through syscall(2) to avoid libc version issues.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags as libc::c_uint,
        )
    };
    if rc < 0 { Err(last_errno()) } else { Ok(()) }
}

pub(crate) fn fallocate(f: &File, mode: i32, offset: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: valid fd.
    check(unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            mode,
            offset as libc::off_t,
            len as libc::off_t,
        )
    })
}

/// Filesystem statistics for a `STATFS` reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatFs {
    pub(crate) blocks: u64,
    pub(crate) bfree: u64,
    pub(crate) bavail: u64,
    pub(crate) files: u64,
    pub(crate) ffree: u64,
    pub(crate) bsize: u32,
    pub(crate) namelen: u32,
    pub(crate) frsize: u32,
}

/// `statvfs` of `path`.
pub(crate) fn statvfs(path: &Path) -> Result<StatFs, Errno> {
    let c = cpath(path)?;
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    check(unsafe { libc::statvfs(c.as_ptr(), &mut s) })?;
    Ok(StatFs {
        blocks: s.f_blocks as u64,
        bfree: s.f_bfree as u64,
        bavail: s.f_bavail as u64,
        files: s.f_files as u64,
        ffree: s.f_ffree as u64,
        bsize: s.f_bsize as u32,
        namelen: s.f_namemax as u32,
        frsize: s.f_frsize as u32,
    })
}

/// Unmounts `path`: `umount2(MNT_FORCE)` first, which aborts the FUSE
/// connection (pending and future requests fail with `ENOTCONN`, the daemon
/// threads exit) and unmounts if nothing is open; if files are still open it
/// fails with `EBUSY` and the mount is then detached (`MNT_DETACH`). Without
/// the privilege for that, falls back to `fusermount3 -uz` / `fusermount -uz`
/// (lazy unmount only).
pub(crate) fn unmount(path: &Path) -> io::Result<()> {
    let c = cpath(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_FORCE) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Not a mount point (any more).
        Some(libc::EINVAL) | Some(libc::ENOENT) => return Ok(()),
        // SAFETY: valid path.
        Some(libc::EBUSY) if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 => {
            return Ok(());
        }
        _ => {}
    }
    for bin in ["fusermount3", "fusermount"] {
        let ok = std::process::Command::new(bin)
            .args(["-u", "-z", "-q", "--"])
            .arg(path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
    }
    Err(err)
}
