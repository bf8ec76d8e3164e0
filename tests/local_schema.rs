//! Schema changes made in the cache by the app's own migrations: capture never silently stops,
//! writes made while it was off are recovered, and what cannot be carried is refused loudly.

use std::process::Command;

use sharecache::{Cache, ErrorKind};

use crate::support::{Share, open_cache_file, rows};

/// The 12-step rebuild migration tools use to change a column's type or constraints.
const REBUILD_TASKS: &str = "
    PRAGMA foreign_keys = OFF;
    BEGIN;
    CREATE TABLE tasks_new (id TEXT PRIMARY KEY, title TEXT NOT NULL CHECK (length(title) < 100),
                            done NUMERIC NOT NULL DEFAULT 0, updated_at TEXT);
    INSERT INTO tasks_new SELECT id, title, done, updated_at FROM tasks;
    DROP TABLE tasks;
    ALTER TABLE tasks_new RENAME TO tasks;
    COMMIT;";

fn tasks(c: &rusqlite::Connection) -> Vec<Vec<String>> {
    rows(c, "SELECT id, title, done FROM tasks ORDER BY id")
}

fn pending(cache: &Cache) -> i64 {
    cache.status().unwrap().pending_writes
}

fn sqlite3_shell(cache: &Cache, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(cache.cache_path().unwrap())
        .arg(sql)
        .output()
        .expect("the sqlite3 shell (apt package sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn writes_after_a_table_rebuild_in_the_cache_are_recovered_and_pushed() {
    let share = Share::new();
    let a = share.client("a");
    // The migration and the writes after it come from another program (the sqlite3 shell):
    // the rebuild drops the capture triggers with the old table, so nothing records the writes.
    sqlite3_shell(
        &a,
        &format!(
            "{REBUILD_TASKS} INSERT INTO tasks (id, title) VALUES ('t3', 'while capture was off'); \
             UPDATE tasks SET title = 'edited meanwhile' WHERE id = 't1'; DELETE FROM tasks WHERE id = 't2';"
        ),
    );
    let r = a.sync_now().unwrap();
    assert_eq!(r.repaired, ["tasks"]);
    assert_eq!(r.recovered, 3, "insert, update and delete recovered");
    assert_eq!(r.pushed, 3);
    let remote = share.remote();
    assert_eq!(tasks(&remote), tasks(&a.conn()));
    assert_eq!(
        tasks(&remote),
        [
            vec!["t1", "edited meanwhile", "0"],
            vec!["t3", "while capture was off", "0"]
        ]
    );
    // Capture is back: a later write from yet another connection is pushed as usual.
    open_cache_file(&a)
        .execute("UPDATE tasks SET done = 1 WHERE id = 't3'", [])
        .unwrap();
    assert_eq!(pending(&a), 1);
    let r = a.sync_now().unwrap();
    assert!(r.repaired.is_empty() && r.recovered == 0, "{r:?}");
    let repairs = a.status().unwrap().capture_repairs;
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert_eq!(
        (repairs[0].table.as_str(), repairs[0].recovered_rows),
        ("tasks", 3)
    );
    assert!(repairs[0].recovered_at.is_some());
    assert_eq!(tasks(&share.remote()), tasks(&a.conn()));
    assert_eq!(pending(&a), 0);
}

#[test]
fn a_recovered_row_the_remote_changed_since_the_last_pull_is_a_logged_conflict() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    sqlite3_shell(
        &a,
        &format!(
            "{REBUILD_TASKS} UPDATE tasks SET title = 'a, uncaptured' WHERE id = 't1'; \
             UPDATE tasks SET title = 'a, only a changed it' WHERE id = 't2';"
        ),
    );
    // Meanwhile b changes t1 and inserts t4; a has not pulled either.
    b.conn()
        .execute_batch(
            "UPDATE tasks SET title = 'b, pushed' WHERE id = 't1'; \
             INSERT INTO tasks (id, title) VALUES ('t4', 'b, new');",
        )
        .unwrap();
    b.sync_now().unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.repaired, ["tasks"]);
    assert_eq!(
        r.recovered, 2,
        "t1 and t2; t4 is b's insert, not a's delete"
    );
    assert_eq!(r.conflicts, 1, "t1: both changed it");
    let remote = share.remote();
    assert_eq!(
        tasks(&remote),
        [
            vec!["t1", "b, pushed", "0"],
            vec!["t2", "a, only a changed it", "0"],
            vec!["t4", "b, new", "0"]
        ]
    );
    assert_eq!(tasks(&remote), tasks(&a.conn()));
    let lost = a.conflicts(10).unwrap();
    assert_eq!(lost.len(), 1);
    assert!(
        lost[0]
            .loser_row
            .as_deref()
            .unwrap_or_default()
            .contains("a, uncaptured"),
        "{lost:?}"
    );
    assert_eq!(pending(&a), 0);
}

#[test]
fn a_dropped_capture_trigger_is_put_back_and_its_missed_deletes_pushed() {
    let share = Share::new();
    let a = share.client("a");
    let c = open_cache_file(&a);
    c.execute_batch("DROP TRIGGER sync_ad_notes; DELETE FROM notes WHERE id = 1;")
        .unwrap();
    assert_eq!(pending(&a), 0, "nothing recorded the delete");
    let r = a.sync_now().unwrap();
    assert_eq!((r.recovered, r.pushed), (1, 1));
    assert_eq!(rows(&share.remote(), "SELECT count(*) FROM notes"), [["0"]]);
    c.execute_batch("INSERT INTO notes VALUES (7, 'x'); DELETE FROM notes WHERE id = 7; INSERT INTO notes VALUES (8, 'y')")
        .unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        rows(&share.remote(), "SELECT id, body FROM notes"),
        [["8", "y"]]
    );
}

#[test]
fn capture_is_repaired_when_the_cache_is_opened_after_a_migration_made_while_the_app_was_closed() {
    let share = Share::new();
    let a = share.client("a");
    let path = a.cache_path().unwrap().to_path_buf();
    drop(a);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(REBUILD_TASKS).unwrap();
    c.execute("UPDATE tasks SET title = 'before open' WHERE id = 't1'", [])
        .unwrap();
    let a = share.client("a");
    c.execute("UPDATE tasks SET title = 'after open' WHERE id = 't2'", [])
        .unwrap();
    assert_eq!(pending(&a), 1, "the open put capture back");
    let r = a.sync_now().unwrap();
    assert_eq!(r.recovered, 1, "the write before the open is recovered");
    assert_eq!(tasks(&share.remote()), tasks(&a.conn()));
}

#[test]
fn dropping_a_synced_column_in_the_cache_is_refused_loudly_and_loses_nothing() {
    let share = Share::new();
    let a = share.client("a");
    let c = open_cache_file(&a);
    c.execute("INSERT INTO notes VALUES (2, 'pending before')", [])
        .unwrap();
    c.execute_batch(
        "ALTER TABLE tasks DROP COLUMN done; UPDATE tasks SET title = 'after' WHERE id = 't1';",
    )
    .unwrap();
    for _ in 0..2 {
        let e = a.sync_now().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Local);
        let msg = e.to_string();
        for words in [
            "table \"tasks\"",
            "column \"done\" was dropped or renamed in the cache",
            "pending writes are kept",
            "sharecache clear --discard-pending",
        ] {
            assert!(msg.contains(words), "{words:?} not in {msg}");
        }
    }
    let status = a.status().unwrap();
    assert_eq!(status.pending_writes, 2);
    assert_eq!(
        status.state,
        sharecache::status::State::Failed,
        "{status:?}"
    );
    let run = status.last_run.expect("the refused sync is recorded");
    assert!(
        run.error.as_deref().unwrap_or_default().contains("dropped"),
        "{run:?}"
    );
    assert_eq!(
        rows(&share.remote(), "SELECT count(*) FROM notes WHERE id = 2"),
        [["0"]],
        "nothing pushed while refused"
    );
}

fn python(cache_or_remote: &std::path::Path, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(cache_or_remote)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn columns_added_in_the_cache_reach_the_remote_and_every_other_client() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    open_cache_file(&a)
        .execute_batch(
            "ALTER TABLE tasks ADD COLUMN color TEXT; \
             ALTER TABLE tasks ADD COLUMN rank INTEGER NOT NULL DEFAULT 5; \
             UPDATE tasks SET color = 'red' WHERE id = 't1'; \
             INSERT INTO tasks (id, title, color, rank) VALUES ('t3', 'third', 'blue', 1);",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.carried, ["tasks.color", "tasks.rank"]);
    let q = "SELECT id, title, color, rank FROM tasks ORDER BY id";
    let want = [
        vec!["t1", "first", "red", "5"],
        vec!["t2", "second", "NULL", "5"],
        vec!["t3", "third", "blue", "1"],
    ];
    assert_eq!(rows(&share.remote(), q), want);
    assert_eq!(rows(&a.conn(), q), want);
    assert_eq!(pending(&a), 0);
    b.sync_now().unwrap();
    assert_eq!(
        rows(&b.conn(), q),
        want,
        "b mirrors the columns with their values"
    );
    // Both ways from now on, and nothing reported as cache-only.
    b.conn()
        .execute("UPDATE tasks SET color = 'green' WHERE id = 't2'", [])
        .unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        rows(&a.conn(), "SELECT color FROM tasks WHERE id = 't2'"),
        [["green"]]
    );
    assert!(
        a.status()
            .unwrap()
            .unsynced_tables
            .iter()
            .all(|t| !t.name.starts_with("tasks"))
    );
}

#[test]
fn a_table_and_an_index_created_in_the_cache_reach_the_remote_and_a_table_without_key_is_reported()
{
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    open_cache_file(&a)
        .execute_batch(
            "CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL); \
             INSERT INTO projects VALUES ('p1', 'alpha'), ('p2', 'beta'); \
             CREATE INDEX projects_name ON projects(name); CREATE INDEX tasks_title ON tasks(title); \
             CREATE TABLE scratch (x TEXT); INSERT INTO scratch VALUES ('local');",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.carried, ["projects", "projects_name", "tasks_title"]);
    let remote = share.remote();
    assert_eq!(
        rows(&remote, "SELECT id, name FROM projects ORDER BY id"),
        [["p1", "alpha"], ["p2", "beta"]]
    );
    assert_eq!(
        rows(
            &remote,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('projects_name', 'tasks_title') ORDER BY name"
        ),
        [["projects_name"], ["tasks_title"]]
    );
    assert_eq!(
        rows(
            &remote,
            "SELECT count(*) FROM sqlite_master WHERE name = 'scratch'"
        ),
        [["0"]]
    );
    let scratch = a.status().unwrap().unsynced_tables;
    assert!(scratch.iter().any(|t| t.name == "scratch"), "{scratch:?}");
    // Writes from now on are captured and pushed; the other client gets table and rows.
    open_cache_file(&a)
        .execute("UPDATE projects SET name = 'gamma' WHERE id = 'p2'", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert_eq!(
        rows(&b.conn(), "SELECT id, name FROM projects ORDER BY id"),
        [["p1", "alpha"], ["p2", "gamma"]]
    );
    assert_eq!(pending(&a), 0);
}

/// What a migration library does at startup: check `user_version`, migrate, bump it.
const MIGRATE_TO_8: &str = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
v = c.execute("PRAGMA user_version").fetchone()[0]
if v < 8:
    c.execute("BEGIN")
    c.execute("ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 3")
    c.execute("UPDATE tasks SET priority = 1 WHERE id = 't1'")
    c.execute("PRAGMA user_version = 8")
    c.execute("COMMIT")
c.execute("INSERT OR REPLACE INTO notes (id, body) VALUES (?, ?)", (100 + v, "after migration from %d" % v))
c.close()
"#;

#[test]
fn an_app_style_migration_runner_on_every_desk_and_on_the_remote_converges() {
    let share = Share::new();
    share
        .remote()
        .execute_batch("PRAGMA user_version = 7")
        .unwrap();
    let a = share.client("a");
    let b = share.client("b");
    let c = share.client("c");
    assert_eq!(rows(&a.conn(), "PRAGMA user_version"), [["7"]]);
    // The same app version starts on a and b at once: both migrate their own cache.
    python(a.cache_path().unwrap(), MIGRATE_TO_8);
    python(b.cache_path().unwrap(), MIGRATE_TO_8);
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    assert_eq!(rows(&share.remote(), "PRAGMA user_version"), [["8"]]);
    // c never ran the migration: it follows the remote, version included, so its app skips it.
    c.sync_now().unwrap();
    assert_eq!(rows(&c.conn(), "PRAGMA user_version"), [["8"]]);
    python(c.cache_path().unwrap(), MIGRATE_TO_8);
    c.sync_now().unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    let q = "SELECT id, priority FROM tasks ORDER BY id";
    let n = "SELECT id, body FROM notes ORDER BY id";
    for (name, cache) in [("a", &a), ("b", &b), ("c", &c)] {
        assert_eq!(rows(&cache.conn(), q), [["t1", "1"], ["t2", "3"]], "{name}");
        assert_eq!(rows(&cache.conn(), n), rows(&share.remote(), n), "{name}");
        assert_eq!(pending(cache), 0, "{name}");
        assert!(
            cache
                .status()
                .unwrap()
                .unsynced_tables
                .iter()
                .all(|t| !t.name.starts_with("tasks")),
            "{name}"
        );
    }
    assert_eq!(
        rows(&share.remote(), n),
        [
            vec!["1", "note one"],
            vec!["107", "after migration from 7"],
            vec!["108", "after migration from 8"]
        ]
    );
}

#[test]
fn a_migration_run_directly_on_the_remote_brings_its_user_version_to_every_cache() {
    let share = Share::with_schema(&format!(
        "{} PRAGMA user_version = 7;",
        crate::support::SCHEMA
    ));
    let a = share.client("a");
    python(&share.remote_path(), MIGRATE_TO_8);
    a.sync_now().unwrap();
    assert_eq!(rows(&a.conn(), "PRAGMA user_version"), [["8"]]);
    assert_eq!(
        rows(&a.conn(), "SELECT priority FROM tasks ORDER BY id"),
        [["1"], ["3"]]
    );
    // The app opening the cache skips the migration: no "duplicate column".
    python(a.cache_path().unwrap(), MIGRATE_TO_8);
    a.sync_now().unwrap();
    assert_eq!(pending(&a), 0);
}

#[test]
fn two_desks_adding_the_same_column_with_different_types_both_keep_syncing() {
    // Decision: the first desk to reach the remote sets the remote's declaration; the other
    // keeps its own in its cache, and the values sync as SQLite stores them.
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    open_cache_file(&a)
        .execute_batch("ALTER TABLE notes ADD COLUMN size INTEGER; UPDATE notes SET size = 10;")
        .unwrap();
    open_cache_file(&b)
        .execute_batch(
            "ALTER TABLE notes ADD COLUMN size TEXT; INSERT INTO notes VALUES (2, 'b', 'large');",
        )
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        rows(
            &share.remote(),
            "SELECT type FROM pragma_table_info('notes') WHERE name = 'size'"
        ),
        [["INTEGER"]]
    );
    let q = "SELECT id, body, size FROM notes ORDER BY id";
    let want = [["1", "note one", "10"], ["2", "b", "large"]];
    assert_eq!(rows(&share.remote(), q), want);
    assert_eq!(rows(&a.conn(), q), want);
    assert_eq!(rows(&b.conn(), q), want);
    assert_eq!((pending(&a), pending(&b)), (0, 0));
}

#[test]
fn vacuum_and_a_migration_inside_one_transaction_with_data_changes_lose_nothing() {
    let share = Share::new();
    let a = share.client("a");
    let c = open_cache_file(&a);
    c.execute_batch("VACUUM").unwrap();
    c.execute("INSERT INTO notes VALUES (2, 'after vacuum')", [])
        .unwrap();
    let r = a.sync_now().unwrap();
    assert!(r.repaired.is_empty() && r.pushed == 1, "{r:?}");
    // Data changes before, inside and after the rebuild, all in the app's one transaction.
    c.execute_batch(
        "BEGIN; INSERT INTO tasks (id, title) VALUES ('t5', 'before the rebuild'); \
         CREATE TABLE tasks_new (id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, updated_at TEXT); \
         INSERT INTO tasks_new SELECT * FROM tasks; DROP TABLE tasks; ALTER TABLE tasks_new RENAME TO tasks; \
         UPDATE tasks SET done = 1 WHERE id = 't1'; DELETE FROM tasks WHERE id = 't2'; \
         ALTER TABLE notes ADD COLUMN tag TEXT DEFAULT 'x'; UPDATE notes SET tag = 'y' WHERE id = 2; COMMIT;",
    )
    .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.repaired, ["notes", "tasks"], "{r:?}");
    let remote = share.remote();
    for q in [
        "SELECT id, title, done FROM tasks ORDER BY id",
        "SELECT id, body, tag FROM notes ORDER BY id",
    ] {
        assert_eq!(rows(&remote, q), rows(&a.conn(), q), "{q}");
    }
    assert_eq!(
        rows(&remote, "SELECT id, done FROM tasks ORDER BY id"),
        [["t1", "1"], ["t5", "0"]]
    );
    assert_eq!(rows(&remote, "SELECT tag FROM notes WHERE id = 2"), [["y"]]);
    assert_eq!(pending(&a), 0);
}

#[test]
fn a_migration_while_the_sync_is_mid_push_loses_nothing() {
    let share = Share::new();
    let mut cfg = share.config("a");
    cfg.batch_size = 20;
    let a = Cache::open(cfg).unwrap();
    let c = open_cache_file(&a);
    c.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600) \
         INSERT INTO tasks (id, title) SELECT 'bulk' || i, 'row ' || i FROM n",
    )
    .unwrap();
    std::thread::scope(|s| {
        let pushing = s.spawn(|| a.sync_now());
        assert!(
            crate::support::eventually(std::time::Duration::from_secs(30), || pending(&a) < 600),
            "the push started"
        );
        c.execute_batch(&format!(
            "{REBUILD_TASKS} UPDATE tasks SET title = 'during the push' WHERE id IN ('t1', 'bulk1', 'bulk600'); \
             DELETE FROM tasks WHERE id = 'bulk300';"
        ))
        .unwrap();
        pushing.join().unwrap().unwrap();
    });
    a.sync_now().unwrap();
    a.sync_now().unwrap();
    let q = "SELECT id, title, done FROM tasks ORDER BY id";
    assert_eq!(rows(&share.remote(), q), rows(&a.conn(), q));
    assert_eq!(
        rows(
            &share.remote(),
            "SELECT count(*), sum(title = 'during the push') FROM tasks"
        ),
        [["601", "3"]]
    );
    assert_eq!(
        pending(&a),
        0,
        "{:?}",
        rows(&c, "SELECT tbl, pk, op, seq, seen_rev FROM sync_tracking")
    );
}

#[test]
fn renaming_a_synced_table_or_changing_its_key_in_the_cache_is_refused_and_loses_nothing() {
    for (migration, words) in [
        (
            "ALTER TABLE notes RENAME TO memos",
            "table \"notes\": the table was dropped or renamed in the cache",
        ),
        (
            "CREATE TABLE n2 (id INTEGER, body TEXT PRIMARY KEY); INSERT INTO n2 SELECT * FROM notes; \
             DROP TABLE notes; ALTER TABLE n2 RENAME TO notes;",
            "table \"notes\": the primary key changed in the cache (from (id) to (body))",
        ),
    ] {
        let share = Share::new();
        let a = share.client("a");
        let c = open_cache_file(&a);
        c.execute("UPDATE tasks SET title = 'kept' WHERE id = 't1'", [])
            .unwrap();
        c.execute_batch(migration).unwrap();
        let e = a.sync_now().unwrap_err();
        assert!(e.to_string().contains(words), "{migration}: {e}");
        assert_eq!(a.status().unwrap().state, sharecache::status::State::Failed);
        assert_eq!(pending(&a), 1, "{migration}: the pending edit is kept");
        assert_eq!(
            rows(&share.remote(), "SELECT count(*) FROM notes"),
            [["1"]],
            "{migration}: the remote is untouched"
        );
    }
}
