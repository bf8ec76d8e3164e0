//! kill -9 during sync, and leases left behind by dead clients (issue 5, item 2).
//!
//! A child process (`sharecache --config FILE sync`) pushes a large batch of changes (inserts,
//! updates and deletes: several remote transactions on a share; one on a server, which takes at
//! least 5,000 rows in each) and pulls another client's changes; it is killed with SIGKILL at a
//! random moment: half the time a random time from its start to 1.2 times a clean sync's
//! duration (a few runs finish first), half the time right after a random operation of the sync
//! on the remote (a share operation, a round trip to the server). Against both backends. Checked
//! after every kill (once the server has ended the killed session): a share's file passes
//! `PRAGMA integrity_check`; every remote transaction is all-or-nothing (the changes the remote
//! holds are exactly the first k batches, in the order a push sends them); the next sync
//! completes; then the remote holds every change exactly once (the change-log revision grew by
//! exactly the number of changes, no conflict was logged) and the cache equals the remote. A
//! lease file left by a client on another machine is the share's own.
//!
//! Long form: 100 kills instead of 10. The random moments come from a seed printed with the
//! figures (`SHARECACHE_KILL_SEED` replays one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sharecache::{Cache, Config};

use super::{figures, pick};
use crate::support::remote::{Backend, Remote};
use crate::support::{Share, one, sharecache};

crate::both_backends!(
    a_sync_killed_at_any_moment_leaves_each_remote_transaction_all_or_nothing_and_the_next_sync_completes
);

const BATCH: usize = 25;
const INSERTS: i64 = 150;

/// A small deterministic random generator (xorshift), seeded and printed for replay.
struct Rng(u64);

impl Rng {
    /// Seeds through splitmix64, so that similar seeds give unrelated sequences.
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The test's config, pushing `BATCH` rows per remote transaction: no sync thread in the test
/// process (its shutdown would push the batch the killed child is meant to push).
fn config_file(remote: &Remote, name: &str) -> PathBuf {
    let path = remote.config_file(name);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("background: false"), "{text}");
    std::fs::write(
        &path,
        text.replace("sync:\n", &format!("sync:\n  batch_size: {BATCH}\n")),
    )
    .unwrap();
    path
}

fn open(cfg: &Path) -> Cache {
    Cache::open(Config::load(cfg).unwrap()).unwrap()
}

/// The pending changes of a cache in push order, with the values the remote must end up with.
fn pending_in_push_order(cache: &Cache) -> Vec<(String, Option<String>)> {
    let c = cache.conn();
    sharecache::store::journal::fold(&c).unwrap();
    let mut s = c
        .prepare(
            "SELECT t.pk, n.body FROM sync_tracking t \
             LEFT JOIN notes n ON n.id = CAST(t.pk AS INTEGER) \
             WHERE t.op != 'X' AND t.tbl = 'notes' ORDER BY t.tbl, t.pk",
        )
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The remote's notes, body by key (as the outbox writes it).
fn remote_bodies(remote: &Remote) -> HashMap<String, String> {
    remote
        .rows("SELECT id, body FROM notes")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

fn a_sync_killed_at_any_moment_leaves_each_remote_transaction_all_or_nothing_and_the_next_sync_completes(
    backend: Backend,
) {
    let _machine = super::machine_shared();
    let remote = Remote::new(backend);
    let cfg = config_file(&remote, "k");
    let other = remote.client("other");
    drop(open(&cfg)); // creates the cache
    let seed: u64 = std::env::var("SHARECACHE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng::new(seed);
    let wanted_kills = pick(10, 100);
    let mut clean = Duration::ZERO;
    let mut clean_ops = 0u64;
    let (mut kills, mut finished_first) = (0u64, 0u64);
    let (mut none_applied, mut some_applied, mut all_applied) = (0u64, 0u64, 0u64);
    let mut changes_checked = 0u64;
    // Iterations 0 and 1 are clean; then one kill per iteration until enough kills landed (a
    // few syncs finish before their moment comes).
    for i in 0.. {
        if i > 1 && kills >= wanted_kills {
            break;
        }
        // The batch: inserts of new rows, updates and deletes of the previous iteration's.
        let base = 1_000_000 + i * 1_000;
        {
            let k = open(&cfg);
            k.conn()
                .execute_batch(&format!(
                    "WITH RECURSIVE n(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM n WHERE j < {last}) \
                     INSERT INTO notes (id, body) SELECT {base} + j, 'iteration {i} row ' || j FROM n;
                     UPDATE notes SET body = body || ' updated in {i}' WHERE id >= {prev} AND id < {prev} + 40;
                     DELETE FROM notes WHERE id >= {prev} + 40 AND id < {prev} + 60;",
                    last = INSERTS - 1,
                    prev = base - 1_000,
                ))
                .unwrap();
        }
        // Another client's changes, for the pull phase.
        other
            .conn()
            .execute(
                "UPDATE tasks SET title = ?1 WHERE id = 't2'",
                [format!("other {i}")],
            )
            .unwrap();
        other.sync_now().unwrap();
        let k = open(&cfg);
        let changes = pending_in_push_order(&k);
        drop(k);
        let rev_before = remote.head_rev();
        let conflicts_before = remote.conflicts().len();
        let bodies = remote_bodies(&remote);
        let before: Vec<Option<String>> = changes
            .iter()
            .map(|(pk, _)| bodies.get(pk).cloned())
            .collect();

        if i <= 1 {
            // Iteration 0 fills the table; iteration 1 measures a clean sync of a full batch
            // (inserts, updates and deletes), which bounds the kill moments.
            let t = Instant::now();
            remote.reset_counters();
            let out = sharecache()
                .arg("--config")
                .arg(&cfg)
                .arg("sync")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            clean = t.elapsed();
            clean_ops = remote.operations();
        } else {
            // Even iterations: a random moment in time (up to 1.2 times a clean sync's
            // duration); odd ones: right after a random operation of the sync on the remote (so
            // every phase is hit evenly, however fast each runs).
            let at_op = (i % 2 == 1).then(|| rng.below(clean_ops + 1));
            let delay = Duration::from_micros(rng.below(clean.as_micros() as u64 * 6 / 5));
            remote.reset_counters();
            let mut child = sharecache()
                .arg("--config")
                .arg(&cfg)
                .arg("sync")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            match at_op {
                None => std::thread::sleep(delay),
                Some(n) => {
                    while remote.operations() < n && child.try_wait().unwrap().is_none() {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
            let delay = at_op.map_or(format!("{delay:?}"), |n| format!("remote operation {n}"));
            if child.try_wait().unwrap().is_some() {
                finished_first += 1;
            } else {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
            }
            child.wait().unwrap();
            remote.wait_settled();

            if backend == Backend::Share {
                assert_eq!(
                    remote.one::<String>("PRAGMA integrity_check"),
                    "ok",
                    "kill {i} after {delay}: remote integrity"
                );
            }
            let bodies = remote_bodies(&remote);
            let applied: Vec<bool> = changes
                .iter()
                .zip(&before)
                .map(|((pk, want), was)| {
                    let now = bodies.get(pk).cloned();
                    assert!(
                        now == *want || now == *was,
                        "kill {i} after {delay}: {pk} is neither before ({was:?}) nor after ({want:?}): {now:?}"
                    );
                    now == *want
                })
                .collect();
            let k_applied = applied.iter().take_while(|a| **a).count();
            assert!(
                applied[k_applied..].iter().all(|a| !a),
                "kill {i} after {delay}: the remote holds changes out of push order (not whole batches): {applied:?}"
            );
            assert!(
                k_applied % BATCH == 0 || k_applied == changes.len(),
                "kill {i} after {delay}: the remote holds {k_applied} of the changes: not a whole number of batches of {BATCH}"
            );
            eprintln!(
                "kill {i}: after {delay}, {k_applied} of {} changes on the remote",
                changes.len()
            );
            match k_applied {
                0 => none_applied += 1,
                n if n == changes.len() => all_applied += 1,
                _ => some_applied += 1,
            }
            let out = sharecache()
                .arg("--config")
                .arg(&cfg)
                .arg("sync")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "kill {i} after {delay}: the next sync fails: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let bodies = remote_bodies(&remote);
        for (pk, want) in &changes {
            changes_checked += 1;
            assert_eq!(&bodies.get(pk).cloned(), want, "iteration {i}: {pk} lost");
        }
        let rev_after = remote.head_rev();
        assert_eq!(
            rev_after - rev_before,
            changes.len() as i64,
            "iteration {i}: every change is applied exactly once"
        );
        assert_eq!(
            remote.conflicts().len(),
            conflicts_before,
            "iteration {i}: re-sent changes are not conflicts"
        );
        let k = open(&cfg);
        assert_eq!(k.status().unwrap().pending_writes, 0, "iteration {i}");
        remote.assert_same_content(&format!("iteration {i}"), &k.conn());
    }
    let (name, ops) = match backend {
        Backend::Share => ("kill9", "clean_sync_share_ops"),
        Backend::Postgres => ("kill9_postgres", "clean_sync_round_trips"),
    };
    figures(
        name,
        &[
            ("seed", seed),
            ("kills", kills),
            ("finished_before_the_kill", finished_first),
            ("clean_sync_ms", clean.as_millis() as u64),
            (ops, clean_ops),
            ("killed_before_any_batch", none_applied),
            ("killed_between_batches", some_applied),
            ("killed_after_all_batches", all_applied),
            ("changes_checked", changes_checked),
            ("lost", 0),
            ("applied_twice", 0),
        ],
    );
}

// The share's own: its write lease is a file.

/// A client killed on *another* machine leaves its write lease behind; nobody can tell from
/// here that it is dead, so the lease must be broken once it has been unchanged for
/// `sync.lease_ttl`, or every other client stays locked out of the remote for good.
#[test]
fn a_write_lease_left_by_a_client_killed_on_another_machine_is_broken_after_the_lease_ttl() {
    let share = Share::new();
    let mut cfg = share.config("a");
    cfg.lease_ttl = Duration::from_secs(3);
    cfg.busy_timeout = Duration::from_secs(1);
    cfg.lock_retries = 2;
    let a = Cache::open(cfg).unwrap();
    a.conn()
        .execute(
            "INSERT INTO notes (id, body) VALUES (77, 'waits for the lease')",
            [],
        )
        .unwrap();
    std::fs::write(
        share.backing().join("app.db.sharecache-lease"),
        "sharecache-lease 1\norigin=0123456789abcdef\nnonce=42\nhost=another-machine\npid=4242\ntaken=2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    // Like the background sync: retry until it works (or give up well past the lease TTL).
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(30) {
        match a.sync_now() {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e.to_string()),
        }
    }
    assert_eq!(
        last,
        None,
        "after {:?} of syncing, the dead client's lease (ttl 3 s) still blocks every write",
        start.elapsed()
    );
    assert_eq!(
        one::<String>(&share.remote(), "SELECT body FROM notes WHERE id = 77"),
        "waits for the lease"
    );
}
