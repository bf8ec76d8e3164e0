//! Reading an SQLite schema: which tables exist, their columns and keys, and which of them
//! sharecache can sync. The same code reads the remote and the cache, so the two are compared
//! like for like (see [`Change`]).

use rusqlite::Connection;

/// Names of sharecache's own tables in the cache; never synced.
pub const LOCAL_INTERNAL: &[&str] = &[
    "sync_state",
    "sync_tracking",
    "sync_journal",
    "sync_metadata",
    "sync_conflicts",
    "sync_tables",
    "sync_migrations",
    "sync_repairs",
    "sync_origins",
    "sync_row_versions",
];

/// Names of sharecache's own tables on the remote; never synced. Exact names: an app table
/// that merely starts with `sharecache_` is the app's.
pub const REMOTE_INTERNAL: &[&str] = &[
    "sharecache_meta",
    "sharecache_log",
    "sharecache_clients",
    "sharecache_conflicts",
    "sharecache_migrations",
];

/// Whether `name` is one of sharecache's own tables (cache or remote side) or SQLite's.
///
/// ```
/// use sharecache::schema::is_internal;
/// assert!(is_internal("sync_tracking") && is_internal("sharecache_log"));
/// assert!(!is_internal("sharecache_settings"), "an app table, however it is named");
/// ```
pub fn is_internal(name: &str) -> bool {
    LOCAL_INTERNAL.contains(&name) || REMOTE_INTERNAL.contains(&name) || name.starts_with("sqlite_")
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name as declared.
    pub name: String,
    /// Declared type (may be empty).
    pub decl_type: String,
    /// Position in the primary key (1-based), 0 if not part of it.
    pub pk: u32,
}

/// A table as sharecache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Table name.
    pub name: String,
    /// Writable columns in declaration order (generated columns excluded).
    pub columns: Vec<Column>,
    /// Primary-key column names in key order (empty: no primary key).
    pub pk: Vec<String>,
    /// `CREATE TABLE` statement as stored in `sqlite_master`.
    pub sql: String,
    /// The `updated_at` column name, when the table has one the triggers may stamp.
    pub updated_at: Option<String>,
}

/// Whether a table is synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync {
    /// Synced.
    Yes,
    /// Not synced, with the reason shown in `status`.
    No(String),
}

/// A table and whether it is synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The table.
    pub table: Table,
    /// Whether it is synced.
    pub sync: Sync,
}

impl Table {
    /// Column names in declaration order.
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// A compact description of columns and key, stored to notice schema changes.
    pub fn signature(&self) -> String {
        let cols: Vec<(&str, &str, u32)> = self
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.decl_type.as_str(), c.pk))
            .collect();
        serde_json::to_string(&cols).unwrap_or_default()
    }

    /// The columns described by a [`Table::signature`].
    ///
    /// ```
    /// use sharecache::schema::{Column, Table};
    /// let t = Table { name: "t".into(), columns: vec![Column { name: "a:b".into(), decl_type: "TEXT".into(), pk: 1 }],
    ///                 pk: vec!["a:b".into()], sql: String::new(), updated_at: None };
    /// assert_eq!(Table::columns_from_signature(&t.signature()), Some(t.columns.clone()));
    /// ```
    pub fn columns_from_signature(sig: &str) -> Option<Vec<Column>> {
        let cols: Vec<(String, String, u32)> = serde_json::from_str(sig).ok()?;
        Some(
            cols.into_iter()
                .map(|(name, decl_type, pk)| Column {
                    name,
                    decl_type,
                    pk,
                })
                .collect(),
        )
    }

    /// How this (remote) table differs from an older version of it with columns `old`.
    ///
    /// ```
    /// use sharecache::schema::{Change, Column, Table};
    /// let col = |n: &str, pk| Column { name: n.into(), decl_type: "".into(), pk };
    /// let old = Table { name: "t".into(), columns: vec![col("id", 1)], pk: vec!["id".into()], sql: String::new(), updated_at: None };
    /// let mut new = old.clone();
    /// new.columns.push(col("note", 0));
    /// assert_eq!(new.change_from(&old.columns), Change::AddedColumns(vec![col("note", 0)]));
    /// ```
    pub fn change_from(&self, old: &[Column]) -> Change {
        if self.columns == old {
            return Change::None;
        }
        // Every old column still there as it was: what is new was added. Not only at the end:
        // columns two clients add in the cache reach the remote in either order, and the cache
        // records the ones it added itself (`store::watch::follow_local`).
        if !old.iter().all(|o| self.columns.contains(o)) {
            return Change::Destructive;
        }
        let added: Vec<Column> = self
            .columns
            .iter()
            .filter(|c| !old.contains(c))
            .cloned()
            .collect();
        if added.is_empty() {
            Change::None
        } else if added.iter().any(|c| c.pk > 0) {
            Change::Destructive
        } else {
            Change::AddedColumns(added)
        }
    }
}

/// How a table's schema changed between the cache and the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Identical.
    None,
    /// Columns were appended (ALTER TABLE ADD COLUMN): the cache can follow in place.
    AddedColumns(Vec<Column>),
    /// Anything else (dropped, renamed or retyped columns, a new key): the cache is rebuilt.
    Destructive,
}

/// Whether a declared type holds times as numbers (then `updated_at` is not stamped with text).
fn numeric_type(decl: &str) -> bool {
    let d = decl.to_ascii_uppercase();
    ["INT", "REAL", "FLOA", "DOUB", "NUM", "DEC"]
        .iter()
        .any(|t| d.contains(t))
        && !d.contains("DATE")
        && !d.contains("TIME")
}

/// Whether `conn`'s main database has a table called `name` (a cache or remote not migrated yet
/// may lack one of sharecache's).
pub fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
}

/// Lists the user tables of `conn`'s main database with their sync eligibility, by name.
pub fn read(conn: &Connection) -> rusqlite::Result<Vec<Entry>> {
    let mut list = conn.prepare(
        "SELECT t.name, t.type, m.sql FROM pragma_table_list AS t \
         JOIN sqlite_master AS m ON m.name = t.name AND m.type = 'table' \
         WHERE t.schema = 'main' ORDER BY t.name",
    )?;
    let rows: Vec<(String, String, Option<String>)> = list
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (name, kind, sql) in rows {
        if is_internal(&name) {
            continue;
        }
        let sql = sql.unwrap_or_default();
        if kind == "shadow" {
            continue; // internal storage of a virtual table
        }
        if kind == "virtual" {
            out.push(Entry {
                table: Table {
                    name,
                    columns: vec![],
                    pk: vec![],
                    sql,
                    updated_at: None,
                },
                sync: Sync::No("virtual table".into()),
            });
            continue;
        }
        let table = read_table(conn, &name, sql)?;
        let sync = if table.pk.is_empty() {
            Sync::No("no primary key (add one to sync this table)".into())
        } else {
            Sync::Yes
        };
        out.push(Entry { table, sync });
    }
    Ok(out)
}

fn read_table(conn: &Connection, name: &str, sql: String) -> rusqlite::Result<Table> {
    let mut stmt =
        conn.prepare("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid")?;
    let mut columns = Vec::new();
    for row in stmt.query_map([name], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })? {
        let (cname, decl_type, pk, hidden) = row?;
        if hidden == 0 {
            columns.push(Column {
                name: cname,
                decl_type,
                pk,
            });
        }
    }
    let mut pk_cols: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
    pk_cols.sort_by_key(|c| c.pk);
    let pk = pk_cols.iter().map(|c| c.name.clone()).collect();
    let updated_at = columns
        .iter()
        .find(|c| {
            c.name.eq_ignore_ascii_case("updated_at") && c.pk == 0 && !numeric_type(&c.decl_type)
        })
        .map(|c| c.name.clone());
    Ok(Table {
        name: name.to_string(),
        columns,
        pk,
        sql,
        updated_at,
    })
}

/// The app's schema version and application id of a database: `PRAGMA user_version`,
/// `PRAGMA application_id`.
pub fn app_versions(c: &Connection) -> rusqlite::Result<(i64, i64)> {
    c.query_row(
        "SELECT (SELECT user_version FROM pragma_user_version), (SELECT application_id FROM pragma_application_id)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(sql).unwrap();
        c
    }

    #[test]
    fn tables_without_primary_key_are_listed_as_unsynced_with_reason() {
        let c = db("CREATE TABLE a(id INTEGER PRIMARY KEY, x); CREATE TABLE log(msg TEXT);");
        let e = read(&c).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].sync, Sync::Yes);
        assert!(matches!(&e[1].sync, Sync::No(r) if r.contains("primary key")));
    }

    #[test]
    fn composite_and_text_keys_are_read_in_key_order() {
        let c = db("CREATE TABLE t(b TEXT, a TEXT, v, PRIMARY KEY (a, b)) WITHOUT ROWID;");
        let t = &read(&c).unwrap()[0].table;
        assert_eq!(t.pk, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn internal_tables_and_generated_columns_are_skipped() {
        let c = db("CREATE TABLE sync_tracking(x PRIMARY KEY); CREATE TABLE sharecache_log(y PRIMARY KEY);
                    CREATE TABLE t(id INTEGER PRIMARY KEY, a INT, b INT GENERATED ALWAYS AS (a * 2));");
        let e = read(&c).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].table.column_names(), vec!["id", "a"]);
    }

    #[test]
    fn updated_at_is_stamped_only_when_it_can_hold_text() {
        let c = db("CREATE TABLE t1(id PRIMARY KEY, updated_at TEXT); CREATE TABLE t2(id PRIMARY KEY, updated_at INTEGER);
                    CREATE TABLE t3(id PRIMARY KEY, Updated_At DATETIME);");
        let e = read(&c).unwrap();
        assert_eq!(e[0].table.updated_at.as_deref(), Some("updated_at"));
        assert_eq!(e[1].table.updated_at, None);
        assert_eq!(e[2].table.updated_at.as_deref(), Some("Updated_At"));
    }

    #[test]
    fn dropped_or_retyped_columns_are_destructive() {
        let c = db("CREATE TABLE t(id PRIMARY KEY, a, b)");
        let old = read(&c).unwrap()[0].table.clone();
        let mut fewer = old.clone();
        fewer.columns.pop();
        assert_eq!(fewer.change_from(&old.columns), Change::Destructive);
        let mut renamed = old.clone();
        renamed.columns[1].name = "z".into();
        assert_eq!(renamed.change_from(&old.columns), Change::Destructive);
        assert_eq!(old.change_from(&old.columns), Change::None);
    }
}
