//! When the trail breaks: the remote restored from a backup (routine on file shares), and an
//! admin declaring the restored content authoritative. Every acknowledged write ends current or
//! in the conflict log, and every cache ends equal to the remote.

use std::path::{Path, PathBuf};

use sharecache::Cache;
use sharecache::remote::{RemoteOptions, Share as ShareStore};

use crate::support::{Share, rows};

mod deletes;

/// A copy of the remote as a nightly backup takes it (the file itself, behind the share).
fn backup(share: &Share, name: &str) -> PathBuf {
    let to = share.tmp.path().join(name);
    std::fs::copy(share.backing().join("app.db"), &to).unwrap();
    to
}

/// Puts a backup back in place, over the live file, as "Previous Versions" or `cp` does —
/// through the share, so every client of it sees the restored bytes (behind it, the test share's
/// page cache would keep serving the old ones).
fn restore(share: &Share, from: &Path) {
    std::fs::copy(from, share.remote_path()).unwrap();
}

const TASKS: &str = "SELECT id, title, done FROM tasks ORDER BY id";

/// Every cache holds what the remote holds, and nothing is pending.
fn converged(share: &Share, clients: &[&Cache]) {
    let remote = rows(&share.remote(), TASKS);
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(
            rows(&c.conn(), TASKS),
            remote,
            "client {i} differs from the remote"
        );
        assert_eq!(
            c.status().unwrap().pending_writes,
            0,
            "client {i} has pending writes"
        );
    }
}

fn titles(c: &rusqlite::Connection) -> Vec<String> {
    rows(c, "SELECT id || '=' || title FROM tasks ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

#[test]
fn a_restored_remote_gets_back_every_acknowledged_write_and_keeps_the_writes_made_after_it() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let nightly = backup(&share, "nightly.db");
    a.conn()
        .execute_batch(
            "INSERT INTO tasks (id, title) VALUES ('c1', 'made by a after the backup'); \
             UPDATE tasks SET title = 'edited by a' WHERE id = 't1';",
        )
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    restore(&share, &nightly);
    assert!(
        !titles(&share.remote()).contains(&"c1=made by a after the backup".to_string()),
        "the restore took the acknowledged write away"
    );
    b.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('d1', 'made by b after the restore')",
            [],
        )
        .unwrap();
    let rb = b.sync_now().unwrap();
    let why = rb.reconciled.clone().expect("b noticed the restore").reason;
    assert!(why.contains("went back in time"), "{why}");
    let ra = a.sync_now().unwrap();
    assert!(ra.reconciled.is_some(), "a noticed the restore too");
    b.sync_now().unwrap();
    let remote = titles(&share.remote());
    for want in [
        "c1=made by a after the backup",
        "d1=made by b after the restore",
        "t1=edited by a",
    ] {
        assert!(
            remote.contains(&want.to_string()),
            "{want} missing: {remote:?}"
        );
    }
    converged(&share, &[&a, &b]);
    let status = a.status().unwrap();
    let last = status.last_reconcile.expect("status shows the reconcile");
    assert_eq!(last.kind, "reconcile");
    assert!(last.note.unwrap().contains("rows compared"));
    assert!(
        a.history(20).unwrap().iter().any(|r| r.kind == "reconcile"),
        "history records the reconcile as a run of its own kind"
    );
    // Once reconciled, incremental sync resumes: no second reconcile.
    let again = a.sync_now().unwrap();
    assert!(again.reconciled.is_none());
}

#[test]
fn a_restore_is_caught_after_other_clients_pushed_past_the_old_revision() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let nightly = backup(&share, "nightly.db");
    for i in 0..3 {
        a.conn()
            .execute(
                "INSERT INTO tasks (id, title) VALUES (?1, 'lost by the restore')",
                [format!("a{i}")],
            )
            .unwrap();
        a.sync_now().unwrap();
    }
    restore(&share, &nightly);
    // b last synced before the backup: nothing it knows was lost, so it goes on, and its pushes
    // take the log past a's revisions.
    for i in 0..6 {
        b.conn()
            .execute(
                "INSERT INTO tasks (id, title) VALUES (?1, 'after the restore')",
                [format!("b{i}")],
            )
            .unwrap();
        let r = b.sync_now().unwrap();
        assert!(r.reconciled.is_none(), "b's history is intact");
    }
    let r = a.sync_now().unwrap();
    let rec = r
        .reconciled
        .expect("a finds other entries at its revisions");
    assert_eq!(rec.pushed_again, 3, "{rec:?}");
    b.sync_now().unwrap();
    let remote = titles(&share.remote());
    assert_eq!(
        remote
            .iter()
            .filter(|t| t.ends_with("lost by the restore"))
            .count(),
        3
    );
    assert_eq!(
        remote
            .iter()
            .filter(|t| t.ends_with("after the restore"))
            .count(),
        6
    );
    converged(&share, &[&a, &b]);
}

#[test]
fn a_row_edited_on_both_sides_of_a_restore_is_decided_by_stamp_and_the_loser_is_kept() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let nightly = backup(&share, "nightly.db");
    a.conn()
        .execute(
            "UPDATE tasks SET title = 'a, before the restore' WHERE id = 't2'",
            [],
        )
        .unwrap();
    a.sync_now().unwrap();
    restore(&share, &nightly);
    std::thread::sleep(std::time::Duration::from_millis(20));
    b.conn()
        .execute(
            "UPDATE tasks SET title = 'b, after the restore' WHERE id = 't2'",
            [],
        )
        .unwrap();
    b.sync_now().unwrap();
    let r = a.sync_now().unwrap();
    assert!(r.reconciled.is_some());
    b.sync_now().unwrap();
    assert!(
        titles(&share.remote()).contains(&"t2=b, after the restore".to_string()),
        "the newer edit wins"
    );
    let conflicts = a.conflicts(10).unwrap();
    assert!(
        conflicts.iter().any(|c| c.key.contains("t2")
            && format!("{:?}", c.loser_row).contains("a, before the restore")),
        "a's acknowledged version is in the conflict log: {conflicts:?}"
    );
    converged(&share, &[&a, &b]);
}

#[test]
fn declaring_a_restore_authoritative_rolls_back_and_keeps_the_newer_versions_restorable() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let good = backup(&share, "before-the-mistake.db");
    a.conn()
        .execute_batch(
            "UPDATE tasks SET title = 'the mistake' WHERE id = 't1'; \
             INSERT INTO tasks (id, title) VALUES ('x', 'also a mistake');",
        )
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    a.conn()
        .execute(
            "UPDATE tasks SET title = 'pending when rolled back' WHERE id = 't2'",
            [],
        )
        .unwrap();
    // The admin marks the backup authoritative, then copies it in.
    let mut remote = ShareStore::open(
        &good,
        RemoteOptions::from_config(&share.config("admin"), "admin"),
    )
    .unwrap();
    remote
        .declare_authoritative("2026-12-04T00:00:00.000Z")
        .unwrap();
    drop(remote);
    restore(&share, &good);
    for c in [&a, &b] {
        let r = c.sync_now().unwrap();
        let why = r.reconciled.expect("the declaration is followed").reason;
        assert!(why.contains("authoritative"), "{why}");
    }
    let remote = titles(&share.remote());
    assert_eq!(remote, vec!["t1=first", "t2=second"], "rolled back");
    converged(&share, &[&a, &b]);
    let conflicts = a.conflicts(20).unwrap();
    let kept = |what: &str| {
        conflicts
            .iter()
            .find(|c| format!("{:?}", c.loser_row).contains(what))
            .unwrap_or_else(|| panic!("{what} not in the conflict log: {conflicts:?}"))
            .id
    };
    kept("the mistake");
    kept("also a mistake");
    let pending = kept("pending when rolled back");
    // A rolled-back version can be brought back on purpose.
    a.restore_conflict(pending).unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert!(titles(&share.remote()).contains(&"t2=pending when rolled back".to_string()));
    converged(&share, &[&a, &b]);
}

#[test]
fn two_restores_in_a_row_lose_nothing() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let first = backup(&share, "first.db");
    a.conn()
        .execute("INSERT INTO tasks (id, title) VALUES ('r1', 'one')", [])
        .unwrap();
    a.sync_now().unwrap();
    let second = backup(&share, "second.db");
    b.sync_now().unwrap();
    b.conn()
        .execute("INSERT INTO tasks (id, title) VALUES ('r2', 'two')", [])
        .unwrap();
    b.sync_now().unwrap();
    restore(&share, &second);
    a.sync_now().unwrap();
    restore(&share, &first);
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    let remote = titles(&share.remote());
    assert!(remote.contains(&"r1=one".to_string()), "{remote:?}");
    assert!(remote.contains(&"r2=two".to_string()), "{remote:?}");
    converged(&share, &[&a, &b]);
}

#[test]
fn a_client_offline_across_the_restore_keeps_its_pending_and_acknowledged_writes() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let nightly = backup(&share, "nightly.db");
    a.conn()
        .execute(
            "UPDATE tasks SET title = 'a, acknowledged' WHERE id = 't1'",
            [],
        )
        .unwrap();
    a.sync_now().unwrap();
    // a goes offline and keeps working; meanwhile the remote is restored and b writes.
    share.control.set_offline(true);
    a.conn()
        .execute_batch(
            "UPDATE tasks SET title = 'a, offline' WHERE id = 't2'; \
             INSERT INTO tasks (id, title) VALUES ('o1', 'a, offline insert');",
        )
        .unwrap();
    assert!(a.sync_now().is_err(), "offline");
    share.control.set_offline(false);
    restore(&share, &nightly);
    b.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('b1', 'b, after the restore')",
            [],
        )
        .unwrap();
    b.sync_now().unwrap();
    let r = a.sync_now().unwrap();
    assert!(r.reconciled.is_some(), "back online, a notices the restore");
    b.sync_now().unwrap();
    let remote = titles(&share.remote());
    for want in [
        "t1=a, acknowledged",
        "t2=a, offline",
        "o1=a, offline insert",
        "b1=b, after the restore",
    ] {
        assert!(
            remote.contains(&want.to_string()),
            "{want} missing: {remote:?}"
        );
    }
    converged(&share, &[&a, &b]);
}

#[test]
fn a_backup_taken_just_before_this_clients_own_push_is_caught_when_restored() {
    // The restored file is byte for byte the one this client fingerprinted before its push: the
    // header and the meta page match what it saw, only its own mark is beyond them.
    let share = Share::new();
    let a = share.client("a");
    a.sync_now().unwrap();
    a.sync_now().unwrap();
    let just_before = backup(&share, "just-before.db");
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('p1', 'pushed, then restored away')",
            [],
        )
        .unwrap();
    a.sync_now().unwrap();
    restore(&share, &just_before);
    let r = a.sync_now().unwrap();
    let rec = r.reconciled.expect("the restore is noticed");
    assert_eq!(rec.pushed_again, 1, "{rec:?}");
    assert!(titles(&share.remote()).contains(&"p1=pushed, then restored away".to_string()));
    converged(&share, &[&a]);
}

/// The restore takes the remote's conflict log back too. Found by the convergence property
/// test's restore step: a loser logged after the backup was gone from the remote's conflict log,
/// and the next conflicts took the ids it had had, so caches that had copied it (by id) never
/// copied them. Here nothing but the conflict happened after the backup (a push that loses
/// writes no change-log entry), so no client's trail breaks.
#[test]
fn conflicts_logged_after_the_backup_survive_the_restore_and_later_ones_reach_every_cache() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    a.conn()
        .execute("UPDATE tasks SET title = 'a, older' WHERE id = 't1'", [])
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.conn()
        .execute("UPDATE tasks SET title = 'b, newer' WHERE id = 't1'", [])
        .unwrap();
    b.sync_now().unwrap();
    let nightly = backup(&share, "nightly.db");
    assert_eq!(a.sync_now().unwrap().conflicts, 1, "a's older edit loses");
    b.sync_now().unwrap();
    restore(&share, &nightly);
    // A conflict after the restore.
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    b.conn()
        .execute("UPDATE tasks SET title = 'b, older' WHERE id = 't2'", [])
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    a.conn()
        .execute("UPDATE tasks SET title = 'a, newer' WHERE id = 't2'", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    let losers = |c: &rusqlite::Connection, table: &str| -> Vec<String> {
        rows(
            c,
            &format!("SELECT coalesce(loser_row, '') FROM {table} ORDER BY id"),
        )
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
    };
    for (name, log) in [
        (
            "the remote",
            losers(&share.remote(), "sharecache_conflicts"),
        ),
        ("a", losers(&a.conn(), "sync_conflicts")),
        ("b", losers(&b.conn(), "sync_conflicts")),
    ] {
        for lost in ["a, older", "b, older"] {
            assert!(
                log.iter().filter(|r| r.contains(lost)).count() == 1,
                "{name}'s conflict log must hold the loser {lost:?} once: {log:?}"
            );
        }
    }
    converged(&share, &[&a, &b]);
}

/// After a reconcile the cache's cursor says it has seen every version up to the remote's
/// revision, though it pulled none of them; its hybrid clock must move past their stamps as a
/// pull's would. Found by the convergence property test's restore step: a client whose row
/// already equalled the re-pushed version stamped its next edit of it below that version. (A
/// version the cache holds by name is pushed again under its own stamp, which every holder has
/// seen; a row of unknown version — here `ahead`'s, copied by its snapshot — gets a fresh one.)
#[test]
fn an_edit_after_a_reconcile_is_stamped_after_every_version_the_remote_held() {
    let share = Share::new();
    let writer = share.client("writer");
    let nightly = backup(&share, "nightly.db");
    writer
        .conn()
        .execute("INSERT INTO tasks (id, title) VALUES ('n1', 'new')", [])
        .unwrap();
    writer.sync_now().unwrap();
    let ahead = share.client_with_clock("ahead", chrono::Duration::hours(1));
    let behind = share.client_with_clock("behind", -chrono::Duration::hours(1));
    behind.sync_now().unwrap();
    restore(&share, &nightly);
    // `ahead` queues its row again with a fresh stamp; `behind` already holds the same row.
    assert_eq!(
        ahead.sync_now().unwrap().reconciled.unwrap().pushed_again,
        1
    );
    assert!(behind.sync_now().unwrap().reconciled.is_some());
    let repushed: String = crate::support::one(
        &share.remote(),
        "SELECT stamp FROM sharecache_log WHERE pk = '''n1''' ORDER BY rev DESC LIMIT 1",
    );
    behind
        .conn()
        .execute("UPDATE tasks SET title = 'edited' WHERE id = 'n1'", [])
        .unwrap();
    sharecache::store::journal::fold(&behind.conn()).unwrap();
    let edit = sharecache::clock::stamp_of_ms(crate::support::one(
        &behind.conn(),
        "SELECT stamp FROM sync_tracking WHERE pk = '''n1'''",
    ));
    assert!(
        edit > repushed,
        "the edit ({edit}) must be stamped after the version it replaces ({repushed})"
    );
}
