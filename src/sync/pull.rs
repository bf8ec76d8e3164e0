//! Pull: what other clients (and direct writers) changed since this cache's cursor.
//!
//! Reads the remote change log's tail after `sync_state.pull_rev` in batches (each a short remote
//! read transaction; pushed rows come with their values, a direct write's row is read from its
//! table; a key changed several times in a batch is applied once, at its newest entry), then
//! applies each batch to the cache in short local write transactions with capture silenced. Its
//! own versions are applied like the others (the newest entry of a row decides, and an older one
//! may have been applied from an earlier fetch); a row with a pending local change is left alone —
//! the next push decides it by the same rule and brings the winner back. Each row applied records
//! the version the cache now holds ([`super::versions`]), in the same transaction. Cost grows
//! with the number of changed rows, not with the table size.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::conflict_log;
use super::memory::PageCaches;
use super::versions;
use super::{Progress, failpoint};
use crate::clock::{Clock, parse_stamp};
use crate::error::Error;
use crate::remote::{RemoteStore, Version};
use crate::sql::rows::Shape;
use crate::sql::{decode_key, order_value};
use crate::store::LocalError;

/// What a pull did.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pulled {
    /// Rows written to (or deleted from) the cache.
    pub rows: usize,
    /// Remote changes left for the next push to decide (the row had a pending local change).
    pub deferred: usize,
    /// Conflict-log entries copied into the cache.
    pub conflicts: usize,
    /// Set when this cache fell behind the pruned part of the change log and must be rebuilt.
    pub behind_pruned: bool,
}

/// Context of one pull.
pub(crate) struct PullCtx<'a> {
    pub local_path: &'a std::path::Path,
    pub shapes: &'a HashMap<String, Shape>,
    pub clock: &'a Clock,
    /// Pulled stamps further ahead of the local clock than this are logged.
    pub max_drift: Duration,
    pub batch_size: usize,
    /// Whether to copy the remote's conflict log: no when the fingerprint showed it as the cache
    /// has it and this sync logged nothing there (a record logged since moves the next
    /// fingerprint, so that sync copies it). Saves a remote read per sync that pushes.
    pub copy_conflicts: bool,
}

/// Remote changes applied per local write transaction: about half a millisecond of work, shorter
/// than the first sleep (1 ms) of SQLite's busy handler in the app's connections.
const APPLY_CHUNK: usize = 128;

/// Least time between two local apply transactions: an app writer that found the lock taken
/// retries after 1 ms and must find it free then.
const APPLY_GAP: Duration = Duration::from_micros(1500);

/// When SQLite's default busy handler retries after a failed attempt: its sleeps are 1, 2, 5,
/// 10, 15, 20, 25, 25, 25, 50, 50, 100 ms.
const BUSY_RETRIES_MS: [u64; 12] = [1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228, 328];

/// The pause after a local apply transaction that held the write lock for `hold`. An app writer
/// that failed to get the lock at any moment of the hold retries at fixed offsets after that
/// moment; the first offset at least as long as the hold falls after the hold ended, so the pause
/// lasts at least that offset (plus a margin for the sleeps' overshoot). A usual hold (under
/// 1 ms) gets the 1.5 ms pause and the writer its first retry; a hold stretched to 2 ms by the
/// scheduler gets 3.5 ms, so its writer waits 3 ms, not 18.
fn apply_gap(hold: Duration) -> Duration {
    let offset = BUSY_RETRIES_MS
        .iter()
        .map(|&ms| Duration::from_millis(ms))
        .find(|d| *d >= hold)
        .unwrap_or(hold);
    (offset + Duration::from_micros(500)).max(APPLY_GAP)
}

/// Pulls every remote change after the cache's cursor.
pub(crate) fn pull(
    local: &Connection,
    remote: &mut dyn RemoteStore,
    ctx: &PullCtx<'_>,
    progress: &dyn Progress,
) -> Result<Pulled, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(ctx.local_path, e));
    let mut out = Pulled::default();
    let mut cursor: i64 = local
        .query_row("SELECT pull_rev FROM sync_state", [], |r| r.get(0))
        .map_err(lerr)?;
    let mut carried: Vec<Entry> = Vec::new();
    let mut last_apply: Option<(Instant, Duration)> = None;
    let mut page_caches = PageCaches::default();
    loop {
        let f = remote.changes_since(cursor, ctx.batch_size, ctx.shapes)?;
        if f.behind_pruned {
            out.behind_pruned = true;
            return Ok(out);
        }
        failpoint::hit(failpoint::BEFORE_PULL_APPLY);
        let new_cursor = f
            .tail
            .unwrap_or_else(|| f.entries.last().map_or(cursor, |(v, _)| v.rev))
            .max(cursor);
        // Rows refused earlier go first, unless this batch holds a newer version of them.
        carried.retain(|(old, _)| {
            !f.entries
                .iter()
                .any(|(v, _)| v.tbl == old.tbl && v.pk == old.pk)
        });
        // Short local write transactions with a pause between them, so that app writers waiting
        // in SQLite's busy handler (which sleeps 1, 2, 5, 10, ... ms) find the lock free at an
        // early retry instead of being starved by back-to-back applies (see `apply_gap`). Rows a
        // transaction refuses go first into the next one.
        let mut rest = f.entries.into_iter().peekable();
        loop {
            let mut chunk = std::mem::take(&mut carried);
            chunk.extend(rest.by_ref().take(APPLY_CHUNK));
            let last = rest.peek().is_none();
            let upto = if last {
                new_cursor
            } else {
                chunk.iter().map(|(v, _)| v.rev).fold(cursor, i64::max)
            };
            if let Some((t, gap)) = last_apply {
                let since = t.elapsed();
                if since < gap {
                    std::thread::sleep(gap - since);
                }
            }
            let began = Instant::now();
            let moved = chunk.len();
            let (applied, deferred, refused) = apply(local, chunk, ctx, upto).map_err(lerr)?;
            last_apply = Some((Instant::now(), apply_gap(began.elapsed())));
            page_caches.moved(moved, local, remote);
            out.rows += applied;
            out.deferred += deferred;
            if applied > 0 {
                progress.step("pull", out.rows as u64, 0);
            }
            carried = refused;
            if last {
                break;
            }
        }
        cursor = new_cursor;
        if f.tail.is_some() {
            break;
        }
    }
    if let Some((v, _)) = carried.first() {
        return Err(Error::Local(LocalError::Schema {
            table: v.tbl.clone(),
            message: format!(
                "the remote row {} cannot be applied to the cache: a constraint of the cache's table refuses it \
                 ({} rows refused); it will be retried at the next sync",
                v.pk,
                carried.len()
            ),
        }));
    }
    if ctx.copy_conflicts {
        out.conflicts = conflict_log::copy(local, remote).map_err(|e| match e {
            conflict_log::Either::Local(e) => lerr(e),
            conflict_log::Either::Remote(e) => Error::Remote(e),
        })?;
    }
    Ok(out)
}

/// A pulled entry with the changed row (`None`: deleted or not fetched).
type Entry = (Version, Option<Vec<Value>>);

/// Applies one batch in a local write transaction and moves the cursor. Rows a constraint
/// refuses (a UNIQUE value still held by a row whose own change comes later) are retried after
/// the rest; those still refused are returned, and the cursor stops just below the oldest of them
/// so that a crash re-fetches them. Returns (applied, deferred to the next push, refused).
fn apply(
    c: &Connection,
    entries: Vec<Entry>,
    ctx: &PullCtx<'_>,
    new_cursor: i64,
) -> rusqlite::Result<(usize, usize, Vec<Entry>)> {
    super::write_tx(c, |c| {
        c.execute("UPDATE sync_state SET applying = 1", [])?;
        let (mut applied, mut deferred) = (0, 0);
        let newest = entries.iter().map(|(v, _)| v.stamp.clone()).max();
        // The newest entry of the chunk becomes the cache's trail mark (it is in the remote's log
        // now, whether applied, deferred or refused here).
        if let Some(v) = entries.iter().map(|(v, _)| v).max_by_key(|v| v.rev) {
            super::trail::mark_seen(c, &v.entry_id())?;
        }
        let mut todo = Vec::new();
        for (v, row) in entries {
            // The cache's own versions are applied too: an older version of the row may have been
            // applied from an earlier fetch (the log keeps superseded entries), and the cache must
            // end with the newest. Usually a no-op write; a push moves the cursor past its own
            // revisions when nothing came between, so they are rarely read back at all.
            if !ctx.shapes.contains_key(&v.tbl) {
                continue;
            }
            let key = decode_key(&v.pk).map_err(|m| {
                rusqlite::Error::InvalidColumnName(format!("{} key {}: {m}", v.tbl, v.pk))
            })?;
            let pending: Option<i64> = c
                .prepare_cached(
                    "SELECT 1 FROM sync_tracking WHERE tbl = ?1 AND ord = ?3 AND pk = ?2 AND op != 'X'",
                )?
                .query_row(params![v.tbl, v.pk, order_value(&key)], |r| r.get(0))
                .optional()?;
            if pending.is_some() {
                deferred += 1; // the next push decides it, by the same rule
                continue;
            }
            todo.push((v, row));
        }
        loop {
            let mut refused = Vec::new();
            let attempted = todo.len();
            for (v, row) in todo {
                let shape = &ctx.shapes[&v.tbl];
                let key = decode_key(&v.pk).map_err(|m| {
                    rusqlite::Error::InvalidColumnName(format!("{} key {}: {m}", v.tbl, v.pk))
                })?;
                let written = match &row {
                    Some(values) => shape.upsert(c, values),
                    None => shape.delete(c, &key),
                };
                match written {
                    Ok(()) => {
                        let learned = versions::Learned {
                            stamp: &v.stamp,
                            origin: &v.origin,
                            deleted: row.is_none(),
                            rev: v.rev,
                        };
                        versions::record(c, &v.tbl, &v.pk, &learned)?;
                        applied += 1;
                    }
                    Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                        refused.push((v, row))
                    }
                    Err(e) => return Err(e),
                }
            }
            if refused.is_empty() || refused.len() == attempted {
                if let Some(s) = &newest {
                    observe_stamp(c, s, ctx)?;
                }
                let cursor = refused
                    .iter()
                    .map(|(v, _)| v.rev - 1)
                    .min()
                    .unwrap_or(new_cursor)
                    .min(new_cursor);
                c.execute(
                    "UPDATE sync_state SET applying = 0, pull_rev = max(pull_rev, ?1)",
                    [cursor],
                )?;
                return Ok((applied, deferred, refused));
            }
            todo = refused;
        }
    })
}

/// Moves the hybrid clock past a pulled stamp; logs stamps far ahead of the local clock.
fn observe_stamp(c: &Connection, stamp: &str, ctx: &PullCtx<'_>) -> rusqlite::Result<()> {
    let Some(t) = parse_stamp(stamp) else {
        return Ok(());
    };
    let ahead = t - ctx.clock.now();
    if ahead.to_std().is_ok_and(|a| a > ctx.max_drift) {
        tracing::warn!(
            stamp,
            ahead_secs = ahead.num_seconds(),
            "a pulled stamp is far ahead of this machine's clock (accepted)"
        );
    }
    c.execute(
        "UPDATE sync_state SET hlc = max(hlc, ?1)",
        [t.timestamp_millis()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The busy handler's retries drift late by its sleeps' overshoot; allow this much.
    const OVERSHOOT: Duration = Duration::from_micros(400);

    #[test]
    fn a_writer_that_met_an_apply_at_any_moment_finds_the_lock_free_at_a_retry_before_the_next() {
        for hold_us in [
            50, 600, 999, 1000, 1001, 1800, 2999, 3001, 7500, 17_000, 40_000,
        ] {
            let hold = Duration::from_micros(hold_us);
            let gap = apply_gap(hold);
            for t0_us in (0..hold_us).step_by((hold_us / 97).max(1) as usize) {
                let t0 = Duration::from_micros(t0_us);
                let free = BUSY_RETRIES_MS
                    .iter()
                    .map(|&ms| t0 + Duration::from_millis(ms))
                    .any(|t| t >= hold && t + OVERSHOOT < hold + gap);
                assert!(
                    free,
                    "hold {hold:?}, pause {gap:?}: a writer failing at {t0:?} never finds it free"
                );
            }
        }
    }

    #[test]
    fn a_usual_short_hold_costs_the_least_pause() {
        assert_eq!(apply_gap(Duration::from_micros(600)), APPLY_GAP);
        assert_eq!(
            apply_gap(Duration::from_millis(2)),
            Duration::from_micros(3500)
        );
    }
}
