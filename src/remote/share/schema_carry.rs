//! Carrying a cache's schema additions to the share: what the remote lacks, read in one read
//! transaction, then the DDL in one write transaction (with the change-log triggers of new
//! tables and the cache's `user_version`/`application_id`). Safe to run again.

use rusqlite::Connection;

use super::{Share, changelog};
use crate::remote::RemoteError;
use crate::remote::store::{Additions, Carry};
use crate::schema::{self, Entry, Sync, app_versions};
use crate::store::mirror;
use crate::store::watch::Refusal;

/// What was applied (or found there already).
#[derive(Debug, Default)]
struct Done {
    tables: Vec<String>,
    columns: Vec<String>,
    indexes: Vec<String>,
}

impl Share {
    pub(super) fn carry(&mut self, w: &Additions) -> Result<Carry, RemoteError> {
        let (any, refused, before) = self.read(|c| missing(c, w))?;
        if let Some(r) = refused {
            return Ok(Carry::Refused(r));
        }
        let (after, done) = if any {
            self.write(|c| apply(c, w))?
        } else {
            // Every desk ran the same migration and another one carried it: record it only.
            let done = Done {
                tables: w.tables.iter().map(|t| t.name.clone()).collect(),
                columns: w
                    .columns
                    .iter()
                    .flat_map(|(t, cols, _)| {
                        cols.iter().map(move |c| format!("{}.{}", t.name, c.name))
                    })
                    .collect(),
                indexes: vec![],
            };
            (before, done)
        };
        Ok(Carry::Done {
            after,
            tables: done.tables,
            columns: done.columns,
            indexes: done.indexes,
        })
    }
}

/// Whether the remote lacks anything of `w` (or refuses a table), and its tables; read in one
/// read transaction.
fn missing(c: &Connection, w: &Additions) -> rusqlite::Result<(bool, Option<Refusal>, Vec<Entry>)> {
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
fn apply(c: &Connection, w: &Additions) -> rusqlite::Result<(Vec<Entry>, Done)> {
    let before = schema::read(c)?;
    let mut done = Done::default();
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
