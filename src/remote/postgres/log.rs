//! The change log on PostgreSQL (`sharecache.log`): triggers that record direct writes, a push's
//! own entries, and revisions handed out in the order changes become visible.
//!
//! Why not a `bigserial` rev: a transaction that took 41 can commit after one that took 42, and a
//! pull that read up to 42 never sees 41. Here an entry is written with no rev; after commit,
//! [`sequence`] numbers every committed, unnumbered entry above the highest rev. Its UPDATE sees
//! only committed entries (READ COMMITTED), so an entry still in flight is numbered by a later call,
//! above every rev anyone has read. Callers of [`sequence`] are serialised by the meta row's lock,
//! which only they take, for one short statement: writers (pushes, triggers, other programs) never
//! wait on each other for it, so many clients push at once. The cost: a change is readable once
//! some client has called [`sequence`] after its commit (every push and pull begins with one).
//!
//! Rejected: a transaction advisory lock around log appends holds one global lock from a writer's
//! first change to its commit (a `psql` session left open in a transaction would stop every
//! client); reading below `pg_snapshot_xmin` keeps revs but needs xid8 columns and an xid cursor,
//! and one long writing transaction stalls every pull.

use postgres::{Client, GenericClient};

use super::PgError;
use super::types::Column;
use crate::remote::DIRECT_ORIGIN;
use crate::sql::{literal, quote};

/// A log entry as a pull reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its revision.
    pub rev: i64,
    /// Table name.
    pub tbl: String,
    /// Key text ([`crate::sql::encode_key`]).
    pub pk: String,
    /// HLC stamp.
    pub stamp: String,
    /// Origin (a client, or `direct`).
    pub origin: String,
    /// A tombstone.
    pub deleted: bool,
    /// The pushed row image, or `None` for a direct write (read the row).
    pub image: Option<Vec<u8>>,
}

/// An entry a push writes.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Table name.
    pub tbl: String,
    /// Key text.
    pub pk: String,
    /// HLC stamp.
    pub stamp: String,
    /// A tombstone.
    pub deleted: bool,
    /// The row image ([`crate::remote::image`]).
    pub image: Option<Vec<u8>>,
}

/// Numbers the committed, unnumbered entries and returns the head rev. Call outside a
/// transaction (the function refuses anything but READ COMMITTED).
pub fn sequence(client: &mut Client) -> Result<i64, PgError> {
    Ok(client
        .query_one("SELECT sharecache.sequence()", &[])?
        .get(0))
}

/// Up to `limit` entries after `rev`, in rev order. Call [`sequence`] first.
pub fn since(client: &mut impl GenericClient, rev: i64, limit: i64) -> Result<Vec<Entry>, PgError> {
    let rows = client.query(
        "SELECT rev, tbl, pk, stamp, origin, deleted, image FROM sharecache.log \
         WHERE rev > $1 ORDER BY rev LIMIT $2",
        &[&rev, &limit],
    )?;
    Ok(rows
        .iter()
        .map(|r| Entry {
            rev: r.get(0),
            tbl: r.get(1),
            pk: r.get(2),
            stamp: r.get(3),
            origin: r.get(4),
            deleted: r.get(5),
            image: r.get(6),
        })
        .collect())
}

/// Marks the transaction as `origin`'s push (its triggers stay silent) and appends `entries` in
/// one statement (one round trip). Use inside the push's transaction.
pub fn append(
    tx: &mut postgres::Transaction<'_>,
    origin: &str,
    entries: &[NewEntry],
) -> Result<(), PgError> {
    tx.execute(
        "SELECT set_config('sharecache.writer', $1, true)",
        &[&origin],
    )?;
    let tbl: Vec<&str> = entries.iter().map(|e| e.tbl.as_str()).collect();
    let pk: Vec<&str> = entries.iter().map(|e| e.pk.as_str()).collect();
    let stamp: Vec<&str> = entries.iter().map(|e| e.stamp.as_str()).collect();
    let deleted: Vec<bool> = entries.iter().map(|e| e.deleted).collect();
    let image: Vec<Option<&[u8]>> = entries.iter().map(|e| e.image.as_deref()).collect();
    tx.execute(
        "INSERT INTO sharecache.log (tbl, pk, stamp, origin, deleted, image) \
         SELECT t, p, s, $6, d, i FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::bytea[]) \
         WITH ORDINALITY AS u(t, p, s, d, i, o) ORDER BY o",
        &[&tbl, &pk, &stamp, &deleted, &image, &origin],
    )?;
    Ok(())
}

/// The trigger function and triggers that log direct writes to `schema.table` (a push's own
/// writes skip the function in the trigger's `WHEN`: no PL/pgSQL call per pushed row), whose columns are
/// `columns` as [`super::types::describe`] gives them (checked with [`super::types::check`]).
///
/// A push is silent only for the rows it writes itself (its statements run at trigger depth 0).
/// What the server's own triggers write in turn (an app's `AFTER INSERT` trigger filling an
/// audit table, say: the caches have no copy of a PL/pgSQL trigger) is logged as a direct write,
/// or it would reach no cache.
pub fn trigger_sql(schema: &str, table: &str, columns: &[Column]) -> Result<String, PgError> {
    super::types::check(table, columns)?;
    let keys: Vec<&Column> = columns.iter().filter(|c| c.key).collect();
    if keys.is_empty() {
        return Err(PgError::Unsupported(format!(
            "{schema}.{table} has no primary key: sharecache syncs tables with one"
        )));
    }
    let key = |row: &str| {
        keys.iter()
            .map(|c| {
                let kind = c.kind.as_ref().expect("checked");
                kind.key_sql(&format!("{row}.{}", quote(&c.name)))
            })
            .collect::<Vec<_>>()
            .join(" || ',' || ")
    };
    let changed = keys
        .iter()
        .map(|c| format!("OLD.{q} IS DISTINCT FROM NEW.{q}", q = quote(&c.name)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let function = quote(&format!("capture_{schema}_{table}"));
    let target = format!("{}.{}", quote(schema), quote(table));
    let name = literal(table);
    let log = |row: &str, deleted: bool| {
        format!(
            "k := {}; INSERT INTO sharecache.log (tbl, pk, stamp, origin, deleted) \
             VALUES ({name}, k, sharecache.direct_stamp({name}, k), '{DIRECT_ORIGIN}', {deleted});",
            key(row)
        )
    };
    Ok(format!(
        "CREATE OR REPLACE FUNCTION sharecache.{function}() RETURNS trigger LANGUAGE plpgsql AS $f$ \
         DECLARE k text; \
         BEGIN \
           IF sharecache.quiet() AND pg_trigger_depth() < 2 THEN RETURN NULL; END IF; \
           IF TG_OP = 'DELETE' THEN {del} \
           ELSIF TG_OP = 'INSERT' THEN {ins} \
           ELSE IF {changed} THEN {del} END IF; {ins} END IF; \
           RETURN NULL; \
         END $f$; \
         DROP TRIGGER IF EXISTS sharecache_capture ON {target}; \
         CREATE TRIGGER sharecache_capture AFTER INSERT OR UPDATE OR DELETE ON {target} \
           FOR EACH ROW WHEN (NOT sharecache.quiet() OR pg_trigger_depth() > 0) EXECUTE FUNCTION sharecache.{function}();",
        del = log("OLD", true),
        ins = log("NEW", false),
    ))
}

/// Installs (or refreshes) the capture triggers of `schema.table`.
pub fn install_triggers(
    client: &mut impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<(), PgError> {
    let columns = super::types::describe(client, schema, table)?;
    if columns.is_empty() {
        return Err(PgError::Unsupported(format!(
            "{schema}.{table} does not exist"
        )));
    }
    let sql = trigger_sql(schema, table, &columns)?;
    client.batch_execute(&sql)?;
    Ok(())
}
