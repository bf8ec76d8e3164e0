//! The benchmark's world: one slow share (slowfs) holding the remote databases, caches beside
//! it, and the baseline connections opened directly on the share.
//!
//! Remotes are generated in the share's backing directory (no latency) and set up for
//! sharecache through the share with the latency at 0, so setting up a million-row remote takes
//! seconds. Measurements then raise the latency.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use sharecache::remote::{RemoteOptions, Share as ShareStore};
use sharecache::sync::Progress;
use sharecache::{Cache, Config, EnableCache};
use slowfs::{Control, Mount, Options, SlowFs, Stats};
use tempfile::TempDir;

/// The app table every remote has: integer key, a few typical columns (~90 bytes a row).
pub const SCHEMA: &str = "
    CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL,
                        price REAL, note TEXT);
    CREATE TABLE events (id INTEGER PRIMARY KEY, at TEXT NOT NULL, what TEXT);
";

/// A slow share and a scratch directory for caches and copies.
pub struct Share {
    pub mount: Mount,
    pub ctl: Control,
    pub tmp: TempDir,
}

impl Share {
    pub fn new() -> Share {
        let tmp = tempfile::Builder::new()
            .prefix("sharecache-bench-")
            .tempdir()
            .expect("temp dir");
        let backing = tmp.path().join("backing");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let mount = SlowFs::mount(
            &backing,
            &mnt,
            Options {
                latency: Duration::ZERO,
                ..Options::default()
            },
        )
        .expect("mounting slowfs (needs /dev/fuse and fuse3; see .ci/run)");
        let ctl = mount.control();
        Share { mount, ctl, tmp }
    }

    /// A file in the backing directory (no latency, not counted).
    pub fn backing(&self, name: &str) -> PathBuf {
        self.tmp.path().join("backing").join(name)
    }

    /// The same file seen through the share.
    pub fn shared(&self, name: &str) -> PathBuf {
        self.mount.path().join(name)
    }

    /// A local scratch path.
    pub fn local(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Creates `name` in the backing directory with `rows` rows in `items`, as an app's
    /// database that has never seen sharecache.
    pub fn create_plain(&self, name: &str, rows: u64, extra_schema: &str) {
        let path = self.backing(name);
        let _ = std::fs::remove_file(&path);
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF;")
            .unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c.execute_batch(extra_schema).unwrap();
        c.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 WHERE ?1 >= 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
             INSERT INTO items (id, name, qty, price, note) \
             SELECT i, 'item ' || i, i % 100, i * 0.25, \
                    substr(hex(i * 2654435761) || hex(i * 40503) || '0123456789abcdef0123456789abcdef', 1, 48) \
             FROM n",
            [rows as i64],
        )
        .unwrap();
    }

    /// Creates `name` like [`Share::create_plain`] and sets sharecache up on it through the
    /// share (latency 0). With `full_log`, every row was changed since sharecache was set up and
    /// every client has pulled the changes: the log got an entry for every row, then was pruned,
    /// as it is in steady state (it holds what some client has not pulled yet; `pruned_rev` and
    /// the remote's clock are where those entries left them).
    pub fn create_remote(&self, name: &str, rows: u64, full_log: bool, extra_schema: &str) {
        self.create_plain(name, rows, extra_schema);
        let opts = RemoteOptions {
            origin: "bench-setup".into(),
            busy_timeout: Duration::from_secs(5),
            lock_retries: 3,
            lease_ttl: Duration::from_secs(30),
        };
        let mut remote = ShareStore::open(&self.shared(name), opts).expect("open remote");
        remote
            .enroll("2026-01-01T00:00:00.000Z")
            .expect("enroll remote");
        drop(remote);
        if full_log {
            let c = Connection::open(self.backing(name)).unwrap();
            c.execute_batch(
                "PRAGMA synchronous = OFF;
                 INSERT INTO sharecache_log (tbl, pk, rev, stamp, origin, deleted)
                   SELECT 'items', quote(id), id, '2026-01-01T00:00:00.000Z', 'bench-seed', 0 FROM items;
                 UPDATE sharecache_meta SET rev = (SELECT coalesce(max(rev), 0) FROM sharecache_log),
                   hlc = '2026-01-01T00:00:00.000Z';",
            )
            .unwrap();
            let rev: i64 = c
                .query_row("SELECT rev FROM sharecache_meta", [], |r| r.get(0))
                .unwrap();
            sharecache::remote::share::changelog::prune(&c, rev, i64::MAX).unwrap();
        }
    }

    /// A config for a cache of `remote` in its own directory `cache-<name>`.
    pub fn config(&self, remote: &str, name: &str) -> Config {
        let mut c = Config::for_remote(self.shared(remote));
        c.cache_directory = self.local(&format!("cache-{name}"));
        c.enable_cache = EnableCache::On;
        c.background = false;
        c
    }

    /// Opens (creating on first use) a cache of `remote`.
    pub fn cache(&self, remote: &str, name: &str) -> Cache {
        Cache::open(self.config(remote, name)).expect("open cache")
    }

    /// Opens (creating on first use) a cache of `remote` reached through the share's backing
    /// directory: another client whose share operations are neither slowed nor counted.
    pub fn backing_cache(&self, remote: &str, name: &str) -> Cache {
        let mut c = self.config(remote, name);
        c.remote_path = self.backing(remote);
        Cache::open(c).expect("open cache on the backing file")
    }

    /// A connection opened directly on the share, as the app did before sharecache.
    pub fn direct(&self, name: &str) -> Connection {
        let c = Connection::open_with_flags(self.shared(name), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.query_row("PRAGMA journal_mode = DELETE", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap();
        c
    }

    /// A connection on the backing file (bypasses the share): writes made here are logged by
    /// the remote's change-log triggers like any direct write.
    pub fn backdoor(&self, name: &str) -> Connection {
        let c = Connection::open_with_flags(self.backing(name), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }

    pub fn size(&self, name: &str) -> u64 {
        std::fs::metadata(self.backing(name)).map_or(0, |m| m.len())
    }
}

/// Small deterministic PRNG (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `1..=n`.
    pub fn id(&mut self, n: u64) -> i64 {
        (self.next() % n + 1) as i64
    }

    /// `k` distinct ids in `1..=n`, sorted.
    pub fn distinct(&mut self, k: usize, n: u64) -> Vec<i64> {
        let mut set = std::collections::BTreeSet::new();
        while set.len() < k {
            set.insert(self.id(n));
        }
        set.into_iter().collect()
    }
}

/// A [`Progress`] that timestamps every step with the share's counters, to split a sync into
/// phases.
pub struct Recorder<'a> {
    ctl: &'a Control,
    t0: Instant,
    pub events: RefCell<Vec<Event>>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub at: Duration,
    pub phase: String,
    pub stats: Stats,
}

impl<'a> Recorder<'a> {
    pub fn new(ctl: &'a Control) -> Recorder<'a> {
        Recorder {
            ctl,
            t0: Instant::now(),
            events: RefCell::new(vec![]),
        }
    }

    /// Starts the clock and the counters now.
    pub fn start(&mut self) -> Stats {
        self.t0 = Instant::now();
        self.events.borrow_mut().clear();
        self.ctl.stats()
    }

    /// The last event of `phase`.
    pub fn last(&self, phase: &str) -> Option<Event> {
        self.events
            .borrow()
            .iter()
            .rev()
            .find(|e| e.phase == phase)
            .cloned()
    }

    /// The first event of `phase`.
    pub fn first(&self, phase: &str) -> Option<Event> {
        self.events
            .borrow()
            .iter()
            .find(|e| e.phase == phase)
            .cloned()
    }

    pub fn count(&self, phase: &str) -> usize {
        self.events
            .borrow()
            .iter()
            .filter(|e| e.phase == phase)
            .count()
    }
}

impl Progress for Recorder<'_> {
    fn step(&self, phase: &str, _done: u64, _total: u64) {
        let e = Event {
            at: self.t0.elapsed(),
            phase: phase.to_string(),
            stats: self.ctl.stats(),
        };
        self.events.borrow_mut().push(e);
    }
}

/// Copies a file with 1 MiB reads and writes and fsyncs the copy: the transfer any snapshot of
/// the file has to make.
pub fn copy_file(from: &Path, to: &Path) -> u64 {
    use std::io::{Read, Write};
    let mut src = std::fs::File::open(from).unwrap();
    let mut dst = std::fs::File::create(to).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = src.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        dst.write_all(&buf[..k]).unwrap();
        n += k as u64;
    }
    dst.sync_all().unwrap();
    n
}

/// Copies a file like [`copy_file`] with `threads` 1 MiB reads in flight (`pread`), as a
/// pipelined snapshot could.
pub fn copy_parallel(from: &Path, to: &Path, threads: usize) -> u64 {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    const CHUNK: u64 = 1 << 20;
    let src = std::fs::File::open(from).unwrap();
    let len = src.metadata().unwrap().len();
    let dst = std::fs::File::create(to).unwrap();
    dst.set_len(len).unwrap();
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; CHUNK as usize];
                loop {
                    let off = next.fetch_add(CHUNK, Ordering::Relaxed);
                    if off >= len {
                        break;
                    }
                    let n = (len - off).min(CHUNK) as usize;
                    src.read_exact_at(&mut buf[..n], off).unwrap();
                    dst.write_all_at(&buf[..n], off).unwrap();
                }
            });
        }
    });
    dst.sync_all().unwrap();
    len
}

/// Peak resident set size of this process so far (`VmHWM`), in KiB.
pub fn vm_hwm_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

/// Current resident set size (`VmRSS`), in KiB.
pub fn vm_rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak RSS to the current RSS (`/proc/self/clear_refs`, Linux ≥ 4.0).
pub fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
