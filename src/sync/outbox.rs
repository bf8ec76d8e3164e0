//! The outbox: pending local changes in `sync_tracking`, read in batches with their row data
//! (one short local read transaction per batch), and acknowledged after the remote commit (one
//! short local write transaction), only for rows not changed again meanwhile. The capture's
//! journal is folded into it before a sync reads it and inside every local write transaction
//! (`store::journal`): an acknowledgement sees the writes made while its batch was pushed.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::lineage::Lineage;
use super::versions;
use crate::clock::stamp_of_ms_sql;
use crate::remote::{EntryId, PRUNED_ORIGIN};
use crate::sql::rows::Shape;
use crate::sql::{decode_key, order_value};

/// One pending change with the row's current data.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub tbl: String,
    pub pk: String,
    pub key: Vec<Value>,
    /// The row to write (`columns` order of the table's shape), or `None` for a delete.
    pub row: Option<Vec<Value>>,
    pub stamp: String,
    pub seq: i64,
    pub seen_rev: i64,
    /// Set when the change pushes again a version the cache holds under its own name (a
    /// reconcile queues it with that version's stamp, [`super::versions`]): the version's
    /// origin, and `stamp` is its exact stamp. `None`: a change made here.
    pub origin: Option<String>,
}

impl Change {
    /// The origin this change is pushed under: the version's own when it carries one again, else
    /// the one the cache had when it made the change ([`Lineage::origin_at`]).
    pub(crate) fn born<'a>(&'a self, lineage: &'a Lineage, origin: &'a str) -> &'a str {
        match &self.origin {
            Some(o) => o,
            None => lineage.origin_at(&self.stamp, origin),
        }
    }
}

/// A held version's stamp and origin, carried again by a pending entry ([`carried`]).
type Carried = Option<(String, String)>;

/// The held version (stamp, origin) a pending entry stamped `ms` carries again, if it does: the
/// entry has exactly that version's stamp. A change the app made has a later stamp than every
/// version the cache held (the hybrid clock is past them).
fn carried(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Carried> {
    let ms: i64 = r.get(at)?;
    let stamp: Option<String> = r.get(at + 1)?;
    let origin: Option<String> = r.get(at + 2)?;
    Ok(match (stamp, origin) {
        (Some(s), Some(o)) if crate::clock::ms_of_stamp(&s) == Some(ms) => Some((s, o)),
        _ => None,
    })
}

/// The columns [`carried`] reads, after an entry's, and the join that gives them.
const CARRIED: &str = "t.stamp, v.stamp, v.origin FROM sync_tracking t \
     LEFT JOIN sync_row_versions v ON v.tbl = t.tbl AND v.pk = t.pk";

/// One `sync_tracking` row: table, key, op, stamp, seq, seen_rev.
type Entry = (String, String, String, String, i64, i64);

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// Reads every pending change it can from a cache that may be damaged, row by row, skipping
/// what cannot be read. Returns the changes and how many entries could not be read.
pub(crate) fn read_salvageable(
    c: &Connection,
    shapes: &HashMap<String, Shape>,
) -> rusqlite::Result<(Vec<Change>, usize)> {
    // The journal's events, folded in memory: the file may not take a write.
    let mut overlay = crate::store::journal::overlay(c).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the capture journal cannot be read; its writes are not salvaged");
        HashMap::new()
    });
    let mut entries: Vec<rusqlite::Result<(Entry, Carried)>> = c
        .prepare(&format!(
            "SELECT t.tbl, t.pk, t.op, {}, t.seq, t.seen_rev, {CARRIED} WHERE t.op != 'X' ORDER BY t.tbl, t.pk",
            stamp_of_ms_sql("t.stamp")
        ))?
        .query_map([], |r| Ok((entry(r)?, carried(r, 6)?)))?
        .filter(|e| match e {
            Ok(((tbl, pk, ..), _)) => !overlay.contains_key(&(tbl.clone(), pk.clone())),
            Err(_) => true,
        })
        .collect();
    let mut folded: Vec<_> = overlay
        .drain()
        .filter_map(|((tbl, pk), (_, after))| {
            let e = after.filter(|e| e.is_pending())?;
            // An app's write, stamped after every version the cache held: it carries none.
            Some(Ok((
                (
                    tbl,
                    pk,
                    e.op.to_string(),
                    crate::clock::stamp_of_ms(e.stamp),
                    e.seq,
                    e.seen_rev,
                ),
                None,
            )))
        })
        .collect();
    folded.sort_by(|a: &rusqlite::Result<(Entry, Carried)>, b| match (a, b) {
        (Ok((a, _)), Ok((b, _))) => (&a.0, &a.1).cmp(&(&b.0, &b.1)),
        _ => std::cmp::Ordering::Equal,
    });
    entries.extend(folded);
    let (mut out, mut unreadable) = (Vec::new(), 0);
    for entry in entries {
        let Ok(((tbl, pk, op, stamp, seq, seen_rev), carried)) = entry else {
            unreadable += 1;
            continue;
        };
        let (Some(shape), Ok(key)) = (shapes.get(&tbl), decode_key(&pk)) else {
            unreadable += 1;
            continue;
        };
        let row = if op == "D" {
            None
        } else {
            match shape.select(c, &key) {
                Ok(Some(row)) => Some(row),
                // Not found by its key (never pushed as a delete), or unreadable.
                Ok(None) | Err(_) => {
                    unreadable += 1;
                    continue;
                }
            }
        };
        let (stamp, origin) = match carried {
            Some((s, o)) => (s, Some(o)),
            None => (stamp, None),
        };
        out.push(Change {
            tbl,
            pk,
            key,
            row,
            stamp,
            seq,
            seen_rev,
            origin,
        });
    }
    Ok((out, unreadable))
}

/// What the remote did with a change.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Written by this push.
    Applied,
    /// Already on the remote (written by an earlier push whose acknowledgement was lost).
    AlreadyThere,
    /// A newer concurrent remote version won: apply it locally (`None`: the row is deleted).
    Lost {
        winner: Option<Vec<Value>>,
        stamp: String,
        /// The winner's origin.
        origin: String,
        /// The winner's change-log revision.
        rev: i64,
    },
}

/// Number of pending changes (excluding internal markers), the capture journal's included.
pub(crate) fn pending(c: &Connection) -> rusqlite::Result<i64> {
    crate::store::journal::pending(c)
}

/// The revision this client still needs tombstones above: its pull cursor `pull_rev`, or lower,
/// the oldest revision a pending change was made against (a change made against rev 5 must meet
/// a delete logged at rev 6 to be decided against it, even after the cursor moved past it).
/// Events of the capture journal not folded yet count with the cursor they were written at.
pub(crate) fn horizon(c: &Connection, pull_rev: i64) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT min(?1, coalesce(min(seen_rev), ?1), \
         coalesce((SELECT min(seen_rev) FROM sync_journal), ?1)) FROM sync_tracking WHERE op != 'X'",
        [pull_rev],
        |r| r.get(0),
    )
}

/// Where a read of the outbox continues: after this entry, in the order the outbox is read
/// (table, then the table's key order, then key text).
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    tbl: String,
    ord: Value,
    pk: String,
}

/// One batch read from the outbox.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The changes, with row data.
    pub changes: Vec<Change>,
    /// Where the next batch starts.
    pub next: Option<Cursor>,
    /// Whether the outbox has no entries after this batch.
    pub exhausted: bool,
    /// Entries left pending because their table cannot be pushed now.
    pub unpushable: usize,
}

/// Reads up to `limit` pending changes after `after` (from the start when `None`), with their
/// rows, in one read transaction. Changes of tables without a shape (not synced right now) are
/// left pending.
///
/// The outbox is read table by table in each table's key order (`ord`, the first key column's
/// value, then the key text), so a batch's rows are neighbours in the remote table too.
pub(crate) fn read_batch(
    c: &Connection,
    shapes: &HashMap<String, Shape>,
    after: Option<&Cursor>,
    limit: usize,
) -> rusqlite::Result<Batch> {
    let columns = format!(
        "SELECT t.tbl, t.pk, t.op, {}, t.seq, t.seen_rev, t.ord, {CARRIED}",
        stamp_of_ms_sql("t.stamp")
    );
    crate::store::read_tx(c, |c| {
        let read = |r: &rusqlite::Row<'_>| Ok((entry(r)?, r.get::<_, Value>(6)?, carried(r, 7)?));
        let entries: Vec<(Entry, Value, Carried)> = match after {
            None => c
                .prepare_cached(&format!(
                    "{columns} WHERE t.op != 'X' ORDER BY t.tbl, t.ord, t.pk LIMIT ?1"
                ))?
                .query_map(params![limit as i64], read)?
                .collect::<Result<_, _>>()?,
            Some(a) => c
                .prepare_cached(&format!(
                    "{columns} WHERE t.op != 'X' AND (t.tbl, t.ord, t.pk) > (?1, ?2, ?3) \
                     ORDER BY t.tbl, t.ord, t.pk LIMIT ?4"
                ))?
                .query_map(params![a.tbl, a.ord, a.pk, limit as i64], read)?
                .collect::<Result<_, _>>()?,
        };
        let exhausted = entries.len() < limit;
        let next = match entries.last() {
            Some((e, ord, _)) => Some(Cursor {
                tbl: e.0.clone(),
                ord: ord.clone(),
                pk: e.1.clone(),
            }),
            None => after.cloned(),
        };
        let entries = entries.into_iter().map(|(e, _, carried)| (e, carried));
        let mut out = Vec::with_capacity(entries.len());
        let mut unpushable = 0;
        for ((tbl, pk, op, stamp, seq, seen_rev), carried) in entries {
            let Some(shape) = shapes.get(&tbl) else {
                unpushable += 1;
                continue;
            };
            let key = decode_key(&pk)
                .map_err(|m| rusqlite::Error::InvalidColumnName(format!("{tbl} key {pk}: {m}")))?;
            let row = if op == "D" {
                None
            } else {
                match shape.select(c, &key)? {
                    Some(row) => Some(row),
                    None => {
                        // The capture saw this row written, and a delete would have changed the
                        // entry: the key does not find it. Never push that as a delete.
                        tracing::warn!(table = %tbl, key = %pk, "a pending row cannot be found by its key; left pending");
                        unpushable += 1;
                        continue;
                    }
                }
            };
            let (stamp, origin) = match carried {
                Some((s, o)) => (s, Some(o)),
                None => (stamp, None),
            };
            out.push(Change {
                tbl,
                pk,
                key,
                row,
                stamp,
                seq,
                seen_rev,
                origin,
            });
        }
        Ok(Batch {
            changes: out,
            next,
            exhausted,
            unpushable,
        })
    })
}

/// A row deleted while its insert was being pushed: the capture coalesced insert and delete
/// into nothing to push and dropped the entry, but the insert has reached the remote now. Queue
/// the delete again (stamped now: after the insert), so the remote loses the row too.
fn requeue_vanished_delete(c: &Connection, shape: &Shape, ch: &Change) -> rusqlite::Result<()> {
    let entry: Option<String> = c
        .prepare_cached("SELECT op FROM sync_tracking WHERE tbl = ?1 AND ord = ?3 AND pk = ?2")?
        .query_row(params![ch.tbl, ch.pk, order_value(&ch.key)], |r| r.get(0))
        .optional()?;
    if entry.is_none() && shape.select(c, &ch.key)?.is_none() {
        c.prepare_cached(
            "INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) \
             SELECT ?1, ?2, ?3, 'D', hlc, 1, pull_rev FROM sync_state",
        )?
        .execute(params![ch.tbl, ch.pk, order_value(&ch.key)])?;
    }
    Ok(())
}

/// What one remote transaction of a push did.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    /// Per change of the batch, in order.
    pub outcomes: Vec<Outcome>,
    /// The change-log revision before the transaction and after it: the revisions in between
    /// are this batch's own versions.
    pub revs: (i64, i64),
    /// The newest change-log entry the batch wrote (revision, stamp and origin: this cache's, or
    /// a former one of its lineage for a change made before it found it was a copy): the cache's
    /// new trail mark (see [`crate::remote::Mark`]).
    pub newest: Option<EntryId>,
    /// Per change of the batch, the origin it was pushed under ([`Change::born`]).
    pub origins: Vec<String>,
}

/// Acknowledges pushed changes in one local write transaction: entries whose row was not changed
/// again are removed, and for lost changes the winning remote version is applied (without
/// capture); the version the cache now holds of each row is recorded ([`super::versions`]). Also
/// drops stale `X` markers. When the batch's revisions directly follow the pull
/// cursor, the cursor moves past them: nothing in between needs pulling, since it is this
/// cache's own writes. Returns how many winners were applied.
pub(crate) fn acknowledge(
    c: &Connection,
    shapes: &HashMap<String, Shape>,
    batch: &[Change],
    applied: &Applied,
) -> rusqlite::Result<usize> {
    let outcomes = &applied.outcomes;
    let origins = &applied.origins;
    let (batch_base, batch_last) = applied.revs;
    let applied_newest = &applied.newest;
    super::write_tx(c, |c| {
        c.execute(
            "UPDATE sync_state SET pull_rev = ?2 WHERE pull_rev = ?1",
            params![applied.revs.0, applied.revs.1],
        )?;
        c.execute("UPDATE sync_state SET applying = 1", [])?;
        let mut applied = 0;
        let mut newest: Option<&str> = None;
        for ((ch, outcome), born) in batch.iter().zip(outcomes).zip(origins) {
            let removed = c
                .prepare_cached(
                    "DELETE FROM sync_tracking WHERE tbl = ?1 AND ord = ?4 AND pk = ?2 AND seq = ?3",
                )?
                .execute(params![ch.tbl, ch.pk, ch.seq, order_value(&ch.key)])?;
            if removed == 0 && ch.row.is_some() {
                requeue_vanished_delete(c, &shapes[&ch.tbl], ch)?;
            }
            if removed == 0 && matches!(outcome, Outcome::Applied) {
                // Changed again while this version was being pushed: the new change was made on
                // top of the version this push wrote, decided against everything before this
                // batch. Only what comes after can be concurrent with it. (Not for a version an
                // earlier push wrote: what came since may have superseded it.) (Kept at the first
                // change's cursor, the push's search and the registry's horizon would reach
                // back to it for as long as the app keeps editing the row.)
                c.prepare_cached(
                    "UPDATE sync_tracking SET seen_rev = max(seen_rev, ?3) WHERE tbl = ?1 AND ord = ?4 AND pk = ?2",
                )?
                .execute(params![ch.tbl, ch.pk, batch_base, order_value(&ch.key)])?;
            }
            if matches!(outcome, Outcome::Applied | Outcome::AlreadyThere) {
                // Written in this batch or before it: at or below the batch's last revision.
                let learned = versions::Learned {
                    stamp: &ch.stamp,
                    origin: born,
                    deleted: ch.row.is_none(),
                    rev: batch_last,
                };
                versions::record(c, &ch.tbl, &ch.pk, &learned)?;
            }
            if let Outcome::Lost {
                winner,
                stamp,
                origin,
                rev,
            } = outcome
            {
                newest = newest.max(Some(stamp.as_str()));
                if removed == 1 {
                    // A stand-in for a pruned version has no name of its own: unknown.
                    let learned = versions::Learned {
                        stamp: if origin == PRUNED_ORIGIN { "" } else { stamp },
                        origin,
                        deleted: winner.is_none(),
                        rev: *rev,
                    };
                    versions::record(c, &ch.tbl, &ch.pk, &learned)?;
                    let shape = &shapes[&ch.tbl];
                    match winner {
                        Some(row) => shape.upsert(c, row)?,
                        None => shape.delete(c, &ch.key)?,
                    }
                    applied += 1;
                }
            }
        }
        if let Some(ms) = newest.and_then(crate::clock::ms_of_stamp) {
            c.execute("UPDATE sync_state SET hlc = max(hlc, ?1)", [ms])?;
        }
        if let Some(entry) = &applied_newest {
            super::trail::mark_seen(c, entry)?;
        }
        c.execute("DELETE FROM sync_tracking WHERE op = 'X'", [])?;
        c.execute("UPDATE sync_state SET applying = 0", [])?;
        Ok(applied)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    /// A cache-shaped database with captured tables `t` (integer key) and `u` (text key).
    fn setup() -> (Connection, HashMap<String, Shape>) {
        let c = Connection::open_in_memory().unwrap();
        crate::migrate::CACHE.apply(&c, "t").unwrap();
        c.execute_batch(
            "INSERT INTO sync_state (id, origin, hlc, remote_id, remote_path, created_at, snapshot_at) \
             VALUES (1, 'o', 946684800000, 'r', 'p', 't', 't'); \
             CREATE TABLE t(id INTEGER PRIMARY KEY, v); CREATE TABLE u(k TEXT PRIMARY KEY, v);",
        )
        .unwrap();
        let mut shapes = HashMap::new();
        for e in schema::read(&c).unwrap() {
            crate::store::capture::install(&c, &e.table).unwrap();
            shapes.insert(e.table.name.clone(), Shape::new(&e.table, &e.table));
        }
        (c, shapes)
    }

    /// Every batch of `limit` from the start, as (table, key text) per batch.
    fn batches(c: &Connection, shapes: &HashMap<String, Shape>, limit: usize) -> Vec<Vec<String>> {
        crate::store::journal::fold(c).unwrap();
        let (mut out, mut after) = (Vec::new(), None);
        loop {
            let b = read_batch(c, shapes, after.as_ref(), limit).unwrap();
            out.push(
                b.changes
                    .iter()
                    .map(|ch| format!("{} {}", ch.tbl, ch.pk))
                    .collect(),
            );
            if b.exhausted {
                return out;
            }
            after = b.next;
        }
    }

    #[test]
    fn batches_hold_neighbouring_rows_in_each_tables_key_order() {
        let (c, shapes) = setup();
        // Written in no particular order; key text order would be 1, 10, 11, ..., 2, 20, ...
        for id in [7, 25, 1, 12, 3, 20, 9, 2, 11, 10, 30, 100, 4] {
            c.execute("INSERT INTO t VALUES (?1, 'x')", [id]).unwrap();
        }
        c.execute_batch(
            "INSERT INTO u VALUES ('b', 1), ('a', 2), ('c', 3); \
             UPDATE sync_state SET applying = 1; INSERT INTO t VALUES (50, 'synced'); \
             UPDATE sync_state SET applying = 0; DELETE FROM t WHERE id = 50;",
        )
        .unwrap();
        let got = batches(&c, &shapes, 5);
        let want: Vec<String> = [1, 2, 3, 4, 7, 9, 10, 11, 12, 20, 25, 30, 50, 100]
            .iter()
            .map(|id| format!("t {id}"))
            .chain(["u 'a'", "u 'b'", "u 'c'"].map(String::from))
            .collect();
        assert_eq!(got.concat(), want, "each entry once, in key order");
        assert_eq!(got[0], want[..5], "the first batch is the lowest keys");
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_delete_requeued_after_its_insert_was_pushed_keeps_its_place_in_key_order() {
        let (c, shapes) = setup();
        c.execute_batch("INSERT INTO t VALUES (5, 'a'), (40, 'b'), (300, 'c')")
            .unwrap();
        crate::store::journal::fold(&c).unwrap();
        let first = read_batch(&c, &shapes, None, 10).unwrap();
        // Row 40 is deleted while its insert is on its way: insert + delete coalesce to nothing.
        c.execute("DELETE FROM t WHERE id = 40", []).unwrap();
        let applied = Applied {
            outcomes: vec![Outcome::Applied; first.changes.len()],
            revs: (0, 3),
            newest: None,
            origins: vec!["o".into(); first.changes.len()],
        };
        acknowledge(&c, &shapes, &first.changes, &applied).unwrap();
        c.execute("INSERT INTO t VALUES (70, 'd')", []).unwrap();
        crate::store::journal::fold(&c).unwrap();
        let again = read_batch(&c, &shapes, None, 10).unwrap();
        let keys: Vec<(&str, bool)> = again
            .changes
            .iter()
            .map(|ch| (ch.pk.as_str(), ch.row.is_none()))
            .collect();
        assert_eq!(keys, [("40", true), ("70", false)]);
    }

    #[test]
    fn a_write_still_in_the_journal_when_its_batch_is_acknowledged_stays_pending() {
        let (c, shapes) = setup();
        c.execute_batch("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
            .unwrap();
        crate::store::journal::fold(&c).unwrap();
        let batch = read_batch(&c, &shapes, None, 10).unwrap();
        // Written while the batch is on its way, and not folded before the acknowledgement.
        c.execute_batch(
            "UPDATE t SET v = 'newer' WHERE id = 1; UPDATE t SET v = 'newer' WHERE id = 2",
        )
        .unwrap();
        let applied = Applied {
            outcomes: vec![
                Outcome::Applied,
                Outcome::Lost {
                    winner: Some(vec![Value::Integer(2), Value::Text("remote".into())]),
                    stamp: "2000-01-01T00:00:00.000Z".into(),
                    origin: "remote".into(),
                    rev: 2,
                },
            ],
            revs: (0, 2),
            newest: None,
            origins: vec!["o".into(); 2],
        };
        assert_eq!(
            acknowledge(&c, &shapes, &batch.changes, &applied).unwrap(),
            0
        );
        let left: Vec<(String, String, i64, i64)> = c
            .prepare("SELECT pk, op, seq, seen_rev FROM sync_tracking ORDER BY pk")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            left,
            [
                ("1".into(), "I".into(), 2, 0),
                ("2".into(), "I".into(), 2, 0)
            ],
            "both changed again: neither acknowledged"
        );
        let v: String = c
            .query_row("SELECT v FROM t WHERE id = 2", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            v, "newer",
            "the remote winner does not overwrite a newer local write"
        );
    }
}
