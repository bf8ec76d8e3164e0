//! Whether the sync holds its connection on the cache between syncs.
//!
//! By default it does (salvage reads a deleted cache file through it). `sharecache daemon` does
//! not ([`Engine::release_between_syncs`]): apps that open the cache themselves set startup
//! pragmas that fail or block while any other connection is open on it.

use rusqlite::Connection;

use super::Engine;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::store::{CachePaths, LocalError, open_local};

impl Engine {
    /// The sync's connection on the cache file.
    pub(super) fn open_cache(
        paths: &CachePaths,
        config: &Config,
        clock: &Clock,
    ) -> Result<Connection, LocalError> {
        let local = open_local(&paths.db, clock, config.busy_timeout)?;
        // The sync writes rows whose side effects come separately (pulled as their own changes,
        // or copied by a rebuild): the app's triggers must not fire again on this connection.
        local
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
                false,
            )
            .map_err(|e| LocalError::from_sqlite(&paths.db, e))?;
        Ok(local)
    }

    /// Holds no connection on the cache between syncs (`sharecache daemon`): while any
    /// connection is open on a WAL database, an app that opens the cache cannot switch it to
    /// another journal mode (its `PRAGMA journal_mode=DELETE` fails "database is locked") nor
    /// take it in `locking_mode=EXCLUSIVE`. The cost is one open per sync; a cache file deleted
    /// while no sync runs can no longer be read through this connection (the app's own
    /// connections still hold it).
    pub fn release_between_syncs(&mut self, on: bool) {
        self.release_between = on;
        if on {
            self.release();
        }
    }

    /// Closes the connection on the cache file (reopened by [`Engine::acquire`]).
    pub(super) fn release(&mut self) {
        if !self.released {
            if let Ok(empty) = Connection::open_in_memory() {
                self.local = empty;
                self.released = true;
            }
        }
    }

    /// Reopens the connection on the cache file if it was released.
    pub(super) fn acquire(&mut self) -> Result<(), Error> {
        if self.released {
            self.check_file()?;
            self.local = Engine::open_cache(&self.paths, &self.config, &self.clock)?;
            self.released = false;
        }
        Ok(())
    }
}
