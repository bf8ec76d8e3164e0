//! Schema changes made in the caches, as a property test (issue 13): no sequence of app writes,
//! app migrations and syncs on 2–3 clients leaves a write unsynced while a sync reports success.
//!
//! Each client writes only its own keys (so the expected value of every key is its owner's last
//! write: no conflicts to model), in a table every client has (`items`) and in a table a
//! migration creates in the cache (`side`). Migrations come from the matrix, on any
//! client, at any point: a 12-step rebuild of `items` changing a declared type, `ADD COLUMN`
//! (the same on every desk), `DROP TRIGGER` of a capture trigger, `VACUUM`, `CREATE INDEX`,
//! `CREATE TABLE side`. The oracle:
//! - after a client's sync succeeds with nothing pending, the remote holds that client's last
//!   write of each of its keys (nothing it acknowledged was left behind);
//! - at the end (every client syncs twice round) every cache and the remote hold exactly the
//!   owners' last writes, and nothing is pending anywhere.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use rusqlite::Connection;
use sharecache::Cache;

use super::{figures, pick};
use crate::support::{Share, open_cache_file};

const SCHEMA: &str = "CREATE TABLE items (id TEXT PRIMARY KEY, v TEXT);
                      INSERT INTO items VALUES ('seed', 'seed');";
const KEYS: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Migration {
    Rebuild,
    AddColumn,
    DropTrigger,
    Vacuum,
    Index,
    SideTable,
}

#[derive(Debug, Clone)]
enum Step {
    Write {
        client: usize,
        side: bool,
        key: usize,
        delete: bool,
    },
    Migrate {
        client: usize,
        m: Migration,
    },
    Sync {
        client: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let m = prop_oneof![
        Just(Migration::Rebuild),
        Just(Migration::AddColumn),
        Just(Migration::DropTrigger),
        Just(Migration::Vacuum),
        Just(Migration::Index),
        Just(Migration::SideTable),
    ];
    prop_oneof![
        6 => (0..3usize, any::<bool>(), 0..KEYS, prop::bool::weighted(0.2))
            .prop_map(|(client, side, key, delete)| Step::Write { client, side, key, delete }),
        2 => (0..3usize, m).prop_map(|(client, m)| Step::Migrate { client, m }),
        3 => (0..3usize).prop_map(|client| Step::Sync { client }),
    ]
}

fn has(c: &Connection, kind: &str, name: &str) -> bool {
    c.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = ?1 AND name = ?2",
        [kind, name],
        |r| r.get(0),
    )
    .unwrap()
}

fn migrate(c: &Connection, m: Migration, n: usize) {
    match m {
        Migration::Rebuild => {
            // Alternate the declared type, as successive app versions would.
            let ty = if n % 2 == 0 { "VARCHAR(200)" } else { "TEXT" };
            let cols: Vec<String> = c
                .prepare(
                    "SELECT name FROM pragma_table_info('items') WHERE name NOT IN ('id', 'v')",
                )
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let extra: String = cols.iter().map(|c| format!(", {c} TEXT")).collect();
            let names: String = cols.iter().map(|c| format!(", {c}")).collect();
            c.execute_batch(&format!(
                "BEGIN; CREATE TABLE items_new (id TEXT PRIMARY KEY, v {ty}{extra}); \
                 INSERT INTO items_new SELECT id, v{names} FROM items; DROP TABLE items; \
                 ALTER TABLE items_new RENAME TO items; COMMIT;"
            ))
            .unwrap();
        }
        Migration::AddColumn => {
            let there: bool = c
                .query_row(
                    "SELECT count(*) > 0 FROM pragma_table_info('items') WHERE name = 'note'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if !there {
                c.execute_batch("ALTER TABLE items ADD COLUMN note TEXT")
                    .unwrap();
            }
        }
        Migration::DropTrigger => c
            .execute_batch("DROP TRIGGER IF EXISTS sync_au_items")
            .unwrap(),
        Migration::Vacuum => c.execute_batch("VACUUM").unwrap(),
        Migration::Index => c
            .execute_batch("CREATE INDEX IF NOT EXISTS items_v ON items(v)")
            .unwrap(),
        Migration::SideTable => c
            .execute_batch("CREATE TABLE IF NOT EXISTS side (id TEXT PRIMARY KEY, v TEXT)")
            .unwrap(),
    }
}

/// `(table, key)` → the owner's last write (`None`: deleted).
type Expected = BTreeMap<(&'static str, String), Option<String>>;

fn content(c: &Connection, table: &str) -> BTreeMap<String, String> {
    if !has(c, "table", table) {
        return BTreeMap::new();
    }
    c.prepare(&format!("SELECT id, v FROM {table}"))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn check(
    what: &str,
    c: &Connection,
    want: &Expected,
    only: Option<usize>,
) -> Result<(), TestCaseError> {
    for ((table, key), v) in want {
        if only.is_some_and(|o| !key.starts_with(&format!("c{o}-"))) {
            continue;
        }
        let got = content(c, table).get(key).cloned();
        prop_assert_eq!(&got, v, "{}: {}.{}", what, table, key);
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    cases: u64,
    writes: u64,
    migrations: u64,
    syncs: u64,
    recovered: u64,
}

fn run_case(steps: &[Step], clients: usize, t: &mut Totals) -> Result<(), TestCaseError> {
    let share = Share::with_schema(SCHEMA);
    share.control.set_latency(std::time::Duration::ZERO);
    let caches: Vec<Cache> = (0..clients)
        .map(|c| share.client(&format!("c{c}")))
        .collect();
    let conns: Vec<Connection> = caches.iter().map(open_cache_file).collect();
    let mut want = Expected::new();
    let mut n = 0;
    for s in steps {
        n += 1;
        match *s {
            Step::Write {
                client,
                side,
                key,
                delete,
            } => {
                let client = client % clients;
                let c = &conns[client];
                let table = if side { "side" } else { "items" };
                if !has(c, "table", table) {
                    continue;
                }
                let id = format!("c{client}-{key}");
                let v = if delete {
                    c.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [&id])
                        .unwrap();
                    None
                } else {
                    let v = format!("{id}:{n}");
                    c.execute(
                        &format!("INSERT OR REPLACE INTO {table} (id, v) VALUES (?1, ?2)"),
                        [&id, &v],
                    )
                    .unwrap();
                    Some(v)
                };
                want.insert((table, id), v);
                t.writes += 1;
            }
            Step::Migrate { client, m } => {
                migrate(&conns[client % clients], m, n);
                t.migrations += 1;
            }
            Step::Sync { client } => {
                let client = client % clients;
                let r = caches[client].sync_now();
                t.syncs += 1;
                let r = r.map_err(|e| TestCaseError::fail(format!("sync of c{client}: {e}")))?;
                t.recovered += r.recovered;
                if caches[client].status().unwrap().pending_writes == 0 {
                    check(
                        &format!("remote after c{client} synced"),
                        &share.remote(),
                        &want,
                        Some(client),
                    )?;
                }
            }
        }
    }
    for _ in 0..2 {
        for (i, c) in caches.iter().enumerate() {
            c.sync_now()
                .map_err(|e| TestCaseError::fail(format!("final sync of c{i}: {e}")))?;
        }
    }
    let remote = share.remote();
    check("remote at the end", &remote, &want, None)?;
    for (i, c) in caches.iter().enumerate() {
        prop_assert_eq!(c.status().unwrap().pending_writes, 0, "c{} pending", i);
        for table in ["items", "side"] {
            prop_assert_eq!(
                content(&c.conn(), table),
                content(&remote, table),
                "c{} {}",
                i,
                table
            );
        }
    }
    t.cases += 1;
    Ok(())
}

#[test]
fn app_writes_migrations_and_syncs_in_any_order_leave_no_write_behind() {
    let _machine = super::machine_shared();
    let mut runner = TestRunner::new(RunnerConfig {
        cases: pick(12, 300),
        max_shrink_iters: pick(32, 256),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let totals = std::cell::RefCell::new(Totals::default());
    let strategy = (
        2..=3usize,
        prop::collection::vec(step(), 10..=pick(40, 120)),
    );
    let result = runner.run(&strategy, |(clients, steps)| {
        run_case(&steps, clients, &mut totals.borrow_mut())
    });
    let t = totals.into_inner();
    figures(
        "migrations",
        &[
            ("cases", t.cases),
            ("writes", t.writes),
            ("migrations", t.migrations),
            ("syncs", t.syncs),
            ("recovered", t.recovered),
        ],
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
