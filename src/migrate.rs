//! A minimal, ordered migration runner for sharecache's own tables.
//!
//! Why not `rusqlite_migration`: it keeps its version in `PRAGMA user_version`, and both the
//! remote and the cache (a copy of the remote) are the *app's* database, whose `user_version`
//! the app may use for its own schema. sharecache records its version in its own table instead
//! (`sync_migrations` locally, `sharecache_migrations` on the remote).

use rusqlite::{Connection, OptionalExtension};

/// One set of migrations, applied in order.
pub(crate) struct Migrations {
    /// Table that records applied versions.
    pub table: &'static str,
    /// `(version, sql)` in ascending version order, starting at 1.
    pub steps: &'static [(u32, &'static str)],
}

/// Migrations of the local cache's internal tables.
pub(crate) const CACHE: Migrations = Migrations {
    table: "sync_migrations",
    steps: &[
        (1, include_str!("../migrations/cache/0001_init.sql")),
        (
            2,
            include_str!("../migrations/cache/0002_push_in_key_order.sql"),
        ),
        (
            3,
            include_str!("../migrations/cache/0003_cheaper_capture.sql"),
        ),
        (4, include_str!("../migrations/cache/0004_trail_anchor.sql")),
        (5, include_str!("../migrations/cache/0005_schema_watch.sql")),
        (
            6,
            include_str!("../migrations/cache/0006_core_sql_keys.sql"),
        ),
        (
            7,
            include_str!("../migrations/cache/0007_instance_binding.sql"),
        ),
        (
            8,
            include_str!("../migrations/cache/0008_stored_key_capture.sql"),
        ),
        (9, include_str!("../migrations/cache/0009_row_versions.sql")),
        (
            10,
            include_str!("../migrations/cache/0010_capture_journal.sql"),
        ),
    ],
};

/// Migrations of sharecache's tables on the remote.
pub(crate) const REMOTE: Migrations = Migrations {
    table: "sharecache_migrations",
    steps: &[
        (1, include_str!("../migrations/remote/0001_init.sql")),
        (
            2,
            include_str!("../migrations/remote/0002_append_only_log.sql"),
        ),
        (
            3,
            include_str!("../migrations/remote/0003_restore_generation.sql"),
        ),
        (
            4,
            include_str!("../migrations/remote/0004_core_sql_keys.sql"),
        ),
        (5, include_str!("../migrations/remote/0005_write_ids.sql")),
    ],
};

/// The outcome of [`Migrations::apply`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Already at the latest version.
    Current,
    /// Migrated from one version to another.
    Migrated { from: u32, to: u32 },
    /// The database was migrated by a newer sharecache.
    TooNew { found: u32, supported: u32 },
}

impl Migrations {
    /// The newest version this build knows.
    pub fn latest(&self) -> u32 {
        self.steps.last().map_or(0, |s| s.0)
    }

    /// The version recorded in `conn` (0 when sharecache never touched it).
    pub fn current(&self, conn: &Connection) -> rusqlite::Result<u32> {
        let exists: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [self.table],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Ok(0);
        }
        conn.query_row(
            &format!("SELECT coalesce(max(version), 0) FROM {}", self.table),
            [],
            |r| r.get(0),
        )
    }

    /// Applies the missing steps. The caller owns the transaction: call it inside one.
    pub fn apply(&self, conn: &Connection, now: &str) -> rusqlite::Result<Outcome> {
        let from = self.current(conn)?;
        if from > self.latest() {
            return Ok(Outcome::TooNew {
                found: from,
                supported: self.latest(),
            });
        }
        if from == self.latest() {
            return Ok(Outcome::Current);
        }
        register_rekey(conn)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            self.table
        ))?;
        for (version, sql) in self.steps.iter().filter(|s| s.0 > from) {
            conn.execute_batch(sql)?;
            conn.execute(
                &format!(
                    "INSERT INTO {} (version, applied_at) VALUES (?1, ?2)",
                    self.table
                ),
                rusqlite::params![version, now],
            )?;
        }
        Ok(Outcome::Migrated {
            from,
            to: self.latest(),
        })
    }
}

/// Registers `sharecache_rekey(pk)` on `conn` for the migrations that convert stored keys: key
/// text of the first format (a JSON array) becomes key text as the triggers now write it
/// ([`crate::sql::key_from_json`]); anything else is returned unchanged, so a conversion can run
/// twice. Only migrations call it; no trigger or schema object ever names it.
fn register_rekey(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "sharecache_rekey",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let pk = ctx.get::<String>(0)?;
            if !pk.starts_with('[') {
                return Ok(pk);
            }
            crate::sql::key_from_json(&pk).map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_leave_user_version_alone() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch("PRAGMA user_version = 77").unwrap();
        for m in [&CACHE, &REMOTE] {
            assert_eq!(
                m.apply(&db, "t").unwrap(),
                Outcome::Migrated {
                    from: 0,
                    to: m.latest()
                }
            );
            assert_eq!(m.apply(&db, "t").unwrap(), Outcome::Current);
            assert_eq!(m.current(&db).unwrap(), m.latest());
        }
        let uv: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(uv, 77);
    }

    #[test]
    fn a_newer_schema_is_reported_not_downgraded() {
        let db = Connection::open_in_memory().unwrap();
        CACHE.apply(&db, "t").unwrap();
        db.execute("INSERT INTO sync_migrations VALUES (999, 't')", [])
            .unwrap();
        assert_eq!(
            CACHE.apply(&db, "t").unwrap(),
            Outcome::TooNew {
                found: 999,
                supported: CACHE.latest()
            }
        );
    }

    #[test]
    fn a_cache_made_before_key_order_keeps_its_pending_entries_and_gets_their_order() {
        let db = Connection::open_in_memory().unwrap();
        let v1 = Migrations {
            table: CACHE.table,
            steps: &CACHE.steps[..1],
        };
        let v2 = Migrations {
            table: CACHE.table,
            steps: &CACHE.steps[..2],
        };
        v1.apply(&db, "t").unwrap();
        db.execute_batch(
            r#"INSERT INTO sync_tracking (tbl, pk, op, stamp, seq, seen_rev) VALUES
                 ('t', '[10]', 'U', 's1', 1, 0), ('t', '[9,"b"]', 'I', 's2', 2, 3),
                 ('t', '["x"]', 'D', 's3', 1, 0), ('t', '[{"$blob":"00FF"}]', 'U', 's4', 1, 0),
                 ('t', '[null]', 'U', 's5', 1, 0);"#,
        )
        .unwrap();
        assert_eq!(
            v2.apply(&db, "t").unwrap(),
            Outcome::Migrated { from: 1, to: 2 }
        );
        let rows: Vec<(String, String, i64, i64)> = db
            .prepare("SELECT pk, stamp, seq, seen_rev FROM sync_tracking ORDER BY tbl, ord, pk")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let order: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        // Numbers first, in numeric order; then text (a NULL key sorts as the empty text).
        assert_eq!(
            order,
            [
                "[9,\"b\"]",
                "[10]",
                "[null]",
                "[\"x\"]",
                "[{\"$blob\":\"00FF\"}]"
            ]
        );
        assert_eq!(rows[0], ("[9,\"b\"]".into(), "s2".into(), 2, 3));
    }

    #[test]
    fn rebuilding_the_tracking_table_keeps_pending_entries_and_capture_working() {
        let db = Connection::open_in_memory().unwrap();
        let v2 = Migrations {
            table: CACHE.table,
            steps: &CACHE.steps[..2],
        };
        v2.apply(&db, "t").unwrap();
        db.execute_batch(
            "INSERT INTO sync_state (id, origin, hlc, remote_id, remote_path, created_at, snapshot_at) \
               VALUES (1, 'o', '2026-01-01T00:00:00.009Z', 'r', 'p', 't', 't'); \
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); \
             INSERT INTO sync_tracking (tbl, pk, op, stamp, seq, seen_rev, ord) VALUES \
               ('t', '[7]', 'D', '2026-01-01T00:00:00.007Z', 3, 5, 7), \
               ('t', '[8]', 'X', '2026-01-01T00:00:00.008Z', 0, 5, 8);",
        )
        .unwrap();
        // A synced table with capture triggers, reinstalled for the new clock in the
        // migration's transaction (what opening the cache does).
        db.execute(
            "INSERT INTO sync_tables (name, synced, signature) VALUES ('t', 1, '')",
            [],
        )
        .unwrap();
        let t = &crate::schema::read(&db).unwrap()[0].table;
        crate::store::capture::install(&db, t).unwrap();
        assert_eq!(
            CACHE.apply(&db, "t").unwrap(),
            Outcome::Migrated {
                from: 2,
                to: CACHE.latest()
            }
        );
        crate::sync::snapshot::reinstall_capture(&db).unwrap();
        db.execute("INSERT INTO t VALUES (1, 'a')", []).unwrap();
        crate::store::journal::fold(&db).unwrap();
        let rows: Vec<(String, String, i64, i64, i64, i64)> = db
            .prepare(
                "SELECT pk, op, stamp, seq, seen_rev, ord FROM sync_tracking ORDER BY tbl, ord",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("1", "I"));
        // Stamps and the clock are milliseconds now; the new entry was stamped after the clock.
        let ms = |s| crate::clock::ms_of_stamp(s).unwrap();
        let hlc: i64 = db
            .query_row("SELECT hlc FROM sync_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows[0].2, hlc);
        assert!(hlc > ms("2026-01-01T00:00:00.009Z"));
        let seven = ms("2026-01-01T00:00:00.007Z");
        let eight = ms("2026-01-01T00:00:00.008Z");
        assert_eq!(rows[1], ("7".into(), "D".into(), seven, 3, 5, 7));
        assert_eq!(rows[2], ("8".into(), "X".into(), eight, 0, 5, 8));
        let plan: String = db
            .query_row(
                "EXPLAIN QUERY PLAN SELECT pk FROM sync_tracking WHERE tbl = 't' ORDER BY tbl, ord",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("sync_tracking_order"), "{plan}");
    }

    /// The schema objects of `db` that a SQLite older than 3.8.2 could not read.
    fn unreadable_by_the_floor(db: &Connection) -> Vec<String> {
        db.prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
            .unwrap()
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .filter(|(_, sql)| {
                let sql = sql.to_uppercase();
                sql.contains("WITHOUT ROWID")
                    || (sql.starts_with("CREATE INDEX") && sql.contains(" WHERE "))
            })
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn a_cache_with_json_keys_gets_key_text_and_a_tracking_table_old_sqlite_can_read() {
        let db = Connection::open_in_memory().unwrap();
        let v3 = Migrations {
            table: CACHE.table,
            steps: &CACHE.steps[..5],
        };
        v3.apply(&db, "t").unwrap();
        assert_eq!(unreadable_by_the_floor(&db), ["sync_tracking"]);
        db.execute_batch(
            r#"INSERT INTO sync_state (id, origin, hlc, remote_id, remote_path, created_at, snapshot_at)
                 VALUES (1, 'o', 1000, 'r', 'p', 't', 't');
               CREATE TABLE t(k, n, v, PRIMARY KEY (k, n));
               INSERT INTO sync_tables (name, synced, signature) VALUES ('t', 1, '');
               INSERT INTO sync_tracking (tbl, pk, op, stamp, seq, seen_rev, ord) VALUES
                 ('t', '["it''s",1]', 'U', 7, 3, 5, 'it''s'),
                 ('t', '[{"$blob":"00FF"},2.5]', 'D', 8, 1, 5, x'00ff');
               INSERT INTO sync_conflicts (id, tbl, pk, winner_stamp, winner_origin, loser_stamp,
                 loser_origin, loser_op, decided_at, decided_by, reason)
                 VALUES (4, 't', '[null,7]', 'a', 'b', 'c', 'd', 'delete', 'e', 'f', 'newer');"#,
        )
        .unwrap();
        assert_eq!(
            CACHE.apply(&db, "t").unwrap(),
            Outcome::Migrated {
                from: 5,
                to: CACHE.latest()
            }
        );
        crate::sync::snapshot::reinstall_capture(&db).unwrap();
        assert_eq!(unreadable_by_the_floor(&db), Vec::<String>::new());
        // A pending entry of the old format coalesces with a change captured after the migration.
        db.execute("INSERT INTO t VALUES ('it''s', 1, 'x')", [])
            .unwrap();
        db.execute("UPDATE t SET v = 'y' WHERE n = 1", []).unwrap();
        crate::store::journal::fold(&db).unwrap();
        let rows: Vec<(String, String, i64, i64)> = db
            .prepare("SELECT pk, op, seq, seen_rev FROM sync_tracking ORDER BY pk")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("'it''s',1".to_string(), "U".to_string(), 5, 5),
                (
                    "X'00FF',F2:2305843009213693952".to_string(),
                    "D".to_string(),
                    1,
                    5
                ),
            ]
        );
        let conflict: String = db
            .query_row("SELECT pk FROM sync_conflicts WHERE id = 4", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(conflict, "NULL,7");
        // One index is the entry's key and the outbox's order: still one entry per row, and a
        // lookup by key is one index seek.
        let twice = db.execute(
            "INSERT INTO sync_tracking (tbl, pk, op, stamp, seq, seen_rev, ord) \
             VALUES ('t', '''it''''s'',1', 'U', 9, 1, 5, 'it''s')",
            [],
        );
        assert!(
            matches!(&twice, Err(e) if e.to_string().contains("UNIQUE")),
            "{twice:?}"
        );
        let plan: String = db
            .query_row(
                "EXPLAIN QUERY PLAN SELECT op FROM sync_tracking WHERE tbl = ?1 AND ord = ?2 AND pk = ?3",
                ["t", "x", "y"],
                |r| r.get(3),
            )
            .unwrap();
        assert!(
            plan.contains("sync_tracking_order (tbl=? AND ord=? AND pk=?)"),
            "{plan}"
        );
    }

    #[test]
    fn a_remote_with_json_keys_gets_key_text_in_its_logs() {
        let db = Connection::open_in_memory().unwrap();
        let v2 = Migrations {
            table: REMOTE.table,
            steps: &REMOTE.steps[..3],
        };
        v2.apply(&db, "t").unwrap();
        db.execute_batch(
            r#"INSERT INTO sharecache_log (rev, tbl, pk, stamp, origin) VALUES
                 (1, 'tasks', '["t1"]', 's', 'o'), (2, 'notes', '[1]', 's', 'o');
               INSERT INTO sharecache_conflicts (tbl, pk, winner_stamp, winner_origin, loser_stamp,
                 loser_origin, loser_op, decided_at, decided_by, reason)
                 VALUES ('tags', '["t1","x"]', 'a', 'b', 'c', 'd', 'delete', 'e', 'f', 'newer');"#,
        )
        .unwrap();
        assert_eq!(
            REMOTE.apply(&db, "t").unwrap(),
            Outcome::Migrated {
                from: 3,
                to: REMOTE.latest()
            }
        );
        let log: Vec<String> = db
            .prepare("SELECT pk FROM sharecache_log ORDER BY rev")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(log, ["'t1'", "1"]);
        let conflict: String = db
            .query_row("SELECT pk FROM sharecache_conflicts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(conflict, "'t1','x'");
        assert_eq!(unreadable_by_the_floor(&db), Vec::<String>::new());
    }
}
