//! Push: pending local changes go to the remote, `batch_size` rows per short remote transaction.
//!
//! For each batch: read it in a short local read transaction; in one remote write transaction,
//! find the remote's newest version of each of its rows among the change-log entries that can be
//! concurrent with it (after the oldest `seen_rev` of the batch), decide each row
//! ([`super::conflict::decide`]), write the winners and append their versions (with the rows'
//! images) to the change log, log every losing version; then acknowledge in a short local write
//! transaction. The local write lock is never held while the share is being waited on.

use std::collections::HashMap;

use rusqlite::Connection;
use rusqlite::types::Value;

use super::conflict::{Current, Decision, Loser, Stamp, conflict_record, decide};
use super::lineage::Lineage;
use super::memory::PageCaches;
use super::outbox::{self, Change, Outcome};
use super::{Progress, failpoint};
use crate::error::Error;
use crate::remote::store::{BatchWriter, Keys, Refused};
use crate::remote::{
    ClientEntry, EntryId, Found, PRUNED_ORIGIN, Pruned, RemoteError, RemoteStore, Version,
};
use crate::sql::row_to_json;
use crate::sql::rows::Shape;
use crate::store::LocalError;

/// What a push did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pushed {
    /// Rows written to the remote.
    pub rows: usize,
    /// Conflicts decided (either way).
    pub conflicts: usize,
    /// Remote transactions used.
    pub batches: usize,
    /// Entries left pending because their table cannot be pushed now.
    pub unpushable: usize,
}

/// Context of one push.
pub(crate) struct PushCtx<'a> {
    pub origin: &'a str,
    /// The origins this cache had before it found it was a copy ([`Lineage`]).
    pub lineage: &'a Lineage,
    pub now: String,
    /// What the registry records: the pull cursor, or the oldest revision a pending change was
    /// made against if lower ([`outbox::horizon`]). Tombstones above it must be kept for this
    /// client, whose changes are decided against them.
    pub pulled_rev: i64,
    pub host: String,
    pub batch_size: usize,
}

/// Pushes every pending change.
pub(crate) fn push(
    local: &Connection,
    local_path: &std::path::Path,
    remote: &mut dyn RemoteStore,
    shapes: &HashMap<String, Shape>,
    ctx: &PushCtx<'_>,
    progress: &dyn Progress,
) -> Result<Pushed, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(local_path, e));
    let total = outbox::pending(local).map_err(lerr)? as u64;
    let mut done = 0u64;
    let mut stats = Pushed::default();
    let mut after = None;
    let mut own = OwnRevs::default();
    let mut page_caches = PageCaches::default();
    loop {
        let batch =
            outbox::read_batch(local, shapes, after.as_ref(), ctx.batch_size).map_err(lerr)?;
        stats.unpushable += batch.unpushable;
        if !batch.changes.is_empty() {
            let (applied, written, conflicts) =
                write_batch(remote, &batch.changes, shapes, ctx, &own)?;
            failpoint::hit(failpoint::AFTER_REMOTE_COMMIT);
            own.add(applied.revs);
            outbox::acknowledge(local, shapes, &batch.changes, &applied).map_err(lerr)?;
            page_caches.moved(batch.changes.len(), local, remote);
            stats.rows += written;
            stats.conflicts += conflicts;
            stats.batches += 1;
            done += batch.changes.len() as u64;
            progress.step("push", done, total.max(done));
        }
        if batch.exhausted {
            break;
        }
        after = batch.next;
    }
    Ok(stats)
}

/// Pushes already-read changes without acknowledging them locally (salvage from a cache that
/// cannot be written any more). Returns rows written and conflicts decided.
pub(crate) fn push_unacknowledged(
    remote: &mut dyn RemoteStore,
    changes: &[Change],
    shapes: &HashMap<String, Shape>,
    ctx: &PushCtx<'_>,
) -> Result<(usize, usize), Error> {
    let (mut rows, mut conflicts) = (0, 0);
    let mut own = OwnRevs::default();
    for batch in changes.chunks(ctx.batch_size.max(1)) {
        let (applied, w, c) = write_batch(remote, batch, shapes, ctx, &own)?;
        own.add(applied.revs);
        rows += w;
        conflicts += c;
    }
    Ok((rows, conflicts))
}

/// The change-log revisions this push has written so far, batch by batch: `(before, last]` each.
/// Its own entries are of other keys than a later batch's (the outbox holds one change per key),
/// so the search for a batch's concurrent versions skips them.
#[derive(Debug, Default)]
struct OwnRevs(Vec<(i64, i64)>);

impl OwnRevs {
    fn add(&mut self, revs: (i64, i64)) {
        if revs.1 > revs.0 {
            self.0.push(revs);
        }
    }

    /// The ranges `(after, upto]` of revisions above `after` that this push did not write.
    fn others_after(&self, after: i64) -> Vec<(i64, Option<i64>)> {
        let mut gaps = Vec::new();
        let mut from = after;
        for &(before, last) in &self.0 {
            if last <= from {
                continue;
            }
            if before > from {
                gaps.push((from, Some(before)));
            }
            from = last;
        }
        gaps.push((from, None));
        gaps
    }
}

/// The remote's newest version of every row of the batch that a change of the batch can be
/// concurrent with: entries after the oldest `seen_rev` of the batch. An older version was
/// pulled (or deferred and re-read here) before the change was made; entries of the pruned part of
/// the log are below every pending change's `seen_rev` (the registry's horizon).
fn concurrent_versions(
    c: &mut dyn BatchWriter,
    changes: &[Change],
    ctx: &PushCtx<'_>,
    own: &OwnRevs,
) -> Result<HashMap<(String, String), Found>, RemoteError> {
    let keys: Keys = changes
        .iter()
        .map(|ch| {
            let born = ch.born(ctx.lineage, ctx.origin);
            (
                (ch.tbl.clone(), ch.pk.clone()),
                (ch.stamp.clone(), born.to_string()),
            )
        })
        .collect();
    let floor = changes.iter().map(|ch| ch.seen_rev).min().unwrap_or(0);
    let mut found = HashMap::new();
    for (after, upto) in own.others_after(floor) {
        c.newest_versions(after, upto, &keys, &mut found)?;
    }
    Ok(found)
}

/// The stand-in for the remote's version of a row when the change was made before the pruned
/// part of the log (by a client away longer than the registry remembers it): versions written
/// since may have been pruned, so the row is taken as changed concurrently, at the newest stamp
/// pruned. A change newer than every pruned stamp wins; otherwise the remote's row stays. Either
/// way the losing version goes to the conflict log, so nothing is lost for want of history.
fn pruned_version(ch: &Change, pruned: &Pruned) -> Version {
    Version {
        tbl: ch.tbl.clone(),
        pk: ch.pk.clone(),
        rev: pruned.rev,
        stamp: pruned.stamp.clone(),
        origin: PRUNED_ORIGIN.to_string(),
        deleted: false,
        write_id: None,
    }
}

/// Inside the remote write transaction: decide and write one batch. Returns the outcome per
/// change (with the change-log revisions the batch took), rows written and conflicts decided.
/// Re-runnable (the transaction may be retried).
/// Decides and writes one batch in one atomic remote write.
fn write_batch(
    remote: &mut dyn RemoteStore,
    changes: &[Change],
    shapes: &HashMap<String, Shape>,
    ctx: &PushCtx<'_>,
    own: &OwnRevs,
) -> Result<(outbox::Applied, usize, usize), RemoteError> {
    let mut out = None;
    remote.write(&mut |w| {
        out = Some(apply_batch(w, changes, shapes, ctx, own)?);
        Ok(())
    })?;
    Ok(out.expect("the write ran"))
}

fn apply_batch(
    c: &mut dyn BatchWriter,
    changes: &[Change],
    shapes: &HashMap<String, Shape>,
    ctx: &PushCtx<'_>,
    own: &OwnRevs,
) -> Result<(outbox::Applied, usize, usize), RemoteError> {
    // The newest entry this batch appended: (stamp, origin).
    let mut last: Option<(String, String)> = None;
    let current = concurrent_versions(c, changes, ctx, own)?;
    let pruned = c.pruned()?;
    let mut newest_stamp = String::new();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; changes.len()];
    let (mut written, mut conflicts) = (0, 0);
    // Rows refused by a constraint are retried after the rest of the batch: moving a UNIQUE
    // value from one row to another is valid locally in one order and pushed in key order.
    let mut todo: Vec<usize> = (0..changes.len()).collect();
    let mut last_pass = false;
    loop {
        let mut refused = Vec::new();
        for &i in &todo {
            let ch = &changes[i];
            let found = current.get(&(ch.tbl.clone(), ch.pk.clone()));
            let standin;
            let cur = match found {
                Some(f) => Some(&f.newest),
                None if ch.seen_rev < pruned.rev => {
                    standin = pruned_version(ch, &pruned);
                    Some(&standin)
                }
                None => None,
            };
            let step = if found.is_some_and(|f| f.mine_logged) {
                // Pushed before, its acknowledgement lost: whatever came after it knew it.
                Step::Done {
                    outcome: Outcome::AlreadyThere,
                    wrote: false,
                    conflict: false,
                }
            } else {
                apply_one(c, ch, &shapes[&ch.tbl], ctx, cur, &mut last, last_pass)?
            };
            match step {
                Step::Done {
                    outcome,
                    wrote,
                    conflict,
                } => {
                    if wrote && ch.stamp > newest_stamp {
                        newest_stamp.clone_from(&ch.stamp);
                    }
                    outcomes[i] = Some(outcome);
                    written += usize::from(wrote);
                    conflicts += usize::from(conflict);
                }
                Step::Refused => refused.push(i),
            }
        }
        if refused.is_empty() {
            break;
        }
        last_pass = refused.len() == todo.len(); // no progress: the next pass rejects what is left
        todo = refused;
    }
    // The registry entry first: a backend may write it with the finish (one round trip).
    c.register(&ctx.client(ctx.pulled_rev))?;
    let (first_rev, rev) = c.finish(&newest_stamp)?;
    let write_id = Some(c.write_id());
    let newest = last
        .filter(|_| rev > first_rev)
        .map(|(stamp, origin)| EntryId {
            rev,
            stamp,
            origin,
            write_id,
        });
    failpoint::hit(failpoint::BEFORE_REMOTE_COMMIT);
    let applied = outbox::Applied {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.expect("every change decided"))
            .collect(),
        revs: (first_rev, rev),
        newest,
        origins: changes
            .iter()
            .map(|ch| ch.born(ctx.lineage, ctx.origin).to_string())
            .collect(),
    };
    Ok((applied, written, conflicts))
}

/// What happened to one change inside the batch.
enum Step {
    /// Decided: written, already there, or lost.
    Done {
        outcome: Outcome,
        wrote: bool,
        conflict: bool,
    },
    /// A constraint refused the row; try again after the others.
    Refused,
}

/// Decides and writes one change against `cur`, the remote's newest version of the row that may
/// be concurrent with it. With `reject_refused`, a constraint refusal is final: the change goes to
/// the conflict log and the remote's version comes back.
fn apply_one(
    c: &mut dyn BatchWriter,
    ch: &Change,
    shape: &Shape,
    ctx: &PushCtx<'_>,
    cur: Option<&Version>,
    last: &mut Option<(String, String)>,
    reject_refused: bool,
) -> Result<Step, RemoteError> {
    // The origin the change was made under: this cache's, or the one it had before it found it
    // was a copy (then the original may push the same change: one version, one name), or the
    // version's own when a reconcile carries it again.
    let born = ch.born(ctx.lineage, ctx.origin);
    let mine = Stamp {
        stamp: &ch.stamp,
        origin: born,
    };
    let current = cur.map(|v| Current {
        version: Stamp {
            stamp: &v.stamp,
            origin: match ch.origin {
                Some(_) => Lineage::seen_by_carried(&v.stamp, &v.origin, (&ch.stamp, born)),
                None => ctx.lineage.seen_as(&v.stamp, &v.origin, born, ctx.origin),
            },
        },
        rev: v.rev,
    });
    match decide(mine, ch.seen_rev, current) {
        Decision::AlreadyApplied => Ok(Step::Done {
            outcome: Outcome::AlreadyThere,
            wrote: false,
            conflict: false,
        }),
        Decision::Lose => {
            let outcome = lose(c, shape, ch, cur, "newer", ctx)?;
            Ok(Step::Done {
                outcome,
                wrote: false,
                conflict: true,
            })
        }
        Decision::Apply { conflict } => {
            let before = if conflict {
                Some(remote_row(c, shape, ch, cur)?)
            } else {
                None
            };
            match c.write_row(shape, &ch.key, ch.row.as_deref())? {
                Ok(()) => {
                    if let (Some(loser_row), Some(v)) = (before, cur) {
                        let loser = Loser {
                            stamp: &v.stamp,
                            origin: &v.origin,
                            row: loser_row.as_deref(),
                        };
                        log_conflict(c, shape, ch, (&ch.stamp, born), &loser, "newer", ctx)?;
                    }
                    c.append(
                        &Version {
                            tbl: ch.tbl.clone(),
                            pk: ch.pk.clone(),
                            rev: 0, // numbered by `finish`
                            stamp: ch.stamp.clone(),
                            origin: born.to_string(),
                            deleted: ch.row.is_none(),
                            write_id: None, // the writer's own
                        },
                        ch.row.as_deref().map(|r| (shape.columns.as_slice(), r)),
                    )?;
                    *last = Some((ch.stamp.clone(), born.to_string()));
                    Ok(Step::Done {
                        outcome: Outcome::Applied,
                        wrote: true,
                        conflict,
                    })
                }
                Err(Refused(_)) if !reject_refused => Ok(Step::Refused),
                Err(Refused(e)) => {
                    // The remote refuses this row for good (e.g. a UNIQUE value another client
                    // took): keep it in the conflict log and take the remote's version.
                    let reason = format!("rejected by the remote: {e}");
                    let outcome = lose(c, shape, ch, cur, &reason, ctx)?;
                    Ok(Step::Done {
                        outcome,
                        wrote: false,
                        conflict: true,
                    })
                }
            }
        }
    }
}

/// The remote's row for this change, or `None` when its current version is a tombstone.
fn remote_row(
    c: &mut dyn BatchWriter,
    shape: &Shape,
    ch: &Change,
    cur: Option<&Version>,
) -> Result<Option<String>, RemoteError> {
    if cur.is_some_and(|v| v.deleted) {
        return Ok(None);
    }
    Ok(c.select(shape, &ch.key)?
        .map(|row| row_to_json(&shape.columns, &row)))
}

/// The local change loses: log it, and return the remote's version for the cache.
fn lose(
    c: &mut dyn BatchWriter,
    shape: &Shape,
    ch: &Change,
    cur: Option<&Version>,
    reason: &str,
    ctx: &PushCtx<'_>,
) -> Result<Outcome, RemoteError> {
    let winner: Option<Vec<Value>> = if cur.is_some_and(|v| v.deleted) {
        None
    } else {
        c.select(shape, &ch.key)?
    };
    let row_json = ch.row.as_ref().map(|r| row_to_json(&shape.columns, r));
    let loser = Loser {
        stamp: &ch.stamp,
        origin: ch.born(ctx.lineage, ctx.origin),
        row: row_json.as_deref(),
    };
    let (ws, wo, wrev) = cur.map_or(("", "", 0), |v| {
        (v.stamp.as_str(), v.origin.as_str(), v.rev)
    });
    log_conflict(c, shape, ch, (ws, wo), &loser, reason, ctx)?;
    Ok(Outcome::Lost {
        winner,
        stamp: ws.to_string(),
        origin: wo.to_string(),
        rev: wrev,
    })
}

fn log_conflict(
    c: &mut dyn BatchWriter,
    shape: &Shape,
    ch: &Change,
    winner: (&str, &str),
    loser: &Loser<'_>,
    reason: &str,
    ctx: &PushCtx<'_>,
) -> Result<(), RemoteError> {
    c.log_conflict(&conflict_record(
        (&shape.table, &ch.pk),
        winner,
        loser,
        reason,
        (&ctx.now, ctx.origin),
    ))?;
    tracing::info!(table = %shape.table, key = %ch.pk, reason, "conflict: losing version kept in the conflict log");
    Ok(())
}

impl PushCtx<'_> {
    /// This client's registry entry with horizon `pulled_rev`.
    pub(crate) fn client(&self, pulled_rev: i64) -> ClientEntry {
        ClientEntry {
            origin: self.origin.to_string(),
            pulled_rev,
            last_seen: self.now.clone(),
            host: self.host.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_for_concurrent_versions_skips_only_this_pushs_own_batches() {
        let mut own = OwnRevs::default();
        assert_eq!(own.others_after(5), vec![(5, None)]);
        own.add((10, 20)); // first batch wrote 11..=20
        own.add((20, 20)); // a batch that wrote nothing
        own.add((23, 30)); // another client wrote 21..=23 in between
        assert_eq!(
            own.others_after(5),
            vec![(5, Some(10)), (20, Some(23)), (30, None)]
        );
        assert_eq!(own.others_after(25), vec![(30, None)]);
        assert_eq!(own.others_after(40), vec![(40, None)]);
    }
}
