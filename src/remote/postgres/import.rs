//! Moving a share's database to a PostgreSQL server (`sharecache migrate-remote`): the synced
//! tables with their keys and rows, and sharecache's own state — the identity, the change log
//! with its revisions, the client registry, the conflict log, the clock and generation — so the
//! server is the same database to every cache: once a desk's `database.path` names the server,
//! its first open makes a cache from the server, and a cache still holding writes for the share
//! is found by that identity and handed over (`sharecache adopt`), never passed by.
//!
//! All in one server transaction (nothing half-moved), read in one read transaction of the
//! share, which keeps the share's writers waiting while it runs: stop the apps first. Refused
//! when the server already holds sharecache's schema or a table of the same name. Once the server
//! has committed, the share is marked as moved ([`crate::remote::Share::mark_moved`]): clients
//! and other programs still pointed at it are refused, naming the server, instead of writing
//! where nobody reads any more. A move whose marking failed (the share dropped) is finished by
//! running it again: a server already holding this very remote only has the share marked.

use std::path::Path;

use postgres::types::Type;
use rusqlite::Connection;
use rusqlite::types::Value;

use super::PgError;
use super::carry::constant;
use super::schema::{server_type, table_names};
use super::types::describe;
use crate::config::PgTarget;
use crate::remote::{RemoteError, RemoteOptions, Share};
use crate::schema::{self, Sync};
use crate::sql::quote;
use crate::sql::rows::Shape;
use crate::store::mirror;

/// Rows read from the share and written to the server per statement.
const BATCH: usize = 5000;

/// What a move copied.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// The remote's identity, the same on the server as on the share.
    pub remote_id: String,
    /// `(table, rows)`, in name order.
    pub tables: Vec<(String, u64)>,
    /// Change-log entries copied, and the last revision.
    pub log: (u64, i64),
    /// Tables not copied (not synced: no primary key, a virtual table, …) and why: still on the
    /// share, to be moved by hand if the app needs them on the server.
    pub skipped: Vec<(String, String)>,
    /// The server already held this remote (an earlier run copied it, then could not mark the
    /// share): nothing was copied, the share was marked.
    pub resumed: bool,
}

/// Either side's failure.
enum Failed {
    Share(rusqlite::Error),
    Server(PgError),
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Failed {
        Failed::Share(e)
    }
}

impl From<PgError> for Failed {
    fn from(e: PgError) -> Failed {
        Failed::Server(e)
    }
}

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Failed {
        Failed::Server(e.into())
    }
}

/// Copies the sharecache remote at `share` into `schema` on `target` (see the module docs).
/// `progress(table, rows so far)`.
pub fn from_share(
    share: &Path,
    opts: &RemoteOptions,
    target: &PgTarget,
    schema: &str,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Imported, RemoteError> {
    let location = target.display_url();
    let imported = {
        let conn = crate::remote::share::open_connection(share, opts.busy_timeout)?;
        let mut client = super::connect(target).map_err(|e| e.into_remote(&location))?;
        // One read transaction: a consistent state of the share (rolled back when dropped).
        let read = conn
            .unchecked_transaction()
            .map_err(|e| RemoteError::from_sqlite(share, e))?;
        copy(&read, &mut client, schema, progress).map_err(|f| match f {
            Failed::Share(e) => RemoteError::from_sqlite(share, e),
            Failed::Server(e) => e.into_remote(&location),
        })?
    };
    Share::open(share, opts.clone())
        .and_then(|mut s| s.mark_moved(&location))
        .map_err(|e| RemoteError::Server {
            location: location.clone(),
            kind: e.kind(),
            detail: format!(
                "the database was copied to the server, but the share could not be marked as \
                 moved ({e}); until it is, clients still pointed at the share keep syncing with \
                 it: run the same `sharecache migrate-remote` again once the share is back (it \
                 then only marks the share)"
            ),
        })?;
    Ok(imported)
}

fn copy(
    share: &Connection,
    client: &mut postgres::Client,
    schema: &str,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Imported, Failed> {
    let meta = share.query_row(
        "SELECT remote_id, rev, pruned_rev, pruned_hlc, hlc, generation FROM sharecache_meta WHERE id = 1",
        [],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        },
    )?;
    let (user_version, application_id) = schema::app_versions(share)?;
    let mut tables = Vec::new();
    let mut skipped = Vec::new();
    for e in schema::read(share)? {
        match e.sync {
            Sync::Yes => tables.push(e.table),
            Sync::No(why) => skipped.push((e.table.name, why)),
        }
    }
    let mut tx = client.transaction()?;
    let taken: bool = tx
        .query_one("SELECT to_regclass('sharecache.meta') IS NOT NULL", &[])?
        .get(0);
    if taken {
        let there: Option<String> = tx
            .query_opt("SELECT remote_id FROM sharecache.meta WHERE id = 1", &[])?
            .map(|r| r.get(0));
        if there.as_deref() == Some(meta.0.as_str()) {
            return Ok(Imported {
                remote_id: meta.0.clone(),
                skipped,
                resumed: true,
                ..Imported::default()
            });
        }
        return Err(PgError::Unsupported(
            "the server already holds a sharecache remote (schema sharecache): move to an empty \
             database, or drop schema sharecache there first"
                .into(),
        )
        .into());
    }
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)))?;
    let existing = table_names(&mut tx, schema)?;
    if let Some(t) = tables.iter().find(|t| existing.contains(&t.name)) {
        return Err(PgError::Unsupported(format!(
            "the server already has a table {schema}.{}: move to a schema without the app's \
             tables (database.schema), or drop it there first",
            t.name
        ))
        .into());
    }
    let mut imported = Imported {
        remote_id: meta.0.clone(),
        skipped,
        ..Imported::default()
    };
    for t in &tables {
        let facts = mirror::column_facts(share, &t.name)?;
        let mut defs: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                let mut def = format!("{} {}", quote(&c.name), server_type(&c.decl_type));
                let fact = facts.iter().find(|f| f.0 == c.name);
                if let Some(d) = fact.and_then(|f| f.2.as_deref()).and_then(constant) {
                    def.push_str(&format!(" DEFAULT {d}"));
                }
                if fact.is_some_and(|f| f.1) {
                    def.push_str(" NOT NULL");
                }
                def
            })
            .collect();
        let pk: Vec<String> = t.pk.iter().map(|k| quote(k)).collect();
        defs.push(format!("PRIMARY KEY ({})", pk.join(", ")));
        tx.batch_execute(&format!(
            "CREATE TABLE {}.{} ({})",
            quote(schema),
            quote(&t.name),
            defs.join(", ")
        ))?;
        let all = describe(&mut tx, schema, &t.name)?;
        let cols: Vec<_> = t
            .columns
            .iter()
            .map(|c| {
                all.iter()
                    .find(|a| a.name == c.name)
                    .cloned()
                    .expect("created above")
            })
            .collect();
        let shape = Shape {
            table: t.name.clone(),
            columns: t.column_names(),
            pk: t.pk.clone(),
        };
        let key_at: Vec<usize> =
            t.pk.iter()
                .map(|k| {
                    shape
                        .columns
                        .iter()
                        .position(|c| c == k)
                        .expect("a key column")
                })
                .collect();
        let mut after: Option<Vec<Value>> = None;
        let mut n = 0u64;
        loop {
            let page = shape.page(share, after.as_deref(), BATCH)?;
            if page.is_empty() {
                break;
            }
            super::rows::upsert(&mut tx, schema, &t.name, &cols, &page)?;
            n += page.len() as u64;
            progress(&t.name, n);
            let last = page.last().expect("not empty");
            after = Some(key_at.iter().map(|&i| last[i].clone()).collect());
        }
        imported.tables.push((t.name.clone(), n));
    }
    super::migrate::migrate(
        &mut tx,
        &meta.0,
        &crate::clock::format_stamp(chrono::Utc::now()),
    )?;
    tx.execute(
        "UPDATE sharecache.meta SET pruned_rev = $1, pruned_hlc = $2, hlc = $3, generation = $4, \
         user_version = $5, application_id = $6 WHERE id = 1",
        &[
            &meta.2,
            &meta.3,
            &meta.4,
            &meta.5,
            &user_version,
            &application_id,
        ],
    )?;
    imported.log = copy_log(share, &mut tx, meta.1)?;
    copy_registry(share, &mut tx)?;
    for t in &tables {
        super::log::install_triggers(&mut tx, schema, &t.name)?;
    }
    tx.commit()?;
    Ok(imported)
}

/// A change-log entry as the share holds it: rev, table, key, stamp, origin, deleted, image.
type LogRow = (
    i64,
    String,
    String,
    String,
    String,
    bool,
    Option<Vec<u8>>,
    Option<i64>,
);

/// The change log with its revisions (images as the share wrote them: the same encoding) and
/// write ids (the caches' trail marks name entries by them).
fn copy_log(
    share: &Connection,
    tx: &mut postgres::Transaction<'_>,
    rev: i64,
) -> Result<(u64, i64), Failed> {
    // A share last written by a sharecache from before write ids has no such column: NULL.
    let has_write_id: bool = share.query_row(
        "SELECT count(*) FROM pragma_table_info('sharecache_log') WHERE name = 'write_id'",
        [],
        |r| r.get(0),
    )?;
    let write_id = if has_write_id { "write_id" } else { "NULL" };
    let mut s = share.prepare(&format!(
        "SELECT rev, tbl, pk, stamp, origin, deleted, image, {write_id} FROM sharecache_log \
         ORDER BY rev"
    ))?;
    let mut rows = s.query([])?;
    let mut n = 0u64;
    let mut batch: Vec<LogRow> = Vec::new();
    let mut flush =
        |batch: &mut Vec<LogRow>, tx: &mut postgres::Transaction<'_>| -> Result<(), Failed> {
            let b: &Vec<LogRow> = batch;
            let revs: Vec<i64> = b.iter().map(|r| r.0).collect();
            let tbl: Vec<&str> = b.iter().map(|r| r.1.as_str()).collect();
            let pk: Vec<&str> = b.iter().map(|r| r.2.as_str()).collect();
            let stamp: Vec<&str> = b.iter().map(|r| r.3.as_str()).collect();
            let origin: Vec<&str> = b.iter().map(|r| r.4.as_str()).collect();
            let deleted: Vec<bool> = b.iter().map(|r| r.5).collect();
            let image: Vec<Option<&[u8]>> = b.iter().map(|r| r.6.as_deref()).collect();
            let write_id: Vec<Option<i64>> = b.iter().map(|r| r.7).collect();
            tx.execute_typed(
            "INSERT INTO sharecache.log (rev, tbl, pk, stamp, origin, deleted, image, write_id) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::bool[], $7::bytea[], $8::int8[])",
            &[
                (&revs, Type::INT8_ARRAY),
                (&tbl, Type::TEXT_ARRAY),
                (&pk, Type::TEXT_ARRAY),
                (&stamp, Type::TEXT_ARRAY),
                (&origin, Type::TEXT_ARRAY),
                (&deleted, Type::BOOL_ARRAY),
                (&image, Type::BYTEA_ARRAY),
                (&write_id, Type::INT8_ARRAY),
            ],
        )?;
            n += batch.len() as u64;
            batch.clear();
            Ok(())
        };
    while let Some(r) = rows.next()? {
        batch.push((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get::<_, i64>(5)? != 0,
            r.get(6)?,
            r.get(7)?,
        ));
        if batch.len() == BATCH {
            flush(&mut batch, tx)?;
        }
    }
    flush(&mut batch, tx)?;
    Ok((n, rev))
}

/// The client registry and the conflict log, ids kept.
fn copy_registry(share: &Connection, tx: &mut postgres::Transaction<'_>) -> Result<(), Failed> {
    let clients: Vec<crate::remote::ClientEntry> = share
        .prepare(
            "SELECT origin, pulled_rev, last_seen, coalesce(host, '') FROM sharecache_clients",
        )?
        .query_map([], |r| {
            Ok(crate::remote::ClientEntry {
                origin: r.get(0)?,
                pulled_rev: r.get(1)?,
                last_seen: r.get(2)?,
                host: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    for c in &clients {
        super::reads::register(tx, c)?;
    }
    let conflicts = crate::remote::share::conflicts_after(share, 0)?;
    for x in &conflicts {
        tx.execute(
            "INSERT INTO sharecache.conflicts (id, tbl, pk, winner_stamp, winner_origin, loser_stamp, \
             loser_origin, loser_op, loser_row, decided_at, decided_by, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &x.id,
                &x.tbl,
                &x.pk,
                &x.winner_stamp,
                &x.winner_origin,
                &x.loser_stamp,
                &x.loser_origin,
                &x.loser_op,
                &x.loser_row,
                &x.decided_at,
                &x.decided_by,
                &x.reason,
            ],
        )?;
    }
    Ok(())
}
