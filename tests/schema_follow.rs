//! The cache follows the remote schema; tables it cannot sync are reported. Against both
//! backends: the schema changes are written in the SQL both speak (`ALTER TABLE … ADD COLUMN`,
//! `DROP COLUMN`, `RENAME COLUMN`), made by another program on the remote.

use crate::support::one;
use crate::support::remote::{Backend, Remote, Schema};
use crate::support::rows;

crate::both_backends!(
    a_table_without_primary_key_is_reported_and_the_others_sync,
    a_new_remote_column_appears_in_the_cache_with_its_values,
    a_new_remote_table_appears_in_the_cache_and_syncs,
    a_destructive_remote_change_rebuilds_the_cache_after_pushing_pending_writes,
    tables_with_odd_names_sync,
);

fn a_table_without_primary_key_is_reported_and_the_others_sync(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let status = a.status().unwrap();
    assert_eq!(status.unsynced_tables.len(), 1);
    assert_eq!(status.unsynced_tables[0].name, "audit_log");
    assert!(status.unsynced_tables[0].reason.contains("primary key"));
    a.conn().execute_batch("INSERT INTO audit_log VALUES ('x', 'local only'); INSERT INTO notes (id, body) VALUES (3, 'synced');").unwrap();
    assert_eq!(a.status().unwrap().pending_writes, 1);
    a.sync_now().unwrap();
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM audit_log"),
        1,
        "the local row stays local"
    );
    assert_eq!(
        remote.one::<String>("SELECT body FROM notes WHERE id = 3"),
        "synced"
    );
}

fn a_new_remote_column_appears_in_the_cache_with_its_values(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    remote.exec("ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 3; UPDATE tasks SET priority = 1 WHERE id = 't1';");
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
        remote.one::<i64>("SELECT priority FROM tasks WHERE id = 't2'"),
        9
    );
}

fn a_new_remote_table_appears_in_the_cache_and_syncs(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
    remote.exec("CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT); INSERT INTO projects VALUES ('p1', 'alpha');");
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

fn a_destructive_remote_change_rebuilds_the_cache_after_pushing_pending_writes(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    a.conn()
        .execute(
            "INSERT INTO notes (id, body) VALUES (4, 'pushed before the rebuild')",
            [],
        )
        .unwrap();
    remote
        .exec("ALTER TABLE tasks DROP COLUMN done; ALTER TABLE tasks RENAME COLUMN title TO name;");
    let r = a.sync_now().unwrap();
    assert!(r.rebuilt.is_some(), "{r:?}");
    assert_eq!(
        remote.one::<String>("SELECT body FROM notes WHERE id = 4"),
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
        remote.one::<String>("SELECT name FROM tasks WHERE id = 't1'"),
        "renamed column works"
    );
}

fn tables_with_odd_names_sync(backend: Backend) {
    let remote = Remote::with_schema(backend, &Schema {
        sqlite: "CREATE TABLE \"order\" (\"select\" INTEGER PRIMARY KEY, \"we\"\"ird col\" TEXT);
         CREATE TABLE \"my table\" (\"key part\" TEXT, \"k2\" BLOB, v, PRIMARY KEY (\"key part\", \"k2\"));",
        postgres: "CREATE TABLE \"order\" (\"select\" bigint PRIMARY KEY, \"we\"\"ird col\" text);
         CREATE TABLE \"my table\" (\"key part\" text, \"k2\" bytea, v text, PRIMARY KEY (\"key part\", \"k2\"));",
    });
    let a = remote.client("a");
    a.conn()
        .execute_batch("INSERT INTO \"order\" VALUES (1, 'a\"b'); INSERT INTO \"my table\" VALUES ('x y', x'00ff', 'blob key');")
        .unwrap();
    assert_eq!(a.sync_now().unwrap().pushed, 2);
    let b = remote.client("b");
    assert_eq!(
        one::<String>(&b.conn(), "SELECT \"we\"\"ird col\" FROM \"order\""),
        "a\"b"
    );
    b.conn()
        .execute("DELETE FROM \"my table\" WHERE k2 = x'00ff'", [])
        .unwrap();
    b.sync_now().unwrap();
    assert_eq!(remote.one::<i64>("SELECT count(*) FROM \"my table\""), 0);
}
