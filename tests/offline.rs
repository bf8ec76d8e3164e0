//! Offline-first: the remote goes away, the app goes on; writes queue and arrive later. Against
//! both backends (the share unreachable; the server's connections cut and refused by the proxy),
//! and a hung remote at open; a share failing in the middle of a push's file transaction is the
//! share's own (`pg_sync` cuts a server's connection mid-push).

use sharecache::{ErrorKind, State};

use crate::support::remote::{Backend, Remote};
use crate::support::{Share, one};

crate::both_backends!(
    offline_writes_succeed_locally_sync_fails_cleanly_and_everything_arrives_after_reconnect,
    a_cache_opens_and_works_while_the_remote_is_offline,
    opening_with_enable_cache_auto_does_not_wait_for_a_hung_remote,
);

fn offline_writes_succeed_locally_sync_fails_cleanly_and_everything_arrives_after_reconnect(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    a.sync_now().unwrap();
    remote.set_offline(true);

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

    remote.set_offline(false);
    let r = a.sync_now().unwrap();
    assert_eq!(r.pushed, 2);
    assert_eq!(
        remote.one::<String>("SELECT title FROM tasks WHERE id = 'off-1'"),
        "written offline"
    );
    assert_eq!(
        remote.one::<i64>("SELECT done FROM tasks WHERE id = 't1'"),
        1
    );
    let status = a.status().unwrap();
    assert_eq!(status.state, State::Success);
    assert_eq!(status.offline_since, None);
}

fn a_cache_opens_and_works_while_the_remote_is_offline(backend: Backend) {
    let remote = Remote::new(backend);
    drop(remote.client("a"));
    remote.set_offline(true);
    let a = remote.client("a");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (9, 'x')", [])
        .unwrap();
    assert_eq!(a.status().unwrap().pending_writes, 1);
    remote.set_offline(false);
    a.sync_now().unwrap();
    assert_eq!(
        remote.one::<String>("SELECT body FROM notes WHERE id = 9"),
        "x"
    );
}

/// A remote that neither answers nor fails (a hung share, a hung link to the server) does not
/// hold up the app's open of its cache.
fn opening_with_enable_cache_auto_does_not_wait_for_a_hung_remote(backend: Backend) {
    let remote = Remote::new(backend);
    let mut cfg = remote.config("a");
    sharecache::Cache::open(cfg.clone())
        .unwrap()
        .sync_now()
        .unwrap();
    cfg.enable_cache = sharecache::EnableCache::Auto;
    remote.set_hung(true);
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
    let opened = rx.recv_timeout(std::time::Duration::from_secs(10));
    remote.set_hung(false);
    let (mode, rule) = opened
        .expect("Cache::open waited for the hung remote")
        .expect("opened")
        .expect("a local write");
    assert_eq!(mode, sharecache::Mode::Cached);
    match backend {
        // Deciding whether the path is on a network share asks its filesystem, which hangs.
        Backend::Share => assert!(
            rule.contains("did not answer"),
            "an unanswering filesystem is taken for a network share: {rule}"
        ),
        // A server is cached without asking it anything.
        Backend::Postgres => assert!(rule.contains("PostgreSQL server"), "{rule}"),
    }
}

// The share's own: a failure inside the file transaction of a push.

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
