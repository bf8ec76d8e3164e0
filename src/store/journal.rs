//! The capture journal: what the triggers append, folded into the keyed outbox by sharecache.
//!
//! Why two tables. The outbox (`sync_tracking`) holds at most one entry per row, coalesced
//! (insert+update = insert, insert+delete = nothing, delete+insert = update), which is what the
//! push reads in key order, acknowledges by `seq`, and the pull and the trail consult. Keeping it
//! coalesced from inside the triggers needs an update-or-insert; without UPSERT (SQLite 3.24,
//! above the 3.7.17 floor: README, Known limits) that is two statements, and it made every
//! captured write dearer than before issue 18 (BENCHMARKS.md, Capture). So each trigger appends
//! one event to `sync_journal` (a rowid table with no index, no unique constraint: the insert
//! cannot conflict, whatever conflict clause an app's outer statement imposes) and sharecache
//! folds the events, oldest first, with the same rules ([`apply`]), in its own short local
//! transactions:
//! - at the start of every sync and when the engine opens the cache ([`fold`], in transactions of
//!   at most [`CHUNK`] events: memory stays flat, and the app never waits long for the lock), so
//!   a row updated many times while offline costs one event per write only until the next
//!   attempt to sync;
//! - inside every one of sharecache's local write transactions, before its work
//!   (`fold_in`, called by `store::write_tx`): whatever reads or changes `sync_tracking` there
//!   (the acknowledgement after a push, the pull, the trail) sees every committed write. An
//!   acknowledgement therefore never drops an entry written after the push read it: the fold
//!   bumped its `seq` first.
//!
//! Events are committed with the app's write and folded atomically (the fold deletes the events it
//! folded in the same transaction), so a kill -9 loses neither. A connection that must not write
//! (`status`, another cache, salvage of a damaged file) reads the journal's effect without folding
//! ([`overlay`], [`pending`]).

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::{Bind, decode_key, order_value};

/// Events folded per read of the journal (and, in [`fold`], per local transaction).
pub const CHUNK: usize = 2_000;

/// A row's entry in the outbox, as `sync_tracking` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `I`, `U`, `D`, or `X` (an `INSERT` met an existing row; never pushed).
    pub op: &'static str,
    /// Clock of the latest change (ms since the Unix epoch).
    pub stamp: i64,
    /// Bumped by every change: an acknowledgement removes only the version it pushed.
    pub seq: i64,
    /// Pull cursor when the row was first changed.
    pub seen_rev: i64,
}

impl Entry {
    /// Whether the entry is a change to push (an `X` marker is not).
    pub fn is_pending(&self) -> bool {
        self.op != "X"
    }
}

/// A row of a table: (table, key text).
pub type Key = (String, String);

/// Per row an event touched: its entry before the events and after them.
pub type Overlay = HashMap<Key, (Option<Entry>, Option<Entry>)>;

/// One captured write's effect on the row's entry: the rules the triggers applied themselves
/// before the journal. An `X` event (an `INSERT` about to meet an existing row) leaves a marker
/// when there is no entry, so that the insert that follows counts as an update; an insert or an
/// update keeps an entry's `I`, else makes it `U`; a delete drops an `I` entry (the row never
/// reached the remote) and turns any other into `D`. `seen_rev` is the first change's.
pub fn apply(
    entry: Option<Entry>,
    op: &str,
    stamp: i64,
    seen_rev: i64,
) -> Result<Option<Entry>, String> {
    let first = |op| Entry {
        op,
        stamp,
        seq: 1,
        seen_rev,
    };
    Ok(match (entry, op) {
        (None, "X") => Some(Entry {
            seq: 0,
            ..first("X")
        }),
        (Some(e), "X") => Some(e),
        (None, "I") => Some(first("I")),
        (None, "U") => Some(first("U")),
        (None, "D") => Some(first("D")),
        (Some(e), "D") if e.op == "I" => None,
        (Some(e), "I" | "U" | "D") => Some(Entry {
            op: match op {
                "D" => "D",
                _ if e.op == "I" => "I",
                _ => "U",
            },
            stamp,
            seq: e.seq + 1,
            seen_rev: e.seen_rev,
        }),
        (_, other) => {
            return Err(format!(
                "the capture journal holds an unknown event {other:?}"
            ));
        }
    })
}

fn op_name(op: &str) -> Option<&'static str> {
    ["I", "U", "D", "X"].into_iter().find(|o| *o == op)
}

fn bad(why: String) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnName(why)
}

/// The row's place in the outbox's index (`ord`, the first key value), from its key text.
fn ord_of(key: &Key) -> rusqlite::Result<Value> {
    decode_key(&key.1)
        .map(|k| order_value(&k))
        .map_err(|m| bad(format!("{} key {}: {m}", key.0, key.1)))
}

/// Whether this connection's cache has a journal (a cache before migration 10 has none).
fn has_journal(c: &Connection) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = 'sync_journal'",
    )?
    .query_row([], |r| r.get::<_, i64>(0))
    .map(|n| n > 0)
}

fn stored(
    s: &mut rusqlite::CachedStatement<'_>,
    key: &Key,
    ord: &Value,
) -> rusqlite::Result<Option<Entry>> {
    let row = s
        .query_row(params![key.0, Bind::new(ord), key.1], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    row.map(|(op, stamp, seq, seen_rev)| {
        let op = op_name(&op).ok_or_else(|| bad(format!("{} key {}: op {op:?}", key.0, key.1)))?;
        Ok(Entry {
            op,
            stamp,
            seq,
            seen_rev,
        })
    })
    .transpose()
}

/// A row's entry before the events and after them, its `ord`, and when the journal first
/// named it (entries are written in that order: the app's order, mostly the key's).
struct Touched {
    ord: Value,
    before: Option<Entry>,
    after: Option<Entry>,
    first: usize,
}

/// Applies the journal's events after rowid `after`, at most `limit` of them, to `touched` (rows
/// not yet in it start from their stored entry). Returns the last rowid read and how many.
fn read_events(
    c: &Connection,
    after: i64,
    limit: usize,
    touched: &mut HashMap<Key, Touched>,
) -> rusqlite::Result<(i64, usize)> {
    // An empty outbox (the usual state after a push) has no entry to look up: one indexed
    // lookup per row saved.
    let outbox_empty = c
        .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM sync_tracking)")?
        .query_row([], |r| r.get::<_, bool>(0))?;
    let mut lookup = match outbox_empty {
        true => None,
        false => Some(c.prepare_cached(
            "SELECT op, stamp, seq, seen_rev FROM sync_tracking WHERE tbl = ?1 AND ord = ?2 AND pk = ?3",
        )?),
    };
    let mut s = c.prepare_cached(
        "SELECT rowid, tbl, pk, op, stamp, seen_rev FROM sync_journal WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let mut rows = s.query(params![after, limit as i64])?;
    let (mut last, mut n) = (after, 0);
    while let Some(r) = rows.next()? {
        let key: Key = (r.get(1)?, r.get(2)?);
        let (op, stamp, seen_rev): (String, i64, i64) = (r.get(3)?, r.get(4)?, r.get(5)?);
        (last, n) = (r.get(0)?, n + 1);
        let first = touched.len();
        let t = match touched.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let ord = ord_of(v.key())?;
                let before = match lookup.as_mut() {
                    None => None,
                    Some(s) => stored(s, v.key(), &ord)?,
                };
                v.insert(Touched {
                    ord,
                    after: before.clone(),
                    before,
                    first,
                })
            }
        };
        t.after = apply(t.after.take(), &op, stamp, seen_rev).map_err(|m| {
            let (tbl, pk): (String, String) =
                (r.get(1).unwrap_or_default(), r.get(2).unwrap_or_default());
            bad(format!("{tbl} key {pk}: {m}"))
        })?;
    }
    Ok((last, n))
}

/// Folds up to [`CHUNK`] events into `sync_tracking` and deletes them. Inside a write
/// transaction (nothing else can append meanwhile). Returns how many were folded.
fn fold_chunk(c: &Connection) -> rusqlite::Result<usize> {
    let mut touched = HashMap::new();
    let (last, n) = read_events(c, i64::MIN, CHUNK, &mut touched)?;
    if n == 0 {
        return Ok(0);
    }
    let mut rows: Vec<(&Key, &Touched)> = touched.iter().collect();
    rows.sort_unstable_by_key(|(_, t)| t.first);
    let mut delete =
        c.prepare_cached("DELETE FROM sync_tracking WHERE tbl = ?1 AND ord = ?2 AND pk = ?3")?;
    let mut update = c.prepare_cached(
        "UPDATE sync_tracking SET op = ?4, stamp = ?5, seq = ?6, seen_rev = ?7 \
         WHERE tbl = ?1 AND ord = ?2 AND pk = ?3",
    )?;
    let mut insert = c.prepare_cached(
        "INSERT INTO sync_tracking (tbl, ord, pk, op, stamp, seq, seen_rev) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for ((tbl, pk), t) in rows {
        let ord = Bind::new(&t.ord);
        match (&t.before, &t.after) {
            (Some(_), None) => delete.execute(params![tbl, ord, pk])?,
            (Some(_), Some(e)) => {
                update.execute(params![tbl, ord, pk, e.op, e.stamp, e.seq, e.seen_rev])?
            }
            (None, Some(e)) => {
                insert.execute(params![tbl, ord, pk, e.op, e.stamp, e.seq, e.seen_rev])?
            }
            (None, None) => 0,
        };
    }
    if n < CHUNK {
        // Every event was read: emptying the table is one step, not a delete per row.
        c.prepare_cached("DELETE FROM sync_journal")?.execute([])?;
    } else {
        c.prepare_cached("DELETE FROM sync_journal WHERE rowid <= ?1")?
            .execute([last])?;
    }
    Ok(n)
}

/// Folds the whole journal inside the caller's write transaction. Returns how many events.
pub(crate) fn fold_in(c: &Connection) -> rusqlite::Result<usize> {
    if !has_journal(c)? {
        return Ok(0);
    }
    let mut total = 0;
    loop {
        let n = fold_chunk(c)?;
        total += n;
        if n < CHUNK {
            return Ok(total);
        }
    }
}

/// Folds the whole journal, [`CHUNK`] events per local write transaction (outside any
/// transaction). Returns how many events.
pub fn fold(c: &Connection) -> rusqlite::Result<usize> {
    if !has_journal(c)? {
        return Ok(0);
    }
    let mut total = 0;
    loop {
        let n = super::tx::write_tx_unfolded(c, fold_chunk)?;
        total += n;
        if n < CHUNK {
            return Ok(total);
        }
    }
}

/// What folding the journal would do, without writing: per row an event touched, its entry now
/// and after the fold. Memory grows with the rows changed since the last fold.
pub fn overlay(c: &Connection) -> rusqlite::Result<Overlay> {
    let mut touched = HashMap::new();
    if has_journal(c)? {
        let mut after = i64::MIN;
        loop {
            let (last, n) = read_events(c, after, CHUNK, &mut touched)?;
            after = last;
            if n < CHUNK {
                break;
            }
        }
    }
    Ok(touched
        .into_iter()
        .map(|(k, t)| (k, (t.before, t.after)))
        .collect())
}

/// The number of rows with a change to push, the journal's events included (folded or not).
pub fn pending(c: &Connection) -> rusqlite::Result<i64> {
    let stored: i64 = c.query_row(
        "SELECT count(*) FROM sync_tracking WHERE op != 'X'",
        [],
        |r| r.get(0),
    )?;
    let counts = |e: &Option<Entry>| i64::from(e.as_ref().is_some_and(Entry::is_pending));
    Ok(overlay(c)?.values().fold(stored, |n, (before, after)| {
        n - counts(before) + counts(after)
    }))
}

#[cfg(test)]
#[path = "journal/tests.rs"]
mod tests;
