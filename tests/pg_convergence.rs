//! Convergence through a PostgreSQL server, as a property test (issue 16: the property the
//! share's `reliability::convergence` checks, against the server): three caches (through a TCP
//! proxy) and a program writing the server directly (a `psql` session) run a random script of
//! inserts, updates and deletes on a few shared keys (conflicts are frequent), syncs in random
//! order, network outages (the proxy refuses the caches; the direct writer goes on) and server
//! restarts (every session of the database terminated, as a restart does to its clients); then
//! the network comes back, every cache syncs until quiet, and the oracle checks:
//!
//! - every cache holds exactly what the server holds;
//! - zero lost: every acknowledged write that no later write superseded is the current value of
//!   its key, or a loser in the conflict log.
//!
//! A write is *superseded* when a later write of the same key was made by a writer that had seen
//! it: its own next write, or another's after pulling it (what a cache holds after a sync, and
//! what it holds when it writes, it has seen, and so the deletes that reached the server of the
//! keys it lacks after a sync; the direct writer sees the server). A delete of a
//! row that only this cache's own unpushed insert had created is *void*: the outbox drops both.
//! (The share's test adds faults, clocks, clones and restores; this one checks the server's
//! ordering, locking and numbering under the same rule.)
//!
//! `SHARECACHE_PG_CASES` sets the number of cases (default 6).

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use sharecache::config::EnableCache;
use sharecache::{Cache, Config};

use crate::support::pg;

const KEYS: usize = 4;
const CLIENTS: usize = 3;
/// The direct writer's index among the writers.
const DIRECT: usize = CLIENTS;

#[derive(Debug, Clone)]
enum Step {
    /// Writer `who` sets key `k` (a new unique value).
    Put { who: usize, k: usize },
    /// Writer `who` deletes key `k`.
    Delete { who: usize, k: usize },
    /// Cache `who` syncs (an outage makes it fail as offline: nothing pushed).
    Sync { who: usize },
    /// The caches' network goes down, or comes back.
    Outage { down: bool },
    /// The server terminates every session of the database (a restart, to its clients).
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..=CLIENTS, 0..KEYS).prop_map(|(who, k)| Step::Put { who, k }),
        1 => (0..=CLIENTS, 0..KEYS).prop_map(|(who, k)| Step::Delete { who, k }),
        3 => (0..CLIENTS).prop_map(|who| Step::Sync { who }),
        1 => any::<bool>().prop_map(|down| Step::Outage { down }),
        1 => Just(Step::Restart),
    ]
}

/// One acknowledged write.
#[derive(Debug, Clone)]
struct Write {
    who: usize,
    key: String,
    /// `None`: a delete.
    value: Option<String>,
    /// For a delete: the value it removed (what the writer had).
    removed: Option<String>,
    superseded: bool,
    void: bool,
    /// It reached the server (its cache synced since; a direct write at once).
    pushed: bool,
}

struct World {
    db: pg::PgDb,
    proxy: crate::support::proxy::Proxy,
    caches: Vec<Cache>,
    writes: Vec<Write>,
    /// What each writer has seen (values).
    seen: Vec<HashSet<String>>,
    /// Per cache, the keys it created (inserted when it lacked them) since its last push.
    unpushed_inserts: Vec<HashSet<String>>,
    n: u64,
    _dir: tempfile::TempDir,
}

impl World {
    fn new(db: pg::PgDb) -> World {
        db.connect()
            .batch_execute("CREATE TABLE kv (k text PRIMARY KEY, v text)")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let proxy = crate::support::proxy::Proxy::start(db.server_addr());
        let url = db.url_via(proxy.addr());
        let caches = (0..CLIENTS)
            .map(|i| {
                let mut c = Config::for_remote(url.as_str());
                c.cache_directory = dir.path().join(format!("cache-{i}"));
                c.enable_cache = EnableCache::On;
                c.background = false;
                Cache::open(c).unwrap()
            })
            .collect();
        World {
            db,
            proxy,
            caches,
            writes: Vec::new(),
            seen: vec![HashSet::new(); CLIENTS + 1],
            unpushed_inserts: vec![HashSet::new(); CLIENTS],
            n: 0,
            _dir: dir,
        }
    }

    fn cache_rows(&self, i: usize) -> BTreeMap<String, String> {
        let conn = self.caches[i].conn();
        let mut s = conn.prepare("SELECT k, v FROM kv").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn server_rows(&self) -> BTreeMap<String, String> {
        self.db
            .connect()
            .query("SELECT k, v FROM kv", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// `who` writes `key` having seen `current`: earlier writes of the key it had seen are
    /// superseded.
    fn supersede(&mut self, who: usize, key: &str) {
        let seen = &self.seen[who];
        for w in self.writes.iter_mut().filter(|w| w.key == key) {
            let known = w.who == who
                || match (&w.value, &w.removed) {
                    (Some(v), _) => seen.contains(v),
                    (None, Some(r)) => seen.contains(&format!("deleted:{r}")),
                    (None, None) => false,
                };
            if known {
                w.superseded = true;
            }
        }
    }

    fn run(&mut self, s: &Step) {
        match *s {
            Step::Put { who, k } => {
                self.n += 1;
                let key = format!("k{k}");
                let value = format!("w{who}-{}", self.n);
                let had = self.current(who, &key);
                if let Some(v) = &had {
                    self.seen[who].insert(v.clone());
                } else if who == DIRECT {
                    // The server lacks the row: the direct writer sees the deletes it got.
                    self.see_deletes(who, &key);
                }
                self.supersede(who, &key);
                if who == DIRECT {
                    self.db
                        .connect()
                        .execute(
                            "INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                            &[&key, &value],
                        )
                        .unwrap();
                } else {
                    self.caches[who]
                        .conn()
                        .execute(
                            "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                            [&key, &value],
                        )
                        .unwrap();
                    if had.is_none() {
                        self.unpushed_inserts[who].insert(key.clone());
                    }
                }
                self.seen[who].insert(value.clone());
                self.writes.push(Write {
                    who,
                    key,
                    value: Some(value),
                    removed: None,
                    superseded: false,
                    void: false,
                    pushed: who == DIRECT,
                });
            }
            Step::Delete { who, k } => {
                let key = format!("k{k}");
                let Some(had) = self.current(who, &key) else {
                    return; // nothing to delete: no write
                };
                self.seen[who].insert(had.clone());
                self.supersede(who, &key);
                // A row this cache created and deletes before any push: the outbox drops it all.
                let void = who != DIRECT && self.unpushed_inserts[who].contains(&key);
                if who == DIRECT {
                    self.db
                        .connect()
                        .execute("DELETE FROM kv WHERE k = $1", &[&key])
                        .unwrap();
                } else {
                    self.caches[who]
                        .conn()
                        .execute("DELETE FROM kv WHERE k = ?1", [&key])
                        .unwrap();
                    self.unpushed_inserts[who].remove(&key);
                }
                if void {
                    // Its writes of the row never reach the server.
                    for w in self
                        .writes
                        .iter_mut()
                        .filter(|w| w.who == who && w.key == key)
                    {
                        w.void = true;
                    }
                }
                self.seen[who].insert(format!("deleted:{had}"));
                self.writes.push(Write {
                    who,
                    key,
                    value: None,
                    removed: Some(had),
                    superseded: false,
                    void,
                    pushed: who == DIRECT,
                });
            }
            Step::Outage { down } => self.proxy.set_offline(down),
            Step::Restart => {
                self.db
                    .connect()
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .unwrap();
            }
            Step::Sync { who } => {
                if let Err(e) = self.caches[who].sync_now() {
                    // The network is down, or the server just dropped the session: offline,
                    // and nothing of the sync pushed (its write never reached COMMIT).
                    assert_eq!(e.kind(), sharecache::ErrorKind::Offline, "{e}");
                    return;
                }
                self.unpushed_inserts[who].clear();
                for w in self.writes.iter_mut().filter(|w| w.who == who) {
                    w.pushed = true;
                }
                let rows = self.cache_rows(who);
                // A key the cache lacks after a sync: it has seen the deletes that reached the
                // server (it pulled them, or never had the row they removed).
                let lacking: Vec<String> = (0..KEYS)
                    .map(|k| format!("k{k}"))
                    .filter(|k| !rows.contains_key(k))
                    .collect();
                for key in &lacking {
                    self.see_deletes(who, key);
                }
                self.seen[who].extend(rows.into_values());
            }
        }
    }

    /// `who` lacks `key` and knows the server as of now: it has seen the deletes of the key that
    /// reached the server.
    fn see_deletes(&mut self, who: usize, key: &str) {
        for w in &self.writes {
            if let (true, None, Some(r)) = (w.pushed && w.key == key, &w.value, &w.removed) {
                self.seen[who].insert(format!("deleted:{r}"));
            }
        }
    }

    /// What `who` holds for `key` now (the direct writer: the server).
    fn current(&self, who: usize, key: &str) -> Option<String> {
        if who == DIRECT {
            self.server_rows().get(key).cloned()
        } else {
            self.cache_rows(who).get(key).cloned()
        }
    }
}

fn check(script: &[Step]) -> Result<(), TestCaseError> {
    let Some(db) = pg::database("convergence") else {
        return Ok(());
    };
    let mut w = World::new(db);
    for s in script {
        w.run(s);
    }
    w.proxy.set_offline(false);
    for _ in 0..3 {
        for i in 0..CLIENTS {
            // The first after a restart may find its session gone (offline); then it reconnects.
            if w.caches[i].sync_now().is_err() {
                w.caches[i].sync_now().unwrap();
            }
        }
    }
    let server = w.server_rows();
    for i in 0..CLIENTS {
        prop_assert_eq!(
            &w.cache_rows(i),
            &server,
            "cache {} differs from the server",
            i
        );
    }
    let losers: Vec<(String, Option<String>, String)> =
        w.db.connect()
            .query(
                "SELECT pk, loser_row, loser_op FROM sharecache.conflicts",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    for x in w.writes.iter().filter(|x| !x.superseded && !x.void) {
        let pk = format!("'{}'", x.key);
        let kept = match &x.value {
            Some(v) => {
                server.get(&x.key) == Some(v)
                    || losers.iter().any(|(k, row, _)| {
                        *k == pk && row.as_deref().is_some_and(|r| r.contains(v.as_str()))
                    })
            }
            None => {
                !server.contains_key(&x.key)
                    || losers.iter().any(|(k, _, op)| *k == pk && op == "delete")
            }
        };
        prop_assert!(
            kept,
            "an acknowledged write is neither current nor in the conflict log: {:?}\nserver {:?}\nconflicts {:?}",
            x,
            server,
            losers
        );
    }
    Ok(())
}

#[test]
fn pg_caches_and_a_direct_writer_converge_and_lose_no_acknowledged_write() {
    if pg::database("convergence_probe").is_none() {
        return;
    }
    let cases = std::env::var("SHARECACHE_PG_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        max_shrink_iters: 50,
        ..RunnerConfig::default()
    });
    let result = runner.run(&proptest::collection::vec(step(), 10..40), |script| {
        check(&script)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
