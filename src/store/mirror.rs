//! Following the remote's schema: new tables and new columns appear in the cache at the next
//! sync; anything destructive (a dropped or renamed table or column, a retyped column, a new
//! primary key) asks for a rebuild, which runs after pending writes are pushed.

use rusqlite::{Connection, params_from_iter};

use crate::schema::{Change, Column, Entry, Table};
use crate::sql::quote;

/// What the cache must do to follow the remote schema.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Tables that exist only on the remote: create and fill them.
    pub new_tables: Vec<Table>,
    /// Columns appended on the remote: add them.
    pub new_columns: Vec<(String, Vec<Column>)>,
    /// Why the cache must be rebuilt, if it must.
    pub rebuild: Option<String>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.new_tables.is_empty() && self.new_columns.is_empty() && self.rebuild.is_none()
    }
}

/// The remote schema as the cache last followed it: `(table, columns)` from `sync_tables`.
pub(crate) fn recorded(local: &Connection) -> rusqlite::Result<Vec<(String, Vec<Column>)>> {
    local
        .prepare("SELECT name, signature FROM sync_tables")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .map(|r| r.map(|(n, s)| (n, Table::columns_from_signature(&s).unwrap_or_default())))
        .collect()
}

/// Compares the remote schema with the one the cache last followed (`recorded`). Tables the app
/// created only in the cache (`local_names` minus `recorded`) are left alone.
pub(crate) fn plan(
    remote: &[Entry],
    recorded: &[(String, Vec<Column>)],
    local_names: &[String],
) -> Plan {
    let mut p = Plan::default();
    for r in remote {
        match recorded.iter().find(|(n, _)| *n == r.table.name) {
            None if local_names.contains(&r.table.name) => {
                tracing::warn!(table = %r.table.name, "a table of this name exists only in the cache; not mirroring the remote one");
            }
            None => p.new_tables.push(r.table.clone()),
            Some((_, cols)) => match r.table.change_from(cols) {
                Change::None => {}
                Change::AddedColumns(cols) => p.new_columns.push((r.table.name.clone(), cols)),
                Change::Destructive => {
                    p.rebuild.get_or_insert(format!(
                        "table {:?} changed on the remote (columns or key)",
                        r.table.name
                    ));
                }
            },
        }
    }
    for (name, _) in recorded {
        if !remote.iter().any(|r| r.table.name == *name) {
            p.rebuild.get_or_insert(format!(
                "table {name:?} was dropped or renamed on the remote"
            ));
        }
    }
    p
}

/// `ALTER TABLE … ADD COLUMN` for a column read from the remote (or from the cache, to add it
/// on the remote).
pub(crate) fn add_column_sql(table: &str, col: &Column, remote_info: &[ColumnFacts]) -> String {
    let (notnull, default) = remote_info
        .iter()
        .find(|(n, _, _)| *n == col.name)
        .map(|(_, nn, d)| (*nn, d.clone()))
        .unwrap_or((false, None));
    let mut sql = format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        quote(table),
        quote(&col.name),
        col.decl_type
    );
    if let Some(d) = default {
        sql.push_str(&format!(" DEFAULT {d}"));
        if notnull {
            sql.push_str(" NOT NULL");
        }
    }
    sql
}

/// What `ADD COLUMN` needs to know of a remote column: (name, not null, default SQL).
pub type ColumnFacts = (String, bool, Option<String>);

/// Column facts of a remote table.
pub(crate) fn column_facts(remote: &Connection, table: &str) -> rusqlite::Result<Vec<ColumnFacts>> {
    remote
        .prepare("SELECT name, \"notnull\", dflt_value FROM pragma_table_xinfo(?1)")?
        .query_map([table], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?))
        })?
        .collect()
}

/// The rows and index definitions of a new remote table, read in one remote read transaction.
pub struct NewTable {
    /// The table.
    pub table: Table,
    /// `CREATE INDEX` statements of the table.
    pub indexes: Vec<String>,
    /// All its rows, in column order.
    pub rows: Vec<Vec<rusqlite::types::Value>>,
}

/// Reads what creating `t` locally needs from the remote.
pub(crate) fn read_new_table(remote: &Connection, t: &Table) -> rusqlite::Result<NewTable> {
    let indexes = remote
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?
        .query_map([&t.name], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
    let rows = if cols.is_empty() {
        vec![]
    } else {
        let mut s = remote.prepare(&format!(
            "SELECT {} FROM {}",
            cols.join(", "),
            quote(&t.name)
        ))?;
        let n = cols.len();
        s.query_map([], |r| {
            (0..n)
                .map(|i| crate::sql::read_value(r, i))
                .collect::<Result<Vec<_>, _>>()
        })?
        .collect::<Result<_, _>>()?
    };
    Ok(NewTable {
        table: t.clone(),
        indexes,
        rows,
    })
}

/// A new column to add: (table, columns, facts about the table's remote columns).
pub(crate) type NewColumns = (String, Vec<Column>, Vec<ColumnFacts>);

/// Applies the additive part of a plan to the cache. Call inside a local write transaction with
/// `sync_state.applying = 1`; register the tables afterwards.
pub(crate) fn apply(
    local: &Connection,
    new_tables: &[NewTable],
    new_columns: &[NewColumns],
) -> rusqlite::Result<()> {
    for nt in new_tables {
        local.execute_batch(&nt.table.sql)?;
        for ix in &nt.indexes {
            local.execute_batch(ix)?;
        }
        if nt.rows.is_empty() {
            continue;
        }
        let cols: Vec<String> = nt.table.columns.iter().map(|c| quote(&c.name)).collect();
        let marks = vec!["?"; cols.len()].join(", ");
        let mut ins = local.prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            quote(&nt.table.name),
            cols.join(", ")
        ))?;
        for row in &nt.rows {
            ins.execute(params_from_iter(crate::sql::Bind::all(row)))?;
        }
        tracing::info!(table = %nt.table.name, rows = nt.rows.len(), "new remote table mirrored into the cache");
    }
    for (table, cols, facts) in new_columns {
        let have: Vec<String> = local
            .prepare("SELECT name FROM pragma_table_xinfo(?1)")?
            .query_map([table], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for col in cols {
            if have.contains(&col.name) {
                // The app added it in the cache too (the same migration on every desk): keep
                // the cache's declaration; the values sync either way.
                tracing::info!(table = %table, column = %col.name, "remote column already in the cache");
                continue;
            }
            local.execute_batch(&add_column_sql(table, col, facts))?;
            tracing::info!(table = %table, column = %col.name, "new remote column mirrored into the cache");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn recorded_of(c: &Connection) -> Vec<(String, Vec<Column>)> {
        schema::read(c)
            .unwrap()
            .into_iter()
            .map(|e| (e.table.name, e.table.columns))
            .collect()
    }

    #[test]
    fn new_tables_and_columns_are_additive_and_drops_need_a_rebuild() {
        let remote = Connection::open_in_memory().unwrap();
        let old = Connection::open_in_memory().unwrap();
        remote
            .execute_batch(
                "CREATE TABLE a(id INTEGER PRIMARY KEY, x); CREATE TABLE b(id PRIMARY KEY);",
            )
            .unwrap();
        old.execute_batch("CREATE TABLE a(id INTEGER PRIMARY KEY);")
            .unwrap();
        let p = plan(&schema::read(&remote).unwrap(), &recorded_of(&old), &[]);
        assert_eq!(p.new_tables.len(), 1);
        assert_eq!(p.new_columns.len(), 1);
        assert_eq!(p.rebuild, None);
        old.execute_batch("CREATE TABLE gone(id PRIMARY KEY)")
            .unwrap();
        let p = plan(&schema::read(&remote).unwrap(), &recorded_of(&old), &[]);
        assert!(p.rebuild.unwrap().contains("gone"));
    }

    #[test]
    fn tables_the_app_created_only_in_the_cache_are_left_alone() {
        let remote = Connection::open_in_memory().unwrap();
        remote
            .execute_batch("CREATE TABLE a(id INTEGER PRIMARY KEY)")
            .unwrap();
        let rec = recorded_of(&remote);
        // The app added a table and a column in the cache; the remote did not change.
        let p = plan(
            &schema::read(&remote).unwrap(),
            &rec,
            &["a".into(), "local_only".into()],
        );
        assert!(p.is_empty());
    }

    #[test]
    fn an_added_not_null_column_keeps_its_default() {
        let remote = Connection::open_in_memory().unwrap();
        let local = Connection::open_in_memory().unwrap();
        remote.execute_batch("CREATE TABLE a(id INTEGER PRIMARY KEY); ALTER TABLE a ADD COLUMN n INTEGER NOT NULL DEFAULT 7;").unwrap();
        local
            .execute_batch("CREATE TABLE a(id INTEGER PRIMARY KEY); INSERT INTO a VALUES (1);")
            .unwrap();
        let p = plan(&schema::read(&remote).unwrap(), &recorded_of(&local), &[]);
        let facts = column_facts(&remote, "a").unwrap();
        let cols: Vec<_> = p
            .new_columns
            .into_iter()
            .map(|(t, c)| (t, c, facts.clone()))
            .collect();
        apply(&local, &[], &cols).unwrap();
        let n: i64 = local
            .query_row("SELECT n FROM a WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 7);
        assert!(plan(&schema::read(&remote).unwrap(), &recorded_of(&local), &[]).is_empty());
    }
}
