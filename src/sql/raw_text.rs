//! TEXT values that are not valid UTF-8.
//!
//! SQLite stores whatever bytes a writer gives it as TEXT; Rust strings must be UTF-8, and
//! rusqlite refuses (or panics on) such values. sharecache moves them unchanged: read as bytes,
//! carried as a [`Value::Text`] that spells them out behind a marker no real text starts with,
//! and written back as the same bytes, as TEXT. The spelled-out form is valid UTF-8, so it also
//! passes through the JSON of the conflict log and comes back from a restore.

use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use super::{hex, unhex};

/// Two noncharacters, then a name: what a carried invalid-UTF-8 text starts with.
const MARK: &str = "\u{10FFFF}\u{FFFE}sharecache-raw-text:";

/// Reads column `i` of a row as a [`Value`], TEXT that is not UTF-8 included.
///
/// ```
/// # use rusqlite::{Connection, types::Value};
/// let c = Connection::open_in_memory()?;
/// let v = c.query_row("SELECT CAST(x'41ff42' AS TEXT)", [], |r| sharecache::sql::read_value(r, 0))?;
/// let back: String = c.query_row("SELECT hex(?1)", [sharecache::sql::Bind::new(&v)], |r| r.get(0))?;
/// assert_eq!(back, "41FF42");
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub fn read_value(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Value> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(bytes) => read_value_from_bytes(bytes),
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

/// The [`Value`] of a TEXT whose bytes are `bytes`, carried as [`read_value`] carries it.
///
/// ```
/// use rusqlite::types::Value;
/// assert_eq!(sharecache::sql::read_value_from_bytes(b"ok"), Value::Text("ok".into()));
/// ```
pub fn read_value_from_bytes(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::Text(s.to_owned()),
        Err(_) => Value::Text(format!("{MARK}{}", hex(bytes))),
    }
}

/// A [`Value`] bound as a statement parameter, carried invalid-UTF-8 TEXT as its bytes.
///
/// ```
/// # use rusqlite::{Connection, params_from_iter, types::Value};
/// use sharecache::sql::Bind;
/// let c = Connection::open_in_memory()?;
/// let row = [Value::Integer(1), Value::Text("plain".into())];
/// let n: i64 = c.query_row("SELECT ?1 + length(?2)", params_from_iter(Bind::all(&row)), |r| r.get(0))?;
/// assert_eq!(n, 6);
/// # Ok::<(), rusqlite::Error>(())
/// ```
#[derive(Debug)]
pub enum Bind<'a> {
    /// Any value, bound as it is.
    Value(&'a Value),
    /// The bytes of a TEXT value that is not UTF-8.
    RawText(Vec<u8>),
}

impl<'a> Bind<'a> {
    /// How to bind `v`.
    pub fn new(v: &'a Value) -> Bind<'a> {
        match v {
            Value::Text(s) => match s.strip_prefix(MARK).map(unhex) {
                Some(Ok(bytes)) => Bind::RawText(bytes),
                _ => Bind::Value(v),
            },
            _ => Bind::Value(v),
        }
    }

    /// Every value of a row or key.
    pub fn all(values: &'a [Value]) -> Vec<Bind<'a>> {
        values.iter().map(Bind::new).collect()
    }
}

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Bind::Value(v) => v.to_sql(),
            Bind::RawText(bytes) => Ok(ToSqlOutput::Borrowed(ValueRef::Text(bytes))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn text_that_is_not_utf8_comes_back_as_the_same_bytes_and_type() {
        let c = Connection::open_in_memory().unwrap();
        let v = c
            .query_row("SELECT CAST(x'c328' AS TEXT)", [], |r| read_value(r, 0))
            .unwrap();
        let (ty, hex): (String, String) = c
            .query_row("SELECT typeof(?1), hex(?1)", [Bind::new(&v)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((ty.as_str(), hex.as_str()), ("text", "C328"));
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let v = Value::Text("plain".into());
        assert!(matches!(Bind::new(&v), Bind::Value(_)));
    }
}
