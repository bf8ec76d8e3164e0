//! [`BatchWriter`] on PostgreSQL: one push (or reconcile, or conflict put-back) in one READ
//! COMMITTED transaction, in as few round trips as the decisions allow: a push is four — BEGIN;
//! its locks and versions ([`super::versions`]); its row writes, log entries, conflict records
//! and registry entry with the numbering (`sharecache.finish`), one statement; COMMIT — whatever
//! its size and number of tables (a conflict it applies reads the row it replaces: one more
//! each).
//!
//! - **Per-row serialisation, no global lock for the batch.** The first look at the batch's
//!   versions locks its existing rows (`FOR UPDATE`, in key order); only then is the log read
//!   (`sharecache.versions` runs after the locks, in snapshots of its own): a concurrent push
//!   or direct write of the same row has committed, and is seen, or waits for this one. A row
//!   that does not exist yet cannot be locked: if another writer created it meanwhile,
//!   `sharecache.finish` finds an entry of its key that the read did not return and fails the
//!   write as a serialisation failure, and it is run again (no advisory locks: thousands per
//!   batch, or per bulk UPDATE of a direct writer, would exhaust the server's shared lock
//!   table). Entries committed but not yet numbered are the newest of all (revision
//!   `i64::MAX` here).
//! - **Revisions at the end.** Appends and conflict records are kept here and written by one
//!   call of `sharecache.finish`, which numbers them under the meta row's lock, held until the
//!   COMMIT that follows (one round trip): revisions become visible in order.
//! - **Rows in the same statement.** Row writes are kept too and written before anything reads
//!   the tables again (a select, the finish): one part per run of one table and kind, chained so
//!   that each waits for the one before (pending order), in the statement that calls
//!   `sharecache.finish` after them. When the server refuses a row of that statement (a constraint, a
//!   value its column cannot take: [`PgError::is_refusal`]), the write is run again from the start
//!   in careful mode, each row under its own savepoint, so the refused row is known ([`Refused`])
//!   and the rest go through.

use std::collections::HashMap;

use postgres::Transaction;
use postgres::types::Type;
use rusqlite::types::Value;

use super::PgError;
use super::rows::{Params, delete_sql, upsert_sql};
use super::types::{self, Column};
use super::versions::{Locks, Read};
use crate::remote::image;
use crate::remote::store::{BatchWriter, Keys, Refused};
use crate::remote::{ClientEntry, Found, LoggedConflict, Pruned, RemoteError, Version};
use crate::sql::decode_key;
use crate::sql::rows::Shape;

/// The revision given to a committed entry not yet numbered: after every numbered one.
pub const UNNUMBERED: i64 = i64::MAX;

/// A row write kept for the next flush.
struct Pending {
    table: String,
    /// Values in the shape's column order, or `None`: delete.
    row: Option<Vec<Value>>,
    columns: Vec<String>,
    key: Vec<Value>,
}

/// One write's state (see the module docs).
pub(super) struct Writer<'t, 'c> {
    pub tx: &'t mut Transaction<'c>,
    pub schema: &'t str,
    pub location: String,
    /// Careful mode: each row under a savepoint.
    pub careful: bool,
    /// Set when a constraint refused a flush in fast mode: the caller runs the write again,
    /// carefully.
    pub refused_flush: bool,
    /// The server's columns of the tables this write touched (taken from and given back to the
    /// connection's cache, [`super::server::Postgres`]).
    pub described: HashMap<String, Vec<Column>>,
    /// The first version read: the locks were taken with it.
    read: Option<Read>,
    pending: Vec<Pending>,
    entries: Vec<(Version, Option<Vec<u8>>)>,
    conflicts: Vec<LoggedConflict>,
    /// A registry entry to write with the finish (or at the end).
    client_entry: Option<ClientEntry>,
    pub finished: bool,
    /// [`BatchWriter::write_id`], logged on each entry by `sharecache.finish`.
    write_id: i64,
}

impl<'t, 'c> Writer<'t, 'c> {
    pub fn new(
        tx: &'t mut Transaction<'c>,
        schema: &'t str,
        location: String,
        careful: bool,
        described: HashMap<String, Vec<Column>>,
    ) -> Self {
        Writer {
            tx,
            schema,
            location,
            careful,
            refused_flush: false,
            described,
            read: None,
            pending: Vec::new(),
            entries: Vec::new(),
            conflicts: Vec::new(),
            client_entry: None,
            finished: false,
            write_id: rand::random(),
        }
    }

    fn err(&self, e: impl Into<PgError>) -> RemoteError {
        e.into().into_remote(&self.location)
    }

    /// The server's columns of `table` (read once per schema version).
    fn all_columns(&mut self, table: &str) -> Result<&[Column], RemoteError> {
        if !self.described.contains_key(table) {
            let cols = types::describe(self.tx, self.schema, table).map_err(|e| self.err(e))?;
            self.described.insert(table.to_owned(), cols);
        }
        Ok(&self.described[table])
    }

    /// The server's columns of `table`, in `names`' order (each must exist there), key columns
    /// flagged as the server has them.
    fn columns(&mut self, table: &str, names: &[String]) -> Result<Vec<Column>, RemoteError> {
        let all = self.all_columns(table)?.to_vec();
        names
            .iter()
            .map(|n| {
                all.iter().find(|c| &c.name == n).cloned().ok_or_else(|| {
                    self.err(PgError::Unsupported(format!(
                        "{table}.{n} is not a column on the server (its schema changed): the next \
                         sync follows it"
                    )))
                })
            })
            .collect()
    }

    /// The server's key columns of `table`, in key order.
    fn key_columns(&mut self, table: &str) -> Result<Vec<Column>, RemoteError> {
        Ok(self
            .all_columns(table)?
            .iter()
            .filter(|c| c.key)
            .cloned()
            .collect())
    }

    /// The kept row writes as the parts of one statement (`w0 AS (…), w1 AS (…)`: runs of one
    /// table and kind, each after the one before), their parameters added to `params`.
    fn row_writes(&mut self, params: &mut Params) -> Result<Vec<String>, RemoteError> {
        let pending = std::mem::take(&mut self.pending);
        let mut parts = Vec::new();
        let mut i = 0;
        while i < pending.len() {
            let first = &pending[i];
            let run = pending[i..]
                .iter()
                .take_while(|p| {
                    p.table == first.table
                        && p.row.is_some() == first.row.is_some()
                        && p.columns == first.columns
                })
                .count();
            let slice = &pending[i..i + run];
            let after = (!parts.is_empty())
                .then(|| format!("(SELECT count(*) FROM w{}) >= 0", parts.len() - 1));
            let sql = if first.row.is_some() {
                let cols = self.columns(&first.table, &first.columns)?;
                let rows: Vec<Vec<Value>> = slice.iter().filter_map(|p| p.row.clone()).collect();
                upsert_sql(
                    params,
                    self.schema,
                    &first.table,
                    &cols,
                    &rows,
                    after.as_deref(),
                )
            } else {
                let cols = self.key_columns(&first.table)?;
                let keys: Vec<Vec<Value>> = slice.iter().map(|p| p.key.clone()).collect();
                delete_sql(
                    params,
                    self.schema,
                    &first.table,
                    &cols,
                    &keys,
                    after.as_deref(),
                )
            }
            .map_err(|e| {
                // A value the column cannot take, refused before sending.
                if e.is_refusal() {
                    self.refused_flush = true;
                }
                self.err(e)
            })?;
            parts.push(format!("w{} AS ({sql} RETURNING 1)", parts.len()));
            i += run;
        }
        Ok(parts)
    }

    /// Runs `WITH <parts> <main>` (one statement, one row). A constraint refusal sets
    /// `refused_flush`.
    fn run(
        &mut self,
        parts: &[String],
        main: &str,
        params: &Params,
    ) -> Result<postgres::Row, RemoteError> {
        let sql = if parts.is_empty() {
            main.to_owned()
        } else {
            format!("WITH {} {main}", parts.join(", "))
        };
        self.tx.query_typed_one(&sql, &params.typed()).map_err(|e| {
            let e = PgError::from(e);
            if e.is_refusal() {
                self.refused_flush = true;
            }
            self.err(e)
        })
    }

    /// Writes the kept row writes now (one statement).
    fn flush(&mut self) -> Result<(), RemoteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut params = Params::default();
        let parts = self.row_writes(&mut params)?;
        let main = format!("SELECT count(*) FROM w{}", parts.len() - 1);
        self.run(&parts, &main, &params).map(|_| ())
    }

    /// The first version read: locks the rows of `keys` and reads their versions above `after`.
    fn first_read(&mut self, after: i64, keys: &Keys) -> Result<Read, RemoteError> {
        let mut by_table: HashMap<&str, Vec<&str>> = HashMap::new();
        for (tbl, pk) in keys.keys() {
            by_table.entry(tbl).or_default().push(pk);
        }
        let mut tables: Vec<&str> = by_table.keys().copied().collect();
        tables.sort_unstable();
        let mut locks = Vec::new();
        for table in tables {
            let key_columns = self.key_columns(table)?;
            let mut decoded = Vec::new();
            for pk_text in &by_table[table] {
                decoded.push(decode_key(pk_text).map_err(|m| {
                    self.err(PgError::Value {
                        column: table.to_owned(),
                        message: m,
                    })
                })?);
            }
            locks.push(Locks {
                table,
                key_columns,
                keys: decoded,
            });
        }
        Read::run(self.tx, self.schema, keys, after, &locks).map_err(|e| self.err(e))
    }
}

impl BatchWriter for Writer<'_, '_> {
    fn pruned(&mut self) -> Result<Pruned, RemoteError> {
        if let Some(read) = &self.read {
            return Ok(read.pruned.clone());
        }
        let r = self
            .tx
            .query_typed_one(
                "SELECT pruned_rev, pruned_hlc FROM sharecache.meta WHERE id = 1",
                &[],
            )
            .map_err(|e| self.err(e))?;
        Ok(Pruned {
            rev: r.get(0),
            stamp: r.get(1),
        })
    }

    fn newest_versions(
        &mut self,
        after: i64,
        upto: Option<i64>,
        keys: &Keys,
        found: &mut HashMap<(String, String), Found>,
    ) -> Result<(), RemoteError> {
        if keys.is_empty() {
            return Ok(());
        }
        if self.read.is_none() {
            self.read = Some(self.first_read(after, keys)?);
        }
        match &self.read {
            Some(read) if read.covers(after, keys) => {
                read.answer(after, upto, keys, found);
                Ok(())
            }
            _ => {
                super::reads::newest_in(self.tx, after, upto, keys, found).map_err(|e| self.err(e))
            }
        }
    }

    fn select(&mut self, shape: &Shape, key: &[Value]) -> Result<Option<Vec<Value>>, RemoteError> {
        self.flush()?;
        let cols = self.columns(&shape.table, &shape.columns)?;
        let keys = self.columns(&shape.table, &shape.pk)?;
        super::reads::select_row(self.tx, self.schema, &shape.table, &cols, &keys, key)
            .map_err(|e| self.err(e))
    }

    fn write_row(
        &mut self,
        shape: &Shape,
        key: &[Value],
        row: Option<&[Value]>,
    ) -> Result<Result<(), Refused>, RemoteError> {
        let pending = Pending {
            table: shape.table.clone(),
            row: row.map(<[Value]>::to_vec),
            columns: shape.columns.clone(),
            key: key.to_vec(),
        };
        if !self.careful {
            self.pending.push(pending);
            return Ok(Ok(()));
        }
        self.tx
            .batch_execute("SAVEPOINT sharecache_row")
            .map_err(|e| self.err(e))?;
        self.pending.push(pending);
        match self.flush() {
            Ok(()) => {
                self.tx
                    .batch_execute("RELEASE SAVEPOINT sharecache_row")
                    .map_err(|e| self.err(e))?;
                Ok(Ok(()))
            }
            Err(e) if self.refused_flush => {
                self.refused_flush = false;
                self.tx
                    .batch_execute("ROLLBACK TO SAVEPOINT sharecache_row")
                    .map_err(|e| self.err(e))?;
                Ok(Err(Refused(e.to_string())))
            }
            Err(e) => Err(e),
        }
    }

    fn append(
        &mut self,
        v: &Version,
        row: Option<(&[String], &[Value])>,
    ) -> Result<(), RemoteError> {
        let image = row.map(|(columns, values)| image::encode(columns, values));
        self.entries.push((v.clone(), image));
        Ok(())
    }

    fn skip_to(&mut self, rev: i64) -> Result<(), RemoteError> {
        self.tx
            .execute_typed(
                "UPDATE sharecache.meta SET rev_floor = greatest(rev_floor, $1) WHERE id = 1",
                &[(&rev, Type::INT8)],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn finish(&mut self, newest_stamp: &str) -> Result<(i64, i64), RemoteError> {
        let entries = std::mem::take(&mut self.entries);
        let conflicts = std::mem::take(&mut self.conflicts);
        let client_entry = self.client_entry.take();
        let mut params = Params::default();
        let (seen_t, seen_p, seen_id, head) = match &self.read {
            Some(read) => {
                let (t, p, ids) = read.seen();
                let owned = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
                (owned(t), owned(p), ids, read.head)
            }
            None => (Vec::new(), Vec::new(), Vec::new(), 0),
        };
        let mut args = vec![
            params.push(Box::new(seen_t), Type::TEXT_ARRAY),
            params.push(Box::new(seen_p), Type::TEXT_ARRAY),
            params.push(Box::new(seen_id), Type::INT8_ARRAY),
            params.push(Box::new(head), Type::INT8),
        ];
        let text = |f: fn(&Version) -> &str| {
            entries
                .iter()
                .map(|(v, _)| f(v).to_owned())
                .collect::<Vec<String>>()
        };
        for column in [text(|v| &v.tbl), text(|v| &v.pk), text(|v| &v.stamp)] {
            args.push(params.push(Box::new(column), Type::TEXT_ARRAY));
        }
        args.push(params.push(Box::new(text(|v| &v.origin)), Type::TEXT_ARRAY));
        let deleted: Vec<bool> = entries.iter().map(|(v, _)| v.deleted).collect();
        args.push(params.push(Box::new(deleted), Type::BOOL_ARRAY));
        let images: Vec<Option<Vec<u8>>> = entries.into_iter().map(|(_, i)| i).collect();
        args.push(params.push(Box::new(images), Type::BYTEA_ARRAY));
        args.push(params.push(Box::new(newest_stamp.to_owned()), Type::TEXT));
        let c = |f: fn(&LoggedConflict) -> &str| {
            conflicts
                .iter()
                .map(|x| f(x).to_owned())
                .collect::<Vec<String>>()
        };
        let columns = [
            c(|x| &x.tbl),
            c(|x| &x.pk),
            c(|x| &x.winner_stamp),
            c(|x| &x.winner_origin),
            c(|x| &x.loser_stamp),
            c(|x| &x.loser_origin),
            c(|x| &x.loser_op),
        ];
        for column in columns {
            args.push(params.push(Box::new(column), Type::TEXT_ARRAY));
        }
        let loser_row: Vec<Option<String>> =
            conflicts.iter().map(|x| x.loser_row.clone()).collect();
        args.push(params.push(Box::new(loser_row), Type::TEXT_ARRAY));
        for column in [c(|x| &x.decided_at), c(|x| &x.decided_by), c(|x| &x.reason)] {
            args.push(params.push(Box::new(column), Type::TEXT_ARRAY));
        }
        // The rows first (the finish waits for the last part), then the registry entry.
        let mut parts = self.row_writes(&mut params)?;
        let written = match parts.len() {
            0 => "0".to_owned(),
            n => format!("(SELECT count(*) FROM w{})", n - 1),
        };
        if let Some(e) = client_entry {
            let p = [
                params.push(Box::new(e.origin), Type::TEXT),
                params.push(Box::new(e.pulled_rev), Type::INT8),
                params.push(Box::new(e.last_seen), Type::TEXT),
                params.push(Box::new(e.host), Type::TEXT),
            ];
            parts.push(format!("r AS ({})", super::reads::register_sql(&p)));
        }
        let write = params.push(Box::new(self.write_id), Type::INT8);
        let main = format!(
            "SELECT before, last FROM sharecache.finish({}, {written}, {write})",
            args.join(", ")
        );
        let r = self.run(&parts, &main, &params)?;
        self.finished = true;
        Ok((r.get(0), r.get(1)))
    }

    fn write_id(&self) -> i64 {
        self.write_id
    }

    fn log_conflict(&mut self, c: &LoggedConflict) -> Result<(), RemoteError> {
        self.conflicts.push(c.clone());
        Ok(())
    }

    fn conflicts_after(&mut self, after: i64) -> Result<Vec<LoggedConflict>, RemoteError> {
        super::reads::conflicts_after(self.tx, after).map_err(|e| self.err(e))
    }

    /// Kept, and written by the finish's statement (a push registers just before its finish),
    /// or at the end of the write.
    fn register(&mut self, client: &ClientEntry) -> Result<(), RemoteError> {
        self.client_entry = Some(client.clone());
        Ok(())
    }
}

impl Writer<'_, '_> {
    /// Ends the write: what was kept and not yet finished is written now.
    pub fn end(&mut self) -> Result<(), RemoteError> {
        if !self.finished
            && (!self.pending.is_empty() || !self.entries.is_empty() || !self.conflicts.is_empty())
        {
            self.finish("")?;
        }
        if let Some(entry) = self.client_entry.take() {
            super::reads::register(self.tx, &entry).map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
