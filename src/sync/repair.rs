//! Recovering the writes made while a table's capture was off (`store::watch` found its
//! triggers missing and reinstalled them).
//!
//! Nothing recorded those writes, so the table itself is the record: [`recover`] compares it
//! with the remote ([`super::reconcile::diff`]) and turns every difference into a pending change
//! in `sync_tracking` — a row only in the cache or different there becomes an upsert, a row only
//! on the remote a delete — pushed by the usual rules (conflicts decided by stamps, the loser kept
//! in the conflict log). Keys the app changed again since the triggers came back already have
//! their entry and are left to it.
//!
//! The rule for each differing key `K` (seen_rev is always the cache's pull cursor):
//! - The remote has no change to `K` after the pull cursor: the remote's row is the one the cache
//!   last pulled, so the difference is the app's. Queued with a fresh stamp.
//! - The remote changed `K` after the pull cursor and the cache has no row: most likely a
//!   remote insert (or update of a row the app deleted) not pulled yet. Not queued: the pull
//!   brings the remote's row. (A delete made while capture was off, of a row someone else changed
//!   since the last pull, is decided in favour of that change, as a stamp comparison would if the
//!   other change were later; the row's content is the remote's, nothing written is lost.)
//! - The remote changed `K` after the pull cursor and the cache has a different row: the
//!   difference may be the remote's change not pulled yet, or the app's, or both. Pulling first
//!   would overwrite an app write without a trace; pushing with a fresh stamp would overwrite a
//!   newer remote version with what may be an old row. So it is queued with seen_rev = the pull
//!   cursor (the push sees the remote's change as concurrent: a conflict, logged) and stamped one
//!   millisecond before the oldest such remote change: the remote's version wins, and the cache's
//!   row is kept in the conflict log (`sharecache conflicts` restores it if it was the app's).
//!
//! Entries already pending for the table may be stale too (a row inserted, then deleted while
//! capture was off, still says "insert"): before the comparison, each pending entry's operation
//! is set from the row as it is now (gone: delete; there: update).
//!
//! A table the app created in the cache and the cache now syncs (`adopt`, see
//! `super::propagate`) was never pulled, so the pull cursor says nothing about it: a row only on
//! the remote is copied into the cache, a row only in the cache is queued as an insert, and a row
//! on both sides that differs is queued with seen_rev 0 and a fresh stamp (every remote version
//! of it is concurrent: the newer stamp wins, the other is kept in the conflict log).

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, params};

use super::reconcile::{self, Diff};
use super::write_tx;
use crate::clock::{ms_of_stamp, next_clock_sql};
use crate::error::Error;
use crate::remote::RemoteStore;
use crate::sql::rows::Shape;
use crate::sql::{decode_key, order_value};
use crate::store::LocalError;

/// Queues every row of `shape`'s table that differs from the remote as a pending change (see
/// the module doc). Returns how many were queued.
pub(crate) fn recover(
    local: &Connection,
    local_path: &Path,
    remote: &dyn RemoteStore,
    shape: &Shape,
    batch: usize,
    adopt: bool,
) -> Result<u64, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(local_path, e));
    let pull_rev: i64 = local
        .query_row("SELECT pull_rev FROM sync_state", [], |r| r.get(0))
        .map_err(lerr)?;
    let unpulled = if adopt {
        HashMap::new()
    } else {
        unpulled(remote, &shape.table, pull_rev)?
    };
    let tick = format!(
        "UPDATE sync_state SET hlc = {}",
        next_clock_sql("hlc", None)
    );
    let mut queued = restate_pending(local, shape).map_err(lerr)?;
    reconcile::diff(
        local,
        local_path,
        remote,
        shape,
        batch,
        |diffs: &[Diff]| {
            write_tx(local, |c| {
            for d in diffs {
                if adopt {
                    match (&d.local, &d.remote) {
                        (None, Some(row)) => shape.upsert(c, row)?,
                        (Some(_), remote_row) => {
                            c.execute(&tick, [])?;
                            let op = if remote_row.is_some() { "U" } else { "I" };
                            queued += c
                                .prepare_cached(
                                    "INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) \
                                     SELECT ?1, ?2, ?3, ?4, hlc, 1, 0 FROM sync_state WHERE true \
                                     ON CONFLICT (tbl, ord, pk) DO UPDATE SET seen_rev = 0",
                                )?
                                .execute(params![shape.table, d.pk, order_value(&d.key), op])?
                                as u64;
                        }
                        (None, None) => {}
                    }
                    continue;
                }
                let remote_first = unpulled.get(&d.pk);
                let (op, stamp) = match (remote_first, &d.local, &d.remote) {
                    (Some(_), None, _) => continue,
                    (Some(first), Some(_), _) => ("U", Some(first - 1)),
                    (None, None, _) => ("D", None),
                    (None, Some(_), None) => ("I", None),
                    (None, Some(_), Some(_)) => ("U", None),
                };
                if stamp.is_none() {
                    c.execute(&tick, [])?;
                }
                queued += c
                    .prepare_cached(
                        "INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) \
                         SELECT ?1, ?2, ?3, ?4, coalesce(?5, hlc), 1, pull_rev FROM sync_state WHERE true \
                         ON CONFLICT (tbl, ord, pk) DO UPDATE SET op = excluded.op, stamp = excluded.stamp, \
                         seq = seq + 1, seen_rev = excluded.seen_rev WHERE op = 'X'",
                    )?
                    .execute(params![
                        shape.table,
                        d.pk,
                        order_value(&d.key),
                        op,
                        stamp
                    ])? as u64;
            }
            Ok(())
        })
        .map_err(lerr)
        },
    )?;
    Ok(queued)
}

/// Sets each pending entry of `shape`'s table to what its row is now: a delete if the row is
/// gone, an update if it is there but the entry says delete. Returns how many changed.
fn restate_pending(local: &Connection, shape: &Shape) -> rusqlite::Result<u64> {
    let entries: Vec<(String, String)> = local
        .prepare("SELECT pk, op FROM sync_tracking WHERE tbl = ?1 AND op != 'X'")?
        .query_map([&shape.table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut changed = 0;
    for chunk in entries.chunks(500) {
        changed += write_tx(local, |c| {
            let mut n = 0;
            for (pk, op) in chunk {
                let Ok(key) = decode_key(pk) else { continue };
                let there = shape.select(c, &key)?.is_some();
                let now = match (op.as_str(), there) {
                    ("I" | "U", false) => "D",
                    ("D", true) => "U",
                    _ => continue,
                };
                n += c.execute(
                    "UPDATE sync_tracking SET op = ?3, seq = seq + 1 WHERE tbl = ?1 AND ord = ?4 AND pk = ?2",
                    params![shape.table, pk, now, order_value(&key)],
                )? as u64;
            }
            Ok(n)
        })?;
    }
    Ok(changed)
}

/// For each key of `table` changed on the remote after `pull_rev`, the oldest such change's
/// stamp in milliseconds.
fn unpulled(
    remote: &dyn RemoteStore,
    table: &str,
    pull_rev: i64,
) -> Result<HashMap<String, i64>, Error> {
    Ok(remote
        .first_changes_since(table, pull_rev)?
        .into_iter()
        // A stamp that cannot be read still marks the key as changed remotely.
        .map(|(pk, stamp)| (pk, ms_of_stamp(&stamp).unwrap_or(i64::MIN + 1)))
        .collect())
}
