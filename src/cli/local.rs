//! Read-only access for `status`, `history` and `conflicts`: they read the cache file if there is
//! one, and never create a cache, fall back, or wait on the share.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sharecache::Config;
use sharecache::store::detect::{self, Decision};
use sharecache::store::{CachePaths, LocalError};

/// How long a read-only command waits for the share to answer a single question.
pub const SHARE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `f` on a separate thread and waits at most `timeout` for it: a hung share must not hang
/// a read-only command. `None` on timeout (the thread is left to finish on its own).
pub fn within<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("sharecache-probe".into())
        .spawn(move || {
            let _ = tx.send(f());
        });
    match spawned {
        Ok(_) => rx.recv_timeout(timeout).ok(),
        Err(_) => None,
    }
}

/// Whether `enable_cache` makes this a cached path. With `auto` that asks the filesystem (statfs
/// on the share), so it is asked with a timeout; a share that does not answer is a network
/// share.
pub fn decide(config: &Config) -> Decision {
    let (setting, path) = (config.enable_cache, config.remote_path.clone());
    within(SHARE_TIMEOUT, move || detect::decide(setting, &path)).unwrap_or_else(|| Decision {
        cached: true,
        rule: format!(
            "enable_cache: {setting}, and the share did not answer within {} s, so it is treated \
             as a network share",
            SHARE_TIMEOUT.as_secs()
        ),
    })
}

/// The cache of `config`, opened read-only, or why there is none.
pub enum Local {
    /// The cache file and a read-only connection on it.
    Cache {
        /// Its files.
        paths: CachePaths,
        /// Read-only connection.
        conn: Box<Connection>,
    },
    /// No cache (yet): the message says why and what creates one.
    None(String),
}

/// Opens the existing cache of `config` read-only.
pub fn open(config: &Config) -> anyhow::Result<Local> {
    let decision = decide(config);
    if !decision.cached {
        return Ok(Local::None(format!(
            "no cache: {}; reads and writes go directly to the remote database",
            decision.rule
        )));
    }
    let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
    if !paths.db.exists() {
        return Ok(Local::None(no_cache_yet(&paths.db)));
    }
    let conn = read_only(&paths.db)?;
    Ok(Local::Cache {
        paths,
        conn: Box::new(conn),
    })
}

/// The message for a cache that does not exist yet.
pub fn no_cache_yet(db: &Path) -> String {
    format!(
        "no cache yet ({} does not exist): it is created from the remote by the first \
         `sharecache sync`, `sharecache daemon`, or the app's first open",
        db.display()
    )
}

/// A read-only connection on a cache file.
pub fn read_only(db: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_error(db))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql_error(db))?;
    Ok(conn)
}

/// Maps an SQLite error on the cache file to the library's error (exit code 7).
pub fn sql_error(db: &Path) -> impl Fn(rusqlite::Error) -> sharecache::Error + '_ {
    move |e| LocalError::from_sqlite(db, e).into()
}

/// This cache's origin id (to mark "this client" in conflict listings), if readable.
pub fn origin(conn: &Connection) -> Option<String> {
    conn.query_row("SELECT origin FROM sync_state WHERE id = 1", [], |r| {
        r.get(0)
    })
    .ok()
}
