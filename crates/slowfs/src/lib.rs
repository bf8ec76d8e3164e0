//! `slowfs`: a FUSE passthrough filesystem that behaves like a slow, flaky
//! network share (SMB/NFS), for tests and benchmarks.
//!
//! [`SlowFs::mount`] mirrors a backing directory at a mountpoint, in-process
//! (a background session with [`Options::threads`] worker threads). Every
//! request the kernel sends is counted ([`Stats`]), then subjected to the
//! fault modes of [`Control`] (injected `EIO`, offline, hang, "share not
//! mounted"), then delayed by the latency, then performed on the backing
//! directory with real file descriptors (`pread`/`pwrite` per handle).
//!
//! The kernel caches nothing: entry and attribute TTLs are 0 and files are
//! opened with `FOPEN_DIRECT_IO` (unless [`Options::direct_io`] is off), so
//! every `stat`, `open`, `read` and `write` reaches the daemon. POSIX byte
//! range locks (`fcntl`) are handled locally by the kernel, so SQLite
//! locking between connections and processes on this machine works.
//!
//! Requirements: Linux, `/dev/fuse`, and either root (the mount uses
//! `mount(2)` directly) or the `fusermount3` helper (Debian package `fuse3`).
//! As root, a `slowfs-watchdog` child process per mount unmounts it if the
//! test process dies without dropping the [`Mount`] (see [`Mount`]).
//!
//! Things worth knowing when testing against it:
//! - SQLite turns `EIO` from `read()` into `SQLITE_IOERR_CORRUPTFS`, which
//!   reaches the application as `SQLITE_CORRUPT` ("database disk image is
//!   malformed"): an offline share looks like a corrupt database. Opening a
//!   database while offline gives `SQLITE_CANTOPEN`.
//! - A failed `LOOKUP` that revalidates a known name is retried once by the
//!   kernel with a fresh lookup, so a one-shot [`Control::fail_nth`] hitting
//!   such a lookup is invisible to the application. `fstat` on an open file
//!   (one `GETATTR`) is the most predictable request to aim faults at.
//! - `close` sends `FLUSH` (its error is what `close(2)` returns), and so does
//!   every implicit close of a close-on-exec descriptor when the process
//!   spawns a child: spawning blocks while the share hangs if files are open.
//! - Operations are only counted per request; which requests a syscall
//!   causes is decided by the kernel (see [`Stats`] for typical costs).
//!
//! ```no_run
//! use std::time::Duration;
//! let backing = tempfile::tempdir().unwrap();
//! let mnt = tempfile::tempdir().unwrap();
//! let m = slowfs::SlowFs::mount(backing.path(), mnt.path(), slowfs::Options::default()).unwrap();
//! std::fs::write(m.path().join("f"), b"hi").unwrap();
//! m.control().set_offline(true);
//! assert!(std::fs::read(m.path().join("f")).is_err());
//! m.control().set_offline(false);
//! m.control().set_latency(Duration::from_millis(20));
//! ```
#![warn(missing_docs)]

mod control;
mod fs;
mod inodes;
mod ops;
mod sys;
mod watchdog;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use control::Shared;
pub use control::{Control, Stats};
use fuser::{BackgroundSession, MountOption};

/// Mount options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Delay applied to every request before it is performed (default 2 ms).
    /// Can be changed later with [`Control::set_latency`].
    pub latency: Duration,
    /// Number of daemon threads (default 4), so that concurrent clients are
    /// not serialised behind one sleeping thread.
    pub threads: usize,
    /// Reply to `open`/`create` with `FOPEN_DIRECT_IO` (default `true`): no
    /// kernel page cache, every `read`/`write` reaches the daemon, like an
    /// uncached share. With `false`, the page cache is used but dropped on
    /// every open (close-to-open consistency).
    pub direct_io: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            latency: Duration::from_millis(2),
            threads: 4,
            direct_io: true,
        }
    }
}

/// Entry point: see [`SlowFs::mount`].
#[derive(Debug)]
pub struct SlowFs;

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

impl SlowFs {
    /// Mounts a slow passthrough view of `backing` at `mountpoint` (both
    /// existing directories) and returns once the mount is live (the
    /// mountpoint reports a different device). Counters start at zero.
    ///
    /// The returned [`Mount`] unmounts (lazily) when dropped.
    pub fn mount(backing: &Path, mountpoint: &Path, opts: Options) -> io::Result<Mount> {
        let backing = backing.canonicalize()?;
        let mountpoint = mountpoint.canonicalize()?;
        for p in [&backing, &mountpoint] {
            if !p.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", p.display()),
                ));
            }
        }
        let dev_before = std::fs::metadata(&mountpoint)?.dev();
        let scratch = std::env::temp_dir().join(format!(
            "slowfs-scratch-{}-{}",
            std::process::id(),
            SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        sweep_stale_scratch_dirs();
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)?;
        let shared = Arc::new(Shared::new(backing.clone(), scratch.clone(), opts.latency));
        let control = Control {
            shared: shared.clone(),
        };

        let fs = ops::SlowFsImpl::new(shared, opts.direct_io);
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName("slowfs".into()),
            MountOption::Subtype("slowfs".into()),
            MountOption::RW,
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        config.n_threads = Some(opts.threads.max(1));
        let session = fuser::Session::new(fs, &mountpoint, &config)
            .and_then(|s| s.spawn())
            .inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&scratch);
            })?;
        let mut mount = Mount {
            path: mountpoint,
            backing,
            scratch,
            control,
            session: Some(session),
            watchdog: None,
            dev: 0,
        };

        // The handshake is done; wait until path lookups reach the new mount.
        let deadline = Instant::now() + Duration::from_secs(10) + opts.latency * 10;
        loop {
            match std::fs::metadata(&mount.path) {
                Ok(m) if m.dev() != dev_before => {
                    mount.dev = m.dev();
                    break;
                }
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Ok(_) => return Err(io::Error::other("slowfs: mount did not become visible")),
                Err(e) => return Err(e),
            }
        }
        mount.watchdog = watchdog::Watchdog::start(&mount.path)?;
        mount.control.reset_stats();
        Ok(mount)
    }
}

/// A live mount.
///
/// Dropping it releases hung requests, aborts the FUSE connection and
/// unmounts (`umount2(MNT_FORCE)`, then `MNT_DETACH` if files are still
/// open; non-root: `fusermount3 -uz`). It never blocks for long; files still
/// open on the mount fail from then on.
///
/// As root, a small watchdog process (`slowfs-watchdog`) is forked per
/// mount: if the test process dies without dropping the `Mount` (panic=abort,
/// signal, `exit` with the mount leaked or files open), it aborts the
/// connection and unmounts, so the dying process cannot hang forever in
/// uninterruptible sleep waiting for its own daemon threads.
#[derive(Debug)]
pub struct Mount {
    path: PathBuf,
    backing: PathBuf,
    scratch: PathBuf,
    control: Control,
    session: Option<BackgroundSession>,
    watchdog: Option<watchdog::Watchdog>,
    dev: u64,
}

impl Mount {
    /// The mountpoint (canonicalized).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The backing directory (canonicalized).
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// A handle to steer the mount; cheap to clone, `Send + Sync`.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Unmounts now and reports whether the unmount itself failed (dropping
    /// the `Mount` does the same and ignores errors).
    pub fn unmount(mut self) -> io::Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // Release hung requests; anything still arriving fails with EIO.
        self.control.shared.shutdown();
        let res = sys::unmount(&self.path);
        // The connection is aborted (root) or, without files open, gone:
        // the session threads exit. Otherwise try the fusectl abort file.
        let mut finished = wait_finished(&session, Duration::from_millis(1000));
        if !finished {
            let minor = libc::minor(self.dev as libc::dev_t);
            let abort = format!("/sys/fs/fuse/connections/{minor}/abort");
            if std::fs::write(&abort, b"1").is_ok() {
                finished = wait_finished(&session, Duration::from_millis(1000));
            }
        }
        if finished {
            // fuser's own unmount afterwards finds nothing mounted (EINVAL, ignored).
            let _ = session.join();
            if let Some(w) = self.watchdog.take() {
                w.stop();
            }
        } else {
            // Threads still serve open files (with EIO); let them and the
            // watchdog (not stopped here) live until those files are closed
            // or the process exits.
            std::mem::forget(session);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
        res
    }
}

/// Removes scratch directories left behind by dead processes.
fn sweep_stale_scratch_dirs() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("slowfs-scratch-"))
        else {
            continue;
        };
        let Some(pid) = rest
            .split('-')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn wait_finished(session: &BackgroundSession, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !session.guard.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_thread_safe() {
        send_sync::<super::Control>();
        send_sync::<super::Mount>();
        send_sync::<super::Stats>();
        send_sync::<super::Options>();
    }
}
