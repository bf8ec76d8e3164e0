//! A first snapshot from the server into a new SQLite file: the tables and plain indexes as the
//! cache mirrors them ([`super::schema`]), their rows streamed by a binary `COPY` (one row in memory
//! at a time, whatever the table's size), all read in one REPEATABLE READ transaction
//! so the copy is one consistent state, and the change-log revision it is consistent with.
//!
//! The new client is registered first, at the head, in its own short transaction: nothing it
//! needs can be pruned while the copy runs, and its horizon is at or below the copy's revision.

use std::path::Path;

use rusqlite::types::Value;

use super::PgError;
use super::reads::register;
use super::schema::{entries, indexes};
use super::server::Postgres;
use super::store::SNAPSHOT_ISOLATION;
use super::types::{Kind, select_list};
use crate::remote::store::NewClient;
use crate::remote::{ClientEntry, CopyError, CopyInfo, EntryId};
use crate::sql::quote;
use postgres::binary_copy::BinaryCopyOutIter;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;

/// Rows between two progress reports.
const PROGRESS_EVERY: u64 = 2000;

/// Copies the server into a new SQLite database at `dest`.
pub fn copy(
    pg: &mut Postgres,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
    new: Option<&NewClient>,
) -> Result<CopyInfo, CopyError> {
    let enrolled = crate::remote::RemoteStore::identity(pg)
        .map_err(CopyError::Remote)?
        .is_some();
    if let (Some(n), true) = (new, enrolled) {
        pg.with(|c| {
            let head: i64 = c.query_one("SELECT sharecache.head()", &[])?.get(0);
            register(
                c,
                &ClientEntry {
                    origin: n.origin.clone(),
                    pulled_rev: head,
                    last_seen: n.now.clone(),
                    host: n.host.clone(),
                },
            )
        })
        .map_err(CopyError::Remote)?;
    }
    let local = rusqlite::Connection::open(dest).map_err(|e| CopyError::Local(io(e)))?;
    let mut local_failure: Option<rusqlite::Error> = None;
    let schema = pg.schema.clone();
    let read = pg.with(|c| {
        let mut tx = c
            .build_transaction()
            .isolation_level(SNAPSHOT_ISOLATION)
            .read_only(true)
            .start()?;
        // Every table (see super::schema): rows for those whose columns all map.
        let tables = entries(&mut tx, &schema)?;
        let (rev, meta, newest) = if enrolled {
            let rev: i64 = tx.query_one("SELECT sharecache.top()", &[])?.get(0);
            let m = tx.query_one(
                "SELECT remote_id, hlc, generation FROM sharecache.meta WHERE id = 1",
                &[],
            )?;
            let newest = tx
                .query_opt(
                    "SELECT rev, stamp, origin, write_id FROM sharecache.log WHERE rev <= $1 \
                     ORDER BY rev DESC LIMIT 1",
                    &[&rev],
                )?
                .map(|r| EntryId {
                    rev: r.get(0),
                    stamp: r.get(1),
                    origin: r.get(2),
                    write_id: r.get(3),
                });
            let meta: (String, String, String) = (m.get(0), m.get(1), m.get(2));
            (rev, Some(meta), newest)
        } else {
            (0, None, None)
        };
        let total: i64 = tx
            .query_one(
                "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::int8 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = ANY($2)",
                &[
                    &schema,
                    &tables
                        .iter()
                        .map(|e| e.table.name.clone())
                        .collect::<Vec<_>>(),
                ],
            )?
            .get(0);
        let mut done: u64 = 0;
        let mut write = |f: &mut dyn FnMut() -> rusqlite::Result<()>| -> Result<(), PgError> {
            f().map_err(|e| {
                let msg = e.to_string();
                local_failure = Some(e);
                PgError::Unsupported(format!("writing the local copy: {msg}"))
            })
        };
        write(&mut || local.execute_batch("BEGIN"))?;
        for e in &tables {
            write(&mut || local.execute_batch(&e.table.sql))?;
            let cols = super::types::describe(&mut tx, &schema, &e.table.name)?;
            if super::types::check(&e.table.name, &cols).is_err() {
                continue;
            }
            let sql = format!(
                "SELECT {} FROM {}.{}",
                select_list(&cols),
                quote(&schema),
                quote(&e.table.name)
            );
            let insert = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote(&e.table.name),
                cols.iter()
                    .map(|c| quote(&c.name))
                    .collect::<Vec<_>>()
                    .join(", "),
                (1..=cols.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let kinds: Vec<&Kind> = cols
                .iter()
                .map(|c| c.kind.as_ref().expect("checked above"))
                .collect();
            let types: Vec<Type> = kinds.iter().map(|k| k.selected_type()).collect();
            let reader = tx.copy_out(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))?;
            let mut rows = BinaryCopyOutIter::new(reader, &types);
            while let Some(r) = rows.next()? {
                let values: Vec<Value> = kinds
                    .iter()
                    .zip(&cols)
                    .enumerate()
                    .map(|(i, (k, c))| k.read(&r, i, &c.name))
                    .collect::<Result<_, _>>()?;
                write(&mut || {
                    local
                        .prepare_cached(&insert)?
                        .execute(rusqlite::params_from_iter(values.iter()))
                        .map(|_| ())
                })?;
                done += 1;
                if done % PROGRESS_EVERY == 0 {
                    progress(done, (total as u64).max(done));
                }
            }
            progress(done, (total as u64).max(done));
        }
        // After the rows: one sort per index instead of an insert into it per row.
        for index in indexes(&mut tx, &schema)? {
            write(&mut || local.execute_batch(&index))?;
        }
        write(&mut || local.execute_batch("COMMIT"))?;
        tx.commit()?;
        Ok((rev, meta, newest))
    });
    if let Some(e) = local_failure {
        return Err(CopyError::Local(io(e)));
    }
    let (rev, meta, newest) = read.map_err(CopyError::Remote)?;
    drop(local);
    let bytes = std::fs::metadata(dest).map_err(CopyError::Local)?.len();
    Ok(CopyInfo {
        bytes,
        rev,
        remote_id: meta.as_ref().map(|m| m.0.clone()),
        newest_stamp: meta.as_ref().map(|m| m.1.clone()).filter(|s| !s.is_empty()),
        newest,
        generation: meta.map(|m| m.2),
    })
}

fn io(e: rusqlite::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
