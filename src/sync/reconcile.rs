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

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::memory::PageCaches;
use super::rows::Shape;
use crate::error::Error;
use crate::remote::Remote;
use crate::sql::{Bind, encode_key, quote, read_value};
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

/// SQLite's `BINARY` order of two values (NULL < numbers < TEXT < BLOB; numbers by value,
/// TEXT and BLOB byte by byte): the order `ORDER BY … COLLATE BINARY` reads them in.
pub(crate) fn cmp_value(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Real(x), Value::Real(y)) => x.total_cmp(y),
        (Value::Integer(x), Value::Real(y)) => cmp_int_real(*x, *y),
        (Value::Real(x), Value::Integer(y)) => cmp_int_real(*y, *x).reverse(),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn cmp_int_real(i: i64, r: f64) -> Ordering {
    // Exact for every i64: compare as floats, and on a tie compare the integer with the
    // float's integer value (a float that equals a large integer as f64 may not be it exactly).
    match (i as f64).total_cmp(&r) {
        Ordering::Equal if r.abs() < 9.2e18 => i.cmp(&(r as i64)),
        o => o,
    }
}

/// Compares two keys value by value in [`cmp_value`] order.
pub(crate) fn cmp_key(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| cmp_value(x, y))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
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

/// Reads one side's rows in key order, `batch` at a time.
struct Side {
    select: String,
    key_at: Vec<usize>,
    ncols: usize,
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
        let cols: Vec<String> = shape.columns.iter().map(|c| quote(c)).collect();
        let order: Vec<String> = shape
            .pk
            .iter()
            .map(|k| format!("{} COLLATE BINARY", quote(k)))
            .collect();
        Ok(Side {
            select: format!(
                "SELECT {} FROM {} WHERE {{after}} ORDER BY {} LIMIT {}",
                cols.join(", "),
                quote(&shape.table),
                order.join(", "),
                batch.max(1)
            ),
            key_at,
            ncols: cols.len(),
            rows: Default::default(),
            after: None,
            exhausted: false,
            batch: batch.max(1),
        })
    }

    /// `WHERE` text for "key after `after`" in `COLLATE BINARY` order, NULL first, with the
    /// parameters to bind. A row value comparison `(a, b) > (?, ?)` would skip keys holding a
    /// NULL (the comparison is NULL), so it is spelled out: `a > ?1 OR (a IS ?1 AND b > ?2) …`.
    fn after_clause(&self, pk: &[String]) -> (String, Vec<Value>) {
        let Some(after) = &self.after else {
            return ("1".into(), vec![]);
        };
        let mut ors = Vec::new();
        let mut params = Vec::new();
        for i in 0..pk.len() {
            let mut ands = Vec::new();
            for (j, col) in pk.iter().enumerate().take(i) {
                params.push(after[j].clone());
                ands.push(format!("{} IS ?{}", quote(col), params.len()));
            }
            let col = quote(&pk[i]);
            match &after[i] {
                Value::Null => ands.push(format!("{col} IS NOT NULL")),
                v => {
                    params.push(v.clone());
                    ands.push(format!("{col} COLLATE BINARY > ?{}", params.len()));
                }
            }
            ors.push(format!("({})", ands.join(" AND ")));
        }
        (format!("({})", ors.join(" OR ")), params)
    }

    fn read(&self, c: &Connection, pk: &[String]) -> rusqlite::Result<Vec<Vec<Value>>> {
        let (clause, params) = self.after_clause(pk);
        let sql = self.select.replace("{after}", &clause);
        let n = self.ncols;
        let mut s = c.prepare_cached(&sql)?;
        let rows = s.query_map(params_from_iter(Bind::all(&params)), |r| {
            (0..n).map(|i| read_value(r, i)).collect()
        })?;
        rows.collect()
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
    remote: &Remote,
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
            let rows = local_read(local, |c| l.read(c, &shape.pk)).map_err(lerr)?;
            out.local_rows += rows.len() as u64;
            read += rows.len();
            l.take(rows);
        }
        if r.rows.is_empty() && !r.exhausted {
            let rows = remote.read(|c| r.read(c, &shape.pk))?;
            out.remote_rows += rows.len() as u64;
            read += rows.len();
            r.take(rows);
        }
        // Outside both read transactions: as a push or pull does, so the shared page pool
        // never fills with the table's pages (past its size, every page read is dropped again).
        page_caches.moved(read, local, remote.conn());
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
