//! The remote is never created, replaced or mistaken for another file.

use sharecache::{Cache, Error, ErrorKind};

use crate::support::{Share, one};

#[test]
fn an_unmounted_share_is_refused_without_creating_a_file() {
    let share = Share::new();
    share.control.set_unmounted(true);
    let err = Cache::open(share.config("a")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Offline, "{err}");
    assert!(err.to_string().contains("is the share mounted?"), "{err}");
    assert!(
        share.control.scratch_entries().is_empty(),
        "created: {:?}",
        share.control.scratch_entries()
    );
}

#[test]
fn a_share_that_unmounts_under_a_running_cache_is_offline_and_nothing_is_created_there() {
    let share = Share::new();
    let a = share.client("a");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (5, 'kept')", [])
        .unwrap();
    share.control.set_unmounted(true);
    let err = a.sync_now().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Offline, "{err}");
    assert!(
        share.control.scratch_entries().is_empty(),
        "created: {:?}",
        share.control.scratch_entries()
    );
    assert_eq!(a.status().unwrap().pending_writes, 1);
    share.control.set_unmounted(false);
    a.sync_now().unwrap();
    assert_eq!(
        one::<String>(&share.remote(), "SELECT body FROM notes WHERE id = 5"),
        "kept"
    );
}

#[test]
fn a_different_database_at_the_remote_path_is_refused_and_left_untouched() {
    let share = Share::new();
    let a = share.client("a");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (6, 'pending')", [])
        .unwrap();
    // Another SQLite file appears at the path (e.g. a different share mounted there).
    share.control.set_unmounted(true);
    let impostor = share.control.scratch_path().join("app.db");
    rusqlite::Connection::open(&impostor)
        .unwrap()
        .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
        .unwrap();
    let before = std::fs::read(&impostor).unwrap();
    let err = a.sync_now().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote(sharecache::remote::RemoteError::WrongDatabase { .. })
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert_eq!(
        std::fs::read(&impostor).unwrap(),
        before,
        "the other file is not modified"
    );
    assert_eq!(
        share.control.scratch_entries(),
        vec!["app.db".to_string()],
        "no lease or journal left there"
    );
    assert_eq!(
        a.status().unwrap().pending_writes,
        1,
        "the pending write stays"
    );
}

#[test]
fn an_empty_file_at_the_remote_path_is_refused() {
    let share = Share::empty();
    std::fs::write(share.backing().join("app.db"), b"").unwrap();
    let err = Cache::open(share.config("a")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert_eq!(
        std::fs::metadata(share.backing().join("app.db"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_with_a_clear_error() {
    let share = Share::empty();
    std::fs::write(share.backing().join("app.db"), b"this is a text file, not a database, padded to be long enough..........................................").unwrap();
    let err = Cache::open(share.config("a")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert!(
        err.to_string().contains("not a usable SQLite database"),
        "{err}"
    );
}

#[test]
fn a_remote_in_wal_mode_is_converted_when_nobody_else_has_it_open() {
    let share = Share::new();
    {
        let c = rusqlite::Connection::open(share.backing().join("app.db")).unwrap();
        let m: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(m, "wal");
    }
    let a = share.client("a");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (7, 'x')", [])
        .unwrap();
    a.sync_now().unwrap();
    let mode: String = one(
        &rusqlite::Connection::open(share.backing().join("app.db")).unwrap(),
        "PRAGMA journal_mode",
    );
    assert_eq!(mode, "delete");
}

#[test]
fn cache_files_and_directory_are_readable_by_the_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let share = Share::new();
    let a = share.client("a");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (8, 'x')", [])
        .unwrap();
    let db = a.cache_path().unwrap().to_path_buf();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    assert_eq!(mode(&db), 0o600);
    let wal = db.with_extension("db-wal");
    assert_eq!(mode(&wal), 0o600);
    let remote_mode_before = mode(&share.backing().join("app.db"));
    a.sync_now().unwrap();
    assert_eq!(
        mode(&share.backing().join("app.db")),
        remote_mode_before,
        "the remote's permissions are left as they were"
    );
}

/// The first open copies the remote several reads at a time. A share operation failing at any
/// point of it leaves no half-made cache behind, reports a retryable error, and the next open
/// makes a complete cache.
#[test]
fn a_share_failing_during_the_first_snapshot_leaves_no_half_made_cache() {
    let share = Share::with_schema(
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO blobs SELECT i, randomblob(1000) FROM n;",
    );
    let expected: i64 = one(&share.remote(), "SELECT sum(length(data)) FROM blobs");
    let mut failed = 0;
    for n in (1..120).step_by(7) {
        let mut cfg = share.config(&format!("c{n}"));
        cfg.lock_retries = 0;
        share.control.fail_nth(n, false);
        let opened = Cache::open(cfg.clone());
        share.control.clear_faults();
        match opened {
            Ok(c) => {
                let got: i64 = one(&c.conn(), "SELECT sum(length(data)) FROM blobs");
                assert_eq!(
                    got, expected,
                    "fault at {n}: an incomplete cache was opened"
                );
            }
            Err(e) => {
                failed += 1;
                assert!(e.is_transient(), "fault at {n}: not retryable: {e}");
                let left: Vec<_> = std::fs::read_dir(&cfg.cache_directory)
                    .map(|d| d.flatten().map(|e| e.file_name()).collect())
                    .unwrap_or_default();
                assert!(
                    left.iter().all(|f| !f.to_string_lossy().ends_with(".db")),
                    "fault at {n}: a cache file was left: {left:?}"
                );
                let c = Cache::open(cfg).unwrap();
                let got: i64 = one(&c.conn(), "SELECT sum(length(data)) FROM blobs");
                assert_eq!(
                    got, expected,
                    "fault at {n}: the next open's cache is incomplete"
                );
            }
        }
    }
    assert!(failed > 0, "no injected fault hit the first open");
}
