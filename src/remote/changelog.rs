//! The remote's change log (`sharecache_log`): one row per changed row or tombstone, holding the
//! row's current version (stamp, origin) and the `rev` at which it last changed.
//!
//! Writes by sharecache's push record their versions explicitly. Writes made directly on the
//! remote (other programs, or a client in direct mode) are recorded by triggers on every synced
//! remote table; those triggers are silent while `sharecache_meta.writer` is set, which a push
//! does only inside its own transaction (invisible to other connections).

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::{SQL_STAMP_FORMAT, stamp_or_empty};
use crate::schema::Table;
use crate::sql::{key_expr, literal, quote};

/// Origin recorded for changes written directly on the remote, not through a sharecache push.
pub const DIRECT_ORIGIN: &str = "direct";

/// A row's version as recorded in the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Table name.
    pub tbl: String,
    /// Key text.
    pub pk: String,
    /// Revision at which the row last changed.
    pub rev: i64,
    /// Stamp of the current version.
    pub stamp: String,
    /// Origin of the current version.
    pub origin: String,
    /// Whether the row is deleted (a tombstone).
    pub deleted: bool,
}

const KINDS: [&str; 3] = ["ai", "au", "ad"];

fn trigger_name(kind: &str, table: &str) -> String {
    format!("sharecache_{kind}_{table}")
}

/// Whether `name` is the name of a change-log trigger.
///
/// ```
/// use sharecache::remote::changelog::is_trigger_name;
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
    // DELETE triggers have no NEW row: they stamp with the clock alone.
    let log = |key: &str, deleted: u8, cond: &str| {
        let now = if deleted == 1 {
            &plain_now
        } else {
            &observed_now
        };
        format!(
            "UPDATE sharecache_meta SET rev = rev + 1 WHERE {cond}; \
             INSERT INTO sharecache_log (tbl, pk, rev, stamp, origin, deleted) \
             SELECT {name}, {key}, rev, {now}, '{DIRECT_ORIGIN}', {deleted} FROM sharecache_meta WHERE {cond} \
             ON CONFLICT (tbl, pk) DO UPDATE SET rev = excluded.rev, \
             stamp = max(excluded.stamp, coalesce(strftime('{f}', stamp, '+0.001 seconds'), '')), \
             origin = excluded.origin, deleted = excluded.deleted;"
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
            log(&knew, 0, "true")
        ),
        format!(
            "CREATE TRIGGER {} AFTER UPDATE ON {tq} WHEN {quiet} BEGIN {} {} END",
            quote(&trigger_name("au", &t.name)),
            log(&kold, 1, &changed),
            log(&knew, 0, "true")
        ),
        format!(
            "CREATE TRIGGER {} AFTER DELETE ON {tq} WHEN {quiet} BEGIN {} END",
            quote(&trigger_name("ad", &t.name)),
            log(&kold, 1, "true")
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

/// The current version of one row, if the log has it.
pub fn version(conn: &Connection, tbl: &str, pk: &str) -> rusqlite::Result<Option<Version>> {
    conn.prepare_cached(
        "SELECT rev, stamp, origin, deleted FROM sharecache_log WHERE tbl = ?1 AND pk = ?2",
    )?
    .query_row(params![tbl, pk], |r| {
        Ok(Version {
            tbl: tbl.to_string(),
            pk: pk.to_string(),
            rev: r.get(0)?,
            stamp: r.get(1)?,
            origin: r.get(2)?,
            deleted: r.get::<_, i64>(3)? != 0,
        })
    })
    .optional()
}

/// Records a version written by a push, at revision `rev`.
pub fn record(conn: &Connection, v: &Version) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sharecache_log (tbl, pk, rev, stamp, origin, deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (tbl, pk) DO UPDATE SET rev = excluded.rev, stamp = excluded.stamp, \
         origin = excluded.origin, deleted = excluded.deleted",
    )?
    .execute(params![v.tbl, v.pk, v.rev, v.stamp, v.origin, v.deleted])?;
    Ok(())
}

/// Up to `limit` log entries with `rev > after`, in rev order.
pub fn since(conn: &Connection, after: i64, limit: usize) -> rusqlite::Result<Vec<Version>> {
    let mut s = conn.prepare_cached(
        "SELECT tbl, pk, rev, stamp, origin, deleted FROM sharecache_log WHERE rev > ?1 ORDER BY rev LIMIT ?2",
    )?;
    s.query_map(params![after, limit as i64], |r| {
        Ok(Version {
            tbl: r.get(0)?,
            pk: r.get(1)?,
            rev: r.get(2)?,
            stamp: r.get(3)?,
            origin: r.get(4)?,
            deleted: r.get::<_, i64>(5)? != 0,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn remote(table_sql: &str) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        crate::migrate::REMOTE.apply(&c, "t").unwrap();
        c.execute(
            "INSERT INTO sharecache_meta (id, remote_id, created_at) VALUES (1, 'r', 't')",
            [],
        )
        .unwrap();
        c.execute_batch(table_sql).unwrap();
        for e in schema::read(&c).unwrap() {
            install_triggers(&c, &e.table).unwrap();
        }
        c
    }

    #[test]
    fn direct_writes_are_logged_with_increasing_revs_and_tombstones() {
        let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
        c.execute_batch("INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'c' WHERE id = 1; DELETE FROM t WHERE id = 2;")
            .unwrap();
        let log = since(&c, 0, 100).unwrap();
        let summary: Vec<(String, i64, bool, String)> = log
            .iter()
            .map(|v| (v.pk.clone(), v.rev, v.deleted, v.origin.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("[1]".into(), 3, false, "direct".into()),
                ("[2]".into(), 4, true, "direct".into())
            ]
        );
        assert!(
            since(&c, 3, 100).unwrap().len() == 1,
            "cost follows changes: only rev > 3"
        );
    }

    #[test]
    fn a_later_direct_write_gets_a_later_stamp_even_with_a_future_version() {
        let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
        record(
            &c,
            &Version {
                tbl: "t".into(),
                pk: "[1]".into(),
                rev: 0,
                stamp: "2999-01-01T00:00:00.000Z".into(),
                origin: "x".into(),
                deleted: false,
            },
        )
        .unwrap();
        c.execute_batch("INSERT INTO t VALUES (1, 'a')").unwrap();
        let v = version(&c, "t", "[1]").unwrap().unwrap();
        assert_eq!(v.stamp, "2999-01-01T00:00:00.001Z");
        assert_eq!(v.origin, DIRECT_ORIGIN);
    }

    #[test]
    fn writes_inside_a_push_are_not_logged_by_triggers() {
        let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
        c.execute_batch("UPDATE sharecache_meta SET writer = 'me'; INSERT INTO t VALUES (1, 'a'); UPDATE sharecache_meta SET writer = NULL;")
            .unwrap();
        assert!(since(&c, 0, 10).unwrap().is_empty());
    }

    #[test]
    fn tables_with_updated_at_log_inserts_updates_and_deletes() {
        let c = remote("CREATE TABLE t(id INTEGER PRIMARY KEY, v, updated_at TEXT)");
        c.execute_batch("INSERT INTO t VALUES (1, 'a', '2999-01-01T00:00:00.000Z'); UPDATE t SET v = 'b'; DELETE FROM t;").unwrap();
        let v = version(&c, "t", "[1]").unwrap().unwrap();
        assert!(v.deleted);
        assert!(
            v.stamp.as_str() > "2999-01-01T00:00:00.000Z",
            "a writer's future updated_at is observed: {}",
            v.stamp
        );
    }

    #[test]
    fn key_changes_tombstone_the_old_key() {
        let c = remote("CREATE TABLE t(k TEXT PRIMARY KEY, v)");
        c.execute_batch("INSERT INTO t VALUES ('a', 1); UPDATE t SET k = 'b';")
            .unwrap();
        let log = since(&c, 0, 10).unwrap();
        assert_eq!(log.len(), 2);
        assert!(log.iter().any(|v| v.pk == r#"["a"]"# && v.deleted));
        assert!(log.iter().any(|v| v.pk == r#"["b"]"# && !v.deleted));
        assert_eq!(tables_with_triggers(&c).unwrap(), vec!["t".to_string()]);
        assert!(triggers_current(&c, &schema::read(&c).unwrap()[0].table).unwrap());
    }
}
