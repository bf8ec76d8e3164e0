//! The PostgreSQL remote's core (issue 16): sharecache's schema on the server, a change log that
//! hands out revisions in the order they become visible, and the mapping between PostgreSQL and
//! SQLite values. Concrete code, tested against a real server (`tests/pg_*.rs`); it is wired
//! into the remote-store interface once that exists (issue 15), so nothing in sync calls it yet.
//!
//! PostgreSQL features relied on, all core (no extension): PL/pgSQL functions and row triggers,
//! row locks (`FOR UPDATE`), window functions, transaction-local settings (`set_config(…, true)`),
//! `array_to_json`/`jsonb_array_elements_text`. Migrations also take a transaction-scoped
//! advisory lock (only there: two first opens at once).

mod connect;
mod error;
pub mod log;
pub mod migrate;
pub mod rows;
pub mod types;

pub use connect::connect;
pub use error::PgError;
