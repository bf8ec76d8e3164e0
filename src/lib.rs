//! # sharecache
//!
//! A local SQLite cache for a SQLite database that lives on a slow or unreliable network share
//! (`\\server\share\app.db`). The application reads and writes an ordinary local SQLite file;
//! triggers record every change; a sync pushes local changes to the share in short batched
//! transactions and pulls what other clients changed, resolving conflicts by newest stamp
//! (hybrid logical clock, deterministic tie-break) and keeping every losing version in a
//! conflict log.
//!
//! ```no_run
//! use sharecache::{Cache, Config};
//!
//! # fn main() -> Result<(), sharecache::Error> {
//! let config = Config::load("config.yaml".as_ref())?;
//! let cache = Cache::open(config)?;
//! cache.conn().execute("UPDATE tasks SET done = 1 WHERE id = ?1", ["42"])?;
//! let report = cache.sync_now()?;
//! println!("pushed {} rows, pulled {}", report.pushed, report.pulled);
//! # Ok(())
//! # }
//! ```
//!
//! The modules are layers, lowest first; an import only ever points to a lower one (checked by
//! `tests/layers.rs`, see ARCHITECTURE.md):
//!
//! 1. leaves: [`sql`], [`schema`], [`clock`], [`platform`] (every OS call), the migrations and
//!    [`ErrorKind`];
//! 2. [`config`];
//! 3. [`store`] (the local cache file: open, lock, capture triggers, schema mirror and watch)
//!    and [`conflicts`] (the conflict log in it);
//! 4. [`remote`] (the database on the share);
//! 5. [`error`] (the umbrella [`Error`]);
//! 6. [`sync`] (outbox → push → change log → pull → conflict, snapshot and rebuild);
//! 7. [`handle`] ([`Cache`], its background worker, fallback and salvage);
//! 8. [`status`] and, with the cargo feature `tokio`, `async_cache::AsyncCache` (the same handle
//!    for async code).
#![warn(missing_docs)]

// 1. leaves
pub mod clock;
mod error_kind;
mod migrate;
pub mod platform;
pub mod schema;
pub mod sql;
// 2.
pub mod config;
// 3.
pub mod conflicts;
pub mod store;
// 4.
pub mod remote;
// 5.
pub mod error;
// 6.
pub mod sync;
// 7.
pub mod handle;
// 8.
#[cfg(feature = "tokio")]
pub mod async_cache;
pub mod status;

pub use config::{Config, EnableCache};
pub use conflicts::Conflict;
pub use error::{Error, ErrorKind, Result};
pub use handle::{Cache, Mode, OpenOptions};
pub use status::{State, Status};
pub use sync::{ClearReport, Progress, SyncReport};
