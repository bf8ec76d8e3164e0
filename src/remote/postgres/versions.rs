//! A push's first look at its batch on PostgreSQL, in one statement (one round trip): the
//! batch's existing rows locked in key order (`FOR UPDATE`), then — by `sharecache.versions`,
//! called only once the locks are granted, each of its queries in a snapshot of its own — the
//! log's head and how far it was pruned, and every entry of the batch's keys above the head or
//! not numbered yet. Before, these were four statements (locks, newest ids, versions, pruning
//! point), four round trips.
//!
//! What it returns serves every later version read of the same write with the same keys from
//! memory ([`Read::answer`]; a push asks once per stretch of the log its own earlier batches did
//! not write), and gives the write's end its race check (`sharecache.finish`): per key the
//! highest entry id seen, and the threshold above which an entry may have been written since.

use std::collections::HashMap;

use postgres::GenericClient;
use postgres::types::Type;

use super::PgError;
use super::rows::{Params, lock_sql};
use super::types::Column;
use super::writer::UNNUMBERED;
use crate::remote::store::Keys;
use crate::remote::{Found, Pruned, Version};
use rusqlite::types::Value;

/// A log entry as the read returned it (`rev`: `None` while not numbered).
#[derive(Debug, Clone)]
struct Entry {
    tbl: String,
    pk: String,
    rev: Option<i64>,
    stamp: String,
    origin: String,
    deleted: bool,
    id: i64,
    write_id: Option<i64>,
}

/// What the first read of a write found (see the module docs).
#[derive(Debug)]
pub(super) struct Read {
    /// The keys it read, with the version each pushes.
    keys: Keys,
    /// Entries above `head` and unnumbered ones were read; the race check's threshold.
    pub head: i64,
    /// How far the log was pruned.
    pub pruned: Pruned,
    /// The entries, in revision order (unnumbered last, by id).
    entries: Vec<Entry>,
}

/// The rows of one table to lock: its key columns and the keys' values.
pub(super) struct Locks<'a> {
    pub table: &'a str,
    pub key_columns: Vec<Column>,
    pub keys: Vec<Vec<Value>>,
}

impl Read {
    /// Locks `locks` (tables in the order given, rows in key order) and reads the versions of
    /// `keys` above `after` (and every unnumbered one), in one statement.
    pub fn run(
        client: &mut impl GenericClient,
        schema: &str,
        keys: &Keys,
        after: i64,
        locks: &[Locks<'_>],
    ) -> Result<Read, PgError> {
        let (t, p): (Vec<String>, Vec<String>) = keys.keys().cloned().unzip();
        let mut params = Params::default();
        let t = params.push(Box::new(t), Type::TEXT_ARRAY);
        let p = params.push(Box::new(p), Type::TEXT_ARRAY);
        let after = params.push(Box::new(after), Type::INT8);
        let mut counts = Vec::new();
        for (i, l) in locks.iter().enumerate() {
            let q = lock_sql(&mut params, schema, l.table, &l.key_columns, &l.keys)?;
            counts.push(format!("(SELECT count(*) FROM ({q}) l{i})"));
        }
        let locked = if counts.is_empty() {
            "0".to_owned()
        } else {
            counts.join(" + ")
        };
        let sql = format!(
            "SELECT tbl, pk, rev, stamp, origin, deleted, id, write_id FROM \
             sharecache.versions({t}, {p}, {after}, {locked})"
        );
        let rows = client.query_typed(&sql, &params.typed())?;
        let mut head = None;
        let mut entries = Vec::with_capacity(rows.len());
        for r in rows {
            let tbl: Option<String> = r.get(0);
            match tbl {
                None => {
                    head = Some((
                        r.get::<_, i64>(2),
                        Pruned {
                            rev: r.get(6),
                            stamp: r.get(3),
                        },
                    ))
                }
                Some(tbl) => entries.push(Entry {
                    tbl,
                    pk: r.get(1),
                    rev: r.get(2),
                    stamp: r.get(3),
                    origin: r.get(4),
                    deleted: r.get(5),
                    id: r.get(6),
                    write_id: r.get(7),
                }),
            }
        }
        let Some((head, pruned)) = head else {
            return Err(PgError::Unsupported(
                "sharecache.meta has no row: the server's sharecache schema is damaged".into(),
            ));
        };
        entries.sort_by_key(|e| (e.rev.is_none(), e.rev, e.id));
        Ok(Read {
            keys: keys.clone(),
            head,
            pruned,
            entries,
        })
    }

    /// Whether this read holds every entry a version read of `keys` above `after` needs.
    pub fn covers(&self, after: i64, keys: &Keys) -> bool {
        after >= self.head && keys.keys().all(|k| self.keys.contains_key(k))
    }

    /// [`crate::remote::BatchWriter::newest_versions`] from memory (see [`Read::covers`]).
    pub fn answer(
        &self,
        after: i64,
        upto: Option<i64>,
        keys: &Keys,
        found: &mut HashMap<(String, String), Found>,
    ) {
        for e in &self.entries {
            let wanted = match e.rev {
                Some(rev) => rev > after && upto.is_none_or(|u| rev <= u),
                None => upto.is_none(),
            };
            let key = (e.tbl.clone(), e.pk.clone());
            let Some((my_stamp, my_origin)) = keys.get(&key) else {
                continue;
            };
            if !wanted {
                continue;
            }
            let mine = e.origin == *my_origin && e.stamp == *my_stamp;
            let v = Version {
                tbl: e.tbl.clone(),
                pk: e.pk.clone(),
                rev: e.rev.unwrap_or(UNNUMBERED),
                stamp: e.stamp.clone(),
                origin: e.origin.clone(),
                deleted: e.deleted,
                write_id: e.write_id,
            };
            Found::merge(found, key, v, mine);
        }
    }

    /// Per key read, the highest entry id seen (0: none), for the race check.
    pub fn seen(&self) -> (Vec<&str>, Vec<&str>, Vec<i64>) {
        let mut seen: HashMap<(&str, &str), i64> = self
            .keys
            .keys()
            .map(|(t, p)| ((t.as_str(), p.as_str()), 0))
            .collect();
        for e in &self.entries {
            if let Some(s) = seen.get_mut(&(e.tbl.as_str(), e.pk.as_str())) {
                *s = (*s).max(e.id);
            }
        }
        let mut t = Vec::with_capacity(seen.len());
        let mut p = Vec::with_capacity(seen.len());
        let mut ids = Vec::with_capacity(seen.len());
        for ((tbl, pk), id) in seen {
            t.push(tbl);
            p.push(pk);
            ids.push(id);
        }
        (t, p, ids)
    }
}
