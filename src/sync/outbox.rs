//! The outbox: pending local changes in `sync_tracking`, read in batches with their row data
//! (one short local read transaction per batch), and acknowledged after the remote commit (one
//! short local write transaction), only for rows not changed again meanwhile.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::Shape;
use crate::sql::decode_key;

/// One pending change with the row's current data.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub tbl: String,
    pub pk: String,
    pub key: Vec<Value>,
    /// The row to write (`columns` order of the table's shape), or `None` for a delete.
    pub row: Option<Vec<Value>>,
    pub stamp: String,
    pub seq: i64,
    pub seen_rev: i64,
}

/// One `sync_tracking` row: table, key, op, stamp, seq, seen_rev.
type Entry = (String, String, String, String, i64, i64);

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// Reads every pending change it can from a cache that may be damaged, row by row, skipping
/// what cannot be read. Returns the changes and how many entries could not be read.
pub(crate) fn read_salvageable(
    c: &Connection,
    shapes: &HashMap<String, Shape>,
) -> rusqlite::Result<(Vec<Change>, usize)> {
    let entries: Vec<rusqlite::Result<Entry>> = c
        .prepare("SELECT tbl, pk, op, stamp, seq, seen_rev FROM sync_tracking WHERE op != 'X' ORDER BY tbl, pk")?
        .query_map([], entry)?
        .collect();
    let (mut out, mut unreadable) = (Vec::new(), 0);
    for entry in entries {
        let Ok((tbl, pk, op, stamp, seq, seen_rev)) = entry else {
            unreadable += 1;
            continue;
        };
        let (Some(shape), Ok(key)) = (shapes.get(&tbl), decode_key(&pk)) else {
            unreadable += 1;
            continue;
        };
        let row = if op == "D" {
            None
        } else {
            match shape.select(c, &key) {
                Ok(Some(row)) => Some(row),
                // Not found by its key (never pushed as a delete), or unreadable.
                Ok(None) | Err(_) => {
                    unreadable += 1;
                    continue;
                }
            }
        };
        out.push(Change {
            tbl,
            pk,
            key,
            row,
            stamp,
            seq,
            seen_rev,
        });
    }
    Ok((out, unreadable))
}

/// What the remote did with a change.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Written by this push.
    Applied,
    /// Already on the remote (written by an earlier push whose acknowledgement was lost).
    AlreadyThere,
    /// A newer concurrent remote version won: apply it locally (`None`: the row is deleted).
    Lost {
        winner: Option<Vec<Value>>,
        stamp: String,
    },
}

/// Number of pending changes (excluding internal markers).
pub(crate) fn pending(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT count(*) FROM sync_tracking WHERE op != 'X'",
        [],
        |r| r.get(0),
    )
}

/// The revision this client still needs tombstones above: its pull cursor `pull_rev`, or lower,
/// the oldest revision a pending change was made against (a change made against rev 5 must meet
/// a delete logged at rev 6 to be decided against it, even after the cursor moved past it).
pub(crate) fn horizon(c: &Connection, pull_rev: i64) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT min(?1, coalesce(min(seen_rev), ?1)) FROM sync_tracking WHERE op != 'X'",
        [pull_rev],
        |r| r.get(0),
    )
}

/// One batch read from the outbox.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The changes, with row data.
    pub changes: Vec<Change>,
    /// The key to continue after.
    pub next_after: (String, String),
    /// Whether the outbox has no entries after this batch.
    pub exhausted: bool,
    /// Entries left pending because their table cannot be pushed now.
    pub unpushable: usize,
}

/// Reads up to `limit` pending changes after key `after`, with their rows, in one read
/// transaction. Changes of tables without a shape (not synced right now) are left pending.
pub(crate) fn read_batch(
    c: &Connection,
    shapes: &HashMap<String, Shape>,
    after: &(String, String),
    limit: usize,
) -> rusqlite::Result<Batch> {
    c.execute_batch("BEGIN")?;
    let r = (|| {
        let mut s = c.prepare_cached(
            "SELECT tbl, pk, op, stamp, seq, seen_rev FROM sync_tracking \
             WHERE op != 'X' AND (tbl, pk) > (?1, ?2) ORDER BY tbl, pk LIMIT ?3",
        )?;
        let entries: Vec<Entry> = s
            .query_map(params![after.0, after.1, limit as i64], entry)?
            .collect::<Result<_, _>>()?;
        let exhausted = entries.len() < limit;
        let next_after = entries
            .last()
            .map(|e| (e.0.clone(), e.1.clone()))
            .unwrap_or_else(|| after.clone());
        let mut out = Vec::with_capacity(entries.len());
        let mut unpushable = 0;
        for (tbl, pk, op, stamp, seq, seen_rev) in entries {
            let Some(shape) = shapes.get(&tbl) else {
                unpushable += 1;
                continue;
            };
            let key = decode_key(&pk)
                .map_err(|m| rusqlite::Error::InvalidColumnName(format!("{tbl} key {pk}: {m}")))?;
            let row = if op == "D" {
                None
            } else {
                match shape.select(c, &key)? {
                    Some(row) => Some(row),
                    None => {
                        // The capture saw this row written, and a delete would have changed the
                        // entry: the key does not find it. Never push that as a delete.
                        tracing::warn!(table = %tbl, key = %pk, "a pending row cannot be found by its key; left pending");
                        unpushable += 1;
                        continue;
                    }
                }
            };
            out.push(Change {
                tbl,
                pk,
                key,
                row,
                stamp,
                seq,
                seen_rev,
            });
        }
        Ok(Batch {
            changes: out,
            next_after,
            exhausted,
            unpushable,
        })
    })();
    c.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    r
}

/// A row deleted while its insert was being pushed: the capture coalesced insert and delete
/// into nothing to push and dropped the entry, but the insert has reached the remote now. Queue
/// the delete again (stamped now: after the insert), so the remote loses the row too.
fn requeue_vanished_delete(c: &Connection, shape: &Shape, ch: &Change) -> rusqlite::Result<()> {
    let entry: Option<String> = c
        .prepare_cached("SELECT op FROM sync_tracking WHERE tbl = ?1 AND pk = ?2")?
        .query_row(params![ch.tbl, ch.pk], |r| r.get(0))
        .optional()?;
    if entry.is_none() && shape.select(c, &ch.key)?.is_none() {
        c.prepare_cached(
            "INSERT INTO sync_tracking (tbl, pk, op, stamp, seq, seen_rev) \
             SELECT ?1, ?2, 'D', hlc, 1, pull_rev FROM sync_state",
        )?
        .execute(params![ch.tbl, ch.pk])?;
    }
    Ok(())
}

/// What one remote transaction of a push did.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    /// Per change of the batch, in order.
    pub outcomes: Vec<Outcome>,
    /// The change-log revision before the transaction and after it: the revisions in between
    /// are this batch's own versions.
    pub revs: (i64, i64),
}

/// Acknowledges pushed changes in one local write transaction: entries whose row was not changed
/// again are removed, and for lost changes the winning remote version is applied (without
/// capture). Also drops stale `X` markers. When the batch's revisions directly follow the pull
/// cursor, the cursor moves past them: nothing in between needs pulling, since it is this
/// cache's own writes. Returns how many winners were applied.
pub(crate) fn acknowledge(
    c: &Connection,
    shapes: &HashMap<String, Shape>,
    batch: &[Change],
    applied: &Applied,
) -> rusqlite::Result<usize> {
    let outcomes = &applied.outcomes;
    let batch_base = applied.revs.0;
    super::write_tx(c, |c| {
        c.execute(
            "UPDATE sync_state SET pull_rev = ?2 WHERE pull_rev = ?1",
            params![applied.revs.0, applied.revs.1],
        )?;
        c.execute("UPDATE sync_state SET applying = 1", [])?;
        let mut applied = 0;
        let mut newest: Option<&str> = None;
        for (ch, outcome) in batch.iter().zip(outcomes) {
            let removed = c
                .prepare_cached(
                    "DELETE FROM sync_tracking WHERE tbl = ?1 AND pk = ?2 AND seq = ?3",
                )?
                .execute(params![ch.tbl, ch.pk, ch.seq])?;
            if removed == 0 && ch.row.is_some() {
                requeue_vanished_delete(c, &shapes[&ch.tbl], ch)?;
            }
            if removed == 0 && matches!(outcome, Outcome::Applied) {
                // Changed again while this version was being pushed: the new change was made on
                // top of the version this push wrote, decided against everything before this
                // batch. Only what comes after can be concurrent with it. (Not for a version an
                // earlier push wrote: what came since may have superseded it.) (Kept at the first
                // change's cursor, the push's search and the registry's horizon would reach
                // back to it for as long as the app keeps editing the row.)
                c.prepare_cached(
                    "UPDATE sync_tracking SET seen_rev = max(seen_rev, ?3) WHERE tbl = ?1 AND pk = ?2",
                )?
                .execute(params![ch.tbl, ch.pk, batch_base])?;
            }
            if let Outcome::Lost { winner, stamp } = outcome {
                newest = newest.max(Some(stamp.as_str()));
                if removed == 1 {
                    let shape = &shapes[&ch.tbl];
                    match winner {
                        Some(row) => shape.upsert(c, row)?,
                        None => shape.delete(c, &ch.key)?,
                    }
                    applied += 1;
                }
            }
        }
        if let Some(s) = newest {
            c.execute("UPDATE sync_state SET hlc = max(hlc, ?1)", [s])?;
        }
        c.execute("DELETE FROM sync_tracking WHERE op = 'X'", [])?;
        c.execute("UPDATE sync_state SET applying = 0", [])?;
        Ok(applied)
    })
}
