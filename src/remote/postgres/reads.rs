//! Reading the PostgreSQL remote: the change log (a pull's stretch of it, the versions of a
//! batch's keys), rows by key and in the cache's key order, the conflict log and the client
//! registry. Free functions over any client or transaction, so a write sees what it reads.
//!
//! Key order: the cache pages rows in SQLite's `BINARY` order ([`crate::sql::rows::cmp_key`]).
//! Integers, booleans and `bytea` sort the same on the server; text sorts so with `COLLATE "C"`
//! (bytewise UTF-8); a key kept as text but typed otherwise on the server (`uuid`, `date`,
//! `numeric`, …) is compared as its text, which an index on the column does not serve.

use std::collections::{HashMap, HashSet};

use postgres::GenericClient;
use postgres::types::{ToSql, Type};
use rusqlite::types::Value;

use super::PgError;
use super::types::{Column, Kind, select_list};
use super::writer::UNNUMBERED;
use crate::remote::image;
use crate::remote::store::Keys;
use crate::remote::{ClientEntry, Fetched, Found, LoggedConflict, Version};
use crate::sql::rows::Shape;
use crate::sql::{decode_key, encode_key, quote};

fn kind<'a>(table: &str, c: &'a Column) -> Result<&'a Kind, PgError> {
    c.kind.as_ref().ok_or_else(|| PgError::UnsupportedType {
        table: table.to_owned(),
        column: c.name.clone(),
        pg_type: c.pg_type.clone(),
        hint: "sharecache does not sync this table (see `sharecache status`)".to_owned(),
    })
}

/// For every key of `keys`, merges what the log's entries with `after < rev ≤ upto` hold into
/// `found` (see [`crate::remote::BatchWriter::newest_versions`]); with no `upto`, entries not
/// numbered yet count too, as the newest.
pub fn newest_in(
    client: &mut impl GenericClient,
    after: i64,
    upto: Option<i64>,
    keys: &Keys,
    found: &mut HashMap<(String, String), Found>,
) -> Result<(), PgError> {
    let (t, p): (Vec<&str>, Vec<&str>) = keys.keys().map(|(t, p)| (t.as_str(), p.as_str())).unzip();
    let rows = client.query_typed(
        "SELECT l.tbl, l.pk, coalesce(l.rev, $5), l.stamp, l.origin, l.deleted, l.write_id \
         FROM sharecache.log l \
         JOIN unnest($1::text[], $2::text[]) AS k(t, p) ON l.tbl = k.t AND l.pk = k.p \
         WHERE (l.rev > $3 AND l.rev <= $4) OR (l.rev IS NULL AND $6) \
         ORDER BY l.rev NULLS LAST, l.id",
        &[
            (&t, Type::TEXT_ARRAY),
            (&p, Type::TEXT_ARRAY),
            (&after, Type::INT8),
            (&upto.unwrap_or(i64::MAX), Type::INT8),
            (&UNNUMBERED, Type::INT8),
            (&upto.is_none(), Type::BOOL),
        ],
    )?;
    for r in rows {
        let key: (String, String) = (r.get(0), r.get(1));
        let (my_stamp, my_origin) = &keys[&key];
        let v = Version {
            tbl: key.0.clone(),
            pk: key.1.clone(),
            rev: r.get(2),
            stamp: r.get(3),
            origin: r.get(4),
            deleted: r.get(5),
            write_id: r.get(6),
        };
        let mine = v.origin == *my_origin && v.stamp == *my_stamp;
        Found::merge(found, key, v, mine);
    }
    Ok(())
}

/// Parameters of one statement, each of its own type, with the type the server gets.
type Params = Vec<(Box<dyn ToSql + Sync>, Type)>;

/// `params` as `query_typed` takes them.
fn typed(params: &Params) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|(p, t)| (p.as_ref(), t.clone()))
        .collect()
}

/// `t.k = <param n>` for each key column, and the parameters.
fn key_match(
    table: &str,
    keys: &[Column],
    key: &[Value],
    first: usize,
) -> Result<(Vec<String>, Params), PgError> {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    for (i, (c, v)) in keys.iter().zip(key).enumerate() {
        let k = kind(table, c)?;
        conds.push(format!(
            "{} = {}",
            quote(&c.name),
            k.param_sql(first + i, &c.pg_type)
        ));
        params.push((k.param(v, &c.name)?, k.plain_pg_type()));
    }
    Ok((conds, params))
}

fn read_row(table: &str, cols: &[Column], r: &postgres::Row) -> Result<Vec<Value>, PgError> {
    cols.iter()
        .enumerate()
        .map(|(i, c)| kind(table, c)?.read(r, i, &c.name))
        .collect()
}

/// The row of `schema.table` with `key` (values of `keys`, in order), its `cols` read.
pub fn select_row(
    client: &mut impl GenericClient,
    schema: &str,
    table: &str,
    cols: &[Column],
    keys: &[Column],
    key: &[Value],
) -> Result<Option<Vec<Value>>, PgError> {
    for c in cols {
        kind(table, c)?;
    }
    let (conds, params) = key_match(table, keys, key, 1)?;
    let sql = format!(
        "SELECT {} FROM {}.{} WHERE {}",
        select_list(cols),
        quote(schema),
        quote(table),
        conds.join(" AND ")
    );
    match client.query_typed_opt(&sql, &typed(&params))? {
        Some(r) => Ok(Some(read_row(table, cols, &r)?)),
        None => Ok(None),
    }
}

/// The expression a key column sorts by, as the cache sorts it (see the module docs).
fn order_expr(c: &Column) -> String {
    let q = quote(&c.name);
    match c.kind {
        Some(Kind::Text) if c.pg_type == "text" || c.pg_type.starts_with("character varying") => {
            format!("{q} COLLATE \"C\"")
        }
        Some(Kind::Text) => format!("({q})::text COLLATE \"C\""),
        _ => q,
    }
}

/// Up to `limit` rows of `schema.table` after the key `after`, in the cache's key order.
pub fn page(
    client: &mut impl GenericClient,
    schema: &str,
    table: &str,
    cols: &[Column],
    keys: &[Column],
    after: Option<&[Value]>,
    limit: usize,
) -> Result<Vec<Vec<Value>>, PgError> {
    for c in cols.iter().chain(keys) {
        kind(table, c)?;
    }
    let order: Vec<String> = keys.iter().map(order_expr).collect();
    let mut params: Params = vec![(Box::new(limit as i64), Type::INT8)];
    let filter = match after {
        None => String::new(),
        Some(after) => {
            let mut bound = Vec::new();
            for (i, (c, v)) in keys.iter().zip(after).enumerate() {
                let k = kind(table, c)?;
                let n = i + 2;
                bound.push(match c.kind {
                    Some(Kind::Text) => format!("${n}::text COLLATE \"C\""),
                    _ => k.param_sql(n, &c.pg_type),
                });
                params.push((k.param(v, &c.name)?, k.plain_pg_type()));
            }
            format!("WHERE ({}) > ({})", order.join(", "), bound.join(", "))
        }
    };
    let sql = format!(
        "SELECT {} FROM {}.{} {filter} ORDER BY {} LIMIT $1",
        select_list(cols),
        quote(schema),
        quote(table),
        order.join(", ")
    );
    client
        .query_typed(&sql, &typed(&params))?
        .iter()
        .map(|r| read_row(table, cols, r))
        .collect()
}

/// Every row of `schema.table` (a table that is not synced, mirrored once), `cols` read.
pub fn all_rows(
    client: &mut impl GenericClient,
    schema: &str,
    table: &str,
    cols: &[Column],
) -> Result<Vec<Vec<Value>>, PgError> {
    let sql = format!(
        "SELECT {} FROM {}.{}",
        select_list(cols),
        quote(schema),
        quote(table)
    );
    client
        .query_typed(&sql, &[])?
        .iter()
        .map(|r| read_row(table, cols, r))
        .collect()
}

/// A pull's stretch of the log after `cursor` (at most `limit` entries, up to the head, which
/// `sharecache.changes` numbers first), rows from the pushed images or, for direct writes, from
/// the tables. The head, the pruning point and the entries come in one statement.
pub fn fetch(
    client: &mut impl GenericClient,
    schema: &str,
    cursor: i64,
    limit: usize,
    shapes: &HashMap<String, Shape>,
) -> Result<Fetched, PgError> {
    let mut log = client.query_typed(
        "SELECT rev, tbl, pk, stamp, origin, deleted, image, pruned, write_id \
         FROM sharecache.changes($1, $2)",
        &[(&cursor, Type::INT8), (&(limit as i64), Type::INT8)],
    )?;
    // The head row first (no table), then the entries.
    let Some(at) = log
        .iter()
        .position(|r| r.get::<_, Option<String>>(1).is_none())
    else {
        return Err(PgError::Unsupported(
            "sharecache.meta has no row: the server's sharecache schema is damaged".into(),
        ));
    };
    let head_row = log.remove(at);
    let head: i64 = head_row.get(0);
    let pruned: i64 = head_row.get(7);
    if cursor < pruned {
        return Ok(Fetched {
            entries: vec![],
            tail: None,
            behind_pruned: true,
        });
    }
    let tail = (log.len() < limit).then_some(head);
    let mut seen = HashSet::new();
    let mut newest_first = Vec::with_capacity(log.len());
    for r in log.iter().rev() {
        let key: (String, String) = (r.get(1), r.get(2));
        if seen.insert(key) {
            newest_first.push(r);
        }
    }
    // Rows come from the pushed images; the rows of direct writes (no image) are read from
    // their tables, one statement per table for the whole stretch.
    let mut entries: Vec<(Version, Option<Vec<Value>>)> = Vec::with_capacity(newest_first.len());
    let mut wanted: HashMap<String, Vec<usize>> = HashMap::new();
    for r in newest_first.into_iter().rev() {
        let v = Version {
            rev: r.get(0),
            tbl: r.get(1),
            pk: r.get(2),
            stamp: r.get(3),
            origin: r.get(4),
            deleted: r.get(5),
            write_id: r.get(8),
        };
        let img: Option<Vec<u8>> = r.get(6);
        let row = match shapes.get(&v.tbl) {
            Some(shape) if !v.deleted => {
                let values = img
                    .as_deref()
                    .and_then(|i| image::values_for(i, &shape.columns));
                if values.is_none() {
                    wanted.entry(v.tbl.clone()).or_default().push(entries.len());
                }
                values
            }
            _ => None,
        };
        entries.push((v, row));
    }
    for (table, at) in wanted {
        let shape = &shapes[&table];
        let all = super::types::describe(client, schema, &table)?;
        let (cols, keys) = shape_columns(&table, &all, shape)?;
        let decoded = at
            .iter()
            .map(|&i| {
                decode_key(&entries[i].0.pk).map_err(|m| PgError::Value {
                    column: table.clone(),
                    message: m,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key_at: Vec<usize> = shape
            .pk
            .iter()
            .map(|k| {
                shape
                    .columns
                    .iter()
                    .position(|c| c == k)
                    .expect("a key column")
            })
            .collect();
        let mut found: HashMap<String, Vec<Value>> = HashMap::new();
        for row in super::rows::select_many(client, schema, &table, &cols, &keys, &decoded)? {
            let key: Vec<Value> = key_at.iter().map(|&i| row[i].clone()).collect();
            found.insert(encode_key(&key), row);
        }
        for &i in &at {
            entries[i].1 = found.remove(&entries[i].0.pk);
        }
    }
    Ok(Fetched {
        entries,
        tail,
        behind_pruned: false,
    })
}

/// The server's columns of `shape` in its order, and its key columns in key order.
pub fn shape_columns(
    table: &str,
    all: &[Column],
    shape: &Shape,
) -> Result<(Vec<Column>, Vec<Column>), PgError> {
    let find = |n: &String| {
        all.iter().find(|c| &c.name == n).cloned().ok_or_else(|| {
            PgError::Unsupported(format!(
                "{table}.{n} is not a column on the server (its schema changed): the next sync \
                 follows it"
            ))
        })
    };
    let cols = shape
        .columns
        .iter()
        .map(find)
        .collect::<Result<Vec<_>, _>>()?;
    let keys = shape.pk.iter().map(find).collect::<Result<Vec<_>, _>>()?;
    Ok((cols, keys))
}

/// The conflict log's records with an id above `after`, in id order.
pub fn conflicts_after(
    client: &mut impl GenericClient,
    after: i64,
) -> Result<Vec<LoggedConflict>, PgError> {
    Ok(client
        .query_typed(
            "SELECT id, tbl, pk, winner_stamp, winner_origin, loser_stamp, loser_origin, loser_op, \
             loser_row, decided_at, decided_by, reason FROM sharecache.conflicts WHERE id > $1 ORDER BY id",
            &[(&after, Type::INT8)],
        )?
        .iter()
        .map(|r| LoggedConflict {
            id: r.get(0),
            tbl: r.get(1),
            pk: r.get(2),
            winner_stamp: r.get(3),
            winner_origin: r.get(4),
            loser_stamp: r.get(5),
            loser_origin: r.get(6),
            loser_op: r.get(7),
            loser_row: r.get(8),
            decided_at: r.get(9),
            decided_by: r.get(10),
            reason: r.get(11),
        })
        .collect())
}

/// The statement that records a client's horizon (it may go down), its parameters given as
/// placeholders: origin, horizon, last seen, host.
pub fn register_sql(p: &[String; 4]) -> String {
    format!(
        "INSERT INTO sharecache.clients (origin, pulled_rev, last_seen, host) VALUES ({}, {}, {}, {}) \
         ON CONFLICT (origin) DO UPDATE SET pulled_rev = EXCLUDED.pulled_rev, \
         last_seen = EXCLUDED.last_seen, host = EXCLUDED.host",
        p[0], p[1], p[2], p[3]
    )
}

/// Records a client's horizon (it may go down).
pub fn register(client: &mut impl GenericClient, c: &ClientEntry) -> Result<(), PgError> {
    let p = ["$1", "$2", "$3", "$4"].map(str::to_owned);
    client.execute_typed(
        &register_sql(&p),
        &[
            (&c.origin, Type::TEXT),
            (&c.pulled_rev, Type::INT8),
            (&c.last_seen, Type::TEXT),
            (&c.host, Type::TEXT),
        ],
    )?;
    Ok(())
}
