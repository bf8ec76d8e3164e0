//! Failover to a promoted standby (issue 16): the server the caches sync with dies, and a
//! streaming standby that had not received its last commits becomes the primary behind the same
//! address. To the caches that is a remote gone back in time — the commits it lacks were
//! acknowledged — exactly like a share restored from a backup: the same error kinds while it is
//! down, then the trail check finds the marked entries missing and a reconcile pushes the lost
//! versions again. Nothing acknowledged is lost.
//!
//! On a primary and a standby of its own (`ci/postgres start` / `standby`), not the shared test
//! cluster: the test stops both.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sharecache::config::EnableCache;
use sharecache::{Cache, Config, ErrorKind};

use crate::support::pg;
use crate::support::proxy::Proxy;

/// `ci/postgres` with `args`; its `export NAME='value'` lines as pairs.
fn ci_postgres(args: &[&str], password: Option<&str>) -> Vec<(String, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/postgres");
    let mut cmd = Command::new(script);
    cmd.args(args);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().expect("running ci/postgres");
    assert!(
        out.status.success(),
        "ci/postgres {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

fn value(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("ci/postgres printed no {name}: {pairs:?}"))
        .1
        .clone()
}

/// A cluster made for this test, stopped and removed when dropped.
struct Server {
    url: String,
    dir: PathBuf,
}

impl Server {
    fn addr(&self) -> std::net::SocketAddr {
        let rest = self.url.split_once('@').unwrap().1;
        rest[..rest.find('/').unwrap()].parse().unwrap()
    }

    fn password(&self) -> String {
        let auth = self.url.split_once("://").unwrap().1;
        auth.split_once('@')
            .unwrap()
            .0
            .split_once(':')
            .unwrap()
            .1
            .to_owned()
    }

    fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connecting")
    }

    fn run(&self, what: &str) {
        ci_postgres(&[what, self.dir.to_str().unwrap()], None);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/postgres"))
            .args(["stop", self.dir.to_str().unwrap()])
            .output();
    }
}

fn config(url: &str, dir: &Path, name: &str) -> Config {
    let mut c = Config::for_remote(url);
    c.cache_directory = dir.join(format!("cache-{name}"));
    c.enable_cache = EnableCache::Auto;
    c.background = false;
    c
}

fn titles(conn: &rusqlite::Connection) -> Vec<(String, String)> {
    let mut s = conn
        .prepare("SELECT id, title FROM tasks ORDER BY id")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn server_titles(c: &mut postgres::Client) -> Vec<(String, String)> {
    c.query("SELECT id, title FROM tasks ORDER BY id COLLATE \"C\"", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The newest revision of the change log on `c`.
fn head(c: &mut postgres::Client) -> i64 {
    c.query_one("SELECT coalesce(max(rev), 0) FROM sharecache.log", &[])
        .unwrap()
        .get(0)
}

/// The first sync after the address moved may meet its cut connection (offline, as during the
/// outage); the next connects to the new primary.
fn sync_back(cache: &Cache) -> sharecache::SyncReport {
    for _ in 0..3 {
        match cache.sync_now() {
            Ok(r) => return r,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Offline, "{e}"),
        }
    }
    panic!("no sync reached the promoted standby");
}

#[test]
fn a_standby_promoted_without_the_last_commits_gets_every_acknowledged_write_back() {
    if pg::admin_url().is_none() {
        return;
    }
    let primary = {
        let e = ci_postgres(&["start"], None);
        Server {
            url: value(&e, "SHARECACHE_TEST_PG"),
            dir: value(&e, "SHARECACHE_TEST_PG_DIR").into(),
        }
    };
    primary
        .connect()
        .batch_execute(
            "CREATE TABLE tasks (id text PRIMARY KEY, title text NOT NULL);
             INSERT INTO tasks VALUES ('seed', 'from the server');",
        )
        .unwrap();
    let standby = {
        let e = ci_postgres(
            &["standby", primary.dir.to_str().unwrap()],
            Some(&primary.password()),
        );
        Server {
            url: value(&e, "SHARECACHE_STANDBY_PG"),
            dir: value(&e, "SHARECACHE_STANDBY_PG_DIR").into(),
        }
    };
    // The service address the desks use: a proxy in front of whichever server is primary.
    let proxy = Proxy::start(primary.addr());
    let url = primary
        .url
        .replacen(&primary.addr().to_string(), &proxy.addr().to_string(), 1);
    let dir = tempfile::tempdir().unwrap();
    let a = Cache::open(config(&url, dir.path(), "a")).unwrap();
    let b = Cache::open(config(&url, dir.path(), "b")).unwrap();
    a.conn()
        .execute("INSERT INTO tasks VALUES ('t1', 'replicated')", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    // The standby has everything so far; then it stops receiving (a lagging replica).
    let replicated = head(&mut primary.connect());
    let deadline = Instant::now() + Duration::from_secs(30);
    while head(&mut standby.connect()) < replicated {
        assert!(Instant::now() < deadline, "the standby never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    standby.run("halt");
    // Acknowledged by the primary only.
    a.conn()
        .execute("UPDATE tasks SET title = 'edited in a' WHERE id = 't1'", [])
        .unwrap();
    a.conn()
        .execute(
            "INSERT INTO tasks VALUES ('t2', 'only on the old primary')",
            [],
        )
        .unwrap();
    assert_eq!(a.sync_now().unwrap().pushed, 2);
    b.sync_now().unwrap();
    assert_eq!(titles(&b.conn()), titles(&a.conn()), "b pulled them");
    b.conn()
        .execute("DELETE FROM tasks WHERE id = 'seed'", [])
        .unwrap();
    b.sync_now().unwrap();
    let acknowledged = titles(&a.conn());
    // The primary dies: the caches work offline.
    drop(primary);
    b.conn()
        .execute(
            "INSERT INTO tasks VALUES ('t3', 'written during the outage')",
            [],
        )
        .unwrap();
    let err = b.sync_now().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Offline, "{err}");
    // The standby is promoted behind the same address.
    standby.run("resume");
    standby.run("promote");
    proxy.set_upstream(standby.addr());
    let mut server = standby.connect();
    assert!(
        !server_titles(&mut server).contains(&("t2".into(), "only on the old primary".into())),
        "the promoted standby lacks the last commits (the test's premise)"
    );
    let ra = sync_back(&a);
    let rb = sync_back(&b);
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert!(
        ra.reconciled.is_some() && rb.reconciled.is_some(),
        "both found the server gone back in time: {ra:?} {rb:?}"
    );
    let mut expected: Vec<(String, String)> = acknowledged
        .into_iter()
        .filter(|(id, _)| id != "seed")
        .collect();
    expected.push(("t3".into(), "written during the outage".into()));
    expected.sort();
    assert_eq!(
        server_titles(&mut server),
        expected,
        "every acknowledged write is on the new primary, the delete too"
    );
    assert_eq!(titles(&a.conn()), expected);
    assert_eq!(titles(&b.conn()), expected);
    assert_eq!(a.status().unwrap().pending_writes, 0);
    assert_eq!(b.status().unwrap().pending_writes, 0);
}
