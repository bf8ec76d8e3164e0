//! PostgreSQL ↔ SQLite values: how each PostgreSQL column is mirrored in the cache, read from the
//! server and written back, so that a value crosses both ways unchanged.
//!
//! | PostgreSQL | SQLite (cache) | form | notes |
//! | --- | --- | --- | --- |
//! | `smallint`, `integer`, `bigint` | INTEGER | the number | a push out of the column's range is refused by the server |
//! | `boolean` | INTEGER | 0 / 1 | any other integer is refused, not read as true |
//! | `real`, `double precision` | REAL | the float | NaN is refused (SQLite stores it as NULL); `real` takes values a `real` can hold |
//! | `numeric` | TEXT | PostgreSQL's text, e.g. `1.50` | exact: never a binary float; text the server prints otherwise (`-0`, `1e3`) comes back as it prints it |
//! | `text`, `varchar(n)` | TEXT | the text | |
//! | `bytea` | BLOB | the bytes | |
//! | `uuid` | TEXT | lowercase hyphenated | |
//! | `date`, `timestamp`, `timestamptz` | TEXT | ISO as the server prints it with `DateStyle=ISO`, `TimeZone=UTC`: `2026-12-04`, `2026-12-04 10:15:30.123456`, `2026-12-04 10:15:30.123456+00` | `infinity` and BC dates too |
//! | `json` | TEXT | the text as stored | |
//! | `jsonb` | TEXT | jsonb's normal form | text written in another form comes back normalised |
//! | one-dimensional arrays of the above | TEXT | a JSON array as `array_to_json` writes it (`["a",null]`) | lower bound 1; other bounds and more dimensions are refused; JSON written with other spacing comes back in this form |
//!
//! Anything else (`char(n)`, whose padding text casts drop, `money`, `interval`, geometric and
//! range types, domains, enums, composites) is an [`Kind`]-less column: [`describe`] reports it
//! with its type, and nothing guesses a mapping. Key columns take the scalar kinds except floats,
//! JSON and arrays (key text must be exact and canonical).
//!
//! Reads select an expression per column ([`Kind::select`]) and convert the result
//! ([`Kind::read`]); writes bind a parameter of a plain type and cast it on the server
//! ([`Kind::param_sql`], [`Kind::param`]). The connection's session settings
//! ([`super::connect`]) make the text forms independent of the server's defaults.

use postgres::types::{ToSql, Type};
use rusqlite::types::Value;

use super::PgError;
use crate::sql::quote;

/// How a PostgreSQL column is mirrored (see the module table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `smallint`, `integer`, `bigint`.
    Integer,
    /// `boolean` as 0/1.
    Bool,
    /// `real`, `double precision`.
    Float,
    /// Kept as PostgreSQL's text form: `numeric`, `text`, `varchar`, `uuid`, `date`,
    /// `timestamp`, `timestamptz`, `json`, `jsonb`.
    Text,
    /// `bytea`.
    Bytea,
    /// A one-dimensional array as JSON text; the element's type as `format_type` spells it.
    Array(String),
}

/// A cache value as the plain server type it travels as ([`Kind::plain_type`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    /// `int8`.
    Int(Option<i64>),
    /// `float8`.
    Float(Option<f64>),
    /// `text`.
    Text(Option<String>),
    /// `bytea`.
    Blob(Option<Vec<u8>>),
}

/// One column of a PostgreSQL table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type as `format_type` spells it (`numeric(10,2)`, `integer[]`).
    pub pg_type: String,
    /// Its mapping, or `None`: unsupported (report it).
    pub kind: Option<Kind>,
    /// Whether it is part of the primary key (in key order: see [`describe`]).
    pub key: bool,
    /// `NOT NULL`.
    pub not_null: bool,
    /// Its default as the server prints it (`false`, `'x'::text`, `now()`), if any.
    pub default: Option<String>,
}

/// The mapping of a base type by its `pg_type.typname`.
fn scalar(typname: &str) -> Option<Kind> {
    Some(match typname {
        "int2" | "int4" | "int8" => Kind::Integer,
        "bool" => Kind::Bool,
        "float4" | "float8" => Kind::Float,
        "numeric" | "text" | "varchar" | "uuid" | "date" | "timestamp" | "timestamptz" | "json"
        | "jsonb" => Kind::Text,
        "bytea" => Kind::Bytea,
        _ => return None,
    })
}

/// The mapping of a type given its `typname`, and for an array its element's `typname` and
/// spelled type.
pub fn kind_of(typname: &str, element: Option<(&str, &str)>) -> Option<Kind> {
    match element {
        Some((elem, spelled)) => scalar(elem).map(|_| Kind::Array(spelled.to_owned())),
        None => scalar(typname),
    }
}

/// The columns of `schema.table` in their order, primary-key columns flagged; key columns come
/// first, in key order, so `key_sql` and `encode_key` agree on the order.
pub fn describe(
    client: &mut impl postgres::GenericClient,
    schema: &str,
    table: &str,
) -> Result<Vec<Column>, PgError> {
    Ok(describe_tables(client, schema, Some(table))?
        .pop()
        .map_or_else(Vec::new, |(_, columns)| columns))
}

/// [`describe`] for every table of `schema` (`only`: one of them), in one statement: `(table,
/// columns)` in table name order.
pub fn describe_tables(
    client: &mut impl postgres::GenericClient,
    schema: &str,
    only: Option<&str>,
) -> Result<Vec<(String, Vec<Column>)>, PgError> {
    let rows = client.query_typed(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, \
                e.typname::text, format_type(t.typelem, NULL), \
                array_position(i.indkey::int2[], a.attnum), a.attnotnull, \
                pg_get_expr(d.adbin, d.adrelid), c.relname::text \
         FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
         LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
         LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
         WHERE n.nspname = $1 AND ($2::text IS NULL OR c.relname = $2) AND c.relkind IN ('r', 'p') \
           AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY c.relname, array_position(i.indkey::int2[], a.attnum) NULLS LAST, a.attnum",
        &[(&schema, Type::TEXT), (&only, Type::TEXT)],
    )?;
    let mut out: Vec<(String, Vec<Column>)> = Vec::new();
    for r in &rows {
        let typname: String = r.get(2);
        let elem: Option<String> = r.get(3);
        let elem_spelled: Option<String> = r.get(4);
        let element = elem.as_deref().zip(elem_spelled.as_deref());
        let column = Column {
            name: r.get(0),
            pg_type: r.get(1),
            kind: kind_of(&typname, element),
            key: r.get::<_, Option<i32>>(5).is_some(),
            not_null: r.get(6),
            default: r.get(7),
        };
        let table: String = r.get(8);
        match out.last_mut() {
            Some((t, columns)) if *t == table => columns.push(column),
            _ => out.push((table, vec![column])),
        }
    }
    Ok(out)
}

/// Refuses a table with a column [`describe`] found no mapping for, or an unusable key column.
pub fn check(table: &str, columns: &[Column]) -> Result<(), PgError> {
    for c in columns {
        let unsupported = |hint: &str| PgError::UnsupportedType {
            table: table.to_owned(),
            column: c.name.clone(),
            pg_type: c.pg_type.clone(),
            hint: hint.to_owned(),
        };
        match &c.kind {
            None => {
                return Err(unsupported(
                    "the supported types are listed in the README (src/remote/postgres/types.rs)",
                ));
            }
            Some(Kind::Float | Kind::Array(_)) if c.key => {
                return Err(unsupported(
                    "a key column must be an integer, text, uuid, date or timestamp",
                ));
            }
            Some(Kind::Text) if c.key && c.pg_type.starts_with("json") => {
                return Err(unsupported(
                    "a key column must be an integer, text, uuid, date or timestamp",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

impl Kind {
    /// The cache column's declared type (its SQLite affinity).
    pub fn sqlite_type(&self) -> &'static str {
        match self {
            Kind::Integer | Kind::Bool => "INTEGER",
            Kind::Float => "REAL",
            Kind::Text | Kind::Array(_) => "TEXT",
            Kind::Bytea => "BLOB",
        }
    }

    /// The expression to select for column `col` (already quoted) of this kind.
    pub fn select(&self, col: &str) -> String {
        match self {
            Kind::Integer => format!("{col}::int8"),
            Kind::Bool => format!("{col}::int4"),
            Kind::Float => format!("{col}::float8"),
            Kind::Text => format!("{col}::text"),
            Kind::Bytea => col.to_owned(),
            // More than one dimension, or a lower bound other than 1, would not come back from
            // JSON as it was: marked with `!` (which no JSON text starts with) and refused.
            Kind::Array(_) => format!(
                "CASE WHEN coalesce(array_ndims({col}), 1) = 1 AND coalesce(array_lower({col}, 1), 1) = 1 \
                 THEN array_to_json({col})::text ELSE '!' || {col}::text END"
            ),
        }
    }

    /// The type column `i` of a [`Kind::select`] arrives as (a binary COPY needs it said).
    pub fn selected_type(&self) -> Type {
        match self {
            Kind::Integer => Type::INT8,
            Kind::Bool => Type::INT4,
            Kind::Float => Type::FLOAT8,
            Kind::Text | Kind::Array(_) => Type::TEXT,
            Kind::Bytea => Type::BYTEA,
        }
    }

    /// Reads column `i` of a row selected with [`Kind::select`]; `name` is for errors.
    pub fn read(&self, row: &impl Source, i: usize, name: &str) -> Result<Value, PgError> {
        let value = match self {
            Kind::Integer => row.int8(i)?.map(Value::Integer),
            Kind::Bool => row.int4(i)?.map(|b| Value::Integer(b.into())),
            Kind::Float => match row.float8(i)? {
                Some(f) if f.is_nan() => {
                    return Err(value_error(
                        name,
                        "NaN has no SQLite form (it would become NULL)",
                    ));
                }
                f => f.map(Value::Real),
            },
            Kind::Text => row.text(i)?.map(Value::Text),
            Kind::Bytea => row.bytea(i)?.map(Value::Blob),
            Kind::Array(_) => match row.text(i)? {
                Some(t) if t.starts_with('!') => {
                    return Err(value_error(
                        name,
                        &format!(
                            "the array {} has more than one dimension or a lower bound other than 1; \
                             only one-dimensional arrays from 1 map to JSON",
                            &t[1..]
                        ),
                    ));
                }
                t => t.map(Value::Text),
            },
        };
        Ok(value.unwrap_or(Value::Null))
    }

    /// [`Kind::plain_type`] as the client names it (for statements sent with their types, in
    /// one round trip).
    pub fn plain_pg_type(&self) -> postgres::types::Type {
        use postgres::types::Type;
        match self.plain_type() {
            "int8" => Type::INT8,
            "float8" => Type::FLOAT8,
            "bytea" => Type::BYTEA,
            _ => Type::TEXT,
        }
    }

    /// An array of [`Kind::plain_pg_type`].
    pub fn plain_array_type(&self) -> postgres::types::Type {
        use postgres::types::Type;
        match self.plain_type() {
            "int8" => Type::INT8_ARRAY,
            "float8" => Type::FLOAT8_ARRAY,
            "bytea" => Type::BYTEA_ARRAY,
            _ => Type::TEXT_ARRAY,
        }
    }

    /// The plain type a cache value travels to the server as (see [`Kind::plain`]).
    pub fn plain_type(&self) -> &'static str {
        match self {
            Kind::Integer | Kind::Bool => "int8",
            Kind::Float => "float8",
            Kind::Text | Kind::Array(_) => "text",
            Kind::Bytea => "bytea",
        }
    }

    /// `expr`, of [`Kind::plain_type`], converted on the server into a column of type `pg_type`.
    pub fn from_plain(&self, expr: &str, pg_type: &str) -> String {
        match self {
            Kind::Bool => format!("(({expr}) <> 0)"),
            Kind::Bytea => format!("({expr})"),
            Kind::Integer | Kind::Float | Kind::Text => format!("({expr})::{pg_type}"),
            Kind::Array(elem) => format!(
                "CASE WHEN ({expr}) IS NULL THEN NULL ELSE ARRAY(SELECT x::{elem} FROM \
                 jsonb_array_elements_text(({expr})::jsonb) WITH ORDINALITY AS j(x, o) ORDER BY o) END::{pg_type}"
            ),
        }
    }

    /// The SQL for parameter `$n` written into a column of this kind and type `pg_type`.
    pub fn param_sql(&self, n: usize, pg_type: &str) -> String {
        self.from_plain(&format!("${n}::{}", self.plain_type()), pg_type)
    }

    /// `value` (a cache value) as the plain value a column of this kind takes; a value of the
    /// wrong storage class is refused, not converted.
    pub fn plain(&self, value: &Value, name: &str) -> Result<Plain, PgError> {
        let wrong = |want: &str| {
            value_error(
                name,
                &format!(
                    "the cache holds {} where the server column needs {want}",
                    class(value)
                ),
            )
        };
        Ok(match (self, value) {
            (Kind::Integer | Kind::Bool, Value::Null) => Plain::Int(None),
            (Kind::Integer, Value::Integer(i)) => Plain::Int(Some(*i)),
            (Kind::Integer, _) => return Err(wrong("an integer")),
            (Kind::Bool, Value::Integer(i @ (0 | 1))) => Plain::Int(Some(*i)),
            (Kind::Bool, _) => return Err(wrong("0 or 1")),
            (Kind::Float, Value::Null) => Plain::Float(None),
            (Kind::Float, Value::Real(f)) => Plain::Float(Some(*f)),
            (Kind::Float, Value::Integer(i)) if (*i as f64) as i64 == *i => {
                Plain::Float(Some(*i as f64))
            }
            (Kind::Float, _) => return Err(wrong("a number")),
            (Kind::Text | Kind::Array(_), Value::Null) => Plain::Text(None),
            (Kind::Text | Kind::Array(_), Value::Text(t)) => Plain::Text(Some(t.clone())),
            (Kind::Text | Kind::Array(_), _) => return Err(wrong("text")),
            (Kind::Bytea, Value::Null) => Plain::Blob(None),
            (Kind::Bytea, Value::Blob(b)) => Plain::Blob(Some(b.clone())),
            (Kind::Bytea, _) => return Err(wrong("a blob")),
        })
    }

    /// The parameter for `value` in a column of this kind (see [`Kind::plain`]).
    pub fn param(&self, value: &Value, name: &str) -> Result<Box<dyn ToSql + Sync>, PgError> {
        Ok(match self.plain(value, name)? {
            Plain::Int(v) => Box::new(v),
            Plain::Float(v) => Box::new(v),
            Plain::Text(v) => Box::new(v),
            Plain::Blob(v) => Box::new(v),
        })
    }

    /// A PL/pgSQL expression giving the key text of `expr` (a key column of this kind) exactly as
    /// [`crate::sql::encode_key`] writes the cache value, so a trigger's entries name the same
    /// row as a push's.
    pub fn key_sql(&self, expr: &str) -> String {
        match self {
            Kind::Integer => format!("({expr})::int8::text"),
            Kind::Bool => format!("CASE WHEN {expr} THEN '1' ELSE '0' END"),
            Kind::Bytea => format!("'X''' || upper(encode({expr}, 'hex')) || ''''"),
            _ => format!("'''' || replace(({expr})::text, '''', '''''') || ''''"),
        }
    }
}

fn class(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

fn value_error(column: &str, message: &str) -> PgError {
    PgError::Value {
        column: column.to_owned(),
        message: message.to_owned(),
    }
}

/// `SELECT` of every column of `schema.table`, each through [`Kind::select`].
pub fn select_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| match &c.kind {
            Some(k) => k.select(&quote(&c.name)),
            None => "NULL".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row values are read from: a query's, or a binary COPY's (the snapshot streams one).
pub trait Source {
    /// An `int8` column.
    fn int8(&self, i: usize) -> Result<Option<i64>, postgres::Error>;
    /// An `int4` column.
    fn int4(&self, i: usize) -> Result<Option<i32>, postgres::Error>;
    /// A `float8` column.
    fn float8(&self, i: usize) -> Result<Option<f64>, postgres::Error>;
    /// A `text` column.
    fn text(&self, i: usize) -> Result<Option<String>, postgres::Error>;
    /// A `bytea` column.
    fn bytea(&self, i: usize) -> Result<Option<Vec<u8>>, postgres::Error>;
}

macro_rules! source {
    ($row:ty) => {
        impl Source for $row {
            fn int8(&self, i: usize) -> Result<Option<i64>, postgres::Error> {
                self.try_get(i)
            }
            fn int4(&self, i: usize) -> Result<Option<i32>, postgres::Error> {
                self.try_get(i)
            }
            fn float8(&self, i: usize) -> Result<Option<f64>, postgres::Error> {
                self.try_get(i)
            }
            fn text(&self, i: usize) -> Result<Option<String>, postgres::Error> {
                self.try_get(i)
            }
            fn bytea(&self, i: usize) -> Result<Option<Vec<u8>>, postgres::Error> {
                self.try_get(i)
            }
        }
    };
}

source!(postgres::Row);
source!(postgres::binary_copy::BinaryCopyOutRow);
