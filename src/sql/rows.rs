//! Row-level reads and writes by primary key, the same SQL on the cache and on a SQLite
//! remote, and the order keys compare in (SQLite's `BINARY`), which every side pages in.

use std::cmp::Ordering;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::schema::Table;
use crate::sql::{Bind, quote, read_value};

/// The columns a sync moves for one table: those both sides have, in the cache's order.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Table name.
    pub table: String,
    /// Columns moved.
    pub columns: Vec<String>,
    /// Key columns, in key order.
    pub pk: Vec<String>,
}

impl Shape {
    /// The shape of a table present on both sides.
    pub fn new(local: &Table, remote: &Table) -> Shape {
        let remote_cols = remote.column_names();
        Shape {
            table: local.name.clone(),
            columns: local
                .columns
                .iter()
                .map(|c| c.name.clone())
                .filter(|c| remote_cols.contains(c))
                .collect(),
            pk: local.pk.clone(),
        }
    }

    /// `IS`, not `=`: a key column of an ordinary table may hold NULL (SQLite allows it), and
    /// `NULL = NULL` matches nothing. SQLite uses the key's index for `IS` as for `=`.
    fn key_where(&self, first_param: usize) -> String {
        self.pk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} IS ?{}", quote(c), first_param + i))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Up to `limit` rows in key order (`COLLATE BINARY`, NULL first: [`cmp_key`]'s order) after
    /// the key `after` (from the start: `None`), values in `columns` order. Every key column must
    /// be among the columns.
    pub fn page(
        &self,
        c: &Connection,
        after: Option<&[Value]>,
        limit: usize,
    ) -> rusqlite::Result<Vec<Vec<Value>>> {
        let order: Vec<String> = self
            .pk
            .iter()
            .map(|k| format!("{} COLLATE BINARY", quote(k)))
            .collect();
        let (clause, params) = self.after_clause(after);
        let sql = format!(
            "SELECT {} FROM {} WHERE {clause} ORDER BY {} LIMIT {}",
            self.column_list(),
            quote(&self.table),
            order.join(", "),
            limit.max(1)
        );
        let n = self.columns.len();
        let mut s = c.prepare_cached(&sql)?;
        let rows = s.query_map(params_from_iter(Bind::all(&params)), |r| {
            (0..n).map(|i| read_value(r, i)).collect()
        })?;
        rows.collect()
    }

    /// `WHERE` text for "key after `after`" in `COLLATE BINARY` order, NULL first, with the
    /// parameters to bind. A row value comparison `(a, b) > (?, ?)` would skip keys holding a
    /// NULL (the comparison is NULL), so it is spelled out: `a > ?1 OR (a IS ?1 AND b > ?2) …`.
    fn after_clause(&self, after: Option<&[Value]>) -> (String, Vec<Value>) {
        let Some(after) = after else {
            return ("1".into(), vec![]);
        };
        let pk = &self.pk;
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

    /// The row with this key, in `columns` order.
    pub fn select(&self, c: &Connection, key: &[Value]) -> rusqlite::Result<Option<Vec<Value>>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            self.column_list(),
            quote(&self.table),
            self.key_where(1)
        );
        let n = self.columns.len();
        c.prepare_cached(&sql)?
            .query_row(params_from_iter(Bind::all(key)), |r| {
                (0..n)
                    .map(|i| read_value(r, i))
                    .collect::<Result<Vec<Value>, _>>()
            })
            .optional()
    }

    /// Inserts or updates the row (values in `columns` order).
    pub fn upsert(&self, c: &Connection, values: &[Value]) -> rusqlite::Result<()> {
        let key: Vec<&Value> = self
            .pk
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| c == k))
            .map(|i| &values[i])
            .collect();
        if key.iter().any(|v| matches!(v, Value::Null)) {
            // NULL key parts never conflict (NULLs are distinct to UNIQUE): `ON CONFLICT` would
            // insert a second row. Update the row the key matches with `IS`, or insert it.
            return self.update_or_insert(c, values, &key);
        }
        let marks: Vec<String> = (1..=self.columns.len()).map(|i| format!("?{i}")).collect();
        let sets: Vec<String> = self
            .columns
            .iter()
            .filter(|col| !self.pk.contains(col))
            .map(|col| format!("{q} = excluded.{q}", q = quote(col)))
            .collect();
        let action = if sets.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", sets.join(", "))
        };
        let keys = self
            .pk
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({keys}) DO {action}",
            quote(&self.table),
            self.column_list(),
            marks.join(", ")
        );
        c.prepare_cached(&sql)?
            .execute(params_from_iter(Bind::all(values)))?;
        Ok(())
    }

    fn update_or_insert(
        &self,
        c: &Connection,
        values: &[Value],
        key: &[&Value],
    ) -> rusqlite::Result<()> {
        let sets: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, col)| format!("{} = ?{}", quote(col), i + 1))
            .collect();
        let update = format!(
            "UPDATE {} SET {} WHERE {}",
            quote(&self.table),
            sets.join(", "),
            self.key_where(self.columns.len() + 1)
        );
        let params = values.iter().chain(key.iter().copied()).map(Bind::new);
        if c.prepare_cached(&update)?
            .execute(params_from_iter(params))?
            == 0
        {
            let marks: Vec<String> = (1..=self.columns.len()).map(|i| format!("?{i}")).collect();
            let insert = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote(&self.table),
                self.column_list(),
                marks.join(", ")
            );
            c.prepare_cached(&insert)?
                .execute(params_from_iter(Bind::all(values)))?;
        }
        Ok(())
    }

    /// Deletes the row with this key (nothing if absent).
    pub fn delete(&self, c: &Connection, key: &[Value]) -> rusqlite::Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE {}",
            quote(&self.table),
            self.key_where(1)
        );
        c.prepare_cached(&sql)?
            .execute(params_from_iter(Bind::all(key)))?;
        Ok(())
    }
}

/// SQLite's `BINARY` order of two values (NULL < numbers < TEXT < BLOB; numbers by value,
/// TEXT and BLOB byte by byte): the order `ORDER BY … COLLATE BINARY` reads them in.
pub fn cmp_value(a: &Value, b: &Value) -> Ordering {
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
pub fn cmp_key(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| cmp_value(x, y))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value;

    #[test]
    fn a_key_with_a_null_part_is_found_updated_once_and_deleted() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE pairs (a TEXT, b TEXT, v TEXT, PRIMARY KEY (a, b))")
            .unwrap();
        let shape = Shape {
            table: "pairs".into(),
            columns: vec!["a".into(), "b".into(), "v".into()],
            pk: vec!["a".into(), "b".into()],
        };
        let key = [Value::Text("x".into()), Value::Null];
        let row = |v: &str| vec![key[0].clone(), Value::Null, Value::Text(v.into())];
        shape.upsert(&c, &row("first")).unwrap();
        shape.upsert(&c, &row("second")).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM pairs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            n, 1,
            "an upsert of the same NULL-part key updates, never duplicates"
        );
        assert_eq!(shape.select(&c, &key).unwrap(), Some(row("second")));
        shape.delete(&c, &key).unwrap();
        assert_eq!(shape.select(&c, &key).unwrap(), None);
    }

    #[test]
    fn values_compare_in_the_order_sqlite_sorts_them() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE v(x); INSERT INTO v VALUES (NULL), (-1), (0.5), (3), (9223372036854775807), \
             (9.3e18), (-9.3e18), (-9223372036854775808), (2.0), (2), ('a'), ('B'), (''), ('é'), \
             (x''), (x'00'), (x'ff'), (1e308), (-0.0);",
        )
        .unwrap();
        let sorted: Vec<Value> = c
            .prepare("SELECT x FROM v ORDER BY x COLLATE BINARY")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for w in sorted.windows(2) {
            assert_ne!(
                cmp_value(&w[0], &w[1]),
                Ordering::Greater,
                "{:?} > {:?}",
                w[0],
                w[1]
            );
        }
        let mut mine = sorted.clone();
        mine.reverse();
        mine.sort_by(cmp_value);
        for (a, b) in mine.iter().zip(&sorted) {
            assert_eq!(cmp_value(a, b), Ordering::Equal, "{a:?} vs {b:?}");
        }
    }
}
