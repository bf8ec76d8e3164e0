//! Change capture: the triggers that record every write to a synced table.
//!
//! They use only core SQL of SQLite 3.7.17 (no JSON functions, no UPSERT: README, Known limits),
//! so writes from any SQLite client (the app, Python's `sqlite3`, the `sqlite3` shell, an app
//! bundling an old SQLite) are captured. Each change:
//! 1. advances the hybrid logical clock in `sync_state.hlc` (integer milliseconds: never below
//!    the last stamp + 1 ms, nor below an `updated_at` the writer set);
//! 2. appends one event per row (table, key text, `I`/`U`/`D`, the clock, the pull cursor) to
//!    `sync_journal`, a plain insert into a table without a unique constraint, which no outer
//!    conflict clause can turn into anything else; sharecache folds the events into the one
//!    coalesced entry per row of `sync_tracking` (insert+update = insert, insert+delete =
//!    nothing, delete+insert = update, …) in its own transactions ([`super::journal`] says when
//!    and why: updating-or-inserting that entry here took two statements without UPSERT);
//! 3. stamps `updated_at` (as text) when the table has one and the writer left it unset.
//!
//! A `BEFORE INSERT` trigger notices `INSERT OR REPLACE` over an existing row (which fires no
//! delete trigger) and appends an `X` event, so the insert is recorded as an update and a later
//! delete is pushed. All triggers are silent while `sync_state.applying = 1`, which sharecache
//! sets only inside its own write transactions (pull, stamping), invisible to other connections.

use rusqlite::Connection;

use crate::clock::{ms_of_canonical_stamp_sql, next_clock_sql, stamp_of_ms_sql};
use crate::schema::Table;
use crate::sql::{key_expr, literal, quote};

const KINDS: [&str; 4] = ["bi", "ai", "au", "ad"];

fn trigger_name(kind: &str, table: &str) -> String {
    quote(&format!("sync_{kind}_{table}"))
}

fn key_match(table_alias: &str, prefix: &str, pk: &[String]) -> String {
    pk.iter()
        .map(|c| format!("{table_alias}{} = {prefix}.{}", quote(c), quote(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn key_changed(pk: &[String]) -> String {
    let parts: Vec<String> = pk
        .iter()
        .map(|c| format!("OLD.{q} IS NOT NEW.{q}", q = quote(c)))
        .collect();
    format!("({})", parts.join(" OR "))
}

/// The names of a table's capture triggers, in [`trigger_sql`]'s order.
pub fn trigger_names(table: &str) -> Vec<String> {
    KINDS.iter().map(|k| format!("sync_{k}_{table}")).collect()
}

/// Whether key column `c` of `t` can never hold a REAL in a stored row: TEXT affinity (SQLite
/// stores a number written there as text), or the rowid alias (`INTEGER PRIMARY KEY` of a rowid
/// table, which holds integers only). Conservative: a `DESC` anywhere in the table's SQL, or a
/// `WITHOUT ROWID` table, rules the alias out (`INTEGER PRIMARY KEY DESC` is no alias).
fn never_real(t: &Table, c: &str) -> bool {
    let Some(col) = t.columns.iter().find(|x| x.name == c) else {
        return false;
    };
    let decl = col.decl_type.to_ascii_uppercase();
    let text = !decl.contains("INT") && ["CHAR", "CLOB", "TEXT"].iter().any(|a| decl.contains(a));
    let sql = t
        .sql
        .to_ascii_uppercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let alias = t.pk.len() == 1
        && decl == "INTEGER"
        && !sql.contains("WITHOUT ROWID")
        && !sql.contains("DESC");
    text || alias
}

/// [`key_expr`] for the row as stored (AFTER triggers): a key column that can never hold a REAL
/// is `quote()`d directly, the text [`key_expr`]'s other branch gives for it. Its REAL branch
/// (`typeof()`, a comparison) cost ~800 instructions a captured row (BENCHMARKS.md, Capture).
fn stored_key_expr(prefix: &str, t: &Table) -> String {
    t.pk.iter()
        .map(|c| {
            if never_real(t, c) {
                format!("quote({prefix}.{})", quote(c))
            } else {
                key_expr(prefix, std::slice::from_ref(c))
            }
        })
        .collect::<Vec<_>>()
        .join(" || ',' || ")
}

/// The `CREATE TRIGGER` statements for one synced table.
pub fn trigger_sql(t: &Table) -> Vec<String> {
    let name = literal(&t.name);
    let tq = quote(&t.name);
    let quiet = "(SELECT applying FROM sync_state) = 0";
    // The BEFORE trigger sees the values as written; the AFTER triggers the row as stored.
    let knew_written = key_expr("NEW", &t.pk);
    let knew = stored_key_expr("NEW", t);
    let kold = stored_key_expr("OLD", t);
    let observed = t
        .updated_at
        .as_ref()
        .map(|c| ms_of_canonical_stamp_sql(&format!("NEW.{}", quote(c))));
    let tick_new = format!(
        "UPDATE sync_state SET hlc = {};",
        next_clock_sql("hlc", observed.as_deref())
    );
    let tick = format!(
        "UPDATE sync_state SET hlc = {};",
        next_clock_sql("hlc", None)
    );
    // One plain insert: no index, no unique constraint, so no conflict clause (an app's outer
    // `INSERT OR REPLACE` imposes its own on every statement of the trigger) changes what it does.
    let append = |key: &str, op: &str, cond: &str| {
        format!(
            "INSERT INTO sync_journal (tbl, pk, op, stamp, seen_rev) \
             SELECT {name}, {key}, {op}, hlc, pull_rev FROM sync_state{cond};"
        )
    };
    let stamp = |cond: &str| match &t.updated_at {
        None => String::new(),
        Some(c) => format!(
            "UPDATE sync_state SET applying = 1 WHERE {cond}; \
             UPDATE {tq} SET {cq} = (SELECT {text} FROM sync_state) WHERE {cond} AND {m}; \
             UPDATE sync_state SET applying = 0 WHERE {cond};",
            cq = quote(c),
            text = stamp_of_ms_sql("hlc"),
            m = key_match("", "NEW", &t.pk)
        ),
    };
    let ua_unset_insert = t
        .updated_at
        .as_ref()
        .map(|c| format!("NEW.{} IS NULL", quote(c)));
    let ua_unset_update = t
        .updated_at
        .as_ref()
        .map(|c| format!("NEW.{q} IS OLD.{q}", q = quote(c)));
    let changed = key_changed(&t.pk);

    vec![
        format!(
            "CREATE TRIGGER {trig} BEFORE INSERT ON {tq} WHEN {quiet} AND EXISTS (SELECT 1 FROM {tq} WHERE {m}) BEGIN \
             {x} END",
            x = append(&knew_written, "'X'", ""),
            trig = trigger_name("bi", &t.name),
            m = key_match("", "NEW", &t.pk),
        ),
        format!(
            "CREATE TRIGGER {trig} AFTER INSERT ON {tq} WHEN {quiet} BEGIN {tick_new} {up} {st} END",
            trig = trigger_name("ai", &t.name),
            up = append(&knew, "'I'", ""),
            st = ua_unset_insert.as_deref().map(stamp).unwrap_or_default(),
        ),
        format!(
            "CREATE TRIGGER {trig} AFTER UPDATE ON {tq} WHEN {quiet} BEGIN {tick_new} {old} {new} {st} END",
            trig = trigger_name("au", &t.name),
            old = append(&kold, "'D'", &format!(" WHERE {changed}")),
            new = append(
                &knew,
                &format!("CASE WHEN {changed} THEN 'I' ELSE 'U' END"),
                ""
            ),
            st = ua_unset_update.as_deref().map(stamp).unwrap_or_default(),
        ),
        format!(
            "CREATE TRIGGER {trig} AFTER DELETE ON {tq} WHEN {quiet} BEGIN {tick} {up} END",
            trig = trigger_name("ad", &t.name),
            up = append(&kold, "'D'", ""),
        ),
    ]
}

/// Installs (or replaces, when out of date) the capture triggers of a synced table.
/// Returns whether anything changed.
pub fn install(conn: &Connection, t: &Table) -> rusqlite::Result<bool> {
    let wanted = trigger_sql(t);
    let mut changed = false;
    for (kind, sql) in KINDS.iter().zip(&wanted) {
        let name = format!("sync_{kind}_{}", t.name);
        let current: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                [&name],
                |r| r.get(0),
            )
            .ok();
        if current.as_deref() != Some(sql.as_str()) {
            conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {}; {sql};", quote(&name)))?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Removes the capture triggers of a table (no longer synced or dropped).
pub fn remove(conn: &Connection, table: &str) -> rusqlite::Result<()> {
    for kind in KINDS {
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {};",
            trigger_name(kind, table)
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    /// A cache-shaped database with sharecache's tables and one synced table.
    fn setup(table_sql: &str) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        crate::migrate::CACHE.apply(&c, "t").unwrap();
        c.execute(
            "INSERT INTO sync_state (id, origin, hlc, remote_id, remote_path, created_at, snapshot_at) \
             VALUES (1, 'o', 946684800000, 'r', 'p', 't', 't')",
            [],
        )
        .unwrap();
        c.execute_batch(table_sql).unwrap();
        for e in schema::read(&c).unwrap() {
            install(&c, &e.table).unwrap();
        }
        c
    }

    /// The outbox after folding the journal: one entry per row, (key text, op).
    fn pending(c: &Connection) -> Vec<(String, String)> {
        crate::store::journal::fold(c).unwrap();
        let mut s = c
            .prepare("SELECT pk, op FROM sync_tracking WHERE op != 'X' ORDER BY pk")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn insert_update_delete_coalesce_to_one_entry_per_row() {
        let c = setup("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
        c.execute_batch("INSERT INTO t VALUES (1, 'a'); UPDATE t SET v = 'b' WHERE id = 1;")
            .unwrap();
        assert_eq!(pending(&c), vec![("1".into(), "I".into())]);
        c.execute_batch("DELETE FROM t WHERE id = 1").unwrap();
        assert_eq!(
            pending(&c),
            vec![],
            "insert + delete leaves nothing to push"
        );
        let n: i64 = c
            .query_row(
                "SELECT (SELECT count(*) FROM sync_tracking) + (SELECT count(*) FROM sync_journal)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "no entry, no event left");
    }

    #[test]
    fn delete_then_insert_becomes_update_of_a_synced_row() {
        let c = setup("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)");
        c.execute_batch("UPDATE sync_state SET applying = 1; INSERT INTO t VALUES ('u1', 'a'); UPDATE sync_state SET applying = 0;")
            .unwrap();
        assert_eq!(
            pending(&c),
            vec![],
            "writes while applying are not captured"
        );
        c.execute_batch("DELETE FROM t; INSERT INTO t VALUES ('u1', 'b');")
            .unwrap();
        assert_eq!(pending(&c), vec![("'u1'".into(), "U".into())]);
    }

    #[test]
    fn insert_or_replace_over_a_synced_row_is_an_update_and_its_delete_is_pushed() {
        let c = setup("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
        c.execute_batch("UPDATE sync_state SET applying = 1; INSERT INTO t VALUES (1, 'a'); UPDATE sync_state SET applying = 0;")
            .unwrap();
        c.execute_batch("INSERT OR REPLACE INTO t VALUES (1, 'b')")
            .unwrap();
        assert_eq!(pending(&c), vec![("1".into(), "U".into())]);
        c.execute_batch("DELETE FROM t").unwrap();
        assert_eq!(pending(&c), vec![("1".into(), "D".into())]);
    }

    #[test]
    fn changing_a_key_deletes_the_old_key_and_inserts_the_new() {
        let c = setup("CREATE TABLE t(a TEXT, b INTEGER, v, PRIMARY KEY (a, b)) WITHOUT ROWID");
        c.execute_batch("UPDATE sync_state SET applying = 1; INSERT INTO t VALUES ('x', 1, 'a'); UPDATE sync_state SET applying = 0;")
            .unwrap();
        c.execute_batch("UPDATE t SET b = 2").unwrap();
        assert_eq!(
            pending(&c),
            vec![("'x',1".into(), "D".into()), ("'x',2".into(), "I".into())]
        );
    }

    #[test]
    fn updated_at_is_stamped_when_the_writer_leaves_it_unset() {
        let c = setup("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, updated_at TEXT)");
        c.execute_batch("INSERT INTO t (id, v) VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b', '2001-01-01T00:00:00.000Z');")
            .unwrap();
        let (u1, u2): (String, String) = c
            .query_row("SELECT (SELECT updated_at FROM t WHERE id = 1), (SELECT updated_at FROM t WHERE id = 2)", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(u1.len(), 24);
        assert!(u1.ends_with('Z') && u1.as_str() > "2020");
        assert_eq!(u2, "2001-01-01T00:00:00.000Z", "an explicit value is kept");
        crate::store::journal::fold(&c).unwrap();
        let stamp1: i64 = c
            .query_row("SELECT stamp FROM sync_tracking WHERE pk = '1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            crate::clock::stamp_of_ms(stamp1),
            u1,
            "the stamp that decides conflicts is the stamped updated_at"
        );
        c.execute_batch("UPDATE t SET v = 'c' WHERE id = 1")
            .unwrap();
        let u1b: String = c
            .query_row("SELECT updated_at FROM t WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert!(u1b > u1, "an update restamps");
    }

    #[test]
    fn stamps_strictly_increase_even_within_one_statement() {
        let c = setup("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
        c.execute_batch("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) INSERT INTO t SELECT i, i FROM n")
            .unwrap();
        crate::store::journal::fold(&c).unwrap();
        let stamps: Vec<i64> = c
            .prepare("SELECT stamp FROM sync_tracking ORDER BY CAST(pk AS INTEGER)")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(stamps.len(), 50);
        assert!(stamps.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn blob_keys_are_captured_without_failing_the_write() {
        let c = setup("CREATE TABLE t(k BLOB PRIMARY KEY, v)");
        c.execute_batch("INSERT INTO t VALUES (x'0102', 1)")
            .unwrap();
        assert_eq!(pending(&c), vec![("X'0102'".into(), "I".into())]);
    }

    #[test]
    fn the_order_a_trigger_records_is_the_order_computed_from_the_key() {
        let c = setup("CREATE TABLE t(k PRIMARY KEY, v)");
        c.execute_batch(
            "INSERT INTO t VALUES (x'0102', 1), (-3, 2), (2.5, 3), ('a', 4), (NULL, 5); \
             UPDATE t SET k = 9 WHERE v = 2;",
        )
        .unwrap();
        crate::store::journal::fold(&c).unwrap();
        let entries: Vec<(String, rusqlite::types::Value)> = c
            .prepare("SELECT pk, ord FROM sync_tracking ORDER BY tbl, ord, pk")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let keys: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            keys,
            ["F2:2305843009213693952", "9", "NULL", "'a'", "X'0102'"]
        );
        for (pk, ord) in &entries {
            let key = crate::sql::decode_key(pk).unwrap();
            assert_eq!(&crate::sql::order_value(&key), ord, "{pk}");
        }
    }

    #[test]
    fn capture_builds_no_temporary_table_per_change() {
        // SQLite evaluates `x IN (a, b, c, …)` with a temporary B-tree of the values, built
        // again for every row: in sync_tracking's CHECK that was ~2 µs of every captured write.
        let c = setup("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, updated_at TEXT)");
        for sql in [
            "INSERT INTO t (id, v) VALUES (1, 'a')",
            "UPDATE t SET v = 'b' WHERE id = 1",
            "DELETE FROM t WHERE id = 1",
        ] {
            let ops: Vec<String> = c
                .prepare(&format!("EXPLAIN {sql}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(1))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                ops.iter().filter(|o| *o == "Program").count() >= 1,
                "{sql}: the EXPLAIN lists the trigger programs"
            );
            assert!(
                !ops.iter().any(|o| o == "OpenEphemeral"),
                "{sql}: a trigger builds a temporary table"
            );
        }
    }

    #[test]
    fn a_key_that_cannot_hold_a_real_is_quoted_directly_and_one_that_can_keeps_the_exact_form() {
        use crate::sql::encode_key;
        use rusqlite::types::Value;
        // (table, whether the AFTER triggers may skip the REAL branch, value written, key as stored)
        let cases = [
            (
                "CREATE TABLE a(id INTEGER PRIMARY KEY, v)",
                true,
                "7",
                Value::Integer(7),
            ),
            (
                "CREATE TABLE b(id TEXT PRIMARY KEY, v)",
                true,
                "2.5",
                Value::Text("2.5".into()),
            ),
            (
                "CREATE TABLE c(id VARCHAR(9), v, PRIMARY KEY (id))",
                true,
                "8",
                Value::Text("8".into()),
            ),
            (
                "CREATE TABLE d(id INTEGER PRIMARY KEY, v) WITHOUT ROWID",
                false,
                "2.5",
                Value::Real(2.5),
            ),
            (
                "CREATE TABLE e(id INTEGER PRIMARY KEY DESC, v)",
                false,
                "2.5",
                Value::Real(2.5),
            ),
            (
                "CREATE TABLE f(id NUMERIC PRIMARY KEY, v)",
                false,
                "2.5",
                Value::Real(2.5),
            ),
            (
                "CREATE TABLE g(id PRIMARY KEY, v)",
                false,
                "2.5",
                Value::Real(2.5),
            ),
        ];
        for (sql, direct, written, stored) in cases {
            let c = setup(sql);
            let t = &schema::read(&c).unwrap()[0].table;
            let after = trigger_sql(t)[1].clone();
            assert_eq!(!after.contains("typeof("), direct, "{sql}: {after}");
            c.execute_batch(&format!(
                "INSERT INTO {} (id, v) VALUES ({written}, 1); UPDATE {0} SET v = 2;",
                t.name
            ))
            .unwrap();
            assert_eq!(
                pending(&c),
                vec![(encode_key(std::slice::from_ref(&stored)), "I".into())],
                "{sql}"
            );
            c.execute_batch(&format!("DELETE FROM {}", t.name)).unwrap();
            assert_eq!(pending(&c), vec![], "{sql}: insert + delete before a push");
        }
    }

    #[test]
    fn tracking_still_refuses_an_unknown_operation() {
        let c = setup("CREATE TABLE t(id INTEGER PRIMARY KEY)");
        let bad = c.execute(
            "INSERT INTO sync_tracking (tbl, pk, op, stamp, seq, seen_rev) VALUES ('t', '1', 'Z', 's', 1, 0)",
            [],
        );
        assert!(
            matches!(&bad, Err(e) if e.to_string().contains("CHECK constraint failed")),
            "{bad:?}"
        );
    }

    #[test]
    fn installing_twice_changes_nothing_the_second_time() {
        let c = setup("CREATE TABLE \"odd \"\"name\"(id INTEGER PRIMARY KEY)");
        let t = &schema::read(&c).unwrap()[0].table;
        assert!(!install(&c, t).unwrap());
        remove(&c, &t.name).unwrap();
        assert!(install(&c, t).unwrap());
    }
}
