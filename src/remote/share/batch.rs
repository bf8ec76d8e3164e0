//! [`BatchWriter`] on the share: the operations of one push or reconcile, inside the remote's
//! `BEGIN IMMEDIATE` transaction under the write lease ([`Share::write`](super::Share)).

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, params};

use super::changelog;
use crate::remote::image;
use crate::remote::store::{BatchWriter, Keys, Refused};
use crate::remote::{ClientEntry, Found, LoggedConflict, Pruned, RemoteError, Version};
use crate::sql::rows::Shape;

/// The share's batch writer: the write transaction's connection. The write lease and
/// `BEGIN IMMEDIATE` serialise writers, so an entry is numbered as it is appended.
pub(super) struct Writer<'a> {
    pub c: &'a Connection,
    pub path: &'a Path,
    /// `(before, last)`: the log's revision when the first entry was appended, and the last
    /// revision taken since.
    pub revs: Option<(i64, i64)>,
    /// [`BatchWriter::write_id`].
    write_id: i64,
}

impl<'a> Writer<'a> {
    pub fn new(c: &'a Connection, path: &'a Path) -> Writer<'a> {
        Writer {
            c,
            path,
            revs: None,
            write_id: rand::random(),
        }
    }

    fn err(&self, e: rusqlite::Error) -> RemoteError {
        RemoteError::from_sqlite(self.path, e)
    }

    fn rev(&self) -> Result<i64, RemoteError> {
        self.c
            .prepare_cached("SELECT rev FROM sharecache_meta WHERE id = 1")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }
}

impl BatchWriter for Writer<'_> {
    fn pruned(&mut self) -> Result<Pruned, RemoteError> {
        changelog::pruned(self.c).map_err(|e| self.err(e))
    }

    fn newest_versions(
        &mut self,
        after: i64,
        upto: Option<i64>,
        keys: &Keys,
        found: &mut HashMap<(String, String), Found>,
    ) -> Result<(), RemoteError> {
        changelog::newest_in(self.c, after, upto, keys, found).map_err(|e| self.err(e))
    }

    fn select(&mut self, shape: &Shape, key: &[Value]) -> Result<Option<Vec<Value>>, RemoteError> {
        shape.select(self.c, key).map_err(|e| self.err(e))
    }

    fn write_row(
        &mut self,
        shape: &Shape,
        key: &[Value],
        row: Option<&[Value]>,
    ) -> Result<Result<(), Refused>, RemoteError> {
        let written = match row {
            Some(row) => shape.upsert(self.c, row),
            None => shape.delete(self.c, key),
        };
        match written {
            Ok(()) => Ok(Ok(())),
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                Ok(Err(Refused(e.to_string())))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    fn write_id(&self) -> i64 {
        self.write_id
    }

    fn append(
        &mut self,
        v: &Version,
        row: Option<(&[String], &[Value])>,
    ) -> Result<(), RemoteError> {
        let (before, last) = match self.revs {
            Some(revs) => revs,
            None => {
                let rev = self.rev()?;
                (rev, rev)
            }
        };
        let image = row.map(|(columns, values)| image::encode(columns, values));
        let v = Version {
            rev: last + 1,
            write_id: Some(self.write_id),
            ..v.clone()
        };
        changelog::append(self.c, &v, image.as_deref()).map_err(|e| self.err(e))?;
        self.revs = Some((before, last + 1));
        Ok(())
    }

    fn skip_to(&mut self, rev: i64) -> Result<(), RemoteError> {
        self.c
            .prepare_cached("UPDATE sharecache_meta SET rev = max(rev, ?1) WHERE id = 1")
            .and_then(|mut s| s.execute([rev]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn finish(&mut self, newest_stamp: &str) -> Result<(i64, i64), RemoteError> {
        let revs = match self.revs {
            Some(revs) => revs,
            None => {
                let rev = self.rev()?;
                (rev, rev)
            }
        };
        changelog::advance(self.c, revs.1, newest_stamp).map_err(|e| self.err(e))?;
        Ok(revs)
    }

    fn log_conflict(&mut self, x: &LoggedConflict) -> Result<(), RemoteError> {
        self.c
            .prepare_cached(
                "INSERT INTO sharecache_conflicts (tbl, pk, winner_stamp, winner_origin, loser_stamp, \
                 loser_origin, loser_op, loser_row, decided_at, decided_by, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    x.tbl,
                    x.pk,
                    x.winner_stamp,
                    x.winner_origin,
                    x.loser_stamp,
                    x.loser_origin,
                    x.loser_op,
                    x.loser_row,
                    x.decided_at,
                    x.decided_by,
                    x.reason
                ])
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn conflicts_after(&mut self, after: i64) -> Result<Vec<LoggedConflict>, RemoteError> {
        super::reads::conflicts_after(self.c, after).map_err(|e| self.err(e))
    }

    fn register(&mut self, client: &ClientEntry) -> Result<(), RemoteError> {
        register(self.c, client).map_err(|e| self.err(e))
    }
}

/// Records a client's horizon in `sharecache_clients` (it may go down: a change made locally
/// since lowers it).
pub(super) fn register(c: &Connection, client: &ClientEntry) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO sharecache_clients (origin, pulled_rev, last_seen, host) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (origin) DO UPDATE SET pulled_rev = excluded.pulled_rev, \
         last_seen = excluded.last_seen, host = excluded.host",
    )?
    .execute(params![
        client.origin,
        client.pulled_rev,
        client.last_seen,
        client.host
    ])?;
    Ok(())
}
