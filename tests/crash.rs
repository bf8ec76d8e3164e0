//! Crash consistency: a process killed between the remote commit and the local acknowledgement.
//! Against both backends: the acknowledgement is the engine's; each backend must recognise a
//! version it already holds when the crashed client sends it again.

use crate::support::remote::{Backend, Remote};
use crate::support::{one, sharecache};

crate::both_backends!(
    a_crash_between_remote_commit_and_local_mark_neither_duplicates_nor_loses,
    a_crash_before_the_remote_commit_leaves_the_remote_unchanged_and_the_next_sync_completes,
    a_resend_after_a_crash_leaves_a_newer_write_made_meanwhile_in_place,
);

fn crash_sync_at(remote: &Remote, point: &str) {
    let out = sharecache()
        .arg("--config")
        .arg(remote.config_file("a"))
        .arg("sync")
        .env("SHARECACHE_FAILPOINT", point)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the sync must have crashed at {point}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(point),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn a_crash_between_remote_commit_and_local_mark_neither_duplicates_nor_loses(backend: Backend) {
    let remote = Remote::new(backend);
    let cfg = remote.config_file("a");
    let a = sharecache::Cache::open(sharecache::Config::load(&cfg).unwrap()).unwrap();
    a.conn()
        .execute_batch(
            "INSERT INTO notes (body) VALUES ('auto 1'), ('auto 2');
             INSERT INTO tasks (id, title) VALUES ('c-1', 'crash');
             UPDATE tasks SET done = done + 1 WHERE id = 't1';
             DELETE FROM tasks WHERE id = 't2';",
        )
        .unwrap();
    drop(a);
    crash_sync_at(&remote, "push-after-remote-commit");

    // The remote has the batch; the cache still thinks it is pending.
    assert_eq!(remote.one::<i64>("SELECT count(*) FROM notes"), 3);
    let rev_after_crash = remote.head_rev();
    let a = sharecache::Cache::open(sharecache::Config::load(&cfg).unwrap()).unwrap();
    assert_eq!(a.status().unwrap().pending_writes, 5);

    let r = a.sync_now().unwrap();
    assert_eq!(
        r.conflicts, 0,
        "re-sending our own versions is not a conflict"
    );
    assert_eq!(a.status().unwrap().pending_writes, 0);
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM notes"),
        3,
        "no duplicate rows"
    );
    assert_eq!(
        remote.one::<i64>("SELECT done FROM tasks WHERE id = 't1'"),
        1,
        "the increment applied once"
    );
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM tasks WHERE id IN ('c-1', 't2')"),
        1
    );
    assert_eq!(
        remote.head_rev(),
        rev_after_crash,
        "the resend changed nothing"
    );
}

fn a_crash_before_the_remote_commit_leaves_the_remote_unchanged_and_the_next_sync_completes(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let cfg = remote.config_file("a");
    let a = sharecache::Cache::open(sharecache::Config::load(&cfg).unwrap()).unwrap();
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (50, 'x')", [])
        .unwrap();
    drop(a);
    crash_sync_at(&remote, "push-before-remote-commit");
    if backend == Backend::Share {
        assert_eq!(remote.one::<String>("PRAGMA integrity_check"), "ok");
    }
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM notes WHERE id = 50"),
        0,
        "rolled back"
    );
    // On the share the crashed process left its write lease behind (a dead holder's lease is
    // broken at once); the server rolled the dead session's transaction back.
    let a = sharecache::Cache::open(sharecache::Config::load(&cfg).unwrap()).unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM notes WHERE id = 50"),
        1
    );
}

fn a_resend_after_a_crash_leaves_a_newer_write_made_meanwhile_in_place(backend: Backend) {
    let remote = Remote::new(backend);
    let cfg = remote.config_file("a");
    let a = sharecache::Cache::open(sharecache::Config::load(&cfg).unwrap()).unwrap();
    a.conn()
        .execute("UPDATE tasks SET title = 'from a' WHERE id = 't1'", [])
        .unwrap();
    drop(a);
    crash_sync_at(&remote, "push-after-remote-commit");
    // Another program changes the row after a's commit landed, before a's resend.
    remote.exec("UPDATE tasks SET title = 'written later' WHERE id = 't1'");
    let a = sharecache::Cache::open(sharecache::Config::load(&cfg).unwrap()).unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(
        (r.pushed, r.conflicts),
        (0, 0),
        "a's version was pushed already: nothing to write, nothing to decide"
    );
    assert_eq!(
        remote.one::<String>("SELECT title FROM tasks WHERE id = 't1'"),
        "written later"
    );
    assert_eq!(
        one::<String>(&a.conn(), "SELECT title FROM tasks WHERE id = 't1'"),
        "written later",
        "the later write reaches a's cache"
    );
}
