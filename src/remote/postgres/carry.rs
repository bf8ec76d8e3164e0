//! A cache's schema additions carried to the server as DDL, in one transaction: new tables
//! (with their key), new columns (nullable: SQLite's defaults and constraints are not
//! translated), the app's schema versions. Index definitions are SQLite's and stay in the cache.
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
        for (t, cols, _) in &add.columns {
            for col in cols {
                tx.batch_execute(&format!(
                    "ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} {}",
                    quote(&schema),
                    quote(&t.name),
                    quote(&col.name),
                    server_type(&col.decl_type)
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
