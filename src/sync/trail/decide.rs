//! Deciding the differences of one batch (see the parent module's rule) and applying them: the
//! remote's rows into the cache with the cache's versions kept in the conflict log, or the
//! cache's rows queued to be pushed again.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Ctx, Policy, Reconciled, Start};
use crate::clock::next_clock_sql;
use crate::error::Error;
use crate::remote::store::Keys;
use crate::remote::{Found, RemoteStore, Version};
use crate::sql::rows::Shape;
use crate::sql::{Bind, order_value, row_to_json};
use crate::store::LocalError;
use crate::sync::conflict::{Loser, conflict_record};
use crate::sync::reconcile::Diff;
use crate::sync::write_tx;

/// The differences of one batch, decided.
pub(super) struct Decided {
    /// Diffs where the remote's row goes into the cache, with the remote's version.
    pub remote_wins: Vec<(Diff, Option<Version>)>,
    /// Diffs where the cache's row is pushed again.
    pub cache_wins: Vec<Diff>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn decide(
    local: &Connection,
    remote: &dyn RemoteStore,
    ctx: &Ctx<'_>,
    shape: &Shape,
    start: &Start,
    known: &str,
    policy: Policy,
    diffs: Vec<Diff>,
) -> Result<Decided, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(ctx.local_path, e));
    let pending: HashSet<String> = if policy == Policy::KeepAcknowledged {
        let mut s = local
            .prepare_cached(
                "SELECT 1 FROM sync_tracking WHERE tbl = ?1 AND ord = ?3 AND pk = ?2 AND op != 'X'",
            )
            .map_err(lerr)?;
        let mut set = HashSet::new();
        for d in &diffs {
            let ord = order_value(&d.key);
            if s.exists(params![shape.table, d.pk, Bind::new(&ord)])
                .map_err(lerr)?
            {
                set.insert(d.pk.clone());
            }
        }
        set
    } else {
        HashSet::new()
    };
    let keys: Keys = diffs
        .iter()
        .map(|d| {
            let key = (shape.table.clone(), d.pk.clone());
            (key, (String::new(), ctx.origin.to_string()))
        })
        .collect();
    let found: HashMap<(String, String), Found> =
        remote.newest_versions(start.pruned_rev, &keys)?;
    let mut out = Decided {
        remote_wins: Vec::new(),
        cache_wins: Vec::new(),
    };
    for d in diffs {
        let version = found
            .get(&(shape.table.clone(), d.pk.clone()))
            .map(|f| f.newest.clone());
        match policy {
            Policy::RemoteWins => out.remote_wins.push((d, version)),
            Policy::KeepAcknowledged => {
                if pending.contains(&d.pk) || version.as_ref().is_some_and(|v| v.rev > start.rev) {
                    continue; // the push decides it, or the pull brings the newer version
                }
                match version {
                    Some(v) if v.stamp.as_str() > known => out.remote_wins.push((d, Some(v))),
                    _ => out.cache_wins.push(d),
                }
            }
        }
    }
    Ok(out)
}

/// Keeps the cache's versions in the remote's conflict log, then brings the remote's rows into
/// the cache (capture silenced), leaving alone rows the app changed meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_remote_wins(
    local: &Connection,
    remote: &mut dyn RemoteStore,
    ctx: &Ctx<'_>,
    shape: &Shape,
    policy: Policy,
    known: &str,
    pending_at_start: &HashMap<(String, String), i64>,
    wins: &[(Diff, Option<Version>)],
    out: &mut Reconciled,
) -> Result<(), Error> {
    if wins.is_empty() {
        return Ok(());
    }
    let lerr = |e| Error::Local(LocalError::from_sqlite(ctx.local_path, e));
    // A pending change's stamp is known; an acknowledged version's is not any more.
    let stamps: Vec<String> = {
        let mut s = local
            .prepare_cached(&format!(
                "SELECT {} FROM sync_tracking WHERE tbl = ?1 AND ord = ?3 AND pk = ?2 AND op != 'X'",
                crate::clock::stamp_of_ms_sql("stamp")
            ))
            .map_err(lerr)?;
        wins.iter()
            .map(|(d, _)| {
                let ord = order_value(&d.key);
                s.query_row(params![shape.table, d.pk, Bind::new(&ord)], |r| r.get(0))
                    .optional()
                    .map(|s: Option<String>| s.unwrap_or_else(|| known.to_string()))
            })
            .collect::<rusqlite::Result<_>>()
            .map_err(lerr)?
    };
    let rows: Vec<Option<String>> = wins
        .iter()
        .map(|(d, _)| d.local.as_ref().map(|r| row_to_json(&shape.columns, r)))
        .collect();
    remote.write(&mut |w| {
        for (((d, v), stamp), row) in wins.iter().zip(&stamps).zip(&rows) {
            let winner = v
                .as_ref()
                .map_or(("", ""), |v| (v.stamp.as_str(), v.origin.as_str()));
            let loser = Loser {
                stamp,
                origin: ctx.origin,
                row: row.as_deref(),
            };
            w.log_conflict(&conflict_record(
                (&shape.table, &d.pk),
                winner,
                &loser,
                policy.conflict_reason(),
                (&ctx.now, ctx.origin),
            ))?;
        }
        Ok(())
    })?;
    out.conflicts += wins.len();
    let applied = write_tx(local, |c| {
        c.execute("UPDATE sync_state SET applying = 1", [])?;
        let mut n = 0;
        for (d, _) in wins {
            let seq: Option<i64> = c
                .prepare_cached(
                    "SELECT seq FROM sync_tracking WHERE tbl = ?1 AND ord = ?3 AND pk = ?2 AND op != 'X'",
                )?
                .query_row(
                    params![shape.table, d.pk, Bind::new(&order_value(&d.key))],
                    |r| r.get(0),
                )
                .optional()?;
            let at_start = pending_at_start.get(&(shape.table.clone(), d.pk.clone()));
            match (seq, at_start) {
                (None, _) => {}
                // Declared authoritative: the pending change seen at the start is replaced.
                (Some(s), Some(&s0)) if s == s0 && policy == Policy::RemoteWins => {
                    c.execute(
                        "DELETE FROM sync_tracking WHERE tbl = ?1 AND ord = ?3 AND pk = ?2",
                        params![shape.table, d.pk, Bind::new(&order_value(&d.key))],
                    )?;
                }
                _ => continue, // changed by the app since: its own change decides
            }
            match &d.remote {
                Some(row) => shape.upsert(c, row)?,
                None => shape.delete(c, &d.key)?,
            }
            n += 1;
        }
        c.execute("UPDATE sync_state SET applying = 0", [])?;
        Ok(n)
    })
    .map_err(lerr)?;
    out.pulled += applied;
    Ok(())
}

/// Queues the cache's rows as pending changes with fresh stamps, made against `floor`. A row the
/// app changed meanwhile already has its own pending change, which is kept.
pub(super) fn queue_again(
    local: &Connection,
    shape: &Shape,
    floor: i64,
    again: &[Diff],
) -> rusqlite::Result<()> {
    if again.is_empty() {
        return Ok(());
    }
    write_tx(local, |c| {
        for d in again {
            c.execute(
                &format!(
                    "UPDATE sync_state SET hlc = {}",
                    next_clock_sql("hlc", None)
                ),
                [],
            )?;
            let op = if d.local.is_some() { "U" } else { "D" };
            c.prepare_cached(
                "INSERT OR IGNORE INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) \
                 SELECT ?1, ?2, ?3, ?4, hlc, 1, ?5 FROM sync_state WHERE id = 1",
            )?
            .execute(params![
                shape.table,
                d.pk,
                Bind::new(&order_value(&d.key)),
                op,
                floor
            ])?;
        }
        Ok(())
    })
}
