//! Keyed reconcile: which rows of one synced table differ between the cache and the remote.
//!
//! Why it exists: when capture was off for a while (the app's migration rebuilt a table and its
//! triggers went with the old one), the cache holds writes nothing recorded. The only exact
//! record left is the data itself, so the table is compared with the remote row by row. The
//! same diff serves anything that must find out what differs without trusting `sync_tracking`
//! (a cache restored from a backup).
//!
//! How: both sides are read in primary-key order (`ORDER BY` each key column `COLLATE BINARY`,
//! keyset pagination after the last key read, never `OFFSET`), `batch` rows at a time, and
//! merged like a merge join. Every remote batch is one short read transaction (a shared lock
//! only, released before the next batch); every local batch is one local read transaction. At
//! most one batch per side is in memory, so memory stays flat in the table's size. Whole rows
//! are compared (the [`Shape`]'s columns, values as SQLite stores them). Because the remote is
//! read in several transactions, the diff is not one snapshot of the remote: a row changed on
//! the remote while the diff runs may show either version (callers decide such keys against the
//! change log, as the push does).
//!
//! The page caches of both connections are given back every
//! [`RELEASE_EVERY_ROWS`](super::memory::RELEASE_EVERY_ROWS) rows read, as a push or pull does
//! (see `memory`), so the shared page pool never fills with one table's pages (BENCHMARKS.md,
//! Reconcile, has the figures).
//!
//! The diff decides nothing: [`diff`] hands the differing keys to its caller in batches.

use std::cmp::Ordering;

use rusqlite::Connection;
use rusqlite::types::Value;

use super::memory::PageCaches;
use crate::error::Error;
use crate::remote::RemoteStore;
use crate::sql::encode_key;
use crate::sql::rows::{Shape, cmp_key};
use crate::store::LocalError;

/// One key whose row differs between the cache and the remote.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Diff {
    /// The key as key text ([`crate::sql::encode_key`]), as `sync_tracking` and the log hold it.
    pub pk: String,
    /// The key's values, in key order.
    pub key: Vec<Value>,
    /// The cache's row (values in the shape's `columns` order), `None`: not in the cache.
    pub local: Option<Vec<Value>>,
    /// The remote's row (same order), `None`: not on the remote.
    pub remote: Option<Vec<Value>>,
}

/// What a [`diff`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Compared {
    /// Rows read from the cache.
    pub local_rows: u64,
    /// Rows read from the remote.
    pub remote_rows: u64,
    /// Keys that differ (the sum of the lengths of the batches handed to the callback).
    pub differing: u64,
}

/// Whether two rows hold the same values (a REAL and an INTEGER of the same value differ: the
/// remote would store what the cache holds).
fn same_row(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits() || x == y,
            _ => x == y,
        })
}

/// One side's rows in key order, read `batch` at a time.
struct Side {
    key_at: Vec<usize>,
    rows: std::collections::VecDeque<Vec<Value>>,
    after: Option<Vec<Value>>,
    exhausted: bool,
    batch: usize,
}

impl Side {
    fn new(shape: &Shape, batch: usize) -> Result<Side, String> {
        let key_at = shape
            .pk
            .iter()
            .map(|k| shape.columns.iter().position(|c| c == k))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| format!("table {:?}: a key column is not synced", shape.table))?;
        Ok(Side {
            key_at,
            rows: Default::default(),
            after: None,
            exhausted: false,
            batch: batch.max(1),
        })
    }

    fn take(&mut self, rows: Vec<Vec<Value>>) {
        self.exhausted = rows.len() < self.batch;
        if let Some(last) = rows.last() {
            self.after = Some(self.key(last));
        }
        self.rows.extend(rows);
    }

    fn key(&self, row: &[Value]) -> Vec<Value> {
        self.key_at.iter().map(|&i| row[i].clone()).collect()
    }
}

/// Compares one synced table of the cache (`local`) with the remote, in key order, and calls
/// `each` with the keys whose rows differ, at most `batch` at a time, in key order.
///
/// `shape` names the table, the columns compared (both sides must have them; build it with
/// [`Shape::new`]) and the key (every key column must be among the columns). The remote is read
/// `batch` rows per short read transaction, the cache `batch` rows per local read transaction;
/// `local` must not be inside a transaction. `local_path` only names the cache in errors.
/// `each` may write to the cache (no read transaction is open while it runs) but must not
/// change the table being compared.
///
/// ```ignore
/// reconcile::diff(&local, path, &remote, &shape, 500, |diffs| {
///     for d in diffs { /* d.local / d.remote: Option<row> */ }
///     Ok(())
/// })?;
/// ```
pub(crate) fn diff(
    local: &Connection,
    local_path: &std::path::Path,
    remote: &dyn RemoteStore,
    shape: &Shape,
    batch: usize,
    mut each: impl FnMut(&[Diff]) -> Result<(), Error>,
) -> Result<Compared, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(local_path, e));
    let bad_shape = |m: String| {
        Error::Local(LocalError::Schema {
            table: shape.table.clone(),
            message: m,
        })
    };
    let mut l = Side::new(shape, batch).map_err(bad_shape)?;
    let mut r = Side::new(shape, batch).map_err(bad_shape)?;
    let mut out = Compared::default();
    let mut pending: Vec<Diff> = Vec::new();
    let mut page_caches = PageCaches::default();
    loop {
        let mut read = 0;
        if l.rows.is_empty() && !l.exhausted {
            let rows =
                local_read(local, |c| shape.page(c, l.after.as_deref(), l.batch)).map_err(lerr)?;
            out.local_rows += rows.len() as u64;
            read += rows.len();
            l.take(rows);
        }
        if r.rows.is_empty() && !r.exhausted {
            let rows = remote.rows_after(shape, r.after.as_deref(), r.batch)?;
            out.remote_rows += rows.len() as u64;
            read += rows.len();
            r.take(rows);
        }
        // Outside both read transactions: as a push or pull does, so the shared page pool
        // never fills with the table's pages (past its size, every page read is dropped again).
        page_caches.moved(read, local, remote);
        let next = match (l.rows.front(), r.rows.front()) {
            (None, None) => break,
            (Some(_), None) if !r.exhausted => continue,
            (None, Some(_)) if !l.exhausted => continue,
            (Some(a), Some(b)) => cmp_key(&l.key(a), &r.key(b)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
        };
        let (lrow, rrow) = match next {
            Ordering::Less => (l.rows.pop_front(), None),
            Ordering::Greater => (None, r.rows.pop_front()),
            Ordering::Equal => (l.rows.pop_front(), r.rows.pop_front()),
        };
        if let (Some(a), Some(b)) = (&lrow, &rrow) {
            if same_row(a, b) {
                continue;
            }
        }
        let key = match (&lrow, &rrow) {
            (Some(a), _) => l.key(a),
            (None, Some(b)) => r.key(b),
            (None, None) => unreachable!("one side has a row"),
        };
        pending.push(Diff {
            pk: encode_key(&key),
            key,
            local: lrow,
            remote: rrow,
        });
        if pending.len() >= batch.max(1) {
            out.differing += pending.len() as u64;
            each(&pending)?;
            pending.clear();
        }
    }
    if !pending.is_empty() {
        out.differing += pending.len() as u64;
        each(&pending)?;
    }
    Ok(out)
}

/// Runs `f` in one local read transaction.
fn local_read<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    crate::store::read_tx(c, f)
}

#[cfg(test)]
mod tests;
