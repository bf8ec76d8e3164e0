//! Which database a URL leads to now, for the hand-over of a cache's pending writes
//! (`handle::handover`). A database reached through another URL than the one a cache was made
//! for is either the same database (another spelling of the server: a host name for its
//! address) or a copy of it (a restored dump, `CREATE DATABASE … TEMPLATE`: both carry the same
//! sharecache identity); and the old URL may lead nowhere now (the database moved) or to another
//! database. A copy is another database of the cluster, or another cluster: the cluster's
//! system identifier and the database's OID tell them apart.

use postgres::error::SqlState;

use super::{PgError, Postgres};
use crate::remote::RemoteError;

/// What a URL leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtUrl {
    /// The server answers and has no such database.
    Missing,
    /// A database.
    Database {
        /// Its sharecache identity (`None`: sharecache never set it up).
        identity: Option<String>,
        /// Which database of which cluster it is: the cluster's system identifier and the
        /// database's OID.
        instance: String,
    },
}

impl Postgres {
    /// What this remote's URL leads to now (see the module docs). An unreachable server, a
    /// refused login, anything but a missing database, is an error: nobody can tell.
    pub fn probe(&self) -> Result<AtUrl, RemoteError> {
        let found = self.try_with(|c| {
            let instance: String = c
                .query_one(
                    "SELECT s.system_identifier::text || '/' || d.oid::text \
                     FROM pg_control_system() s, pg_database d \
                     WHERE d.datname = current_database()",
                    &[],
                )?
                .get(0);
            let identity = match Self::has_schema(c)? {
                false => None,
                true => c
                    .query_opt("SELECT remote_id FROM sharecache.meta WHERE id = 1", &[])?
                    .map(|r| r.get(0)),
            };
            Ok(AtUrl::Database { identity, instance })
        });
        match found {
            Err(PgError::Db(e)) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
                Ok(AtUrl::Missing)
            }
            other => other.map_err(|e| e.into_remote(&self.location())),
        }
    }
}
