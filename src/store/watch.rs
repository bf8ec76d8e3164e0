//! Watching the cache's schema: apps run their own migrations against the cache.
//!
//! Why: an app that links sharecache transparently migrates whatever file it was given, and a
//! migration tool's table rebuild (create, copy, drop the old table, rename) drops the capture
//! triggers with the old table. From then on every write to that table would go unrecorded, never
//! pushed, and erased by the next rebuild of the cache. So sharecache notices every schema change
//! made in the cache by anyone, cheaply, and looks closer when there was one.
//!
//! How: SQLite bumps the database's schema cookie (`PRAGMA schema_version`) on every schema
//! change, whoever makes it (this process, another one, the `sqlite3` shell, `VACUUM`).
//! `sync_state.schema_cookie` holds the value sharecache last found in order; [`check`] compares
//! the two (one local read, no share round trip) at open and at the start of every sync. Only
//! when they differ does it compare each synced table with what `sync_tables` recorded and with
//! the capture triggers this build writes ([`super::capture::trigger_sql`]):
//! - triggers missing or stale, columns and key as recorded (a rebuild that changes constraints
//!   or declared types, dropped triggers): the triggers are reinstalled at once and the table is
//!   queued in `sync_repairs`, so the next sync that reaches the share recovers the writes made
//!   meanwhile (`crate::sync` compares the table with the remote);
//! - columns added in the cache, tables created only in the cache: reported, and carried to the
//!   remote by the next sync ([`follow_local`] records them as synced once the remote has them);
//! - a synced table gone (dropped or renamed), a synced column gone, a new key: refused
//!   ([`Refusal`]).
//!
//! The cookie is recorded ([`record`]) only once nothing is refused and the additions reached the
//! remote, so a check that found something looks again at every sync until it is dealt with.

use rusqlite::{Connection, params};

use super::capture;
use crate::schema::{self, Column, Sync, Table};

/// A local schema change sharecache cannot carry to the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The synced table.
    pub table: String,
    /// What changed, in words.
    pub change: String,
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Whether the schema changed since sharecache last found it in order.
    pub changed: bool,
    /// The schema cookie this check saw: [`record`] it once what the check found is dealt with.
    pub cookie: i64,
    /// Tables whose capture triggers were reinstalled now, with why.
    pub repaired: Vec<(String, String)>,
    /// Tables whose missed writes are still to be recovered against the remote.
    pub to_recover: Vec<String>,
    /// Local changes refused.
    pub refused: Vec<Refusal>,
    /// Tables that exist only in the cache (never synced).
    pub cache_only_tables: Vec<String>,
    /// Columns of synced tables that exist only in the cache: `(table, columns)`.
    pub cache_only_columns: Vec<(String, Vec<String>)>,
}

/// The schema cookie now, the one recorded, and the tables whose recovery is outstanding: one
/// statement (one read of the WAL index) on an unchanged cache.
fn cookies(c: &Connection) -> rusqlite::Result<(i64, i64, Vec<String>)> {
    let (now, recorded, outstanding): (i64, i64, i64) = c
        .prepare_cached(
            "SELECT (SELECT schema_version FROM pragma_schema_version), schema_cookie, \
             EXISTS (SELECT 1 FROM sync_repairs WHERE done_at IS NULL) FROM sync_state",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let outstanding = if outstanding != 0 {
        self::outstanding(c)?
    } else {
        Vec::new()
    };
    Ok((now, recorded, outstanding))
}

/// Checks the cache's schema (see the module doc); repairs capture where it can, in one local
/// write transaction taken only when the schema changed. `now` stamps the repairs.
pub fn check(c: &Connection, now: &str) -> rusqlite::Result<Findings> {
    let (cookie, recorded, outstanding) = cookies(c)?;
    if cookie == recorded {
        return Ok(Findings {
            cookie,
            to_recover: outstanding,
            ..Findings::default()
        });
    }
    super::write_tx(c, |c| {
        let mut f = classify(c)?;
        for (table, reason) in &f.repaired {
            c.execute(
                "INSERT INTO sync_repairs (tbl, reason, found_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (tbl) DO UPDATE SET reason = excluded.reason, \
                 found_at = excluded.found_at, done_at = NULL",
                params![table, reason, now],
            )?;
            tracing::warn!(table = %table, reason = %reason, "capture triggers reinstalled; writes made meanwhile are recovered at the next sync");
        }
        f.to_recover = c
            .prepare("SELECT tbl FROM sync_repairs WHERE done_at IS NULL ORDER BY tbl")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        f.changed = true;
        // After this transaction's own trigger writes (nobody else's: it holds the write lock).
        f.cookie = c.query_row(
            "SELECT schema_version FROM pragma_schema_version",
            [],
            |r| r.get(0),
        )?;
        Ok(f)
    })
}

/// Records `cookie` (a [`Findings::cookie`]) as the schema found in order: later checks are one
/// read until the schema changes again. Call only when nothing is refused and what the check
/// found was carried to the remote; a cookie older than the schema costs one more look.
pub fn record(c: &Connection, cookie: i64) -> rusqlite::Result<()> {
    c.execute("UPDATE sync_state SET schema_cookie = ?1", [cookie])?;
    Ok(())
}

/// Starts syncing a table the app created in the cache (`local`), now that the remote has it
/// with columns `remote_signature`, or records the columns added in the cache that the remote
/// now has too (`signature` of the table as synced): capture triggers installed, `sync_tables`
/// updated, and the table queued to be compared with the remote (`adopt`: it was never synced,
/// so rows only on the remote are pulled rather than deleted).
pub fn follow_local(
    c: &Connection,
    local: &Table,
    signature: &str,
    adopt: bool,
    now: &str,
) -> rusqlite::Result<()> {
    capture::install(c, local)?;
    c.execute(
        "INSERT INTO sync_tables (name, synced, reason, signature) VALUES (?1, 1, NULL, ?2) \
         ON CONFLICT (name) DO UPDATE SET synced = 1, reason = NULL, signature = excluded.signature",
        params![local.name, signature],
    )?;
    let (mode, reason) = if adopt {
        ("adopt", "created in the cache; now synced")
    } else {
        ("repair", "columns added in the cache; now synced")
    };
    c.execute(
        "INSERT INTO sync_repairs (tbl, reason, found_at, mode) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (tbl) DO UPDATE SET reason = excluded.reason, found_at = excluded.found_at, \
         done_at = NULL, mode = CASE WHEN sync_repairs.done_at IS NULL AND sync_repairs.mode = 'adopt' \
         THEN 'adopt' ELSE excluded.mode END",
        params![local.name, reason, now, mode],
    )?;
    Ok(())
}

/// Tables whose recovery against the remote is outstanding.
pub fn outstanding(c: &Connection) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached("SELECT tbl FROM sync_repairs WHERE done_at IS NULL ORDER BY tbl")?
        .query_map([], |r| r.get(0))?
        .collect()
}

/// Whether the recovery outstanding for `table` adopts it (see [`follow_local`]).
pub fn adopting(c: &Connection, table: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) > 0 FROM sync_repairs WHERE tbl = ?1 AND mode = 'adopt' AND done_at IS NULL",
        [table],
        |r| r.get(0),
    )
}

/// Records that the writes of `table` missed while its capture was off are recovered.
pub fn recovered(c: &Connection, table: &str, rows: u64, now: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE sync_repairs SET done_at = ?2, recovered = recovered + ?3 WHERE tbl = ?1",
        params![table, now, rows as i64],
    )?;
    Ok(())
}

/// Compares the cache's schema with what `sync_tables` recorded and reinstalls missing or
/// stale capture triggers of tables whose columns and key are as recorded.
fn classify(c: &Connection) -> rusqlite::Result<Findings> {
    let recorded: Vec<(String, bool, String)> = c
        .prepare("SELECT name, synced, signature FROM sync_tables ORDER BY name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let local = schema::read(c)?;
    let mut f = Findings::default();
    for e in &local {
        if !recorded.iter().any(|(n, _, _)| *n == e.table.name) {
            f.cache_only_tables.push(e.table.name.clone());
        }
    }
    for (name, _, signature) in recorded.iter().filter(|r| r.1) {
        let cols = Table::columns_from_signature(signature).unwrap_or_default();
        let Some(now) = local.iter().find(|e| e.table.name == *name) else {
            f.refused.push(Refusal {
                table: name.clone(),
                change: "the table was dropped or renamed in the cache".into(),
            });
            continue;
        };
        if let Some(change) = incompatible(&cols, &now.table, &now.sync) {
            f.refused.push(Refusal {
                table: name.clone(),
                change,
            });
            continue;
        }
        let extra: Vec<String> = now
            .table
            .columns
            .iter()
            .filter(|l| !cols.iter().any(|r| r.name == l.name))
            .map(|l| l.name.clone())
            .collect();
        if !extra.is_empty() {
            f.cache_only_columns.push((name.clone(), extra));
        }
        if let Some(reason) = capture_off(c, &now.table)? {
            capture::install(c, &now.table)?;
            f.repaired.push((name.clone(), reason));
        }
    }
    Ok(f)
}

/// Why a synced table's local shape cannot be synced as recorded, if it cannot.
fn incompatible(recorded: &[Column], now: &Table, sync: &Sync) -> Option<String> {
    let key: Vec<&str> = {
        let mut k: Vec<&Column> = recorded.iter().filter(|c| c.pk > 0).collect();
        k.sort_by_key(|c| c.pk);
        k.iter().map(|c| c.name.as_str()).collect()
    };
    let gone: Vec<&str> = recorded
        .iter()
        .filter(|r| !now.columns.iter().any(|l| l.name == r.name))
        .map(|r| r.name.as_str())
        .collect();
    if !gone.is_empty() {
        return Some(format!(
            "column {} was dropped or renamed in the cache",
            gone.iter()
                .map(|g| format!("{g:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if now.pk.iter().map(String::as_str).ne(key.iter().copied()) {
        return Some(match sync {
            Sync::No(why) => format!("the primary key was removed in the cache ({why})"),
            Sync::Yes => format!(
                "the primary key changed in the cache (from ({}) to ({}))",
                key.join(", "),
                now.pk.join(", ")
            ),
        });
    }
    None
}

/// Why the capture of `t` is off or out of date, if it is.
fn capture_off(c: &Connection, t: &Table) -> rusqlite::Result<Option<String>> {
    let mut missing = 0;
    let mut stale = 0;
    for (name, sql) in capture::trigger_names(&t.name)
        .into_iter()
        .zip(capture::trigger_sql(t))
    {
        let current: Option<String> = c
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1 AND tbl_name = ?2",
                params![name, t.name],
                |r| r.get(0),
            )
            .ok();
        match current {
            None => missing += 1,
            Some(s) if s != sql => stale += 1,
            Some(_) => {}
        }
    }
    Ok(match (missing, stale) {
        (0, 0) => None,
        (4, _) => {
            Some("capture triggers missing (the table was rebuilt or they were dropped)".into())
        }
        (m, 0) => Some(format!("{m} capture trigger(s) dropped")),
        _ => Some("capture triggers out of date".into()),
    })
}

#[cfg(test)]
mod tests;
