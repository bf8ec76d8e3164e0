//! Reading a remote of either backend as a test checks it: rows as text, the conflict log, the
//! change log, registrations, and a cache compared with the remote. Where sharecache keeps its
//! own tables differs (`sharecache_conflicts` in the share's file, `sharecache.conflicts` on a
//! server); the answers do not.

use std::str::FromStr;

use super::{Backend, Inner, Remote};
use crate::support::rows;

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

impl Remote {
    /// Every row of a query on the remote, each value as text (`NULL` for null).
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match &self.inner {
            Inner::Share(s) => rows(&s.remote(), sql),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => s.session(|c| server_rows(c, sql)),
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
        self.assert_same_content_at(&self.database_path(), what, cache);
    }

    /// [`Remote::assert_same_content`] for the database at `path` (see `places`).
    pub fn assert_same_content_at(&self, path: &str, what: &str, cache: &rusqlite::Connection) {
        if self.backend == Backend::Share {
            let remote = super::places::open_file(path);
            return crate::reliability::assert_same_content(what, cache, &remote);
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
            let (mut c, mut r) = (as_server_prints(cache, &sql), self.rows_at(path, &sql));
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

    /// How many of the change log's entries of one row are deletions (tombstones).
    pub fn tombstones_of(&self, tbl: &str, key: &str) -> i64 {
        let (table, deleted) = match self.backend {
            Backend::Share => ("sharecache_log", "deleted = 1"),
            Backend::Postgres => ("sharecache.log", "deleted"),
        };
        self.one(&format!(
            "SELECT count(*) FROM {table} WHERE tbl = {} AND pk = {} AND {deleted}",
            sharecache::sql::literal(tbl),
            sharecache::sql::literal(key)
        ))
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
}

/// Every row of a query on a server, each value as text (`NULL` for null).
#[cfg(feature = "postgres")]
pub(super) fn server_rows(c: &mut postgres::Client, sql: &str) -> Vec<Vec<String>> {
    c.simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
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

/// Every row of a query on a cache, each value as PostgreSQL's text output prints it (a BLOB
/// as `\x` and hex), to compare with a server's rows.
fn as_server_prints(c: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    crate::support::rows_with(c, sql, |b| {
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("\\x{hex}")
    })
}
