//! The reliability suite (issue 5): convergence under faults, kill -9, I/O failure at every
//! step, outages, a wrong or missing share, contention, bad input and data, and permissions.
//!
//! Every test has a short form that runs with `cargo test` and a long form when
//! `SHARECACHE_SOAK=1` (see RELIABILITY.md). Tests print their figures (iterations, faults
//! injected, writes checked, lost) on a line starting with `figures:`; run with `--nocapture` to
//! see them.

mod bad_data;
mod bad_input;
mod contention;
mod convergence;
mod io_faults;
mod kill9;
mod migrations;
mod outages;
mod permissions;
mod writes_during_sync;
mod wrong_share;

use rusqlite::Connection;
use std::collections::BTreeMap;

/// Tests that measure time (contention) run alone: they take this lock exclusively, the
/// CPU-heavy tests of this suite take it shared. (The test harness runs tests in parallel.)
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Holds the machine for a timing-sensitive test (no other heavy reliability test runs meanwhile).
pub fn machine_alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

/// Marks a CPU-heavy test (it does not run while a timing-sensitive one does).
pub fn machine_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

/// Whether the long (soak) forms run.
pub fn soak() -> bool {
    std::env::var("SHARECACHE_SOAK").is_ok_and(|v| v == "1")
}

/// `ci` in the short form, `long` when soaking.
pub fn pick<T>(ci: T, long: T) -> T {
    if soak() { long } else { ci }
}

/// Prints one line of figures for RELIABILITY.md.
pub fn figures(test: &str, pairs: &[(&str, u64)]) {
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let form = if soak() { "long" } else { "short" };
    println!("figures: {test} ({form}) {}", body.join(" "));
}

/// The tables a cache syncs (its `sync_tables` with `synced = 1`).
pub fn synced_tables(cache: &Connection) -> Vec<String> {
    let mut s = cache
        .prepare("SELECT name FROM sync_tables WHERE synced = 1 ORDER BY name")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// One stored value, exactly: TEXT keeps its raw bytes (it may not be valid UTF-8).
#[derive(Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => write!(f, "NULL"),
            Cell::Integer(v) => write!(f, "{v}"),
            Cell::Real(v) => write!(f, "{v:?}"),
            Cell::Text(t) if t.len() > 64 => write!(f, "text({} bytes)", t.len()),
            Cell::Text(t) => write!(f, "{:?}", String::from_utf8_lossy(t)),
            Cell::Blob(b) => write!(f, "blob({} bytes)", b.len()),
        }
    }
}

/// Every row of `table`, ordered by all its columns.
pub fn dump(c: &Connection, table: &str) -> Vec<Vec<Cell>> {
    use rusqlite::types::ValueRef;
    let q = sharecache::sql::quote(table);
    let n: usize = c
        .prepare(&format!("SELECT * FROM {q} LIMIT 0"))
        .unwrap()
        .column_count();
    let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let mut s = c
        .prepare(&format!("SELECT * FROM {q} ORDER BY {}", order.join(", ")))
        .unwrap();
    s.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Integer(v),
                    ValueRef::Real(v) => Cell::Real(v),
                    ValueRef::Text(t) => Cell::Text(t.to_vec()),
                    ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                })
            })
            .collect::<rusqlite::Result<Vec<Cell>>>()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The content of `tables` on a connection.
pub fn content(c: &Connection, tables: &[String]) -> BTreeMap<String, Vec<Vec<Cell>>> {
    tables.iter().map(|t| (t.clone(), dump(c, t))).collect()
}

/// A stable hash (FNV-1a) of the content of `tables`.
pub fn content_hash(c: &Connection, tables: &[String]) -> u64 {
    let text = format!("{:?}", content(c, tables));
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Asserts that a cache holds exactly what the remote holds in every synced table.
pub fn assert_same_content(what: &str, cache: &Connection, remote: &Connection) {
    let tables = synced_tables(cache);
    assert!(!tables.is_empty(), "{what}: no synced tables");
    let (hc, hr) = (content_hash(cache, &tables), content_hash(remote, &tables));
    if hc != hr {
        let (c, r) = (content(cache, &tables), content(remote, &tables));
        for t in &tables {
            if c[t] != r[t] {
                panic!(
                    "{what}: table {t} differs from the remote\n cache:  {:?}\n remote: {:?}",
                    c[t], r[t]
                );
            }
        }
    }
}
