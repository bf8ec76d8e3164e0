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
