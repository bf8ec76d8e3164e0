//! The conflict log, as the cache has it: every losing version of a row, and how to bring one
//! back.
//!
//! Each sync copies new entries of the remote's `sharecache_conflicts` into the cache's
//! `sync_conflicts`, so every client (and `sharecache conflicts`, offline too) sees them.
//! [`restore`] writes a losing version into the cache as a new local change; it then syncs like
//! any other write, with a fresh stamp, and so wins everywhere.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use serde::Serialize;

use crate::schema;
use crate::sql::{decode_key, quote, row_from_json};

/// One logged conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Id in the conflict log.
    pub id: i64,
    /// Table.
    pub table: String,
    /// Key of the row (JSON array of the key's values).
    pub key: String,
    /// Stamp of the winning version.
    pub winner_stamp: String,
    /// Origin of the winning version.
    pub winner_origin: String,
    /// Stamp of the losing version.
    pub loser_stamp: String,
    /// Origin of the losing version.
    pub loser_origin: String,
    /// `upsert` or `delete`.
    pub loser_op: String,
    /// The losing row as JSON (`None` for a delete).
    pub loser_row: Option<String>,
    /// When it was decided.
    pub decided_at: String,
    /// Which client's sync decided it.
    pub decided_by: String,
    /// Why: `newer`, or why the remote rejected the write.
    pub reason: String,
}

const COLUMNS: &str = "id, tbl, pk, winner_stamp, winner_origin, loser_stamp, loser_origin, loser_op, loser_row, \
                       decided_at, decided_by, reason";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conflict> {
    Ok(Conflict {
        id: r.get(0)?,
        table: r.get(1)?,
        key: r.get(2)?,
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

/// The most recent conflicts, newest first.
pub fn list(c: &Connection, limit: usize) -> rusqlite::Result<Vec<Conflict>> {
    c.prepare(&format!(
        "SELECT {COLUMNS} FROM sync_conflicts ORDER BY id DESC LIMIT ?1"
    ))?
    .query_map([limit as i64], from_row)?
    .collect()
}

/// One conflict by id.
pub fn get(c: &Connection, id: i64) -> rusqlite::Result<Option<Conflict>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM sync_conflicts WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// Why a conflict could not be restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// No conflict with this id (in the cache's copy of the log; sync to get newer entries).
    #[error(
        "no conflict with id {0} in the conflict log (run `sharecache sync` to fetch newer entries)"
    )]
    NotFound(i64),
    /// The table no longer exists or changed so that the losing row does not fit.
    #[error("conflict {id}: {message}")]
    DoesNotFit {
        /// Conflict id.
        id: i64,
        /// What does not fit.
        message: String,
    },
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Makes the losing version of conflict `id` the current one, as a new local change on `c` (a
/// connection on the cache, with capture active). Returns the conflict restored.
///
/// The row's `updated_at` (if the table has one) is left for the capture trigger to stamp, so the
/// restored version carries a fresh stamp and wins at the next sync.
pub fn restore(c: &Connection, id: i64) -> Result<Conflict, RestoreError> {
    let conflict = get(c, id)?.ok_or(RestoreError::NotFound(id))?;
    let fit = |message: String| RestoreError::DoesNotFit { id, message };
    let table = schema::read(c)?
        .into_iter()
        .find(|e| e.table.name == conflict.table)
        .ok_or_else(|| {
            fit(format!(
                "table {:?} is not in the cache any more",
                conflict.table
            ))
        })?
        .table;
    let key = decode_key(&conflict.key).map_err(fit)?;
    if key.len() != table.pk.len() {
        return Err(fit(format!(
            "the key of {:?} changed since the conflict",
            table.name
        )));
    }
    let tx = c.unchecked_transaction()?;
    match &conflict.loser_row {
        None => {
            let cond: Vec<String> = table
                .pk
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{} = ?{}", quote(k), i + 1))
                .collect();
            tx.execute(
                &format!(
                    "DELETE FROM {} WHERE {}",
                    quote(&table.name),
                    cond.join(" AND ")
                ),
                params_from_iter(crate::sql::Bind::all(&key)),
            )?;
        }
        Some(json) => {
            let row = row_from_json(json).map_err(fit)?;
            let names = table.column_names();
            let mut cols: Vec<String> = Vec::new();
            let mut vals: Vec<Value> = Vec::new();
            for (name, value) in row {
                if !names.contains(&name) {
                    return Err(fit(format!(
                        "column {name:?} of {:?} does not exist any more",
                        table.name
                    )));
                }
                if table.updated_at.as_deref() == Some(name.as_str()) {
                    continue; // stamped afresh by the capture trigger
                }
                cols.push(name);
                vals.push(value);
            }
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            let sets: Vec<String> = cols
                .iter()
                .filter(|c| !table.pk.contains(c))
                .map(|c| format!("{q} = excluded.{q}", q = quote(c)))
                .collect();
            let mut stamp_reset = String::new();
            if let Some(ua) = &table.updated_at {
                // Leaving updated_at unchanged makes the trigger stamp it.
                stamp_reset = format!(", {q} = {q}", q = quote(ua));
            }
            let action = if sets.is_empty() && stamp_reset.is_empty() {
                "NOTHING".to_string()
            } else if sets.is_empty() {
                format!("UPDATE SET {}", stamp_reset.trim_start_matches(", "))
            } else {
                format!("UPDATE SET {}{stamp_reset}", sets.join(", "))
            };
            let keys = table
                .pk
                .iter()
                .map(|k| quote(k))
                .collect::<Vec<_>>()
                .join(", ");
            let quoted: Vec<String> = cols.iter().map(|c| quote(c)).collect();
            tx.execute(
                &format!(
                    "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({keys}) DO {action}",
                    quote(&table.name),
                    quoted.join(", "),
                    marks.join(", ")
                ),
                params_from_iter(crate::sql::Bind::all(&vals)),
            )?;
        }
    }
    tx.commit()?;
    Ok(conflict)
}
