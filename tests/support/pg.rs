//! A fresh PostgreSQL database per test, on the cluster `ci/postgres start` runs (its URL in
//! `SHARECACHE_TEST_PG`). Each test gets its own database so tests run in parallel without seeing
//! each other's tables, triggers or `sharecache` schema; it is dropped when the test ends.
//!
//! Without the variable a test cannot run: under `CI=true` that is a failure (CI must not pass by
//! skipping), elsewhere the test prints why it skipped and returns.

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable holding the admin URL of the test cluster.
pub const ENV: &str = "SHARECACHE_TEST_PG";

/// One test's database; dropped (with any connections to it) when this goes out of scope.
pub struct PgDb {
    admin: String,
    /// The database's name (unique per test run).
    pub name: String,
    /// A `postgres://` URL for it, password included.
    pub url: String,
}

/// A fresh database for the test `test`, or `None` (after printing why) when no cluster is
/// configured outside CI. Use as `let Some(db) = pg::database("x") else { return };`.
pub fn database(test: &str) -> Option<PgDb> {
    let admin = admin_url()?;
    static N: AtomicU32 = AtomicU32::new(0);
    let clean: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let name = format!(
        "sc_{clean}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut client = postgres::Client::connect(&admin, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to {ENV} (is `ci/postgres start` running?): {e}"));
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let url = with_database(&admin, &name);
    Some(PgDb { admin, name, url })
}

impl PgDb {
    /// A copy of this database (`CREATE DATABASE … TEMPLATE`: tables, sharecache's schema and
    /// identity, everything), named for `test`. Its sessions are ended first: a template must
    /// have none.
    pub fn copy(&self, test: &str) -> PgDb {
        let copy = database(test).expect("a cluster: this database is on one");
        let mut admin = postgres::Client::connect(&self.admin, postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE \"{}\"", copy.name))
            .unwrap();
        for _ in 0..50 {
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    &[&self.name],
                )
                .unwrap();
            match admin.batch_execute(&format!(
                "CREATE DATABASE \"{}\" TEMPLATE \"{}\"",
                copy.name, self.name
            )) {
                Ok(()) => return copy,
                // A session that connected meanwhile (a client's, reconnecting).
                Err(e) if e.to_string().contains("being accessed by other users") => {
                    std::thread::sleep(std::time::Duration::from_millis(100))
                }
                Err(e) => panic!("copying {}: {e}", self.name),
            }
        }
        panic!("{} kept being accessed: no copy", self.name)
    }

    /// Drops this database now (its sessions cut), as if it had been moved away.
    pub fn drop_now(&self) {
        postgres::Client::connect(&self.admin, postgres::NoTls)
            .unwrap()
            .batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name))
            .unwrap_or_else(|e| panic!("dropping {}: {e}", self.name));
    }

    /// A new connection to this database.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to test database {}: {e}", self.name))
    }

    /// A connection through sharecache's own connect (its session settings), from this
    /// database's URL read as `database.path`.
    pub fn store(&self) -> postgres::Client {
        sharecache::remote::postgres::connect(&self.target()).expect("connecting the store")
    }

    /// This database as a config's PostgreSQL target.
    pub fn target(&self) -> sharecache::config::PgTarget {
        let yaml = format!("database:\n  path: '{}'\n", self.url);
        let config = sharecache::Config::from_yaml_str(&yaml, "t.yaml".as_ref(), "/".as_ref())
            .expect("the test URL reads as a config");
        config.postgres.expect("a postgres target")
    }

    /// The server's loopback address (the cluster `ci/postgres` starts listens on 127.0.0.1).
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let rest = self.url.split_once('@').unwrap().1;
        rest[..rest.find('/').unwrap()]
            .parse()
            .expect("a host:port address in the test URL")
    }

    /// This database's URL with another host and port (e.g. a proxy's).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap();
        let (auth, path) = rest.split_once('@').unwrap();
        let after_host = &path[path.find('/').unwrap()..];
        format!("{scheme}://{auth}@{addr}{after_host}")
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let dropped = postgres::Client::connect(&self.admin, postgres::NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
        });
        if let Err(e) = dropped {
            eprintln!("note: could not drop test database {}: {e}", self.name);
        }
    }
}

/// Whether a cluster is configured: `false` after printing why the test skips; panics under
/// `CI=true`.
pub fn available() -> bool {
    admin_url().is_some()
}

/// The cluster's admin URL, or `None` after printing why the test skips; panics under `CI=true`.
pub fn admin_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "{ENV} is not set under CI=true: .ci/run must start a cluster with `ci/postgres start`"
            )
        }
        _ => {
            eprintln!(
                "SKIPPED: {ENV} is not set; run `eval \"$(ci/postgres start)\"` to run the PostgreSQL tests"
            );
            None
        }
    }
}

/// `url` with its database (the path) replaced by `name`, query string kept.
fn with_database(url: &str, name: &str) -> String {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let (head, tail) = url.split_at(start);
    let path_at = tail.find('/').unwrap_or(tail.len());
    let query = tail[path_at..]
        .find('?')
        .map(|q| &tail[path_at + q..])
        .unwrap_or("");
    format!("{head}{}/{name}{query}", &tail[..path_at])
}

#[test]
fn pg_support_replaces_the_database_and_keeps_the_query() {
    assert_eq!(
        with_database("postgres://u:p@h:5/postgres", "x"),
        "postgres://u:p@h:5/x"
    );
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "y"),
        "postgres://u@h/y?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:1", "z"), "postgres://h:1/z");
}

#[test]
fn pg_support_gives_each_test_its_own_database_and_drops_it() {
    let Some(db) = database("own database") else {
        return;
    };
    let mut c = db.connect();
    c.batch_execute("CREATE TABLE t (id int)").unwrap();
    let name = db.name.clone();
    let admin = db.admin.clone();
    let other = database("own database").unwrap();
    assert_ne!(other.name, name);
    assert!(
        other
            .connect()
            .query_opt("SELECT 1 FROM pg_tables WHERE tablename = 't'", &[])
            .unwrap()
            .is_none()
    );
    drop(c);
    drop(db);
    let mut a = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    let left = a
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .unwrap();
    assert!(left.is_none(), "test database {name} survived its PgDb");
}

#[test]
fn pg_support_reaches_the_server_through_the_proxy_and_loses_it_offline() {
    use std::time::{Duration, Instant};
    let Some(db) = database("via proxy") else {
        return;
    };
    let proxy = super::proxy::Proxy::start(db.server_addr());
    let url = db.url_via(proxy.addr());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    proxy.set_latency(Duration::from_millis(20), Duration::from_millis(20));
    let t = Instant::now();
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    assert!(
        t.elapsed() >= Duration::from_millis(40),
        "{:?}",
        t.elapsed()
    );
    proxy.set_offline(true);
    let t = Instant::now();
    assert!(
        c.query_one("SELECT 1", &[]).is_err(),
        "a query worked through an offline proxy"
    );
    assert!(postgres::Client::connect(&url, postgres::NoTls).is_err());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "offline must fail fast: {:?}",
        t.elapsed()
    );
    proxy.set_offline(false);
    let mut again = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert_eq!(
        again.query_one("SELECT 2", &[]).unwrap().get::<_, i32>(0),
        2
    );
}
