//! A cache's schema additions carried to the server as DDL, in one transaction: new tables
//! (with their key), new columns (with their default when it is a constant, and then their
//! `NOT NULL`; other defaults and constraints are not translated), the app's schema versions. Index definitions are SQLite's and stay in the cache.
//! A table of the same name with another key is refused, nothing applied.

use super::schema::{entries, server_type, table_names};
use super::server::Postgres;
use super::types::describe;
use crate::remote::RemoteError;
use crate::remote::store::{Additions, Carry};
use crate::sql::quote;
use crate::store::watch::Refusal;

/// Carries `add` to the server (idempotent).
pub fn carry(pg: &mut Postgres, add: &Additions) -> Result<Carry, RemoteError> {
    let schema = pg.schema.clone();
    pg.with(|c| {
        let mut tx = c.transaction()?;
        let existing = table_names(&mut tx, &schema)?;
        let (mut tables, mut columns) = (Vec::new(), Vec::new());
        for t in &add.tables {
            if existing.contains(&t.name) {
                let there = describe(&mut tx, &schema, &t.name)?;
                let key: Vec<&str> = there
                    .iter()
                    .filter(|c| c.key)
                    .map(|c| c.name.as_str())
                    .collect();
                if key != t.pk.iter().map(String::as_str).collect::<Vec<_>>() {
                    return Ok(Carry::Refused(Refusal {
                        table: t.name.clone(),
                        change: format!(
                            "the server has a table {} with key ({}), the cache's has ({})",
                            t.name,
                            key.join(", "),
                            t.pk.join(", ")
                        ),
                    }));
                }
            } else {
                let mut defs: Vec<String> = t
                    .columns
                    .iter()
                    .map(|c| format!("{} {}", quote(&c.name), server_type(&c.decl_type)))
                    .collect();
                let pk: Vec<String> = t.pk.iter().map(|k| quote(k)).collect();
                defs.push(format!("PRIMARY KEY ({})", pk.join(", ")));
                tx.batch_execute(&format!(
                    "CREATE TABLE {}.{} ({})",
                    quote(&schema),
                    quote(&t.name),
                    defs.join(", ")
                ))?;
            }
            tables.push(t.name.clone());
        }
        for (t, cols, facts) in &add.columns {
            for col in cols {
                // A constant default fills the server's existing rows as it filled the cache's.
                let (not_null, default) = facts
                    .iter()
                    .find(|f| f.0 == col.name)
                    .map_or((false, None), |f| (f.1, f.2.as_deref().and_then(constant)));
                let mut def = server_type(&col.decl_type).to_owned();
                if let Some(d) = &default {
                    def.push_str(&format!(" DEFAULT {d}"));
                    if not_null {
                        def.push_str(" NOT NULL");
                    }
                }
                tx.batch_execute(&format!(
                    "ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} {def}",
                    quote(&schema),
                    quote(&t.name),
                    quote(&col.name),
                ))?;
                columns.push(format!("{}.{}", t.name, col.name));
            }
        }
        tx.execute(
            "UPDATE sharecache.meta SET user_version = $1, application_id = $2 WHERE id = 1",
            &[&add.user_version, &add.application_id],
        )?;
        tx.commit()?;
        Ok(Carry::Done {
            after: entries(c, &schema)?,
            tables,
            columns,
            indexes: vec![],
        })
    })
}

/// A SQLite default that is a constant (a number, a quoted string, NULL), as the server writes it.
pub(super) fn constant(dflt: &str) -> Option<String> {
    let d = dflt.trim();
    let number = d.strip_prefix('-').unwrap_or(d);
    if !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && d.parse::<f64>().is_ok()
    {
        return Some(d.to_owned());
    }
    if d.len() >= 2 && d.starts_with('\'') && d.ends_with('\'') {
        return Some(d.to_owned());
    }
    d.eq_ignore_ascii_case("null").then(|| "NULL".to_owned())
}

#[cfg(test)]
mod tests {
    use super::constant;

    #[test]
    fn only_constant_sqlite_defaults_are_carried() {
        assert_eq!(constant("5").as_deref(), Some("5"));
        assert_eq!(constant("-1.5").as_deref(), Some("-1.5"));
        assert_eq!(constant("'red'").as_deref(), Some("'red'"));
        assert_eq!(constant("CURRENT_TIMESTAMP"), None);
        assert_eq!(constant("(abs(-1))"), None);
    }
}
