//! Shared runtime state of a mount (latency, fault modes, counters) and the
//! public [`Control`] handle that tests use to steer it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use fuser::Errno;

/// Operation counters of one mount, as returned by [`Control::stats`].
///
/// Every request the daemon handles is counted exactly once in `total` and
/// once in one of the per-operation fields (`other` for everything without a
/// field of its own: `mkdir`, `rmdir`, `mknod`, `symlink`, `link`,
/// `readlink`, `statfs`, `access`, `opendir`, `releasedir`, `fsyncdir`,
/// `fallocate`, the xattr calls, ...). `FORGET`, `INIT`, `DESTROY`,
/// `INTERRUPT` and opcodes fuser answers itself (e.g. `STATX` on recent
/// kernels) are not counted. Counters start at zero when
/// [`crate::SlowFs::mount`] returns.
///
/// Typical costs (entry/attr TTL 0, direct I/O): `stat(path)` = `LOOKUP` +
/// `GETATTR`; `fstat(fd)` = `GETATTR`; `open(path)` = `LOOKUP` + `OPEN`;
/// creating a file = `LOOKUP` (`ENOENT`) + `CREATE`; `close` = `FLUSH` (+
/// `RELEASE`, sent asynchronously, for the last descriptor); one `read(2)` /
/// `write(2)` of up to 1 MiB = one `READ` / `WRITE`. Every `close` of a
/// descriptor on the mount sends a `FLUSH`, including the implicit closes of
/// close-on-exec descriptors when the process spawns a child.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// All counted requests.
    pub total: u64,
    /// `LOOKUP` requests (one per path component per path walk, since entries have TTL 0).
    pub lookup: u64,
    /// `GETATTR` requests (`stat`, `fstat`; attributes have TTL 0).
    pub getattr: u64,
    /// `SETATTR` requests (truncate, chmod, chown, utimes).
    pub setattr: u64,
    /// `OPEN` requests (opening an existing file).
    pub open: u64,
    /// `CREATE` requests (`open` with `O_CREAT` of a file that did not exist).
    pub create: u64,
    /// `READ` requests.
    pub read: u64,
    /// `WRITE` requests.
    pub write: u64,
    /// `FSYNC` requests on files (directory fsyncs count in `other`).
    pub fsync: u64,
    /// `FLUSH` requests (sent on every `close` of a file descriptor).
    pub flush: u64,
    /// `RELEASE` requests (last close of an open file description).
    pub release: u64,
    /// `UNLINK` requests.
    pub unlink: u64,
    /// `RENAME` / `RENAME2` requests.
    pub rename: u64,
    /// `READDIR` requests.
    pub readdir: u64,
    /// Every other counted request.
    pub other: u64,
    /// Bytes successfully returned by `READ` requests.
    pub bytes_read: u64,
    /// Bytes successfully written by `WRITE` requests.
    pub bytes_written: u64,
    /// Requests failed on purpose: by [`Control::fail_nth`], while offline
    /// ([`Control::set_offline`]) or because the mount was being dropped.
    pub failed: u64,
    /// All requests answered with an error, including injected failures and
    /// ordinary ones such as `ENOENT` from a lookup of a missing file.
    pub errors: u64,
}

/// Per-operation category used for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Lookup,
    Getattr,
    Setattr,
    Open,
    Create,
    Read,
    Write,
    Fsync,
    Flush,
    Release,
    Unlink,
    Rename,
    Readdir,
    Other,
}

/// Which directory tree the mountpoint currently shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum World {
    /// The real share: the backing directory.
    Backing,
    /// "Share not mounted": the fixture's scratch directory.
    Scratch,
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    at: u64,
    persistent: bool,
}

#[derive(Debug)]
struct State {
    latency: Duration,
    offline: bool,
    hang: bool,
    unmounted: bool,
    shutdown: bool,
    seq: u64,
    fault: Option<Fault>,
    stats: Stats,
}

/// State shared between the filesystem threads and every [`Control`].
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    backing: PathBuf,
    scratch: PathBuf,
    trace: bool,
}

impl Shared {
    pub(crate) fn new(backing: PathBuf, scratch: PathBuf, latency: Duration) -> Self {
        Shared {
            state: Mutex::new(State {
                latency,
                offline: false,
                hang: false,
                unmounted: false,
                shutdown: false,
                seq: 0,
                fault: None,
                stats: Stats::default(),
            }),
            cond: Condvar::new(),
            backing,
            scratch,
            trace: std::env::var_os("SLOWFS_TRACE").is_some_and(|v| !v.is_empty() && v != "0"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state inconsistent
        // in a way that matters for a test fixture: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Directory shown for `world`.
    pub(crate) fn root(&self, world: World) -> &Path {
        match world {
            World::Backing => &self.backing,
            World::Scratch => &self.scratch,
        }
    }

    pub(crate) fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The common prologue of every request: count it, apply injected
    /// faults, offline and hang modes, then sleep the latency.
    ///
    /// Returns the world the request must be served from, or the error to
    /// reply with.
    pub(crate) fn gate(&self, op: Op, name: &str, ino: u64) -> Result<World, Errno> {
        let mut st = self.lock();
        st.seq += 1;
        let seq = st.seq;
        st.stats.total += 1;
        let s = &mut st.stats;
        *match op {
            Op::Lookup => &mut s.lookup,
            Op::Getattr => &mut s.getattr,
            Op::Setattr => &mut s.setattr,
            Op::Open => &mut s.open,
            Op::Create => &mut s.create,
            Op::Read => &mut s.read,
            Op::Write => &mut s.write,
            Op::Fsync => &mut s.fsync,
            Op::Flush => &mut s.flush,
            Op::Release => &mut s.release,
            Op::Unlink => &mut s.unlink,
            Op::Rename => &mut s.rename,
            Op::Readdir => &mut s.readdir,
            Op::Other => &mut s.other,
        } += 1;
        let mut fail = match st.fault {
            Some(f) if seq == f.at || (f.persistent && seq > f.at) => true,
            Some(f) if seq > f.at => {
                st.fault = None;
                false
            }
            _ => false,
        };
        let mut hung = false;
        while st.hang && !st.offline && !st.shutdown {
            if !hung && self.trace {
                eprintln!("slowfs: #{seq} {name}(ino {ino}) hangs");
            }
            hung = true;
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        fail |= st.offline || st.shutdown;
        if fail {
            st.stats.failed += 1;
            st.stats.errors += 1;
        }
        let latency = st.latency;
        let world = if st.unmounted {
            World::Scratch
        } else {
            World::Backing
        };
        drop(st);
        if self.trace {
            let verdict = if fail { " -> EIO (injected)" } else { "" };
            eprintln!("slowfs: #{seq} {name}(ino {ino}){verdict}");
        }
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        if fail { Err(Errno::EIO) } else { Ok(world) }
    }

    /// Counts an ordinary (not injected) error reply.
    pub(crate) fn note_error(&self, name: &str, err: Errno) {
        self.lock().stats.errors += 1;
        if self.trace {
            eprintln!("slowfs:    {name} -> {err:?}");
        }
    }

    pub(crate) fn add_bytes_read(&self, n: u64) {
        self.lock().stats.bytes_read += n;
    }

    pub(crate) fn add_bytes_written(&self, n: u64) {
        self.lock().stats.bytes_written += n;
    }

    /// Fails every request from now on and releases hung ones (used on unmount).
    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.cond.notify_all();
    }
}

/// Cheap, cloneable handle to steer a mounted [`crate::SlowFs`].
///
/// All methods take effect immediately for the next request the daemon
/// receives (the kernel caches neither entries nor attributes, so a `stat`
/// always reaches the daemon).
#[derive(Clone, Debug)]
pub struct Control {
    pub(crate) shared: Arc<Shared>,
}

impl Control {
    /// Sets the delay applied to every request before it is performed.
    pub fn set_latency(&self, d: Duration) {
        self.shared.lock().latency = d;
    }

    /// The delay currently applied to every request.
    pub fn latency(&self) -> Duration {
        self.shared.lock().latency
    }

    /// Share dropped: while `true`, every request (lookup and getattr of
    /// any path, open, read, write, fsync, create, unlink, rename, readdir,
    /// ... on new and already-open files alike) fails with `EIO` after the
    /// latency. Setting it to `true` also releases requests blocked by
    /// [`Control::set_hang`], which then fail with `EIO`.
    pub fn set_offline(&self, offline: bool) {
        self.shared.lock().offline = offline;
        self.shared.cond.notify_all();
    }

    /// Whether the share is currently offline.
    pub fn is_offline(&self) -> bool {
        self.shared.lock().offline
    }

    /// Share hangs: while `true`, requests block without a reply until
    /// `set_hang(false)` (then they proceed normally) or `set_offline(true)`
    /// (then they fail with `EIO`). At most `Options::threads` requests are
    /// held by the daemon; further ones wait in the kernel queue.
    pub fn set_hang(&self, hang: bool) {
        self.shared.lock().hang = hang;
        self.shared.cond.notify_all();
    }

    /// Whether the share currently hangs.
    pub fn is_hung(&self) -> bool {
        self.shared.lock().hang
    }

    /// Unmounted share: while `true`, the mountpoint shows a different,
    /// initially empty, writable directory (the fixture's scratch
    /// directory), like the bare mountpoint directory of a share that is not
    /// mounted. Files created in this mode land in the scratch directory and
    /// never in the backing directory; see [`Control::scratch_entries`].
    /// File handles opened in the other mode fail with `EIO`. The scratch
    /// directory keeps its content when the mode is switched off and on.
    pub fn set_unmounted(&self, unmounted: bool) {
        self.shared.lock().unmounted = unmounted;
    }

    /// Whether the mountpoint currently shows the scratch directory.
    pub fn is_unmounted(&self) -> bool {
        self.shared.lock().unmounted
    }

    /// Everything in the scratch directory, as sorted `/`-separated paths
    /// relative to it (a file `a` in a directory `d` gives `"d"` and `"d/a"`).
    pub fn scratch_entries(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_entries(self.shared.scratch(), "", &mut out);
        out.sort();
        out
    }

    /// Deletes everything in the scratch directory.
    pub fn clear_scratch(&self) {
        if let Ok(rd) = std::fs::read_dir(self.shared.scratch()) {
            for e in rd.flatten() {
                let p = e.path();
                let _ = if e.file_type().is_ok_and(|t| t.is_dir()) {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }

    /// The scratch directory shown while [`Control::set_unmounted`] is on.
    pub fn scratch_path(&self) -> &Path {
        self.shared.scratch()
    }

    /// Fault injection: the `n`-th request counted from now (`1` = the next
    /// one) fails with `EIO`. With `persistent`, it and every request after
    /// it fail until [`Control::clear_faults`]. Every counted request (see
    /// [`Stats`]) advances the count. `n == 0` is treated as `1`.
    pub fn fail_nth(&self, n: u64, persistent: bool) {
        let mut st = self.shared.lock();
        let at = st.seq + n.max(1);
        st.fault = Some(Fault { at, persistent });
    }

    /// Removes any fault armed by [`Control::fail_nth`].
    pub fn clear_faults(&self) {
        self.shared.lock().fault = None;
    }

    /// Operation counters since mount or the last [`Control::reset_stats`].
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Resets all counters to zero (does not affect [`Control::fail_nth`]).
    pub fn reset_stats(&self) {
        self.shared.lock().stats = Stats::default();
    }
}

fn collect_entries(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_entries(&e.path(), &format!("{name}/"), out);
        }
        out.push(name);
    }
}
