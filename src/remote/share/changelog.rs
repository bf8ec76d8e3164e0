//! The remote's change log (`sharecache_log`): append-only, one entry per change, keyed by its
//! `rev`. A row's current version is its newest entry; "changes since rev N" is the log's tail,
//! whose cost grows with the number of changes, not with the table size; and a change writes
//! only the log's last page. Entries every client has moved past are pruned from the head.
//!
//! Writes by sharecache's push record their versions explicitly, with the row's values (see
//! [`crate::remote::image`]). Writes made directly on the remote (other programs, or a client in direct
//! mode) are recorded by triggers on every synced remote table; those triggers are silent while
//! `sharecache_meta.writer` is set, which a push does only inside its own transaction (invisible
//! to other connections). A direct write is never stamped before a stamp the log has seen
//! (`sharecache_meta.hlc`), the way a client's clock moves up to every stamp it pulls.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::{SQL_STAMP_FORMAT, stamp_or_empty};
use crate::remote::{DIRECT_ORIGIN, EntryId, Found, Pruned, Version};
use crate::schema::Table;
use crate::sql::{key_expr, literal, quote};

/// The columns [`Version::from_row`] reads, in its order.
const VERSION_COLUMNS: &str = "tbl, pk, rev, stamp, origin, deleted, write_id";

impl Version {
    /// A version from the first columns of a row selected with [`VERSION_COLUMNS`].
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
        Ok(Version {
            tbl: r.get(0)?,
            pk: r.get(1)?,
            rev: r.get(2)?,
            stamp: r.get(3)?,
            origin: r.get(4)?,
            deleted: r.get::<_, i64>(5)? != 0,
            write_id: r.get(6)?,
        })
    }
}

/// A change-log entry as a pull reads it: the version and, for a pushed row, its values.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The version.
    pub version: Version,
    /// The row's image ([`crate::remote::image`]), when a push wrote it.
    pub image: Option<Vec<u8>>,
}

const KINDS: [&str; 3] = ["ai", "au", "ad"];

fn trigger_name(kind: &str, table: &str) -> String {
    format!("sharecache_{kind}_{table}")
}

/// Whether `name` is the name of a change-log trigger.
///
/// ```
/// use sharecache::remote::share::changelog::is_trigger_name;
/// assert!(is_trigger_name("sharecache_au_notes"));
/// assert!(!is_trigger_name("sharecache_settings_touch"));
/// ```
pub fn is_trigger_name(name: &str) -> bool {
    KINDS
        .iter()
        .any(|k| name.starts_with(&format!("sharecache_{k}_")))
}

/// `CREATE TRIGGER` statements recording direct writes to one remote table.
pub fn trigger_sql(t: &Table) -> Vec<String> {
    let name = literal(&t.name);
    let tq = quote(&t.name);
    let quiet = "(SELECT writer FROM sharecache_meta) IS NULL";
    let f = SQL_STAMP_FORMAT;
    let observed = t
        .updated_at
        .as_ref()
        .map(|c| stamp_or_empty(&format!("NEW.{}", quote(c))));
    let plain_now = format!("strftime('{f}', 'now')");
    let observed_now = match &observed {
        Some(o) => format!("max(strftime('{f}', 'now'), {o})"),
        None => plain_now.clone(),
    };
    // DELETE triggers have no NEW row: they stamp with the clock alone. No entry is stamped
    // before the newest stamp logged so far (the remote's clock), so a direct write is never
    // older than the version it replaces, even one from a clock running ahead. Not "+1 ms" per
    // entry: SQLite's 'now' is fixed within a statement, and a bulk UPDATE of 100k rows would
    // run the remote's clock 100 s ahead, making its stamps win over later edits.
    let log = |key: &str, deleted: u8, cond: &str| {
        let now = if deleted == 1 {
            &plain_now
        } else {
            &observed_now
        };
        format!(
            "UPDATE sharecache_meta SET rev = rev + 1, \
             hlc = max({now}, hlc) WHERE {cond}; \
             INSERT INTO sharecache_log (rev, tbl, pk, stamp, origin, deleted) \
             SELECT rev, {name}, {key}, hlc, '{DIRECT_ORIGIN}', {deleted} FROM sharecache_meta WHERE {cond};"
        )
    };
    let knew = key_expr("NEW", &t.pk);
    let kold = key_expr("OLD", &t.pk);
    let changed: Vec<String> =
        t.pk.iter()
            .map(|c| format!("OLD.{q} IS NOT NEW.{q}", q = quote(c)))
            .collect();
    let changed = format!("({})", changed.join(" OR "));
    vec![
        format!(
            "CREATE TRIGGER {} AFTER INSERT ON {tq} WHEN {quiet} BEGIN {} END",
            quote(&trigger_name("ai", &t.name)),
            log(&knew, 0, "1")
        ),
        format!(
            "CREATE TRIGGER {} AFTER UPDATE ON {tq} WHEN {quiet} BEGIN {} {} END",
            quote(&trigger_name("au", &t.name)),
            log(&kold, 1, &changed),
            log(&knew, 0, "1")
        ),
        format!(
            "CREATE TRIGGER {} AFTER DELETE ON {tq} WHEN {quiet} BEGIN {} END",
            quote(&trigger_name("ad", &t.name)),
            log(&kold, 1, "1")
        ),
    ]
}

/// Installs or refreshes the change-log triggers of a remote table. Call inside a write
/// transaction. Returns whether anything changed.
pub fn install_triggers(conn: &Connection, t: &Table) -> rusqlite::Result<bool> {
    let mut changed = false;
    for (kind, sql) in KINDS.iter().zip(trigger_sql(t)) {
        let name = trigger_name(kind, &t.name);
        let current: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                [&name],
                |r| r.get(0),
            )
            .optional()?;
        if current.as_deref() != Some(sql.as_str()) {
            conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {}; {sql};", quote(&name)))?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Whether the change-log triggers of a table are installed and current.
pub fn triggers_current(conn: &Connection, t: &Table) -> rusqlite::Result<bool> {
    for (kind, sql) in KINDS.iter().zip(trigger_sql(t)) {
        let current: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                [trigger_name(kind, &t.name)],
                |r| r.get(0),
            )
            .optional()?;
        if current.as_deref() != Some(sql.as_str()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Names of tables that have change-log triggers (to drop those of tables no longer synced).
pub fn tables_with_triggers(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut s = conn.prepare(
        "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'sharecache\\_a_\\_%' ESCAPE '\\'",
    )?;
    s.query_map([], |r| r.get(0))?.collect()
}

/// Drops the change-log triggers of a table.
pub fn drop_triggers(conn: &Connection, table: &str) -> rusqlite::Result<()> {
    for kind in KINDS {
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {};",
            quote(&trigger_name(kind, table))
        ))?;
    }
    Ok(())
}

/// The current version of one row (its newest entry), if the log still has one.
///
/// This scans the log: for tests and tools. A push looks up the rows of a whole batch in one pass
/// over the entries that can matter ([`newest_in`]).
pub fn latest(conn: &Connection, tbl: &str, pk: &str) -> rusqlite::Result<Option<Version>> {
    conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM sharecache_log WHERE tbl = ?1 AND pk = ?2 \
         ORDER BY rev DESC LIMIT 1"
    ))?
    .query_row(params![tbl, pk], Version::from_row)
    .optional()
}

/// Appends a version written by a push (at `v.rev`, above every entry, with `v.write_id`), with
/// the row's image.
pub fn append(conn: &Connection, v: &Version, image: Option<&[u8]>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sharecache_log (rev, tbl, pk, stamp, origin, deleted, image, write_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        v.rev, v.tbl, v.pk, v.stamp, v.origin, v.deleted, image, v.write_id
    ])?;
    Ok(())
}

/// The newest entry at or below `upto`, as a mark names it.
pub fn newest_entry(conn: &Connection, upto: i64) -> rusqlite::Result<Option<EntryId>> {
    conn.prepare_cached(
        "SELECT rev, stamp, origin, write_id FROM sharecache_log WHERE rev <= ?1 \
         ORDER BY rev DESC LIMIT 1",
    )?
    .query_row([upto], |r| {
        Ok(EntryId {
            rev: r.get(0)?,
            stamp: r.get(1)?,
            origin: r.get(2)?,
            write_id: r.get(3)?,
        })
    })
    .optional()
}

/// For every `(table, key)` in `keys` (with the stamp and origin of the change about to be
/// pushed), what the entries with `after < rev <= upto` hold (no upper bound when `upto` is
/// `None`), merged into `found` (a later entry replaces an earlier one as the newest).
pub fn newest_in(
    conn: &Connection,
    after: i64,
    upto: Option<i64>,
    keys: &HashMap<(String, String), (String, String)>,
    found: &mut HashMap<(String, String), Found>,
) -> rusqlite::Result<()> {
    let mut s = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM sharecache_log WHERE rev > ?1 AND rev <= ?2 ORDER BY rev"
    ))?;
    let mut rows = s.query(params![after, upto.unwrap_or(i64::MAX)])?;
    while let Some(r) = rows.next()? {
        let key: (String, String) = (r.get(0)?, r.get(1)?);
        let Some((my_stamp, my_origin)) = keys.get(&key) else {
            continue;
        };
        let v = Version::from_row(r)?;
        let mine = v.origin == *my_origin && v.stamp == *my_stamp;
        Found::merge(found, key, v, mine);
    }
    Ok(())
}

/// How far the log was pruned.
pub fn pruned(conn: &Connection) -> rusqlite::Result<Pruned> {
    conn.prepare_cached("SELECT pruned_rev, pruned_hlc FROM sharecache_meta WHERE id = 1")?
        .query_row([], |r| {
            Ok(Pruned {
                rev: r.get(0)?,
                stamp: r.get(1)?,
            })
        })
}

/// Moves the remote's revision counter to `rev` and its clock past `newest_stamp` (a push, after
/// appending its entries).
pub fn advance(conn: &Connection, rev: i64, newest_stamp: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sharecache_meta SET rev = ?1, hlc = max(hlc, ?2) WHERE id = 1")?
        .execute(params![rev, newest_stamp])?;
    Ok(())
}

/// Prunes the log's head: entries at or below `floor` (the lowest horizon of the recent clients),
/// at most `max` of them, and records how far it pruned (a client whose cursor is below that
/// must rebuild) and the newest stamp it pruned ([`Pruned`]). Returns whether entries below
/// `floor` are left for a next time.
pub fn prune(conn: &Connection, floor: i64, max: i64) -> rusqlite::Result<bool> {
    let upto: i64 = conn.query_row(
        "SELECT coalesce((SELECT rev FROM sharecache_log WHERE rev <= ?1 ORDER BY rev LIMIT 1 OFFSET ?2), ?1)",
        params![floor, max.max(1) - 1],
        |r| r.get(0),
    )?;
    conn.execute(
        "UPDATE sharecache_meta SET pruned_rev = max(pruned_rev, ?1), \
         pruned_hlc = max(pruned_hlc, coalesce((SELECT max(stamp) FROM sharecache_log WHERE rev <= ?1), '')) \
         WHERE id = 1 AND EXISTS (SELECT 1 FROM sharecache_log WHERE rev <= ?1)",
        [upto],
    )?;
    let n = conn.execute("DELETE FROM sharecache_log WHERE rev <= ?1", [upto])?;
    if n > 0 {
        tracing::debug!(entries = n, upto, floor, "pruned the remote change log");
    }
    Ok(upto < floor)
}

/// Up to `limit` log entries with `rev > after`, in rev order, with their images.
pub fn since(conn: &Connection, after: i64, limit: usize) -> rusqlite::Result<Vec<Logged>> {
    let mut s = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS}, image FROM sharecache_log WHERE rev > ?1 ORDER BY rev LIMIT ?2"
    ))?;
    s.query_map(params![after, limit as i64], |r| {
        Ok(Logged {
            version: Version::from_row(r)?,
            image: r.get(7)?,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests;
