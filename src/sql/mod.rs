//! Small SQL helpers shared by the cache and the remote: identifier quoting, and the text
//! encoding of primary keys and rows that triggers, the outbox, the change log and the conflict
//! log all use.
//!
//! A primary key is stored as *key text*, built by the capture and change-log triggers with core
//! SQL that every SQLite since 3.7.17 (2013) runs the same way ([`key_expr`]): other programs
//! write the cache and the remote with whatever SQLite they bundle, often one without JSON
//! functions (README, Known limits). The key's columns are joined by `,`, each written as:
//!
//! | value | key text | built with |
//! | --- | --- | --- |
//! | NULL | `NULL` | `quote()` |
//! | INTEGER | `-42` | `quote()` |
//! | TEXT | `'it''s'` (quotes doubled) | `quote()` |
//! | BLOB | `X'00FF'` | `quote()` |
//! | REAL | `F2:2305843009213693952` | integer arithmetic, see below |
//!
//! `quote()` and `CAST(… AS TEXT)` of a REAL are not stable across SQLite versions (3.7–3.31
//! print 15 significant digits, or 20 after the point when those do not read back; newer ones
//! print the shortest exact form, with other exponent thresholds), so a REAL is written as its
//! whole part and its fraction in units of 2⁻⁶², both exact integers in every version:
//! `trunc(r)` and `(r - trunc(r)) * 2^62`. That is exact for every REAL with a magnitude below
//! 2⁶³ whose lowest bit is worth at least 2⁻⁶² (every REAL from 2⁻¹⁰ up, and every whole
//! number); a write of any other REAL into a key column fails in the trigger with a message,
//! never goes uncaptured. [`encode_key`] writes the same text in Rust and [`decode_key`] reads
//! it back exactly.

mod raw_text;
pub mod rows;

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

/// 2⁶², the unit of a REAL key value's fraction in key text (see the module docs).
const FRACTION_UNIT: f64 = 4_611_686_018_427_387_904.0;

/// The message a trigger fails with when a key column gets a REAL that key text cannot hold.
pub const REAL_KEY_REFUSED: &str = "sharecache: this REAL key value cannot be synced exactly \
     (a key may hold whole numbers, or REAL values from 2^-10 up to 2^63 in magnitude); \
     use an INTEGER or TEXT key, or round the value";

/// The SQL expression (for use inside a trigger) that encodes the key columns of the `NEW` or
/// `OLD` row as key text (see the module docs). `prefix` is `NEW` or `OLD`. Core SQL only, the
/// same result in every SQLite since 3.7.17; a REAL that key text cannot hold makes the
/// trigger fail (`RAISE(ABORT, …)`), so this expression is for trigger bodies only.
///
/// ```
/// let e = sharecache::sql::key_expr("NEW", &["id".to_string()]);
/// assert!(e.contains(r#"quote(NEW."id")"#));
/// ```
pub fn key_expr(prefix: &str, columns: &[String]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let v = format!("{prefix}.{}", quote(c));
            let whole = format!("CAST({v} AS INTEGER)");
            let frac = format!("({v} - {whole}) * {FRACTION_UNIT:.1}");
            format!(
                "CASE typeof({v}) WHEN 'real' THEN \
                 CASE WHEN abs({v}) < 9223372036854775808.0 AND {frac} = CAST({frac} AS INTEGER) \
                 THEN 'F' || {whole} || ':' || CAST({frac} AS INTEGER) \
                 ELSE RAISE(ABORT, {msg}) END \
                 ELSE quote({v}) END",
                msg = literal(REAL_KEY_REFUSED)
            )
        })
        .collect();
    parts.join(" || ',' || ")
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
/// A REAL that the triggers refuse (see the module docs) is written as `R` and the 16 hex
/// digits of its bits: [`decode_key`] reads it back exactly, and no trigger ever writes it.
///
/// ```
/// use rusqlite::types::Value;
/// let k = sharecache::sql::encode_key(&[Value::Integer(7), Value::Text("a".into()), Value::Real(2.5)]);
/// assert_eq!(k, "7,'a',F2:2305843009213693952");
/// ```
pub fn encode_key(values: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            Value::Null => out.push_str("NULL"),
            Value::Integer(n) => out.push_str(&n.to_string()),
            Value::Text(t) => out.push_str(&literal(t)),
            Value::Blob(b) => {
                out.push_str("X'");
                out.push_str(&hex(b));
                out.push('\'');
            }
            Value::Real(r) => match real_parts(*r) {
                Some((whole, frac)) => out.push_str(&format!("F{whole}:{frac}")),
                None => out.push_str(&format!("R{:016X}", r.to_bits())),
            },
        }
    }
    out
}

/// A REAL's whole part and its fraction in units of 2⁻⁶², when key text can hold it exactly
/// (the same test the triggers make).
fn real_parts(r: f64) -> Option<(i64, i64)> {
    if r.is_nan() || r.abs() >= 9_223_372_036_854_775_808.0 {
        return None; // also the infinities
    }
    let whole = r.trunc();
    let frac = (r - whole) * FRACTION_UNIT;
    (frac == frac.trunc()).then_some((whole as i64, frac as i64))
}

/// Decodes key text into the key's column values.
///
/// ```
/// use rusqlite::types::Value;
/// let v = sharecache::sql::decode_key("1,'x,''y',X'00FF',NULL,F-2:-2305843009213693952").unwrap();
/// assert_eq!(
///     v,
///     vec![Value::Integer(1), Value::Text("x,'y".into()), Value::Blob(vec![0, 255]), Value::Null, Value::Real(-2.5)]
/// );
/// ```
pub fn decode_key(text: &str) -> Result<Vec<Value>, String> {
    let bad = |why: &str| format!("key text {text:?} is malformed: {why}");
    let mut values = Vec::new();
    let mut rest = text;
    loop {
        let (value, tail) = decode_one(rest).map_err(|why| bad(&why))?;
        values.push(value);
        match tail.strip_prefix(',') {
            Some(next) => rest = next,
            None if tail.is_empty() => return Ok(values),
            None => return Err(bad(&format!("unexpected {tail:?}"))),
        }
    }
}

/// One value of key text and what follows it.
fn decode_one(s: &str) -> Result<(Value, &str), String> {
    if let Some(body) = s.strip_prefix('\'') {
        // A quoted text: '' stands for ', the first lone ' ends it.
        let mut text = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\'' {
                text.push(c);
            } else if body[i + 1..].starts_with('\'') {
                text.push('\'');
                chars.next();
            } else {
                return Ok((Value::Text(text), &body[i + 1..]));
            }
        }
        return Err("unterminated text".into());
    }
    let end = s.find(',').unwrap_or(s.len());
    let (token, tail) = s.split_at(end);
    let value = if token == "NULL" {
        Value::Null
    } else if let Some(h) = token.strip_prefix("X'").and_then(|t| t.strip_suffix('\'')) {
        Value::Blob(unhex(h)?)
    } else if let Some(parts) = token.strip_prefix('F') {
        let (whole, frac) = parts
            .split_once(':')
            .ok_or_else(|| format!("REAL {token:?} lacks its fraction"))?;
        let int = |t: &str| {
            t.parse::<i64>()
                .map_err(|e| format!("REAL {token:?}: {t:?}: {e}"))
        };
        Value::Real(int(whole)? as f64 + int(frac)? as f64 / FRACTION_UNIT)
    } else if let Some(bits) = token.strip_prefix('R') {
        Value::Real(f64::from_bits(
            u64::from_str_radix(bits, 16).map_err(|e| format!("REAL bits {bits:?}: {e}"))?,
        ))
    } else {
        Value::Integer(
            token
                .parse()
                .map_err(|e| format!("{token:?} is no key value: {e}"))?,
        )
    };
    Ok((value, tail))
}

/// Converts key text of sharecache's first format, the JSON array of the key's values (BLOBs
/// as `{"$blob": hex}`), into key text: the migrations of older caches and remotes call it.
pub(crate) fn key_from_json(text: &str) -> Result<String, String> {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Array(items)) => Ok(encode_key(
            &items
                .iter()
                .map(json_to_value)
                .collect::<Result<Vec<_>, _>>()?,
        )),
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

    /// Key text as a trigger builds it for each row of `values` (one key column per value).
    fn keys_from_sql(rows: &[Vec<Value>]) -> Vec<Result<String, String>> {
        let db = Connection::open_in_memory().unwrap();
        let n = rows[0].len();
        let cols: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        db.execute_batch(&format!(
            "CREATE TABLE t({}); CREATE TABLE k(id INTEGER PRIMARY KEY, key); \
             CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN INSERT INTO k(key) VALUES ({}); END;",
            cols.join(", "),
            key_expr("NEW", &cols)
        ))
        .unwrap();
        let insert = format!("INSERT INTO t VALUES ({})", vec!["?"; n].join(", "));
        rows.iter()
            .map(|row| {
                db.execute(&insert, rusqlite::params_from_iter(row))
                    .map_err(|e| e.to_string())?;
                db.query_row("SELECT key FROM k ORDER BY id DESC LIMIT 1", [], |r| {
                    r.get(0)
                })
                .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn sql_key_expression_matches_rust_encoding_for_every_type() {
        let reals = [
            2.5,
            -2.5,
            -0.5,
            0.1,
            0.1 + 0.2,
            1.0 / 3.0,
            1e15,
            123_456_789.123_456_79,
            9007199254740993.0,
            -9.2e18,
            0.0009765625, // 2^-10
            3.0,
            0.0,
        ];
        let texts = [
            "",
            "x\"y'z",
            "a,b",
            "''",
            "it's, 'quoted'",
            "line\nbreak",
            "ünïcødé ✓",
            "NULL",
            "X'00'",
            "F1:2",
            "-5",
        ];
        let mut rows: Vec<Vec<Value>> = vec![
            vec![Value::Integer(-5), Value::Null],
            vec![Value::Integer(i64::MIN), Value::Integer(i64::MAX)],
            vec![Value::Blob(vec![0, 255, 16]), Value::Blob(vec![])],
        ];
        rows.extend(
            reals
                .iter()
                .map(|r| vec![Value::Real(*r), Value::Integer(1)]),
        );
        rows.extend(
            texts
                .iter()
                .map(|t| vec![Value::Text(t.to_string()), Value::Text(format!("{t},{t}"))]),
        );
        for (row, from_sql) in rows.iter().zip(keys_from_sql(&rows)) {
            let from_sql = from_sql.unwrap();
            assert_eq!(from_sql, encode_key(row), "{row:?}");
            assert_eq!(&decode_key(&from_sql).unwrap(), row, "{from_sql}");
        }
    }

    #[test]
    fn a_real_key_text_cannot_hold_fails_the_write_and_still_round_trips_in_rust() {
        let refused = [1e-5, 1e300, -1e19, f64::INFINITY, 5e-324];
        let rows: Vec<Vec<Value>> = refused.iter().map(|r| vec![Value::Real(*r)]).collect();
        for (row, from_sql) in rows.iter().zip(keys_from_sql(&rows)) {
            let err = from_sql.unwrap_err();
            assert!(
                err.contains("REAL key value cannot be synced"),
                "{row:?}: {err}"
            );
            let text = encode_key(row);
            assert!(text.starts_with('R'), "{text}");
            assert_eq!(&decode_key(&text).unwrap(), row);
        }
    }

    #[test]
    fn first_format_json_keys_convert_to_key_text() {
        for (json, text) in [
            ("[1]", "1"),
            (r#"["u1"]"#, "'u1'"),
            (r#"["x",2,null]"#, "'x',2,NULL"),
            (r#"[{"$blob":"00FF"}]"#, "X'00FF'"),
            ("[2.5]", "F2:2305843009213693952"),
            (r#"["it's"]"#, "'it''s'"),
        ] {
            assert_eq!(key_from_json(json).unwrap(), text, "{json}");
        }
        assert!(key_from_json("1").is_err());
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
        for bad in [
            "", "'open", "X'0'", "X'zz'", "1,", "abc", "F1", "F1:x", "'a'b", "1 2", "Rzz",
        ] {
            assert!(decode_key(bad).is_err(), "{bad:?}");
        }
    }
}
