//! Deciding the differences of one batch (see the parent module's rule) and applying the
//! remote's winning rows into the cache, with the cache's versions kept in the conflict log (the
//! cache's winning rows are queued again by `carry`).

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Ctx, Policy, Reconciled, Start};
use crate::error::Error;
use crate::remote::store::Keys;
use crate::remote::{Found, RemoteStore, Version};
use crate::sql::rows::Shape;
use crate::sql::{Bind, order_value, row_to_json};
use crate::store::LocalError;
use crate::sync::conflict::{Loser, conflict_record};
use crate::sync::reconcile::Diff;
use crate::sync::versions::{self, Held};
use crate::sync::write_tx;

/// The differences of one batch, decided.
pub(super) struct Decided {
    /// Diffs where the remote's row goes into the cache, with the remote's version.
    pub remote_wins: Vec<(Diff, Option<Version>)>,
    /// Diffs where the cache's row is pushed again, under the version it holds when known.
    pub cache_wins: Vec<(Diff, Option<Held>)>,
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
                let held = held_version(local, shape, &d).map_err(lerr)?;
                match (version, held) {
                    // The remote's log has the very version the cache holds, yet the rows differ
                    // (the row was written past the log): as a version of unknown name.
                    (Some(v), Some(h)) if (&v.stamp, &v.origin) == (&h.stamp, &h.origin) => {
                        out.cache_wins.push((d, None))
                    }
                    // Both known: the newest-stamp rule, ties to the greater origin.
                    (Some(v), Some(h)) if (&v.stamp, &v.origin) > (&h.stamp, &h.origin) => {
                        out.remote_wins.push((d, Some(v)))
                    }
                    (_, Some(h)) => out.cache_wins.push((d, Some(h))),
                    // Unknown: by the cache's clock when the break was found.
                    (Some(v), None) if v.stamp.as_str() > known => {
                        out.remote_wins.push((d, Some(v)))
                    }
                    (_, None) => out.cache_wins.push((d, None)),
                }
            }
        }
    }
    Ok(out)
}

/// The version the cache holds of a differing row, when known and it is the row the cache has
/// (a tombstone for a row it lacks, a version of a row it has).
fn held_version(local: &Connection, shape: &Shape, d: &Diff) -> rusqlite::Result<Option<Held>> {
    Ok(versions::held(local, &shape.table, &d.pk)?.filter(|h| h.deleted == d.local.is_none()))
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
    // The losing version's name: a pending change's stamp; an acknowledged version's stamp and
    // origin when the cache knows them; else the cache's clock at the break.
    let stamps: Vec<(String, String)> = {
        let mut s = local
            .prepare_cached(&format!(
                "SELECT {} FROM sync_tracking WHERE tbl = ?1 AND ord = ?3 AND pk = ?2 AND op != 'X'",
                crate::clock::stamp_of_ms_sql("stamp")
            ))
            .map_err(lerr)?;
        wins.iter()
            .map(|(d, _)| {
                let ord = order_value(&d.key);
                let pending: Option<String> = s
                    .query_row(params![shape.table, d.pk, Bind::new(&ord)], |r| r.get(0))
                    .optional()?;
                Ok(match pending {
                    Some(stamp) => (stamp, ctx.origin.to_string()),
                    None => match held_version(local, shape, d)? {
                        Some(h) => (h.stamp, h.origin),
                        None => (known.to_string(), ctx.origin.to_string()),
                    },
                })
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
                stamp: &stamp.0,
                origin: &stamp.1,
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
        for (d, v) in wins {
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
            // The remote's version, by name when its log has one (a seeded row has none).
            match v {
                Some(v) => {
                    let learned = versions::Learned {
                        stamp: &v.stamp,
                        origin: &v.origin,
                        deleted: d.remote.is_none(),
                        rev: v.rev,
                    };
                    versions::record(c, &shape.table, &d.pk, &learned)?
                }
                None => versions::forget(c, &shape.table, &d.pk)?,
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
