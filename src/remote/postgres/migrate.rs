//! Versioned migrations of sharecache's schema on a PostgreSQL server (`migrations/postgres/`),
//! recorded in `sharecache.migrations`, like `src/migrate.rs` does for the share and the cache.
//! Separate from that runner because the SQL dialect and the client differ; the rule is the same:
//! apply each missing step once, in order, in one transaction, and refuse a newer schema.

use postgres::GenericClient;

use super::PgError;

/// `(version, sql)`, ascending from 1.
const STEPS: &[(i32, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_store.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_write_ids.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_push.sql"),
    ),
];

/// The newest version this build knows.
pub fn latest() -> i32 {
    STEPS.last().map_or(0, |s| s.0)
}

/// Brings the server's `sharecache` schema to [`latest`]; returns the version it found. Two
/// clients doing this at once are serialised by a transaction advisory lock. `remote_id` and `now`
/// fill the meta row the first time.
pub fn migrate(
    client: &mut impl GenericClient,
    remote_id: &str,
    now: &str,
) -> Result<i32, PgError> {
    migrate_to(client, remote_id, now, latest())
}

/// [`migrate`], stopping after version `upto`: a server as an older sharecache left it, for the
/// tests of an upgrade.
#[doc(hidden)]
pub fn migrate_to(
    client: &mut impl GenericClient,
    remote_id: &str,
    now: &str,
    upto: i32,
) -> Result<i32, PgError> {
    let mut tx = client.transaction()?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtext('sharecache.migrate')); \
         CREATE SCHEMA IF NOT EXISTS sharecache; \
         CREATE TABLE IF NOT EXISTS sharecache.migrations \
             (version integer PRIMARY KEY, applied_at text NOT NULL)",
    )?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM sharecache.migrations",
            &[],
        )?
        .get(0);
    if found > latest() {
        return Err(PgError::TooNew {
            found,
            supported: latest(),
        });
    }
    for (version, sql) in STEPS.iter().filter(|s| s.0 > found && s.0 <= upto) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO sharecache.migrations (version, applied_at) VALUES ($1, $2)",
            &[version, &now],
        )?;
    }
    if found == 0 {
        tx.execute(
            "INSERT INTO sharecache.meta (id, remote_id, created_at, generation) VALUES (1, $1, $2, $1)",
            &[&remote_id, &now],
        )?;
    }
    tx.commit()?;
    Ok(found)
}
