//! Writing a batch of cache rows into an app table in one statement (one round trip): every
//! column travels as one array parameter of its plain type ([`Kind::plain_type`]), `unnest`
//! turns them back into rows, and each value is converted on the server ([`Kind::from_plain`]).
//! Deletes take the key columns the same way. The LWW decision is not here: it stays in sync,
//! which calls these with the rows it decided to write.

use postgres::GenericClient;
use postgres::types::{ToSql, Type};
use rusqlite::types::Value;

use super::PgError;
use super::types::{Column, Kind, Plain};
use crate::sql::quote;

/// One column's values as one array parameter.
enum Array {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
    Blob(Vec<Option<Vec<u8>>>),
}

impl Array {
    fn new(kind: &Kind, n: usize) -> Array {
        match kind.plain_type() {
            "int8" => Array::Int(Vec::with_capacity(n)),
            "float8" => Array::Float(Vec::with_capacity(n)),
            "bytea" => Array::Blob(Vec::with_capacity(n)),
            _ => Array::Text(Vec::with_capacity(n)),
        }
    }

    fn push(&mut self, value: Plain) {
        match (self, value) {
            (Array::Int(a), Plain::Int(v)) => a.push(v),
            (Array::Float(a), Plain::Float(v)) => a.push(v),
            (Array::Text(a), Plain::Text(v)) => a.push(v),
            (Array::Blob(a), Plain::Blob(v)) => a.push(v),
            _ => unreachable!("Kind::plain and Kind::plain_type agree"),
        }
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Array::Int(a) => a,
            Array::Float(a) => a,
            Array::Text(a) => a,
            Array::Blob(a) => a,
        }
    }
}

/// The arrays as parameters with their types (one round trip: no prepare).
fn typed<'a>(arrays: &'a [Array], kinds: &[&Kind]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    arrays
        .iter()
        .zip(kinds)
        .map(|(a, k)| (a.param(), k.plain_array_type()))
        .collect()
}

/// The columns' kinds, refusing unmapped ones.
fn kinds<'a>(table: &str, columns: &'a [Column]) -> Result<Vec<&'a Kind>, PgError> {
    super::types::check(table, columns)?;
    Ok(columns
        .iter()
        .map(|c| c.kind.as_ref().expect("checked"))
        .collect())
}

/// `rows` (values in `columns` order) as one array per column.
fn arrays(columns: &[Column], kinds: &[&Kind], rows: &[Vec<Value>]) -> Result<Vec<Array>, PgError> {
    let mut arrays: Vec<Array> = kinds.iter().map(|k| Array::new(k, rows.len())).collect();
    for row in rows {
        if row.len() != columns.len() {
            return Err(PgError::Value {
                column: "*".into(),
                message: format!(
                    "a row of {} values for {} columns",
                    row.len(),
                    columns.len()
                ),
            });
        }
        for ((array, (kind, column)), value) in
            arrays.iter_mut().zip(kinds.iter().zip(columns)).zip(row)
        {
            array.push(kind.plain(value, &column.name)?);
        }
    }
    Ok(arrays)
}

/// `unnest($1::t1[], $2::t2[], …) WITH ORDINALITY AS u(c0, c1, …, o)` and the converted columns.
fn unnest(kinds: &[&Kind], columns: &[&Column]) -> (String, Vec<String>) {
    let params: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| format!("${}::{}[]", i + 1, k.plain_type()))
        .collect();
    let names: Vec<String> = (0..kinds.len()).map(|i| format!("c{i}")).collect();
    let values = kinds
        .iter()
        .zip(columns)
        .enumerate()
        .map(|(i, (k, c))| k.from_plain(&format!("u.c{i}"), &c.pg_type))
        .collect();
    (
        format!(
            "unnest({}) WITH ORDINALITY AS u({}, o)",
            params.join(", "),
            names.join(", ")
        ),
        values,
    )
}

/// Inserts or replaces `rows` (values in `columns` order, as [`super::types::describe`] gives
/// them, key columns first) in `schema.table`, in one statement. Returns the rows written.
pub fn upsert(
    client: &mut impl GenericClient,
    schema: &str,
    table: &str,
    columns: &[Column],
    rows: &[Vec<Value>],
) -> Result<u64, PgError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let kinds = kinds(table, columns)?;
    let arrays = arrays(columns, &kinds, rows)?;
    let all: Vec<&Column> = columns.iter().collect();
    let (from, values) = unnest(&kinds, &all);
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let keys: Vec<&String> = columns
        .iter()
        .zip(&names)
        .filter(|(c, _)| c.key)
        .map(|(_, n)| n)
        .collect();
    let set: Vec<String> = columns
        .iter()
        .zip(&names)
        .filter(|(c, _)| !c.key)
        .map(|(_, n)| format!("{n} = EXCLUDED.{n}"))
        .collect();
    let on_conflict = if set.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", set.join(", "))
    };
    let sql = format!(
        "INSERT INTO {}.{} ({}) SELECT {} FROM {from} ORDER BY o ON CONFLICT ({}) {on_conflict}",
        quote(schema),
        quote(table),
        names.join(", "),
        values.join(", "),
        keys.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    Ok(client.execute_typed(&sql, &typed(&arrays, &kinds))?)
}

/// Deletes the rows with `keys` (key values in key order) from `schema.table`, in one statement.
/// Returns the rows deleted.
pub fn delete(
    client: &mut impl GenericClient,
    schema: &str,
    table: &str,
    columns: &[Column],
    keys: &[Vec<Value>],
) -> Result<u64, PgError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let key_columns: Vec<Column> = columns.iter().filter(|c| c.key).cloned().collect();
    let kinds = kinds(table, &key_columns)?;
    let arrays = arrays(&key_columns, &kinds, keys)?;
    let all: Vec<&Column> = key_columns.iter().collect();
    let (from, values) = unnest(&kinds, &all);
    let matches: Vec<String> = key_columns
        .iter()
        .zip(&values)
        .map(|(c, v)| format!("t.{} = {v}", quote(&c.name)))
        .collect();
    let sql = format!(
        "DELETE FROM {}.{} t USING {from} WHERE {}",
        quote(schema),
        quote(table),
        matches.join(" AND ")
    );
    Ok(client.execute_typed(&sql, &typed(&arrays, &kinds))?)
}

/// Locks the existing rows with `keys` (key values in key order) of `schema.table`, in key
/// order (`FOR UPDATE`), in one statement. Rows that do not exist cannot be locked: a write
/// that raced on one is caught at its end (`sharecache.finish`).
pub fn lock(
    client: &mut impl GenericClient,
    schema: &str,
    table: &str,
    key_columns: &[Column],
    keys: &[Vec<Value>],
) -> Result<(), PgError> {
    if keys.is_empty() {
        return Ok(());
    }
    let kinds = kinds(table, key_columns)?;
    let arrays = arrays(key_columns, &kinds, keys)?;
    let all: Vec<&Column> = key_columns.iter().collect();
    let (from, values) = unnest(&kinds, &all);
    let matches: Vec<String> = key_columns
        .iter()
        .zip(&values)
        .map(|(c, v)| format!("t.{} = {v}", quote(&c.name)))
        .collect();
    let order: Vec<String> = key_columns
        .iter()
        .map(|c| format!("t.{}", quote(&c.name)))
        .collect();
    let sql = format!(
        "SELECT 1 FROM {}.{} t, {from} WHERE {} ORDER BY {} FOR UPDATE OF t",
        quote(schema),
        quote(table),
        matches.join(" AND "),
        order.join(", ")
    );
    client.execute_typed(&sql, &typed(&arrays, &kinds))?;
    Ok(())
}

/// The rows of `schema.table` with `keys` (key values in `key_columns` order), their `columns`
/// read (as [`super::types::Kind::select`] gives them), in one statement: what a pull of many
/// direct writes reads. Rows that no longer exist are not returned.
pub fn select_many(
    client: &mut impl GenericClient,
    schema: &str,
    table: &str,
    columns: &[Column],
    key_columns: &[Column],
    keys: &[Vec<Value>],
) -> Result<Vec<Vec<Value>>, PgError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let read = kinds(table, columns)?;
    let key_kinds = kinds(table, key_columns)?;
    let arrays = arrays(key_columns, &key_kinds, keys)?;
    let all: Vec<&Column> = key_columns.iter().collect();
    let (from, values) = unnest(&key_kinds, &all);
    let matches: Vec<String> = key_columns
        .iter()
        .zip(&values)
        .map(|(c, v)| format!("t.{} = {v}", quote(&c.name)))
        .collect();
    let list: Vec<String> = columns
        .iter()
        .zip(&read)
        .map(|(c, k)| k.select(&format!("t.{}", quote(&c.name))))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}.{} t, {from} WHERE {}",
        list.join(", "),
        quote(schema),
        quote(table),
        matches.join(" AND ")
    );
    client
        .query_typed(&sql, &typed(&arrays, &key_kinds))?
        .iter()
        .map(|r| {
            read.iter()
                .zip(columns)
                .enumerate()
                .map(|(i, (k, c))| k.read(r, i, &c.name))
                .collect()
        })
        .collect()
}
