//! Conflicts: newest stamp wins on every replica, the loser is kept in the conflict log.

use std::time::Duration;

use crate::support::{Share, one, rows};

fn title(c: &rusqlite::Connection) -> String {
    one(c, "SELECT title FROM tasks WHERE id = 't1'")
}

#[test]
fn concurrent_edits_end_with_the_newer_version_everywhere_and_the_older_in_the_conflict_log() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    a.conn()
        .execute("UPDATE tasks SET title = 'older (a)' WHERE id = 't1'", [])
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    b.conn()
        .execute("UPDATE tasks SET title = 'newer (b)' WHERE id = 't1'", [])
        .unwrap();

    // The older edit reaches the remote first, then the newer one overwrites it.
    assert_eq!(a.sync_now().unwrap().conflicts, 0);
    assert_eq!(b.sync_now().unwrap().conflicts, 1);
    a.sync_now().unwrap();

    let remote = share.remote();
    assert_eq!(title(&remote), "newer (b)");
    assert_eq!(title(&a.conn()), "newer (b)");
    assert_eq!(title(&b.conn()), "newer (b)");
    let log = rows(
        &remote,
        "SELECT pk, loser_row, loser_origin, winner_origin, reason FROM sharecache_conflicts",
    );
    assert_eq!(log.len(), 1);
    assert_eq!(log[0][0], "'t1'");
    assert!(
        log[0][1].contains("older (a)"),
        "the losing row is kept whole: {}",
        log[0][1]
    );
    assert_ne!(log[0][2], log[0][3], "loser and winner origins differ");
    assert_eq!(
        a.status().unwrap().conflicts,
        1,
        "the conflict log reaches every client"
    );
    assert_eq!(b.status().unwrap().conflicts, 1);
}

#[test]
fn the_newer_edit_wins_even_when_it_reaches_the_remote_first() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    a.conn()
        .execute("UPDATE tasks SET title = 'older (a)' WHERE id = 't1'", [])
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    b.conn()
        .execute("UPDATE tasks SET title = 'newer (b)' WHERE id = 't1'", [])
        .unwrap();

    b.sync_now().unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.conflicts, 1, "a's older edit loses at the remote");
    assert_eq!(title(&share.remote()), "newer (b)");
    assert_eq!(
        title(&a.conn()),
        "newer (b)",
        "the loser takes the winner at once"
    );
    assert_eq!(a.status().unwrap().pending_writes, 0);
    let loser: String = one(
        &share.remote(),
        "SELECT loser_row FROM sharecache_conflicts",
    );
    assert!(loser.contains("older (a)"));
}

#[test]
fn a_client_whose_clock_is_an_hour_behind_still_wins_with_an_edit_made_after_it_pulled() {
    let share = Share::new();
    let behind = share.client_with_clock("behind", -chrono::Duration::hours(1));
    let b = share.client("b");
    let c = share.client("c");
    // c edits first, offline (it will sync last).
    c.conn()
        .execute(
            "UPDATE tasks SET title = 'earliest (c)' WHERE id = 't1'",
            [],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    b.conn()
        .execute("UPDATE tasks SET title = 'middle (b)' WHERE id = 't1'", [])
        .unwrap();
    b.sync_now().unwrap();
    // The slow-clock client pulls b's version, then edits: its edit is the latest in real time.
    behind.sync_now().unwrap();
    assert_eq!(title(&behind.conn()), "middle (b)");
    behind
        .conn()
        .execute(
            "UPDATE tasks SET title = 'latest (behind)' WHERE id = 't1'",
            [],
        )
        .unwrap();
    behind.sync_now().unwrap();
    // c's stale edit arrives last; its wall-clock stamp is later than the slow clock's reading.
    let r = c.sync_now().unwrap();
    assert_eq!(r.conflicts, 1);
    b.sync_now().unwrap();
    assert_eq!(title(&share.remote()), "latest (behind)");
    assert_eq!(title(&b.conn()), "latest (behind)");
    assert_eq!(title(&c.conn()), "latest (behind)");
    let loser: String = one(
        &share.remote(),
        "SELECT loser_row FROM sharecache_conflicts",
    );
    assert!(loser.contains("earliest (c)"), "{loser}");
    let stamp: String = one(
        &behind.conn(),
        "SELECT updated_at FROM tasks WHERE id = 't1'",
    );
    let c_stamp: String = one(
        &share.remote(),
        "SELECT loser_stamp FROM sharecache_conflicts",
    );
    assert!(
        stamp > c_stamp,
        "hybrid clock: the slow clock's stamp {stamp} is after c's {c_stamp}"
    );
}

#[test]
fn a_delete_that_loses_to_a_newer_update_keeps_the_row_and_logs_the_delete() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    a.conn()
        .execute("DELETE FROM tasks WHERE id = 't2'", [])
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    b.conn()
        .execute("UPDATE tasks SET title = 'kept' WHERE id = 't2'", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    for conn in [
        share.remote(),
        a.conn().clone_handle(),
        b.conn().clone_handle(),
    ] {
        assert_eq!(
            one::<String>(&conn, "SELECT title FROM tasks WHERE id = 't2'"),
            "kept"
        );
    }
    let op: String = one(&share.remote(), "SELECT loser_op FROM sharecache_conflicts");
    assert_eq!(op, "delete");
}

/// A second handle on the same database file, for reading in a loop with other connections.
trait CloneHandle {
    fn clone_handle(&self) -> rusqlite::Connection;
}

impl CloneHandle for rusqlite::Connection {
    fn clone_handle(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path().expect("file database")).unwrap()
    }
}
