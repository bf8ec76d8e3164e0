//! Writes the app makes while a sync is running (the background sync and the app run
//! concurrently). Against both backends: the remote's latency (the share's per operation, the
//! server's link) keeps a sync's remote phase open long enough to write into it at a chosen
//! point, found by watching the remote (`support::remote`'s counters and sessions).

use std::time::Duration;

use crate::support::remote::{Backend, Remote, wait_for};
use crate::support::{one, open_cache_file};

crate::both_backends!(
    a_delete_made_while_the_insert_is_being_pushed_reaches_the_remote,
    a_deferred_edit_keeps_the_tombstone_of_a_newer_concurrent_delete_and_loses_to_it,
    a_row_edited_again_during_its_push_is_decided_only_against_what_came_after_that_push,
);

/// The app inserts a row, a sync starts pushing it, and the app deletes the row before the push
/// is acknowledged. The delete must reach the remote: the row must not survive there (and in
/// no other cache) while this cache has it deleted.
fn a_delete_made_while_the_insert_is_being_pushed_reaches_the_remote(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    a.sync_now().unwrap();
    let app = open_cache_file(&a);
    app.execute(
        "INSERT INTO notes (id, body) VALUES (42, 'short-lived')",
        [],
    )
    .unwrap();
    remote.set_latency(Duration::from_millis(20));
    remote.reset_counters();
    std::thread::scope(|s| {
        let sync = s.spawn(|| a.sync_now());
        // The remote write begins after the batch was read from the outbox.
        wait_for(&remote, "the push's remote write", Remote::write_begun);
        app.execute("DELETE FROM notes WHERE id = 42", []).unwrap();
        sync.join().unwrap().unwrap();
    });
    remote.normal_speed();
    a.sync_now().unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        one::<i64>(&app, "SELECT count(*) FROM notes WHERE id = 42"),
        0
    );
    assert_eq!(
        remote.rows("SELECT id, body FROM notes WHERE id = 42"),
        Vec::<Vec<String>>::new(),
        "the row the app deleted is still on the remote (and nothing is pending to delete it)"
    );
}

/// The app edits a row while a sync is pulling a newer, concurrent delete of it from another
/// client: the pull leaves the row for the next push to decide. Meanwhile every client catches
/// up, which lets tombstones be pruned, but not this one: the pending edit was made before it.
/// The next push must still see the delete as concurrent: the newer delete wins and the older
/// edit goes to the conflict log.
fn a_deferred_edit_keeps_the_tombstone_of_a_newer_concurrent_delete_and_loses_to_it(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client_with_clock("b", chrono::Duration::hours(1)); // b's delete is newer
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    // b deletes note 1 and, in the same push, writes a large row: a's pull of it takes long
    // enough to edit note 1 in the middle.
    b.conn()
        .execute_batch(
            "DELETE FROM notes WHERE id = 1;
             INSERT INTO notes (id, body) VALUES (2, hex(randomblob(400000)));",
        )
        .unwrap();
    b.sync_now().unwrap();
    let app = open_cache_file(&a);
    remote.set_latency(Duration::from_millis(2));
    remote.reset_counters();
    let report = std::thread::scope(|s| {
        let sync = s.spawn(|| a.sync_now());
        wait_for(&remote, "the pull of the large row", |r| {
            r.bytes_read() > 200_000
        });
        app.execute("UPDATE notes SET body = 'edited by a' WHERE id = 1", [])
            .unwrap();
        sync.join().unwrap().unwrap()
    });
    remote.normal_speed();
    assert_eq!(
        report.deferred, 1,
        "precondition: the pull left note 1 to the next push: {report:?}"
    );
    assert_eq!(
        report.pushed, 0,
        "precondition: nothing was pushed in that sync"
    );
    // Another program changes something else: b's next sync pulls it and records how far it
    // has pulled; every client has now pulled the tombstone, so it may be pruned.
    remote.exec("UPDATE tasks SET done = 1 WHERE id = 't2'");
    b.sync_now().unwrap();
    // Every client's pull cursor is past the tombstone, but a's pending edit was made against
    // an older revision: the registry must keep the tombstone for it (pruned, nothing could
    // tell the push that the edit is older than the delete).
    assert_eq!(
        remote.tombstones_of("notes", "1"),
        1,
        "the tombstone of note 1 was pruned while a's older edit of it was pending"
    );
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert_eq!(
        remote.rows("SELECT body FROM notes WHERE id = 1"),
        Vec::<Vec<String>>::new(),
        "b's newer delete must win over a's older concurrent edit"
    );
    assert_eq!(
        remote
            .conflicts()
            .iter()
            .filter(|c| c.tbl == "notes"
                && c.pk == "1"
                && c.loser_row
                    .as_deref()
                    .is_some_and(|r| r.contains("edited by a")))
            .count(),
        1,
        "a's losing edit is in the conflict log"
    );
}

/// The app edits a row again while its previous version is being pushed. The new change was made
/// on top of the version the push writes, so only what comes after that push can be concurrent
/// with it: its `seen_rev` moves up to the push's base revision. (Left at the first change's
/// cursor, a row the app keeps editing made every later push search the change log from there,
/// and kept the log from being pruned: found by the contention test's long form.)
fn a_row_edited_again_during_its_push_is_decided_only_against_what_came_after_that_push(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
    a.sync_now().unwrap();
    let cursor: i64 = one(&a.conn(), "SELECT pull_rev FROM sync_state");
    b.conn()
        .execute("INSERT INTO notes (id, body) VALUES (7, 'from b')", [])
        .unwrap();
    b.sync_now().unwrap(); // the remote moves on; a has not pulled it
    let app = open_cache_file(&a);
    app.execute("UPDATE notes SET body = 'first' WHERE id = 1", [])
        .unwrap();
    let base = remote.head_rev();
    assert!(
        base > cursor,
        "precondition: the remote moved past a's cursor"
    );
    remote.set_latency(Duration::from_millis(20));
    remote.reset_counters();
    std::thread::scope(|s| {
        let sync = s.spawn(|| a.sync_now());
        wait_for(&remote, "the push's remote write", Remote::write_begun);
        app.execute("UPDATE notes SET body = 'second' WHERE id = 1", [])
            .unwrap();
        sync.join().unwrap().unwrap();
    });
    remote.normal_speed();
    sharecache::store::journal::fold(&app).unwrap();
    let seen: i64 = one(
        &app,
        "SELECT seen_rev FROM sync_tracking WHERE tbl = 'notes' AND pk = '1'",
    );
    assert!(
        seen >= base,
        "the second edit is still decided from a's old cursor {cursor} (seen_rev {seen}), not from \
         the push's base {base}"
    );
    a.sync_now().unwrap();
    assert_eq!(
        remote.one::<String>("SELECT body FROM notes WHERE id = 1"),
        "second"
    );
}
