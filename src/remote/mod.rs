//! The remote: where the shared data lives, behind one interface.
//!
//! [`RemoteStore`] (in [`store`]) is the contract the sync is written against — revisions,
//! versions, atomic batches, the idle fingerprint — with the guarantees every backend gives in
//! its docs; [`types`] holds the words it speaks, [`image`] the row images every backend keeps
//! in its change log. [`share`] is the first backend: a SQLite file
//! on a network share, with everything share-specific inside it (the lease file, journal mode,
//! header peeks, page-cache release, identity and same-file checks). `tests/conformance/` is the
//! suite any backend must pass. A new backend is a new module here, a branch in [`open`], and a
//! harness for the conformance suite; nothing under `sync/` changes. [`postgres`] is the second:
//! a PostgreSQL server (`database.path: postgres://…`).

mod error;
pub mod image;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod retry;
pub mod share;
pub mod store;
pub mod types;

use std::time::Duration;

pub use error::RemoteError;
pub use share::Share;
pub use store::{BatchWriter, RemoteStore};
pub use types::{
    ClientEntry, CopyError, CopyInfo, DIRECT_ORIGIN, EntryId, Fetched, Fingerprint, Found, Head,
    LoggedConflict, Mark, PRUNED_ORIGIN, Pruned, Trail, Version,
};

/// How to reach and write the remote.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// This client's origin id (written into leases and the client registry).
    pub origin: String,
    /// SQLite busy timeout for the remote connection, and how long to wait for a lease.
    pub busy_timeout: Duration,
    /// Retries of a write transaction that found the remote locked.
    pub lock_retries: u32,
    /// A lease not renewed for this long is stale.
    pub lease_ttl: Duration,
}

impl RemoteOptions {
    /// Options from a config, for the given origin.
    pub fn from_config(config: &crate::config::Config, origin: &str) -> RemoteOptions {
        RemoteOptions {
            origin: origin.to_string(),
            busy_timeout: config.busy_timeout,
            lock_retries: config.lock_retries,
            lease_ttl: config.lease_ttl,
        }
    }
}

/// Opens the configured remote for sharecache's own use (never creates it): the PostgreSQL
/// server when `database.path` is a `postgres://` URL (connected at its first operation), the
/// share at `config.remote_path` otherwise.
pub fn open(
    config: &crate::config::Config,
    origin: &str,
) -> Result<Box<dyn RemoteStore>, RemoteError> {
    #[cfg(feature = "postgres")]
    if let Some(target) = &config.postgres {
        return Ok(Box::new(postgres::Postgres::open(
            target,
            &config.schema,
            origin,
        )));
    }
    #[cfg(not(feature = "postgres"))]
    if let Some(target) = &config.postgres {
        return Err(RemoteError::Server {
            location: target.display_url(),
            kind: crate::error_kind::ErrorKind::Remote,
            detail: "this build of sharecache has no PostgreSQL support (cargo feature \
                     `postgres`); use a build with it, or point database.path at a share"
                .into(),
        });
    }
    let opts = RemoteOptions::from_config(config, origin);
    Ok(Box::new(Share::open(&config.remote_path, opts)?))
}
