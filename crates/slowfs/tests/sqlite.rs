//! SQLite on the mount: basic use, locking between connections and between
//! processes, and what SQLite reports when the share fails.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::Fixture;
use rusqlite::{Connection, ErrorCode};

fn open(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    c.busy_timeout(std::time::Duration::ZERO).unwrap();
    c
}

fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    e.sqlite_error_code()
}

#[test]
fn sqlite_works_on_the_mount() {
    let fx = Fixture::fast();
    let db = fx.m("test.db");
    {
        let mut c = open(&db);
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        let tx = c.transaction().unwrap();
        for i in 0..200 {
            tx.execute("INSERT INTO t(v) VALUES (?1)", [format!("value {i}")])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let c = open(&db);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 200);
    drop(c);
    let header = std::fs::read(fx.b("test.db")).unwrap();
    assert!(header.starts_with(b"SQLite format 3\0"));
    assert!(!fx.b("test.db-journal").exists());
}

#[test]
fn locks_work_across_two_connections() {
    let fx = Fixture::fast();
    let db = fx.m("locks.db");
    let a = open(&db);
    a.execute_batch("CREATE TABLE t(x)").unwrap();
    let b = open(&db);

    a.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = b.execute_batch("BEGIN IMMEDIATE").unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::DatabaseBusy), "{err}");
    a.execute_batch("INSERT INTO t VALUES (1); COMMIT").unwrap();

    b.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")
        .unwrap();
    let n: i64 = a
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

/// Helper run in a child process by `locks_work_across_processes`.
#[test]
fn lock_holder_child() {
    let Ok(db) = std::env::var("SLOWFS_LOCK_CHILD_DB") else {
        return;
    };
    let c = Connection::open(db).unwrap();
    c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES ('child')")
        .unwrap();
    println!("LOCKED");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    c.execute_batch("COMMIT").unwrap();
}

#[test]
fn locks_work_across_processes() {
    let fx = Fixture::fast();
    let db = fx.m("xproc.db");
    let c = open(&db);
    c.execute_batch("CREATE TABLE t(x)").unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SLOWFS_LOCK_CHILD_DB", &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // libtest prints "test lock_holder_child ... " before the test output.
    while !line.contains("LOCKED") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
    }

    let err = c.execute_batch("BEGIN IMMEDIATE").unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::DatabaseBusy), "{err}");

    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.wait().unwrap().success());
    c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES ('parent'); COMMIT")
        .unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn offline_share_surfaces_as_sqlite_errors() {
    let fx = Fixture::fast();
    let db = fx.m("off.db");
    let c = open(&db);
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
        .unwrap();
    let ctl = fx.ctl();

    ctl.set_offline(true);
    let read = c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0));
    let write = c.execute_batch("INSERT INTO t VALUES (2)");
    let reopen =
        Connection::open(&db).and_then(|c2| c2.query_row("SELECT 1 FROM t", [], |_| Ok(())));
    eprintln!("offline read: {read:?}\noffline write: {write:?}\noffline open: {reopen:?}");
    // SQLite maps EIO from read() to SQLITE_IOERR_CORRUPTFS, which reaches
    // the application as SQLITE_CORRUPT ("database disk image is malformed").
    let read = read.expect_err("read must fail while offline");
    assert_eq!(code(&read), Some(ErrorCode::DatabaseCorrupt), "{read:?}");
    let write = write.expect_err("write must fail while offline");
    assert!(
        matches!(
            code(&write),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::SystemIoFailure)
        ),
        "{write:?}"
    );
    let reopen = reopen.expect_err("open must fail while offline");
    assert_eq!(code(&reopen), Some(ErrorCode::CannotOpen), "{reopen:?}");

    ctl.set_offline(false);
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn transaction_op_profile() {
    let fx = Fixture::fast();
    let db = fx.m("profile.db");
    let c = open(&db);
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    let ctl = fx.ctl();

    ctl.reset_stats();
    c.execute_batch("BEGIN; INSERT INTO t VALUES (1); COMMIT")
        .unwrap();
    let write_tx = ctl.stats();
    ctl.reset_stats();
    let _: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    let read_tx = ctl.stats();
    eprintln!("one-row write transaction: {write_tx:?}\nread transaction: {read_tx:?}");
    assert!(write_tx.write >= 2, "journal + database writes");
    assert!(write_tx.fsync >= 2, "journal and database fsyncs");
    assert!(write_tx.create >= 1, "the rollback journal is created");
    assert!(write_tx.unlink >= 1, "and deleted (journal_mode=DELETE)");
    assert!(read_tx.read >= 1, "a read transaction re-reads the header");
}
