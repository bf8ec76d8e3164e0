//! The app's tables on the server as the cache mirrors them: each PostgreSQL table becomes a
//! SQLite table with the same name, columns and primary key, each column's SQLite type from
//! [`super::types`]; constraints other than the key stay the server's to enforce (a push the
//! server refuses keeps the row in the conflict log). A table with no primary key or a column
//! with no mapping is not synced, and `status` says why. Indexes and views stay on the server.

use postgres::GenericClient;

use super::PgError;
use super::types::{Column, describe};
use crate::schema::{self, Entry, Sync, Table};
use crate::sql::quote;

/// The names of the app's tables (`relkind` r or p) in `schema`, sorted.
pub fn table_names(client: &mut impl GenericClient, schema: &str) -> Result<Vec<String>, PgError> {
    Ok(client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
            &[&schema],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// `table` as the cache mirrors it, from the server's `columns`.
pub fn sqlite_table(table: &str, columns: &[Column]) -> Table {
    let mut key: Vec<&Column> = columns.iter().filter(|c| c.key).collect();
    key.sort_by_key(|c| columns.iter().position(|x| x.name == c.name));
    let cols: Vec<schema::Column> = columns
        .iter()
        .map(|c| schema::Column {
            name: c.name.clone(),
            decl_type: c.kind.as_ref().map_or("", |k| k.sqlite_type()).to_owned(),
            pk: key
                .iter()
                .position(|k| k.name == c.name)
                .map_or(0, |p| p as u32 + 1),
        })
        .collect();
    let defs: Vec<String> = cols
        .iter()
        .map(|c| {
            format!("{} {}", quote(&c.name), c.decl_type)
                .trim_end()
                .to_owned()
        })
        .collect();
    let pk: Vec<String> = key.iter().map(|c| c.name.clone()).collect();
    let mut sql = format!("CREATE TABLE {} ({}", quote(table), defs.join(", "));
    if !pk.is_empty() {
        let quoted: Vec<String> = pk.iter().map(|c| quote(c)).collect();
        sql.push_str(&format!(", PRIMARY KEY ({})", quoted.join(", ")));
    }
    sql.push(')');
    Table {
        name: table.to_owned(),
        columns: cols,
        pk,
        sql,
        updated_at: None,
    }
}

/// Why `columns` cannot be synced, if they cannot.
pub fn unsynced(table: &str, columns: &[Column]) -> Option<String> {
    if !columns.iter().any(|c| c.key) {
        return Some("no primary key on the server".to_owned());
    }
    super::types::check(table, columns)
        .err()
        .map(|e| e.to_string())
}

/// Every app table in `schema`, mirrored, with whether it is synced.
pub fn entries(client: &mut impl GenericClient, schema: &str) -> Result<Vec<Entry>, PgError> {
    let mut out = Vec::new();
    for name in table_names(client, schema)? {
        let columns = describe(client, schema, &name)?;
        let sync = match unsynced(&name, &columns) {
            None => Sync::Yes,
            Some(why) => Sync::No(why),
        };
        out.push(Entry {
            table: sqlite_table(&name, &columns),
            sync,
        });
    }
    Ok(out)
}

/// The server type a cache column declared `decl` is created with when the cache carries a new
/// table or column to the server (SQLite's type affinity rules, in their order).
pub fn server_type(decl: &str) -> &'static str {
    let d = decl.to_ascii_uppercase();
    if d.contains("INT") {
        "bigint"
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        "text"
    } else if d.contains("BLOB") || d.is_empty() {
        if d.is_empty() { "text" } else { "bytea" }
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        "double precision"
    } else {
        "numeric"
    }
}
