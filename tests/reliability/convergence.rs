//! Multi-client convergence under faults, as a property test (issue 5, item 1).
//!
//! 3–5 clients on one remote behind the flaky share run a random script: inserts, updates and
//! deletes on a few shared keys (so conflicts are frequent), syncs, share drops (offline
//! windows), single failed share operations in the middle of a sync, clocks skewed by ±1 h, and
//! client 0's clock stepping back 10 minutes mid-run (the client is closed and reopened with the
//! new offset), and clones: a client's cache replaced by a copy of another's (a cloned desktop
//! image; both synced first), which must become a client of its own, and restores: the remote file
//! put back to a copy taken at an earlier step, plainly or declared authoritative (`restore`
//! says what the model expects after each). Then the share comes back, every client syncs twice,
//! and the oracle checks:
//!
//! - every cache holds exactly what the remote holds (content hash of the app tables);
//! - every key holds the winner: the newest stamp among the acknowledged writes of that key (made
//!   in the remote's current generation), ties broken by the greater origin id (the rule of
//!   `src/sync/conflict.rs`);
//! - zero lost: every acknowledged write that no later write superseded is either the current
//!   value or a loser in the conflict log.
//!
//! What "acknowledged" and "superseded" mean. A write is acknowledged when the app's statement
//! committed on the cache; its stamp is the one the engine assigned (read from `sync_tracking`,
//! and for `kv` also from `updated_at`). A write is *superseded* when a later write of the same
//! key was made by a client that had seen it: its own next write, or another client's write after
//! pulling it (or after losing to it). Superseded writes are legitimately neither current nor in
//! the conflict log: that is an ordinary sequential edit. Every other write is concurrent with
//! the current value and must have lost a conflict, so it is in the conflict log. The test tracks
//! what each client has seen: its own writes, the remote's current versions whenever its pull
//! cursor reaches the remote's revision, and the winner whenever its push lost. One more rule
//! comes from the engine's documented coalescing: an insert of a key the cache did not have,
//! deleted again before any push, never happened (`sync_tracking` drops the entry); such writes
//! are *void* and not counted.
//!
//! The hybrid logical clock makes every write's stamp greater than the stamps of everything its
//! writer had seen, so "newest acknowledged write" and "newest write nobody superseded" must be
//! the same write; the test asserts that too.
//!
//! Long form (`SHARECACHE_SOAK=1`): 300 cases of up to 150 steps instead of 12 of up to 60.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use rusqlite::{Connection, OptionalExtension};
use sharecache::Cache;
use sharecache::OpenOptions;
use sharecache::clock::Clock;

use super::{assert_same_content, figures, pick};
use crate::support::Share;

mod restore;

const KEYS: usize = 3;

/// `kv`: text keys with `updated_at` (stamped by the triggers); `counts`: integer keys without.
const SCHEMA: &str = "
    CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL, n INTEGER, updated_at TEXT);
    CREATE TABLE counts (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
    INSERT INTO kv (k, v) VALUES ('k0', 'seed:kv:0'), ('k1', 'seed:kv:1');
    INSERT INTO counts (id, v) VALUES (0, 'seed:counts:0');
";

const TABLES: [&str; 2] = ["kv", "counts"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `INSERT OR REPLACE`: an insert, or an update of an existing row.
    Put,
    /// `UPDATE` (no-op when the row is absent).
    Update,
    /// `DELETE` (no-op when the row is absent).
    Delete,
}

#[derive(Debug, Clone)]
enum Step {
    Write {
        client: usize,
        table: usize,
        key: usize,
        op: Op,
    },
    Sync {
        client: usize,
    },
    /// Every client syncs, twice round (afterwards every client has seen the newest stamp).
    SyncAll,
    /// The clients in `mask` write the same key one after the other, before any sync: the
    /// writes are concurrent, and those of clients whose clocks are behind the newest stamp they
    /// have seen carry the same stamp (their hybrid clocks tick from it), so the tie-break decides.
    Burst {
        mask: u32,
        table: usize,
        key: usize,
    },
    /// The share drops: every operation fails until `ShareUp`.
    ShareDown,
    ShareUp,
    /// A sync during which the `nth` share operation fails (once).
    FlakySync {
        client: usize,
        nth: u64,
    },
    /// Client 0's clock steps back 10 minutes (first occurrence only).
    ClockBack,
    /// Client `into` is replaced by a copy of client `from`'s cache file: a clone, on another
    /// path. Both are synced empty first (skipped if they cannot be): a pending write shared by
    /// the two copies is one version for the engine, which this model does not follow (the
    /// deterministic tests in `instances` cover it).
    Clone {
        from: usize,
        into: usize,
    },
    /// A copy of the remote file is taken (a nightly backup).
    Backup,
    /// A copy taken earlier is put back over the remote file; `declare`: declared authoritative
    /// first (`accept-restore`). See [`restore`] for what the model expects.
    Restore {
        which: usize,
        declare: bool,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    clients: usize,
    /// Clock offsets in minutes of clients 3 and 4 (0, 1, 2 are 0, +60, -60).
    extra_offsets: Vec<i64>,
    batch_size: usize,
    steps: Vec<Step>,
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![Just(Op::Put), Just(Op::Update), Just(Op::Delete)];
    prop_oneof![
        8 => (0..5usize, 0..2usize, 0..KEYS, op)
            .prop_map(|(client, table, key, op)| Step::Write { client, table, key, op }),
        4 => (0..5usize).prop_map(|client| Step::Sync { client }),
        1 => Just(Step::SyncAll),
        2 => (1..32u32, 0..2usize, 0..KEYS).prop_map(|(mask, table, key)| Step::Burst { mask, table, key }),
        1 => Just(Step::ShareDown),
        1 => Just(Step::ShareUp),
        1 => (0..5usize, 1..150u64).prop_map(|(client, nth)| Step::FlakySync { client, nth }),
        1 => Just(Step::ClockBack),
        1 => (0..5usize, 0..5usize).prop_map(|(from, into)| Step::Clone { from, into }),
        1 => Just(Step::Backup),
        1 => (0..8usize, prop::bool::weighted(0.2))
            .prop_map(|(which, declare)| Step::Restore { which, declare }),
    ]
}

fn scenario(max_steps: usize) -> impl Strategy<Value = Scenario> {
    (
        3..=5usize,
        prop::collection::vec(-60i64..=60, 2),
        1..=4usize,
        prop::collection::vec(step(), 10..=max_steps),
    )
        .prop_map(|(clients, extra_offsets, batch_size, steps)| Scenario {
            clients,
            extra_offsets,
            batch_size,
            steps,
        })
}

/// Which row: (table index, key index).
type Key = (usize, usize);

fn pk_text((table, key): Key) -> String {
    match table {
        0 => format!("'k{key}'"),
        _ => format!("{key}"),
    }
}

fn key_of(tbl: &str, pk: &str) -> Option<Key> {
    (0..2)
        .flat_map(|t| (0..KEYS).map(move |k| (t, k)))
        .find(|&k| TABLES[k.0] == tbl && pk_text(k) == pk)
}

/// One acknowledged write.
#[derive(Debug, Clone)]
struct Version {
    key: Key,
    stamp: String,
    origin: String,
    /// The value written, `None` for a delete.
    value: Option<String>,
    /// Versions of this key its writer had seen when writing it (transitively).
    knew: BTreeSet<usize>,
    /// Coalesced away before any push (insert + delete of a key the cache did not have).
    void: bool,
    /// The remote's generation its writer followed when writing it.
    generation: String,
}

/// What the test knows about every write and what each client has seen.
#[derive(Debug, Default)]
struct Model {
    versions: Vec<Version>,
    by_stamp: HashMap<(Key, String, String), usize>,
    /// Per client: the versions of each key it has seen.
    seen: Vec<HashMap<Key, BTreeSet<usize>>>,
    /// Per client: its writes of each key since the key's last acknowledged push.
    open: Vec<HashMap<Key, Vec<usize>>>,
}

impl Model {
    fn new(clients: usize) -> Model {
        Model {
            seen: vec![HashMap::new(); clients],
            open: vec![HashMap::new(); clients],
            ..Model::default()
        }
    }

    fn learn(&mut self, client: usize, key: Key, id: usize) {
        let knew = self.versions[id].knew.clone();
        let seen = self.seen[client].entry(key).or_default();
        seen.insert(id);
        seen.extend(knew);
    }

    fn version_id(&self, key: Key, stamp: &str, origin: &str) -> Result<usize, TestCaseError> {
        self.by_stamp
            .get(&(key, stamp.to_string(), origin.to_string()))
            .copied()
            .ok_or_else(|| {
                TestCaseError::fail(format!(
                    "the remote holds a version of {key:?} nobody wrote: stamp {stamp} origin {origin}"
                ))
            })
    }
}

/// The remote's change log: current version per key, and its revision.
struct RemoteLog {
    rev: i64,
    current: BTreeMap<Key, (String, String, bool)>,
}

fn read_log(remote: &Connection) -> RemoteLog {
    let rev = remote
        .query_row("SELECT rev FROM sharecache_meta", [], |r| r.get(0))
        .unwrap();
    let mut current = BTreeMap::new();
    let mut s = remote
        .prepare("SELECT tbl, pk, stamp, origin, deleted FROM sharecache_log ORDER BY rev")
        .unwrap();
    let rows = s
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (tbl, pk, stamp, origin, deleted) = row.unwrap();
        let key = key_of(&tbl, &pk).unwrap_or_else(|| panic!("unexpected log entry {tbl} {pk}"));
        current.insert(key, (stamp, origin, deleted));
    }
    RemoteLog { rev, current }
}

/// Figures over all cases.
#[derive(Debug, Default)]
struct Totals {
    cases: u64,
    steps: u64,
    syncs: u64,
    failed_syncs: u64,
    share_drops: u64,
    failed_ops: u64,
    clock_steps: u64,
    clones: u64,
    backups: u64,
    restores: u64,
    declared: u64,
    re_pushed: u64,
    kept_by_value: u64,
    not_newest: u64,
    writes: u64,
    ties: u64,
    void: u64,
    superseded: u64,
    concurrent: u64,
    conflicts_logged: u64,
    lost: u64,
}

struct Run<'a> {
    share: Share,
    /// A plain connection on the remote through the share, for the model's reads.
    reader: Connection,
    sc: &'a Scenario,
    offsets: Vec<i64>,
    clients: Vec<Option<Cache>>,
    origins: Vec<String>,
    model: Model,
    /// The last version seen of every key in the remote log (pruned entries included).
    log: BTreeMap<Key, (String, String, bool)>,
    down: bool,
    stepped_back: bool,
    writes: u64,
    restores: restore::Restores,
    totals: &'a RefCell<Totals>,
}

impl Run<'_> {
    fn open(&self, client: usize) -> Cache {
        let mut cfg = self.share.config(&format!("c{client}"));
        cfg.batch_size = self.sc.batch_size;
        let clock = Clock::with_offset(chrono::Duration::minutes(self.offsets[client]));
        Cache::open_with(cfg, OpenOptions::default().clock(clock)).unwrap()
    }

    fn cache(&self, client: usize) -> &Cache {
        self.clients[client].as_ref().expect("open")
    }

    /// The remote's change log, read through the share (momentarily up if it is down; no
    /// client is syncing).
    ///
    /// Entries every client has moved past are pruned from the remote log; the model keeps the
    /// last version it saw of every key (read after every sync), so a pruned one stays known.
    fn remote_log(&mut self) -> RemoteLog {
        self.share.control.set_offline(false);
        let mut log = read_log(&self.reader);
        self.share.control.set_offline(self.down);
        for (k, v) in &log.current {
            self.log.insert(*k, v.clone());
        }
        for (k, v) in &self.log {
            log.current.entry(*k).or_insert_with(|| v.clone());
        }
        log
    }

    fn write(&mut self, client: usize, table: usize, key: usize, op: Op) {
        self.writes += 1;
        let value = format!("c{client}:w{}", self.writes);
        let k = (table, key);
        let stamp = {
            let conn = self.cache(client).conn();
            let changed = match (table, op) {
                (0, Op::Put) => conn.execute(
                    "INSERT OR REPLACE INTO kv (k, v, n) VALUES (?1, ?2, ?3)",
                    rusqlite::params![format!("k{key}"), value, self.writes as i64],
                ),
                (0, Op::Update) => conn.execute(
                    "UPDATE kv SET v = ?2, n = ?3 WHERE k = ?1",
                    rusqlite::params![format!("k{key}"), value, self.writes as i64],
                ),
                (0, Op::Delete) => conn.execute("DELETE FROM kv WHERE k = ?1", [format!("k{key}")]),
                (_, Op::Put) => conn.execute(
                    "INSERT OR REPLACE INTO counts (id, v) VALUES (?1, ?2)",
                    rusqlite::params![key as i64, value],
                ),
                (_, Op::Update) => conn.execute(
                    "UPDATE counts SET v = ?2 WHERE id = ?1",
                    rusqlite::params![key as i64, value],
                ),
                (_, Op::Delete) => conn.execute("DELETE FROM counts WHERE id = ?1", [key as i64]),
            }
            .expect("a write on the cache never fails");
            if changed == 0 {
                return;
            }
            // The capture's journal folded: the entry's stamp, as a push would read it.
            sharecache::store::journal::fold(&conn).unwrap();
            let stamp: Option<String> = conn
                .query_row(
                    "SELECT stamp FROM sync_tracking WHERE tbl = ?1 AND pk = ?2 AND op != 'X'",
                    [TABLES[table], &pk_text(k)],
                    |r| r.get(0).map(sharecache::clock::stamp_of_ms),
                )
                .optional()
                .unwrap();
            if let (Some(stamp), 0, true) = (&stamp, table, op != Op::Delete) {
                let ua: String = conn
                    .query_row(
                        "SELECT updated_at FROM kv WHERE k = ?1",
                        [format!("k{key}")],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(&ua, stamp, "updated_at carries the stamp of the write");
            }
            stamp
        };
        let Some(stamp) = stamp else {
            // Insert + delete before any push: the engine forgets both (documented coalescing).
            for id in self.model.open[client].remove(&k).unwrap_or_default() {
                self.model.versions[id].void = true;
            }
            return;
        };
        let id = self.model.versions.len();
        let knew = self.model.seen[client].get(&k).cloned().unwrap_or_default();
        self.model.versions.push(Version {
            key: k,
            stamp: stamp.clone(),
            origin: self.origins[client].clone(),
            value: (op != Op::Delete).then_some(value),
            knew,
            void: false,
            generation: self.restores.generation[client].clone(),
        });
        self.model
            .by_stamp
            .insert((k, stamp, self.origins[client].clone()), id);
        self.model.seen[client].entry(k).or_default().insert(id);
        self.model.open[client].entry(k).or_default().push(id);
    }

    /// Syncs `client`, with the `fail_nth`-th share operation failing once if given.
    fn sync(&mut self, client: usize, fail_nth: Option<u64>) -> Result<bool, TestCaseError> {
        let failed_before = self.share.control.stats().failed;
        if let Some(n) = fail_nth {
            self.share.control.fail_nth(n, false);
        }
        let result = self.cache(client).sync_now();
        self.share.control.clear_faults();
        if fail_nth.is_some() && self.share.control.stats().failed > failed_before {
            self.totals.borrow_mut().failed_ops += 1;
        }
        self.totals.borrow_mut().syncs += 1;
        if let Ok(r) = &result {
            prop_assert_eq!(
                r.deferred,
                0,
                "nothing is written during a sync here, so nothing is deferred"
            );
            self.restores.stale[client] = false;
        } else {
            self.totals.borrow_mut().failed_syncs += 1;
        }
        self.after_sync(client)?;
        Ok(result.is_ok())
    }

    /// Updates what `client` has seen from what the sync left behind.
    fn after_sync(&mut self, client: usize) -> Result<(), TestCaseError> {
        let log = self.remote_log();
        if self.restores.happened {
            self.adopt_repushes(&log.current)?;
        }
        let generation = restore::generation_of(&self.cache(client).conn());
        if generation != self.restores.generation[client] {
            // It followed a declaration: its pending writes were replaced by the remote's rows
            // (kept in the conflict log), not pushed.
            self.model.open[client].clear();
        }
        self.restores.generation[client] = generation;
        let (pending, pull_rev) = {
            let conn = self.cache(client).conn();
            sharecache::store::journal::fold(&conn).unwrap();
            let pending: BTreeSet<Key> = conn
                .prepare("SELECT tbl, pk FROM sync_tracking WHERE op != 'X'")
                .unwrap()
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .map(|(t, p)| key_of(&t, &p).expect("known key"))
                .collect();
            let pull_rev: i64 = conn
                .query_row("SELECT pull_rev FROM sync_state", [], |r| r.get(0))
                .unwrap();
            (pending, pull_rev)
        };
        // Pushed (acknowledged) keys: if the remote does not hold our version, it lost and the
        // winner was applied to the cache.
        let acked: Vec<Key> = self.model.open[client]
            .keys()
            .filter(|k| !pending.contains(k))
            .copied()
            .collect();
        for k in acked {
            let chain = self.model.open[client].remove(&k).unwrap();
            let last = &self.model.versions[*chain.last().unwrap()];
            let Some((stamp, origin, _)) = log.current.get(&k) else {
                return Err(TestCaseError::fail(format!(
                    "client {client}'s push of {k:?} was acknowledged but the remote log has no version"
                )));
            };
            if (stamp, origin) != (&last.stamp, &last.origin) {
                let id = self.model.version_id(k, stamp, origin)?;
                self.model.learn(client, k, id);
            }
        }
        if self.restores.stale[client] {
            // Its cursor may still count the revisions of the remote before the restore.
            return Ok(());
        }
        prop_assert!(pull_rev <= log.rev, "pull cursor ahead of the remote");
        if pull_rev == log.rev {
            for (k, (stamp, origin, _)) in &log.current {
                let id = self.model.version_id(*k, stamp, origin)?;
                self.model.learn(client, *k, id);
            }
        }
        Ok(())
    }

    /// Replaces client `into`'s cache with a copy of client `from`'s (both closed), when neither
    /// holds a pending write.
    fn clone_cache(&mut self, from: usize, into: usize) -> Result<(), TestCaseError> {
        if self.down
            || !self.sync(into, None)?
            || !self.model.open[into].is_empty()
            || !self.sync(from, None)?
            || !self.model.open[from].is_empty()
        {
            return Ok(());
        }
        self.totals.borrow_mut().clones += 1;
        let source = self.cache(from).cache_path().unwrap().to_path_buf();
        let target = self.cache(into).cache_path().unwrap().to_path_buf();
        self.clients[from] = None;
        self.clients[into] = None;
        let wal = |p: &std::path::Path, ext: &str| {
            std::path::PathBuf::from(format!("{}-{ext}", p.display()))
        };
        prop_assert!(!wal(&source, "wal").exists(), "a closed cache has no WAL");
        for ext in ["wal", "shm"] {
            let _ = std::fs::remove_file(wal(&target, ext));
        }
        std::fs::copy(&source, &target).unwrap();
        self.clients[from] = Some(self.open(from));
        let clone = self.open(into);
        let origin: String = clone
            .conn()
            .query_row("SELECT origin FROM sync_state", [], |r| r.get(0))
            .unwrap();
        prop_assert!(
            !self.origins.contains(&origin),
            "the clone took a new origin, not one of a live client"
        );
        prop_assert_eq!(&self.origins[from], &origin_of(self.cache(from)));
        self.origins[into] = origin;
        self.clients[into] = Some(clone);
        // The clone knows what its original knew and holds its pending writes (the same
        // versions: pushed by either, they are one version).
        self.model.seen[into] = self.model.seen[from].clone();
        self.model.open[into] = self.model.open[from].clone();
        self.restores.generation[into] = self.restores.generation[from].clone();
        self.restores.stale[into] = self.restores.stale[from];
        Ok(())
    }

    fn run(&mut self) -> Result<(), TestCaseError> {
        let n = self.sc.clients;
        for step in &self.sc.steps {
            self.totals.borrow_mut().steps += 1;
            match *step {
                Step::Write {
                    client,
                    table,
                    key,
                    op,
                } => self.write(client % n, table, key, op),
                Step::Sync { client } => {
                    self.sync(client % n, None)?;
                }
                Step::SyncAll => {
                    for _ in 0..2 {
                        for c in 0..n {
                            self.sync(c, None)?;
                        }
                    }
                }
                Step::Burst { mask, table, key } => {
                    for c in (0..n).filter(|c| mask & (1 << c) != 0) {
                        self.write(c, table, key, Op::Put);
                    }
                }
                Step::ShareDown => {
                    if !self.down {
                        self.totals.borrow_mut().share_drops += 1;
                    }
                    self.down = true;
                    self.share.control.set_offline(true);
                }
                Step::ShareUp => {
                    self.down = false;
                    self.share.control.set_offline(false);
                }
                Step::FlakySync { client, nth } => {
                    self.sync(client % n, Some(nth))?;
                }
                Step::ClockBack if !self.stepped_back => {
                    self.stepped_back = true;
                    self.totals.borrow_mut().clock_steps += 1;
                    self.clients[0] = None;
                    self.offsets[0] -= 10;
                    self.clients[0] = Some(self.open(0));
                }
                Step::ClockBack => {}
                Step::Clone { from, into } if from % n != into % n => {
                    self.clone_cache(from % n, into % n)?;
                }
                Step::Clone { .. } => {}
                Step::Backup => self.backup(),
                Step::Restore { which, declare } => self.restore(which, declare)?,
            }
        }
        // Quiesce: the share is back, every client syncs twice.
        self.down = false;
        self.share.control.set_offline(false);
        self.share.control.clear_faults();
        for round in 0..2 {
            for c in 0..n {
                let r = self.cache(c).sync_now();
                self.totals.borrow_mut().syncs += 1;
                prop_assert!(r.is_ok(), "quiesce round {round}, client {c}: {:?}", r);
                self.restores.stale[c] = false;
                self.after_sync(c)?;
            }
        }
        self.check()
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let remote = self.share.remote();
        for c in 0..self.sc.clients {
            assert_same_content(&format!("client {c}"), &self.cache(c).conn(), &remote);
            prop_assert_eq!(
                self.cache(c).status().unwrap().pending_writes,
                0,
                "client {} has pending writes after quiescing",
                c
            );
        }
        // Entries every client has moved past are pruned: the last version seen of each key.
        let log = self.remote_log();
        let conflicts = read_conflicts(&remote);
        let live: Vec<usize> = (0..self.model.versions.len())
            .filter(|&i| !self.model.versions[i].void)
            .collect();
        let superseded: BTreeSet<usize> = live
            .iter()
            .flat_map(|&i| self.model.versions[i].knew.iter().copied())
            .collect();
        let mut t = self.totals.borrow_mut();
        t.cases += 1;
        t.void += (self.model.versions.len() - live.len()) as u64;
        t.writes += live.len() as u64;
        t.conflicts_logged += conflicts.len() as u64;
        let generation: String = remote
            .query_row("SELECT generation FROM sharecache_meta", [], |r| r.get(0))
            .unwrap();
        let restored = self.restores.happened;
        for table in 0..2 {
            for key in 0..KEYS {
                let k = (table, key);
                let mine: Vec<&Version> = live
                    .iter()
                    .map(|&i| &self.model.versions[i])
                    .filter(|v| v.key == k)
                    .collect();
                // Newest stamp wins among the writes made in the remote's current generation.
                let newest = mine
                    .iter()
                    .filter(|v| v.generation == generation)
                    .max_by(|a, b| (&a.stamp, &a.origin).cmp(&(&b.stamp, &b.origin)));
                let frontier: Vec<(usize, &Version)> = live
                    .iter()
                    .filter(|i| !superseded.contains(i))
                    .map(|&i| (i, &self.model.versions[i]))
                    .filter(|(_, v)| v.key == k)
                    .collect();
                let actual = row_value(&remote, k);
                if let Some(newest) = newest {
                    let newest_frontier = frontier
                        .iter()
                        .map(|(_, v)| v)
                        .filter(|v| v.generation == generation)
                        .max_by(|a, b| (&a.stamp, &a.origin).cmp(&(&b.stamp, &b.origin)))
                        .expect("some write is not superseded");
                    prop_assert!(
                        (&newest.stamp, &newest.origin)
                            == (&newest_frontier.stamp, &newest_frontier.origin),
                        "{:?}: the newest write {:?} was superseded by an older-stamped one; frontier {:?}",
                        k,
                        newest,
                        frontier
                    );
                    if restored && actual != newest.value {
                        // A reconcile decides a row of unknown version (the seed) the restore
                        // took away against the cache's clock at the break, not the row's own
                        // stamp (README, Known limits): the newest stamp need not win. What must hold: the remote holds a value
                        // somebody wrote, and (below) no write is lost.
                        prop_assert!(
                            actual.is_none()
                                || actual == self.restores.base[&k]
                                || actual == seed(k)
                                || mine.iter().any(|v| v.value == actual),
                            "{:?}: the remote holds {:?}, which nobody wrote",
                            k,
                            actual
                        );
                        t.not_newest += 1;
                    } else {
                        prop_assert_eq!(
                            &actual,
                            &newest.value,
                            "{:?}: the remote does not hold the winner {:?}; writes of the key: {:#?}",
                            k,
                            newest,
                            mine
                        );
                    }
                    // The change log's current version is the winner.
                    let logged = log
                        .current
                        .get(&k)
                        .map(|(s, o, d)| (s.clone(), o.clone(), *d));
                    let winner = (
                        newest.stamp.clone(),
                        newest.origin.clone(),
                        newest.value.is_none(),
                    );
                    // After a restore the row may hold the winner's value under an older entry
                    // of that value, or under none (see `restore`).
                    let same_value = restored
                        && (actual != newest.value
                            || logged.as_ref().is_none_or(|(s, o, _)| {
                                self.model
                                    .by_stamp
                                    .get(&(k, s.clone(), o.clone()))
                                    .is_some_and(|&i| self.model.versions[i].value == newest.value)
                            }));
                    prop_assert!(
                        logged.as_ref() == Some(&winner)
                            || (logged.is_none() && winner.2)
                            || same_value,
                        "{:?}: the change log's current version {:?} is not the winner {:?}",
                        k,
                        logged,
                        winner
                    );
                } else {
                    // Not written in this generation: what the copy declared authoritative held
                    // (the seed when nothing was declared).
                    prop_assert_eq!(
                        &actual,
                        &self.restores.base[&k],
                        "{:?} was not written in the remote's generation; writes of the key: {:#?}",
                        k,
                        mine
                    );
                }
                t.superseded += mine.len() as u64 - frontier.len() as u64;
                for (i, a) in mine.iter().enumerate() {
                    t.ties += mine[i + 1..]
                        .iter()
                        .filter(|b| b.stamp == a.stamp && b.origin != a.origin)
                        .count() as u64;
                }
                for (_, v) in &frontier {
                    if newest.is_some_and(|n| (&v.stamp, &v.origin) == (&n.stamp, &n.origin)) {
                        continue;
                    }
                    if restored && v.value == actual {
                        // Carried again by a reconcile, and current; a delete of a key that is
                        // gone (a delete rolled back by a declared copy and deleted again since).
                        continue;
                    }
                    t.concurrent += 1;
                    let kept = conflicts.iter().any(|c| {
                        c.tbl == TABLES[k.0]
                            && c.pk == pk_text(k)
                            && c.loser_stamp == v.stamp
                            && c.loser_origin == v.origin
                            && c.loser_value == v.value
                    });
                    if kept {
                        continue;
                    }
                    if restored
                        && restore::kept_after_restore(
                            &self.restores,
                            v,
                            v.generation != generation,
                            &conflicts,
                        )
                    {
                        t.kept_by_value += 1;
                        continue;
                    }
                    t.lost += 1;
                    return Err(TestCaseError::fail(format!(
                        "LOST: {k:?}: write {v:?} is neither current nor in the conflict log; current {actual:?}, winner {newest:?}; conflict log {conflicts:#?}"
                    )));
                }
            }
        }
        drop(t);
        Ok(())
    }
}

fn origin_of(c: &Cache) -> String {
    c.conn()
        .query_row("SELECT origin FROM sync_state", [], |r| r.get(0))
        .unwrap()
}

fn seed(k: Key) -> Option<String> {
    match k {
        (0, 0) | (0, 1) | (1, 0) => Some(format!("seed:{}:{}", TABLES[k.0], k.1)),
        _ => None,
    }
}

fn row_value(c: &Connection, k: Key) -> Option<String> {
    match k.0 {
        0 => c.query_row(
            "SELECT v FROM kv WHERE k = ?1",
            [format!("k{}", k.1)],
            |r| r.get(0),
        ),
        _ => c.query_row("SELECT v FROM counts WHERE id = ?1", [k.1 as i64], |r| {
            r.get(0)
        }),
    }
    .optional()
    .unwrap()
}

#[derive(Debug)]
struct Conflict {
    tbl: String,
    pk: String,
    loser_stamp: String,
    loser_origin: String,
    loser_value: Option<String>,
}

fn read_conflicts(remote: &Connection) -> Vec<Conflict> {
    let mut s = remote
        .prepare("SELECT tbl, pk, loser_stamp, loser_origin, loser_op, loser_row FROM sharecache_conflicts ORDER BY id")
        .unwrap();
    s.query_map([], |r| {
        let op: String = r.get(4)?;
        let row: Option<String> = r.get(5)?;
        let loser_value = match (op.as_str(), row) {
            ("delete", _) | (_, None) => None,
            (_, Some(json)) => {
                let v: serde_json::Value = serde_json::from_str(&json).expect("loser_row is JSON");
                Some(v["v"].as_str().expect("loser_row has v").to_string())
            }
        };
        Ok(Conflict {
            tbl: r.get(0)?,
            pk: r.get(1)?,
            loser_stamp: r.get(2)?,
            loser_origin: r.get(3)?,
            loser_value,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn run_case(sc: &Scenario, totals: &RefCell<Totals>) -> Result<(), TestCaseError> {
    let share = Share::with_schema(SCHEMA);
    // Faults, not latency, are the point here: a fast share runs more cases.
    share.control.set_latency(Duration::ZERO);
    let reader = share.remote();
    let mut offsets = vec![0, 60, -60];
    offsets.extend(&sc.extra_offsets);
    offsets.truncate(sc.clients);
    let mut run = Run {
        share,
        reader,
        sc,
        offsets,
        clients: Vec::new(),
        origins: Vec::new(),
        model: Model::new(sc.clients),
        log: BTreeMap::new(),
        down: false,
        stepped_back: false,
        writes: 0,
        restores: restore::Restores::new(),
        totals,
    };
    for c in 0..sc.clients {
        let cache = run.open(c);
        let origin: String = cache
            .conn()
            .query_row("SELECT origin FROM sync_state", [], |r| r.get(0))
            .unwrap();
        run.origins.push(origin);
        run.restores
            .generation
            .push(restore::generation_of(&cache.conn()));
        run.restores.stale.push(false);
        prop_assert_eq!(
            &run.restores.generation[c],
            &restore::remote_generation(&run.reader),
            "a new cache follows the remote's generation"
        );
        run.clients.push(Some(cache));
    }
    let result = run.run();
    run.share.control.set_offline(false);
    run.share.control.clear_faults();
    result
}

#[test]
fn clients_on_a_flaky_share_with_skewed_clocks_converge_to_the_newest_write_and_lose_nothing() {
    let _machine = super::machine_shared();
    let cases = pick(64, 2000);
    let max_steps = pick(60, 150);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        max_shrink_iters: pick(64, 512),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let totals = RefCell::new(Totals::default());
    let started = std::time::Instant::now();
    let result = runner.run(&scenario(max_steps), |sc| run_case(&sc, &totals));
    let t = totals.into_inner();
    figures(
        "convergence",
        &[
            ("cases", t.cases),
            ("steps", t.steps),
            ("syncs", t.syncs),
            ("failed_syncs", t.failed_syncs),
            ("share_drops", t.share_drops),
            ("failed_ops", t.failed_ops),
            ("clock_steps", t.clock_steps),
            ("clones", t.clones),
            ("backups", t.backups),
            ("restores", t.restores),
            ("declared", t.declared),
            ("re_pushed", t.re_pushed),
            ("kept_by_value", t.kept_by_value),
            ("not_newest", t.not_newest),
            ("writes_checked", t.writes),
            ("stamp_ties", t.ties),
            ("void", t.void),
            ("superseded", t.superseded),
            ("concurrent_losers", t.concurrent),
            ("conflicts_logged", t.conflicts_logged),
            ("lost", t.lost),
            ("secs", started.elapsed().as_secs()),
        ],
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A conflict decided against the pushing client changes no row, so the remote's change-log
/// revision stays put; the other clients must still get the conflict-log entry (their
/// `status().conflicts` and `sync_conflicts` are how users find losing versions offline).
#[test]
fn a_conflict_the_pusher_lost_reaches_every_clients_conflict_log() {
    let share = Share::new();
    let (a, b, c) = (share.client("a"), share.client("b"), share.client("c"));
    for x in [&a, &b, &c] {
        x.sync_now().unwrap();
    }
    a.conn()
        .execute("UPDATE tasks SET title = 'older (a)' WHERE id = 't1'", [])
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    b.conn()
        .execute("UPDATE tasks SET title = 'newer (b)' WHERE id = 't1'", [])
        .unwrap();
    b.sync_now().unwrap();
    c.sync_now().unwrap();
    assert_eq!(a.sync_now().unwrap().conflicts, 1, "a's older edit loses");
    let remote_log: i64 =
        crate::support::one(&share.remote(), "SELECT count(*) FROM sharecache_conflicts");
    assert_eq!(remote_log, 1);
    for (name, x) in [("a", &a), ("b", &b), ("c", &c)] {
        x.sync_now().unwrap();
        assert_eq!(
            x.status().unwrap().conflicts,
            1,
            "client {name} has the conflict-log entry after syncing"
        );
    }
}

/// The hybrid clock must be above every stamp a cache starts with: a client whose cache is
/// made from the remote after others wrote (first open, or a rebuild) has "seen" their stamps.
#[test]
fn a_client_made_from_the_remote_stamps_its_edits_after_every_stamp_it_copied() {
    let share = Share::new();
    let ahead = share.client_with_clock("ahead", chrono::Duration::hours(1));
    ahead
        .conn()
        .execute("UPDATE notes SET body = 'from ahead' WHERE id = 1", [])
        .unwrap();
    ahead.sync_now().unwrap();
    let copied: String = crate::support::one(
        &share.remote(),
        "SELECT stamp FROM sharecache_log WHERE tbl = 'notes' AND pk = '1' ORDER BY rev DESC LIMIT 1",
    );
    let late = share.client("late");
    late.conn()
        .execute("UPDATE notes SET body = 'from late' WHERE id = 1", [])
        .unwrap();
    sharecache::store::journal::fold(&late.conn()).unwrap();
    let stamp = sharecache::clock::stamp_of_ms(crate::support::one(
        &late.conn(),
        "SELECT stamp FROM sync_tracking WHERE tbl = 'notes' AND pk = '1'",
    ));
    assert!(
        stamp > copied,
        "the late client's edit of a row it copied is stamped {stamp}, not after the copied version's {copied}"
    );
}

/// Consequence of the stamp above: the outcome of a three-way conflict must not depend on the
/// order in which the clients sync. `x` (clock +1 h) writes first; `c` edits concurrently; `late`
/// joins after `x` pushed and overwrites `x`'s version (having seen it). Whichever of `c` and
/// `late` syncs first, the same version must win everywhere.
#[test]
fn the_winner_of_a_conflict_does_not_depend_on_the_order_clients_sync_in() {
    let run = |late_first: bool| -> String {
        let share = Share::new();
        let x = share.client_with_clock("x", chrono::Duration::hours(1));
        let c = share.client("c");
        c.sync_now().unwrap();
        x.conn()
            .execute("UPDATE notes SET body = 'x' WHERE id = 1", [])
            .unwrap();
        x.sync_now().unwrap();
        c.conn()
            .execute("UPDATE notes SET body = 'c (concurrent)' WHERE id = 1", [])
            .unwrap();
        let late = share.client_with_clock("late", -chrono::Duration::hours(1));
        late.conn()
            .execute("UPDATE notes SET body = 'late (after x)' WHERE id = 1", [])
            .unwrap();
        let order: [&Cache; 2] = if late_first { [&late, &c] } else { [&c, &late] };
        for client in order {
            client.sync_now().unwrap();
        }
        for client in [&x, &c, &late] {
            client.sync_now().unwrap();
        }
        crate::support::one(&share.remote(), "SELECT body FROM notes WHERE id = 1")
    };
    let (late_first, c_first) = (run(true), run(false));
    assert_eq!(
        late_first, c_first,
        "the winner depends on the sync order: late first -> {late_first:?}, c first -> {c_first:?}"
    );
}

/// A client that has not synced since its cache was made (a laptop set up, then taken offline)
/// edits a row; meanwhile another client deletes it, newer. Every client that ever synced has
/// pulled the delete, so its tombstone may be pruned; but the laptop has not, and its edit is
/// concurrent with the delete. Found by the long form of the property test above.
#[test]
fn an_edit_from_a_client_that_never_synced_still_loses_to_a_newer_concurrent_delete() {
    let share = Share::new();
    let laptop = share.client_with_clock("laptop", -chrono::Duration::hours(1));
    let a = share.client("a");
    let b = share.client("b");
    laptop
        .conn()
        .execute("UPDATE notes SET body = 'edited offline' WHERE id = 1", [])
        .unwrap();
    a.conn()
        .execute("DELETE FROM notes WHERE id = 1", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap(); // b pulls the delete
    b.conn()
        .execute("INSERT INTO notes (id, body) VALUES (2, 'b')", [])
        .unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap(); // a pulls b's insert: a and b have both pulled the delete
    let tombstones: i64 = crate::support::one(
        &share.remote(),
        "SELECT count(*) FROM sharecache_log WHERE tbl = 'notes' AND pk = '1' AND deleted = 1",
    );
    laptop.sync_now().unwrap();
    b.sync_now().unwrap();
    let remote = share.remote();
    let body: Option<String> = remote
        .query_row("SELECT body FROM notes WHERE id = 1", [], |r| r.get(0))
        .optional()
        .unwrap();
    let logged: i64 = crate::support::one(
        &remote,
        "SELECT count(*) FROM sharecache_conflicts WHERE loser_row LIKE '%edited offline%'",
    );
    assert!(
        body.is_none() && logged == 1,
        "the newer delete must win and the laptop's edit be kept in the conflict log; the remote \
         has {body:?}, the conflict log {logged} entry for the edit (the delete's tombstone was \
         {} when the laptop pushed)",
        if tombstones == 0 {
            "already pruned"
        } else {
            "still there"
        }
    );
}

/// Prunes the whole change log, as the registry may once a client has been away longer than it
/// remembers clients (30 days): every version the laptop's pending edit could be concurrent with
/// is gone.
fn prune_all_history(share: &Share) {
    let remote = share.remote();
    let rev: i64 = crate::support::one(&remote, "SELECT rev FROM sharecache_meta");
    sharecache::remote::share::changelog::prune(&remote, rev, i64::MAX).unwrap();
    let left: i64 = crate::support::one(&remote, "SELECT count(*) FROM sharecache_log");
    assert_eq!(left, 0, "precondition: the log is pruned");
}

/// What the remote, its conflict log and the laptop's cache hold for note 1 after the laptop syncs.
fn note_1_after_the_laptop_syncs(
    share: &Share,
    laptop: &Cache,
    lost: &str,
) -> (String, i64, String) {
    laptop.sync_now().unwrap();
    let remote = share.remote();
    let body: String = crate::support::one(&remote, "SELECT body FROM notes WHERE id = 1");
    let logged: i64 = crate::support::one(
        &remote,
        &format!("SELECT count(*) FROM sharecache_conflicts WHERE loser_row LIKE '%{lost}%'"),
    );
    let cached: String = crate::support::one(&laptop.conn(), "SELECT body FROM notes WHERE id = 1");
    (body, logged, cached)
}

#[test]
fn an_edit_older_than_the_pruned_history_loses_to_the_remote_row_and_is_kept_in_the_conflict_log() {
    let share = Share::new();
    let laptop = share.client_with_clock("laptop", -chrono::Duration::hours(1));
    let a = share.client("a");
    laptop
        .conn()
        .execute("UPDATE notes SET body = 'edited offline' WHERE id = 1", [])
        .unwrap();
    a.conn()
        .execute("UPDATE notes SET body = 'from a' WHERE id = 1", [])
        .unwrap();
    a.sync_now().unwrap();
    prune_all_history(&share);
    assert_eq!(
        note_1_after_the_laptop_syncs(&share, &laptop, "edited offline"),
        ("from a".to_string(), 1, "from a".to_string()),
        "a's newer edit must stay (it may be concurrent with the laptop's), the laptop's edit be \
         in the conflict log and the laptop's cache show a's edit"
    );
}

#[test]
fn an_edit_newer_than_the_pruned_history_wins_and_the_row_it_overwrote_is_kept_in_the_conflict_log()
{
    let share = Share::new();
    let laptop = share.client_with_clock("laptop", chrono::Duration::hours(1));
    let a = share.client("a");
    a.conn()
        .execute("UPDATE notes SET body = 'from a' WHERE id = 1", [])
        .unwrap();
    a.sync_now().unwrap();
    laptop
        .conn()
        .execute("UPDATE notes SET body = 'edited offline' WHERE id = 1", [])
        .unwrap();
    prune_all_history(&share);
    assert_eq!(
        note_1_after_the_laptop_syncs(&share, &laptop, "from a"),
        (
            "edited offline".to_string(),
            1,
            "edited offline".to_string()
        ),
        "the laptop's newer edit must win, and a's version, which it may never have seen, be in \
         the conflict log"
    );
}

/// Found by the long form of the contention test on the append-only log: a client pulls another
/// client's older version of a row in one fetch and its own newer, winning version only in a later
/// fetch; skipping its own entry left the older version in its cache for good.
#[test]
fn a_pull_that_meets_an_older_version_before_its_own_newer_one_ends_with_its_own() {
    let share = Share::new();
    let c0 = share.client("c0");
    let c1 = share.client("c1");
    c0.conn()
        .execute("UPDATE notes SET body = 'from c0' WHERE id = 1", [])
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    c1.conn()
        .execute("UPDATE notes SET body = 'from c1' WHERE id = 1", [])
        .unwrap();
    c0.sync_now().unwrap();
    // More than one fetch (500 entries) between c0's version and the one c1 is about to push.
    c0.conn()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 100 UNION ALL SELECT i + 1 FROM n WHERE i < 799) \
             INSERT INTO notes (id, body) SELECT i, 'filler' FROM n;",
        )
        .unwrap();
    c0.sync_now().unwrap();
    let r = c1.sync_now().unwrap();
    assert_eq!(
        r.conflicts, 1,
        "precondition: c1's newer edit won a conflict"
    );
    let remote: String =
        crate::support::one(&share.remote(), "SELECT body FROM notes WHERE id = 1");
    let cached: String = crate::support::one(&c1.conn(), "SELECT body FROM notes WHERE id = 1");
    assert_eq!(
        (remote.as_str(), cached.as_str()),
        ("from c1", "from c1"),
        "the remote and c1's cache must both hold c1's winning edit"
    );
}

/// Found by CI (stop 21): the minimal failing scenario of the property test, replayed.
#[test]
fn regression_two_restores_of_one_backup_with_a_flaky_sync_and_a_clock_step() {
    let _machine = super::machine_shared();
    use Op::*;
    use Step::*;
    let w = |client, table, key, op| Write {
        client,
        table,
        key,
        op,
    };
    let sc = Scenario {
        clients: 4,
        extra_offsets: vec![0, 0],
        batch_size: 1,
        steps: vec![
            w(1, 0, 0, Put),
            Backup,
            w(0, 0, 1, Update),
            SyncAll,
            Restore {
                which: 3,
                declare: false,
            },
            FlakySync { client: 4, nth: 74 },
            Restore {
                which: 3,
                declare: false,
            },
            w(1, 0, 0, Update),
            Sync { client: 1 },
            Sync { client: 0 },
            Sync { client: 2 },
            SyncAll,
            w(3, 1, 1, Update),
            ClockBack,
            w(2, 1, 2, Update),
            Backup,
            ShareUp,
            FlakySync { client: 0, nth: 32 },
            w(2, 1, 2, Delete),
            w(3, 0, 2, Delete),
        ],
    };
    let totals = RefCell::new(Totals::default());
    if let Err(e) = run_case(&sc, &totals) {
        panic!("{e}");
    }
}
