//! A remote of either backend, for the behaviour tests that are not about the share itself: the
//! same test runs against a SQLite file on the slow share (`slowfs`) and against a PostgreSQL
//! server (a fresh database on the `ci/postgres` cluster, reached through the TCP proxy so that
//! it can go offline or hang as the share does). [`both_backends!`] makes the two `#[test]`s.
//!
//! What a test needs of "the remote" is here, and the SQL dialect stays here too: where
//! sharecache keeps its conflict log and change log, how a schema is spelt, how values read back
//! (both as text, as [`super::rows`] prints SQLite values). A test's own SQL on the remote is the
//! plain subset both speak (`SELECT … FROM tasks WHERE id = 't1'`).
//!
//! The direct writer is another program writing the remote: a SQLite connection on the share's
//! file, a plain PostgreSQL client on the server (directly, not through the proxy: another
//! program on another network path; the server's capture triggers log its writes).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sharecache::clock::Clock;
use sharecache::{Cache, Config, EnableCache, OpenOptions};

use super::{Share, rows};

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

/// One entry of the remote's conflict log.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub tbl: String,
    pub pk: String,
    pub loser_row: Option<String>,
    pub loser_op: String,
    pub loser_stamp: String,
    pub loser_origin: String,
    pub winner_stamp: String,
    pub winner_origin: String,
    pub reason: String,
}

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
    // Dropped after the proxy: the database goes with every connection to it.
    db: super::pg::PgDb,
    tmp: tempfile::TempDir,
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
            "database:\n  path: '{}'\n  sync_interval: 30\n  enable_cache: true\n  cache_directory: {}\nsync:\n  background: false\n",
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
            Inner::Postgres(s) => {
                s.db.connect()
                    .batch_execute(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }

    /// Every row of a query on the remote, each value as text (`NULL` for null).
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match &self.inner {
            Inner::Share(s) => rows(&s.remote(), sql),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => {
                let messages =
                    s.db.connect()
                        .simple_query(sql)
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                messages
                    .iter()
                    .filter_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(r) => Some(
                            (0..r.len())
                                .map(|i| r.get(i).unwrap_or("NULL").to_string())
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect()
            }
        }
    }

    /// The one value of a query on the remote.
    pub fn one<T: FromStr>(&self, sql: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        let rows = self.rows(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0]
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {:?}: {e:?}", rows[0][0]))
    }

    /// Asserts that a cache holds exactly what the remote holds in every table it syncs
    /// (compared as text, each table's rows sorted).
    pub fn assert_same_content(&self, what: &str, cache: &rusqlite::Connection) {
        if let Inner::Share(s) = &self.inner {
            return crate::reliability::assert_same_content(what, cache, &s.remote());
        }
        let tables = crate::reliability::synced_tables(cache);
        assert!(!tables.is_empty(), "{what}: no synced tables");
        for t in tables {
            let q = sharecache::sql::quote(&t);
            let columns: Vec<String> = rows(
                cache,
                &format!(
                    "SELECT name FROM pragma_table_info({})",
                    sharecache::sql::literal(&t)
                ),
            )
            .into_iter()
            .map(|r| sharecache::sql::quote(&r[0]))
            .collect();
            let sql = format!("SELECT {} FROM {q}", columns.join(", "));
            let (mut c, mut r) = (as_server_prints(cache, &sql), self.rows(&sql));
            c.sort();
            r.sort();
            assert_eq!(c, r, "{what}: table {t} differs from the remote");
        }
    }

    /// The clients the remote knows (their origins), sorted.
    pub fn registered(&self) -> Vec<String> {
        let table = match self.backend {
            Backend::Share => "sharecache_clients",
            Backend::Postgres => "sharecache.clients",
        };
        self.rows(&format!("SELECT origin FROM {table} ORDER BY origin"))
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    }

    /// Every change-log entry of one row, oldest first: `(stamp, origin)`.
    pub fn log_of(&self, tbl: &str, key: &str) -> Vec<(String, String)> {
        let (table, order) = match self.backend {
            Backend::Share => ("sharecache_log", "rev"),
            Backend::Postgres => ("sharecache.log", "id"),
        };
        self.rows(&format!(
            "SELECT stamp, origin FROM {table} WHERE tbl = {} AND pk = {} ORDER BY {order}",
            sharecache::sql::literal(tbl),
            sharecache::sql::literal(key)
        ))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
    }

    /// The remote's conflict log, oldest first.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let table = match self.backend {
            Backend::Share => "sharecache_conflicts",
            Backend::Postgres => "sharecache.conflicts",
        };
        self.rows(&format!(
            "SELECT tbl, pk, loser_row, loser_op, loser_stamp, loser_origin, winner_stamp, \
             winner_origin, reason, loser_row IS NULL FROM {table} ORDER BY id"
        ))
        .into_iter()
        .map(|r| {
            let null = matches!(r[9].as_str(), "1" | "t");
            let mut r = r.into_iter();
            let mut next = || r.next().unwrap();
            Conflict {
                tbl: next(),
                pk: next(),
                loser_row: Some(next()).filter(|_| !null),
                loser_op: next(),
                loser_stamp: next(),
                loser_origin: next(),
                winner_stamp: next(),
                winner_origin: next(),
                reason: next(),
            }
        })
        .collect()
    }

    /// The change log's current version of each row: `(table, key text, stamp, origin,
    /// deleted)`, by table and key.
    pub fn versions(&self) -> Vec<(String, String, String, String, bool)> {
        let sql = match self.backend {
            Backend::Share => {
                "SELECT tbl, pk, stamp, origin, deleted FROM sharecache_log ORDER BY tbl, pk"
            }
            Backend::Postgres => {
                "SELECT DISTINCT ON (tbl, pk) tbl, pk, stamp, origin, deleted::int \
                 FROM sharecache.log ORDER BY tbl, pk, id DESC"
            }
        };
        self.rows(sql)
            .into_iter()
            .map(|r| {
                let mut r = r.into_iter();
                let mut next = || r.next().unwrap();
                (next(), next(), next(), next(), next() == "1")
            })
            .collect()
    }

    /// The change log's head revision (one more for every change logged).
    pub fn head_rev(&self) -> i64 {
        self.one(match self.backend {
            Backend::Share => "SELECT rev FROM sharecache_meta",
            Backend::Postgres => "SELECT sharecache.top()",
        })
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
                s.db.connect()
                    .query_one(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) \
                         FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .unwrap()
                    .get(0),
            ),
        }
    }

    /// The share behind a share remote (for the few share-only assertions of a test).
    pub fn share(&self) -> Option<&Share> {
        match &self.inner {
            Inner::Share(s) => Some(s),
            #[cfg(feature = "postgres")]
            Inner::Postgres(_) => None,
        }
    }

    /// The PostgreSQL database behind a server remote.
    #[cfg(feature = "postgres")]
    pub fn pg(&self) -> Option<&super::pg::PgDb> {
        match &self.inner {
            Inner::Share(_) => None,
            Inner::Postgres(s) => Some(&s.db),
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

/// Every row of a query on a cache, each value as PostgreSQL's text output prints it (a BLOB
/// as `\x` and hex), to compare with a server's rows.
fn as_server_prints(c: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    use rusqlite::types::ValueRef;
    let mut s = c.prepare(sql).unwrap();
    let n = s.column_count();
    s.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    ValueRef::Null => "NULL".to_string(),
                    ValueRef::Integer(v) => v.to_string(),
                    ValueRef::Real(v) => v.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => {
                        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                        format!("\\x{hex}")
                    }
                })
            })
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
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

/// Polls for `limit` until the remote answers `sql` with `want` (for background syncs).
pub fn eventually_remote(remote: &Remote, limit: Duration, sql: &str, want: &str) -> bool {
    super::eventually(limit, || {
        remote.rows(sql).first().map(|r| r[0].as_str()) == Some(want)
    })
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
