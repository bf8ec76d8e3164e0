//! Small SQL helpers shared by the cache and the remote: identifier quoting, and the text
//! encoding of primary keys and rows that triggers, the outbox, the change log and the conflict
//! log all use.
//!
//! A primary key is stored as the JSON array SQLite's `json_array()` builds from the key's
//! columns, with BLOB values wrapped as `{"$blob":"<hex>"}` (JSON cannot hold BLOBs). Triggers
//! build it with built-in functions only ([`key_expr`]); Rust decodes it with [`decode_key`].

mod raw_text;

use rusqlite::types::Value;
use serde_json::Value as Json;

pub use raw_text::{Bind, read_value, read_value_from_bytes};

/// Quotes an SQL identifier (table, column, trigger name) for safe interpolation.
///
/// ```
/// assert_eq!(sharecache::sql::quote("my \"odd\" table"), "\"my \"\"odd\"\" table\"");
/// ```
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Quotes a string as an SQL text literal.
///
/// ```
/// assert_eq!(sharecache::sql::literal("it's"), "'it''s'");
/// ```
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The SQL expression (for use inside a trigger) that encodes the key columns of the `NEW` or
/// `OLD` row as key text. `prefix` is `NEW` or `OLD`.
///
/// ```
/// let e = sharecache::sql::key_expr("NEW", &["id".to_string()]);
/// assert!(e.starts_with("json_array("));
/// ```
pub fn key_expr(prefix: &str, columns: &[String]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let v = format!("{prefix}.{}", quote(c));
            format!(
                "CASE WHEN typeof({v}) = 'blob' THEN json_object('$blob', hex({v})) ELSE {v} END"
            )
        })
        .collect();
    format!("json_array({})", parts.join(", "))
}

/// The SQL expression (for use inside a trigger) of a row's place in its table's key order, as
/// the outbox sorts it: the value of the first key column (NULL as the empty text). `prefix` is
/// `NEW` or `OLD`. [`order_value`] is the same from decoded key values.
///
/// ```
/// let e = sharecache::sql::order_expr("NEW", &["id".to_string(), "n".to_string()]);
/// assert_eq!(e, r#"ifnull(NEW."id", '')"#);
/// ```
pub fn order_expr(prefix: &str, columns: &[String]) -> String {
    match columns.first() {
        Some(c) => format!("ifnull({prefix}.{}, '')", quote(c)),
        None => "''".into(),
    }
}

/// A row's place in its table's key order from its key values, exactly as [`order_expr`] gives
/// it in SQL.
///
/// ```
/// use rusqlite::types::Value;
/// assert_eq!(sharecache::sql::order_value(&[Value::Integer(7), Value::Null]), Value::Integer(7));
/// assert_eq!(sharecache::sql::order_value(&[Value::Null]), Value::Text(String::new()));
/// ```
pub fn order_value(key: &[Value]) -> Value {
    match key.first() {
        None | Some(Value::Null) => Value::Text(String::new()),
        Some(v) => v.clone(),
    }
}

/// Encodes key values as key text, exactly as [`key_expr`] does in SQL.
///
/// ```
/// use rusqlite::types::Value;
/// let k = sharecache::sql::encode_key(&[Value::Integer(7), Value::Text("a".into())]);
/// assert_eq!(k, r#"[7,"a"]"#);
/// ```
pub fn encode_key(values: &[Value]) -> String {
    Json::Array(values.iter().map(value_to_json).collect()).to_string()
}

/// Decodes key text into the key's column values.
///
/// ```
/// use rusqlite::types::Value;
/// let v = sharecache::sql::decode_key(r#"[1,"x",{"$blob":"00FF"}]"#).unwrap();
/// assert_eq!(v, vec![Value::Integer(1), Value::Text("x".into()), Value::Blob(vec![0, 255])]);
/// ```
pub fn decode_key(text: &str) -> Result<Vec<Value>, String> {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Array(items)) => items.iter().map(json_to_value).collect(),
        Ok(other) => Err(format!("key is not a JSON array: {other}")),
        Err(e) => Err(format!("key {text:?} is not valid JSON: {e}")),
    }
}

/// Converts an SQLite value to JSON (BLOBs as `{"$blob": hex}`).
pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => Json::from(*i),
        Value::Real(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::Blob(b) => {
            let mut m = serde_json::Map::new();
            m.insert("$blob".into(), Json::String(hex(b)));
            Json::Object(m)
        }
    }
}

/// Converts JSON produced by [`value_to_json`] (or SQLite's JSON functions) back to a value.
pub fn json_to_value(j: &Json) -> Result<Value, String> {
    Ok(match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(
                n.as_f64()
                    .ok_or_else(|| format!("number {n} out of range"))?,
            ),
        },
        Json::String(s) => Value::Text(s.clone()),
        Json::Object(m) => match m.get("$blob") {
            Some(Json::String(h)) if m.len() == 1 => Value::Blob(unhex(h)?),
            _ => return Err(format!("unexpected JSON object in key or row: {j}")),
        },
        Json::Array(_) => return Err(format!("unexpected JSON array in key or row: {j}")),
    })
}

/// Encodes a row (column names and values) as a JSON object, for the conflict log.
pub fn row_to_json(columns: &[String], values: &[Value]) -> String {
    let mut m = serde_json::Map::new();
    for (c, v) in columns.iter().zip(values) {
        m.insert(c.clone(), value_to_json(v));
    }
    Json::Object(m).to_string()
}

/// Decodes a row encoded by [`row_to_json`] into (column, value) pairs in the stored order.
pub fn row_from_json(text: &str) -> Result<Vec<(String, Value)>, String> {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(m)) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), json_to_value(v)?)))
            .collect(),
        Ok(other) => Err(format!("row is not a JSON object: {other}")),
        Err(e) => Err(format!("row is not valid JSON: {e}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 {
        return Err(format!("odd-length hex {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| format!("bad hex {text:?}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn sql_key_expression_matches_rust_encoding_for_every_type() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t(a, b, c, d, e); INSERT INTO t VALUES (-5, 'x\"y''z', x'00ff10', 2.5, NULL);")
            .unwrap();
        let cols: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let sql = format!("SELECT {} FROM t AS NEW", key_expr("NEW", &cols));
        let from_sql: String = db.query_row(&sql, [], |r| r.get(0)).unwrap();
        let values = vec![
            Value::Integer(-5),
            Value::Text("x\"y'z".into()),
            Value::Blob(vec![0, 255, 16]),
            Value::Real(2.5),
            Value::Null,
        ];
        assert_eq!(from_sql, encode_key(&values));
        assert_eq!(decode_key(&from_sql).unwrap(), values);
    }

    #[test]
    fn quoted_identifiers_survive_keywords_spaces_and_quotes() {
        let db = Connection::open_in_memory().unwrap();
        for name in ["select", "my table", "we\"ird", "x'y"] {
            db.execute_batch(&format!(
                "CREATE TABLE {}({} INTEGER)",
                quote(name),
                quote(name)
            ))
            .unwrap();
        }
        let n: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 4);
    }

    #[test]
    fn rows_round_trip_through_json() {
        let cols = vec!["id".to_string(), "data".to_string()];
        let vals = vec![Value::Integer(1), Value::Blob(vec![1, 2, 3])];
        let back = row_from_json(&row_to_json(&cols, &vals)).unwrap();
        assert_eq!(
            back,
            vec![
                ("id".into(), vals[0].clone()),
                ("data".into(), vals[1].clone())
            ]
        );
    }

    #[test]
    fn malformed_key_text_is_an_error_not_a_panic() {
        assert!(decode_key("not json").is_err());
        assert!(decode_key("{}").is_err());
        assert!(decode_key(r#"[{"$blob":"0"}]"#).is_err());
    }
}
