//! The restore step of the convergence test: the remote file put back to a copy taken at an
//! earlier step, plainly (a backup restored to undo damage) or declared authoritative first
//! (`sharecache accept-restore`, a rollback). What the model expects after each:
//!
//! - **Plain restore** (default policy, KeepAcknowledged). Nothing acknowledged is lost, deletes
//!   included. A client whose trail broke compares its cache with the remote by key; a version the
//!   remote lost that the cache holds by name (`sync_row_versions`: every version it pulled or pushed,
//!   tombstones too) is pushed again under its *own* stamp and origin — the model already has that
//!   write, and the usual rules decide it. A row of unknown version (the seed, copied by every
//!   client's snapshot) is queued again with a *fresh stamp* under the reconciling client's
//!   origin: the model treats such a re-push as a new write by that client, of the value its cache
//!   held, made after everything it had seen of the key (so it supersedes the version it carries
//!   again, and the hybrid clock must stamp it after them). Values are unique per write
//!   (`c{n}:w{k}` with one counter per case, or the seed), so the value names the version carried
//!   again. Then the usual rules hold: the newest stamp wins and every write nobody superseded is
//!   current or in the conflict log — an acknowledged delete a restore took away too (it used to
//!   be undone by a client that still held the row; now a failure like any lost write). A loser
//!   whose entry the restore took from the conflict log, or a version of unknown name decided by
//!   the reconcile itself (logged with the cache's clock at the break), or a re-push that lost its
//!   push, is found in the conflict log by its value; a delete, which has no value, by any delete
//!   of the key kept there.
//! - **Declared authoritative** (a new generation; the remote wins). Every client that follows
//!   the new generation takes the remote's rows, pending writes included, and keeps its own
//!   versions in the conflict log. So "newest wins" holds among the writes made by clients after
//!   they followed the current generation; a key nobody wrote since holds what the declared copy
//!   held; a write of an earlier generation nobody superseded is current or in the conflict log
//!   by its value (a delete also when the declared copy held no row either).
//!
//! Copies are taken and put back through the share's mount path (`share.remote_path()`): behind
//! it, the share's page cache would keep serving the old bytes and hide the restore. A plain
//! restore only uses copies of the remote's current generation (a copy of an earlier generation
//! is a declaration for every client that followed a later one: an admin's rollback, not the
//! backup this step means); a declaration drops the copies taken before it.
//!
//! One more thing a restore does that the usual rules do not: a reconcile compares rows, not
//! versions, so a row the restored copy already holds with the winner's value gets no new log
//! entry; the log's current version of that key is then an older entry of the same value, or
//! none (a seeded row). The model accepts that (the row holds the winner's value either way).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sharecache::remote::{RemoteOptions, Share as ShareStore};

use super::{KEYS, Key, Run, TABLES, Version, row_value, seed};

/// A copy of the remote taken at an earlier step.
pub(super) struct Backup {
    path: PathBuf,
    /// The model's last seen version of every key then (the copy's log, pruned entries too).
    log: BTreeMap<Key, (String, String, bool)>,
    generation: String,
}

/// What the restore step adds to a run.
#[derive(Default)]
pub(super) struct Restores {
    pub backups: Vec<Backup>,
    /// A restore (plain or declared) happened in this case.
    pub happened: bool,
    /// Per client: the remote's generation it follows (its `sync_state.generation`).
    pub generation: Vec<String>,
    /// Per client: a restore happened since its last successful sync (its cursor and what it
    /// holds may belong to the remote before the restore).
    pub stale: Vec<bool>,
    /// Each key's value in the copy last declared authoritative (the seed before any).
    pub base: BTreeMap<Key, Option<String>>,
}

pub(super) fn generation_of(c: &rusqlite::Connection) -> String {
    c.query_row("SELECT coalesce(generation, '') FROM sync_state", [], |r| {
        r.get(0)
    })
    .unwrap()
}

pub(super) fn remote_generation(c: &rusqlite::Connection) -> String {
    c.query_row("SELECT generation FROM sharecache_meta", [], |r| r.get(0))
        .unwrap()
}

impl Restores {
    pub fn new() -> Restores {
        let base = (0..2)
            .flat_map(|t| (0..KEYS).map(move |k| (t, k)))
            .map(|k| (k, seed(k)))
            .collect();
        Restores {
            base,
            ..Restores::default()
        }
    }
}

impl Run<'_> {
    /// Copies the remote file aside (no client is in a transaction between steps).
    pub(super) fn backup(&mut self) {
        self.share.control.set_offline(false);
        let path = self
            .share
            .tmp
            .path()
            .join(format!("backup-{}.db", self.restores.backups.len()));
        std::fs::copy(self.share.remote_path(), &path).unwrap();
        let generation = remote_generation(&self.reader);
        self.share.control.set_offline(self.down);
        self.totals.borrow_mut().backups += 1;
        self.restores.backups.push(Backup {
            path,
            log: self.log.clone(),
            generation,
        });
    }

    /// Puts copy `which` back over the remote, declared authoritative first if `declare`.
    pub(super) fn restore(&mut self, which: usize, declare: bool) -> Result<(), TestCaseError> {
        self.share.control.set_offline(false);
        let current = remote_generation(&self.reader);
        let candidates: Vec<usize> = (0..self.restores.backups.len())
            .filter(|&i| declare || self.restores.backups[i].generation == current)
            .collect();
        if candidates.is_empty() {
            self.share.control.set_offline(self.down);
            return Ok(());
        }
        let i = candidates[which % candidates.len()];
        let from = self.restores.backups[i].path.clone();
        if declare {
            let mut remote = ShareStore::open(
                &from,
                RemoteOptions::from_config(&self.share.config("admin"), "admin"),
            )
            .unwrap();
            remote
                .declare_authoritative("2026-12-04T00:00:00.000Z")
                .unwrap();
        }
        std::fs::copy(&from, self.share.remote_path()).unwrap();
        // The model's own connection may hold pages of the file it replaced.
        self.reader = self.share.remote();
        self.log = self.restores.backups[i].log.clone();
        if declare {
            for table in 0..2 {
                for key in 0..KEYS {
                    let k = (table, key);
                    self.restores.base.insert(k, row_value(&self.reader, k));
                }
            }
            // Earlier copies belong to an earlier generation.
            self.restores.backups.clear();
        }
        self.share.control.set_offline(self.down);
        self.restores.happened = true;
        self.restores.stale.iter_mut().for_each(|s| *s = true);
        let mut t = self.totals.borrow_mut();
        t.restores += 1;
        t.declared += u64::from(declare);
        Ok(())
    }

    /// After a restore, a log entry nobody wrote is a version of unknown name a reconcile queued
    /// again with a fresh stamp (a version known by name comes back under its own stamp, a write
    /// the model has): recorded as a write by the client whose origin it carries, of the value
    /// its cache held, after everything that client had seen of the key.
    pub(super) fn adopt_repushes(
        &mut self,
        current: &BTreeMap<Key, (String, String, bool)>,
    ) -> Result<(), TestCaseError> {
        for (&k, (stamp, origin, deleted)) in current {
            if self
                .model
                .by_stamp
                .contains_key(&(k, stamp.clone(), origin.clone()))
            {
                continue;
            }
            let client = self
                .origins
                .iter()
                .position(|o| o == origin)
                .ok_or_else(|| {
                    TestCaseError::fail(format!(
                        "{k:?}: the remote's version {stamp} {origin} is by no live client"
                    ))
                })?;
            self.share.control.set_offline(false);
            let value = row_value(&self.reader, k);
            self.share.control.set_offline(self.down);
            prop_assert_eq!(
                value.is_none(),
                *deleted,
                "{:?}: the row and its log entry disagree",
                k
            );
            let carried = match &value {
                None => None,
                Some(v) => {
                    let found = self
                        .model
                        .versions
                        .iter()
                        .position(|x| x.key == k && x.value.as_ref() == Some(v));
                    prop_assert!(
                        found.is_some() || seed(k).as_ref() == Some(v),
                        "{:?}: the remote holds {:?}, a value nobody wrote",
                        k,
                        v
                    );
                    found
                }
            };
            let mut knew: BTreeSet<usize> =
                self.model.seen[client].get(&k).cloned().unwrap_or_default();
            if let Some(c) = carried {
                knew.insert(c);
                knew.extend(self.model.versions[c].knew.iter().copied());
            }
            let id = self.model.versions.len();
            self.model.versions.push(Version {
                key: k,
                stamp: stamp.clone(),
                origin: origin.clone(),
                value,
                knew,
                void: false,
                generation: self.restores.generation[client].clone(),
            });
            self.model
                .by_stamp
                .insert((k, stamp.clone(), origin.clone()), id);
            self.model.learn(client, k, id);
            self.totals.borrow_mut().re_pushed += 1;
        }
        Ok(())
    }
}

/// Whether a version nobody superseded, neither current nor kept under its own stamp, is kept
/// in the conflict log in a form a restore leaves (see the module doc).
/// `rolled_back`: `v` belongs to a generation before the current one.
pub(super) fn kept_after_restore(
    restores: &Restores,
    v: &Version,
    rolled_back: bool,
    conflicts: &[super::Conflict],
) -> bool {
    let of_key = |c: &&super::Conflict| c.tbl == TABLES[v.key.0] && c.pk == super::pk_text(v.key);
    match &v.value {
        Some(value) => conflicts
            .iter()
            .filter(of_key)
            .any(|c| c.loser_value.as_ref() == Some(value)),
        None => {
            (rolled_back && restores.base.get(&v.key) == Some(&None))
                || conflicts
                    .iter()
                    .filter(of_key)
                    .any(|c| c.loser_value.is_none())
        }
    }
}
