//! Salvage: before giving up on a cache that cannot work (corrupt, disk full, deleted, read-only),
//! push every pending write that can still be read, say what could not be, and keep the damaged
//! file aside instead of deleting it. Reading needs nothing written locally, so it works on a
//! full disk and on a read-only file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::schema::{self, Sync};
use crate::store::CachePaths;
use crate::sync::{PushCtx, Shape, push_unacknowledged, read_salvageable};

/// What a salvage did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Salvaged {
    /// Pending writes read from the damaged cache.
    pub found: usize,
    /// Pending writes delivered to the remote (written, or kept in its conflict log if a newer
    /// version was already there).
    pub pushed: usize,
    /// Pending writes that could not be read (or pushed).
    pub lost: usize,
    /// Where the damaged cache file was moved.
    pub kept_at: Option<PathBuf>,
    /// What went wrong, if anything.
    pub problems: Vec<String>,
}

impl Salvaged {
    /// One sentence for `status` and logs, after the cause: what was pushed, what could not be,
    /// where the damaged file is kept and what happens next.
    pub fn summary(&self) -> String {
        let unreadable = self.problems.iter().any(|p| p == LIST_UNREADABLE);
        let mut s = if unreadable && self.found == 0 {
            format!("nothing salvaged: {LIST_UNREADABLE}")
        } else {
            format!(
                "salvaged {} of {} pending writes",
                self.pushed,
                self.found + self.lost
            )
        };
        if self.lost > 0 {
            s.push_str(&format!(" ({} could not be read or pushed)", self.lost));
        }
        for p in self.problems.iter().filter(|p| *p != LIST_UNREADABLE) {
            s.push_str("; ");
            s.push_str(p);
        }
        match &self.kept_at {
            Some(p) => s.push_str(&format!(
                "; the damaged cache kept at {} (writes not salvaged may still be read from it); the next open makes a new cache from the remote",
                p.display()
            )),
            None => s.push_str("; the next open makes a new cache from the remote"),
        }
        s
    }
}

/// The problem named when not even the list of pending writes could be read.
const LIST_UNREADABLE: &str = "the list of pending writes could not be read";

/// Salvages from `conn` (the engine's connection when the cache failed at run time: it still
/// reads a file that was deleted), or from the file at `paths.db`, then moves the file aside.
pub(crate) fn salvage(
    conn: Option<&Connection>,
    paths: &CachePaths,
    config: &Config,
    clock: &Clock,
) -> Salvaged {
    let mut s = Salvaged::default();
    read_and_push(conn, paths, config, clock, &mut s);
    // After the connection opened here is closed: Windows cannot rename a file SQLite has open.
    s.kept_at = set_aside(&paths.db, clock);
    tracing::warn!(summary = %s.summary(), "salvaged the cache");
    s
}

fn read_and_push(
    conn: Option<&Connection>,
    paths: &CachePaths,
    config: &Config,
    clock: &Clock,
    s: &mut Salvaged,
) {
    let opened;
    let conn = match conn {
        Some(c) => Some(c),
        None if paths.db.exists() => match open_for_reading(&paths.db) {
            Ok(c) => {
                opened = c;
                Some(&opened)
            }
            Err(e) => {
                s.problems
                    .push(format!("the cache file cannot be opened: {e}"));
                None
            }
        },
        None => None,
    };
    if let Some(c) = conn {
        if let Err(e) = push_pending(c, &paths.db, config, clock, s) {
            if s.found == 0 {
                // The list itself could not be read, or the remote refused before counting.
                match crate::store::journal::pending(c) {
                    Ok(n) => s.lost += n as usize,
                    Err(_) => s.problems.push(LIST_UNREADABLE.into()),
                }
            } else {
                s.lost += s.found - s.pushed.min(s.found);
            }
            // A failure to read the cache repeats the cause the caller names already.
            if !matches!(e, Error::Local(_)) {
                s.problems
                    .push(format!("pending writes could not be pushed: {e}"));
            } else if !s.problems.iter().any(|p| p == LIST_UNREADABLE) {
                s.problems
                    .push("some pending writes could not be read".into());
            }
        }
    }
}

/// Opens the cache file only to read it. A WAL database needs its `-shm` file, which cannot be
/// created on a read-only filesystem: then it is opened as immutable (no locks, no shared memory),
/// which reads what was checkpointed into the file — all of it after a clean close.
fn open_for_reading(db: &Path) -> rusqlite::Result<Connection> {
    let plain = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let readable = plain.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    });
    match readable {
        Ok(_) => Ok(plain),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) => {
            drop(plain);
            let mut uri = url_path(db);
            uri.push_str("?immutable=1");
            tracing::warn!(cache = %db.display(), "the cache cannot be opened normally ({e}); reading it as immutable");
            Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )
        }
        Err(_) => Ok(plain),
    }
}

/// `file:` URI of a path: every byte but unreserved ASCII and `/` percent-encoded (SQLite decodes
/// them back).
fn url_path(p: &Path) -> String {
    let mut out = String::from("file:");
    for b in p.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn push_pending(
    c: &Connection,
    db: &Path,
    config: &Config,
    clock: &Clock,
    s: &mut Salvaged,
) -> Result<(), Error> {
    let local_err = |e: rusqlite::Error| {
        Error::Local(crate::store::LocalError::Corrupt {
            path: db.to_path_buf(),
            detail: e.to_string(),
        })
    };
    let (origin, remote_id): (String, String) = c
        .query_row(
            "SELECT origin, remote_id FROM sync_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(local_err)?;
    let mut remote = crate::remote::open(config, &origin)?;
    remote.check_identity(&remote_id)?;
    let remote_tables = remote.schema()?.entries;
    let local_tables = schema::read(c).map_err(local_err)?;
    let mut shapes = HashMap::new();
    for l in local_tables.iter().filter(|e| e.sync == Sync::Yes) {
        if let Some(r) = remote_tables
            .iter()
            .find(|r| r.table.name == l.table.name && r.table.pk == l.table.pk)
        {
            shapes.insert(l.table.name.clone(), Shape::new(&l.table, &r.table));
        }
    }
    let (changes, unreadable) = read_salvageable(c, &shapes).map_err(local_err)?;
    s.found = changes.len();
    s.lost += unreadable;
    // A damaged cache may not hold its former origins readably: its changes then go out under
    // its current one (any clash with the original's versions is decided and logged).
    let lineage = crate::sync::Lineage::read(c).unwrap_or_default();
    let ctx = PushCtx {
        origin: &origin,
        lineage: &lineage,
        now: clock.now_stamp(),
        // The damaged cache is set aside for good: this client needs no tombstone any more and
        // must not hold back pruning.
        pulled_rev: i64::MAX,
        host: crate::platform::host_name(),
        batch_size: config.batch_size,
    };
    push_unacknowledged(remote.as_mut(), &changes, &shapes, &ctx)?;
    // Every change was decided at the remote: written, or kept in its conflict log.
    s.pushed = changes.len();
    Ok(())
}

/// Moves a damaged cache file (and its WAL files) aside; returns where.
fn set_aside(db: &Path, clock: &Clock) -> Option<PathBuf> {
    if !db.exists() {
        return None;
    }
    let suffix = format!(".damaged-{}", clock.now().format("%Y%m%dT%H%M%S"));
    let target = PathBuf::from(format!("{}{suffix}", db.display()));
    if let Err(e) = std::fs::rename(db, &target) {
        tracing::error!(error = %e, cache = %db.display(), "could not move the damaged cache aside");
        return None;
    }
    for ext in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{ext}", db.display()));
        if from.exists() {
            let _ = std::fs::rename(&from, format!("{}{ext}", target.display()));
        }
    }
    Some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_escape_what_sqlite_would_read_as_uri_syntax() {
        assert_eq!(
            url_path(Path::new("/c/a b?#%é.db")),
            "file:/c/a%20b%3F%23%25%C3%A9.db"
        );
    }
}
