//! Offline-first: the share goes away, the app goes on; writes queue and arrive later.

use sharecache::{ErrorKind, State};

use crate::support::{Share, one};

#[test]
fn offline_writes_succeed_locally_sync_fails_cleanly_and_everything_arrives_after_reconnect() {
    let share = Share::new();
    let a = share.client("a");
    a.sync_now().unwrap();
    share.control.set_offline(true);

    a.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('off-1', 'written offline')",
            [],
        )
        .unwrap();
    a.conn()
        .execute("UPDATE tasks SET done = 1 WHERE id = 't1'", [])
        .unwrap();
    let n: i64 = one(&a.conn(), "SELECT count(*) FROM tasks");
    assert_eq!(n, 3, "reads work offline");

    let err = a.sync_now().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Offline, "{err}");
    let status = a.status().unwrap();
    assert_eq!(status.state, State::Offline);
    assert_eq!(
        status.pending_writes, 2,
        "nothing is lost or dropped while offline"
    );
    assert!(status.offline_since.is_some());

    share.control.set_offline(false);
    let r = a.sync_now().unwrap();
    assert_eq!(r.pushed, 2);
    let remote = share.remote();
    assert_eq!(
        one::<String>(&remote, "SELECT title FROM tasks WHERE id = 'off-1'"),
        "written offline"
    );
    assert_eq!(
        one::<i64>(&remote, "SELECT done FROM tasks WHERE id = 't1'"),
        1
    );
    let status = a.status().unwrap();
    assert_eq!(status.state, State::Success);
    assert_eq!(status.offline_since, None);
}

#[test]
fn a_cache_opens_and_works_while_the_share_is_offline() {
    let share = Share::new();
    drop(share.client("a"));
    share.control.set_offline(true);
    let a = share.client("a");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (9, 'x')", [])
        .unwrap();
    assert_eq!(a.status().unwrap().pending_writes, 1);
    share.control.set_offline(false);
    a.sync_now().unwrap();
    assert_eq!(
        one::<String>(&share.remote(), "SELECT body FROM notes WHERE id = 9"),
        "x"
    );
}

#[test]
fn a_share_that_fails_mid_push_leaves_every_write_pending_and_the_remote_consistent() {
    let share = Share::new();
    let a = share.client("a");
    a.conn()
        .execute_batch("WITH RECURSIVE n(i) AS (SELECT 100 UNION ALL SELECT i + 1 FROM n WHERE i < 139) INSERT INTO notes (id, body) SELECT i, 'n' FROM n")
        .unwrap();
    let before: i64 = one(&share.remote(), "SELECT count(*) FROM notes");
    // Fail an operation in the middle of the push's remote transaction.
    share.control.reset_stats();
    share.control.fail_nth(25, true);
    assert!(a.sync_now().is_err());
    share.control.clear_faults();
    let remote = share.remote();
    assert_eq!(one::<String>(&remote, "PRAGMA integrity_check"), "ok");
    let after: i64 = one(&remote, "SELECT count(*) FROM notes");
    assert!(
        after == before || after == before + 40,
        "all or nothing: {before} -> {after}"
    );
    a.sync_now().unwrap();
    assert_eq!(
        one::<i64>(&share.remote(), "SELECT count(*) FROM notes"),
        before + 40
    );
    assert_eq!(a.status().unwrap().pending_writes, 0);
}

#[test]
fn opening_with_enable_cache_auto_does_not_wait_for_a_hung_share() {
    let share = Share::new();
    let mut cfg = share.config("a");
    sharecache::Cache::open(cfg.clone())
        .unwrap()
        .sync_now()
        .unwrap();
    cfg.enable_cache = sharecache::EnableCache::Auto;
    share.control.set_hang(true);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let opened = sharecache::Cache::open(cfg).map(|c| {
            let rule = c.status().map(|s| s.mode_reason).unwrap_or_default();
            c.conn()
                .execute("INSERT INTO notes (id, body) VALUES (77, 'while hung')", [])
                .map(|_| (c.mode(), rule))
        });
        let _ = tx.send(opened.map_err(|e| e.to_string()));
    });
    // Deciding whether the path is on a network share asks its filesystem, which hangs.
    let opened = rx.recv_timeout(std::time::Duration::from_secs(10));
    share.control.set_hang(false);
    let (mode, rule) = opened
        .expect("Cache::open waited for the hung share")
        .expect("opened")
        .expect("a local write");
    assert_eq!(mode, sharecache::Mode::Cached);
    assert!(
        rule.contains("did not answer"),
        "an unanswering filesystem is taken for a network share: {rule}"
    );
}
