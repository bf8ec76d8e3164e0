//! The other caches in the cache directory, and what they hold.
//!
//! A cache is found by the remote path it was made for (a hash of the path names its file), but
//! it belongs to a remote *database*: the same database reached by another path (a share that
//! moved, a new server name) would otherwise get a fresh cache, and the old one's pending writes
//! would never be looked at again. So whoever is about to leave a cache behind (a first open
//! under a new path, direct mode, `status`) looks here for caches of the same database
//! (`sync_state.remote_id`) that still hold pending writes. Local files only, read-only.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

/// A cache file in the cache directory, other than the one in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherCache {
    /// The cache file.
    pub cache_path: PathBuf,
    /// The remote path it was made for.
    pub made_for: PathBuf,
    /// The identity of the remote database it was made from.
    pub remote_id: String,
    /// Its local writes not pushed yet.
    pub pending_writes: i64,
}

/// Every readable cache in `dir` except `except` (unreadable files are skipped, with a log line:
/// a damaged cache is the salvage's business, see `crate::handle::salvage`).
pub fn scan(dir: &Path, except: &Path) -> Vec<OtherCache> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<OtherCache> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "db") && p != except)
        .filter_map(|p| match read(&p) {
            Ok(found) => Some(found),
            Err(e) => {
                tracing::debug!(file = %p.display(), error = %e, "not a readable cache; skipped");
                None
            }
        })
        .collect();
    out.sort_by(|a, b| a.cache_path.cmp(&b.cache_path));
    out
}

fn read(db: &Path) -> rusqlite::Result<OtherCache> {
    let c = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(2))?;
    let (remote_id, made_for): (String, String) = c.query_row(
        "SELECT remote_id, remote_path FROM sync_state WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let pending_writes = super::journal::pending(&c)?;
    Ok(OtherCache {
        cache_path: db.to_path_buf(),
        made_for: PathBuf::from(made_for),
        remote_id,
        pending_writes,
    })
}

/// The caches in `dir` (except `except`) holding pending writes for the remote `remote_id`.
pub fn pending_for(dir: &Path, except: &Path, remote_id: &str) -> Vec<OtherCache> {
    scan(dir, except)
        .into_iter()
        .filter(|o| o.remote_id == remote_id && o.pending_writes > 0)
        .collect()
}
