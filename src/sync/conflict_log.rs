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

use rusqlite::{Connection, OptionalExtension, params};

use crate::remote::{LoggedConflict, RemoteError, RemoteStore};

/// A failure on either side.
pub(super) enum Either {
    Local(rusqlite::Error),
    Remote(RemoteError),
}

/// What identifies an entry across logs: the key, both versions' stamps and origins, and when
/// and by whom it was decided.
fn identity(e: &LoggedConflict) -> [&str; 8] {
    [
        &e.tbl,
        &e.pk,
        &e.winner_stamp,
        &e.winner_origin,
        &e.loser_stamp,
        &e.loser_origin,
        &e.decided_at,
        &e.decided_by,
    ]
}

const SELECT_LOCAL: &str = "SELECT id, tbl, pk, winner_stamp, winner_origin, loser_stamp, \
    loser_origin, loser_op, loser_row, decided_at, decided_by, reason FROM sync_conflicts";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LoggedConflict> {
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
}

fn insert_local(c: &Connection, e: &LoggedConflict) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO sync_conflicts (id, tbl, pk, winner_stamp, winner_origin, loser_stamp, \
         loser_origin, loser_op, loser_row, decided_at, decided_by, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        e.id,
        e.tbl,
        e.pk,
        e.winner_stamp,
        e.winner_origin,
        e.loser_stamp,
        e.loser_origin,
        e.loser_op,
        e.loser_row,
        e.decided_at,
        e.decided_by,
        e.reason
    ])?;
    Ok(())
}

/// Copies the remote conflict-log entries the cache lacks into `sync_conflicts`, first putting
/// back what a restore took from the remote's log. Returns how many entries were copied.
pub(super) fn copy(local: &Connection, remote: &mut dyn RemoteStore) -> Result<usize, Either> {
    let newest: Option<LoggedConflict> = local
        .query_row(
            &format!("{SELECT_LOCAL} ORDER BY id DESC LIMIT 1"),
            [],
            from_row,
        )
        .optional()
        .map_err(Either::Local)?;
    // One read: the cache's newest entry (which the remote must still hold, at its id) and
    // everything after it.
    let mut rows = remote
        .conflicts_after(newest.as_ref().map_or(0, |e| e.id - 1))
        .map_err(Either::Remote)?;
    if let Some(mine) = &newest {
        let intact = rows
            .first()
            .is_some_and(|e| e.id == mine.id && identity(e) == identity(mine));
        if !intact {
            return put_back(local, remote);
        }
        rows.remove(0);
    }
    if rows.is_empty() {
        return Ok(0);
    }
    super::write_tx(local, |tx| {
        for e in &rows {
            insert_local(tx, e)?;
        }
        Ok(())
    })
    .map_err(Either::Local)?;
    Ok(rows.len())
}

/// The remote's conflict log went back: writes the cache's entries it lacks back to it, then
/// replaces the cache's copy with the remote's whole log.
fn put_back(local: &Connection, remote: &mut dyn RemoteStore) -> Result<usize, Either> {
    let mine: Vec<LoggedConflict> = local
        .prepare(&format!("{SELECT_LOCAL} ORDER BY id"))
        .and_then(|mut s| s.query_map([], from_row)?.collect())
        .map_err(Either::Local)?;
    let mut put = 0;
    remote
        .write(&mut |w| {
            put = 0;
            let there = w.conflicts_after(0)?;
            let there: HashSet<[&str; 8]> = there.iter().map(identity).collect();
            for e in &mine {
                if !there.contains(&identity(e)) {
                    w.log_conflict(e)?;
                    put += 1;
                }
            }
            Ok(())
        })
        .map_err(Either::Remote)?;
    let all = remote.conflicts_after(0).map_err(Either::Remote)?;
    tracing::warn!(
        put_back = put,
        entries = all.len(),
        "the remote's conflict log went back (restored): the losing versions it lacked are put \
         back, and the cache's copy is taken again"
    );
    super::write_tx(local, |tx| {
        tx.execute("DELETE FROM sync_conflicts", [])?;
        for e in &all {
            insert_local(tx, e)?;
        }
        Ok(())
    })
    .map_err(Either::Local)?;
    Ok(all.len())
}
