//! When the trail breaks: the remote's change log went back in time, or an admin declared the
//! remote's content authoritative. Incremental sync cannot go on from the cache's cursor, so the
//! cache is compared with the remote by key ([`super::reconcile::diff`]) and every difference is
//! decided.
//!
//! **Detecting it.** The cache keeps a mark: the newest change-log entry it has seen (pulled) or
//! written (pushed, in the acknowledging transaction), by revision, stamp and origin. Every full
//! fingerprint checks that the remote still holds that entry — one lookup in the read
//! transaction the fingerprint runs anyway ([`crate::remote::Trail`]). A file restored from a
//! backup, or any older copy put at the path, lacks it or holds another entry at that revision,
//! even after other clients pushed past the old revision. An idle sync costs nothing more: an
//! unchanged database header means an unchanged file.
//!
//! **Deciding, by default** ([`Policy::KeepAcknowledged`]: a restore to undo damage must not
//! lose what the app was told was saved). For each key whose row differs, without a pending local
//! change, the remote's newest logged version decides:
//! - stamped after everything this cache knew (its clock when the break was found): the remote's
//!   row is newer — written after the restore by someone else — and comes into the cache;
//! - otherwise (older, or not in the log): the remote lost the cache's version. It is queued as a
//!   pending change with a fresh stamp and pushed by the usual rule, which keeps the remote's row
//!   in the conflict log (the change's `seen_rev` is set below the log so every remote version
//!   counts as concurrent).
//!
//! Pending changes keep their stamps; their `seen_rev` goes down the same way, so a version
//! written after the restore is decided against by stamp, never overwritten unseen. A row the
//! remote changed after the comparison began is left to the pull that follows (the cursor is set
//! to the revision read before comparing). Every version that loses goes to the conflict log,
//! the cache's too (its stamp is unknown once acknowledged: the log shows the cache's clock at
//! the break instead).
//!
//! **Declared authoritative** ([`Policy::RemoteWins`], `sharecache accept-restore`): the remote's
//! row wins every difference, pending changes included; every local version it replaces goes to
//! the conflict log first, restorable with `sharecache conflicts restore`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::push::{Loser, insert_conflict};
use super::reconcile::{self, Diff};
use super::rows::Shape;
use super::{Progress, write_tx};
use crate::cache::LocalError;
use crate::clock::{next_clock_sql, stamp_of_ms};
use crate::error::Error;
use crate::remote::changelog::{self, Found};
use crate::remote::{Mark, Remote};
use crate::sql::{Bind, order_value, row_to_json};

/// Rows compared per read (each side): a short read transaction on the share.
const BATCH: usize = 2000;

/// How differences are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Nothing acknowledged is lost: versions the remote lost are pushed again.
    KeepAcknowledged,
    /// The remote's content is authoritative: local versions go to the conflict log.
    RemoteWins,
}

impl Policy {
    fn reason(self) -> &'static str {
        match self {
            Policy::KeepAcknowledged => {
                "the remote's change log went back in time (restored from a backup, or an older copy \
                 put at its path): versions it lost are pushed again"
            }
            Policy::RemoteWins => {
                "the remote was declared authoritative (sharecache accept-restore): local versions \
                 it replaces are kept in the conflict log"
            }
        }
    }

    fn conflict_reason(self) -> &'static str {
        match self {
            Policy::KeepAcknowledged => "restored remote: its version is newer",
            Policy::RemoteWins => "remote declared authoritative (accept-restore)",
        }
    }
}

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    /// Why it ran.
    pub reason: String,
    /// Remote rows compared with the cache.
    pub compared: u64,
    /// Cache versions the remote had lost, queued to be pushed again.
    pub pushed_again: usize,
    /// Remote versions brought into the cache.
    pub pulled: usize,
    /// Losing versions kept in the conflict log by the reconcile itself (the push of the
    /// versions queued again logs the remote's).
    pub conflicts: usize,
}

impl Reconciled {
    /// One line for logs, history and status.
    pub fn summary(&self) -> String {
        format!(
            "{}; {} rows compared, {} pushed again, {} pulled, {} kept in the conflict log",
            self.reason, self.compared, self.pushed_again, self.pulled, self.conflicts
        )
    }
}

/// The cache's [`Mark`].
pub(crate) fn read_mark(c: &Connection) -> rusqlite::Result<Mark> {
    c.query_row(
        "SELECT anchor_rev, anchor_stamp, anchor_origin, generation FROM sync_state WHERE id = 1",
        [],
        |r| {
            Ok(Mark {
                rev: r.get(0)?,
                stamp: r.get(1)?,
                origin: r.get(2)?,
                generation: r.get(3)?,
            })
        },
    )
}

/// Moves the mark to a change-log entry the cache has seen, if newer. Call in the transaction
/// that records what was pulled.
pub(crate) fn mark_seen(
    c: &Connection,
    rev: i64,
    stamp: &str,
    origin: &str,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE sync_state SET anchor_rev = ?1, anchor_stamp = ?2, anchor_origin = ?3 \
         WHERE id = 1 AND anchor_rev < ?1",
    )?
    .execute(params![rev, stamp, origin])?;
    Ok(())
}

/// Records the remote's generation when the cache did not know it yet (caches made before
/// generations existed).
pub(crate) fn learn_generation(
    local: &Connection,
    local_path: &Path,
    remote: &Remote,
) -> Result<(), Error> {
    let generation: String = remote.read(|c| {
        c.query_row(
            "SELECT generation FROM sharecache_meta WHERE id = 1",
            [],
            |r| r.get(0),
        )
    })?;
    local
        .execute(
            "UPDATE sync_state SET generation = ?1 WHERE id = 1 AND generation IS NULL",
            [generation],
        )
        .map_err(|e| Error::Local(LocalError::from_sqlite(local_path, e)))?;
    Ok(())
}

/// The remote's state when a reconcile starts.
struct Start {
    rev: i64,
    pruned_rev: i64,
    generation: String,
    /// The newest log entry at or below `rev`: the cache's mark afterwards.
    newest: Option<(i64, String, String)>,
}

/// Context of one reconcile.
pub(crate) struct Ctx<'a> {
    pub local_path: &'a Path,
    pub shapes: &'a HashMap<String, Shape>,
    /// This cache's origin.
    pub origin: &'a str,
    /// Now, as a stamp (`decided_at`).
    pub now: String,
}

/// Compares every synced table with the remote and decides each difference by `policy`; then
/// sets the cursor and the mark to the remote's state read before comparing.
pub(crate) fn reconcile(
    local: &Connection,
    remote: &mut Remote,
    ctx: &Ctx<'_>,
    policy: Policy,
    progress: &dyn Progress,
) -> Result<Reconciled, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(ctx.local_path, e));
    let start: Start = remote.read(|c| {
        let (rev, pruned_rev, generation): (i64, i64, String) = c.query_row(
            "SELECT rev, pruned_rev, generation FROM sharecache_meta WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let newest = c
            .query_row(
                "SELECT rev, stamp, origin FROM sharecache_log WHERE rev <= ?1 ORDER BY rev DESC LIMIT 1",
                [rev],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(Start {
            rev,
            pruned_rev,
            generation,
            newest,
        })
    })?;
    // Below every entry the log still has: all of them count as concurrent with the cache's
    // changes, and a change older than the pruned part is decided against its newest stamp.
    let floor = (start.pruned_rev - 1).max(0);
    let known: String = local
        .query_row("SELECT hlc FROM sync_state WHERE id = 1", [], |r| r.get(0))
        .map(stamp_of_ms)
        .map_err(lerr)?;
    let pending_at_start: HashMap<(String, String), i64> = local
        .prepare("SELECT tbl, pk, seq FROM sync_tracking WHERE op != 'X'")
        .and_then(|mut s| {
            s.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
                .collect()
        })
        .map_err(lerr)?;
    let mut out = Reconciled {
        reason: policy.reason().into(),
        ..Reconciled::default()
    };
    tracing::warn!(
        reason = out.reason,
        remote_rev = start.rev,
        "reconciling the cache with the remote by key"
    );
    let mut tables: Vec<&Shape> = ctx.shapes.values().collect();
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    for shape in tables {
        // The diff holds the remote for reading; the decisions write it. The differences of one
        // table are collected first: as many as the versions the remote lost or gained, not as
        // many as the table's rows.
        let mut differing: Vec<Diff> = Vec::new();
        let compared = reconcile::diff(local, ctx.local_path, remote, shape, BATCH, |d| {
            differing.extend_from_slice(d);
            progress.step("reconcile", out.compared, 0);
            Ok(())
        })?;
        out.compared += compared.remote_rows;
        for chunk in chunks(differing, BATCH) {
            let decided = decide(local, remote, ctx, shape, &start, &known, policy, chunk)?;
            let remote_wins = &decided.remote_wins;
            apply_remote_wins(
                local,
                remote,
                ctx,
                shape,
                policy,
                &known,
                &pending_at_start,
                remote_wins,
                &mut out,
            )?;
            queue_again(local, shape, floor, &decided.cache_wins).map_err(lerr)?;
            out.pushed_again += decided.cache_wins.len();
        }
    }
    finish(local, &start, floor, policy, &pending_at_start).map_err(lerr)?;
    remote.forget_fingerprint();
    tracing::warn!(summary = out.summary(), "reconcile done");
    Ok(out)
}

/// `items` in chunks of `n`, in order.
fn chunks<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(n).collect());
    }
    out
}

/// The differences of one batch, decided.
struct Decided {
    /// Diffs where the remote's row goes into the cache, with the remote's version.
    remote_wins: Vec<(Diff, Option<changelog::Version>)>,
    /// Diffs where the cache's row is pushed again.
    cache_wins: Vec<Diff>,
}

#[allow(clippy::too_many_arguments)]
fn decide(
    local: &Connection,
    remote: &Remote,
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
    let keys: HashMap<(String, String), (String, String)> = diffs
        .iter()
        .map(|d| {
            let key = (shape.table.clone(), d.pk.clone());
            (key, (String::new(), ctx.origin.to_string()))
        })
        .collect();
    let found: HashMap<(String, String), Found> = remote.read(|c| {
        let mut found = HashMap::new();
        changelog::newest_in(c, start.pruned_rev, None, &keys, &mut found)?;
        Ok(found)
    })?;
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
fn apply_remote_wins(
    local: &Connection,
    remote: &mut Remote,
    ctx: &Ctx<'_>,
    shape: &Shape,
    policy: Policy,
    known: &str,
    pending_at_start: &HashMap<(String, String), i64>,
    wins: &[(Diff, Option<changelog::Version>)],
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
    remote.write(|c| {
        for (((d, v), stamp), row) in wins.iter().zip(&stamps).zip(&rows) {
            let winner = v
                .as_ref()
                .map_or(("", ""), |v| (v.stamp.as_str(), v.origin.as_str()));
            let loser = Loser {
                stamp,
                origin: ctx.origin,
                row: row.as_deref(),
            };
            insert_conflict(
                c,
                (&shape.table, &d.pk),
                winner,
                &loser,
                policy.conflict_reason(),
                (&ctx.now, ctx.origin),
            )?;
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
fn queue_again(
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

/// Ends a reconcile in one local transaction: the cursor and the mark at the remote's state read
/// before comparing, every pending change made against `floor`, the remote's generation
/// followed; declared authoritative, the pending changes seen at the start (equal to the remote,
/// or they would have been differences) are dropped.
fn finish(
    local: &Connection,
    start: &Start,
    floor: i64,
    policy: Policy,
    pending_at_start: &HashMap<(String, String), i64>,
) -> rusqlite::Result<()> {
    write_tx(local, |c| {
        let (rev, stamp, origin) =
            start
                .newest
                .clone()
                .unwrap_or((0, String::new(), String::new()));
        c.execute(
            "UPDATE sync_state SET pull_rev = ?1, anchor_rev = ?2, anchor_stamp = ?3, anchor_origin = ?4, \
             generation = ?5 WHERE id = 1",
            params![start.rev, rev, stamp, origin, start.generation],
        )?;
        c.execute(
            "UPDATE sync_tracking SET seen_rev = min(seen_rev, ?1)",
            [floor],
        )?;
        if policy == Policy::RemoteWins {
            for ((tbl, pk), seq) in pending_at_start {
                // By the whole key (tbl, ord, pk) when the key text reads; else by (tbl, pk).
                match crate::sql::decode_key(pk) {
                    Ok(key) => c.execute(
                        "DELETE FROM sync_tracking WHERE tbl = ?1 AND ord = ?4 AND pk = ?2 AND seq = ?3",
                        params![tbl, pk, seq, Bind::new(&order_value(&key))],
                    )?,
                    Err(_) => c.execute(
                        "DELETE FROM sync_tracking WHERE tbl = ?1 AND pk = ?2 AND seq = ?3",
                        params![tbl, pk, seq],
                    )?,
                };
            }
        }
        Ok(())
    })
}
