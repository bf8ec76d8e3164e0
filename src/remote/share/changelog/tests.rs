use super::*;
use crate::schema;

fn remote(table_sql: &str) -> Connection {
    let c = Connection::open_in_memory().unwrap();
    crate::migrate::REMOTE.apply(&c, "t").unwrap();
    c.execute(
        "INSERT INTO sharecache_meta (id, remote_id, created_at) VALUES (1, 'r', 't')",
        [],
    )
    .unwrap();
    c.execute_batch(table_sql).unwrap();
    for e in schema::read(&c).unwrap() {
        install_triggers(&c, &e.table).unwrap();
    }
    c
}

#[test]
fn direct_writes_are_appended_with_increasing_revs_and_tombstones() {
    let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    c.execute_batch("INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'c' WHERE id = 1; DELETE FROM t WHERE id = 2;")
        .unwrap();
    let log = since(&c, 0, 100).unwrap();
    let summary: Vec<(String, i64, bool, String)> = log
        .iter()
        .map(|l| {
            let v = &l.version;
            (v.pk.clone(), v.rev, v.deleted, v.origin.clone())
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("1".into(), 1, false, "direct".into()),
            ("2".into(), 2, false, "direct".into()),
            ("1".into(), 3, false, "direct".into()),
            ("2".into(), 4, true, "direct".into())
        ]
    );
    assert!(
        log.iter().all(|l| l.image.is_none()),
        "triggers write no image"
    );
    let stamps: Vec<&str> = log.iter().map(|l| l.version.stamp.as_str()).collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "no direct write is stamped before the previous one: {stamps:?}"
    );
    assert_eq!(
        since(&c, 3, 100).unwrap().len(),
        1,
        "cost follows changes: only rev > 3"
    );
    assert_eq!(latest(&c, "t", "2").unwrap().unwrap().rev, 4);
}

#[test]
fn a_direct_write_is_never_stamped_before_a_version_already_logged() {
    let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    let pushed = Version {
        tbl: "t".into(),
        pk: "1".into(),
        rev: 1,
        stamp: "2999-01-01T00:00:00.000Z".into(),
        origin: "x".into(),
        deleted: false,
        write_id: Some(7),
    };
    append(&c, &pushed, None).unwrap();
    advance(&c, 1, &pushed.stamp).unwrap();
    c.execute_batch("INSERT INTO t VALUES (1, 'a')").unwrap();
    let v = latest(&c, "t", "1").unwrap().unwrap();
    assert_eq!(v.stamp, "2999-01-01T00:00:00.000Z");
    assert_eq!((v.rev, v.origin.as_str()), (2, DIRECT_ORIGIN));
}

#[test]
fn writes_inside_a_push_are_not_logged_by_triggers() {
    let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    c.execute_batch("UPDATE sharecache_meta SET writer = 'me'; INSERT INTO t VALUES (1, 'a'); UPDATE sharecache_meta SET writer = NULL;")
        .unwrap();
    assert!(since(&c, 0, 10).unwrap().is_empty());
}

#[test]
fn tables_with_updated_at_log_inserts_updates_and_deletes() {
    let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v, updated_at TEXT)");
    c.execute_batch("INSERT INTO t VALUES (1, 'a', '2999-01-01T00:00:00.000Z'); UPDATE t SET v = 'b'; DELETE FROM t;").unwrap();
    let v = latest(&c, "t", "1").unwrap().unwrap();
    assert!(v.deleted);
    assert!(
        v.stamp.as_str() >= "2999-01-01T00:00:00.000Z",
        "a writer's future updated_at is observed: {}",
        v.stamp
    );
}

#[test]
fn key_changes_tombstone_the_old_key() {
    let c = remote("CREATE TABLE t(k TEXT PRIMARY KEY, v)");
    c.execute_batch("INSERT INTO t VALUES ('a', 1); UPDATE t SET k = 'b';")
        .unwrap();
    assert!(latest(&c, "t", "'a'").unwrap().unwrap().deleted);
    assert!(!latest(&c, "t", "'b'").unwrap().unwrap().deleted);
    assert_eq!(
        since(&c, 1, 10).unwrap().len(),
        2,
        "the key change is two entries"
    );
    assert_eq!(tables_with_triggers(&c).unwrap(), vec!["t".to_string()]);
    assert!(triggers_current(&c, &schema::read(&c).unwrap()[0].table).unwrap());
}

#[test]
fn newest_in_keeps_the_last_entry_of_the_asked_keys_and_finds_the_pushed_version() {
    let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    c.execute_batch("INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'c' WHERE id = 1; UPDATE t SET v = 'd' WHERE id = 1;")
        .unwrap();
    let second = latest(&c, "t", "2").unwrap().unwrap();
    let key1 = ("t".to_string(), "1".to_string());
    let keys: HashMap<(String, String), (String, String)> = [(
        key1.clone(),
        ("not logged".to_string(), DIRECT_ORIGIN.to_string()),
    )]
    .into();
    let mut found = HashMap::new();
    newest_in(&c, 0, Some(3), &keys, &mut found).unwrap();
    assert_eq!(found.len(), 1, "key [2] was not asked for");
    assert_eq!(found[&key1].newest.rev, 3);
    newest_in(&c, 3, None, &keys, &mut found).unwrap();
    assert_eq!(found[&key1].newest.rev, 4);
    assert!(!found[&key1].mine_logged);
    // A version of key 2 pushed once already (same origin and stamp), then superseded.
    c.execute("UPDATE t SET v = 'e' WHERE id = 2", []).unwrap();
    let key2 = ("t".to_string(), "2".to_string());
    let keys: HashMap<(String, String), (String, String)> =
        [(key2.clone(), (second.stamp, DIRECT_ORIGIN.to_string()))].into();
    let mut found = HashMap::new();
    newest_in(&c, 0, None, &keys, &mut found).unwrap();
    assert!(found[&key2].mine_logged);
    assert_eq!(found[&key2].newest.rev, 5);
}

#[test]
fn a_bulk_direct_write_does_not_run_the_remote_clock_ahead() {
    let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    c.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
         INSERT INTO t SELECT i, 'x' FROM n; UPDATE t SET v = 'y';",
    )
    .unwrap();
    let (newest, now): (String, String) = c
        .query_row(
            &format!(
                "SELECT (SELECT max(stamp) FROM sharecache_log), strftime('{SQL_STAMP_FORMAT}', 'now', '+1 seconds')"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        newest <= now,
        "10,000 direct writes stamped up to {newest}, more than a second ahead of the clock"
    );
}

#[test]
fn pruning_removes_the_head_up_to_the_floor_a_bounded_number_at_a_time() {
    let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    for i in 0..10 {
        c.execute("INSERT INTO t VALUES (?1, 'a')", [i]).unwrap();
    }
    let stamp_of = |c: &Connection, rev: i64| -> String {
        c.query_row(
            "SELECT stamp FROM sharecache_log WHERE rev = ?1",
            [rev],
            |r| r.get(0),
        )
        .unwrap()
    };
    let (s3, s7) = (stamp_of(&c, 3), stamp_of(&c, 7));
    assert!(
        prune(&c, 7, 3).unwrap(),
        "7 entries at or below the floor, 3 at a time"
    );
    assert_eq!(since(&c, 0, 100).unwrap()[0].version.rev, 4);
    assert_eq!(pruned(&c).unwrap(), Pruned { rev: 3, stamp: s3 });
    assert!(!prune(&c, 7, 100).unwrap());
    assert_eq!(since(&c, 0, 100).unwrap()[0].version.rev, 8);
    assert_eq!(
        pruned(&c).unwrap(),
        Pruned {
            rev: 7,
            stamp: s7.clone()
        }
    );
    assert!(!prune(&c, 7, 100).unwrap(), "nothing left below the floor");
    assert_eq!(pruned(&c).unwrap(), Pruned { rev: 7, stamp: s7 });
    assert_eq!(
        since(&c, 0, 100).unwrap().len(),
        3,
        "entries above the floor stay"
    );
}

#[test]
fn a_remote_of_the_first_format_keeps_its_versions_and_triggers_after_the_upgrade() {
    let c = Connection::open_in_memory().unwrap();
    let v1 = crate::migrate::Migrations {
        table: "sharecache_migrations",
        steps: &crate::migrate::REMOTE.steps[..1],
    };
    v1.apply(&c, "t").unwrap();
    c.execute_batch(
        "INSERT INTO sharecache_meta (id, remote_id, rev, created_at) VALUES (1, 'r', 7, 't');
         CREATE TABLE t(id INTEGER PRIMARY KEY, v);
         CREATE TRIGGER sharecache_ai_t AFTER INSERT ON t BEGIN
           INSERT INTO sharecache_log (tbl, pk, rev, stamp, origin, deleted) VALUES ('t', '[9]', 99, 'x', 'o', 0)
           ON CONFLICT (tbl, pk) DO UPDATE SET rev = excluded.rev;
         END;
         INSERT INTO sharecache_log VALUES ('t', '[1]', 7, '2026-01-01T00:00:00.007Z', 'a', 0);
         INSERT INTO sharecache_log VALUES ('t', '[2]', 5, '2026-01-01T00:00:00.005Z', 'b', 1);",
    )
    .unwrap();
    crate::migrate::REMOTE.apply(&c, "t").unwrap();
    for e in schema::read(&c).unwrap() {
        install_triggers(&c, &e.table).unwrap();
    }
    let log: Vec<(i64, String, bool)> = since(&c, 0, 10)
        .unwrap()
        .into_iter()
        .map(|l| (l.version.rev, l.version.pk, l.version.deleted))
        .collect();
    assert_eq!(log, vec![(5, "2".into(), true), (7, "1".into(), false)]);
    let hlc: String = c
        .query_row("SELECT hlc FROM sharecache_meta", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        hlc, "2026-01-01T00:00:00.007Z",
        "the clock starts at the newest stamp"
    );
    c.execute("INSERT INTO t VALUES (3, 'x')", []).unwrap();
    let v = latest(&c, "t", "3").unwrap().unwrap();
    assert_eq!(
        v.rev, 8,
        "the reinstalled trigger appends after the copied entries"
    );
}
