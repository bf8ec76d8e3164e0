//! Caches syncing through a PostgreSQL server (issue 16): the same `Cache`, API and rules as on
//! a share, with `database.path` a `postgres://` URL. Also the interleaving that a `bigserial`
//! revision gets wrong, forced with a direct writer's open transaction.

use std::collections::HashMap;

use sharecache::config::EnableCache;
use sharecache::remote::RemoteStore;
use sharecache::remote::postgres::Postgres;
use sharecache::{Cache, Config};

use crate::support::pg::{self, PgDb};

fn setup(test: &str) -> Option<(PgDb, tempfile::TempDir)> {
    let db = pg::database(test)?;
    db.connect()
        .batch_execute(
            "CREATE TABLE tasks (id text PRIMARY KEY, title text, done boolean NOT NULL DEFAULT false, \
             price numeric(10,2));
             INSERT INTO tasks (id, title, price) VALUES ('seed', 'from the server', 1.50);",
        )
        .unwrap();
    Some((db, tempfile::tempdir().unwrap()))
}

fn config(db: &PgDb, dir: &tempfile::TempDir, name: &str) -> Config {
    let mut c = Config::for_remote(db.url.as_str());
    c.cache_directory = dir.path().join(format!("cache-{name}"));
    c.enable_cache = EnableCache::Auto;
    c.background = false;
    c
}

fn titles(cache: &Cache) -> HashMap<String, String> {
    let conn = cache.conn();
    let mut s = conn.prepare("SELECT id, title FROM tasks").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn two_caches_sync_through_a_postgres_server_and_a_direct_writer_reaches_both() {
    let Some((db, dir)) = setup("two_caches") else {
        return;
    };
    let a = Cache::open(config(&db, &dir, "a")).unwrap();
    let b = Cache::open(config(&db, &dir, "b")).unwrap();
    assert_eq!(titles(&a)["seed"], "from the server", "the first snapshot");
    let price: String = a
        .conn()
        .query_row("SELECT price FROM tasks WHERE id = 'seed'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(price, "1.50", "numeric kept exact, as text");
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title, done) VALUES ('t1', 'written in a', 1)",
            [],
        )
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert_eq!(titles(&b)["t1"], "written in a");
    let done: bool = db
        .connect()
        .query_one("SELECT done FROM tasks WHERE id = 't1'", &[])
        .unwrap()
        .get(0);
    assert!(done, "the cache's 1 is the server's true");
    // A web backend writes the server directly: captured, pulled by both.
    db.connect()
        .execute(
            "UPDATE tasks SET title = 'from the web' WHERE id = 't1'",
            &[],
        )
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert_eq!(titles(&a)["t1"], "from the web");
    assert_eq!(titles(&b)["t1"], "from the web");
    b.conn()
        .execute("DELETE FROM tasks WHERE id = 'seed'", [])
        .unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    assert!(!titles(&a).contains_key("seed"), "a delete travels too");
    let left: i64 = db
        .connect()
        .query_one("SELECT count(*) FROM tasks WHERE id = 'seed'", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn concurrent_edits_through_postgres_keep_the_newest_and_log_the_loser() {
    let Some((db, dir)) = setup("concurrent_edits") else {
        return;
    };
    let a = Cache::open(config(&db, &dir, "a")).unwrap();
    let b = Cache::open(config(&db, &dir, "b")).unwrap();
    a.conn()
        .execute("UPDATE tasks SET title = 'a edits' WHERE id = 'seed'", [])
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.conn()
        .execute(
            "UPDATE tasks SET title = 'b edits later' WHERE id = 'seed'",
            [],
        )
        .unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert_eq!(titles(&a)["seed"], "b edits later");
    assert_eq!(titles(&b)["seed"], "b edits later");
    let server: String = db
        .connect()
        .query_one("SELECT title FROM tasks WHERE id = 'seed'", &[])
        .unwrap()
        .get(0);
    assert_eq!(server, "b edits later");
    let losers: Vec<String> = db
        .connect()
        .query("SELECT loser_row FROM sharecache.conflicts", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(losers.len(), 1, "{losers:?}");
    assert!(
        losers[0].contains("a edits"),
        "the loser kept whole: {losers:?}"
    );
}

/// The interleaving a `bigserial` revision gets wrong: a change written first (here a direct
/// writer's, its transaction left open) commits after a later push that a reader has already
/// pulled past. Its revision must come after what the reader saw.
#[test]
fn a_change_that_commits_after_a_later_one_was_read_is_still_pulled() {
    let Some((db, _dir)) = setup("interleaving") else {
        return;
    };
    let target = db.target();
    let mut setup = Postgres::open(&target, "public", "setup");
    setup.enroll("2026-12-04T09:00:00.000Z").unwrap();
    let mut slow = db.connect();
    let mut open = slow.transaction().unwrap();
    open.execute(
        "INSERT INTO tasks (id, title) VALUES ('early', 'written first')",
        &[],
    )
    .unwrap();
    // Another program commits a change after the open one began.
    db.connect()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('late', 'committed first')",
            &[],
        )
        .unwrap();
    let reader = Postgres::open(&target, "public", "reader");
    let shapes = HashMap::new();
    let first = reader.changes_since(0, 100, &shapes).unwrap();
    let seen: Vec<&str> = first.entries.iter().map(|(v, _)| v.pk.as_str()).collect();
    assert_eq!(seen, ["'late'"], "only the committed change");
    let cursor = first.tail.expect("the whole log was read");
    open.commit().unwrap();
    let next = reader.changes_since(cursor, 100, &shapes).unwrap();
    let seen: Vec<(&str, i64)> = next
        .entries
        .iter()
        .map(|(v, _)| (v.pk.as_str(), v.rev))
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "'early'");
    assert!(
        seen[0].1 > cursor,
        "numbered after what the reader saw: {seen:?}"
    );
}

/// The server away (every connection refused, then every connection dropped): a sync fails as
/// offline, the write stays pending in the cache, and the next sync once the server is back
/// pushes it — through a fresh connection.
#[test]
fn a_server_that_goes_away_is_offline_and_nothing_pending_is_lost() {
    let Some((db, dir)) = setup("server_away") else {
        return;
    };
    let proxy = crate::support::proxy::Proxy::start(db.server_addr());
    let mut c = Config::for_remote(db.url_via(proxy.addr()).as_str());
    c.cache_directory = dir.path().join("cache-a");
    c.background = false;
    let a = Cache::open(c).unwrap();
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('p1', 'while away')",
            [],
        )
        .unwrap();
    proxy.set_offline(true);
    proxy.drop_all();
    let err = a.sync_now().unwrap_err();
    assert_eq!(err.kind(), sharecache::ErrorKind::Offline, "{err}");
    let pending = sharecache::store::journal::pending(&a.conn()).unwrap();
    assert_eq!(pending, 1, "the write is still pending");
    proxy.set_offline(false);
    a.sync_now().unwrap();
    let there: i64 = db
        .connect()
        .query_one("SELECT count(*) FROM tasks WHERE id = 'p1'", &[])
        .unwrap()
        .get(0);
    assert_eq!(there, 1, "pushed once the server was back");
    let done: bool = db
        .connect()
        .query_one("SELECT done FROM tasks WHERE id = 'p1'", &[])
        .unwrap()
        .get(0);
    assert!(!done, "the server's constant default is the cache's too");
}

/// What an idle sync costs on a server: the fingerprint, one statement, one round trip.
#[test]
fn an_idle_sync_through_postgres_is_one_round_trip() {
    let Some((db, dir)) = setup("idle") else {
        return;
    };
    let proxy = crate::support::proxy::Proxy::start(db.server_addr());
    let mut c = Config::for_remote(db.url_via(proxy.addr()).as_str());
    c.cache_directory = dir.path().join("cache-a");
    c.background = false;
    let a = Cache::open(c).unwrap();
    a.sync_now().unwrap();
    a.sync_now().unwrap();
    for _ in 0..3 {
        let before = proxy.round_trips();
        let r = a.sync_now().unwrap();
        assert!(r.idle, "{r:?}");
        assert_eq!(
            proxy.round_trips() - before,
            1,
            "round trips of one idle sync"
        );
    }
}

/// A pull of many direct writes (no row images: a web backend's, say) reads their rows in one
/// statement per table and page of the log, not one per row.
#[test]
fn a_pull_of_many_direct_writes_reads_their_rows_in_one_statement() {
    let Some((db, dir)) = setup("many_direct") else {
        return;
    };
    let proxy = crate::support::proxy::Proxy::start(db.server_addr());
    let mut c = Config::for_remote(db.url_via(proxy.addr()).as_str());
    c.cache_directory = dir.path().join("cache-a");
    c.background = false;
    let a = Cache::open(c).unwrap();
    a.sync_now().unwrap();
    let pull = |sql: &str| {
        db.connect().batch_execute(sql).unwrap();
        let before = proxy.round_trips();
        let r = a.sync_now().unwrap();
        (r.pulled, proxy.round_trips() - before)
    };
    pull("INSERT INTO tasks (id, title) VALUES ('warm', 'up')"); // first-pull costs
    let (n10, rt10) = pull(
        "INSERT INTO tasks (id, title) SELECT 'd' || g, 'direct ' || g FROM generate_series(1, 10) g",
    );
    let (n500, rt500) = pull(
        "INSERT INTO tasks (id, title) SELECT 'e' || g, 'direct ' || g FROM generate_series(1, 500) g",
    );
    assert_eq!((n10, n500), (10, 500));
    // A few statements per page of the log (the head, the page, the rows), none per row.
    assert!(
        rt500 < rt10 + 10,
        "round trips of a pull of 500 direct writes: {rt500}, of 10: {rt10}"
    );
    assert_eq!(titles(&a)["e500"], "direct 500");
}

/// The connection cut at any moment of a push (before, during, or after its COMMIT reached the
/// server): the sync fails as offline or succeeds, and the next one leaves every row on the
/// server once, logged once — a write whose acknowledgement was lost is recognised, not doubled.
#[test]
fn a_connection_cut_mid_push_loses_nothing_and_doubles_nothing() {
    let Some((db, dir)) = setup("cut_mid_push") else {
        return;
    };
    let proxy = std::sync::Arc::new(crate::support::proxy::Proxy::start(db.server_addr()));
    let mut c = Config::for_remote(db.url_via(proxy.addr()).as_str());
    c.cache_directory = dir.path().join("cache-a");
    c.background = false;
    let a = Cache::open(c).unwrap();
    a.sync_now().unwrap();
    proxy.set_latency(
        std::time::Duration::from_millis(5),
        std::time::Duration::from_millis(5),
    );
    for (round, cut_after_ms) in [5u64, 25, 45, 65, 85, 120].into_iter().enumerate() {
        for i in 0..20 {
            a.conn()
                .execute(
                    "INSERT INTO tasks (id, title) VALUES (?1, 'cut')",
                    [format!("r{round}-{i}")],
                )
                .unwrap();
        }
        let p = proxy.clone();
        let cutter = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(cut_after_ms));
            p.drop_all();
        });
        let first = a.sync_now();
        cutter.join().unwrap();
        if let Err(e) = &first {
            assert_eq!(e.kind(), sharecache::ErrorKind::Offline, "{e}");
        }
        a.sync_now().unwrap();
    }
    let mut server = db.connect();
    let rows: i64 = server
        .query_one("SELECT count(*) FROM tasks WHERE title = 'cut'", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 120, "every row on the server");
    let (entries, keys): (i64, i64) = {
        let r = server
            .query_one(
                "SELECT count(*), count(DISTINCT pk) FROM sharecache.log WHERE pk LIKE '''r%'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((entries, keys), (120, 120), "each version logged once");
    let pending = sharecache::store::journal::pending(&a.conn()).unwrap();
    assert_eq!(pending, 0);
}

/// A server that takes no writes for a while (a standby not yet promoted, a database set
/// read-only): a push fails as offline, the write stays pending, and goes once writes are back.
#[test]
fn a_read_only_server_is_offline_until_it_takes_writes_again() {
    let Some((db, dir)) = setup("read_only") else {
        return;
    };
    let proxy = crate::support::proxy::Proxy::start(db.server_addr());
    let mut c = Config::for_remote(db.url_via(proxy.addr()).as_str());
    c.cache_directory = dir.path().join("cache-a");
    c.background = false;
    let a = Cache::open(c).unwrap();
    a.sync_now().unwrap();
    let set = |on: bool| {
        let mut admin = db.connect();
        // This session writes whatever the database's default (a statement of its own: a
        // multi-statement string is one transaction, begun read-only).
        admin
            .batch_execute("SET default_transaction_read_only = off")
            .unwrap();
        admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" SET default_transaction_read_only = {on}",
                db.name
            ))
            .unwrap();
        proxy.drop_all(); // new sessions take the setting
    };
    set(true);
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('ro', 'while read-only')",
            [],
        )
        .unwrap();
    let e = a.sync_now().unwrap_err();
    assert_eq!(e.kind(), sharecache::ErrorKind::Offline, "{e}");
    set(false);
    a.sync_now().unwrap();
    let n: i64 = db
        .connect()
        .query_one("SELECT count(*) FROM tasks WHERE id = 'ro'", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

/// A push and a direct writer creating the same new row at once: the push cannot lock a row
/// that does not exist, waits on the writer's insert, and would overwrite it undecided. Its end
/// finds the writer's newer entry, the push runs again and decides against it: the later
/// version stays, the other is in the conflict log.
#[test]
fn a_push_racing_a_direct_insert_of_the_same_new_row_decides_against_it() {
    let Some((db, dir)) = setup("insert_race") else {
        return;
    };
    let mut c = Config::for_remote(db.url.as_str());
    c.cache_directory = dir.path().join("cache-a");
    c.background = false;
    let a = Cache::open(c).unwrap();
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('race', 'from the cache')",
            [],
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mut writer = db.connect();
    let mut open = writer.transaction().unwrap();
    open.execute(
        "INSERT INTO tasks (id, title) VALUES ('race', 'from the web, later')",
        &[],
    )
    .unwrap();
    let pusher = std::thread::spawn(move || {
        let r = a.sync_now();
        (a, r)
    });
    std::thread::sleep(std::time::Duration::from_millis(400));
    open.commit().unwrap();
    let (a, r) = pusher.join().unwrap();
    r.unwrap();
    a.sync_now().unwrap();
    let mut server = db.connect();
    let title: String = server
        .query_one("SELECT title FROM tasks WHERE id = 'race'", &[])
        .unwrap()
        .get(0);
    assert_eq!(title, "from the web, later", "the later version stays");
    let losers: Vec<Option<String>> = server
        .query(
            "SELECT loser_row FROM sharecache.conflicts WHERE pk = '''race'''",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(losers.len(), 1, "{losers:?}");
    assert!(
        losers[0]
            .as_deref()
            .unwrap_or("")
            .contains("from the cache"),
        "{losers:?}"
    );
    assert_eq!(titles(&a)["race"], "from the web, later");
}

/// A report job's bulk write (20,000 rows in one statement) is captured and pulled: the
/// capture takes no lock per row beyond the row's own (PostgreSQL's shared lock table holds a
/// few thousand), and the pull reads the rows a page at a time.
#[test]
fn a_direct_bulk_write_of_twenty_thousand_rows_is_captured_and_pulled() {
    let Some((db, dir)) = setup("bulk") else {
        return;
    };
    let mut c = Config::for_remote(db.url.as_str());
    c.cache_directory = dir.path().join("cache-a");
    c.background = false;
    let a = Cache::open(c).unwrap();
    db.connect()
        .batch_execute(
            "INSERT INTO tasks (id, title) SELECT 'b' || g, 'bulk' FROM generate_series(1, 20000) g;
             UPDATE tasks SET title = 'bulk, updated' WHERE title = 'bulk';",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert!(r.pulled >= 20_000, "{r:?}"); // a row changed twice may be applied twice
    let n: i64 = a
        .conn()
        .query_row(
            "SELECT count(*) FROM tasks WHERE title = 'bulk, updated'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 20_000);
}
