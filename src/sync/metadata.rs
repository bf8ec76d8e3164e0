//! Sync history: one row per sync run in `sync_metadata`, with start, end, status, rows pushed,
//! rows pulled, conflicts resolved and the error, if any.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// Keep at most this many history rows.
const KEEP: i64 = 1000;

/// One recorded sync run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// Row id.
    pub id: i64,
    /// `sync`, `snapshot`, `rebuild`, `reconcile`, or an event: `new-origin` (this cache found it
    /// is a copy and became a new client), `handover` (a cache's pending writes pushed before
    /// direct mode or another cache took over).
    pub kind: String,
    /// When it started (stamp).
    pub started_at: String,
    /// When it ended, if it did.
    pub finished_at: Option<String>,
    /// `running`, `success`, `failed` or `offline`.
    pub status: String,
    /// Rows pushed.
    pub pushed: i64,
    /// Rows pulled.
    pub pulled: i64,
    /// Conflicts resolved.
    pub conflicts: i64,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// The error, for failed runs.
    pub error: Option<String>,
    /// What a run of a special kind did and why (a `reconcile`: the reason, what it compared and
    /// moved).
    pub note: Option<String>,
}

/// Records the start of a run; returns its id.
pub(crate) fn begin(c: &Connection, kind: &str, started_at: &str) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO sync_metadata (kind, started_at, status) VALUES (?1, ?2, 'running')",
        params![kind, started_at],
    )?;
    Ok(c.last_insert_rowid())
}

/// Figures of a finished run.
pub(crate) struct Figures {
    pub pushed: usize,
    pub pulled: usize,
    pub conflicts: usize,
}

/// Records the end of a run.
pub(crate) fn finish(
    c: &Connection,
    id: i64,
    finished_at: &str,
    duration_ms: u128,
    outcome: Result<&Figures, &Error>,
) -> rusqlite::Result<()> {
    let (status, f, error) = match outcome {
        Ok(f) => ("success", Some(f), None),
        Err(e) if e.kind() == ErrorKind::Offline => ("offline", None, Some(e.to_string())),
        Err(e) => ("failed", None, Some(e.to_string())),
    };
    c.execute(
        "UPDATE sync_metadata SET finished_at = ?2, status = ?3, pushed = ?4, pulled = ?5, conflicts = ?6, \
         duration_ms = ?7, error = ?8 WHERE id = ?1",
        params![
            id,
            finished_at,
            status,
            f.map_or(0, |f| f.pushed as i64),
            f.map_or(0, |f| f.pulled as i64),
            f.map_or(0, |f| f.conflicts as i64),
            duration_ms as i64,
            error
        ],
    )?;
    c.execute("DELETE FROM sync_metadata WHERE id <= ?1", [id - KEEP])?;
    Ok(())
}

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        kind: r.get(1)?,
        started_at: r.get(2)?,
        finished_at: r.get(3)?,
        status: r.get(4)?,
        pushed: r.get(5)?,
        pulled: r.get(6)?,
        conflicts: r.get(7)?,
        duration_ms: r.get(8)?,
        error: r.get(9)?,
        note: r.get(10)?,
    })
}

const COLUMNS: &str = "id, kind, started_at, finished_at, status, pushed, pulled, conflicts, duration_ms, error, note";

/// [`COLUMNS`] as a cache made by an older sharecache, not yet migrated by a sync, has them:
/// `status` and `history` read caches without writing to them.
const COLUMNS_BEFORE_NOTE: &str = "id, kind, started_at, finished_at, status, pushed, pulled, conflicts, duration_ms, error, NULL";

fn columns(c: &Connection) -> rusqlite::Result<&'static str> {
    let has_note: bool = c.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('sync_metadata') WHERE name = 'note'",
        [],
        |r| r.get(0),
    )?;
    Ok(if has_note {
        COLUMNS
    } else {
        COLUMNS_BEFORE_NOTE
    })
}

/// Event runs say what happened, not how the last sync went: status and offline streaks skip them.
const NOT_EVENT: &str = "kind NOT IN ('new-origin', 'handover')";

/// Records an event that is a run of its own kind (finished at once): `new-origin`, `handover`.
pub(crate) fn record_event(
    c: &Connection,
    kind: &str,
    at: &str,
    pushed: i64,
    note: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO sync_metadata (kind, started_at, finished_at, status, pushed, duration_ms, note) \
         VALUES (?1, ?2, ?2, 'success', ?3, 0, ?4)",
        params![kind, at, pushed, note],
    )?;
    Ok(())
}

/// The note of the most recent run of `kind`, if any.
pub fn last_note(c: &Connection, kind: &str) -> rusqlite::Result<Option<String>> {
    Ok(last_of_kind(c, kind)?.and_then(|r| r.note))
}

/// The most recent runs, newest first.
pub fn history(c: &Connection, limit: usize) -> rusqlite::Result<Vec<Run>> {
    c.prepare(&format!(
        "SELECT {} FROM sync_metadata ORDER BY id DESC LIMIT ?1",
        columns(c)?
    ))?
    .query_map([limit as i64], run_from_row)?
    .collect()
}

/// The most recent finished run.
pub fn last_finished(c: &Connection) -> rusqlite::Result<Option<Run>> {
    c.query_row(
        &format!(
            "SELECT {} FROM sync_metadata WHERE status != 'running' AND {NOT_EVENT} \
             ORDER BY id DESC LIMIT 1",
            columns(c)?
        ),
        [],
        run_from_row,
    )
    .optional()
}

/// The most recent finished run of `kind`.
pub fn last_of_kind(c: &Connection, kind: &str) -> rusqlite::Result<Option<Run>> {
    c.query_row(
        &format!(
            "SELECT {} FROM sync_metadata WHERE kind = ?1 AND status != 'running' \
             ORDER BY id DESC LIMIT 1",
            columns(c)?
        ),
        [kind],
        run_from_row,
    )
    .optional()
}

/// Records what a run did and why ([`Run::note`]).
pub(crate) fn note(c: &Connection, id: i64, note: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE sync_metadata SET note = ?2 WHERE id = ?1",
        params![id, note],
    )?;
    Ok(())
}

/// The most recent successful run.
pub fn last_success(c: &Connection) -> rusqlite::Result<Option<Run>> {
    c.query_row(
        &format!(
            "SELECT {} FROM sync_metadata WHERE status = 'success' AND {NOT_EVENT} \
             ORDER BY id DESC LIMIT 1",
            columns(c)?
        ),
        [],
        run_from_row,
    )
    .optional()
}

/// When the current offline streak began: the start of the first of the trailing `offline` runs.
pub fn offline_since(c: &Connection) -> rusqlite::Result<Option<String>> {
    c.query_row(
        &format!(
            "SELECT min(started_at) FROM sync_metadata WHERE status = 'offline' AND id > \
             coalesce((SELECT max(id) FROM sync_metadata WHERE status IN ('success', 'failed') \
             AND {NOT_EVENT}), 0)"
        ),
        [],
        |r| r.get(0),
    )
}
