//! The local cache file: where it lives ([`CachePaths`]), how it is opened (`open_local`), the
//! cross-process [`lock`], the capture triggers ([`capture`]) and the [`journal`] they append to
//! (folded into the outbox by sharecache), the schema `mirror` and [`watch`], the instance
//! binding ([`instance`]), the other caches of a directory ([`others`]), whether a path is
//! cached at all ([`detect`]), local transactions (`write_tx`) and the local error
//! ([`LocalError`]).
//!
//! This layer knows nothing of sync or the remote: it sits above the leaves (`sql`, `schema`,
//! `clock`, `platform`, `migrate`) and `config`, and everything from `remote` up builds on it
//! (see ARCHITECTURE.md).

// Public for the benchmarks and tests only (they install triggers and run the schema check on
// files of their own): not part of the API an app uses.
#[doc(hidden)]
pub mod capture;
pub mod detect;
mod error;
pub mod instance;
// Public for the tests, which look at the outbox right after a write: not part of the API.
#[doc(hidden)]
pub mod journal;
pub mod lock;
pub(crate) mod mirror;
mod open;
pub mod others;
mod tx;
#[doc(hidden)]
pub mod watch;

pub use error::LocalError;
pub use open::CachePaths;
pub use open::MIN_FREE_BYTES;
pub(crate) use open::{check_space, ensure_dir, journal_mode, make_private, open_local};
pub(crate) use tx::{read_snapshot, read_tx, write_tx};
