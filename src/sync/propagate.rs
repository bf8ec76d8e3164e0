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
use crate::remote::RemoteStore;
use crate::remote::store::{Additions, Carry};
use crate::schema::{self, Sync, Table, app_versions};
use crate::store::watch::{self, Findings};
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

fn wanted(local: &Connection, found: &Findings) -> rusqlite::Result<Additions> {
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
    Ok(Additions {
        tables,
        columns,
        indexes,
        user_version,
        application_id,
    })
}

/// Carries the additions `found` (a [`watch::check`] that saw the schema change) to the remote
/// and records them as synced in the cache. `Err` with [`LocalError::SchemaRefused`] when a table
/// created in the cache exists on the remote with another key.
pub(crate) fn carry(
    local: &Connection,
    local_path: &std::path::Path,
    remote: &mut dyn RemoteStore,
    remote_name: &str,
    found: &Findings,
    now: &str,
) -> Result<Carried, Error> {
    let lerr = |e| Error::Local(LocalError::from_sqlite(local_path, e));
    let w = wanted(local, found).map_err(lerr)?;
    if w.tables.is_empty() && w.columns.is_empty() && w.indexes.is_empty() {
        return Ok(Carried::default());
    }
    let (after, done) = match remote.carry_schema(&w)? {
        Carry::Refused(r) => {
            return Err(Error::Local(LocalError::SchemaRefused {
                table: r.table,
                change: r.change,
                remote: remote_name.to_string(),
            }));
        }
        Carry::Done {
            after,
            tables,
            columns,
            indexes,
        } => (
            after,
            Carried {
                tables,
                columns,
                indexes,
            },
        ),
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
