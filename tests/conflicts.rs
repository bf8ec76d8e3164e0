//! Conflicts: newest stamp wins on every replica, the loser is kept in the conflict log. Against
//! both backends: the rule is the engine's, once; a backend only stores the versions and the log.

use std::time::Duration;

use crate::support::one;
use crate::support::remote::{Backend, Remote};

crate::both_backends!(
    concurrent_edits_end_with_the_newer_version_everywhere_and_the_older_in_the_conflict_log,
    the_newer_edit_wins_even_when_it_reaches_the_remote_first,
    a_client_whose_clock_is_an_hour_behind_still_wins_with_an_edit_made_after_it_pulled,
    a_delete_that_loses_to_a_newer_update_keeps_the_row_and_logs_the_delete,
);

fn title(c: &rusqlite::Connection) -> String {
    one(c, "SELECT title FROM tasks WHERE id = 't1'")
}

fn remote_title(remote: &Remote, id: &str) -> String {
    remote.one(&format!("SELECT title FROM tasks WHERE id = '{id}'"))
}

fn concurrent_edits_end_with_the_newer_version_everywhere_and_the_older_in_the_conflict_log(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
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

    assert_eq!(remote_title(&remote, "t1"), "newer (b)");
    assert_eq!(title(&a.conn()), "newer (b)");
    assert_eq!(title(&b.conn()), "newer (b)");
    let log = remote.conflicts();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].pk, "'t1'");
    let loser = log[0].loser_row.as_deref().unwrap_or("");
    assert!(
        loser.contains("older (a)"),
        "the losing row is kept whole: {loser}"
    );
    assert_ne!(
        log[0].loser_origin, log[0].winner_origin,
        "loser and winner origins differ"
    );
    assert_eq!(
        a.status().unwrap().conflicts,
        1,
        "the conflict log reaches every client"
    );
    assert_eq!(b.status().unwrap().conflicts, 1);
}

fn the_newer_edit_wins_even_when_it_reaches_the_remote_first(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
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
    assert_eq!(remote_title(&remote, "t1"), "newer (b)");
    assert_eq!(
        title(&a.conn()),
        "newer (b)",
        "the loser takes the winner at once"
    );
    assert_eq!(a.status().unwrap().pending_writes, 0);
    let log = remote.conflicts();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].loser_row.as_deref().unwrap().contains("older (a)"));
}

fn a_client_whose_clock_is_an_hour_behind_still_wins_with_an_edit_made_after_it_pulled(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let behind = remote.client_with_clock("behind", -chrono::Duration::hours(1));
    let b = remote.client("b");
    let c = remote.client("c");
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
    assert_eq!(remote_title(&remote, "t1"), "latest (behind)");
    assert_eq!(title(&b.conn()), "latest (behind)");
    assert_eq!(title(&c.conn()), "latest (behind)");
    let log = remote.conflicts();
    assert_eq!(log.len(), 1, "{log:?}");
    let loser = log[0].loser_row.as_deref().unwrap();
    assert!(loser.contains("earliest (c)"), "{loser}");
    let stamp: String = one(
        &behind.conn(),
        "SELECT updated_at FROM tasks WHERE id = 't1'",
    );
    assert!(
        stamp > log[0].loser_stamp,
        "hybrid clock: the slow clock's stamp {stamp} is after c's {}",
        log[0].loser_stamp
    );
}

fn a_delete_that_loses_to_a_newer_update_keeps_the_row_and_logs_the_delete(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
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
    assert_eq!(remote_title(&remote, "t2"), "kept");
    for cache in [&a, &b] {
        assert_eq!(
            one::<String>(&cache.conn(), "SELECT title FROM tasks WHERE id = 't2'"),
            "kept"
        );
    }
    let log = remote.conflicts();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].loser_op, "delete");
}
