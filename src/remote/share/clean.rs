//! What a page-exact copy of the share's file holds beyond the app's data — the change log, the
//! conflict log, the registry, the change-log triggers — is read for what the cache needs to
//! know of the remote's history, then dropped, so that a snapshot is what the interface promises:
//! the app's tables and nothing of the backend's own.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::remote::CopyInfo;
use crate::schema::REMOTE_INTERNAL;
use crate::sql::quote;

/// Reads the copy's history into `info` and drops sharecache's remote objects from it.
pub(super) fn app_only(copy: &Path, info: &mut CopyInfo) -> rusqlite::Result<()> {
    let c = Connection::open(copy)?;
    if has_table(&c, "sharecache_log")? {
        info.newest_stamp = newest_logged_stamp(&c)?;
        // The remote is migrated when connected, before any copy: the log has write ids.
        info.newest = super::changelog::newest_entry(&c, info.rev)?;
    }
    if has_column(&c, "sharecache_meta", "generation")? {
        info.generation = c
            .query_row(
                "SELECT generation FROM sharecache_meta WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
    }
    drop_remote_objects(&c)
}

fn has_table(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
}

fn has_column(c: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get(0),
    )
}

/// The newest stamp in the copied change log, or the remote's clock if newer.
fn newest_logged_stamp(c: &Connection) -> rusqlite::Result<Option<String>> {
    let logged: Option<String> =
        c.query_row("SELECT max(stamp) FROM sharecache_log", [], |r| r.get(0))?;
    // The remote's clock: the newest stamp ever logged, pruned entries included (format 2 on).
    let clock: Option<String> = if has_column(c, "sharecache_meta", "hlc")? {
        c.query_row(
            "SELECT max(hlc) FROM sharecache_meta WHERE hlc != ''",
            [],
            |r| r.get(0),
        )?
    } else {
        None
    };
    Ok(logged.max(clock))
}

/// Drops what the copy brought from the remote that belongs to sharecache's remote side.
fn drop_remote_objects(c: &Connection) -> rusqlite::Result<()> {
    let names: Vec<(String, String)> = c
        .prepare("SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'table')")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(String, String)>>>()?
        .into_iter()
        .filter(|(kind, name)| {
            if kind == "trigger" {
                super::changelog::is_trigger_name(name)
            } else {
                REMOTE_INTERNAL.contains(&name.as_str())
            }
        })
        .collect();
    for (_, name) in names.iter().filter(|(k, _)| k == "trigger") {
        c.execute_batch(&format!("DROP TRIGGER IF EXISTS {};", quote(name)))?;
    }
    for (_, name) in names.iter().filter(|(k, _)| k == "table") {
        c.execute_batch(&format!("DROP TABLE IF EXISTS {};", quote(name)))?;
    }
    Ok(())
}
