//! Row images: the values a push wrote, carried in its change-log entry so that a pull reads the
//! log's tail and not the table (whose pages another client's commit has invalidated).
//!
//! An image is a BLOB: a format byte, then per column its name and its value, each value tagged
//! with its SQLite storage class. Values come back exactly: integers and reals bit for bit, BLOBs
//! as bytes, TEXT that is not UTF-8 as the same bytes (carried as [`crate::sql::read_value`]
//! spells it). Names make an image independent of column order: a reader whose table has a column
//! the image lacks (the pusher's cache did not have it yet) reads the row from the table instead.

use rusqlite::types::Value;

use crate::sql::{Bind, read_value_from_bytes};

const FORMAT: u8 = 1;

const NULL: u8 = 0;
const INTEGER: u8 = 1;
const REAL: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;

/// Encodes a row (column names and values, in the same order) as an image.
///
/// ```
/// use rusqlite::types::Value;
/// use sharecache::remote::image;
/// let cols = vec!["id".to_string(), "body".to_string()];
/// let img = image::encode(&cols, &[Value::Integer(7), Value::Text("hi".into())]);
/// let back = image::decode(&img).unwrap();
/// assert_eq!(back, vec![("id".into(), Value::Integer(7)), ("body".into(), Value::Text("hi".into()))]);
/// ```
pub fn encode(columns: &[String], values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + columns.len() * 24);
    out.push(FORMAT);
    for (name, v) in columns.iter().zip(values) {
        put_bytes(&mut out, name.as_bytes());
        match v {
            Value::Null => out.push(NULL),
            Value::Integer(i) => {
                out.push(INTEGER);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Real(f) => {
                out.push(REAL);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Text(_) => {
                out.push(TEXT);
                match Bind::new(v) {
                    Bind::RawText(bytes) => put_bytes(&mut out, &bytes),
                    Bind::Value(_) => put_bytes(&mut out, text_bytes(v)),
                }
            }
            Value::Blob(b) => {
                out.push(BLOB);
                put_bytes(&mut out, b);
            }
        }
    }
    out
}

fn text_bytes(v: &Value) -> &[u8] {
    match v {
        Value::Text(s) => s.as_bytes(),
        _ => &[],
    }
}

/// Decodes an image into (column, value) pairs, in the order they were encoded.
///
/// Returns an error naming the problem for anything [`encode`] did not produce.
pub fn decode(image: &[u8]) -> Result<Vec<(String, Value)>, String> {
    let mut r = Reader { buf: image, at: 0 };
    let format = r.byte()?;
    if format != FORMAT {
        return Err(format!(
            "row image format {format} is not known (expected {FORMAT})"
        ));
    }
    let mut out = Vec::new();
    while r.at < image.len() {
        let name = String::from_utf8(r.bytes()?.to_vec())
            .map_err(|_| "a column name in a row image is not UTF-8".to_string())?;
        let value = match r.byte()? {
            NULL => Value::Null,
            INTEGER => Value::Integer(i64::from_le_bytes(r.array()?)),
            REAL => Value::Real(f64::from_bits(u64::from_le_bytes(r.array()?))),
            TEXT => read_value_from_bytes(r.bytes()?),
            BLOB => Value::Blob(r.bytes()?.to_vec()),
            t => return Err(format!("unknown value tag {t} in a row image")),
        };
        out.push((name, value));
    }
    Ok(out)
}

/// The values of `columns`, in that order, if the image has every one of them.
///
/// ```
/// use rusqlite::types::Value;
/// use sharecache::remote::image;
/// let img = image::encode(&["id".into(), "body".into()], &[Value::Integer(1), Value::Null]);
/// assert_eq!(image::values_for(&img, &["body".into()]), Some(vec![Value::Null]));
/// assert_eq!(image::values_for(&img, &["added_later".into()]), None);
/// ```
pub fn values_for(image: &[u8], columns: &[String]) -> Option<Vec<Value>> {
    let mut pairs = decode(image).ok()?;
    columns
        .iter()
        .map(|c| {
            let i = pairs.iter().position(|(n, _)| n == c)?;
            Some(std::mem::replace(&mut pairs[i].1, Value::Null))
        })
        .collect()
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let mut n = b.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.at).ok_or("row image ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self
            .buf
            .get(self.at..self.at + N)
            .ok_or("row image ends early")?;
        self.at += N;
        Ok(s.try_into().expect("length checked"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                let end = self
                    .at
                    .checked_add(n as usize)
                    .filter(|&e| e <= self.buf.len())
                    .ok_or("row image ends early")?;
                let s = &self.buf[self.at..end];
                self.at = end;
                return Ok(s);
            }
        }
        Err("a length in a row image is too long".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn every_storage_class_comes_back_exactly() {
        let c = Connection::open_in_memory().unwrap();
        let raw = c
            .query_row("SELECT CAST(x'41ff42' AS TEXT)", [], |r| {
                crate::sql::read_value(r, 0)
            })
            .unwrap();
        let values = vec![
            Value::Null,
            Value::Integer(i64::MIN),
            Value::Real(0.1 + 0.2),
            Value::Real(-0.0),
            Value::Text("é ✓".into()),
            Value::Text(String::new()),
            raw.clone(),
            Value::Blob(vec![0, 255, 0]),
            Value::Blob(vec![7; 300]),
        ];
        let cols: Vec<String> = (0..values.len()).map(|i| format!("c{i}")).collect();
        let back = decode(&encode(&cols, &values)).unwrap();
        assert_eq!(back.len(), values.len());
        for ((name, got), (want_name, want)) in back.iter().zip(cols.iter().zip(&values)) {
            assert_eq!(name, want_name);
            match (got, want) {
                (Value::Real(a), Value::Real(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                _ => assert_eq!(got, want),
            }
        }
        // The raw text is written back as the same bytes, as TEXT.
        let (ty, hex): (String, String) = c
            .query_row("SELECT typeof(?1), hex(?1)", [Bind::new(&back[6].1)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((ty.as_str(), hex.as_str()), ("text", "41FF42"));
    }

    #[test]
    fn values_are_picked_by_name_and_a_missing_column_means_no_values() {
        let cols = vec!["id".to_string(), "body".to_string()];
        let img = encode(&cols, &[Value::Integer(1), Value::Text("b".into())]);
        assert_eq!(
            values_for(&img, &["body".into(), "id".into()]),
            Some(vec![Value::Text("b".into()), Value::Integer(1)])
        );
        assert_eq!(values_for(&img, &["id".into(), "added_later".into()]), None);
    }

    #[test]
    fn damaged_images_are_errors_not_panics() {
        let cols = vec!["id".to_string()];
        let img = encode(&cols, &[Value::Text("hello".into())]);
        for cut in 0..img.len() {
            let _ = decode(&img[..cut]); // must not panic
        }
        assert!(decode(&img[..img.len() - 1]).is_err());
        assert!(decode(&[9]).unwrap_err().contains("format 9"));
        assert!(
            decode(&[FORMAT, 1, b'x', 42])
                .unwrap_err()
                .contains("tag 42")
        );
    }
}
