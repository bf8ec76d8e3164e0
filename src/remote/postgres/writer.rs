//! [`BatchWriter`] on PostgreSQL: one push (or reconcile, or conflict put-back) in one READ
//! COMMITTED transaction, in as few round trips as the decisions allow.
//!
//! - **Per-row serialisation, no global lock for the batch.** The first look at the batch's
//!   versions locks its existing rows (`FOR UPDATE`, in key order) and notes the newest log
//!   entry id of each key; only then is the log read: a concurrent push or direct write of the
//!   same row has committed, and is seen, or waits for this one. A row that does not exist yet
//!   cannot be locked: if another writer created it meanwhile, `sharecache.finish` finds an
//!   entry newer than the one noted and fails the write as a serialisation failure, and it is
//!   run again (no advisory locks: thousands per batch, or per bulk UPDATE of a direct writer,
//!   would exhaust the server's shared lock table). Entries committed but not yet numbered are
//!   the newest of all (revision `i64::MAX` here).
//! - **Revisions at the end.** Appends and conflict records are kept here and written by one
//!   call of `sharecache.finish`, which numbers them under the meta row's lock, held until the
//!   COMMIT that follows (one round trip): revisions become visible in order.
//! - **Rows in one statement per table.** Row writes are kept too and written together before
//!   anything reads the tables again (a select, the finish). When the server refuses a row of
//!   that statement (a constraint, a value its column cannot take: [`PgError::is_refusal`]), the
//!   write is run again from the start in careful mode, each row under its own savepoint, so the
//!   refused row is known ([`Refused`]) and the rest go through.

use std::collections::HashMap;

use postgres::Transaction;
use postgres::types::Type;
use rusqlite::types::Value;

use super::PgError;
use super::types::{self, Column};
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
    locked: bool,
    /// Per key of the batch, the newest log entry id when its versions were read.
    seen: Vec<(String, String, i64)>,
    pending: Vec<Pending>,
    entries: Vec<(Version, Option<Vec<u8>>)>,
    conflicts: Vec<LoggedConflict>,
    pub finished: bool,
    /// [`BatchWriter::write_id`], set on the server by `sharecache.finish_write`.
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
            locked: false,
            seen: Vec::new(),
            pending: Vec::new(),
            entries: Vec::new(),
            conflicts: Vec::new(),
            finished: false,
            write_id: rand::random(),
        }
    }

    fn err(&self, e: impl Into<PgError>) -> RemoteError {
        e.into().into_remote(&self.location)
    }

    /// The server's columns of `table`, in `names`' order (each must exist there).
    fn columns(&mut self, table: &str, names: &[String]) -> Result<Vec<Column>, RemoteError> {
        if !self.described.contains_key(table) {
            let cols = types::describe(self.tx, self.schema, table).map_err(|e| self.err(e))?;
            self.described.insert(table.to_owned(), cols);
        }
        let all = &self.described[table];
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

    /// Key columns of `shape`, flagged as keys, in key order.
    fn key_columns(
        &mut self,
        shape_table: &str,
        pk: &[String],
    ) -> Result<Vec<Column>, RemoteError> {
        let mut cols = self.columns(shape_table, pk)?;
        for c in &mut cols {
            c.key = true;
        }
        Ok(cols)
    }

    /// Writes the kept row writes: runs of one table and one kind, one statement each.
    fn flush(&mut self) -> Result<(), RemoteError> {
        let pending = std::mem::take(&mut self.pending);
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
            let written = if first.row.is_some() {
                let cols = self.columns(&first.table, &first.columns)?;
                let rows: Vec<Vec<Value>> = slice.iter().filter_map(|p| p.row.clone()).collect();
                let cols = flag_keys(cols, &self.described[&first.table]);
                super::rows::upsert(self.tx, self.schema, &first.table, &cols, &rows)
            } else {
                let pk: Vec<String> = self.described[&first.table]
                    .iter()
                    .filter(|c| c.key)
                    .map(|c| c.name.clone())
                    .collect();
                let cols = self.key_columns(&first.table, &pk)?;
                let keys: Vec<Vec<Value>> = slice.iter().map(|p| p.key.clone()).collect();
                super::rows::delete(self.tx, self.schema, &first.table, &cols, &keys)
            };
            if let Err(e) = written {
                if e.is_refusal() {
                    self.refused_flush = true;
                }
                return Err(self.err(e));
            }
            i += run;
        }
        Ok(())
    }

    /// Locks the rows and keys of `keys` (see the module docs), once per write.
    fn lock(&mut self, keys: &Keys) -> Result<(), RemoteError> {
        if self.locked {
            return Ok(());
        }
        self.locked = true;
        let mut by_table: HashMap<&str, Vec<&str>> = HashMap::new();
        for (tbl, pk) in keys.keys() {
            by_table.entry(tbl).or_default().push(pk);
        }
        let mut tables: Vec<&str> = by_table.keys().copied().collect();
        tables.sort_unstable();
        for table in tables {
            let pk: Vec<String> = match self.described.get(table) {
                Some(c) => c.iter().filter(|c| c.key).map(|c| c.name.clone()).collect(),
                None => {
                    let cols =
                        types::describe(self.tx, self.schema, table).map_err(|e| self.err(e))?;
                    let pk = cols
                        .iter()
                        .filter(|c| c.key)
                        .map(|c| c.name.clone())
                        .collect();
                    self.described.insert(table.to_owned(), cols);
                    pk
                }
            };
            let cols = self.key_columns(table, &pk)?;
            let mut decoded = Vec::new();
            for pk_text in &by_table[table] {
                decoded.push(decode_key(pk_text).map_err(|m| {
                    self.err(PgError::Value {
                        column: table.to_owned(),
                        message: m,
                    })
                })?);
            }
            super::rows::lock(self.tx, self.schema, table, &cols, &decoded)
                .map_err(|e| self.err(e))?;
        }
        let (t, p): (Vec<&str>, Vec<&str>) =
            keys.keys().map(|(t, p)| (t.as_str(), p.as_str())).unzip();
        let rows = self
            .tx
            .query_typed(
                // One index lookup per key (a join would scan the whole log).
                "SELECT k.t, k.p, coalesce((SELECT max(l.id) FROM sharecache.log l \
                 WHERE l.tbl = k.t AND l.pk = k.p), 0) FROM unnest($1::text[], $2::text[]) AS k(t, p)",
                &[(&t, Type::TEXT_ARRAY), (&p, Type::TEXT_ARRAY)],
            )
            .map_err(|e| self.err(e))?;
        self.seen = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok(())
    }
}

/// `cols` with their key flags as the server has them.
fn flag_keys(mut cols: Vec<Column>, all: &[Column]) -> Vec<Column> {
    for c in &mut cols {
        c.key = all.iter().any(|a| a.name == c.name && a.key);
    }
    cols
}

impl BatchWriter for Writer<'_, '_> {
    fn pruned(&mut self) -> Result<Pruned, RemoteError> {
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
        self.lock(keys)?;
        super::reads::newest_in(self.tx, after, upto, keys, found).map_err(|e| self.err(e))
    }

    fn select(&mut self, shape: &Shape, key: &[Value]) -> Result<Option<Vec<Value>>, RemoteError> {
        self.flush()?;
        let cols = self.columns(&shape.table, &shape.columns)?;
        let keys = self.key_columns(&shape.table, &shape.pk)?;
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
        self.flush()?;
        let entries = std::mem::take(&mut self.entries);
        let conflicts = std::mem::take(&mut self.conflicts);
        let tbl: Vec<&str> = entries.iter().map(|(v, _)| v.tbl.as_str()).collect();
        let pk: Vec<&str> = entries.iter().map(|(v, _)| v.pk.as_str()).collect();
        let stamp: Vec<&str> = entries.iter().map(|(v, _)| v.stamp.as_str()).collect();
        let origin: Vec<&str> = entries.iter().map(|(v, _)| v.origin.as_str()).collect();
        let deleted: Vec<bool> = entries.iter().map(|(v, _)| v.deleted).collect();
        let images: Vec<Option<&[u8]>> = entries.iter().map(|(_, i)| i.as_deref()).collect();
        let c = |f: fn(&LoggedConflict) -> &str| conflicts.iter().map(f).collect::<Vec<&str>>();
        let seen_t: Vec<&str> = self.seen.iter().map(|s| s.0.as_str()).collect();
        let seen_p: Vec<&str> = self.seen.iter().map(|s| s.1.as_str()).collect();
        let seen_id: Vec<i64> = self.seen.iter().map(|s| s.2).collect();
        let loser_row: Vec<Option<&str>> =
            conflicts.iter().map(|x| x.loser_row.as_deref()).collect();
        let r = self
            .tx
            .query_typed_one(
                "SELECT before, last FROM sharecache.finish_write($22, $1, $2, $3, $4, $5, $6, \
                 $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
                &[
                    (&seen_t, Type::TEXT_ARRAY),
                    (&seen_p, Type::TEXT_ARRAY),
                    (&seen_id, Type::INT8_ARRAY),
                    (&tbl, Type::TEXT_ARRAY),
                    (&pk, Type::TEXT_ARRAY),
                    (&stamp, Type::TEXT_ARRAY),
                    (&origin, Type::TEXT_ARRAY),
                    (&deleted, Type::BOOL_ARRAY),
                    (&images, Type::BYTEA_ARRAY),
                    (&newest_stamp, Type::TEXT),
                    (&c(|x| &x.tbl), Type::TEXT_ARRAY),
                    (&c(|x| &x.pk), Type::TEXT_ARRAY),
                    (&c(|x| &x.winner_stamp), Type::TEXT_ARRAY),
                    (&c(|x| &x.winner_origin), Type::TEXT_ARRAY),
                    (&c(|x| &x.loser_stamp), Type::TEXT_ARRAY),
                    (&c(|x| &x.loser_origin), Type::TEXT_ARRAY),
                    (&c(|x| &x.loser_op), Type::TEXT_ARRAY),
                    (&loser_row, Type::TEXT_ARRAY),
                    (&c(|x| &x.decided_at), Type::TEXT_ARRAY),
                    (&c(|x| &x.decided_by), Type::TEXT_ARRAY),
                    (&c(|x| &x.reason), Type::TEXT_ARRAY),
                    (&self.write_id, Type::INT8),
                ],
            )
            .map_err(|e| self.err(e))?;
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

    fn register(&mut self, client: &ClientEntry) -> Result<(), RemoteError> {
        super::reads::register(self.tx, client).map_err(|e| self.err(e))
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
        Ok(())
    }
}
