//! Pull: what other clients (and direct writers) changed since this cache's cursor.
//!
//! Reads the remote change log after `sync_state.pull_rev` in batches (each a short remote read
//! transaction that also reads the changed rows), then applies each batch to the cache in one
//! short local write transaction with capture silenced. Its own changes are skipped; a row with a
//! pending local change is left alone — the next push decides it by the same rule and brings the
//! winner back. Cost grows with the number of changed rows, not with the table size.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::Shape;
use super::{Progress, failpoint};
use crate::cache::LocalError;
use crate::clock::{Clock, parse_stamp};
use crate::error::Error;
use crate::remote::Remote;
use crate::remote::changelog::{self, Version};
use crate::sql::decode_key;

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

struct Fetched {
    entries: Vec<(Version, Option<Vec<Value>>)>,
    /// Remote rev to set the cursor to when the log is exhausted.
    tail: Option<i64>,
    behind_pruned: bool,
}

/// Context of one pull.
pub(crate) struct PullCtx<'a> {
    pub local_path: &'a std::path::Path,
    pub shapes: &'a HashMap<String, Shape>,
    pub origin: &'a str,
    pub clock: &'a Clock,
    /// Pulled stamps further ahead of the local clock than this are logged.
    pub max_drift: std::time::Duration,
    pub batch_size: usize,
}

/// Pulls every remote change after the cache's cursor.
pub(crate) fn pull(
    local: &Connection,
    remote: &mut Remote,
    ctx: &PullCtx<'_>,
    progress: &dyn Progress,
) -> Result<Pulled, Error> {
    let PullCtx {
        local_path,
        shapes,
        origin,
        clock,
        max_drift,
        batch_size,
    } = *ctx;
    let lerr = |e| Error::Local(LocalError::from_sqlite(local_path, e));
    let mut out = Pulled::default();
    let mut cursor: i64 = local
        .query_row("SELECT pull_rev FROM sync_state", [], |r| r.get(0))
        .map_err(lerr)?;
    loop {
        let f = remote.read(|c| fetch(c, cursor, batch_size, shapes, origin))?;
        if f.behind_pruned {
            out.behind_pruned = true;
            return Ok(out);
        }
        failpoint::hit(failpoint::BEFORE_PULL_APPLY);
        let new_cursor = f
            .tail
            .unwrap_or_else(|| f.entries.last().map_or(cursor, |(v, _)| v.rev))
            .max(cursor);
        let (applied, deferred) = apply(
            local, &f.entries, shapes, origin, new_cursor, clock, max_drift,
        )
        .map_err(lerr)?;
        out.rows += applied;
        out.deferred += deferred;
        if applied > 0 {
            progress.step("pull", out.rows as u64, 0);
        }
        cursor = new_cursor;
        if f.tail.is_some() {
            break;
        }
    }
    out.conflicts = copy_conflicts(local, remote).map_err(|e| match e {
        Either::Local(e) => lerr(e),
        Either::Remote(e) => Error::Remote(e),
    })?;
    Ok(out)
}

fn fetch(
    c: &Connection,
    cursor: i64,
    limit: usize,
    shapes: &HashMap<String, Shape>,
    origin: &str,
) -> rusqlite::Result<Fetched> {
    let pruned: i64 = c.query_row(
        "SELECT pruned_rev FROM sharecache_meta WHERE id = 1",
        [],
        |r| r.get(0),
    )?;
    if cursor < pruned {
        return Ok(Fetched {
            entries: vec![],
            tail: None,
            behind_pruned: true,
        });
    }
    let log = changelog::since(c, cursor, limit)?;
    let tail = if log.len() < limit {
        Some(
            c.query_row("SELECT rev FROM sharecache_meta WHERE id = 1", [], |r| {
                r.get(0)
            })?,
        )
    } else {
        None
    };
    let mut entries = Vec::with_capacity(log.len());
    for v in log {
        let row = match shapes.get(&v.tbl) {
            Some(shape) if v.origin != origin && !v.deleted => {
                let key = decode_key(&v.pk).map_err(|m| {
                    rusqlite::Error::InvalidColumnName(format!("{} key {}: {m}", v.tbl, v.pk))
                })?;
                shape.select(c, &key)?
            }
            _ => None,
        };
        entries.push((v, row));
    }
    Ok(Fetched {
        entries,
        tail,
        behind_pruned: false,
    })
}

fn apply(
    c: &Connection,
    entries: &[(Version, Option<Vec<Value>>)],
    shapes: &HashMap<String, Shape>,
    origin: &str,
    new_cursor: i64,
    clock: &Clock,
    max_drift: std::time::Duration,
) -> rusqlite::Result<(usize, usize)> {
    super::write_tx(c, |c| {
        c.execute("UPDATE sync_state SET applying = 1", [])?;
        let (mut applied, mut deferred) = (0, 0);
        let mut newest: Option<&str> = None;
        for (v, row) in entries {
            newest = newest.max(Some(v.stamp.as_str()));
            let Some(shape) = shapes.get(&v.tbl) else {
                continue;
            };
            if v.origin == origin {
                continue;
            }
            let pending: Option<i64> = c
                .prepare_cached(
                    "SELECT 1 FROM sync_tracking WHERE tbl = ?1 AND pk = ?2 AND op != 'X'",
                )?
                .query_row(params![v.tbl, v.pk], |r| r.get(0))
                .optional()?;
            if pending.is_some() {
                deferred += 1;
                continue;
            }
            let key = decode_key(&v.pk).map_err(|m| {
                rusqlite::Error::InvalidColumnName(format!("{} key {}: {m}", v.tbl, v.pk))
            })?;
            match row {
                Some(values) => shape.upsert(c, values)?,
                None => shape.delete(c, &key)?,
            }
            applied += 1;
        }
        if let Some(s) = newest {
            if let Some(t) = parse_stamp(s) {
                let ahead = t - clock.now();
                if ahead.to_std().is_ok_and(|a| a > max_drift) {
                    tracing::warn!(
                        stamp = s,
                        ahead_secs = ahead.num_seconds(),
                        "a pulled stamp is far ahead of this machine's clock (accepted)"
                    );
                }
            }
            c.execute("UPDATE sync_state SET hlc = max(hlc, ?1)", [s])?;
        }
        c.execute(
            "UPDATE sync_state SET applying = 0, pull_rev = ?1",
            [new_cursor],
        )?;
        Ok((applied, deferred))
    })
}

enum Either {
    Local(rusqlite::Error),
    Remote(crate::remote::RemoteError),
}

/// Copies new remote conflict-log entries into the cache's `sync_conflicts`.
fn copy_conflicts(local: &Connection, remote: &Remote) -> Result<usize, Either> {
    let after: i64 = local
        .query_row("SELECT coalesce(max(id), 0) FROM sync_conflicts", [], |r| {
            r.get(0)
        })
        .map_err(Either::Local)?;
    type Row = (
        i64,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        String,
        String,
        String,
    );
    let rows: Vec<Row> = remote
        .read(|c| {
            c.prepare_cached(
                "SELECT id, tbl, pk, winner_stamp, winner_origin, loser_stamp, loser_origin, loser_op, loser_row, \
                 decided_at, decided_by, reason FROM sharecache_conflicts WHERE id > ?1 ORDER BY id",
            )?
            .query_map([after], |r| {
                Ok((
                    r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?,
                    r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?,
                ))
            })?
            .collect()
        })
        .map_err(Either::Remote)?;
    if rows.is_empty() {
        return Ok(0);
    }
    super::write_tx(local, |tx| {
        for r in &rows {
            tx.execute(
            "INSERT OR IGNORE INTO sync_conflicts (id, tbl, pk, winner_stamp, winner_origin, loser_stamp, loser_origin, \
             loser_op, loser_row, decided_at, decided_by, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11],
            )?;
        }
        Ok(())
    })
    .map_err(Either::Local)?;
    Ok(rows.len())
}
