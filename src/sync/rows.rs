//! Row-level reads and writes by primary key, the same SQL on the cache and on the remote.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::schema::Table;
use crate::sql::{Bind, quote, read_value};

/// The columns a sync moves for one table: those both sides have, in the cache's order.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
