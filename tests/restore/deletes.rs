//! Deletes across a restore: an acknowledged delete the restore took away is pushed again under
//! its own stamp by the client that holds its tombstone, and a row the restore took away is pushed
//! again under its own stamp by every client that holds it; the newest-stamp rule decides between
//! them whichever client reconciles first, and the loser is kept in the conflict log.

use super::{Share, backup, converged, restore, titles};
use crate::support::one;

/// The newest change-log entry of key `pk` (key text) on the remote: stamp, origin, deleted.
fn logged(share: &Share, pk: &str) -> (String, String, i64) {
    share
        .remote()
        .query_row(
            "SELECT stamp, origin, deleted FROM sharecache_log WHERE pk = ?1 ORDER BY rev DESC LIMIT 1",
            [pk],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

/// Found by the convergence test's restore step: an acknowledged delete of a row the restored copy
/// never had leaves no row a reconcile can see — the client that deleted it finds the cache and
/// the remote agreeing (both without the row) — while a client that pulled the row but not the
/// delete finds it missing on the remote and pushes it again. The deleting client pushes its
/// tombstone again under the delete's own stamp; the other pushes the row under the insert's.
#[test]
fn an_acknowledged_delete_is_not_undone_by_a_client_that_still_held_the_row_at_the_restore() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let nightly = backup(&share, "nightly.db");
    a.conn()
        .execute("INSERT INTO tasks (id, title) VALUES ('n1', 'made')", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    a.conn()
        .execute("DELETE FROM tasks WHERE id = 'n1'", [])
        .unwrap();
    a.sync_now().unwrap();
    restore(&share, &nightly);
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    let remote = titles(&share.remote());
    let kept: i64 = one(
        &share.remote(),
        "SELECT count(*) FROM sharecache_conflicts WHERE pk = '''n1''' AND loser_op = 'delete'",
    );
    assert!(
        !remote.contains(&"n1=made".to_string()) || kept == 1,
        "a's acknowledged delete is neither current nor in the conflict log: {remote:?}"
    );
    converged(&share, &[&a, &b]);
}

/// The reverse order: the client that still held the row reconciles first and pushes it again
/// under the insert's own stamp; the deleting client then finds the row on the remote, older than
/// its tombstone, and pushes the delete again under its own stamp. The delete wins everywhere
/// and the row's version is kept in the conflict log.
#[test]
fn an_acknowledged_delete_wins_when_the_client_that_held_the_row_reconciles_first() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let nightly = backup(&share, "nightly.db");
    a.conn()
        .execute("INSERT INTO tasks (id, title) VALUES ('n1', 'made')", [])
        .unwrap();
    a.sync_now().unwrap();
    let insert = logged(&share, "'n1'");
    b.sync_now().unwrap();
    a.conn()
        .execute("DELETE FROM tasks WHERE id = 'n1'", [])
        .unwrap();
    a.sync_now().unwrap();
    let delete = logged(&share, "'n1'");
    assert_eq!(delete.2, 1);
    restore(&share, &nightly);
    let rb = b
        .sync_now()
        .unwrap()
        .reconciled
        .expect("b noticed the restore");
    assert_eq!(rb.pushed_again, 1);
    assert_eq!(
        logged(&share, "'n1'"),
        insert,
        "b pushed the row again as the version it holds, not as a new edit"
    );
    let ra = a
        .sync_now()
        .unwrap()
        .reconciled
        .expect("a noticed the restore");
    assert_eq!(ra.pushed_again, 1, "a pushed its delete again");
    b.sync_now().unwrap();
    assert!(
        !titles(&share.remote()).contains(&"n1=made".to_string()),
        "the delete is newer than the insert: it wins"
    );
    assert_eq!(
        logged(&share, "'n1'"),
        delete,
        "under its own stamp and origin"
    );
    let kept: i64 = one(
        &share.remote(),
        &format!(
            "SELECT count(*) FROM sharecache_conflicts WHERE pk = '''n1''' AND loser_op = 'upsert' \
             AND loser_stamp = '{}' AND loser_origin = '{}'",
            insert.0, insert.1
        ),
    );
    assert_eq!(kept, 1, "the row b carried back is in the conflict log");
    converged(&share, &[&a, &b]);
}

/// A delete this cache pulled is a tombstone like its own: a client that pulled the delete pushes
/// it again after a restore, even when the client that made it never syncs again.
#[test]
fn a_delete_pulled_before_the_restore_is_pushed_again_by_the_client_that_pulled_it() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let c = share.client("c");
    let nightly = backup(&share, "nightly.db");
    a.conn()
        .execute("INSERT INTO tasks (id, title) VALUES ('n1', 'made')", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    c.sync_now().unwrap();
    a.conn()
        .execute("DELETE FROM tasks WHERE id = 'n1'", [])
        .unwrap();
    a.sync_now().unwrap();
    let delete = logged(&share, "'n1'");
    b.sync_now().unwrap();
    drop(a);
    restore(&share, &nightly);
    assert!(c.sync_now().unwrap().reconciled.is_some());
    assert!(
        titles(&share.remote()).contains(&"n1=made".to_string()),
        "c, which never saw the delete, pushed the row again"
    );
    assert!(b.sync_now().unwrap().reconciled.is_some());
    c.sync_now().unwrap();
    assert!(!titles(&share.remote()).contains(&"n1=made".to_string()));
    assert_eq!(logged(&share, "'n1'"), delete, "a's delete, under a's name");
    converged(&share, &[&b, &c]);
}

/// Today's guarantee kept: a row the restore took away, with no delete after it, comes back — now
/// as the version it was (its own stamp and origin), pushed by a client that only pulled it.
#[test]
fn a_row_the_restore_took_away_comes_back_under_its_own_stamp_from_a_client_that_pulled_it() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    let nightly = backup(&share, "nightly.db");
    a.conn()
        .execute("INSERT INTO tasks (id, title) VALUES ('n1', 'made')", [])
        .unwrap();
    a.sync_now().unwrap();
    let insert = logged(&share, "'n1'");
    b.sync_now().unwrap();
    restore(&share, &nightly);
    let rb = b
        .sync_now()
        .unwrap()
        .reconciled
        .expect("b noticed the restore");
    assert_eq!(rb.pushed_again, 1);
    assert!(titles(&share.remote()).contains(&"n1=made".to_string()));
    assert_eq!(logged(&share, "'n1'"), insert);
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    let conflicts: i64 = one(
        &share.remote(),
        "SELECT count(*) FROM sharecache_conflicts WHERE pk = '''n1'''",
    );
    assert_eq!(conflicts, 0, "the same version carried back is no conflict");
    converged(&share, &[&a, &b]);
}
