//! Push creates, updates and deletes rows on the remote; other clients pull them. The behaviours
//! run against both backends (the share and a PostgreSQL server); the idle sync's cost on the
//! share's file (no write, one header read) is the share's own.

use crate::support::remote::{Backend, Remote, Schema};
use crate::support::{Share, one, rows};

crate::both_backends!(
    push_creates_updates_and_deletes_rows_on_the_remote_and_a_second_client_pulls_them,
    a_batch_larger_than_batch_size_is_pushed_in_several_transactions,
    direct_writes_on_the_remote_reach_the_cache,
    app_triggers_fire_once_not_again_when_their_effects_are_synced,
    moving_a_unique_value_between_rows_syncs_in_any_key_order,
);

fn push_creates_updates_and_deletes_rows_on_the_remote_and_a_second_client_pulls_them(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
    a.conn()
        .execute_batch(
            "INSERT INTO tasks (id, title) VALUES ('u-1', 'new task');
             UPDATE tasks SET done = 1 WHERE id = 't1';
             DELETE FROM tasks WHERE id = 't2';
             INSERT INTO tags VALUES ('u-1', 'urgent', 1.5), ('u-1', 'home', 0.25);
             INSERT INTO notes (body) VALUES ('auto id');",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.pushed, 6);
    let expect_tasks = vec![
        vec!["t1".to_string(), "1".into()],
        vec!["u-1".into(), "0".into()],
    ];
    assert_eq!(
        remote.rows("SELECT id, done FROM tasks ORDER BY id"),
        expect_tasks
    );
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM tags WHERE task_id = 'u-1'"),
        2
    );

    let r = b.sync_now().unwrap();
    assert_eq!(r.pulled, 6);
    assert_eq!(
        rows(&b.conn(), "SELECT id, done FROM tasks ORDER BY id"),
        expect_tasks
    );
    assert_eq!(
        rows(&b.conn(), "SELECT tag, weight FROM tags ORDER BY tag"),
        vec![
            vec!["home".to_string(), "0.25".into()],
            vec!["urgent".into(), "1.5".into()]
        ]
    );
    assert_eq!(
        one::<String>(&b.conn(), "SELECT body FROM notes WHERE id = 2"),
        "auto id"
    );
}

fn a_batch_larger_than_batch_size_is_pushed_in_several_transactions(backend: Backend) {
    let remote = Remote::new(backend);
    let mut cfg = remote.config("a");
    cfg.batch_size = 7;
    let a = sharecache::Cache::open(cfg).unwrap();
    a.conn()
        .execute_batch("WITH RECURSIVE n(i) AS (SELECT 10 UNION ALL SELECT i + 1 FROM n WHERE i < 59) INSERT INTO notes (id, body) SELECT i, 'n' || i FROM n")
        .unwrap();
    let before = remote.head_rev();
    let r = a.sync_now().unwrap();
    assert_eq!(r.pushed, 50);
    assert_eq!(remote.one::<i64>("SELECT count(*) FROM notes"), 51);
    assert_eq!(a.status().unwrap().pending_writes, 0);
    assert_eq!(remote.head_rev() - before, 50, "each row logged once");
}

// The share's own: what an idle sync costs on its file.

#[test]
fn an_idle_sync_reads_the_share_but_writes_nothing() {
    let share = Share::new();
    let a = share.client("a");
    a.sync_now().unwrap();
    let first = a.sync_now().unwrap();
    assert!(first.idle || first.pushed + first.pulled == 0);
    share.control.reset_stats();
    let r = a.sync_now().unwrap();
    assert!(r.idle, "{r:?}");
    let s = share.control.stats();
    assert_eq!(
        s.write + s.create + s.unlink,
        0,
        "an idle sync must not write to the share: {s:?}"
    );
}

#[test]
fn an_idle_sync_reads_only_the_header_and_still_sees_the_next_remote_change() {
    let share = Share::new();
    let a = share.client("a");
    a.sync_now().unwrap();
    a.sync_now().unwrap();
    share.control.reset_stats();
    assert!(a.sync_now().unwrap().idle);
    let s = share.control.stats();
    // One stat of the path (a LOOKUP and a GETATTR: is it still the file we have open?) and one
    // read of the header.
    assert!(
        s.total <= 3 && s.lookup <= 1,
        "an idle sync costs a stat and one header read: {s:?}"
    );
    share
        .remote()
        .execute(
            "UPDATE tasks SET title = 'changed meanwhile' WHERE id = 't1'",
            [],
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert!(!r.idle);
    assert_eq!(r.pulled, 1);
    share
        .remote()
        .execute_batch("CREATE TABLE added_later (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.schema_changes, 1, "{r:?}");
    // Following the schema installs change-log triggers on the remote: the next sync looks once
    // more, then the remote is quiet again.
    assert!((0..3).any(|_| a.sync_now().unwrap().idle));
}

fn direct_writes_on_the_remote_reach_the_cache(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    remote.exec("UPDATE tasks SET title = 'changed by another program' WHERE id = 't1'");
    remote.exec("DELETE FROM notes WHERE id = 1");
    let r = a.sync_now().unwrap();
    assert_eq!(r.pulled, 2);
    assert_eq!(
        one::<String>(&a.conn(), "SELECT title FROM tasks WHERE id = 't1'"),
        "changed by another program"
    );
    assert_eq!(one::<i64>(&a.conn(), "SELECT count(*) FROM notes"), 0);
}

/// An app's trigger on the remote. On the share the cache copies it (the schema is SQLite's), so
/// it fires once where the app writes, never again where the row is synced. A server's PL/pgSQL
/// trigger stays on the server: it fires there, once, for every write that reaches it (a push
/// or another program's), and its effects reach every cache like any other change.
const APP_TRIGGER: Schema = Schema {
    sqlite: "CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT);
         CREATE TABLE task_log (id INTEGER PRIMARY KEY, task_id TEXT, what TEXT);
         CREATE TRIGGER log_new_task AFTER INSERT ON tasks BEGIN
             INSERT INTO task_log (task_id, what) VALUES (NEW.id, 'created');
         END;",
    postgres: "CREATE TABLE tasks (id text PRIMARY KEY, title text);
         CREATE TABLE task_log (id bigserial PRIMARY KEY, task_id text, what text);
         CREATE FUNCTION log_new_task() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO task_log (task_id, what) VALUES (NEW.id, 'created');
             RETURN NULL;
         END $$;
         CREATE TRIGGER log_new_task AFTER INSERT ON tasks
             FOR EACH ROW EXECUTE FUNCTION log_new_task();",
};

fn app_triggers_fire_once_not_again_when_their_effects_are_synced(backend: Backend) {
    let remote = Remote::with_schema(backend, &APP_TRIGGER);
    let a = remote.client("a");
    let b = remote.client("b");
    let logged = |c: &rusqlite::Connection| one::<i64>(c, "SELECT count(*) FROM task_log");
    a.conn()
        .execute("INSERT INTO tasks VALUES ('x', 'made on a')", [])
        .unwrap();
    let in_a = match backend {
        Backend::Share => 1,
        Backend::Postgres => 0, // no copy of the server's trigger in the cache
    };
    assert_eq!(logged(&a.conn()), in_a);
    a.sync_now().unwrap();
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM task_log"),
        1,
        "the remote's trigger fires once for the pushed row, or not again for a copied one"
    );
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert_eq!(logged(&a.conn()), 1, "the trigger's row reaches the writer");
    assert_eq!(
        logged(&b.conn()),
        1,
        "nor the trigger in b's cache when the row is pulled"
    );
    // Writes made directly on the remote still fire the app's trigger there, once.
    remote.exec("INSERT INTO tasks VALUES ('y', 'made on the remote')");
    a.sync_now().unwrap();
    assert_eq!(logged(&a.conn()), 2);
    b.clear(false, &()).unwrap();
    assert_eq!(
        logged(&b.conn()),
        2,
        "a rebuild copies rows without firing triggers"
    );
}

fn moving_a_unique_value_between_rows_syncs_in_any_key_order(backend: Backend) {
    let remote = Remote::with_schema(
        backend,
        &Schema {
            sqlite: "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT UNIQUE);
                 INSERT INTO users VALUES ('a', 'x@example.com'), ('b', 'y@example.com');",
            postgres: "CREATE TABLE users (id text PRIMARY KEY, email text UNIQUE);
                 INSERT INTO users VALUES ('a', 'x@example.com'), ('b', 'y@example.com');",
        },
    );
    let one_client = remote.client("one");
    let other = remote.client("other");
    // Valid locally in this order; the push visits rows in key order (a before b).
    one_client
        .conn()
        .execute_batch("UPDATE users SET email = 'z@example.com' WHERE id = 'b'; UPDATE users SET email = 'y@example.com' WHERE id = 'a';")
        .unwrap();
    let r = one_client.sync_now().unwrap();
    assert_eq!((r.pushed, r.conflicts), (2, 0), "{r:?}");
    let expect = vec![
        vec!["a".to_string(), "y@example.com".into()],
        vec!["b".into(), "z@example.com".into()],
    ];
    assert_eq!(
        remote.rows("SELECT id, email FROM users ORDER BY id"),
        expect
    );
    // The other client pulls both; b's entry may come after a's in the log.
    one_client
        .conn()
        .execute(
            "UPDATE users SET email = 'w@example.com' WHERE id = 'b'",
            [],
        )
        .unwrap();
    one_client.sync_now().unwrap();
    other.sync_now().unwrap();
    assert_eq!(
        rows(&other.conn(), "SELECT id, email FROM users ORDER BY id"),
        vec![
            vec!["a".to_string(), "y@example.com".into()],
            vec!["b".into(), "w@example.com".into()]
        ]
    );
}
