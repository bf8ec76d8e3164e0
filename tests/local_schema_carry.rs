//! Additive schema changes made in the cache reach the remote and every other client, and the
//! app's `user_version` travels with the schema. Columns and tables run against both backends (a
//! server takes them as DDL; indexes stay in the caches); the migration runners that read and
//! set `PRAGMA user_version` on the share's file are the share's.

use std::process::Command;

use sharecache::Cache;

use crate::support::remote::{Backend, Remote};
use crate::support::{Share, open_cache_file, rows};

crate::both_backends!(
    columns_added_in_the_cache_reach_the_remote_and_every_other_client,
    a_table_and_an_index_created_in_the_cache_reach_the_remote_and_a_table_without_key_is_reported,
    two_desks_adding_the_same_column_with_different_types_both_keep_syncing,
);

fn pending(cache: &Cache) -> i64 {
    cache.status().unwrap().pending_writes
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

fn columns_added_in_the_cache_reach_the_remote_and_every_other_client(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
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
    assert_eq!(remote.rows(q), want);
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

fn a_table_and_an_index_created_in_the_cache_reach_the_remote_and_a_table_without_key_is_reported(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
    open_cache_file(&a)
        .execute_batch(
            "CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL); \
             INSERT INTO projects VALUES ('p1', 'alpha'), ('p2', 'beta'); \
             CREATE INDEX projects_name ON projects(name); CREATE INDEX tasks_title ON tasks(title); \
             CREATE TABLE scratch (x TEXT); INSERT INTO scratch VALUES ('local');",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(
        remote.rows("SELECT id, name FROM projects ORDER BY id"),
        [["p1", "alpha"], ["p2", "beta"]]
    );
    match backend {
        Backend::Share => {
            assert_eq!(r.carried, ["projects", "projects_name", "tasks_title"]);
            assert_eq!(
                remote.rows(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('projects_name', 'tasks_title') ORDER BY name"
                ),
                [["projects_name"], ["tasks_title"]]
            );
            assert_eq!(
                remote.rows("SELECT count(*) FROM sqlite_master WHERE name = 'scratch'"),
                [["0"]]
            );
        }
        // A SQLite index definition is not the server's: indexes stay in the caches.
        Backend::Postgres => {
            assert_eq!(r.carried, ["projects"]);
            assert_eq!(
                remote.rows("SELECT count(*) FROM pg_tables WHERE tablename = 'scratch'"),
                [["0"]]
            );
        }
    }
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

fn two_desks_adding_the_same_column_with_different_types_both_keep_syncing(backend: Backend) {
    // keeps its own in its cache, and the values sync as SQLite stores them.
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
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
    let q = "SELECT id, body, size FROM notes ORDER BY id";
    match backend {
        Backend::Share => {
            assert_eq!(
                remote.rows("SELECT type FROM pragma_table_info('notes') WHERE name = 'size'"),
                [["INTEGER"]]
            );
            let want = [["1", "note one", "10"], ["2", "b", "large"]];
            assert_eq!(remote.rows(q), want);
            assert_eq!(rows(&a.conn(), q), want);
            assert_eq!(rows(&b.conn(), q), want);
        }
        // A server's column has one type: b's text in a's integer column is refused, and kept
        // whole in the conflict log; everything else syncs.
        Backend::Postgres => {
            assert_eq!(
                remote.rows(
                    "SELECT data_type FROM information_schema.columns \
                     WHERE table_name = 'notes' AND column_name = 'size'"
                ),
                [["bigint"]]
            );
            let want = [["1", "note one", "10"]];
            assert_eq!(remote.rows(q), want);
            assert_eq!(rows(&a.conn(), q), want);
            assert_eq!(rows(&b.conn(), q), want);
            let log = remote.conflicts();
            assert!(
                log.iter().any(|c| c.reason.contains("needs an integer")
                    && c.loser_row.as_deref().is_some_and(|r| r.contains("large"))),
                "{log:?}"
            );
        }
    }
    assert_eq!((pending(&a), pending(&b)), (0, 0));
}
