//! Carrying the app's additive schema changes from the cache to the remote.
//!
//! Why: an app migrates the file it opens — the cache. A column it adds (nullable or with a
//! default), a table it creates with a primary key, an index: left in the cache, their data would
//! never be synced and every other desk would miss them. They are applied to the remote in one
//! short `BEGIN IMMEDIATE` transaction under the write lease (with the remote's change-log
//! triggers for new tables and the cache's `user_version`/`application_id`), and other clients
//! mirror them at their next sync as they mirror any remote schema change
//! (`crate::store::mirror`).
//!
//! Idempotent, because every desk runs the same migration: a column or table the remote already
//! has is not added again. When it has a different declared type there, the remote's declaration
//! stays (the first desk to sync wins), the cache keeps its own, and the values sync as SQLite
//! stores them (types are per value); the sync logs it. A table of the same name with another key
//! is refused. Once the remote has them, the cache records the table or columns as synced and
//! queues the table for a comparison with the remote (`super::repair`): values written before
//! the change reached the remote are pushed then.

use rusqlite::Connection;

use super::write_tx;
use crate::error::Error;
use crate::remote::Remote;
use crate::remote::changelog;
use crate::schema::{self, Column, Entry, Sync, Table};
use crate::store::watch::{self, Findings, Refusal};
use crate::store::{LocalError, mirror};

/// What [`carry`] applied to the remote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Carried {
    /// Tables created on the remote (or found there already and now synced).
    pub tables: Vec<String>,
    /// Columns added on the remote (or found there already): `table.column`.
    pub columns: Vec<String>,
    /// Indexes created on the remote.
    pub indexes: Vec<String>,
}

/// What the cache has that the remote may not.
struct Wanted {
    tables: Vec<Table>,
    columns: Vec<(Table, Vec<Column>, Vec<mirror::ColumnFacts>)>,
    /// `(name, table, sql)` of indexes on synced or new tables.
    indexes: Vec<(String, String, String)>,
    user_version: i64,
    application_id: i64,
}

fn wanted(local: &Connection, found: &Findings) -> rusqlite::Result<Wanted> {
    let entries = schema::read(local)?;
    let find = |name: &str| entries.iter().find(|e| e.table.name == name);
    let tables: Vec<Table> = found
        .cache_only_tables
        .iter()
        .filter_map(|n| find(n))
        .filter(|e| e.sync == Sync::Yes)
        .map(|e| e.table.clone())
        .collect();
    let mut columns = Vec::new();
    for (t, names) in &found.cache_only_columns {
        let Some(e) = find(t) else { continue };
        let cols = e
            .table
            .columns
            .iter()
            .filter(|c| names.contains(&c.name))
            .cloned()
            .collect();
        columns.push((e.table.clone(), cols, mirror::column_facts(local, t)?));
    }
    let synced: Vec<String> = local
        .prepare("SELECT name FROM sync_tables WHERE synced = 1")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let indexes = local
        .prepare("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<(String, String, String)>>>()?
        .into_iter()
        .filter(|(_, t, _)| synced.contains(t) || tables.iter().any(|n| n.name == *t))
        .collect();
    let (user_version, application_id) = app_versions(local)?;
    Ok(Wanted {
        tables,
        columns,
        indexes,
        user_version,
        application_id,
    })
}

/// Whether the remote lacks anything of `w` (or refuses a table), and its tables; read in one
/// read transaction.
fn missing(c: &Connection, w: &Wanted) -> rusqlite::Result<(bool, Option<Refusal>, Vec<Entry>)> {
    let remote = schema::read(c)?;
    let mut any = false;
    for t in &w.tables {
        match remote.iter().find(|r| r.table.name == t.name) {
            None => any = true,
            Some(r) if r.table.pk != t.pk => {
                let refusal = Refusal {
                    table: t.name.clone(),
                    change: format!(
                        "the table was created in the cache with key ({}), but the remote has a table of this name with key ({})",
                        t.pk.join(", "),
                        r.table.pk.join(", ")
                    ),
                };
                return Ok((false, Some(refusal), remote));
            }
            Some(_) => {} // made by another desk: synced from now on
        }
    }
    for (t, cols, _) in &w.columns {
        if let Some(r) = remote.iter().find(|r| r.table.name == t.name) {
            any |= cols
                .iter()
                .any(|c| !r.table.columns.iter().any(|rc| rc.name == c.name));
        }
    }
    for (name, table, _) in &w.indexes {
        let table_there = remote.iter().any(|r| r.table.name == *table)
            || w.tables.iter().any(|t| t.name == *table);
        any |= table_there && !exists(c, "index", name)?;
    }
    Ok((any, None, remote))
}

fn exists(c: &Connection, kind: &str, name: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = ?1 AND name = ?2",
        [kind, name],
        |r| r.get(0),
    )
}

/// Applies `w` to the remote (inside its write transaction; safe to run again). Returns the
/// remote's tables afterwards and what was applied.
fn apply(c: &Connection, w: &Wanted) -> rusqlite::Result<(Vec<Entry>, Carried)> {
    let before = schema::read(c)?;
    let mut done = Carried::default();
    let mut changed = false;
    for t in &w.tables {
        if !before.iter().any(|r| r.table.name == t.name) {
            c.execute_batch(&t.sql)?;
            changed = true;
        }
        done.tables.push(t.name.clone());
    }
    for (t, cols, facts) in &w.columns {
        let Some(r) = before.iter().find(|r| r.table.name == t.name) else {
            continue;
        };
        for col in cols {
            match r.table.columns.iter().find(|rc| rc.name == col.name) {
                None => {
                    c.execute_batch(&mirror::add_column_sql(&t.name, col, facts))?;
                    changed = true;
                }
                Some(rc) if rc.decl_type != col.decl_type => tracing::warn!(
                    table = %t.name, column = %col.name, remote = %rc.decl_type, cache = %col.decl_type,
                    "column added in the cache exists on the remote with another declared type; the remote keeps its own, values sync as stored"
                ),
                Some(_) => {}
            }
            done.columns.push(format!("{}.{}", t.name, col.name));
        }
    }
    for (name, table, sql) in &w.indexes {
        let on_remote = exists(c, "table", table)?;
        if on_remote && !exists(c, "index", name)? {
            c.execute_batch(sql)?;
            done.indexes.push(name.clone());
            changed = true;
        }
    }
    let after = schema::read(c)?;
    for e in after.iter().filter(|e| e.sync == Sync::Yes) {
        if done.tables.contains(&e.table.name) {
            changelog::install_triggers(c, &e.table)?;
        }
    }
    if changed {
        let (uv, app) = app_versions(c)?;
        if w.user_version > uv {
            c.execute_batch(&format!("PRAGMA user_version = {}", w.user_version))?;
        }
        if w.application_id != 0 && w.application_id != app {
            c.execute_batch(&format!("PRAGMA application_id = {}", w.application_id))?;
        }
    }
    Ok((after, done))
}

/// Carries the additions `found` (a [`watch::check`] that saw the schema change) to the remote
/// and records them as synced in the cache. `Err` with [`LocalError::SchemaRefused`] when a table
/// created in the cache exists on the remote with another key.
pub(crate) fn carry(
    local: &Connection,
    local_path: &std::path::Path,
    remote: &mut Remote,
    remote_name: &str,
    found: &Findings,
    now: &str,
) -> Result<Carried, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(local_path, e));
    let w = wanted(local, found).map_err(lerr)?;
    if w.tables.is_empty() && w.columns.is_empty() && w.indexes.is_empty() {
        return Ok(Carried::default());
    }
    let (any, refused, before) = remote.read(|c| missing(c, &w))?;
    if let Some(r) = refused {
        return Err(Error::Local(LocalError::SchemaRefused {
            table: r.table,
            change: r.change,
            remote: remote_name.to_string(),
        }));
    }
    let (after, done) = if any {
        remote.write(|c| apply(c, &w))?
    } else {
        // Every desk ran the same migration and another one carried it: record it only.
        let done = Carried {
            tables: w.tables.iter().map(|t| t.name.clone()).collect(),
            columns: w
                .columns
                .iter()
                .flat_map(|(t, cols, _)| cols.iter().map(move |c| format!("{}.{}", t.name, c.name)))
                .collect(),
            indexes: vec![],
        };
        (before, done)
    };
    write_tx(local, |c| {
        for t in &w.tables {
            if let Some(r) = after.iter().find(|r| r.table.name == t.name) {
                watch::follow_local(c, t, &r.table.signature(), true, now)?;
            }
        }
        for (t, cols, _) in &w.columns {
            let Some(r) = after.iter().find(|r| r.table.name == t.name) else {
                continue;
            };
            let recorded: String = c.query_row(
                "SELECT signature FROM sync_tables WHERE name = ?1",
                [&t.name],
                |row| row.get(0),
            )?;
            let mut sig = Table::columns_from_signature(&recorded).unwrap_or_default();
            sig.extend(
                r.table
                    .columns
                    .iter()
                    .filter(|rc| cols.iter().any(|c| c.name == rc.name))
                    .cloned(),
            );
            let synced = Table {
                columns: sig,
                ..t.clone()
            };
            watch::follow_local(c, t, &synced.signature(), false, now)?;
        }
        Ok(())
    })
    .map_err(lerr)?;
    tracing::info!(tables = ?done.tables, columns = ?done.columns, indexes = ?done.indexes, "schema changes made in the cache carried to the remote");
    Ok(done)
}

/// The app's schema version and application id of a database: `PRAGMA user_version`,
/// `PRAGMA application_id`.
pub(crate) fn app_versions(c: &Connection) -> rusqlite::Result<(i64, i64)> {
    c.query_row(
        "SELECT (SELECT user_version FROM pragma_user_version), (SELECT application_id FROM pragma_application_id)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Makes the cache's `user_version` and `application_id` follow the remote's `(user_version,
/// application_id)`; call in the local transaction that follows the remote schema. The version
/// only goes up: a cache whose app migrated further than the remote keeps its own (its changes
/// go to the remote with the next schema change carried, or are refused). Returns whether
/// anything changed.
pub(crate) fn follow_app_versions(
    local: &Connection,
    remote: (i64, i64),
) -> rusqlite::Result<bool> {
    let (uv, app) = app_versions(local)?;
    let mut changed = false;
    if remote.0 > uv {
        local.execute_batch(&format!("PRAGMA user_version = {}", remote.0))?;
        changed = true;
    }
    if remote.1 != 0 && remote.1 != app {
        local.execute_batch(&format!("PRAGMA application_id = {}", remote.1))?;
        changed = true;
    }
    Ok(changed)
}
