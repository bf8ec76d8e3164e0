//! The app's tables on the server as the cache mirrors them: each PostgreSQL table becomes a
//! SQLite table with the same name, columns and primary key, each column's SQLite type from
//! [`super::types`], `NOT NULL` and constant defaults ([`sqlite_default`]); other constraints
//! stay the server's to enforce (a push the server refuses keeps the row in the conflict log).
//! Every table is mirrored, as the share's file copy mirrors every table: one without a primary
//! key with its rows as of the copy (not synced), one with a column of an unmapped type empty
//! (not synced, its rows cannot cross exactly); `status` names both and why. A table with no primary key or a column
//! with no mapping is not synced, and `status` says why.
//!
//! Indexes: the app's queries run on the cache, so the server's plain indexes come along
//! ([`indexes`]) — B-tree indexes over columns, unique or not, as the share's file copy brings
//! its own. Expression, partial and non-B-tree indexes (GIN, GiST, …) stay on the server (their
//! SQL is PostgreSQL's). Views stay on the server.

use postgres::GenericClient;

use super::PgError;
use super::types::{Column, describe_tables};
use crate::schema::{self, Entry, Sync, Table};
use crate::sql::quote;

/// The names of the app's tables (`relkind` r or p) in `schema`, sorted.
pub fn table_names(client: &mut impl GenericClient, schema: &str) -> Result<Vec<String>, PgError> {
    Ok(client
        .query_typed(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
            &[(&schema, postgres::types::Type::TEXT)],
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
            // An unmapped column keeps the server's type name (SQLite takes any): the table is
            // there for the app, not synced, and `status` says why.
            decl_type: c
                .kind
                .as_ref()
                .map_or_else(|| c.pg_type.clone(), |k| k.sqlite_type().to_owned()),
            pk: key
                .iter()
                .position(|k| k.name == c.name)
                .map_or(0, |p| p as u32 + 1),
        })
        .collect();
    let defs: Vec<String> = cols
        .iter()
        .zip(columns)
        .map(|(c, pg)| {
            let mut def = format!("{} {}", quote(&c.name), c.decl_type)
                .trim_end()
                .to_owned();
            let default = pg.default.as_deref().and_then(sqlite_default);
            if pg.not_null && !pg.key && (pg.default.is_none() || default.is_some()) {
                def.push_str(" NOT NULL");
            }
            if let Some(d) = default {
                def.push_str(&format!(" DEFAULT {d}"));
            }
            def
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

/// A server default as a SQLite constant, when it is one: a number, `true`/`false` (1/0), or a
/// quoted string with a cast (`'x'::text`). A default the server computes (`now()`,
/// `nextval(…)`) has no cache form: the column is left nullable and without a default in the
/// cache, and the app gives it a value (README, When you outgrow the share).
pub fn sqlite_default(expr: &str) -> Option<String> {
    let e = expr.trim();
    match e {
        "true" => return Some("1".into()),
        "false" => return Some("0".into()),
        _ => {}
    }
    let bare = e.trim_start_matches('(').trim_end_matches(')');
    let bare = bare
        .split("::")
        .next()
        .unwrap_or(bare)
        .trim_end_matches(')');
    if bare.parse::<f64>().is_ok()
        && bare
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
    {
        return Some(bare.to_owned());
    }
    if let Some(rest) = e.strip_prefix('\'') {
        let end = rest.rfind('\'')?;
        let (text, after) = (&rest[..end], &rest[end + 1..]);
        if after.is_empty() || after.starts_with("::") {
            return Some(format!("'{text}'"));
        }
    }
    None
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
    for (name, columns) in describe_tables(client, schema, None)? {
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

/// The server's plain indexes on the app's tables in `schema` (see the module docs), as
/// `CREATE [UNIQUE] INDEX` statements for the cache, table by table.
pub fn indexes(client: &mut impl GenericClient, schema: &str) -> Result<Vec<String>, PgError> {
    let rows = client.query_typed(
        "SELECT t.relname::text, i.relname::text, ix.indisunique, \
                array_agg(a.attname::text ORDER BY k.ord) \
         FROM pg_index ix \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_am am ON am.oid = i.relam \
         CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE n.nspname = $1 AND t.relkind IN ('r', 'p') AND NOT ix.indisprimary \
           AND ix.indexprs IS NULL AND ix.indpred IS NULL AND am.amname = 'btree' \
           AND k.ord <= ix.indnkeyatts \
         GROUP BY t.relname, i.relname, ix.indisunique \
         ORDER BY 1, 2",
        &[(&schema, postgres::types::Type::TEXT)],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let (table, index, unique): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
            let columns: Vec<String> = r.get(3);
            let columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
            format!(
                "CREATE {}INDEX {} ON {} ({})",
                if unique { "UNIQUE " } else { "" },
                quote(&index),
                quote(&table),
                columns.join(", ")
            )
        })
        .collect())
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

#[cfg(test)]
mod tests {
    use super::sqlite_default;

    #[test]
    fn constant_server_defaults_become_sqlite_constants_and_computed_ones_none() {
        assert_eq!(sqlite_default("false").as_deref(), Some("0"));
        assert_eq!(sqlite_default("42").as_deref(), Some("42"));
        assert_eq!(sqlite_default("'-1.5'::numeric").as_deref(), Some("'-1.5'"));
        assert_eq!(sqlite_default("'it''s'::text").as_deref(), Some("'it''s'"));
        assert_eq!(sqlite_default("(-3)").as_deref(), Some("-3"));
        assert_eq!(sqlite_default("now()"), None);
        assert_eq!(sqlite_default("nextval('t_id_seq'::regclass)"), None);
    }
}
