//! Out-of-process watchdog that tears the mount down when the test process
//! dies.
//!
//! The FUSE daemon runs on threads of the test process itself. If that
//! process exits (normally, by panic=abort, by a signal) while one of its
//! threads waits for a reply, or while it still has files open on the mount
//! (`close` sends `FLUSH`), the exit can block forever in uninterruptible
//! sleep: the daemon threads are already gone, and the `/dev/fuse`
//! descriptor that would abort the connection is only closed after every
//! thread has exited.
//!
//! The watchdog is a child process that polls `/proc/<parent>/stat` and, as
//! soon as the parent starts exiting (its leader thread has `PF_EXITING`,
//! `PF_POSTCOREDUMP` or `PF_SIGNALED` set or a pending `SIGKILL`) or is gone,
//! force-unmounts the mountpoint (`umount2(MNT_FORCE)`, which aborts the FUSE
//! connection so every waiter gets `ENOTCONN`) and detaches it. It needs
//! `CAP_SYS_ADMIN` (root) for that; without it no watchdog is started.
//!
//! The child is created with `clone(CLONE_FILES)`: a copy of the memory like
//! `fork`, but sharing the parent's descriptor table. It therefore holds no
//! extra references to the parent's files (pipes still see EOF when the
//! parent closes them, and the child never closes a file on the mount, which
//! would send a `FLUSH`). After the clone it only makes async-signal-safe
//! system calls: no allocation, no locks, no Rust runtime.

use std::ffi::CString;
use std::io;

use crate::sys;

/// Task flags (include/linux/sched.h) that mark a dying task: `PF_EXITING`,
/// `PF_POSTCOREDUMP` (set first thing in `do_exit`, before a thread waits
/// for a core dump to finish) and `PF_SIGNALED` (killed by a signal).
const DYING_FLAGS: u64 = 0x4 | 0x8 | 0x400;
/// Poll interval of the watchdog.
const POLL: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 20_000_000,
};

/// Handle on a running watchdog; [`Watchdog::stop`] kills and reaps it.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pid: libc::pid_t,
}

impl Watchdog {
    /// Starts a watchdog for the mount at `mountpoint`, if running as root.
    pub(crate) fn start(mountpoint: &std::path::Path) -> io::Result<Option<Watchdog>> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let mnt =
            sys::cpath(mountpoint).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let stat = CString::new(format!("/proc/{parent}/stat")).expect("no NUL");
        let flags = (libc::CLONE_FILES | libc::SIGCHLD) as libc::c_ulong;
        // SAFETY: like fork(2) (null stack: the child runs on a copy of ours)
        // but sharing the descriptor table. The child only runs `watch`,
        // which makes async-signal-safe system calls on memory prepared
        // before the clone, then `_exit`s.
        match unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe { watch(parent, &stat, &mnt) },
            pid => Ok(Some(Watchdog {
                pid: pid as libc::pid_t,
            })),
        }
    }

    /// Kills and reaps the watchdog (the mount is being torn down normally).
    pub(crate) fn stop(self) {
        // SAFETY: `pid` is our own child, not yet reaped.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            while libc::waitpid(self.pid, &mut status, 0) == -1
                && *libc::__errno_location() == libc::EINTR
            {}
        }
    }
}

/// Body of the forked watchdog. Never returns.
unsafe fn watch(parent: libc::pid_t, stat: &CString, mnt: &CString) -> ! {
    unsafe {
        // Leave the process group so a Ctrl-C aimed at the tests does not
        // kill the watchdog before it can clean up.
        libc::setsid();
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        libc::prctl(libc::PR_SET_NAME, c"slowfs-watchdog".as_ptr());
        let mut buf = [0u8; 1024];
        loop {
            if libc::getppid() != parent || parent_exiting(stat, &mut buf) {
                break;
            }
            libc::nanosleep(&POLL, std::ptr::null_mut());
        }
        // Abort the connection (all waiters get ENOTCONN) and unmount; if
        // files are still open the force unmount fails with EBUSY after
        // aborting, so detach it as well.
        libc::umount2(mnt.as_ptr(), libc::MNT_FORCE);
        libc::umount2(mnt.as_ptr(), libc::MNT_DETACH);
        libc::_exit(0)
    }
}

/// Whether `/proc/<parent>/stat` shows the leader exiting (or is unreadable).
unsafe fn parent_exiting(stat: &CString, buf: &mut [u8; 1024]) -> bool {
    let n = unsafe {
        let fd = libc::open(stat.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return true;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return true;
    }
    stat_says_exiting(&buf[..n as usize])
}

/// Parses a `/proc/PID/stat` line: state (field 3), flags (field 9) and
/// pending signals (field 31). No allocation.
fn stat_says_exiting(line: &[u8]) -> bool {
    let Some(close) = line.iter().rposition(|&b| b == b')') else {
        return false;
    };
    let mut fields = line[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let mut field = 2; // the comm field just ended
    let mut exiting = false;
    for f in fields.by_ref() {
        field += 1;
        match field {
            3 => exiting |= matches!(f.first(), Some(b'Z' | b'X' | b'x')),
            9 => exiting |= parse(f) & DYING_FLAGS != 0,
            31 => {
                exiting |= parse(f) & (1 << (libc::SIGKILL - 1)) != 0;
                break;
            }
            _ => {}
        }
    }
    exiting
}

fn parse(f: &[u8]) -> u64 {
    f.iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, &b| {
            n.wrapping_mul(10).wrapping_add(u64::from(b - b'0'))
        })
}

#[cfg(test)]
mod tests {
    use super::stat_says_exiting;

    fn line(state: &str, flags: u64, signal: u64) -> String {
        let mut f: Vec<String> = (3..=52).map(|_| "0".to_string()).collect();
        f[0] = state.into();
        f[9 - 3] = flags.to_string();
        f[31 - 3] = signal.to_string();
        format!("1234 (weird ) name) {}\n", f.join(" "))
    }

    #[test]
    fn parses_proc_stat() {
        assert!(!stat_says_exiting(line("S", 0x400100, 0).as_bytes()));
        assert!(stat_says_exiting(line("S", 0x400104, 0).as_bytes()));
        assert!(stat_says_exiting(line("I", 0x400408, 0).as_bytes()));
        assert!(stat_says_exiting(line("D", 0, 1 << 8).as_bytes()));
        assert!(stat_says_exiting(line("Z", 0, 0).as_bytes()));
        assert!(!stat_says_exiting(line("R", 0, 1 << 14).as_bytes()));
        let own = std::fs::read(format!("/proc/{}/stat", std::process::id())).unwrap();
        assert!(!stat_says_exiting(&own));
    }
}
