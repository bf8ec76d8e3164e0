//! Writes the app makes while a sync is running (the background sync and the app run
//! concurrently). The share's latency keeps a sync's remote phase open long enough to write
//! into it at a chosen point, found by watching the share's operation counters.

use std::time::{Duration, Instant};

use crate::support::{Share, one, open_cache_file, rows};

/// Waits until `cond` holds for the share's counters (or panics after 20 s).
fn wait_for(share: &Share, what: &str, cond: impl Fn(&slowfs::Stats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond(&share.control.stats()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The app inserts a row, a sync starts pushing it, and the app deletes the row before the push
/// is acknowledged. The delete must reach the remote: the row must not survive there (and in
/// no other cache) while this cache has it deleted.
#[test]
fn a_delete_made_while_the_insert_is_being_pushed_reaches_the_remote() {
    let share = Share::new();
    let a = share.client("a");
    a.sync_now().unwrap();
    let app = open_cache_file(&a);
    app.execute(
        "INSERT INTO notes (id, body) VALUES (42, 'short-lived')",
        [],
    )
    .unwrap();
    share.control.set_latency(Duration::from_millis(20));
    share.control.reset_stats();
    std::thread::scope(|s| {
        let sync = s.spawn(|| a.sync_now());
        // The write lease is created after the batch was read from the outbox.
        wait_for(&share, "the push's write lease", |st| st.create >= 1);
        app.execute("DELETE FROM notes WHERE id = 42", []).unwrap();
        sync.join().unwrap().unwrap();
    });
    share.control.set_latency(Duration::from_millis(1));
    a.sync_now().unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        one::<i64>(&app, "SELECT count(*) FROM notes WHERE id = 42"),
        0
    );
    assert_eq!(
        rows(&share.remote(), "SELECT id, body FROM notes WHERE id = 42"),
        Vec::<Vec<String>>::new(),
        "the row the app deleted is still on the remote (and nothing is pending to delete it)"
    );
}

/// The app edits a row while a sync is pulling a newer, concurrent delete of it from another
/// client: the pull leaves the row for the next push to decide. Meanwhile every client catches
/// up, which lets tombstones be pruned, but not this one: the pending edit was made before it.
/// The next push must still see the delete as concurrent: the newer delete wins and the older
/// edit goes to the conflict log.
#[test]
fn a_deferred_edit_keeps_the_tombstone_of_a_newer_concurrent_delete_and_loses_to_it() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client_with_clock("b", chrono::Duration::hours(1)); // b's delete is newer
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
    share.control.set_latency(Duration::from_millis(2));
    share.control.reset_stats();
    let report = std::thread::scope(|s| {
        let sync = s.spawn(|| a.sync_now());
        wait_for(&share, "the pull of the large row", |st| {
            st.bytes_read > 200_000
        });
        app.execute("UPDATE notes SET body = 'edited by a' WHERE id = 1", [])
            .unwrap();
        sync.join().unwrap().unwrap()
    });
    share.control.set_latency(Duration::from_millis(1));
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
    share
        .remote()
        .execute("UPDATE tasks SET done = 1 WHERE id = 't2'", [])
        .unwrap();
    b.sync_now().unwrap();
    // Every client's pull cursor is past the tombstone, but a's pending edit was made against
    // an older revision: the registry must keep the tombstone for it (pruned, nothing could
    // tell the push that the edit is older than the delete).
    assert_eq!(
        one::<i64>(
            &share.remote(),
            "SELECT count(*) FROM sharecache_log WHERE tbl = 'notes' AND pk = '1' AND deleted = 1"
        ),
        1,
        "the tombstone of note 1 was pruned while a's older edit of it was pending"
    );
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    let remote = share.remote();
    assert_eq!(
        rows(&remote, "SELECT body FROM notes WHERE id = 1"),
        Vec::<Vec<String>>::new(),
        "b's newer delete must win over a's older concurrent edit"
    );
    assert_eq!(
        one::<i64>(
            &remote,
            "SELECT count(*) FROM sharecache_conflicts WHERE tbl = 'notes' AND pk = '1' AND loser_row LIKE '%edited by a%'"
        ),
        1,
        "a's losing edit is in the conflict log"
    );
}

/// The app edits a row again while its previous version is being pushed. The new change was made
/// on top of the version the push writes, so only what comes after that push can be concurrent
/// with it: its `seen_rev` moves up to the push's base revision. (Left at the first change's
/// cursor, a row the app keeps editing made every later push search the change log from there,
/// and kept the log from being pruned: found by the contention test's long form.)
#[test]
fn a_row_edited_again_during_its_push_is_decided_only_against_what_came_after_that_push() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    a.sync_now().unwrap();
    let cursor: i64 = one(&a.conn(), "SELECT pull_rev FROM sync_state");
    b.conn()
        .execute("INSERT INTO notes (id, body) VALUES (7, 'from b')", [])
        .unwrap();
    b.sync_now().unwrap(); // the remote moves on; a has not pulled it
    let app = open_cache_file(&a);
    app.execute("UPDATE notes SET body = 'first' WHERE id = 1", [])
        .unwrap();
    let base: i64 = one(&share.remote(), "SELECT rev FROM sharecache_meta");
    assert!(
        base > cursor,
        "precondition: the remote moved past a's cursor"
    );
    share.control.set_latency(Duration::from_millis(20));
    share.control.reset_stats();
    std::thread::scope(|s| {
        let sync = s.spawn(|| a.sync_now());
        wait_for(&share, "the push's write lease", |st| st.create >= 1);
        app.execute("UPDATE notes SET body = 'second' WHERE id = 1", [])
            .unwrap();
        sync.join().unwrap().unwrap();
    });
    share.control.set_latency(Duration::from_millis(1));
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
        one::<String>(&share.remote(), "SELECT body FROM notes WHERE id = 1"),
        "second"
    );
}
