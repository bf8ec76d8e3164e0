//! A push to PostgreSQL (issue 16's push goal): the same round trips whatever its size and
//! number of tables (counted by the test proxy), and the per-row fallback after the server
//! refused a row of the one statement that writes them all; a connection cut while idle is
//! opened again by the next sync.

use sharecache::{Cache, Config};

use crate::support::pg::{self, PgDb};
use crate::support::proxy::Proxy;

fn setup(test: &str) -> Option<(PgDb, tempfile::TempDir)> {
    let db = pg::database(test)?;
    db.connect()
        .batch_execute(
            "CREATE TABLE tasks (id text PRIMARY KEY, title text CHECK (title <> 'refused'));
             CREATE TABLE notes (id bigint PRIMARY KEY, body text, n bigint);
             INSERT INTO tasks VALUES ('seed', 'from the server');
             INSERT INTO notes SELECT g, 'note ' || g, g FROM generate_series(1, 100) g;",
        )
        .unwrap();
    Some((db, tempfile::tempdir().unwrap()))
}

fn open(url: &str, dir: &tempfile::TempDir, name: &str) -> Cache {
    let mut c = Config::for_remote(url);
    c.cache_directory = dir.path().join(name);
    c.background = false;
    Cache::open(c).unwrap()
}

fn count(db: &PgDb, sql: &str) -> i64 {
    db.connect().query_one(sql, &[]).unwrap().get(0)
}

/// One row or 3,000 across two tables, inserts, updates and deletes: the same round trips. A
/// sync that pushes is the fingerprint, BEGIN, the locks and versions, the rows with the log
/// entries and the numbering, COMMIT, and a page of the log: six (it was 19: nine statements per
/// write, five to read the schema again, three per page of the log, one for the conflict log,
/// which is read now only when the fingerprint or the push says it changed).
#[test]
fn pg_a_push_takes_the_same_round_trips_whatever_its_size_and_tables() {
    let Some((db, dir)) = setup("push_round_trips") else {
        return;
    };
    let proxy = Proxy::start(db.server_addr());
    let a = open(&db.url_via(proxy.addr()), &dir, "a");
    a.sync_now().unwrap();
    let push = |sql: &str| {
        a.conn().execute_batch(sql).unwrap();
        let before = proxy.round_trips();
        let r = a.sync_now().unwrap();
        (r.pushed, proxy.round_trips() - before)
    };
    // First-use costs: the tables' columns, read once per schema.
    push("INSERT INTO tasks VALUES ('warm', 'up'); INSERT INTO notes VALUES (0, 'warm', 0)");
    let (one, rt_one) = push("INSERT INTO tasks VALUES ('one', 'a row')");
    let (many, rt_many) = push(
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2000)
           INSERT INTO tasks SELECT 't' || i, 'task ' || i FROM g;
         WITH RECURSIVE g(i) AS (SELECT 101 UNION ALL SELECT i + 1 FROM g WHERE i < 1000)
           INSERT INTO notes SELECT i, 'note ' || i, i FROM g;
         UPDATE notes SET body = 'changed' WHERE id BETWEEN 1 AND 50;
         DELETE FROM notes WHERE id > 50 AND id <= 100;
         DELETE FROM tasks WHERE id = 'seed';",
    );
    assert_eq!((one, many), (1, 3001));
    assert_eq!(rt_one, 6, "round trips of a one-row push");
    assert_eq!(
        rt_many, rt_one,
        "round trips of a 3,001-row push of two tables"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM tasks"), 2002);
    assert_eq!(count(&db, "SELECT count(*) FROM notes"), 951);
    assert_eq!(
        count(&db, "SELECT count(*) FROM notes WHERE body = 'changed'"),
        50
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sharecache.log WHERE origin <> 'direct' AND rev IS NOT NULL"
        ),
        3004,
        "one numbered log entry per pushed change"
    );
}

/// A row the server refuses (a CHECK) fails the one statement of the write; the write runs
/// again row by row under savepoints: the other rows of both tables land, the refused one is in
/// the conflict log and the cache takes the server's version back.
#[test]
fn pg_a_refused_row_falls_back_to_row_by_row_and_the_rest_lands() {
    let Some((db, dir)) = setup("push_refused") else {
        return;
    };
    let a = open(db.url.as_str(), &dir, "a");
    a.conn()
        .execute_batch(
            "INSERT INTO tasks VALUES ('t1', 'fine'), ('t2', 'refused'), ('t3', 'fine too');
             UPDATE notes SET body = 'changed' WHERE id = 7;
             DELETE FROM notes WHERE id = 8;",
        )
        .unwrap();
    let r = a.sync_now().unwrap();
    assert_eq!(r.pushed, 4, "{r:?}");
    assert_eq!(r.conflicts, 1, "{r:?}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM tasks WHERE id IN ('t1', 't3')"),
        2
    );
    assert_eq!(count(&db, "SELECT count(*) FROM tasks WHERE id = 't2'"), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM notes WHERE body = 'changed'"),
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM notes WHERE id = 8"), 0);
    let reason: String = db
        .connect()
        .query_one(
            "SELECT reason FROM sharecache.conflicts WHERE pk = '''t2'''",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(reason.starts_with("rejected by the remote"), "{reason}");
    let left: i64 = a
        .conn()
        .query_row("SELECT count(*) FROM tasks WHERE id = 't2'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(left, 0, "the cache takes the server's version (none) back");
}

/// The connection cut while idle (a server restart between two syncs): the next sync finds it
/// closed at its first statement, connects again and goes on, instead of failing as offline.
/// (A push is now short enough that a cut meant for its middle often lands after it.)
#[test]
fn pg_a_sync_after_the_idle_connection_was_cut_connects_again_and_succeeds() {
    let Some((db, dir)) = setup("idle_cut") else {
        return;
    };
    let proxy = Proxy::start(db.server_addr());
    let a = open(&db.url_via(proxy.addr()), &dir, "a");
    a.sync_now().unwrap();
    for round in 0..3 {
        proxy.drop_all();
        a.conn()
            .execute(
                "INSERT INTO tasks VALUES (?1, 'after a cut')",
                [format!("c{round}")],
            )
            .unwrap();
        let r = a.sync_now().unwrap();
        assert_eq!(r.pushed, 1, "{r:?}");
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM tasks WHERE title = 'after a cut'"
        ),
        3
    );
}
