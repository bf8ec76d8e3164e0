//! Schema changes through a PostgreSQL server (issue 16): a table or column added on the server
//! reaches the caches (and a new table's direct writes are captured); a table or column an app
//! adds in its cache is carried to the server as DDL and reaches the other caches.

use std::collections::HashMap;

use sharecache::config::EnableCache;
use sharecache::{Cache, Config};

use crate::support::pg::{self, PgDb};

fn setup(test: &str) -> Option<(PgDb, tempfile::TempDir)> {
    let db = pg::database(test)?;
    db.connect()
        .batch_execute(
            "CREATE TABLE tasks (id text PRIMARY KEY, title text);
             INSERT INTO tasks VALUES ('t1', 'first'), ('t2', 'second');",
        )
        .unwrap();
    Some((db, tempfile::tempdir().unwrap()))
}

fn open(db: &PgDb, dir: &tempfile::TempDir, name: &str) -> Cache {
    let mut c = Config::for_remote(db.url.as_str());
    c.cache_directory = dir.path().join(format!("cache-{name}"));
    c.enable_cache = EnableCache::On;
    c.background = false;
    Cache::open(c).unwrap()
}

fn rows(cache: &Cache, sql: &str) -> Vec<Vec<String>> {
    let conn = cache.conn();
    let mut s = conn.prepare(sql).unwrap();
    let n = s.column_count();
    s.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                    rusqlite::types::Value::Null => "NULL".to_owned(),
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    v => format!("{v:?}"),
                })
            })
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn a_table_and_a_column_added_on_the_server_reach_the_cache_and_are_captured() {
    let Some((db, dir)) = setup("server_schema") else {
        return;
    };
    let a = open(&db, &dir, "a");
    db.connect()
        .batch_execute(
            "CREATE TABLE notes (id bigint PRIMARY KEY, body text);
             INSERT INTO notes VALUES (1, 'one');
             ALTER TABLE tasks ADD COLUMN color text DEFAULT 'red';",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert!(r.schema_changes > 0, "{r:?}");
    assert_eq!(rows(&a, "SELECT id, body FROM notes"), [["1", "one"]]);
    assert_eq!(
        rows(&a, "SELECT id, color FROM tasks ORDER BY id"),
        [["t1", "red"], ["t2", "red"]]
    );
    // The new table's direct writes are captured like the others'.
    db.connect()
        .execute("INSERT INTO notes VALUES (2, 'two')", &[])
        .unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        rows(&a, "SELECT id, body FROM notes ORDER BY id"),
        [["1", "one"], ["2", "two"]]
    );
    // And the cache's writes to it go to the server.
    a.conn()
        .execute("UPDATE notes SET body = 'uno' WHERE id = 1", [])
        .unwrap();
    a.sync_now().unwrap();
    let body: String = db
        .connect()
        .query_one("SELECT body FROM notes WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(body, "uno");
}

#[test]
fn a_table_and_columns_added_in_a_cache_are_carried_to_the_server_and_the_other_caches() {
    let Some((db, dir)) = setup("cache_schema") else {
        return;
    };
    let a = open(&db, &dir, "a");
    let b = open(&db, &dir, "b");
    a.conn()
        .execute_batch(
            "ALTER TABLE tasks ADD COLUMN rank INTEGER NOT NULL DEFAULT 5;
             ALTER TABLE tasks ADD COLUMN color TEXT;
             UPDATE tasks SET color = 'blue' WHERE id = 't1';
             CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO tags VALUES (1, 'urgent');",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert!(
        r.carried.iter().any(|c| c == "tasks.rank") && r.carried.iter().any(|c| c == "tags"),
        "{:?}",
        r.carried
    );
    let server: HashMap<String, (i64, Option<String>)> = db
        .connect()
        .query("SELECT id, rank, color FROM tasks", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    assert_eq!(server["t1"], (5, Some("blue".to_owned())));
    assert_eq!(
        server["t2"],
        (5, None),
        "the default filled the server's rows"
    );
    let tag: String = db
        .connect()
        .query_one("SELECT name FROM tags WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(tag, "urgent");
    b.sync_now().unwrap();
    assert_eq!(rows(&b, "SELECT id, name FROM tags"), [["1", "urgent"]]);
    assert_eq!(
        rows(&b, "SELECT id, rank, color FROM tasks ORDER BY id"),
        [["t1", "5", "blue"], ["t2", "5", "NULL"]]
    );
}

#[test]
fn a_table_with_a_type_sharecache_does_not_map_is_named_in_status_not_guessed() {
    let Some((db, dir)) = setup("unmapped") else {
        return;
    };
    db.connect()
        .batch_execute(
            "CREATE TABLE ledger (id bigint PRIMARY KEY, amount money, note text);
             CREATE TABLE loose (a text, b text);",
        )
        .unwrap();
    let a = open(&db, &dir, "a");
    a.sync_now().unwrap();
    let status = a.status().unwrap();
    let reason = |t: &str| {
        status
            .unsynced_tables
            .iter()
            .find(|u| u.name == t)
            .map(|u| u.reason.clone())
            .unwrap_or_else(|| panic!("{t} not reported: {:?}", status.unsynced_tables))
    };
    assert!(reason("ledger").contains("money"), "{}", reason("ledger"));
    assert!(
        reason("loose").contains("primary key"),
        "{}",
        reason("loose")
    );
    // The mapped tables sync as usual.
    assert_eq!(rows(&a, "SELECT count(*) FROM tasks"), [["2"]]);
}

#[test]
fn a_column_dropped_on_the_server_rebuilds_the_cache_without_it() {
    let Some((db, dir)) = setup("dropped_column") else {
        return;
    };
    db.connect()
        .batch_execute("ALTER TABLE tasks ADD COLUMN extra text DEFAULT 'x'")
        .unwrap();
    let a = open(&db, &dir, "a");
    assert_eq!(rows(&a, "SELECT extra FROM tasks WHERE id = 't1'"), [["x"]]);
    db.connect()
        .batch_execute(
            "ALTER TABLE tasks DROP COLUMN extra; UPDATE tasks SET title = 'after' WHERE id = 't1'",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert!(r.rebuilt.is_some(), "{r:?}");
    let cols: Vec<Vec<String>> = rows(
        &a,
        "SELECT name FROM pragma_table_info('tasks') ORDER BY cid",
    );
    assert_eq!(cols, [["id"], ["title"]]);
    assert_eq!(
        rows(&a, "SELECT title FROM tasks WHERE id = 't1'"),
        [["after"]]
    );
}

/// The app rebuilds a table in its cache (SQLite's create-copy-drop-rename, from the `sqlite3`
/// shell) and writes while capture is gone; meanwhile a web backend changes one of those rows on
/// the server. The writes are recovered against the server by key and pushed; the row both
/// changed is a logged conflict.
#[test]
fn writes_after_a_table_rebuild_in_the_cache_are_recovered_against_the_server() {
    let Some((db, dir)) = setup("rebuild_in_cache") else {
        return;
    };
    let a = open(&db, &dir, "a");
    let out = std::process::Command::new("sqlite3")
        .arg(a.cache_path().unwrap())
        .arg(
            "BEGIN; CREATE TABLE tasks_new (id TEXT PRIMARY KEY, title TEXT); \
             INSERT INTO tasks_new SELECT id, title FROM tasks; DROP TABLE tasks; \
             ALTER TABLE tasks_new RENAME TO tasks; COMMIT; \
             INSERT INTO tasks (id, title) VALUES ('t3', 'while capture was off'); \
             UPDATE tasks SET title = 'a, uncaptured' WHERE id = 't1'; \
             DELETE FROM tasks WHERE id = 't2';",
        )
        .output()
        .expect("the sqlite3 shell (apt package sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db.connect()
        .execute("UPDATE tasks SET title = 'web, later' WHERE id = 't1'", &[])
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.repaired, ["tasks"], "{r:?}");
    assert_eq!(r.recovered, 3, "{r:?}");
    let server: Vec<Vec<String>> = db
        .connect()
        .query("SELECT id, title FROM tasks ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| vec![r.get(0), r.get(1)])
        .collect();
    assert_eq!(
        server,
        [
            vec!["t1".to_string(), "web, later".to_string()],
            vec!["t3".to_string(), "while capture was off".to_string()]
        ]
    );
    assert_eq!(rows(&a, "SELECT id, title FROM tasks ORDER BY id"), server);
    let lost = a.conflicts(10).unwrap();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(
        lost[0]
            .loser_row
            .as_deref()
            .unwrap_or_default()
            .contains("a, uncaptured"),
        "{lost:?}"
    );
}

#[test]
fn the_servers_plain_indexes_come_with_the_snapshot_and_a_unique_one_holds_in_the_cache() {
    let Some((db, dir)) = setup("server_indexes") else {
        return;
    };
    db.connect()
        .batch_execute(
            "ALTER TABLE tasks ADD COLUMN code text, ADD COLUMN owner text, ADD COLUMN due date;
             UPDATE tasks SET code = id || '-c', owner = 'ann';
             CREATE UNIQUE INDEX tasks_code ON tasks (code);
             CREATE INDEX \"tasks by owner, due\" ON tasks (owner, due);
             CREATE INDEX tasks_lower_title ON tasks (lower(title));
             CREATE INDEX tasks_open ON tasks (due) WHERE due IS NOT NULL;
             CREATE INDEX tasks_covering ON tasks (owner) INCLUDE (title);",
        )
        .unwrap();
    let a = open(&db, &dir, "a");
    let indexes = rows(
        &a,
        "SELECT name, \"unique\" FROM pragma_index_list('tasks') WHERE origin = 'c' ORDER BY name",
    );
    assert_eq!(
        indexes,
        [
            vec!["tasks by owner, due".to_string(), "0".into()],
            vec!["tasks_code".into(), "1".into()],
            vec!["tasks_covering".into(), "0".into()],
        ],
        "plain B-tree indexes (key columns only); expression and partial ones stay on the server"
    );
    let columns = rows(
        &a,
        "SELECT name FROM pragma_index_info('tasks by owner, due') ORDER BY seqno",
    );
    assert_eq!(columns, [vec!["owner".to_string()], vec!["due".into()]]);
    let plan = rows(
        &a,
        "EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE owner = 'ann' AND due = '2026-01-01'",
    );
    assert!(
        plan.iter()
            .any(|r| r.iter().any(|c| c.contains("tasks by owner, due"))),
        "the app's query uses it: {plan:?}"
    );
    let refused = a
        .conn()
        .execute(
            "INSERT INTO tasks (id, title, code) VALUES ('t3', 'third', 't1-c')",
            [],
        )
        .unwrap_err()
        .to_string();
    assert!(refused.contains("UNIQUE"), "{refused}");
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title, code) VALUES ('t3', 'third', 't3-c')",
            [],
        )
        .unwrap();
    a.sync_now().unwrap();
    let code: String = db
        .connect()
        .query_one("SELECT code FROM tasks WHERE id = 't3'", &[])
        .unwrap()
        .get(0);
    assert_eq!(code, "t3-c", "and the cache still syncs");
}
