//! The cache's copy of the remote's conflict log (`sync_conflicts`), and putting back what a
//! restore of the remote took from it.
//!
//! Each pull copies the entries after the newest id the cache holds. That trusts the remote's
//! conflict log to only grow, which a restored remote breaks: the entries logged after the
//! backup are gone from the remote, and the next conflicts take their ids (AUTOINCREMENT's
//! counter is restored with the file), so a cache that had copied the old entries would skip the
//! new ones for good. A conflict whose pusher lost writes no change-log entry, so this can happen
//! without any client's change-log trail breaking.
//!
//! So the copy first checks that the remote still holds the cache's newest entry, at its id (one
//! lookup, in the read transaction the copy runs anyway). When it does not, the losing versions
//! this cache kept that the remote lacks are written back to the remote's conflict log (new ids,
//! after everything there), and the cache's copy is replaced by the remote's whole log: ids the
//! user saw may change, no losing version is lost, and every client ends with the same log. An
//! entry is the same entry when its key, both versions' stamps and origins, and when and by whom
//! it was decided are. The whole log is read for this (kept in memory): it runs only after a
//! restore, and conflict logs are small next to the tables.

use std::collections::HashSet;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::remote::{Remote, RemoteError};

/// The columns of an entry after its id, as both logs hold them.
const COLUMNS: &str = "tbl, pk, winner_stamp, winner_origin, loser_stamp, loser_origin, loser_op, \
                       loser_row, decided_at, decided_by, reason";

/// What identifies an entry across logs (indexes into [`COLUMNS`]).
const IDENTITY: [usize; 8] = [0, 1, 2, 3, 4, 5, 8, 9];

/// A failure on either side.
pub(super) enum Either {
    Local(rusqlite::Error),
    Remote(RemoteError),
}

type Entry = Vec<Value>;

/// The identifying columns are TEXT NOT NULL in both logs.
fn identity(e: &Entry) -> Vec<String> {
    IDENTITY
        .iter()
        .map(|&i| match &e[i] {
            Value::Text(t) => t.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn read_entries(c: &Connection, sql: &str, after: i64) -> rusqlite::Result<Vec<(i64, Entry)>> {
    let mut s = c.prepare_cached(sql)?;
    let rows = s.query_map([after], |r| {
        let values = (1..=11)
            .map(|i| r.get(i))
            .collect::<rusqlite::Result<_>>()?;
        Ok((r.get(0)?, values))
    })?;
    rows.collect()
}

fn insert(c: &Connection, table: &str, id: Option<i64>, e: &Entry) -> rusqlite::Result<()> {
    let (id_col, id_param) = if id.is_some() {
        ("id, ", "?12, ")
    } else {
        ("", "")
    };
    let mut s = c.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {table} ({id_col}{COLUMNS}) VALUES ({id_param}?1, ?2, ?3, ?4, ?5, \
         ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?;
    let mut values = e.clone();
    values.extend(id.map(Value::Integer));
    s.execute(params_from_iter(values))?;
    Ok(())
}

/// Copies the remote conflict-log entries the cache lacks into `sync_conflicts`, first putting
/// back what a restore took from the remote's log. Returns how many entries were copied.
pub(super) fn copy(local: &Connection, remote: &mut Remote) -> Result<usize, Either> {
    let newest: Option<(i64, Entry)> = local
        .query_row(
            &format!("SELECT id, {COLUMNS} FROM sync_conflicts ORDER BY id DESC LIMIT 1"),
            [],
            |r| {
                let values = (1..=11)
                    .map(|i| r.get(i))
                    .collect::<rusqlite::Result<_>>()?;
                Ok((r.get(0)?, values))
            },
        )
        .optional()
        .map_err(Either::Local)?;
    let after = newest.as_ref().map_or(0, |(id, _)| *id);
    let remote_sql =
        format!("SELECT id, {COLUMNS} FROM sharecache_conflicts WHERE id > ?1 ORDER BY id");
    let (intact, rows) = remote
        .read(|c| {
            let intact = match &newest {
                None => true,
                Some((id, e)) => read_entries(c, &format!("{remote_sql} LIMIT 1"), id - 1)?
                    .first()
                    .is_some_and(|(rid, re)| rid == id && identity(re) == identity(e)),
            };
            let rows = if intact {
                read_entries(c, &remote_sql, after)?
            } else {
                Vec::new()
            };
            Ok((intact, rows))
        })
        .map_err(Either::Remote)?;
    if !intact {
        return put_back(local, remote);
    }
    if rows.is_empty() {
        return Ok(0);
    }
    super::write_tx(local, |tx| {
        for (id, e) in &rows {
            insert(tx, "sync_conflicts", Some(*id), e)?;
        }
        Ok(())
    })
    .map_err(Either::Local)?;
    Ok(rows.len())
}

/// The remote's conflict log went back: writes the cache's entries it lacks back to it, then
/// replaces the cache's copy with the remote's whole log.
fn put_back(local: &Connection, remote: &mut Remote) -> Result<usize, Either> {
    let mine = read_entries(
        local,
        &format!("SELECT id, {COLUMNS} FROM sync_conflicts WHERE id > ?1 ORDER BY id"),
        0,
    )
    .map_err(Either::Local)?;
    let remote_sql =
        format!("SELECT id, {COLUMNS} FROM sharecache_conflicts WHERE id > ?1 ORDER BY id");
    let put = remote
        .write(|c| {
            let there: HashSet<Vec<String>> = read_entries(c, &remote_sql, 0)?
                .iter()
                .map(|(_, e)| identity(e))
                .collect();
            let mut put = 0;
            for (_, e) in &mine {
                if !there.contains(&identity(e)) {
                    insert(c, "sharecache_conflicts", None, e)?;
                    put += 1;
                }
            }
            Ok(put)
        })
        .map_err(Either::Remote)?;
    let all = remote
        .read(|c| read_entries(c, &remote_sql, 0))
        .map_err(Either::Remote)?;
    tracing::warn!(
        put_back = put,
        entries = all.len(),
        "the remote's conflict log went back (restored): the losing versions it lacked are put \
         back, and the cache's copy is taken again"
    );
    super::write_tx(local, |tx| {
        tx.execute("DELETE FROM sync_conflicts", [])?;
        for (id, e) in &all {
            insert(tx, "sync_conflicts", Some(*id), e)?;
        }
        Ok(())
    })
    .map_err(Either::Local)?;
    Ok(all.len())
}
