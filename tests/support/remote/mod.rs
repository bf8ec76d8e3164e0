//! A remote of either backend, for the behaviour tests that are not about the share itself: the
//! same test runs against a SQLite file on the slow share (`slowfs`) and against a PostgreSQL
//! server (a fresh database on the `ci/postgres` cluster, reached through the TCP proxy so that
//! it can go offline or hang as the share does). [`both_backends!`] makes the two `#[test]`s.
//!
//! What a test needs of "the remote" is here (reading it in `reads`), and the SQL dialect stays
//! here too: where sharecache keeps its conflict log and change log, how a schema is spelt, how
//! values read back (both as text, as [`super::rows`] prints SQLite values). A test's own SQL on
//! the remote is the plain subset both speak (`SELECT … FROM tasks WHERE id = 't1'`).
//!
//! The direct writer is another program writing the remote: a SQLite connection on the share's
//! file, a plain PostgreSQL client on the server (directly, not through the proxy: another
//! program on another network path; the server's capture triggers log its writes).

use std::path::{Path, PathBuf};

use sharecache::clock::Clock;
use sharecache::{Cache, Config, EnableCache, OpenOptions};

use super::Share;

mod activity;
mod places;
mod reads;

pub use activity::wait_for;

/// Which remote a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file on the slow share.
    Share,
    /// A PostgreSQL server, through the proxy.
    Postgres,
}

/// A schema in both dialects: the tests' tables, as an app would create them on each backend.
pub struct Schema {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// The standard schema ([`super::SCHEMA`]) and its PostgreSQL twin: the same tables, keys and
/// seed rows (`done` stays an integer, so both backends read back `0`/`1`; the value mapping of
/// other types is `pg_types`' subject).
pub const STANDARD: Schema = Schema {
    sqlite: super::SCHEMA,
    postgres: "
    CREATE TABLE tasks (id text PRIMARY KEY, title text NOT NULL, done integer NOT NULL DEFAULT 0, updated_at text);
    CREATE TABLE notes (id bigint PRIMARY KEY, body text);
    CREATE TABLE tags (task_id text, tag text, weight double precision, PRIMARY KEY (task_id, tag));
    CREATE TABLE audit_log (at text, message text);
    INSERT INTO tasks (id, title, updated_at) VALUES ('t1', 'first', '2026-01-01T00:00:00.000Z'), ('t2', 'second', '2026-01-01T00:00:00.000Z');
    INSERT INTO notes (id, body) VALUES (1, 'note one');
    INSERT INTO audit_log VALUES ('2026-01-01', 'created');
",
};

/// A remote of either backend, with room for client caches.
pub struct Remote {
    backend: Backend,
    inner: Inner,
}

enum Inner {
    Share(Share),
    #[cfg(feature = "postgres")]
    Postgres(Server),
}

#[cfg(feature = "postgres")]
struct Server {
    proxy: super::proxy::Proxy,
    /// The test's own session (see [`Server::session`]).
    own: std::sync::Mutex<Option<Box<postgres::Client>>>,
    /// The proxy's counters when the test last reset them (`activity`).
    base_round_trips: std::sync::atomic::AtomicU64,
    base_bytes_down: std::sync::atomic::AtomicU64,
    /// Copies of the database (`places`), dropped with it.
    copies: std::sync::Mutex<Vec<super::pg::PgDb>>,
    // Dropped after the proxy and the session: the database goes with every connection to it.
    db: super::pg::PgDb,
    tmp: tempfile::TempDir,
}

#[cfg(feature = "postgres")]
impl Server {
    /// The test's own session on the server, straight to it (not through the proxy): the other
    /// program that writes the remote, and the eyes that read it. Kept from call to call (a
    /// connection costs tens of milliseconds in a debug build), connected again once closed.
    fn session<T>(&self, f: impl FnOnce(&mut postgres::Client) -> T) -> T {
        let mut own = self.own.lock().unwrap_or_else(|e| e.into_inner());
        if own.as_ref().is_none_or(|c| c.is_closed()) {
            *own = Some(Box::new(self.db.connect()));
        }
        f(own.as_mut().expect("connected above"))
    }
}

impl Remote {
    /// A remote with the standard schema.
    pub fn new(backend: Backend) -> Remote {
        Remote::with_schema(backend, &STANDARD)
    }

    /// A remote holding `schema` (in its backend's dialect).
    pub fn with_schema(backend: Backend, schema: &Schema) -> Remote {
        Remote::with_sql(backend, schema.sqlite, schema.postgres)
    }

    /// A remote made by `sqlite` on a share, or by `postgres` on a server (for schemas built at
    /// run time).
    pub fn with_sql(backend: Backend, sqlite: &str, postgres: &str) -> Remote {
        let inner = match backend {
            Backend::Share => Inner::Share(Share::with_schema(sqlite)),
            Backend::Postgres => postgres_server(postgres),
        };
        Remote { backend, inner }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where this remote's test files (caches, config files) live.
    pub fn tmp(&self) -> &Path {
        match &self.inner {
            Inner::Share(s) => s.tmp.path(),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => s.tmp.path(),
        }
    }

    /// What `database.path` says: the share's file, or the server's URL (through the proxy).
    pub fn database_path(&self) -> String {
        match &self.inner {
            Inner::Share(s) => s.remote_path().display().to_string(),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => s.db.url_via(s.proxy.addr()),
        }
    }

    /// A config for client `name`, with its own cache directory.
    pub fn config(&self, name: &str) -> Config {
        match &self.inner {
            Inner::Share(s) => s.config(name),
            #[cfg(feature = "postgres")]
            Inner::Postgres(_) => {
                let mut c = Config::for_remote(self.database_path());
                c.cache_directory = self.tmp().join(format!("cache-{name}"));
                c.enable_cache = EnableCache::On;
                // The cache waits for another program as long as the share's clients do.
                c.busy_timeout = std::time::Duration::from_secs(3);
                c.background = false; // tests that want the sync thread turn it on
                c
            }
        }
    }

    /// Opens client `name`.
    pub fn client(&self, name: &str) -> Cache {
        Cache::open(self.config(name)).unwrap()
    }

    /// Opens client `name` whose clock is off by `offset`.
    pub fn client_with_clock(&self, name: &str, offset: chrono::Duration) -> Cache {
        Cache::open_with(
            self.config(name),
            OpenOptions::default().clock(Clock::with_offset(offset)),
        )
        .unwrap()
    }

    /// Writes a config file for client `name` and returns its path (for CLI tests).
    pub fn config_file(&self, name: &str) -> PathBuf {
        if let Inner::Share(s) = &self.inner {
            return s.config_file(name);
        }
        let path = self.tmp().join(format!("{name}.yaml"));
        let text = format!(
            "database:\n  path: '{}'\n  sync_interval: 30\n  enable_cache: true\n  cache_directory: {}\nsync:\n  busy_timeout_ms: 3000\n  background: false\n",
            self.database_path(),
            self.tmp().join(format!("cache-{name}")).display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Another program writes the remote: `sql` (one or more statements) in one go.
    pub fn exec(&self, sql: &str) {
        match &self.inner {
            Inner::Share(s) => s
                .remote()
                .execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => s
                .session(|c| c.batch_execute(sql))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The remote becomes unreachable (every operation fails; a server's connections are cut
    /// and new ones refused), or reachable again.
    pub fn set_offline(&self, offline: bool) {
        match &self.inner {
            Inner::Share(s) => s.control.set_offline(offline),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => s.proxy.set_offline(offline),
        }
    }

    /// The remote stops answering without failing (a hung share, a hung link), or answers again.
    pub fn set_hung(&self, hung: bool) {
        match &self.inner {
            Inner::Share(s) => s.control.set_hang(hung),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => s.proxy.set_hung(hung),
        }
    }

    /// Another program writes the remote through the backend's own command-line client, as a
    /// person at a terminal would, by a path of its own that the clients' outages do not cut:
    /// the `sqlite3` shell on the file server's own disk (the share's backing directory), `psql`
    /// straight to the server (not through the proxy). One session per call; `sql` runs whole
    /// or fails the test.
    pub fn command_line(&self, sql: &str) {
        let mut cmd = match &self.inner {
            Inner::Share(s) => {
                let mut c = std::process::Command::new("sqlite3");
                c.args(["-bail", "-cmd", ".timeout 5000"])
                    .arg(s.backing().join("app.db"))
                    .arg(sql);
                c
            }
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => {
                let mut c = std::process::Command::new(psql());
                c.args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    &s.db.url,
                    "-c",
                    sql,
                ]);
                c
            }
        };
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server restarts, as its clients see it: every session of the database is terminated
    /// (a real `pg_ctl restart` would cut the other tests sharing the cluster too). Returns how
    /// many were; `None` for a share: there is no server to restart.
    pub fn restart_server(&self) -> Option<i64> {
        match &self.inner {
            Inner::Share(_) => None,
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => Some(
                s.session(|c| {
                    c.query_one(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) \
                         FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                        &[],
                    )
                })
                .unwrap()
                .get(0),
            ),
        }
    }
}

#[cfg(feature = "postgres")]
fn postgres_server(schema: &str) -> Inner {
    // The test's name (its thread's), for a recognisable database name.
    let thread = std::thread::current();
    let test = thread
        .name()
        .unwrap_or("suite")
        .rsplit("::")
        .next()
        .unwrap();
    let db = super::pg::database(test).expect("PostgreSQL tests start only when it is configured");
    db.connect()
        .batch_execute(schema)
        .unwrap_or_else(|e| panic!("creating the schema on the server: {e}"));
    let proxy = super::proxy::Proxy::start(db.server_addr());
    Inner::Postgres(Server {
        proxy,
        own: std::sync::Mutex::new(None),
        base_round_trips: Default::default(),
        base_bytes_down: Default::default(),
        copies: Default::default(),
        db,
        tmp: tempfile::tempdir().unwrap(),
    })
}

/// The `psql` binary: on the PATH, or where Debian's postgresql-client puts it (the server's
/// package depends on it, so a machine that runs the test cluster has it).
#[cfg(feature = "postgres")]
fn psql() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("psql"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.path().join("bin/psql")))
                .collect()
        })
        .unwrap_or_default();
    debian.sort();
    on_path
        .into_iter()
        .chain(debian.into_iter().rev())
        .find(|p| p.is_file())
        .expect("psql (Debian's postgresql-client, installed with the server by ci/postgres)")
}

#[cfg(not(feature = "postgres"))]
fn postgres_server(_: &str) -> Inner {
    unreachable!("the postgres feature is off: no PostgreSQL test runs")
}

/// Whether this backend's tests can run here: the share always; PostgreSQL when a cluster is
/// configured (`SHARECACHE_TEST_PG`: outside CI a missing one skips with a message, under
/// `CI=true` it fails).
pub fn available(backend: Backend) -> bool {
    match backend {
        Backend::Share => true,
        #[cfg(feature = "postgres")]
        Backend::Postgres => super::pg::available(),
        #[cfg(not(feature = "postgres"))]
        Backend::Postgres => false,
    }
}

/// Makes `name` a test against each backend: `mod share { fn name() }` and `mod postgres { fn
/// name() }`, each calling `name(Backend::…)`. The functions take the backend and make their
/// remote with [`Remote::new`]; a function not listed is dead code (a warning CI refuses).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        /// Against a SQLite file on the slow share.
        mod share {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::support::remote::Backend::Share);
                }
            )*
        }
        /// Against a PostgreSQL server, through the proxy.
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[test]
                fn $name() {
                    use $crate::support::remote::{Backend, available};
                    if available(Backend::Postgres) {
                        super::$name(Backend::Postgres);
                    }
                }
            )*
        }
    };
}
