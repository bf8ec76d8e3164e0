//! Row-level reads and writes by primary key, the same SQL on the cache and on the remote.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::schema::Table;
use crate::sql::quote;

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

    fn key_where(&self, first_param: usize) -> String {
        self.pk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", quote(c), first_param + i))
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
            .query_row(params_from_iter(key), |r| {
                (0..n).map(|i| r.get(i)).collect::<Result<Vec<Value>, _>>()
            })
            .optional()
    }

    /// Inserts or updates the row (values in `columns` order).
    pub fn upsert(&self, c: &Connection, values: &[Value]) -> rusqlite::Result<()> {
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
        c.prepare_cached(&sql)?.execute(params_from_iter(values))?;
        Ok(())
    }

    /// Deletes the row with this key (nothing if absent).
    pub fn delete(&self, c: &Connection, key: &[Value]) -> rusqlite::Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE {}",
            quote(&self.table),
            self.key_where(1)
        );
        c.prepare_cached(&sql)?.execute(params_from_iter(key))?;
        Ok(())
    }
}
