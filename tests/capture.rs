//! Writes from any SQLite client are captured by the cache's triggers, and reach the remote:
//! the cache's side is the same whatever the remote, so every test runs against both backends.

use std::process::Command;

use crate::support::remote::{Backend, Remote};
use crate::support::{Share, one, open_cache_file, rows};

crate::both_backends!(
    writes_from_a_plain_rusqlite_connection_are_captured_and_pushed,
    writes_from_the_sqlite3_shell_and_python_are_captured_and_pushed,
    sharecaches_own_pull_writes_are_not_captured_as_local_changes,
    a_cache_of_the_previous_version_is_upgraded_on_open_and_keeps_its_pending_edit,
);

fn writes_from_a_plain_rusqlite_connection_are_captured_and_pushed(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let other = open_cache_file(&a);
    other
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('r1', 'from rusqlite')",
            [],
        )
        .unwrap();
    assert_eq!(a.status().unwrap().pending_writes, 1);
    a.sync_now().unwrap();
    assert_eq!(
        remote.rows("SELECT title FROM tasks WHERE id = 'r1'"),
        vec![vec!["from rusqlite"]]
    );
}

fn writes_from_the_sqlite3_shell_and_python_are_captured_and_pushed(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let path = a.cache_path().unwrap().to_path_buf();
    let out = Command::new("sqlite3")
        .arg(&path)
        .arg("INSERT INTO tasks (id, title) VALUES ('s1', 'from the shell'); UPDATE notes SET body = 'edited' WHERE id = 1;")
        .output()
        .expect("the sqlite3 shell (apt package sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"DELETE FROM tasks WHERE id = 't2'\"); c.commit()")
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(a.status().unwrap().pending_writes, 3);
    let r = a.sync_now().unwrap();
    assert_eq!(r.pushed, 3);
    assert_eq!(
        remote.one::<String>("SELECT title FROM tasks WHERE id = 's1'"),
        "from the shell"
    );
    assert_eq!(
        remote.one::<String>("SELECT body FROM notes WHERE id = 1"),
        "edited"
    );
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM tasks WHERE id = 't2'"),
        0
    );
    let stamped: String = remote.one("SELECT updated_at FROM tasks WHERE id = 's1'");
    assert!(
        stamped.ends_with('Z') && stamped.len() == 24,
        "updated_at stamped by the trigger: {stamped}"
    );
}

fn sharecaches_own_pull_writes_are_not_captured_as_local_changes(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (2, 'x')", [])
        .unwrap();
    a.sync_now().unwrap();
    let r = b.sync_now().unwrap();
    assert_eq!(r.pulled, 1);
    assert_eq!(
        b.status().unwrap().pending_writes,
        0,
        "pulled rows must not become pending writes"
    );
}

/// A cache made by the previous version (clock and stamps as text, its triggers) is upgraded
/// when opened: the edit it holds keeps its stamp, and writes after the upgrade are captured by
/// the new triggers, never by the old ones on the new tables.
fn a_cache_of_the_previous_version_is_upgraded_on_open_and_keeps_its_pending_edit(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let path = {
        let a = remote.client("a");
        a.cache_path().unwrap().to_path_buf()
    };
    // Turn the cache back into version 2: text clock and stamps, the old CHECK, the old triggers
    // (the update trigger of `notes` as version 2 wrote it), and one edit they captured.
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(
        "BEGIN;
         PRAGMA legacy_alter_table = ON;
         CREATE TABLE v2_tracking (tbl TEXT NOT NULL, pk TEXT NOT NULL,
             op TEXT NOT NULL CHECK (op IN ('I', 'U', 'D', 'X')), stamp TEXT NOT NULL,
             seq INTEGER NOT NULL DEFAULT 1, seen_rev INTEGER NOT NULL, ord NOT NULL DEFAULT '',
             PRIMARY KEY (tbl, pk)) WITHOUT ROWID;
         DROP TABLE sync_tracking;
         ALTER TABLE v2_tracking RENAME TO sync_tracking;
         CREATE INDEX sync_tracking_order ON sync_tracking (tbl, ord);
         CREATE TABLE v2_state AS SELECT id, origin, hlc, applying, pull_rev, conflict_cursor, remote_id,
             remote_path, created_at, snapshot_at FROM sync_state;
         ALTER TABLE sync_metadata DROP COLUMN note;
         UPDATE v2_state SET hlc = '2026-01-01T00:00:00.000Z';
         DROP TABLE sync_state;
         CREATE TABLE sync_state (id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT NOT NULL,
             hlc TEXT NOT NULL, applying INTEGER NOT NULL DEFAULT 0,
             pull_rev INTEGER NOT NULL DEFAULT 0, conflict_cursor INTEGER NOT NULL DEFAULT 0,
             remote_id TEXT NOT NULL, remote_path TEXT NOT NULL, created_at TEXT NOT NULL,
             snapshot_at TEXT NOT NULL);
         INSERT INTO sync_state SELECT id, origin, hlc, applying, pull_rev, conflict_cursor,
             remote_id, remote_path, created_at, snapshot_at FROM v2_state;
         DROP TABLE v2_state;
         DROP TABLE sync_repairs;
         DROP TABLE sync_origins;
         DROP TABLE sync_row_versions;
         DELETE FROM sync_migrations WHERE version > 2;
         DROP TABLE sync_journal;
         DROP TRIGGER sync_au_notes;
         CREATE TRIGGER sync_au_notes AFTER UPDATE ON notes WHEN (SELECT applying FROM sync_state) = 0 BEGIN
             UPDATE sync_state SET hlc = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                 strftime('%Y-%m-%dT%H:%M:%fZ', hlc, '+0.001 seconds'));
             INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev)
                 SELECT 'notes', json_array(NEW.id), NEW.id, 'U', hlc, 1, pull_rev FROM sync_state WHERE true
                 ON CONFLICT (tbl, pk) DO UPDATE SET op = 'U', stamp = excluded.stamp, seq = seq + 1;
         END;
         PRAGMA legacy_alter_table = OFF;
         COMMIT;
         UPDATE notes SET body = 'edited by version 2' WHERE id = 1;",
    )
    .unwrap();
    let old_stamp: String = one(&old, "SELECT stamp FROM sync_tracking");
    assert!(old_stamp.ends_with('Z'), "{old_stamp}");
    drop(old);

    let a = remote.client("a");
    let c = open_cache_file(&a);
    assert_eq!(
        one::<i64>(&c, "SELECT stamp FROM sync_tracking WHERE tbl = 'notes'"),
        sharecache::clock::ms_of_stamp(&old_stamp).unwrap(),
        "the pending edit keeps its stamp"
    );
    c.execute("UPDATE notes SET body = 'edited after' WHERE id = 1", [])
        .unwrap();
    c.execute("INSERT INTO notes (id, body) VALUES (2, 'new')", [])
        .unwrap();
    sharecache::store::journal::fold(&c).unwrap();
    let stamps = rows(
        &c,
        "SELECT pk, typeof(stamp) FROM sync_tracking ORDER BY pk",
    );
    assert_eq!(
        stamps,
        vec![vec!["1", "integer"], vec!["2", "integer"]],
        "written by the new triggers"
    );
    let after: i64 = one(&c, "SELECT stamp FROM sync_tracking WHERE pk = '1'");
    assert!(after > sharecache::clock::ms_of_stamp(&old_stamp).unwrap());
    a.sync_now().unwrap();
    assert_eq!(
        remote.rows("SELECT id, body FROM notes ORDER BY id"),
        vec![vec!["1", "edited after"], vec!["2", "new"]]
    );
    let pushed = remote
        .versions()
        .into_iter()
        .find(|v| (v.0.as_str(), v.1.as_str()) == ("notes", "1"))
        .expect("logged");
    assert_eq!(pushed.2, sharecache::clock::stamp_of_ms(after));
}

/// A cache of the version before the capture journal (migration 8: the triggers update or insert
/// the entry in sync_tracking themselves) is upgraded when opened: its pending entries are kept
/// as they are, the triggers are replaced in the migration's transaction, and a write after the
/// upgrade folds on top of the entry the old triggers made.
#[test]
fn a_cache_whose_triggers_wrote_the_outbox_keeps_its_pending_entries_when_upgraded() {
    let share = Share::new();
    let path = {
        let a = share.client("a");
        a.cache_path().unwrap().to_path_buf()
    };
    // Back to version 9: no journal, and the triggers of `notes` as versions 8 and 9 wrote them
    // (the other tables are not written before the upgrade, which reinstalls every trigger).
    let now = "CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)";
    let upsert = |p: &str, op: &str, conflict: &str| {
        format!(
            "UPDATE sync_tracking SET op = {conflict}, stamp = (SELECT hlc FROM sync_state), seq = seq + 1 \
             WHERE tbl = 'notes' AND ord = ifnull({p}.\"id\", '') AND pk = quote({p}.\"id\") AND 1; \
             INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) \
             SELECT 'notes', quote({p}.\"id\"), ifnull({p}.\"id\", ''), {op}, hlc, 1, pull_rev FROM sync_state \
             WHERE 1 AND changes() = 0;"
        )
    };
    let keep = "CASE WHEN op = 'I' THEN 'I' ELSE 'U' END";
    let gone = "CASE WHEN op = 'I' THEN 'X' ELSE 'D' END";
    let quiet = "(SELECT applying FROM sync_state) = 0";
    let tick = format!("UPDATE sync_state SET hlc = max(hlc + 1, {now});");
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(&format!(
        "BEGIN;
         DROP TABLE sync_journal;
         DELETE FROM sync_migrations WHERE version > 9;
         DROP TRIGGER sync_bi_notes; DROP TRIGGER sync_ai_notes; DROP TRIGGER sync_au_notes;
         DROP TRIGGER sync_ad_notes;
         CREATE TRIGGER sync_bi_notes BEFORE INSERT ON notes WHEN {quiet}
             AND EXISTS (SELECT 1 FROM notes WHERE id = NEW.id) BEGIN
             UPDATE sync_tracking SET op = op WHERE tbl = 'notes' AND ord = ifnull(NEW.\"id\", '') AND pk = quote(NEW.\"id\");
             INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev)
             SELECT 'notes', quote(NEW.\"id\"), ifnull(NEW.\"id\", ''), 'X', hlc, 0, pull_rev FROM sync_state WHERE changes() = 0; END;
         CREATE TRIGGER sync_ai_notes AFTER INSERT ON notes WHEN {quiet} BEGIN {tick} {ai} END;
         CREATE TRIGGER sync_au_notes AFTER UPDATE ON notes WHEN {quiet} BEGIN {tick} {au} END;
         CREATE TRIGGER sync_ad_notes AFTER DELETE ON notes WHEN {quiet} BEGIN {tick} {ad}
             DELETE FROM sync_tracking WHERE tbl = 'notes' AND ord = ifnull(OLD.\"id\", '') AND pk = quote(OLD.\"id\") AND op = 'X'; END;
         COMMIT;
         UPDATE notes SET body = 'edited by version 8' WHERE id = 1;
         INSERT INTO notes (id, body) VALUES (2, 'inserted by version 8'), (3, 'to go');
         DELETE FROM notes WHERE id = 3;",
        ai = upsert("NEW", "'I'", keep),
        au = upsert("NEW", "'U'", keep),
        ad = upsert("OLD", "'D'", gone),
    ))
    .unwrap();
    let before = rows(
        &old,
        "SELECT pk, op, stamp, seq FROM sync_tracking ORDER BY pk",
    );
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(
        (&before[0][..2], &before[1][..2]),
        (
            &["1".to_string(), "U".into()][..],
            &["2".to_string(), "I".into()][..]
        )
    );
    drop(old);

    let a = share.client("a");
    let c = open_cache_file(&a);
    assert_eq!(
        one::<i64>(&c, "SELECT max(version) FROM sync_migrations"),
        10
    );
    assert_eq!(
        rows(
            &c,
            "SELECT pk, op, stamp, seq FROM sync_tracking ORDER BY pk"
        ),
        before,
        "every pending entry kept as it was"
    );
    let stale: i64 = one(
        &c,
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%INTO sync_tracking%'",
    );
    assert_eq!(stale, 0, "no trigger writes the outbox any more");
    c.execute("UPDATE notes SET body = 'edited after' WHERE id = 2", [])
        .unwrap();
    assert_eq!(a.status().unwrap().pending_writes, 2);
    sharecache::store::journal::fold(&c).unwrap();
    assert_eq!(
        rows(&c, "SELECT pk, op, seq FROM sync_tracking ORDER BY pk"),
        vec![vec!["1", "U", "1"], vec!["2", "I", "2"]],
        "the new write folds on top of the old entry"
    );
    a.sync_now().unwrap();
    assert_eq!(
        rows(&share.remote(), "SELECT id, body FROM notes ORDER BY id"),
        vec![vec!["1", "edited by version 8"], vec!["2", "edited after"]]
    );
    assert_eq!(a.status().unwrap().pending_writes, 0);
}
