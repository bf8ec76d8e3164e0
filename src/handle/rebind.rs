//! The handle's side of [`crate::store::instance`]: at every open, the cache checks it is the instance its
//! origin belongs to, and records a change of origin in the history in the same transaction.

use rusqlite::Connection;

use super::Cache;
use crate::clock::Clock;
use crate::error::Result;
use crate::store::{CachePaths, LocalError, instance};
use crate::sync::metadata;

impl Cache {
    /// Checks that the cache is the instance its origin belongs to (not a copy), in one local
    /// transaction with the history entry of a change ([`instance`]).
    pub(super) fn check_binding(
        app: &Connection,
        paths: &CachePaths,
        clock: &Clock,
        host: Option<&str>,
    ) -> Result<Option<instance::Rebound>> {
        let binding = instance::current(&paths.db, host);
        let now = clock.now_stamp();
        let rebound = crate::sync::write_tx(app, |c| {
            let r = instance::check(c, &binding, &now)?;
            if let Some(r) = &r {
                let note = format!("{}: origin {} (was {})", r.reason, r.origin, r.former);
                metadata::record_event(c, "new-origin", &now, 0, &note)?;
            }
            Ok(r)
        })
        .map_err(|e| LocalError::from_sqlite(&paths.db, e))?;
        Ok(rebound)
    }
}
