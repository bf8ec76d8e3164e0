//! Push creates, updates and deletes rows on the remote; other clients pull them.

use crate::support::{Share, one, rows};

#[test]
fn push_creates_updates_and_deletes_rows_on_the_remote_and_a_second_client_pulls_them() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
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
    let remote = share.remote();
    let expect_tasks = vec![
        vec!["t1".to_string(), "1".into()],
        vec!["u-1".into(), "0".into()],
    ];
    assert_eq!(
        rows(&remote, "SELECT id, done FROM tasks ORDER BY id"),
        expect_tasks
    );
    assert_eq!(
        one::<i64>(&remote, "SELECT count(*) FROM tags WHERE task_id = 'u-1'"),
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

#[test]
fn a_batch_larger_than_batch_size_is_pushed_in_several_transactions() {
    let share = Share::new();
    let mut cfg = share.config("a");
    cfg.batch_size = 7;
    let a = sharecache::Cache::open(cfg).unwrap();
    a.conn()
        .execute_batch("WITH RECURSIVE n(i) AS (SELECT 10 UNION ALL SELECT i + 1 FROM n WHERE i < 59) INSERT INTO notes (id, body) SELECT i, 'n' || i FROM n")
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.pushed, 50);
    assert_eq!(
        one::<i64>(&share.remote(), "SELECT count(*) FROM notes"),
        51
    );
    assert_eq!(a.status().unwrap().pending_writes, 0);
}

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
fn direct_writes_on_the_remote_reach_the_cache() {
    let share = Share::new();
    let a = share.client("a");
    share
        .remote()
        .execute(
            "UPDATE tasks SET title = 'changed by another program' WHERE id = 't1'",
            [],
        )
        .unwrap();
    share
        .remote()
        .execute("DELETE FROM notes WHERE id = 1", [])
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.pulled, 2);
    assert_eq!(
        one::<String>(&a.conn(), "SELECT title FROM tasks WHERE id = 't1'"),
        "changed by another program"
    );
    assert_eq!(one::<i64>(&a.conn(), "SELECT count(*) FROM notes"), 0);
}
