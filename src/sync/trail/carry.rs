//! What a reconcile pushes again: the cache's rows the remote lost, and its acknowledged deletes
//! the remote's log lost (tombstones, [`crate::sync::versions`]), queued as pending changes.
//!
//! A version the cache holds by name is queued under its own stamp (the outbox pushes it under
//! its own origin too, [`crate::sync::outbox::Change::born`]): the push then decides it against
//! what other clients carry back by the newest-stamp rule, as if the restore had never happened,
//! and logs the loser. A version of unknown name (a row copied by a snapshot, or synced before
//! the cache kept versions) is queued with a fresh stamp, as a new edit of this cache.
//!
//! Before anything is carried, the remote's revision counter is moved past every revision this
//! cache knows the remote had reached ([`move_past`]): a version carried back at the very revision
//! it had would let a client whose trail mark is that entry find its mark intact, and miss the
//! versions written below it since the restore (found by the convergence test's restore step).
//!
//! Why tombstones need a pass of their own: the keyed comparison sees rows, and an acknowledged
//! delete leaves none. When the remote was put back to a copy older than a row's insert, the
//! client that deleted it finds the cache and the remote agreeing, while a client that still holds
//! the row finds it missing on the remote and pushes it again: the delete must be pushed again
//! too, or the row comes back with no trace of it.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, params};

use super::{Ctx, Start};
use crate::clock::{ms_of_stamp, next_clock_sql};
use crate::error::Error;
use crate::remote::store::Keys;
use crate::remote::{Found, RemoteStore};
use crate::sql::rows::Shape;
use crate::sql::{Bind, decode_key, order_value};
use crate::store::LocalError;
use crate::sync::reconcile::Diff;
use crate::sync::versions::{self, Held};
use crate::sync::write_tx;

/// Moves the remote's revision counter to `known` if it is below (an empty stretch of the change
/// log, which pulls step over), so that every version this cache carries again lands above the
/// revision it had ([`crate::sync::versions::revision_known`]). One remote write, only when the
/// remote went back below what this cache knew.
pub(super) fn move_past(remote: &mut dyn RemoteStore, known: i64) -> Result<(), Error> {
    if remote.head()?.rev >= known {
        return Ok(());
    }
    remote.write(&mut |w| w.skip_to(known))?;
    tracing::info!(
        rev = known,
        "moved the restored change log's revision past what this cache had seen"
    );
    Ok(())
}

/// Queues the cache's rows (or their absence) as pending changes made against `floor`: under the
/// held version's stamp when known, else with a fresh stamp. A row the app changed meanwhile
/// already has its own pending change, which is kept.
pub(super) fn queue_again(
    local: &Connection,
    shape: &Shape,
    floor: i64,
    again: &[(Diff, Option<Held>)],
) -> rusqlite::Result<()> {
    if again.is_empty() {
        return Ok(());
    }
    write_tx(local, |c| {
        for (d, held) in again {
            let op = if d.local.is_some() { "U" } else { "D" };
            queue(c, shape, &d.pk, &d.key, op, held.as_ref(), floor)?;
        }
        Ok(())
    })
}

/// One pending entry: stamped with `held`'s stamp (milliseconds, as `sync_tracking` keeps them;
/// the outbox finds the exact stamp and origin again in `sync_row_versions`), or the next clock value.
fn queue(
    c: &Connection,
    shape: &Shape,
    pk: &str,
    key: &[rusqlite::types::Value],
    op: &str,
    held: Option<&Held>,
    floor: i64,
) -> rusqlite::Result<()> {
    let ms = held.and_then(|h| ms_of_stamp(&h.stamp));
    if ms.is_none() {
        c.execute(
            &format!(
                "UPDATE sync_state SET hlc = {}",
                next_clock_sql("hlc", None)
            ),
            [],
        )?;
    }
    c.prepare_cached(
        "INSERT OR IGNORE INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) \
         SELECT ?1, ?2, ?3, ?4, coalesce(?6, hlc), 1, ?5 FROM sync_state WHERE id = 1",
    )?
    .execute(params![
        shape.table,
        pk,
        Bind::new(&order_value(key)),
        op,
        floor,
        ms
    ])?;
    Ok(())
}

/// Queues again, as deletes under their own stamps, the cache's tombstones of `shape`'s table the
/// remote's log lost: keys the comparison found equal on both sides (`differing` are decided
/// already), absent from the cache, without a pending change, whose delete the log after
/// `start.pruned_rev` neither holds nor has a newer version of. Returns how many.
pub(super) fn lost_tombstones(
    local: &Connection,
    remote: &dyn RemoteStore,
    ctx: &Ctx<'_>,
    shape: &Shape,
    start: &Start,
    floor: i64,
    differing: &HashSet<String>,
) -> Result<usize, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(ctx.local_path, e));
    let mut candidates: Vec<(String, Vec<rusqlite::types::Value>, Held)> = Vec::new();
    for (pk, held) in versions::tombstones(local, &shape.table).map_err(lerr)? {
        if differing.contains(&pk) {
            continue;
        }
        let Ok(key) = decode_key(&pk) else { continue };
        let pending = local
            .prepare_cached("SELECT 1 FROM sync_tracking WHERE tbl = ?1 AND ord = ?3 AND pk = ?2")
            .and_then(|mut s| s.exists(params![shape.table, pk, Bind::new(&order_value(&key))]))
            .map_err(lerr)?;
        // A row the cache has after all (written while capture was off) is not deleted here.
        if pending || shape.select(local, &key).map_err(lerr)?.is_some() {
            continue;
        }
        candidates.push((pk, key, held));
    }
    let mut lost = Vec::new();
    for chunk in candidates.chunks(super::BATCH) {
        let keys: Keys = chunk
            .iter()
            .map(|(pk, _, h)| {
                let at = (shape.table.clone(), pk.clone());
                (at, (h.stamp.clone(), h.origin.clone()))
            })
            .collect();
        let found: HashMap<(String, String), Found> =
            remote.newest_versions(start.pruned_rev, &keys)?;
        for (pk, key, held) in chunk {
            let kept = found
                .get(&(shape.table.clone(), pk.clone()))
                .is_some_and(|f| {
                    f.mine_logged
                        || (&f.newest.stamp, &f.newest.origin) > (&held.stamp, &held.origin)
                });
            if !kept {
                lost.push((pk, key, held));
            }
        }
    }
    if !lost.is_empty() {
        write_tx(local, |c| {
            for (pk, key, held) in &lost {
                queue(c, shape, pk, key, "D", Some(held), floor)?;
            }
            Ok(())
        })
        .map_err(lerr)?;
    }
    Ok(lost.len())
}
