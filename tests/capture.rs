//! Writes from any SQLite client are captured by the cache's triggers.

use std::process::Command;

use crate::support::{Share, one, open_cache_file, rows};

#[test]
fn writes_from_a_plain_rusqlite_connection_are_captured_and_pushed() {
    let share = Share::new();
    let a = share.client("a");
    let other = open_cache_file(&a);
    other
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('r1', 'from rusqlite')",
            [],
        )
        .unwrap();
    assert_eq!(a.status().unwrap().pending_writes, 1);
    a.sync_now().unwrap();
    assert_eq!(
        rows(&share.remote(), "SELECT title FROM tasks WHERE id = 'r1'"),
        vec![vec!["from rusqlite"]]
    );
}

#[test]
fn writes_from_the_sqlite3_shell_and_python_are_captured_and_pushed() {
    let share = Share::new();
    let a = share.client("a");
    let path = a.cache_path().unwrap().to_path_buf();
    let out = Command::new("sqlite3")
        .arg(&path)
        .arg("INSERT INTO tasks (id, title) VALUES ('s1', 'from the shell'); UPDATE notes SET body = 'edited' WHERE id = 1;")
        .output()
        .expect("the sqlite3 shell (apt package sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"DELETE FROM tasks WHERE id = 't2'\"); c.commit()")
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(a.status().unwrap().pending_writes, 3);
    let r = a.sync_now().unwrap();
    assert_eq!(r.pushed, 3);
    let remote = share.remote();
    assert_eq!(
        one::<String>(&remote, "SELECT title FROM tasks WHERE id = 's1'"),
        "from the shell"
    );
    assert_eq!(
        one::<String>(&remote, "SELECT body FROM notes WHERE id = 1"),
        "edited"
    );
    assert_eq!(
        one::<i64>(&remote, "SELECT count(*) FROM tasks WHERE id = 't2'"),
        0
    );
    let stamped: String = one(&remote, "SELECT updated_at FROM tasks WHERE id = 's1'");
    assert!(
        stamped.ends_with('Z') && stamped.len() == 24,
        "updated_at stamped by the trigger: {stamped}"
    );
}

#[test]
fn sharecaches_own_pull_writes_are_not_captured_as_local_changes() {
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (2, 'x')", [])
        .unwrap();
    a.sync_now().unwrap();
    let r = b.sync_now().unwrap();
    assert_eq!(r.pulled, 1);
    assert_eq!(
        b.status().unwrap().pending_writes,
        0,
        "pulled rows must not become pending writes"
    );
}
