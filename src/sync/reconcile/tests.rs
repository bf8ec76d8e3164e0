use std::time::Duration;

use rusqlite::Connection;
use rusqlite::types::Value;

use super::*;
use crate::remote::{RemoteOptions, Share};

struct Pair {
    _dir: tempfile::TempDir,
    local: Connection,
    remote: Share,
    /// A plain connection on the remote file, as another program would write it.
    remote_db: Connection,
    path: std::path::PathBuf,
}

fn pair(table_sql: &str) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (lp, rp) = (dir.path().join("cache.db"), dir.path().join("remote.db"));
    for p in [&lp, &rp] {
        Connection::open(p)
            .unwrap()
            .execute_batch(table_sql)
            .unwrap();
    }
    let remote = Share::open(
        &rp,
        RemoteOptions {
            origin: "o".into(),
            busy_timeout: Duration::from_secs(1),
            lock_retries: 1,
            lease_ttl: Duration::from_secs(30),
        },
    )
    .unwrap();
    Pair {
        local: Connection::open(&lp).unwrap(),
        remote,
        remote_db: Connection::open(&rp).unwrap(),
        path: lp,
        _dir: dir,
    }
}

fn shape(table: &str, columns: &[&str], pk: &[&str]) -> Shape {
    Shape {
        table: table.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        pk: pk.iter().map(|c| c.to_string()).collect(),
    }
}

fn run(p: &Pair, s: &Shape, batch: usize) -> (Vec<Diff>, Vec<usize>, Compared) {
    let (mut all, mut sizes) = (Vec::new(), Vec::new());
    let seen = diff(&p.local, &p.path, &p.remote, s, batch, |d| {
        sizes.push(d.len());
        all.extend_from_slice(d);
        Ok(())
    })
    .unwrap();
    (all, sizes, seen)
}

#[test]
fn local_only_remote_only_and_changed_rows_come_out_in_key_order_across_batches() {
    let p = pair("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    p.local
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) \
             INSERT INTO t SELECT i, 'v' || i FROM n; \
             DELETE FROM t WHERE id IN (3, 11); UPDATE t SET v = 'changed' WHERE id = 7; \
             INSERT INTO t VALUES (25, 'new');",
        )
        .unwrap();
    p.remote_db
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) \
             INSERT INTO t SELECT i, 'v' || i FROM n; INSERT INTO t VALUES (22, 'remote');",
        )
        .unwrap();
    let s = shape("t", &["id", "v"], &["id"]);
    let (d, sizes, seen) = run(&p, &s, 3);
    let keys: Vec<&str> = d.iter().map(|d| d.pk.as_str()).collect();
    assert_eq!(keys, ["3", "7", "11", "22", "25"]);
    assert_eq!(d[0].local, None);
    assert_eq!(
        d[0].remote,
        Some(vec![Value::Integer(3), Value::Text("v3".into())])
    );
    assert_eq!(
        d[1].local,
        Some(vec![Value::Integer(7), Value::Text("changed".into())])
    );
    assert_eq!(
        d[1].remote,
        Some(vec![Value::Integer(7), Value::Text("v7".into())])
    );
    assert_eq!((d[3].local.is_none(), d[4].remote.is_none()), (true, true));
    assert_eq!(sizes, [3, 2], "handed over at most `batch` at a time");
    assert_eq!(
        (seen.local_rows, seen.remote_rows, seen.differing),
        (19, 21, 5)
    );
}

#[test]
fn identical_tables_differ_nowhere() {
    let p = pair("CREATE TABLE t(id TEXT PRIMARY KEY, v REAL, b BLOB)");
    for c in [&p.local, &p.remote_db] {
        c.execute_batch("INSERT INTO t VALUES ('a', 1.5, x'00'), ('B', NULL, NULL), ('é', 2, x'')")
            .unwrap();
    }
    let (d, sizes, seen) = run(&p, &shape("t", &["id", "v", "b"], &["id"]), 1);
    assert!(d.is_empty() && sizes.is_empty(), "{d:?}");
    assert_eq!((seen.local_rows, seen.remote_rows), (3, 3));
}

#[test]
fn composite_keys_with_nulls_and_mixed_types_are_paged_without_skipping_a_row() {
    // NULL key parts, numbers, text and blobs in one key column: a row-value comparison
    // `(a, b) > (?, ?)` would skip the NULL parts; every row must be read exactly once.
    let p = pair("CREATE TABLE t(a, b, v, PRIMARY KEY (a, b))");
    let rows = "(NULL, 1, 'x'), (NULL, NULL, 'y'), (1, NULL, 'z'), (1, 2, 'w'), (1.5, 0, 'q'), \
                ('a', 'b', 'r'), ('a', x'01', 's'), (x'00', 1, 't'), (2, 'k', 'u')";
    p.local
        .execute_batch(&format!("INSERT INTO t VALUES {rows}"))
        .unwrap();
    p.remote_db
        .execute_batch(&format!(
            "INSERT INTO t VALUES {rows}; UPDATE t SET v = 'other' WHERE a IS NULL AND b IS NULL; \
             UPDATE t SET v = 'other' WHERE a = 'a' AND b = x'01';"
        ))
        .unwrap();
    for batch in [1, 2, 4, 100] {
        let (d, _, seen) = run(&p, &shape("t", &["a", "b", "v"], &["a", "b"]), batch);
        let keys: Vec<&str> = d.iter().map(|d| d.pk.as_str()).collect();
        assert_eq!(keys, ["NULL,NULL", "'a',X'01'"], "batch {batch}");
        assert_eq!((seen.local_rows, seen.remote_rows), (9, 9), "batch {batch}");
    }
}

#[test]
fn a_key_collated_nocase_on_one_side_is_still_merged_in_the_same_order() {
    // A migration may rebuild the cache's table with another collation: ORDER BY the column
    // alone would then read the two sides in different orders.
    let p = pair("CREATE TABLE t(id TEXT PRIMARY KEY, v)");
    p.local
        .execute_batch(
            "DROP TABLE t; CREATE TABLE t(id TEXT COLLATE NOCASE PRIMARY KEY, v); \
             INSERT INTO t VALUES ('b', 1), ('A', 1), ('c', 1), ('D', 2);",
        )
        .unwrap();
    p.remote_db
        .execute_batch("INSERT INTO t VALUES ('b', 1), ('A', 1), ('c', 1), ('D', 1)")
        .unwrap();
    let (d, _, _) = run(&p, &shape("t", &["id", "v"], &["id"]), 2);
    let keys: Vec<&str> = d.iter().map(|d| d.pk.as_str()).collect();
    assert_eq!(keys, ["'D'"]);
}
