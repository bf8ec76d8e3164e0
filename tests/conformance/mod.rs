//! The remote-store conformance suite: the behaviours every backend behind
//! `sharecache::remote::RemoteStore` must show, written once against the interface. A backend
//! gets them by implementing [`Harness`] and calling [`conformance_tests!`] (see `share.rs`).
//!
//! The guarantees checked are the ones the interface's documentation states
//! (`src/remote/store.rs`): revisions that only grow and become visible in order, atomic
//! writes, the newest version of a row seen by a concurrent writer, pruning bounded by the
//! lowest horizon, a fingerprint that changes with every write and only then, direct writes by
//! other programs captured, a stable identity, and a snapshot of the app's data alone.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::Value;
use sharecache::remote::store::{Keys, NewClient};
use sharecache::remote::{
    ClientEntry, DIRECT_ORIGIN, LoggedConflict, Mark, RemoteError, RemoteStore, Trail, Version,
};
use sharecache::sql::rows::Shape;

#[cfg(feature = "postgres")]
mod postgres;
mod share;

/// What a backend's test provides: remotes holding one app table,
/// `items (id INTEGER PRIMARY KEY, v TEXT)`, set up for sharecache (enrolled).
pub trait Harness {
    /// A client's handle on the remote (a new connection each call), with this origin.
    fn client(&self, origin: &str) -> Box<dyn RemoteStore>;
    /// Another program writes `items` directly (not through sharecache): `v = None` deletes.
    fn direct_write(&self, id: i64, v: Option<&str>);
    /// A directory for local files (snapshots).
    fn scratch(&self) -> &Path;
}

/// Generates one `#[test]` per behaviour for a harness built by `$make`.
#[macro_export]
macro_rules! conformance_tests {
    // `$make` gives an `Option` of a harness: `None` (a backend's server not configured outside
    // CI; see tests/support/pg.rs) skips each test.
    (optional $make:expr) => {
        $crate::conformance_tests!(@all { let Some(h) = $make else { return }; h });
    };
    // The behaviours, listed once.
    (@all $make:expr) => {
        $crate::conformance_tests!(@each $make;
            revisions_grow_and_every_entry_is_fetched_once,
            a_failed_write_leaves_no_trace,
            a_writer_sees_the_newest_version_another_client_committed,
            pruning_stops_at_the_lowest_horizon_and_says_so,
            the_fingerprint_changes_with_every_write_and_only_then,
            a_direct_writers_change_is_logged_with_its_row,
            the_identity_is_stable_and_another_is_refused,
            a_snapshot_holds_the_apps_rows_and_nothing_of_the_backend,
            conflict_records_come_back_in_order,
            rows_page_in_key_order,
            a_skipped_stretch_stays_empty_and_later_revisions_land_above_it,
            every_entry_names_the_write_that_logged_it_and_the_trail_checks_it,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let h = $make;
                $crate::conformance::$name(&h);
            }
        )*
    };
    ($make:expr) => {
        $crate::conformance_tests!(@all $make);
    };
}

const NOW: &str = "2026-12-04T10:00:00.000Z";

fn items() -> Shape {
    Shape {
        table: "items".into(),
        columns: vec!["id".into(), "v".into()],
        pk: vec!["id".into()],
    }
}

fn shapes() -> HashMap<String, Shape> {
    HashMap::from([("items".to_string(), items())])
}

fn row(id: i64, v: &str) -> Vec<Value> {
    vec![Value::Integer(id), Value::Text(v.into())]
}

/// A stamp `n` milliseconds after [`NOW`]'s second.
fn stamp(n: u32) -> String {
    format!("2026-12-04T10:00:{:02}.{:03}Z", n / 1000, n % 1000)
}

/// Writes `rows` (`(id, value)`, `None` deletes) as one push would: rows, log entries, the
/// counter. Returns the revisions taken.
fn push(r: &mut dyn RemoteStore, origin: &str, at: u32, rows: &[(i64, Option<&str>)]) -> Vec<i64> {
    let shape = items();
    let mut revs = Vec::new();
    r.write(&mut |w| {
        for (i, (id, v)) in rows.iter().enumerate() {
            let values = v.map(|v| row(*id, v));
            let key = [Value::Integer(*id)];
            w.write_row(&shape, &key, values.as_deref())?
                .expect("no constraint refuses it");
            w.append(
                &Version {
                    tbl: "items".into(),
                    pk: id.to_string(),
                    rev: 0,
                    stamp: stamp(at + i as u32),
                    origin: origin.into(),
                    deleted: v.is_none(),
                    write_id: None,
                },
                values.as_deref().map(|r| (shape.columns.as_slice(), r)),
            )?;
        }
        let (before, last) = w.finish(&stamp(at + rows.len() as u32))?;
        assert_eq!(
            last - before,
            rows.len() as i64,
            "one revision per entry, consecutive"
        );
        revs = (before + 1..=last).collect();
        Ok(())
    })
    .expect("the write commits");
    revs
}

fn fetch_all(r: &dyn RemoteStore, after: i64) -> Vec<(Version, Option<Vec<Value>>)> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let f = r.changes_since(cursor, 2, &shapes()).expect("fetch");
        assert!(
            !f.behind_pruned,
            "cursor {cursor} is not behind the pruned part"
        );
        let last = f.entries.last().map(|(v, _)| v.rev);
        out.extend(f.entries);
        match (f.tail, last) {
            (Some(tail), _) => {
                assert!(tail >= cursor, "the tail never goes back");
                return out;
            }
            (None, Some(rev)) => cursor = rev,
            (None, None) => panic!("a full batch with no entries"),
        }
    }
}

pub fn revisions_grow_and_every_entry_is_fetched_once(h: &dyn Harness) {
    let mut a = h.client("a");
    let mut b = h.client("b");
    let first = push(a.as_mut(), "a", 0, &[(1, Some("one")), (2, Some("two"))]);
    let second = push(b.as_mut(), "b", 10, &[(3, Some("three"))]);
    let third = push(a.as_mut(), "a", 20, &[(4, Some("four")), (5, None)]);
    let all: Vec<i64> = [first, second, third].concat();
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "revisions grow: {all:?}"
    );
    assert!(all[0] > 0, "revisions are positive");
    let fetched = fetch_all(b.as_ref(), 0);
    let revs: Vec<i64> = fetched.iter().map(|(v, _)| v.rev).collect();
    assert_eq!(revs, all, "every entry once, in revision order");
    assert_eq!(
        fetched[0].1,
        Some(row(1, "one")),
        "a write comes with its row"
    );
    assert_eq!(fetched[4].1, None, "a delete comes without one");
    assert!(fetched[4].0.deleted);
    assert_eq!(a.head().unwrap().rev, *all.last().unwrap());
    assert!(fetch_all(a.as_ref(), *all.last().unwrap()).is_empty());
}

pub fn a_failed_write_leaves_no_trace(h: &dyn Harness) {
    let mut a = h.client("a");
    push(a.as_mut(), "a", 0, &[(1, Some("one"))]);
    let before = a.head().unwrap();
    let fp = a.fingerprint(false, &Mark::default()).unwrap();
    let shape = items();
    let err = a
        .write(&mut |w| {
            w.write_row(&shape, &[Value::Integer(2)], Some(&row(2, "two")))?
                .expect("written");
            w.append(
                &Version {
                    tbl: "items".into(),
                    pk: "2".into(),
                    rev: 0,
                    stamp: stamp(50),
                    origin: "a".into(),
                    deleted: false,
                    write_id: None,
                },
                None,
            )?;
            w.finish(&stamp(50))?;
            w.log_conflict(&conflict("1", 1))?;
            Err(RemoteError::Corrupt {
                path: "conformance".into(),
                detail: "the test gives up".into(),
            })
        })
        .unwrap_err();
    assert!(matches!(err, RemoteError::Corrupt { .. }), "{err}");
    assert_eq!(a.head().unwrap(), before, "the revision did not move");
    let b = h.client("b");
    assert_eq!(
        b.rows_after(&items(), None, 10).unwrap(),
        vec![row(1, "one")]
    );
    assert!(b.conflicts_after(0).unwrap().is_empty());
    assert_eq!(fetch_all(b.as_ref(), before.rev), vec![]);
    assert_eq!(b.fingerprint(true, &Mark::default()).unwrap(), fp);
}

pub fn a_writer_sees_the_newest_version_another_client_committed(h: &dyn Harness) {
    let mut a = h.client("a");
    let mut b = h.client("b");
    push(a.as_mut(), "a", 0, &[(1, Some("old"))]);
    let revs = push(a.as_mut(), "a", 10, &[(1, Some("new"))]);
    let keys: Keys = HashMap::from([(
        ("items".to_string(), "1".to_string()),
        (stamp(10), "a".to_string()),
    )]);
    let mut seen = None;
    b.write(&mut |w| {
        let mut found = HashMap::new();
        w.newest_versions(0, None, &keys, &mut found)?;
        seen = found.remove(&("items".to_string(), "1".to_string()));
        Ok(())
    })
    .unwrap();
    let f = seen.expect("the committed versions are seen inside a write");
    assert_eq!((f.newest.rev, f.newest.origin.as_str()), (revs[0], "a"));
    assert_eq!(f.newest.stamp, stamp(10));
    assert!(
        f.mine_logged,
        "the version asked about is among the entries"
    );
    let later = b.newest_versions(revs[0], &keys).unwrap();
    assert!(
        later.is_empty(),
        "nothing after the newest entry: {later:?}"
    );
}

pub fn pruning_stops_at_the_lowest_horizon_and_says_so(h: &dyn Harness) {
    let mut a = h.client("a");
    let revs = push(
        a.as_mut(),
        "a",
        0,
        &[
            (1, Some("1")),
            (2, Some("2")),
            (3, Some("3")),
            (4, Some("4")),
        ],
    );
    let client = |origin: &str, pulled_rev| ClientEntry {
        origin: origin.into(),
        pulled_rev,
        last_seen: NOW.into(),
        host: "test".into(),
    };
    a.register_and_prune(&client("lagging", revs[1]), None, None)
        .unwrap();
    let more = a
        .register_and_prune(
            &client("a", revs[3]),
            None,
            Some(("2026-01-01T00:00:00.000Z", 100)),
        )
        .unwrap();
    assert!(!more, "everything below the floor was pruned in one go");
    let f = a.changes_since(revs[0], 10, &shapes()).unwrap();
    assert!(
        f.behind_pruned,
        "a cursor below the pruned part must rebuild"
    );
    let kept = fetch_all(a.as_ref(), revs[1]);
    let kept: Vec<i64> = kept.iter().map(|(v, _)| v.rev).collect();
    assert_eq!(
        kept,
        revs[2..].to_vec(),
        "the lagging client still gets what it needs"
    );
    assert_eq!(a.head().unwrap().pruned_rev, revs[1]);
    // Once it is gone from the registry, the horizon moves up.
    a.register_and_prune(
        &client("a", revs[3]),
        Some("lagging"),
        Some(("2026-01-01T00:00:00.000Z", 100)),
    )
    .unwrap();
    assert_eq!(a.head().unwrap().pruned_rev, revs[3]);
}

pub fn the_fingerprint_changes_with_every_write_and_only_then(h: &dyn Harness) {
    let mut a = h.client("a");
    let b = h.client("b");
    let mark = Mark::default();
    let fp0 = b.fingerprint(false, &mark).unwrap();
    assert_eq!(b.fingerprint(false, &mark).unwrap(), fp0, "idle is idle");
    push(a.as_mut(), "a", 0, &[(1, Some("one"))]);
    let fp1 = b.fingerprint(false, &mark).unwrap();
    assert_ne!(fp1, fp0, "a push changes it");
    assert!(fp1.rev > fp0.rev);
    a.write(&mut |w| w.log_conflict(&conflict("1", 1))).unwrap();
    let fp2 = b.fingerprint(false, &mark).unwrap();
    assert_ne!(fp2, fp1, "a conflict record alone changes it");
    h.direct_write(9, Some("direct"));
    let fp3 = b.fingerprint(false, &mark).unwrap();
    assert_ne!(fp3, fp2, "a direct write changes it");
    assert_eq!(
        b.fingerprint(false, &mark).unwrap(),
        fp3,
        "and then it is idle again"
    );
}

pub fn a_direct_writers_change_is_logged_with_its_row(h: &dyn Harness) {
    let mut a = h.client("a");
    push(a.as_mut(), "a", 500, &[(1, Some("one"))]);
    h.direct_write(7, Some("seven"));
    h.direct_write(1, None);
    let fetched = fetch_all(a.as_ref(), 0);
    let direct: Vec<&(Version, Option<Vec<Value>>)> = fetched
        .iter()
        .filter(|(v, _)| v.origin == DIRECT_ORIGIN)
        .collect();
    assert_eq!(direct.len(), 2, "{fetched:?}");
    assert_eq!(direct[0].0.pk, "7");
    assert_eq!(direct[0].1, Some(row(7, "seven")));
    assert!(direct[1].0.deleted && direct[1].0.pk == "1");
    for (v, _) in &direct {
        assert!(
            v.stamp >= stamp(500),
            "stamped no earlier than the log has seen: {}",
            v.stamp
        );
    }
}

pub fn the_identity_is_stable_and_another_is_refused(h: &dyn Harness) {
    let mut a = h.client("a");
    let id = a
        .identity()
        .unwrap()
        .expect("an enrolled remote has an identity");
    assert_eq!(a.enroll(NOW).unwrap(), id, "enrolling again keeps it");
    assert_eq!(h.client("b").identity().unwrap(), Some(id.clone()));
    a.check_identity(&id).unwrap();
    let err = a.check_identity("someone-else").unwrap_err();
    assert!(matches!(err, RemoteError::WrongDatabase { .. }), "{err}");
    assert_eq!(err.kind(), sharecache::ErrorKind::Remote);
}

pub fn a_snapshot_holds_the_apps_rows_and_nothing_of_the_backend(h: &dyn Harness) {
    let mut a = h.client("a");
    push(a.as_mut(), "a", 0, &[(1, Some("one")), (2, Some("two"))]);
    let dest = h.scratch().join("snapshot.db");
    let newcomer = NewClient {
        origin: "newcomer".into(),
        now: NOW.into(),
        host: "test".into(),
    };
    let info = a
        .snapshot_into(&dest, &mut |_, _| {}, Some(&newcomer))
        .unwrap_or_else(|e| panic!("snapshot: {e:?}"));
    assert_eq!(info.rev, a.head().unwrap().rev);
    assert_eq!(info.remote_id, a.identity().unwrap());
    assert_eq!(info.newest.as_ref().map(|n| n.rev), Some(info.rev));
    let c = rusqlite::Connection::open(&dest).unwrap();
    let rows: Vec<(i64, String)> = c
        .prepare("SELECT id, v FROM items ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, [(1, "one".to_string()), (2, "two".to_string())]);
    let own: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE name LIKE 'sharecache%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(own.is_empty(), "nothing of the backend's own: {own:?}");
    // The newcomer holds back pruning from the snapshot's revision on.
    a.register_and_prune(
        &ClientEntry {
            origin: "a".into(),
            pulled_rev: info.rev,
            last_seen: NOW.into(),
            host: "test".into(),
        },
        None,
        Some(("2026-01-01T00:00:00.000Z", 100)),
    )
    .unwrap();
    assert!(a.head().unwrap().pruned_rev <= info.rev);
}

fn conflict(pk: &str, n: u32) -> LoggedConflict {
    LoggedConflict {
        id: 0,
        tbl: "items".into(),
        pk: pk.into(),
        winner_stamp: stamp(n + 1),
        winner_origin: "b".into(),
        loser_stamp: stamp(n),
        loser_origin: "a".into(),
        loser_op: "upsert".into(),
        loser_row: Some(format!("{{\"id\":{pk}}}")),
        decided_at: NOW.into(),
        decided_by: "a".into(),
        reason: "newer".into(),
    }
}

pub fn conflict_records_come_back_in_order(h: &dyn Harness) {
    let mut a = h.client("a");
    a.write(&mut |w| {
        w.log_conflict(&conflict("1", 1))?;
        w.log_conflict(&conflict("2", 2))
    })
    .unwrap();
    let all = h.client("b").conflicts_after(0).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].id < all[1].id);
    let strip = |c: &LoggedConflict| LoggedConflict { id: 0, ..c.clone() };
    assert_eq!(strip(&all[0]), conflict("1", 1), "kept whole");
    assert_eq!(strip(&all[1]), conflict("2", 2));
    let after = a.conflicts_after(all[0].id).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].pk, "2");
}

pub fn rows_page_in_key_order(h: &dyn Harness) {
    let mut a = h.client("a");
    let ids = [5, -3, 12, 0, 7];
    let rows: Vec<(i64, Option<&str>)> = ids.iter().map(|&i| (i, Some("x"))).collect();
    push(a.as_mut(), "a", 0, &rows);
    let mut seen = Vec::new();
    let mut after: Option<Vec<Value>> = None;
    loop {
        let page = a.rows_after(&items(), after.as_deref(), 2).unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(vec![page.last().unwrap()[0].clone()]);
        seen.extend(page.into_iter().map(|r| r[0].clone()));
    }
    let mut sorted = ids.to_vec();
    sorted.sort();
    assert_eq!(
        seen,
        sorted.into_iter().map(Value::Integer).collect::<Vec<_>>()
    );
}

pub fn a_skipped_stretch_stays_empty_and_later_revisions_land_above_it(h: &dyn Harness) {
    let mut a = h.client("a");
    let first = push(a.as_mut(), "a", 0, &[(1, Some("one"))]);
    a.write(&mut |w| w.skip_to(first[0] + 10)).unwrap();
    assert_eq!(
        a.head().unwrap().rev,
        first[0] + 10,
        "the head moved past the stretch"
    );
    a.write(&mut |w| w.skip_to(first[0] + 5)).unwrap();
    assert_eq!(a.head().unwrap().rev, first[0] + 10, "never back");
    let second = push(a.as_mut(), "a", 10, &[(2, Some("two"))]);
    assert!(
        second[0] > first[0] + 10,
        "{second:?} lands above the stretch"
    );
    let fetched: Vec<i64> = fetch_all(h.client("b").as_ref(), first[0])
        .iter()
        .map(|(v, _)| v.rev)
        .collect();
    assert_eq!(fetched, second, "the stretch holds nothing");
}

/// A version logged again (a reconcile after a second restore of one backup) may land at the
/// revision, stamp and origin it had: only the write that logged it tells the entries apart.
pub fn every_entry_names_the_write_that_logged_it_and_the_trail_checks_it(h: &dyn Harness) {
    let mut a = h.client("a");
    let shape = items();
    let mut drawn = Vec::new();
    for (n, at) in [(1, 0), (2, 10)] {
        a.write(&mut |w| {
            w.write_row(&shape, &[Value::Integer(n)], Some(&row(n, "v")))?
                .expect("written");
            w.append(
                &Version {
                    tbl: "items".into(),
                    pk: n.to_string(),
                    rev: 0,
                    stamp: stamp(at),
                    origin: "a".into(),
                    deleted: false,
                    write_id: Some(12345), // ignored: the writer's own
                },
                Some((shape.columns.as_slice(), &row(n, "v"))),
            )?;
            drawn.push(w.write_id());
            w.finish(&stamp(at)).map(|_| ())
        })
        .unwrap();
    }
    assert_ne!(drawn[0], drawn[1], "each write draws its own id");
    h.direct_write(3, Some("direct"));
    let fetched = fetch_all(a.as_ref(), 0);
    let ids: Vec<Option<i64>> = fetched.iter().map(|(v, _)| v.write_id).collect();
    assert_eq!(
        ids,
        vec![Some(drawn[0]), Some(drawn[1]), None],
        "pushed entries carry their write's id, a direct write's none"
    );
    let head = a.head().unwrap();
    let newest = head.newest.clone().expect("the log has entries");
    assert_eq!(newest.rev, head.rev);
    assert_eq!(
        newest.write_id, None,
        "the newest entry is the direct write"
    );
    let second = &fetched[1].0;
    let marked = Mark {
        rev: second.rev,
        stamp: second.stamp.clone(),
        origin: second.origin.clone(),
        write_id: second.write_id,
        generation: Some(head.generation.clone()),
    };
    let b = h.client("b");
    assert!(
        b.fingerprint(false, &marked).unwrap().trail.is_intact(),
        "the marked entry is there"
    );
    let other = Mark {
        write_id: Some(drawn[1] ^ 1),
        ..marked.clone()
    };
    // A fresh client: an idle remote may answer from the last full fingerprint.
    assert_eq!(
        h.client("c").fingerprint(false, &other).unwrap().trail,
        Trail::WentBack,
        "the same version at the same revision, logged by another write, is another entry"
    );
}
