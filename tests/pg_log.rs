//! The PostgreSQL change log: migrations, triggers capturing direct writes with the cache's key
//! text, a push's silent triggers, and revisions that become visible in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::Value;
use sharecache::remote::postgres::{PgError, log, migrate, types};
use sharecache::sql::encode_key;

use crate::support::pg::{self, PgDb};

fn ready(test: &str) -> Option<(PgDb, postgres::Client)> {
    let db = pg::database(test)?;
    let mut c = db.store();
    migrate::migrate(&mut c, "remote-1", "2026-12-04T00:00:00.000Z").unwrap();
    Some((db, c))
}

#[test]
fn pg_migrations_create_the_schema_once_and_refuse_a_newer_one() {
    let Some((db, mut c)) = ready("migrate") else {
        return;
    };
    assert_eq!(
        migrate::migrate(&mut c, "other", "x").unwrap(),
        migrate::latest()
    );
    let id: String = c
        .query_one("SELECT remote_id FROM sharecache.meta", &[])
        .unwrap()
        .get(0);
    assert_eq!(id, "remote-1");
    for t in ["log", "conflicts", "clients", "meta"] {
        c.query_one(&format!("SELECT count(*) FROM sharecache.{t}"), &[])
            .unwrap();
    }
    c.execute(
        "INSERT INTO sharecache.migrations VALUES (99, 'later')",
        &[],
    )
    .unwrap();
    let mut other = db.store();
    let e = migrate::migrate(&mut other, "r", "x").unwrap_err();
    assert!(matches!(e, PgError::TooNew { found: 99, .. }), "{e}");
}

#[test]
fn pg_triggers_log_direct_writes_with_the_caches_key_text() {
    let Some((_db, mut c)) = ready("triggers") else {
        return;
    };
    c.batch_execute(
        "CREATE TABLE items (id bigint, code text, tag bytea, body text, PRIMARY KEY (id, code, tag)); \
         CREATE TABLE flags (on_off boolean PRIMARY KEY, d date)",
    )
    .unwrap();
    log::install_triggers(&mut c, "public", "items").unwrap();
    log::install_triggers(&mut c, "public", "flags").unwrap();
    c.batch_execute(
        "INSERT INTO items VALUES (7, 'it''s', '\\x00ff', 'a'); \
         UPDATE items SET body = 'b'; \
         UPDATE items SET id = 8; \
         DELETE FROM items; \
         INSERT INTO flags VALUES (true, '2026-01-02')",
    )
    .unwrap();
    let head = log::sequence(&mut c).unwrap();
    let entries = log::since(&mut c, 0, 100).unwrap();
    assert_eq!(head, 6);
    let k7 = encode_key(&[
        Value::Integer(7),
        Value::Text("it's".into()),
        Value::Blob(vec![0, 255]),
    ]);
    let k8 = encode_key(&[
        Value::Integer(8),
        Value::Text("it's".into()),
        Value::Blob(vec![0, 255]),
    ]);
    let got: Vec<(&str, &str, bool)> = entries
        .iter()
        .map(|e| (e.tbl.as_str(), e.pk.as_str(), e.deleted))
        .collect();
    let flag = encode_key(&[Value::Integer(1)]);
    let want = vec![
        ("items", k7.as_str(), false),
        ("items", k7.as_str(), false),
        ("items", k7.as_str(), true),
        ("items", k8.as_str(), false),
        ("items", k8.as_str(), true),
        ("flags", flag.as_str(), false),
    ];
    assert_eq!(got, want);
    assert!(
        entries
            .iter()
            .all(|e| e.origin == "direct" && e.image.is_none())
    );
    // Stamps never go back for a row, and have the cache's shape.
    let stamps: Vec<&str> = entries[..5].iter().map(|e| e.stamp.as_str()).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(
        sharecache::clock::parse_stamp(stamps[0]).is_some(),
        "{}",
        stamps[0]
    );
}

#[test]
fn pg_a_direct_write_is_never_stamped_before_the_rows_newest_stamp() {
    let Some((_db, mut c)) = ready("stamp") else {
        return;
    };
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .unwrap();
    log::install_triggers(&mut c, "public", "t").unwrap();
    let ahead = "2999-01-01T00:00:00.000Z";
    let mut tx = c.transaction().unwrap();
    let entry = log::NewEntry {
        tbl: "t".into(),
        pk: "1".into(),
        stamp: ahead.into(),
        deleted: false,
        image: None,
    };
    log::append(&mut tx, "client-a", &[entry]).unwrap();
    tx.execute("INSERT INTO t VALUES (1, 'pushed')", &[])
        .unwrap();
    tx.commit().unwrap();
    c.execute("UPDATE t SET v = 'direct'", &[]).unwrap();
    log::sequence(&mut c).unwrap();
    let entries = log::since(&mut c, 0, 10).unwrap();
    assert_eq!(
        entries.len(),
        2,
        "the push's triggers must stay silent: {entries:?}"
    );
    assert_eq!(
        (entries[0].origin.as_str(), entries[0].stamp.as_str()),
        ("client-a", ahead)
    );
    assert_eq!(
        (entries[1].origin.as_str(), entries[1].stamp.as_str()),
        ("direct", ahead)
    );
}

#[test]
fn pg_a_rev_taken_first_but_committed_last_is_still_pulled() {
    let Some((db, mut c)) = ready("interleave") else {
        return;
    };
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .unwrap();
    log::install_triggers(&mut c, "public", "t").unwrap();
    let mut a = db.store();
    let mut b = db.store();
    let mut ta = a.transaction().unwrap();
    ta.execute("INSERT INTO t VALUES (1)", &[]).unwrap(); // writes first: the lower id
    let mut tb = b.transaction().unwrap();
    tb.execute("INSERT INTO t VALUES (2)", &[]).unwrap();
    tb.commit().unwrap(); // commits first
    let head = log::sequence(&mut c).unwrap();
    let first = log::since(&mut c, 0, 10).unwrap();
    assert_eq!((head, first.len(), first[0].pk.as_str()), (1, 1, "2"));
    // What a bigserial would have done: the entry written first has the lower number, and a
    // reader that already moved past the later one would skip it.
    let ids: Vec<i64> = c
        .query("SELECT id FROM sharecache.log ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 1, "A's entry is invisible until it commits");
    ta.commit().unwrap();
    let all_ids: Vec<(i64, i64)> = c
        .query("SELECT id, rev FROM sharecache.log ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<i64>>(1).unwrap_or(-1)))
        .collect();
    assert!(
        all_ids[0].0 < all_ids[1].0 && all_ids[0].1 == -1,
        "{all_ids:?}"
    );
    assert_eq!(log::sequence(&mut c).unwrap(), 2);
    let next = log::since(&mut c, first[0].rev, 10).unwrap();
    assert_eq!((next.len(), next[0].pk.as_str(), next[0].rev), (1, "1", 2));
}

#[test]
fn pg_sequence_refuses_to_run_inside_a_repeatable_read_transaction() {
    let Some((_db, mut c)) = ready("isolation") else {
        return;
    };
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .unwrap();
    let e = tx
        .query_one("SELECT sharecache.sequence()", &[])
        .unwrap_err();
    assert!(
        e.to_string().contains("READ COMMITTED") || format!("{e:?}").contains("READ COMMITTED"),
        "{e:?}"
    );
}

/// Writers commit in random order with pauses between their write and their commit, while
/// pullers sequence and read from their cursor: every entry is pulled exactly once, in rev order.
#[test]
fn pg_concurrent_writers_and_pullers_never_skip_or_repeat_an_entry() {
    let Some((db, mut c)) = ready("stress") else {
        return;
    };
    c.batch_execute("CREATE TABLE t (w int, n int, PRIMARY KEY (w, n))")
        .unwrap();
    log::install_triggers(&mut c, "public", "t").unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut conn = db.store();
            std::thread::spawn(move || {
                for n in 0..40 {
                    let mut tx = conn.transaction().unwrap();
                    tx.execute("INSERT INTO t VALUES ($1, $2)", &[&w, &n])
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(((w * 7 + n * 13) % 5) as u64 * 4));
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    let pulled = Arc::new(Mutex::new(Vec::new()));
    let pullers: Vec<_> = (0..2)
        .map(|_| {
            let mut conn = db.store();
            let done = done.clone();
            let pulled = pulled.clone();
            std::thread::spawn(move || {
                let mut cursor = 0;
                let mut seen = Vec::new();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    log::sequence(&mut conn).unwrap();
                    for e in log::since(&mut conn, cursor, 1000).unwrap() {
                        assert!(e.rev > cursor);
                        cursor = e.rev;
                        seen.push(e.pk);
                    }
                    if finished {
                        break;
                    }
                }
                pulled.lock().unwrap().push(seen);
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for p in pullers {
        p.join().unwrap();
    }
    let expected: Vec<String> = (0..4)
        .flat_map(|w| (0..40).map(move |n| encode_key(&[Value::Integer(w), Value::Integer(n)])))
        .collect();
    for seen in pulled.lock().unwrap().iter() {
        let mut sorted = seen.clone();
        sorted.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(sorted, want, "a puller skipped or repeated entries");
    }
}

#[test]
fn pg_tables_with_unsupported_types_or_no_key_are_reported_not_captured() {
    let Some((_db, mut c)) = ready("unsupported") else {
        return;
    };
    c.batch_execute(
        "CREATE TABLE m (id int PRIMARY KEY, price money); CREATE TABLE nokey (v int); \
         CREATE TABLE fk (f float8 PRIMARY KEY)",
    )
    .unwrap();
    let e = log::install_triggers(&mut c, "public", "m")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.price: PostgreSQL type money has no SQLite mapping"),
        "{e}"
    );
    let e = log::install_triggers(&mut c, "public", "nokey")
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no primary key"), "{e}");
    let e = log::install_triggers(&mut c, "public", "fk")
        .unwrap_err()
        .to_string();
    assert!(e.contains("a key column must be"), "{e}");
    let cols = types::describe(&mut c, "public", "m").unwrap();
    assert_eq!(cols[1].kind, None);
}

/// A server the first PostgreSQL release set up (server migration 2: no write ids, the finish
/// of before the four-round-trip push), with a direct write logged there, is brought up to date
/// by the first client that connects: both clients then sync through it, the old entry keeps no
/// write id and every entry a push logs names its write.
#[test]
fn a_server_set_up_by_the_first_postgres_release_is_upgraded_by_the_first_client_and_syncs() {
    let Some(db) = pg::database("upgrade_from_2") else {
        return;
    };
    let mut c = db.store();
    c.batch_execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text)")
        .unwrap();
    assert_eq!(
        migrate::migrate_to(&mut c, "remote-2", "2026-12-01T00:00:00.000Z", 2).unwrap(),
        0
    );
    log::install_triggers(&mut c, "public", "notes").unwrap();
    c.batch_execute("INSERT INTO notes VALUES (1, 'written under version 2')")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let mut config = sharecache::Config::for_remote(db.url.as_str());
        config.cache_directory = dir.path().join(name);
        config.enable_cache = sharecache::config::EnableCache::Auto;
        config.background = false;
        sharecache::Cache::open(config).unwrap()
    };
    let a = open("a");
    let version: i32 = c
        .query_one("SELECT max(version) FROM sharecache.migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, migrate::latest(), "the first client upgrades it");
    let old: Option<i64> = c
        .query_one("SELECT write_id FROM sharecache.log WHERE pk = '1'", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        old, None,
        "the entry logged before the upgrade names no write"
    );
    let b = open("b");
    a.conn()
        .execute("UPDATE notes SET body = 'edited in a' WHERE id = 1", [])
        .unwrap();
    a.conn()
        .execute("INSERT INTO notes VALUES (2, 'inserted in a')", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    let bodies: Vec<(i64, String)> = b
        .conn()
        .prepare("SELECT id, body FROM notes ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        bodies,
        [(1, "edited in a".to_string()), (2, "inserted in a".into())]
    );
    // The push's entries (the edit of 1 supersedes the direct write's entry) name its write.
    let ids: Vec<Option<i64>> = c
        .query(
            "SELECT write_id FROM sharecache.log WHERE rev > 1 ORDER BY rev",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids[0].is_some() && ids[0] == ids[1], "{ids:?}");
}
