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
//! The data flow, module by module: [`config`] → [`cache`] (open, snapshot, schema mirror,
//! capture triggers) → [`sync`] (outbox → push → [`remote`] change log → pull → conflict) →
//! [`status`]. With the cargo feature `tokio`, `async_cache::AsyncCache` is the same handle for
//! async code.
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
pub mod async_cache;
pub mod cache;
pub mod clock;
pub mod config;
pub mod conflicts;
pub mod error;
mod migrate;
pub mod platform;
pub mod remote;
pub mod schema;
pub mod sql;
pub mod status;
pub mod sync;

pub use cache::{Cache, Mode, OpenOptions};
pub use config::{Config, EnableCache};
pub use conflicts::Conflict;
pub use error::{Error, ErrorKind, Result};
pub use status::{State, Status};
pub use sync::{ClearReport, Progress, SyncReport};
