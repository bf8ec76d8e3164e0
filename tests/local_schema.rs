//! Schema changes made in the cache by the app's own migrations: capture never silently stops,
//! writes made while it was off are recovered, and what cannot be carried is refused loudly.
//! Against both backends: the repairs are the cache's, the pushes and refusals reach either.

use std::process::Command;

use sharecache::{Cache, ErrorKind};

use crate::support::remote::{Backend, Remote};
use crate::support::{open_cache_file, rows};

crate::both_backends!(
    writes_after_a_table_rebuild_in_the_cache_are_recovered_and_pushed,
    a_recovered_row_the_remote_changed_since_the_last_pull_is_a_logged_conflict,
    a_dropped_capture_trigger_is_put_back_and_its_missed_deletes_pushed,
    capture_is_repaired_when_the_cache_is_opened_after_a_migration_made_while_the_app_was_closed,
    dropping_a_synced_column_in_the_cache_is_refused_loudly_and_loses_nothing,
    vacuum_and_a_migration_inside_one_transaction_with_data_changes_lose_nothing,
    a_migration_while_the_sync_is_mid_push_loses_nothing,
    renaming_a_synced_table_or_changing_its_key_in_the_cache_is_refused_and_loses_nothing,
    a_refused_change_made_on_the_remote_too_is_followed_and_the_pending_writes_pushed,
);

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

const TASKS: &str = "SELECT id, title, done FROM tasks ORDER BY id";

fn tasks(c: &rusqlite::Connection) -> Vec<Vec<String>> {
    rows(c, TASKS)
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

fn writes_after_a_table_rebuild_in_the_cache_are_recovered_and_pushed(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
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
    assert_eq!(remote.rows(TASKS), tasks(&a.conn()));
    assert_eq!(
        remote.rows(TASKS),
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
    assert_eq!(remote.rows(TASKS), tasks(&a.conn()));
    assert_eq!(pending(&a), 0);
}

fn a_recovered_row_the_remote_changed_since_the_last_pull_is_a_logged_conflict(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
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
    assert_eq!(
        remote.rows(TASKS),
        [
            vec!["t1", "b, pushed", "0"],
            vec!["t2", "a, only a changed it", "0"],
            vec!["t4", "b, new", "0"]
        ]
    );
    assert_eq!(remote.rows(TASKS), tasks(&a.conn()));
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

fn a_dropped_capture_trigger_is_put_back_and_its_missed_deletes_pushed(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let c = open_cache_file(&a);
    c.execute_batch("DROP TRIGGER sync_ad_notes; DELETE FROM notes WHERE id = 1;")
        .unwrap();
    assert_eq!(pending(&a), 0, "nothing recorded the delete");
    let r = a.sync_now().unwrap();
    assert_eq!((r.recovered, r.pushed), (1, 1));
    assert_eq!(remote.rows("SELECT count(*) FROM notes"), [["0"]]);
    c.execute_batch("INSERT INTO notes VALUES (7, 'x'); DELETE FROM notes WHERE id = 7; INSERT INTO notes VALUES (8, 'y')")
        .unwrap();
    a.sync_now().unwrap();
    assert_eq!(remote.rows("SELECT id, body FROM notes"), [["8", "y"]]);
}

fn capture_is_repaired_when_the_cache_is_opened_after_a_migration_made_while_the_app_was_closed(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let path = a.cache_path().unwrap().to_path_buf();
    drop(a);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(REBUILD_TASKS).unwrap();
    c.execute("UPDATE tasks SET title = 'before open' WHERE id = 't1'", [])
        .unwrap();
    let a = remote.client("a");
    c.execute("UPDATE tasks SET title = 'after open' WHERE id = 't2'", [])
        .unwrap();
    assert_eq!(pending(&a), 1, "the open put capture back");
    let r = a.sync_now().unwrap();
    assert_eq!(r.recovered, 1, "the write before the open is recovered");
    assert_eq!(remote.rows(TASKS), tasks(&a.conn()));
}

fn dropping_a_synced_column_in_the_cache_is_refused_loudly_and_loses_nothing(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
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
        remote.rows("SELECT count(*) FROM notes WHERE id = 2"),
        [["0"]],
        "nothing pushed while refused"
    );
    // The command the message gives resolves it: pending writes exported, the cache rebuilt
    // from the remote, syncing again.
    let cleared = a.clear(true, &()).unwrap();
    let exported = std::fs::read_to_string(cleared.exported.expect("exported")).unwrap();
    assert_eq!(exported.lines().count(), 2, "{exported}");
    assert!(
        exported.contains("pending before") && exported.contains("after"),
        "{exported}"
    );
    a.sync_now().unwrap();
    let status = a.status().unwrap();
    assert_eq!(
        status.state,
        sharecache::status::State::Success,
        "{status:?}"
    );
    assert_eq!(
        rows(
            &a.conn(),
            "SELECT count(*) FROM pragma_table_info('tasks') WHERE name = 'done'"
        ),
        [["1"]]
    );
}

fn vacuum_and_a_migration_inside_one_transaction_with_data_changes_lose_nothing(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
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
    for q in [
        "SELECT id, title, done FROM tasks ORDER BY id",
        "SELECT id, body, tag FROM notes ORDER BY id",
    ] {
        assert_eq!(remote.rows(q), rows(&a.conn(), q), "{q}");
    }
    assert_eq!(
        remote.rows("SELECT id, done FROM tasks ORDER BY id"),
        [["t1", "1"], ["t5", "0"]]
    );
    assert_eq!(remote.rows("SELECT tag FROM notes WHERE id = 2"), [["y"]]);
    assert_eq!(pending(&a), 0);
}

fn a_migration_while_the_sync_is_mid_push_loses_nothing(backend: Backend) {
    let remote = Remote::new(backend);
    let mut cfg = remote.config("a");
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
    assert_eq!(remote.rows(q), rows(&a.conn(), q));
    assert_eq!(
        remote.rows(
            "SELECT count(*), sum(CASE WHEN title = 'during the push' THEN 1 ELSE 0 END) FROM tasks"
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

fn renaming_a_synced_table_or_changing_its_key_in_the_cache_is_refused_and_loses_nothing(
    backend: Backend,
) {
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
        let remote = Remote::new(backend);
        let a = remote.client("a");
        let c = open_cache_file(&a);
        c.execute("UPDATE tasks SET title = 'kept' WHERE id = 't1'", [])
            .unwrap();
        c.execute_batch(migration).unwrap();
        let e = a.sync_now().unwrap_err();
        assert!(e.to_string().contains(words), "{migration}: {e}");
        assert_eq!(a.status().unwrap().state, sharecache::status::State::Failed);
        assert_eq!(pending(&a), 1, "{migration}: the pending edit is kept");
        assert_eq!(
            remote.rows("SELECT count(*) FROM notes"),
            [["1"]],
            "{migration}: the remote is untouched"
        );
    }
}

fn a_refused_change_made_on_the_remote_too_is_followed_and_the_pending_writes_pushed(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let c = open_cache_file(&a);
    c.execute_batch(
        "ALTER TABLE tasks DROP COLUMN done; UPDATE tasks SET title = 'edited' WHERE id = 't1';",
    )
    .unwrap();
    assert!(
        a.sync_now().is_err(),
        "refused while the remote has the column"
    );
    // The error's advice: the same change on the remote.
    remote.exec("ALTER TABLE tasks DROP COLUMN done");
    let r = a.sync_now().unwrap();
    assert!(r.rebuilt.is_some(), "{r:?}");
    let q = "SELECT id, title FROM tasks ORDER BY id";
    assert_eq!(remote.rows(q), [["t1", "edited"], ["t2", "second"]]);
    assert_eq!(rows(&a.conn(), q), remote.rows(q));
    assert_eq!(pending(&a), 0);
    a.sync_now().unwrap();
    assert_eq!(
        a.status().unwrap().state,
        sharecache::status::State::Success
    );
}
