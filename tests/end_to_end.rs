//! Issue 16's "done when", end to end: two desktop clients and a person at the backend's own
//! command line (`psql` on a PostgreSQL server, the `sqlite3` shell on the share's file) write the
//! same rows, through an outage of the clients' network and a server restart, and everything
//! converges to the newest write with every loser in the conflict log.
//!
//! The command line is a real program run as a subprocess, one session per statement list, so
//! its writes reach the remote as any other program's would: captured by the remote's own
//! triggers, stamped by the remote. It keeps writing while the clients are cut off (it reaches
//! the server directly; the clients go through the proxy). The restart terminates every session
//! of the test's database, as a restart does to its clients; a share has no server to restart,
//! which the test says for that backend.

use std::time::Duration;

use sharecache::{Cache, ErrorKind};

use crate::support::remote::{Backend, Remote};
use crate::support::rows;

crate::both_backends!(
    two_clients_and_a_command_line_session_converge_to_the_newest_write_through_an_outage_and_a_restart
);

/// Long enough for the next write to get a later millisecond stamp on every clock involved.
fn tick() {
    std::thread::sleep(Duration::from_millis(20));
}

fn edit(cache: &Cache, sql: &str) {
    cache.conn().execute_batch(sql).unwrap();
    tick();
}

/// A sync; the first after a restart may find its session gone (offline), the next reconnects.
fn sync(cache: &Cache) {
    if let Err(e) = cache.sync_now() {
        assert_eq!(e.kind(), ErrorKind::Offline, "{e}");
        cache.sync_now().unwrap();
    }
}

const TASKS: &str = "SELECT id, title, done FROM tasks ORDER BY id";

fn two_clients_and_a_command_line_session_converge_to_the_newest_write_through_an_outage_and_a_restart(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");

    // Online: the command line's writes reach both clients.
    remote.command_line(
        "BEGIN; INSERT INTO tasks (id, title) VALUES ('cli-1', 'from the command line'); \
         UPDATE tasks SET done = 1 WHERE id = 't2'; COMMIT;",
    );
    sync(&a);
    sync(&b);
    assert_eq!(rows(&a.conn(), TASKS), remote.rows(TASKS));
    assert_eq!(rows(&b.conn(), TASKS), remote.rows(TASKS));

    // The clients' network goes down; everyone goes on writing the same rows, in this order.
    remote.set_offline(true);
    edit(&a, "UPDATE tasks SET title = 'a, offline' WHERE id = 't1'");
    let e = a.sync_now().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Offline, "{e}");
    edit(
        &b,
        "UPDATE tasks SET title = 'b, offline, later' WHERE id = 't1'",
    );
    remote.command_line("UPDATE tasks SET title = 'command line, newest' WHERE id = 't1'");
    tick();
    remote.command_line("UPDATE tasks SET title = 'command line, overwritten' WHERE id = 't2'");
    tick();
    edit(&a, "UPDATE tasks SET title = 'a, newest' WHERE id = 't2'");
    edit(&b, "DELETE FROM tasks WHERE id = 'cli-1'");
    remote.command_line(
        "UPDATE tasks SET title = 'command line, after the delete' WHERE id = 'cli-1'",
    );

    // The network comes back; a syncs, then the server restarts under it.
    remote.set_offline(false);
    sync(&a);
    match remote.restart_server() {
        Some(cut) => assert!(cut >= 1, "a's session was not cut"),
        None => assert_eq!(
            backend,
            Backend::Share,
            "only a share has no server to restart"
        ),
    }
    remote.command_line("INSERT INTO tasks (id, title) VALUES ('cli-2', 'after the restart')");
    for _ in 0..2 {
        sync(&b);
        sync(&a);
    }

    // The newest write of each row, everywhere.
    let expect = vec![
        vec![
            "cli-1".to_string(),
            "command line, after the delete".into(),
            "0".into(),
        ],
        vec!["cli-2".into(), "after the restart".into(), "0".into()],
        vec!["t1".into(), "command line, newest".into(), "0".into()],
        vec!["t2".into(), "a, newest".into(), "1".into()],
    ];
    assert_eq!(remote.rows(TASKS), expect, "the remote");
    assert_eq!(rows(&a.conn(), TASKS), expect, "client a");
    assert_eq!(rows(&b.conn(), TASKS), expect, "client b");

    // Every loser, whole, in the conflict log.
    let mut losers: Vec<(String, String)> = remote
        .conflicts()
        .into_iter()
        .map(|c| {
            let what = match c.loser_op.as_str() {
                "delete" => "delete".to_string(),
                _ => c.loser_row.unwrap_or_default(),
            };
            (c.pk, what)
        })
        .collect();
    losers.sort();
    let expected = [
        ("'cli-1'", "delete"),
        ("'t1'", "a, offline"),
        ("'t1'", "b, offline, later"),
        ("'t2'", "command line, overwritten"),
    ];
    assert_eq!(losers.len(), expected.len(), "{losers:?}");
    for ((pk, what), (want_pk, want)) in losers.iter().zip(expected) {
        assert_eq!(pk, want_pk, "{losers:?}");
        assert!(what.contains(want), "{want:?} in {losers:?}");
    }
    for cache in [&a, &b] {
        let s = cache.status().unwrap();
        assert_eq!(
            s.conflicts,
            expected.len() as i64,
            "the log reaches every client"
        );
        assert_eq!(s.pending_writes, 0);
    }
}
