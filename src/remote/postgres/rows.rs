//! Writing a batch of cache rows into an app table in one statement (one round trip): every
//! column travels as one array parameter of its plain type ([`Kind::plain_type`]), `unnest`
//! turns them back into rows, and each value is converted on the server ([`Kind::from_plain`]).
//! Deletes and row locks take the key columns the same way. Each is also given as a part of a
//! larger statement (`*_sql`, numbering its parameters in [`Params`]): a push sends its locks
//! and its version read as one statement, and its row writes and its end as one more. The LWW
//! decision is not here: it stays in sync, which calls these with the rows it decided to write.

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

    fn into_param(self) -> Box<dyn ToSql + Sync> {
        match self {
            Array::Int(a) => Box::new(a),
            Array::Float(a) => Box::new(a),
            Array::Text(a) => Box::new(a),
            Array::Blob(a) => Box::new(a),
        }
    }
}

/// The parameters of a statement built in parts ([`upsert_sql`], [`delete_sql`], [`lock_sql`]
/// and whatever the caller adds): each part numbers its parameters after those before it, so
/// several tables' rows and a function call travel in one statement, one round trip. Each
/// parameter goes with its type (no prepare).
#[derive(Default)]
pub struct Params(Vec<(Box<dyn ToSql + Sync>, Type)>);

impl Params {
    /// Adds a parameter; returns its placeholder (`$n`).
    pub fn push(&mut self, value: Box<dyn ToSql + Sync>, ty: Type) -> String {
        self.0.push((value, ty));
        format!("${}", self.0.len())
    }

    /// The parameters as `query_typed` takes them.
    pub fn typed(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.0
            .iter()
            .map(|(p, t)| (p.as_ref(), t.clone()))
            .collect()
    }
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

/// `unnest($a::t1[], $b::t2[], …) WITH ORDINALITY AS u(c0, c1, …, o)` with the values of
/// `rows` (in `columns` order) added to `params` as one array per column, and the converted
/// columns.
fn unnest(
    params: &mut Params,
    table: &str,
    columns: &[Column],
    rows: &[Vec<Value>],
) -> Result<(String, Vec<String>), PgError> {
    let kinds = kinds(table, columns)?;
    let arrays = arrays(columns, &kinds, rows)?;
    let placeholders: Vec<String> = kinds
        .iter()
        .zip(arrays)
        .map(|(k, a)| {
            let n = params.push(a.into_param(), k.plain_array_type());
            format!("{n}::{}[]", k.plain_type())
        })
        .collect();
    let names: Vec<String> = (0..kinds.len()).map(|i| format!("c{i}")).collect();
    let values = kinds
        .iter()
        .zip(columns)
        .enumerate()
        .map(|(i, (k, c))| k.from_plain(&format!("u.c{i}"), &c.pg_type))
        .collect();
    Ok((
        format!(
            "unnest({}) WITH ORDINALITY AS u({}, o)",
            placeholders.join(", "),
            names.join(", ")
        ),
        values,
    ))
}

/// `t.k = <value>` for each key column, joined with AND.
fn matches(key_columns: &[Column], values: &[String]) -> String {
    key_columns
        .iter()
        .zip(values)
        .map(|(c, v)| format!("t.{} = {v}", quote(&c.name)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The statement that inserts or replaces `rows` (values in `columns` order, as
/// [`super::types::describe`] gives them, key columns flagged) in `schema.table`, its arrays
/// added to `params`. `after`: a condition the rows wait for (evaluated once, before the first
/// row: a part that must run after another, in one statement).
pub fn upsert_sql(
    params: &mut Params,
    schema: &str,
    table: &str,
    columns: &[Column],
    rows: &[Vec<Value>],
    after: Option<&str>,
) -> Result<String, PgError> {
    let (from, values) = unnest(params, table, columns, rows)?;
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let keys: Vec<&str> = columns
        .iter()
        .zip(&names)
        .filter(|(c, _)| c.key)
        .map(|(_, n)| n.as_str())
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
    let filter = after.map(|a| format!(" WHERE {a}")).unwrap_or_default();
    Ok(format!(
        "INSERT INTO {}.{} ({}) SELECT {} FROM {from}{filter} ORDER BY o ON CONFLICT ({}) {on_conflict}",
        quote(schema),
        quote(table),
        names.join(", "),
        values.join(", "),
        keys.join(", "),
    ))
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
    let mut params = Params::default();
    let sql = upsert_sql(&mut params, schema, table, columns, rows, None)?;
    Ok(client.execute_typed(&sql, &params.typed())?)
}

/// The statement that deletes the rows with `keys` (key values in key order) from
/// `schema.table`, its arrays added to `params`; `after` as for [`upsert_sql`].
pub fn delete_sql(
    params: &mut Params,
    schema: &str,
    table: &str,
    columns: &[Column],
    keys: &[Vec<Value>],
    after: Option<&str>,
) -> Result<String, PgError> {
    let key_columns: Vec<Column> = columns.iter().filter(|c| c.key).cloned().collect();
    let (from, values) = unnest(params, table, &key_columns, keys)?;
    let filter = after.map(|a| format!(" AND {a}")).unwrap_or_default();
    Ok(format!(
        "DELETE FROM {}.{} t USING {from} WHERE {}{filter}",
        quote(schema),
        quote(table),
        matches(&key_columns, &values)
    ))
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
    let mut params = Params::default();
    let sql = delete_sql(&mut params, schema, table, columns, keys, None)?;
    Ok(client.execute_typed(&sql, &params.typed())?)
}

/// The query that locks the existing rows with `keys` (key values in key order) of
/// `schema.table`, in key order (`FOR UPDATE`), its arrays added to `params`. Rows that do not
/// exist cannot be locked: a write that raced on one is caught at its end
/// (`sharecache.finish`).
pub fn lock_sql(
    params: &mut Params,
    schema: &str,
    table: &str,
    key_columns: &[Column],
    keys: &[Vec<Value>],
) -> Result<String, PgError> {
    let (from, values) = unnest(params, table, key_columns, keys)?;
    let order: Vec<String> = key_columns
        .iter()
        .map(|c| format!("t.{}", quote(&c.name)))
        .collect();
    Ok(format!(
        "SELECT 1 FROM {}.{} t, {from} WHERE {} ORDER BY {} FOR UPDATE OF t",
        quote(schema),
        quote(table),
        matches(key_columns, &values),
        order.join(", ")
    ))
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
    let mut params = Params::default();
    let (from, values) = unnest(&mut params, table, key_columns, keys)?;
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
        matches(key_columns, &values)
    );
    client
        .query_typed(&sql, &params.typed())?
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
