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
//! even after other clients pushed past the old revision. An idle sync compares the database
//! header and the page of `sharecache_meta` with the last full fingerprint (one small read more
//! than the header alone: the change counter comes back with a restored file).
//!
//! **Deciding, by default** ([`Policy::KeepAcknowledged`]: a restore to undo damage must not
//! lose what the app was told was saved, deletes included). For each key whose row differs,
//! without a pending local change, the remote's newest logged version decides against the
//! version the cache holds ([`crate::sync::versions`]: every version it pulled or pushed, by
//! stamp and origin, tombstones too):
//! - known by name: by the newest-stamp rule (ties to the greater origin). The remote's newer
//!   version comes into the cache; otherwise the cache's version is queued again under its *own*
//!   stamp and origin ([`carry`]), so the push decides it against what other clients carry back as
//!   if the restore had never happened;
//! - unknown (a row copied by a snapshot, or synced before the cache kept versions): the remote's
//!   version stamped after everything this cache knew (its clock when the break was found) is
//!   newer and comes into the cache; otherwise the remote lost the cache's version, which is
//!   queued with a fresh stamp.
//!
//! Either way the queued change is made against a `seen_rev` below the log, so every remote
//! version counts as concurrent and the loser is kept in the conflict log. The keyed comparison
//! sees rows only: a tombstone for a key both sides lack is queued again as a delete under its own
//! stamp when the remote's log holds neither it nor a newer version ([`carry`] says why). Before
//! anything is carried under its own name, the remote's revision counter is moved past every
//! revision the cache knew ([`carry`]: a version landing again at the revision it had would hide
//! the break from a client whose mark is that entry).
//!
//! Pending changes keep their stamps; their `seen_rev` goes down the same way, so a version
//! written after the restore is decided against by stamp, never overwritten unseen. A row the
//! remote changed after the comparison began is left to the pull that follows (the cursor is set
//! to the revision read before comparing). Every version that loses goes to the conflict log,
//! the cache's too: under its own stamp and origin when the cache holds it by name, else under
//! the cache's clock at the break.
//!
//! **Declared authoritative** ([`Policy::RemoteWins`], `sharecache accept-restore`): the remote's
//! row wins every difference, pending changes included; every local version it replaces goes to
//! the conflict log first, restorable with `sharecache conflicts restore`.
//!
//! Files: this one runs a reconcile; `mark` keeps the cache's mark; `decide` decides the
//! differences of one batch and applies the remote's winners; `carry` queues what the cache
//! pushes again (its rows and its tombstones).

mod carry;
mod decide;
mod mark;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, params};
use serde::Serialize;

pub(crate) use mark::{learn_generation, mark_seen, read_mark, set_mark};

use super::reconcile::{self, Diff};
use super::{Progress, metadata, write_tx};
use crate::clock::stamp_of_ms;
use crate::error::Error;
use crate::remote::RemoteStore;
use crate::sql::rows::Shape;
use crate::sql::{Bind, order_value};
use crate::store::LocalError;
use carry::{lost_tombstones, move_past, queue_again};
use decide::{apply_remote_wins, decide};

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

/// The remote's state when a reconcile starts.
type Start = crate::remote::Head;

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
    remote: &mut dyn RemoteStore,
    ctx: &Ctx<'_>,
    policy: Policy,
    progress: &dyn Progress,
) -> Result<Reconciled, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(ctx.local_path, e));
    if policy == Policy::KeepAcknowledged {
        let known = crate::sync::versions::revision_known(local).map_err(lerr)?;
        move_past(remote, known)?;
    }
    let start: Start = remote.head()?;
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
        let differing_keys: HashSet<String> = differing.iter().map(|d| d.pk.clone()).collect();
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
        if policy == Policy::KeepAcknowledged {
            out.pushed_again +=
                lost_tombstones(local, remote, ctx, shape, &start, floor, &differing_keys)?;
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

/// Ends a reconcile in one local transaction: the cursor and the mark at the remote's state read
/// before comparing, the hybrid clock past every stamp up to there (the cursor says the cache has
/// seen those versions, though it pulled none of them: an edit made next must be stamped after
/// them, as after a pull), every pending change made against `floor`, the remote's generation
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
        c.execute(
            "UPDATE sync_state SET pull_rev = ?1, generation = ?2 WHERE id = 1",
            params![start.rev, start.generation],
        )?;
        set_mark(c, start.newest.as_ref())?;
        if let Some(t) = crate::clock::parse_stamp(&start.hlc) {
            c.execute(
                "UPDATE sync_state SET hlc = max(hlc, ?1) WHERE id = 1",
                [t.timestamp_millis()],
            )?;
        }
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

impl super::Engine {
    /// Reconciles the cache with the remote by key ([`self`](super)), recorded in the history as a
    /// run of its own kind.
    pub(in crate::sync) fn reconcile(
        &mut self,
        shapes: &HashMap<String, Shape>,
        policy: Policy,
        progress: &dyn Progress,
    ) -> Result<Reconciled, Error> {
        let t0 = Instant::now();
        let started = self.clock.now_stamp();
        let run = metadata::begin(&self.local, "reconcile", &started).map_err(self.lerr())?;
        let ctx = Ctx {
            local_path: &self.paths.db,
            shapes,
            origin: &self.origin,
            now: started,
        };
        let remote = self.remote.as_deref_mut().expect("connected");
        let result = reconcile(&self.local, remote, &ctx, policy, progress);
        self.finish_run(
            run,
            t0,
            result.as_ref().map(|r| metadata::Figures {
                pushed: r.pushed_again,
                pulled: r.pulled,
                conflicts: r.conflicts,
            }),
        )?;
        if let Ok(r) = &result {
            metadata::note(&self.local, run, &r.summary()).map_err(self.lerr())?;
        }
        result
    }
}
