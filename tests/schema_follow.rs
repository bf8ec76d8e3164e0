//! The cache follows the remote schema; tables it cannot sync are reported.

use crate::support::{Share, one, rows};

#[test]
fn a_table_without_primary_key_is_reported_and_the_others_sync() {
    let share = Share::new();
    let a = share.client("a");
    let status = a.status().unwrap();
    assert_eq!(status.unsynced_tables.len(), 1);
    assert_eq!(status.unsynced_tables[0].name, "audit_log");
    assert!(status.unsynced_tables[0].reason.contains("primary key"));
    a.conn().execute_batch("INSERT INTO audit_log VALUES ('x', 'local only'); INSERT INTO notes (id, body) VALUES (3, 'synced');").unwrap();
    assert_eq!(a.status().unwrap().pending_writes, 1);
    a.sync_now().unwrap();
    let remote = share.remote();
    assert_eq!(one::<i64>(&remote, "SELECT count(*) FROM audit_log"), 1);
    assert_eq!(
        one::<String>(&remote, "SELECT body FROM notes WHERE id = 3"),
        "synced"
    );
}

#[test]
fn a_new_remote_column_appears_in_the_cache_with_its_values() {
    let share = Share::new();
    let a = share.client("a");
    share
        .remote()
        .execute_batch("ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 3; UPDATE tasks SET priority = 1 WHERE id = 't1';")
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.schema_changes, 1);
    assert_eq!(
        rows(&a.conn(), "SELECT id, priority FROM tasks ORDER BY id"),
        vec![vec!["t1", "1"], vec!["t2", "3"]]
    );
    // and it syncs both ways
    a.conn()
        .execute("UPDATE tasks SET priority = 9 WHERE id = 't2'", [])
        .unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        one::<i64>(
            &share.remote(),
            "SELECT priority FROM tasks WHERE id = 't2'"
        ),
        9
    );
}

#[test]
fn a_new_remote_table_appears_in_the_cache_and_syncs() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    share.remote().execute_batch("CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT); INSERT INTO projects VALUES ('p1', 'alpha');").unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        one::<String>(&a.conn(), "SELECT name FROM projects WHERE id = 'p1'"),
        "alpha"
    );
    a.conn()
        .execute("INSERT INTO projects VALUES ('p2', 'beta')", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert_eq!(
        rows(&b.conn(), "SELECT id FROM projects ORDER BY id"),
        vec![vec!["p1"], vec!["p2"]]
    );
}

#[test]
fn a_destructive_remote_change_rebuilds_the_cache_after_pushing_pending_writes() {
    let share = Share::new();
    let a = share.client("a");
    a.conn()
        .execute(
            "INSERT INTO notes (id, body) VALUES (4, 'pushed before the rebuild')",
            [],
        )
        .unwrap();
    share
        .remote()
        .execute_batch(
            "ALTER TABLE tasks DROP COLUMN done; ALTER TABLE tasks RENAME COLUMN title TO name;",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert!(r.rebuilt.is_some(), "{r:?}");
    assert_eq!(
        one::<String>(&share.remote(), "SELECT body FROM notes WHERE id = 4"),
        "pushed before the rebuild"
    );
    assert_eq!(
        rows(&a.conn(), "SELECT id, name FROM tasks ORDER BY id"),
        vec![vec!["t1", "first"], vec!["t2", "second"]]
    );
    a.conn()
        .execute(
            "UPDATE tasks SET name = 'renamed column works' WHERE id = 't1'",
            [],
        )
        .unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        one::<String>(&share.remote(), "SELECT name FROM tasks WHERE id = 't1'"),
        "renamed column works"
    );
}

#[test]
fn tables_with_odd_names_sync() {
    let share = Share::with_schema(
        "CREATE TABLE \"order\" (\"select\" INTEGER PRIMARY KEY, \"we\"\"ird col\" TEXT);
         CREATE TABLE \"my table\" (\"key part\" TEXT, \"k2\" BLOB, v, PRIMARY KEY (\"key part\", \"k2\"));",
    );
    let a = share.client("a");
    a.conn()
        .execute_batch("INSERT INTO \"order\" VALUES (1, 'a\"b'); INSERT INTO \"my table\" VALUES ('x y', x'00ff', 'blob key');")
        .unwrap();
    assert_eq!(a.sync_now().unwrap().pushed, 2);
    let b = share.client("b");
    assert_eq!(
        one::<String>(&b.conn(), "SELECT \"we\"\"ird col\" FROM \"order\""),
        "a\"b"
    );
    b.conn()
        .execute("DELETE FROM \"my table\" WHERE k2 = x'00ff'", [])
        .unwrap();
    b.sync_now().unwrap();
    assert_eq!(
        one::<i64>(&share.remote(), "SELECT count(*) FROM \"my table\""),
        0
    );
}
