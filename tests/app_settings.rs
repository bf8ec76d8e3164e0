//! Apps that open the cache with their own connection settings, beside `sharecache daemon`: the
//! usual startup pragmas of apps built for databases on shares (`journal_mode=DELETE`,
//! `locking_mode=EXCLUSIVE`) and one connection kept open, as Python's `sqlite3` does it. The
//! cache is the same whatever the remote: against both backends.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::{cli, json, ok, wait_until};
use crate::support::remote::{Backend, Remote};
use crate::support::{one, sharecache};

crate::both_backends!(
    an_app_that_switches_the_cache_to_journal_mode_delete_starts_beside_the_daemon_and_is_synced,
    an_app_holding_the_cache_in_exclusive_locking_mode_makes_it_locked_and_the_daemon_waits_for_it,
    a_handle_that_holds_no_connection_lets_an_app_switch_journal_mode_and_still_serves_its_own,
);

/// An app with one long-lived connection on the cache: a Python process that runs its startup
/// pragmas, then each SQL line it is sent, answering `ok` or `error: …`.
struct App {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

const APP: &str = r#"
import sqlite3, sys
import time
c = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
# Leaving WAL needs a moment when no other connection is open (it does not wait on the busy
# handler): while a sync runs, it fails "database is locked", as beside any reader; an app that
# retries its startup pragma for a few seconds gets through.
for attempt in range(50):
    try:
        print("ready", *[c.execute(p).fetchone()[0] for p in sys.argv[2:]], flush=True)
        break
    except sqlite3.OperationalError as e:
        if attempt == 49 or "locked" not in str(e):
            print("error:", e, flush=True)
            sys.exit(1)
        time.sleep(0.1)
for line in sys.stdin:
    try:
        c.execute(line)
        print("ok", flush=True)
    except Exception as e:
        print("error:", e, flush=True)
"#;

impl App {
    /// Starts the app on `db` with `pragmas`; returns it and its first line.
    fn start(db: &Path, pragmas: &[&str]) -> (App, String) {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(APP)
            .arg(db)
            .args(pragmas)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut app = App {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        };
        let first = app.line();
        (app, first)
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        l.trim().to_string()
    }

    /// Runs one statement on the app's connection; its answer.
    fn run(&mut self, sql: &str) -> String {
        writeln!(self.stdin.as_mut().unwrap(), "{sql}").unwrap();
        self.line()
    }

    /// Closes the app's connection (the app exits).
    fn close(mut self) {
        drop(self.stdin.take());
        self.child.wait().unwrap();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sharecache daemon` for `cfg`, stopped (SIGTERM) and checked to exit 0 by [`Daemon::stop`].
struct Daemon(Child);

impl Daemon {
    fn start(cfg: &Path) -> Daemon {
        let child = sharecache()
            .arg("--config")
            .arg(cfg)
            .arg("daemon")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Daemon(child)
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    fn stop(mut self) -> Option<i32> {
        // SAFETY: kill(2) on the pid of our own child.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the daemon did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client config syncing every half second, with its cache made.
fn client(remote: &Remote) -> (std::path::PathBuf, std::path::PathBuf) {
    let cfg = remote.config_file("a");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("sync_interval: 30", "sync_interval: 0.5"),
    )
    .unwrap();
    ok(&cfg, &["sync"]);
    let db = json(&cfg, &["status", "--json"])["cache_path"]
        .as_str()
        .unwrap()
        .into();
    (cfg, db)
}

fn an_app_that_switches_the_cache_to_journal_mode_delete_starts_beside_the_daemon_and_is_synced(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let (cfg, db) = client(&remote);
    let daemon = Daemon::start(&cfg);
    wait_until("the daemon to run", Duration::from_secs(20), || {
        json(&cfg, &["status", "--json"])["worker_running"] == true
    });
    let (mut app, ready) = App::start(&db, &["PRAGMA journal_mode=DELETE"]);
    assert_eq!(ready, "ready delete", "the app's startup pragma");
    assert_eq!(
        app.run("INSERT INTO notes (id, body) VALUES (41, 'from a DELETE-mode app')"),
        "ok"
    );
    wait_until(
        "the daemon to push the app's write",
        Duration::from_secs(20),
        || remote.one::<i64>("SELECT count(*) FROM notes WHERE id = 41") == 1,
    );
    remote.exec("INSERT INTO notes (id, body) VALUES (42, 'from the remote')");
    let cache = rusqlite::Connection::open(&db).unwrap();
    cache.busy_timeout(Duration::from_secs(5)).unwrap();
    wait_until(
        "the daemon to pull into the DELETE-mode cache",
        Duration::from_secs(20),
        || one::<i64>(&cache, "SELECT count(*) FROM notes WHERE id = 42") == 1,
    );
    drop(cache);
    assert_eq!(
        app.run("UPDATE notes SET body = 'edited' WHERE id = 42"),
        "ok"
    );
    wait_until(
        "the daemon to push the edit",
        Duration::from_secs(20),
        || remote.one::<String>("SELECT body FROM notes WHERE id = 42") == "edited",
    );
    let status = json(&cfg, &["status", "--json"]);
    assert_eq!(status["journal_mode"], "delete", "{status}");
    assert!(
        status["note"]
            .as_str()
            .unwrap_or("")
            .contains("journal mode delete"),
        "{status}"
    );
    app.close();
    assert_eq!(daemon.stop(), Some(0));
}

fn an_app_holding_the_cache_in_exclusive_locking_mode_makes_it_locked_and_the_daemon_waits_for_it(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let (cfg, db) = client(&remote);
    let (mut app, ready) = App::start(&db, &["PRAGMA locking_mode=EXCLUSIVE"]);
    assert_eq!(ready, "ready exclusive");
    assert_eq!(
        app.run("INSERT INTO notes (id, body) VALUES (51, 'written in exclusive mode')"),
        "ok"
    );

    let sync = cli(&cfg, &["sync"]);
    let err = String::from_utf8_lossy(&sync.stderr);
    assert_eq!(sync.status.code(), Some(5), "locked, not unusable: {err}");
    assert!(err.contains("held by another program"), "{err}");
    let status = json(&cfg, &["status", "--json"]);
    assert_eq!(status["state"], "locked", "{status}");
    assert_eq!(status["mode"], "cached", "{status}");
    assert!(
        status["note"]
            .as_str()
            .unwrap()
            .contains("another program holds the cache"),
        "{status}"
    );

    let mut daemon = Daemon::start(&cfg);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        daemon.running(),
        "the daemon waits for the cache instead of exiting"
    );
    let dir = db.parent().unwrap();
    let aside: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("damaged"))
        .collect();
    assert!(aside.is_empty(), "the cache was moved aside: {aside:?}");
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM notes WHERE id = 51"),
        0
    );

    app.close();
    wait_until(
        "the daemon to push the app's write once it let go",
        Duration::from_secs(30),
        || remote.one::<i64>("SELECT count(*) FROM notes WHERE id = 51") == 1,
    );
    assert_eq!(json(&cfg, &["status", "--json"])["mode"], "cached");
    assert_eq!(daemon.stop(), Some(0));
}

fn a_handle_that_holds_no_connection_lets_an_app_switch_journal_mode_and_still_serves_its_own(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let cache = sharecache::Cache::open_with(
        remote.config("a"),
        sharecache::OpenOptions::default()
            .background(false)
            .hold_cache(false),
    )
    .unwrap();
    let db = cache.cache_path().unwrap().to_path_buf();
    let app = rusqlite::Connection::open(&db).unwrap();
    let mode: String = app
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        mode, "delete",
        "no connection of the handle blocks the switch"
    );
    app.execute("INSERT INTO notes (id, body) VALUES (61, 'app')", [])
        .unwrap();
    drop(app);
    cache
        .conn()
        .execute("INSERT INTO notes (id, body) VALUES (62, 'handle')", [])
        .unwrap();
    assert_eq!(cache.sync_now().unwrap().pushed, 2);
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM notes WHERE id IN (61, 62)"),
        2
    );
}
