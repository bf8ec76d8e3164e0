//! The first backend: the remote database is a SQLite file on a network share, opened and
//! written the share-safe way.
//!
//! SQLite on a network filesystem is fragile, so the remote is treated accordingly:
//! - it is opened **without** `SQLITE_OPEN_CREATE`, after checking that the path is an existing,
//!   non-empty file: an unmounted share often shows an empty directory, and sharecache must never
//!   create a fresh database there; its identity (`sharecache_meta.remote_id`) is checked against
//!   the one the cache recorded, so a different file is never taken for it;
//! - journal mode DELETE (a WAL remote is converted when nobody else has it open, else refused),
//!   `synchronous=FULL`, no mmap;
//! - every write is one short `BEGIN IMMEDIATE` transaction, guarded by a lease file (see
//!   [`lease`]) taken before and re-checked just before `COMMIT`, with a busy timeout and a
//!   bounded, jittered retry when the remote stays locked;
//! - identifiers read from the schema are always quoted ([`crate::sql::quote`]).

mod access;
mod batch;
pub mod changelog;
mod clean;
mod fingerprint;
pub mod lease;
mod moved;
mod reads;
#[cfg(feature = "postgres")] // migrate-remote reads the share's conflict log
pub(crate) use reads::conflicts_after;
mod schema_carry;
mod snapshot;
mod store;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{Fingerprint, RemoteError, RemoteOptions, retry};

use crate::migrate::{self, Outcome};
use crate::schema;

/// An open connection to the remote database.
pub struct Share {
    path: PathBuf,
    conn: Connection,
    opts: RemoteOptions,
    /// The database header as of the last full [`Share::fingerprint`], with its result.
    fingerprinted: std::cell::Cell<Option<(fingerprint::Header, Fingerprint)>>,
    /// When the path was last found to lead to the open file (see [`Share::check_same_file`]).
    same_file_checked: std::cell::Cell<Option<Instant>>,
    /// The identity checked by [`Share::check_identity`], re-checked by every full fingerprint.
    expected_id: Option<String>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Checks that `path` is an existing, non-empty regular file, without creating anything.
pub fn check_exists(path: &Path) -> Result<u64, RemoteError> {
    match std::fs::metadata(path) {
        Err(e) => Err(RemoteError::from_io(path, &e)),
        Ok(m) if m.is_dir() => Err(RemoteError::Corrupt {
            path: path.into(),
            detail: "it is a directory".into(),
        }),
        Ok(m) if m.len() == 0 => Err(RemoteError::Corrupt {
            path: path.into(),
            detail: "the file is empty (0 bytes); sharecache never initialises a remote database"
                .into(),
        }),
        Ok(m) => Ok(m.len()),
    }
}

/// Opens a connection on an existing database with the share-safe settings (no CREATE, DELETE
/// journal, synchronous FULL, no mmap). Also used for direct access in fallback mode.
pub fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, RemoteError> {
    check_exists(path)?;
    access::check(path)?;
    let sql = |e| RemoteError::from_sqlite(path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
    conn.busy_timeout(busy_timeout).map_err(sql)?;
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(sql)? {
        // SQLite falls back to a read-only descriptor when opening read-write fails, for
        // whatever reason (a one-off share failure too): such a connection could never push.
        return Err(access::opened_read_only(path));
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sql)?;
    if mode.eq_ignore_ascii_case("wal") {
        let switched: Result<String, _> =
            conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0));
        match switched {
            Ok(m) if m.eq_ignore_ascii_case("delete") => {
                tracing::warn!(remote = %path.display(), "converted the remote from WAL to DELETE journal mode (WAL is unsafe on shares)");
            }
            _ => return Err(RemoteError::WalInUse { path: path.into() }),
        }
    } else if !mode.eq_ignore_ascii_case("delete") {
        conn.query_row("PRAGMA journal_mode = DELETE", [], |r| {
            r.get::<_, String>(0)
        })
        .map_err(sql)?;
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA mmap_size = 0; PRAGMA cache_size = -32768; \
         PRAGMA temp_store = MEMORY; PRAGMA foreign_keys = OFF; PRAGMA recursive_triggers = OFF;",
    )
    .map_err(sql)?;
    Ok(conn)
}

impl Share {
    /// Opens the remote database at `path` for sharecache's own use. Never creates it.
    ///
    /// Triggers are off on this connection: a push writes rows whose side effects (the app's own
    /// triggers) already happened in the cache and arrive as captured changes of their own, so
    /// firing them again here would apply them twice; the push logs its versions itself.
    pub fn open(path: &Path, opts: RemoteOptions) -> Result<Share, RemoteError> {
        let conn = open_connection(path, opts.busy_timeout)?;
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
            false,
        )
        .map_err(|e| RemoteError::from_sqlite(path, e))?;
        Ok(Share {
            path: path.to_path_buf(),
            conn,
            opts,
            fingerprinted: std::cell::Cell::new(None),
            same_file_checked: std::cell::Cell::new(None),
            expected_id: None,
        })
    }

    /// The remote database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> RemoteError {
        RemoteError::from_sqlite(&self.path, e)
    }

    /// The remote's sharecache identity, or `None` when sharecache never set it up.
    pub fn identity(&self) -> Result<Option<String>, RemoteError> {
        self.read(|c| {
            let has_meta: Option<i64> = c
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sharecache_meta'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if has_meta.is_none() {
                return Ok(None);
            }
            c.query_row(
                "SELECT remote_id FROM sharecache_meta WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Fails unless this is the remote with identity `expected`.
    pub fn check_identity(&mut self, expected: &str) -> Result<(), RemoteError> {
        match self.identity()? {
            Some(found) if found == expected => {
                self.expected_id = Some(found);
                Ok(())
            }
            found => Err(RemoteError::WrongDatabase {
                path: self.path.clone(),
                expected: expected.to_string(),
                found: found.unwrap_or_else(|| "none (not a sharecache remote)".into()),
            }),
        }
    }

    /// Sets sharecache up on the remote if needed (its tables, identity and change-log triggers on
    /// every synced table) and returns the remote's identity.
    pub fn enroll(&mut self, now: &str) -> Result<String, RemoteError> {
        let (version, current, moved) = self.read(|c| {
            Ok((
                migrate::REMOTE.current(c)?,
                triggers_current(c)?,
                moved::moved_to(c)?,
            ))
        })?;
        if let Some(to) = moved {
            return Err(moved::refused(&self.path, to));
        }
        let latest = migrate::REMOTE.latest();
        if version > latest {
            return Err(RemoteError::TooNew {
                path: self.path.clone(),
                found: version,
                supported: latest,
            });
        }
        if version < latest || !current {
            self.write_raw(|c, path| {
                (|| {
                    if let Outcome::TooNew { .. } = migrate::REMOTE.apply(c, now)? {
                        return Err(rusqlite::Error::InvalidQuery); // raced with a newer client; re-checked below
                    }
                    let id = crate::clock::new_origin() + &crate::clock::new_origin();
                    c.execute(
                        "INSERT OR IGNORE INTO sharecache_meta (id, remote_id, created_at) VALUES (1, ?1, ?2)",
                        [&id, now],
                    )?;
                    reconcile_triggers(c)
                })()
                .map_err(|e| RemoteError::from_sqlite(path, e))
            })?;
        }
        self.identity()?.ok_or_else(|| RemoteError::Corrupt {
            path: self.path.clone(),
            detail: "sharecache_meta has no row after setup".into(),
        })
    }

    /// Declares the remote's current content authoritative, after an admin restored it from a
    /// backup to roll data back: a new generation in `sharecache_meta`. Every client that finds
    /// it takes the remote's rows instead of pushing its newer versions again, and keeps those in
    /// the conflict log. Returns the new generation. Refuses a database sharecache never set up.
    pub fn declare_authoritative(&mut self, now: &str) -> Result<String, RemoteError> {
        if self.identity()?.is_none() {
            return Err(RemoteError::Corrupt {
                path: self.path.clone(),
                detail: "sharecache never set this database up, so no client follows it;                          nothing to declare"
                    .into(),
            });
        }
        self.enroll(now)?;
        let generation = format!("{now} {}", crate::clock::new_origin());
        self.write(|c| {
            c.execute(
                "UPDATE sharecache_meta SET generation = ?1 WHERE id = 1",
                [&generation],
            )
            .map(|_| ())
        })?;
        tracing::warn!(remote = %self.path.display(), generation, "remote declared authoritative");
        Ok(generation)
    }

    /// Runs `f` in a read transaction (a consistent view; holds only a shared lock).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, RemoteError> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        let out = f(&self.conn);
        let end = self
            .conn
            .execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let out = out.map_err(|e| self.err(e))?;
        end.map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Runs `f` in one short write transaction as a sharecache writer: lease, `BEGIN IMMEDIATE`,
    /// the change-log triggers silenced (`f` records versions itself), lease re-checked, `COMMIT`.
    /// Retries with jittered backoff while the remote is locked.
    pub(crate) fn write<T>(
        &mut self,
        mut f: impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, RemoteError> {
        self.write_with(|c, path| f(c).map_err(|e| RemoteError::from_sqlite(path, e)))
    }

    /// [`Share::write`] with a closure that fails with a [`RemoteError`] (the batch writer's).
    pub(crate) fn write_with<T>(
        &mut self,
        mut f: impl FnMut(&Connection, &Path) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let origin = self.opts.origin.clone();
        self.write_raw(|c, path| {
            let flag = |e| RemoteError::from_sqlite(path, e);
            c.execute(
                "UPDATE sharecache_meta SET writer = ?1 WHERE id = 1",
                [&origin],
            )
            .map_err(flag)?;
            let out = f(c, path)?;
            c.execute("UPDATE sharecache_meta SET writer = NULL WHERE id = 1", [])
                .map_err(flag)?;
            Ok(out)
        })
    }

    /// A write transaction without the writer flag (setup, DDL).
    fn write_raw<T>(
        &mut self,
        mut f: impl FnMut(&Connection, &Path) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            match self.try_write(&mut f) {
                Err(RemoteError::Locked { .. }) if attempt < self.opts.lock_retries => {
                    attempt += 1;
                    let pause =
                        retry::backoff(attempt, Duration::from_millis(50), Duration::from_secs(2));
                    tracing::debug!(attempt, ?pause, "remote locked; retrying");
                    std::thread::sleep(pause);
                }
                Err(RemoteError::Locked { .. }) => {
                    return Err(RemoteError::Locked {
                        path: self.path.clone(),
                        waited: start.elapsed(),
                    });
                }
                other => return other,
            }
        }
    }

    fn try_write<T>(
        &mut self,
        f: &mut impl FnMut(&Connection, &Path) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let lease = lease::acquire(
            &self.path,
            &lease::LeaseOptions {
                origin: self.opts.origin.clone(),
                ttl: self.opts.lease_ttl,
                timeout: self.opts.busy_timeout,
            },
        )?;
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let result = (|| {
            let out = f(&self.conn, &self.path)?;
            self.check_same_file()?;
            if !lease.verify()? {
                tracing::warn!(remote = %self.path.display(), "write lease lost before commit; rolling back");
                return Err(RemoteError::Locked {
                    path: self.path.clone(),
                    waited: Duration::ZERO,
                });
            }
            self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
            Ok(out)
        })();
        if result.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        lease.release();
        result
    }

    /// Installs or refreshes the change-log triggers of every synced table (after a schema change).
    pub fn reconcile_triggers(&mut self) -> Result<bool, RemoteError> {
        if self.read(triggers_current)? {
            return Ok(false);
        }
        self.write_raw(|c, path| {
            reconcile_triggers(c).map_err(|e| RemoteError::from_sqlite(path, e))
        })?;
        Ok(true)
    }
}

fn triggers_current(c: &Connection) -> rusqlite::Result<bool> {
    let entries = schema::read(c)?;
    let mut synced = Vec::new();
    for e in &entries {
        if e.sync == schema::Sync::Yes {
            if !changelog::triggers_current(c, &e.table)? {
                return Ok(false);
            }
            synced.push(e.table.name.clone());
        }
    }
    Ok(changelog::tables_with_triggers(c)?
        .iter()
        .all(|t| synced.contains(t)))
}

fn reconcile_triggers(c: &Connection) -> rusqlite::Result<()> {
    let entries = schema::read(c)?;
    let mut synced = Vec::new();
    for e in &entries {
        if e.sync == schema::Sync::Yes {
            changelog::install_triggers(c, &e.table)?;
            synced.push(e.table.name.clone());
        }
    }
    for t in changelog::tables_with_triggers(c)? {
        if !synced.contains(&t) {
            changelog::drop_triggers(c, &t)?;
        }
    }
    Ok(())
}
