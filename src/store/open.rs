//! Where a cache lives and how its connections are opened.
//!
//! One cache file per remote path, under `cache_directory`, named after the remote file and a
//! hash of its full path. The directory is created user-only (0700), the files 0600. The cache
//! is made in WAL mode, so the app's readers and the sync's writer do not block each other. An
//! app that opens the cache itself may switch it to another journal mode (`journal_mode=DELETE`
//! is the usual advice for databases on shares, and apps keep their startup pragmas): sharecache
//! then works in that mode rather than switch it back, which would fail while the app has the
//! cache open, or break the app's assumptions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::LocalError;
use crate::clock::Clock;

/// The files of one cache.
#[derive(Debug, Clone)]
pub struct CachePaths {
    /// The cache directory.
    pub dir: PathBuf,
    /// The cache database.
    pub db: PathBuf,
    /// The cross-process sync lock file.
    pub lock: PathBuf,
}

/// FNV-1a, 64 bit: a stable hash (std's hasher may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl CachePaths {
    /// The cache files for `remote` under `dir`.
    ///
    /// ```
    /// use sharecache::store::CachePaths;
    /// let p = CachePaths::new("/tmp/c".as_ref(), "//server/share/app.db".as_ref());
    /// assert!(p.db.file_name().unwrap().to_str().unwrap().starts_with("app-"));
    /// assert_ne!(p.db, CachePaths::new("/tmp/c".as_ref(), "//other/share/app.db".as_ref()).db);
    /// ```
    pub fn new(dir: &Path, remote: &Path) -> CachePaths {
        let stem: String = remote
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .chars()
                    .filter(|c| c.is_alphanumeric() || "-_.".contains(*c))
                    .collect()
            })
            .unwrap_or_default();
        let stem = if stem.is_empty() {
            "db".to_string()
        } else {
            stem
        };
        // Every spelling of one remote path gives one cache (see `platform::unc`).
        let key = crate::platform::unc::cache_key(remote);
        let name = format!("{stem}-{:016x}", fnv1a(key.as_bytes()));
        CachePaths {
            dir: dir.to_path_buf(),
            db: dir.join(format!("{name}.db")),
            lock: dir.join(format!("{name}.sync-lock")),
        }
    }

    /// A temporary file next to the cache (for snapshots).
    pub fn temp(&self, what: &str) -> PathBuf {
        let mut s = self.db.as_os_str().to_owned();
        s.push(format!(".{what}-{:08x}", rand::random::<u32>()));
        PathBuf::from(s)
    }
}

/// Creates the cache directory (user-only) if needed and checks it is writable.
pub fn ensure_dir(dir: &Path) -> Result<(), LocalError> {
    let err = |source| LocalError::Directory {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.is_dir() {
        crate::platform::create_private_dir(dir).map_err(err)?;
    }
    // Probe writability: permissions alone do not tell (read-only mounts, ACLs, root).
    let probe = dir.join(format!(".sharecache-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(err)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Opens a connection on an existing cache file: busy timeout, the clock's VFS so that SQL's
/// `'now'` follows the cache's clock, and `synchronous=NORMAL` in WAL mode (a committed write
/// survives a crash of the process; see the README on power loss) or `FULL` in any other
/// journal mode an app chose (where `NORMAL` could corrupt the file on a power cut). The journal
/// mode is left as it is ([`journal_mode`]).
pub fn open_local(
    path: &Path,
    clock: &Clock,
    busy_timeout: Duration,
) -> Result<Connection, LocalError> {
    let sql = |e| LocalError::from_sqlite(path, e);
    if !path.is_file() {
        return Err(LocalError::Corrupt {
            path: path.into(),
            detail: "the cache file is missing".into(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match clock.vfs() {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs),
        None => Connection::open_with_flags(path, flags),
    }
    .map_err(sql)?;
    conn.busy_timeout(busy_timeout).map_err(sql)?;
    let mode = journal_mode(&conn).map_err(sql)?;
    conn.execute_batch(if mode == "wal" {
        "PRAGMA synchronous = NORMAL;"
    } else {
        "PRAGMA synchronous = FULL;"
    })
    .map_err(sql)?;
    Ok(conn)
}

/// The journal mode of the cache `conn` is open on, lower case (`wal` unless an app changed it).
pub fn journal_mode(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
        .map(|m| m.to_ascii_lowercase())
}

/// Below this much free space the cache counts as full: the app's writes start failing while
/// SQLite's WAL may still reuse its own space, so waiting for the sync to fail would be too late.
pub const MIN_FREE_BYTES: u64 = 1 << 20;

/// Fails with [`LocalError::DiskFull`] when the cache's filesystem is (nearly) full.
pub fn check_space(paths: &CachePaths) -> Result<(), LocalError> {
    match crate::platform::free_bytes(&paths.dir) {
        Ok(free) if free < MIN_FREE_BYTES => Err(LocalError::DiskFull {
            path: paths.db.clone(),
            source: None,
        }),
        _ => Ok(()),
    }
}

/// Restricts a file to the user (0600; an owner-only DACL on Windows).
pub fn make_private(path: &Path) -> Result<(), LocalError> {
    crate::platform::make_private(path).map_err(|e| LocalError::from_io(path, e))
}
