use rusqlite::Connection;

use super::*;

/// A cache-shaped database with sharecache's tables and one synced table, schema in order.
fn cache(table_sql: &str) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let c = Connection::open(dir.path().join("c.db")).unwrap();
    crate::migrate::CACHE.apply(&c, "t").unwrap();
    c.execute(
        "INSERT INTO sync_state (id, origin, hlc, remote_id, remote_path, created_at, snapshot_at) \
         VALUES (1, 'o', 946684800000, 'r', 'p', 't', 't')",
        [],
    )
    .unwrap();
    c.execute_batch(table_sql).unwrap();
    crate::sync::snapshot::register_tables(&c, None).unwrap();
    let first = check(&c, "t0").unwrap();
    assert!(first.changed && first.repaired.is_empty() && first.refused.is_empty());
    record(&c, first.cookie).unwrap();
    (dir, c)
}

/// Entries in the outbox once the capture journal is folded.
fn pending(c: &Connection) -> i64 {
    crate::store::journal::fold(c).unwrap();
    c.query_row("SELECT count(*) FROM sync_tracking", [], |r| r.get(0))
        .unwrap()
}

const ITEMS: &str = "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)";

#[test]
fn an_unchanged_schema_is_one_read_and_finds_nothing() {
    let (_d, c) = cache(ITEMS);
    c.execute_batch("INSERT INTO items VALUES (1, 'a', 1)")
        .unwrap();
    let f = check(&c, "t1").unwrap();
    assert_eq!(
        f,
        Findings {
            cookie: f.cookie,
            ..Findings::default()
        }
    );
    // Not recorded: the same check again, then quiet once recorded.
    c.execute_batch("CREATE INDEX items_name ON items(name)")
        .unwrap();
    assert!(check(&c, "t2").unwrap().changed);
    let f = check(&c, "t3").unwrap();
    assert!(f.changed, "looks again until recorded");
    record(&c, f.cookie).unwrap();
    assert!(!check(&c, "t4").unwrap().changed);
}

#[test]
fn a_table_rebuilt_by_a_migration_gets_its_capture_back_and_is_queued_for_recovery() {
    let (_d, c) = cache(ITEMS);
    // SQLite's 12-step rebuild, changing a declared type and adding a NOT NULL.
    c.execute_batch(
        "BEGIN; CREATE TABLE items_new(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', qty REAL); \
         INSERT INTO items_new SELECT * FROM items; DROP TABLE items; \
         ALTER TABLE items_new RENAME TO items; COMMIT; \
         INSERT INTO items VALUES (1, 'uncaptured', 2);",
    )
    .unwrap();
    assert_eq!(
        pending(&c),
        0,
        "the rebuild took the triggers with the old table"
    );
    let f = check(&c, "t1").unwrap();
    assert!(f.changed);
    assert_eq!(f.repaired.len(), 1, "{f:?}");
    assert!(f.repaired[0].1.contains("missing"), "{f:?}");
    assert_eq!(f.to_recover, ["items"]);
    assert!(f.refused.is_empty());
    c.execute_batch("INSERT INTO items VALUES (2, 'captured', 3)")
        .unwrap();
    assert_eq!(pending(&c), 1, "writes after the check are captured again");
    record(&c, f.cookie).unwrap();
    // Recorded: the next check is quiet but the recovery stays outstanding until done.
    let again = check(&c, "t2").unwrap();
    assert!(!again.changed && again.to_recover == ["items"]);
    recovered(&c, "items", 1, "t3").unwrap();
    assert!(check(&c, "t4").unwrap().to_recover.is_empty());
}

#[test]
fn a_dropped_capture_trigger_is_reinstalled() {
    let (_d, c) = cache(ITEMS);
    c.execute_batch("DROP TRIGGER sync_ad_items").unwrap();
    let f = check(&c, "t1").unwrap();
    assert_eq!(
        f.repaired,
        [("items".into(), "1 capture trigger(s) dropped".into())]
    );
    c.execute_batch("INSERT INTO items VALUES (1, 'a', 1); DELETE FROM items")
        .unwrap();
    let events: i64 = c
        .query_row("SELECT count(*) FROM sync_journal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 2, "both writes captured");
    let ops = pending(&c);
    assert_eq!(
        ops, 0,
        "insert + delete coalesce: the delete trigger is back"
    );
}

#[test]
fn dropped_columns_dropped_tables_and_new_keys_are_refused_every_time() {
    for (migration, words) in [
        (
            "ALTER TABLE items DROP COLUMN qty",
            "column \"qty\" was dropped or renamed",
        ),
        (
            "ALTER TABLE items RENAME COLUMN qty TO amount",
            "column \"qty\" was dropped or renamed",
        ),
        ("DROP TABLE items", "dropped or renamed in the cache"),
        (
            "ALTER TABLE items RENAME TO goods",
            "dropped or renamed in the cache",
        ),
        (
            "CREATE TABLE n(name TEXT PRIMARY KEY, id INTEGER, qty INTEGER); INSERT INTO n SELECT name, id, qty FROM items; \
             DROP TABLE items; ALTER TABLE n RENAME TO items",
            "primary key changed in the cache (from (id) to (name))",
        ),
    ] {
        let (_d, c) = cache(ITEMS);
        c.execute_batch(migration).unwrap();
        for _ in 0..2 {
            let f = check(&c, "t1").unwrap();
            assert_eq!(f.refused.len(), 1, "{migration}: {f:?}");
            assert_eq!(f.refused[0].table, "items");
            assert!(f.refused[0].change.contains(words), "{migration}: {f:?}");
        }
    }
}

#[test]
fn columns_and_tables_added_in_the_cache_are_reported_and_capture_stays_on() {
    let (_d, c) = cache(ITEMS);
    c.execute_batch(
        "ALTER TABLE items ADD COLUMN note TEXT; CREATE TABLE local_notes(id INTEGER PRIMARY KEY); \
         CREATE INDEX items_name ON items(name);",
    )
    .unwrap();
    let f = check(&c, "t1").unwrap();
    assert_eq!(
        f.cache_only_columns,
        [("items".into(), vec!["note".into()])]
    );
    assert_eq!(f.cache_only_tables, ["local_notes"]);
    assert!(f.repaired.is_empty() && f.refused.is_empty(), "{f:?}");
    c.execute_batch("INSERT INTO items (id, note) VALUES (1, 'n')")
        .unwrap();
    assert_eq!(pending(&c), 1);
}

#[test]
fn vacuum_changes_the_cookie_but_nothing_else() {
    let (_d, c) = cache(ITEMS);
    c.execute_batch("VACUUM").unwrap();
    let f = check(&c, "t1").unwrap();
    assert!(f.repaired.is_empty() && f.refused.is_empty(), "{f:?}");
}
