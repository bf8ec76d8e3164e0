//! The share's reads for the sync, each one short read transaction (a shared lock): the log's
//! tail with the changed rows, versions of keys, a table's rows in key order, the conflict log.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;
use rusqlite::types::Value;

use super::{Share, changelog};
use crate::remote::image;
use crate::remote::store::{Keys, RemoteSchema};
use crate::remote::{Fetched, Found, Head, LoggedConflict, RemoteError};
use crate::schema;
use crate::sql::decode_key;
use crate::sql::rows::Shape;

impl Share {
    pub(super) fn read_head(&self) -> Result<Head, RemoteError> {
        self.read(|c| {
            let (rev, pruned_rev, generation, hlc): (i64, i64, String, String) = c.query_row(
                "SELECT rev, pruned_rev, generation, hlc FROM sharecache_meta WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let newest = changelog::newest_entry(c, rev)?;
            Ok(Head {
                rev,
                pruned_rev,
                generation,
                hlc,
                newest,
            })
        })
    }

    pub(super) fn read_schema(&self) -> Result<RemoteSchema, RemoteError> {
        self.read(|c| {
            Ok(RemoteSchema {
                entries: schema::read(c)?,
                versions: schema::app_versions(c)?,
            })
        })
    }

    pub(super) fn fetch(
        &self,
        cursor: i64,
        limit: usize,
        shapes: &HashMap<String, Shape>,
    ) -> Result<Fetched, RemoteError> {
        self.read(|c| fetch(c, cursor, limit, shapes))
    }

    pub(super) fn versions_after(
        &self,
        after: i64,
        keys: &Keys,
    ) -> Result<HashMap<(String, String), Found>, RemoteError> {
        self.read(|c| {
            let mut found = HashMap::new();
            changelog::newest_in(c, after, None, keys, &mut found)?;
            Ok(found)
        })
    }

    pub(super) fn page(
        &self,
        shape: &Shape,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Vec<Vec<Value>>, RemoteError> {
        self.read(|c| shape.page(c, after, limit))
    }

    pub(super) fn first_changes(
        &self,
        table: &str,
        after: i64,
    ) -> Result<HashMap<String, String>, RemoteError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT pk, min(stamp) FROM sharecache_log WHERE rev > ?1 AND tbl = ?2 GROUP BY pk",
            )?
            .query_map(rusqlite::params![after, table], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })
    }

    pub(super) fn conflicts(&self, after: i64) -> Result<Vec<LoggedConflict>, RemoteError> {
        self.read(|c| conflicts_after(c, after))
    }
}

/// The conflict log's records with an id above `after`, in id order.
pub(crate) fn conflicts_after(c: &Connection, after: i64) -> rusqlite::Result<Vec<LoggedConflict>> {
    c.prepare_cached(
        "SELECT id, tbl, pk, winner_stamp, winner_origin, loser_stamp, loser_origin, loser_op, \
         loser_row, decided_at, decided_by, reason FROM sharecache_conflicts WHERE id > ?1 ORDER BY id",
    )?
    .query_map([after], |r| {
        Ok(LoggedConflict {
            id: r.get(0)?,
            tbl: r.get(1)?,
            pk: r.get(2)?,
            winner_stamp: r.get(3)?,
            winner_origin: r.get(4)?,
            loser_stamp: r.get(5)?,
            loser_origin: r.get(6)?,
            loser_op: r.get(7)?,
            loser_row: r.get(8)?,
            decided_at: r.get(9)?,
            decided_by: r.get(10)?,
            reason: r.get(11)?,
        })
    })?
    .collect()
}

fn fetch(
    c: &Connection,
    cursor: i64,
    limit: usize,
    shapes: &HashMap<String, Shape>,
) -> rusqlite::Result<Fetched> {
    let pruned: i64 = c.query_row(
        "SELECT pruned_rev FROM sharecache_meta WHERE id = 1",
        [],
        |r| r.get(0),
    )?;
    if cursor < pruned {
        return Ok(Fetched {
            entries: vec![],
            tail: None,
            behind_pruned: true,
        });
    }
    let log = changelog::since(c, cursor, limit)?;
    let tail = if log.len() < limit {
        Some(
            c.query_row("SELECT rev FROM sharecache_meta WHERE id = 1", [], |r| {
                r.get(0)
            })?,
        )
    } else {
        None
    };
    // A key changed several times in this stretch of the log is applied once, at its newest
    // entry (the last entry fetched is always kept, so the cursor still reaches it).
    let mut seen = HashSet::new();
    let mut newest_first = Vec::with_capacity(log.len());
    for l in log.into_iter().rev() {
        if seen.insert((l.version.tbl.clone(), l.version.pk.clone())) {
            newest_first.push(l);
        }
    }
    let mut entries = Vec::with_capacity(newest_first.len());
    for l in newest_first.into_iter().rev() {
        let v = l.version;
        let row = match shapes.get(&v.tbl) {
            Some(shape) if !v.deleted => {
                // A pushed row carries its values; a direct write's row is read from its table.
                match l
                    .image
                    .as_deref()
                    .and_then(|img| image::values_for(img, &shape.columns))
                {
                    Some(values) => Some(values),
                    None => {
                        let key = decode_key(&v.pk).map_err(|m| {
                            rusqlite::Error::InvalidColumnName(format!(
                                "{} key {}: {m}",
                                v.tbl, v.pk
                            ))
                        })?;
                        shape.select(c, &key)?
                    }
                }
            }
            _ => None,
        };
        entries.push((v, row));
    }
    Ok(Fetched {
        entries,
        tail,
        behind_pruned: false,
    })
}
