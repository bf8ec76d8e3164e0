//! A keyed comparison of one synced table between the cache and the remote.
//!
//! Used when the change log cannot say what differs (a remote restored from a backup: see
//! [`super::reconcile`]). Both sides are read in primary-key order by keyset pagination
//! (`WHERE (key) > (last key) ORDER BY key LIMIT n`): each remote batch is one short read
//! transaction on the share, each local batch one on the cache, and only one batch of each side
//! is in memory, so memory stays flat in the table's size. Both sides declare the same table (the
//! cache mirrors the remote's schema), so SQLite orders their keys the same way, collations
//! included. Rows with a NULL key part (SQLite allows them outside `INTEGER PRIMARY KEY`) do not
//! take part in row-value comparisons; they are compared in one extra batch at the end.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::rows::Shape;
use crate::sql::{Bind, encode_key, quote, read_value};

/// One key whose row differs between the two sides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Difference {
    /// The key text ([`encode_key`]).
    pub pk: String,
    /// The key's values.
    pub key: Vec<Value>,
    /// The cache's row (`shape.columns` order), `None` when the cache has no such row.
    pub local: Option<Vec<Value>>,
    /// The remote's row, `None` when the remote has no such row.
    pub remote: Option<Vec<Value>>,
}

/// A page of rows read in key order.
pub(crate) struct Page {
    rows: Vec<Vec<Value>>,
}

/// The SQL pieces of one table's keyset reads.
struct Reader<'a> {
    shape: &'a Shape,
    key_pos: Vec<usize>,
}

impl<'a> Reader<'a> {
    fn new(shape: &'a Shape) -> Reader<'a> {
        let key_pos = shape
            .pk
            .iter()
            .map(|k| {
                shape
                    .columns
                    .iter()
                    .position(|c| c == k)
                    .expect("key columns are moved")
            })
            .collect();
        Reader { shape, key_pos }
    }

    fn key_list(&self) -> String {
        self.shape
            .pk
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn not_null(&self) -> String {
        self.shape
            .pk
            .iter()
            .map(|k| format!("{} IS NOT NULL", quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn marks(&self, first: usize) -> String {
        (0..self.shape.pk.len())
            .map(|i| format!("?{}", first + i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Rows without NULL key parts with `after < key <= upto` (each bound optional), in key
    /// order, at most `limit` (`None`: no limit).
    fn page(
        &self,
        c: &Connection,
        after: Option<&[Value]>,
        upto: Option<&[Value]>,
        limit: Option<usize>,
    ) -> rusqlite::Result<Page> {
        let cols = self
            .shape
            .columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        let keys = self.key_list();
        let mut cond = vec![self.not_null()];
        let mut params: Vec<&Value> = Vec::new();
        if let Some(a) = after {
            cond.push(format!("({keys}) > ({})", self.marks(params.len() + 1)));
            params.extend(a);
        }
        if let Some(u) = upto {
            cond.push(format!("({keys}) <= ({})", self.marks(params.len() + 1)));
            params.extend(u);
        }
        let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
        let sql = format!(
            "SELECT {cols} FROM {} WHERE {} ORDER BY {keys}{limit}",
            quote(&self.shape.table),
            cond.join(" AND ")
        );
        self.collect(c, &sql, params)
    }

    /// Rows with a NULL key part.
    fn null_keyed(&self, c: &Connection) -> rusqlite::Result<Page> {
        let cols = self
            .shape
            .columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols} FROM {} WHERE NOT ({})",
            quote(&self.shape.table),
            self.not_null()
        );
        self.collect(c, &sql, Vec::new())
    }

    fn collect(&self, c: &Connection, sql: &str, params: Vec<&Value>) -> rusqlite::Result<Page> {
        let n = self.shape.columns.len();
        let rows = c
            .prepare_cached(sql)?
            .query_map(params_from_iter(params.into_iter().map(Bind::new)), |r| {
                (0..n).map(|i| read_value(r, i)).collect()
            })?
            .collect::<rusqlite::Result<Vec<Vec<Value>>>>()?;
        Ok(Page { rows })
    }

    fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.key_pos.iter().map(|&i| row[i].clone()).collect()
    }
}

/// A read of the remote: runs the closure in a read transaction there.
pub(crate) type ReadRemote<'a, E> =
    dyn FnMut(&dyn Fn(&Connection) -> rusqlite::Result<Page>) -> Result<Page, E> + 'a;

/// The comparison of one table, batch by batch: [`TableDiff::next`] reads the next `batch` rows
/// of the remote and the local rows of the same stretch of keys, and returns their differences.
/// Between two calls the caller may write either side (a row written behind the position is not
/// looked at again).
pub(crate) struct TableDiff<'a> {
    reader: Reader<'a>,
    batch: usize,
    after: Option<Vec<Value>>,
    state: State,
    /// Remote rows compared so far.
    pub compared: u64,
}

#[derive(PartialEq)]
enum State {
    Keyed,
    NullKeyed,
    Done,
}

impl<'a> TableDiff<'a> {
    /// Starts comparing `shape`'s table, `batch` rows per read.
    pub fn new(shape: &'a Shape, batch: usize) -> TableDiff<'a> {
        TableDiff {
            reader: Reader::new(shape),
            batch: batch.max(1),
            after: None,
            state: State::Keyed,
            compared: 0,
        }
    }

    /// The differences of the next stretch of keys (possibly none), or `None` when the whole
    /// table was compared. `read_remote` runs its closure in a read transaction on the remote;
    /// the local side is read in a transaction of its own, its errors mapped by `local_err`.
    pub fn next<E>(
        &mut self,
        local: &Connection,
        local_err: &dyn Fn(rusqlite::Error) -> E,
        read_remote: &mut ReadRemote<'_, E>,
    ) -> Result<Option<Vec<Difference>>, E> {
        let reader = &self.reader;
        match self.state {
            State::Done => Ok(None),
            State::NullKeyed => {
                let remote = read_remote(&|c| reader.null_keyed(c))?;
                let local_rows = local_read(local, |c| reader.null_keyed(c)).map_err(local_err)?;
                self.compared += remote.rows.len() as u64;
                self.state = State::Done;
                Ok(Some(compare(reader, local_rows, remote)))
            }
            State::Keyed => {
                let (after, batch) = (self.after.as_deref(), self.batch);
                let remote = read_remote(&|c| reader.page(c, after, None, Some(batch)))?;
                let last = remote.rows.last().map(|r| reader.key_of(r));
                let full = remote.rows.len() == batch;
                // The local rows of the same stretch of keys; after the last remote batch, every
                // local row beyond it.
                let upto = if full { last.as_deref() } else { None };
                let local_rows =
                    local_read(local, |c| reader.page(c, after, upto, None)).map_err(local_err)?;
                self.compared += remote.rows.len() as u64;
                let diffs = compare(reader, local_rows, remote);
                if full {
                    self.after = last;
                } else {
                    self.state = State::NullKeyed;
                }
                Ok(Some(diffs))
            }
        }
    }
}

fn local_read(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<Page>,
) -> rusqlite::Result<Page> {
    c.execute_batch("BEGIN")?;
    let out = f(c);
    let _ = c.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
    out
}

/// The differences between two pages covering the same stretch of keys.
fn compare(reader: &Reader<'_>, local: Page, remote: Page) -> Vec<Difference> {
    let mut theirs: HashMap<String, Vec<Value>> = remote
        .rows
        .into_iter()
        .map(|r| (encode_key(&reader.key_of(&r)), r))
        .collect();
    let mut out = Vec::new();
    for row in local.rows {
        let key = reader.key_of(&row);
        let pk = encode_key(&key);
        match theirs.remove(&pk) {
            Some(r) if r == row => {}
            remote => out.push(Difference {
                pk,
                key,
                local: Some(row),
                remote,
            }),
        }
    }
    for (pk, row) in theirs {
        out.push(Difference {
            key: reader.key_of(&row),
            pk,
            local: None,
            remote: Some(row),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(rows: &str) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE t (a TEXT, b INTEGER, v, PRIMARY KEY (a, b)); {rows}"
        ))
        .unwrap();
        c
    }

    fn shape() -> Shape {
        Shape {
            table: "t".into(),
            columns: vec!["a".into(), "b".into(), "v".into()],
            pk: vec!["a".into(), "b".into()],
        }
    }

    fn run(local: &Connection, remote: &Connection, batch: usize) -> (u64, Vec<Difference>) {
        let mut found = Vec::new();
        let mut read = |f: &dyn Fn(&Connection) -> rusqlite::Result<Page>| f(remote);
        let shape = shape();
        let mut d = TableDiff::new(&shape, batch);
        while let Some(batch) = d.next::<rusqlite::Error>(local, &|e| e, &mut read).unwrap() {
            found.extend(batch);
        }
        found.sort_by(|x, y| x.pk.cmp(&y.pk));
        (d.compared, found)
    }

    #[test]
    fn every_kind_of_difference_is_found_across_batch_boundaries() {
        let fill = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) \
                    INSERT INTO t SELECT 'k', i, i FROM n;";
        let local = db(&format!(
            "{fill} UPDATE t SET v = 'mine' WHERE b = 7; DELETE FROM t WHERE b = 20; \
             INSERT INTO t VALUES ('z', 1, 'local only'), (NULL, 1, 'null key here');"
        ));
        let remote = db(&format!(
            "{fill} DELETE FROM t WHERE b = 33; INSERT INTO t VALUES ('a', 1, 'remote only'), (NULL, 2, 'theirs');"
        ));
        for batch in [1, 3, 7, 50, 1000] {
            let (n, d) = run(&local, &remote, batch);
            assert_eq!(n, 51, "batch {batch}: every remote row compared");
            let summary: Vec<(String, bool, bool)> = d
                .iter()
                .map(|d| (d.pk.clone(), d.local.is_some(), d.remote.is_some()))
                .collect();
            let mut expected = vec![
                (encode_key(&[Value::Null, Value::Integer(1)]), true, false),
                (encode_key(&[Value::Null, Value::Integer(2)]), false, true),
                (
                    encode_key(&[Value::Text("a".into()), Value::Integer(1)]),
                    false,
                    true,
                ),
                (
                    encode_key(&[Value::Text("k".into()), Value::Integer(20)]),
                    false,
                    true,
                ),
                (
                    encode_key(&[Value::Text("k".into()), Value::Integer(33)]),
                    true,
                    false,
                ),
                (
                    encode_key(&[Value::Text("k".into()), Value::Integer(7)]),
                    true,
                    true,
                ),
                (
                    encode_key(&[Value::Text("z".into()), Value::Integer(1)]),
                    true,
                    false,
                ),
            ];
            expected.sort();
            assert_eq!(summary, expected, "batch {batch}");
        }
    }

    #[test]
    fn equal_tables_have_no_difference() {
        let rows = "INSERT INTO t VALUES ('x', 1, x'00ff'), ('y', 2, 2.5), ('y', 3, NULL);";
        let (n, d) = run(&db(rows), &db(rows), 2);
        assert_eq!((n, d), (3, vec![]));
    }
}
