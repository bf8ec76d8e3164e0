//! Shared test environment: a remote database behind a slow, flaky share (the `slowfs` FUSE
//! fixture), and helpers to open clients on it; `remote` gives a remote of either backend (the
//! share or a PostgreSQL server) to the tests that run against both.
#![allow(dead_code)]

pub mod cli;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod proxy;
pub mod remote;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sharecache::OpenOptions;
use sharecache::clock::Clock;
use sharecache::{Cache, Config, EnableCache};
use slowfs::{Control, Mount, Options, SlowFs};
use tempfile::TempDir;

/// Per-operation latency of the test share (override with `SHARECACHE_TEST_LATENCY_MS`).
pub fn latency() -> Duration {
    let ms = std::env::var("SHARECACHE_TEST_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    Duration::from_millis(ms)
}

/// A remote database on a slow share, plus room for client caches.
pub struct Share {
    pub mount: Mount,
    pub control: Control,
    pub tmp: TempDir,
}

/// The schema most tests use: a UUID-keyed table with `updated_at`, an integer-keyed table, a
/// composite-keyed table and a table without primary key.
pub const SCHEMA: &str = "
    CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, updated_at TEXT);
    CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
    CREATE TABLE tags (task_id TEXT, tag TEXT, weight REAL, PRIMARY KEY (task_id, tag)) WITHOUT ROWID;
    CREATE TABLE audit_log (at TEXT, message TEXT);
    INSERT INTO tasks (id, title, updated_at) VALUES ('t1', 'first', '2026-01-01T00:00:00.000Z'), ('t2', 'second', '2026-01-01T00:00:00.000Z');
    INSERT INTO notes (id, body) VALUES (1, 'note one');
    INSERT INTO audit_log VALUES ('2026-01-01', 'created');
";

impl Share {
    /// A share holding `app.db` created with `schema`.
    pub fn with_schema(schema: &str) -> Share {
        let share = Share::empty();
        let db = Connection::open(share.backing().join("app.db")).unwrap();
        db.execute_batch("PRAGMA journal_mode = DELETE;").unwrap();
        db.execute_batch(schema).unwrap();
        drop(db);
        share
    }

    /// A share with the standard [`SCHEMA`].
    pub fn new() -> Share {
        Share::with_schema(SCHEMA)
    }

    /// A share with nothing on it.
    pub fn empty() -> Share {
        let tmp = tempfile::tempdir().unwrap();
        let backing = tmp.path().join("backing");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let mount = SlowFs::mount(
            &backing,
            &mnt,
            Options {
                latency: latency(),
                ..Options::default()
            },
        )
        .expect("mounting the slowfs test share (needs /dev/fuse and fuse3; see .ci/run)");
        let control = mount.control();
        Share {
            mount,
            control,
            tmp,
        }
    }

    /// The directory behind the share (bypasses the fixture).
    pub fn backing(&self) -> PathBuf {
        self.tmp.path().join("backing")
    }

    /// The remote database path, on the share.
    pub fn remote_path(&self) -> PathBuf {
        self.mount.path().join("app.db")
    }

    /// A config for client `name`, with its own cache directory.
    pub fn config(&self, name: &str) -> Config {
        let mut c = Config::for_remote(self.remote_path());
        c.cache_directory = self.tmp.path().join(format!("cache-{name}"));
        c.enable_cache = EnableCache::On;
        c.busy_timeout = Duration::from_secs(3);
        c.lease_ttl = Duration::from_secs(3);
        c.lock_retries = 3;
        c.background = false; // tests that want the sync thread turn it on
        c
    }

    /// Opens client `name`.
    pub fn client(&self, name: &str) -> Cache {
        Cache::open(self.config(name)).unwrap()
    }

    /// Opens client `name` whose clock is off by `offset`.
    pub fn client_with_clock(&self, name: &str, offset: chrono::Duration) -> Cache {
        Cache::open_with(
            self.config(name),
            OpenOptions::default().clock(Clock::with_offset(offset)),
        )
        .unwrap()
    }

    /// A plain connection on the remote, through the share.
    pub fn remote(&self) -> Connection {
        let c = Connection::open_with_flags(self.remote_path(), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c
    }

    /// Writes a config file for client `name` and returns its path (for CLI tests).
    pub fn config_file(&self, name: &str) -> PathBuf {
        let path = self.tmp.path().join(format!("{name}.yaml"));
        let text = format!(
            "database:\n  path: {}\n  sync_interval: 30\n  enable_cache: true\n  cache_directory: {}\nsync:\n  busy_timeout_ms: 3000\n  lease_ttl: 3\n  background: false\n",
            self.remote_path().display(),
            self.tmp.path().join(format!("cache-{name}")).display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// All rows of a query as strings, for comparisons.
pub fn rows(c: &Connection, sql: &str) -> Vec<Vec<String>> {
    rows_with(c, sql, |b| format!("{b:?}"))
}

/// [`rows`], with a BLOB printed by `blob`.
pub fn rows_with(c: &Connection, sql: &str, blob: fn(&[u8]) -> String) -> Vec<Vec<String>> {
    let mut s = c.prepare(sql).unwrap();
    let n = s.column_count();
    s.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => "NULL".to_string(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Blob(b) => blob(b),
                })
            })
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// One value of a query.
pub fn one<T: rusqlite::types::FromSql>(c: &Connection, sql: &str) -> T {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The `sharecache` binary.
pub fn sharecache() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sharecache"));
    c.env_remove("SHARECACHE_CONFIG")
        .env_remove("SHARECACHE_FAILPOINT")
        .env("RUST_LOG", "warn");
    c
}

/// Opens the cache file of a client as a plain SQLite connection (as another program would).
pub fn open_cache_file(cache: &Cache) -> Connection {
    let c = Connection::open(cache.cache_path().expect("cached mode")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// Whether `path` exists.
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// A tmpfs of `bytes` mounted at a new directory (for disk-full and read-only tests); unmounted
/// on drop. Needs root (CI runs as root).
pub struct TinyFs {
    pub path: PathBuf,
    _dir: TempDir,
}

impl TinyFs {
    pub fn new(bytes: u64, read_only: bool) -> TinyFs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let mut opts = format!("size={bytes},mode=0700");
        if read_only {
            opts.push_str(",ro");
        }
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs needs root");
        TinyFs { path, _dir: dir }
    }

    /// Fills the filesystem until writing fails.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}
