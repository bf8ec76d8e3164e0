//! The PostgreSQL remote (issue 16): the same cache, API and sync against a server, for teams
//! that outgrew one file on a share. [`Postgres`] implements the remote-store interface
//! ([`crate::remote::RemoteStore`]); `database.path: postgres://…` selects it
//! ([`crate::remote::open`]).
//!
//! Files: `server` (the connection, opened lazily and again after a failure), `store` (the
//! interface), `writer` (one atomic write), `versions` (a write's first look at its batch), `reads` (the log, rows, conflicts), `snapshot` (the
//! first copy), `schema` (tables as the cache mirrors them), `carry` (a cache's additions as
//! DDL), `prune`, `log` (capture triggers and the numbering of revisions), `migrate`, `rows`
//! (rows in one statement), `types` (the value mapping), `instance` (which database a URL leads
//! to, for a hand-over), `connect`, `error`.
//!
//! PostgreSQL features relied on, all core (no extension): PL/pgSQL functions and row triggers
//! (with a `WHEN` condition), row locks (`FOR UPDATE`), `RAISE … USING ERRCODE`, window functions,
//! `unnest` of several arrays, data-modifying `WITH` parts (a push's row writes, chained, in the
//! statement that calls `sharecache.finish`), dynamic SQL in PL/pgSQL (`EXECUTE … USING`),
//! session settings (`set_config`), binary `COPY … TO STDOUT`,
//! `array_to_json`/`jsonb_array_elements_text`, and one transaction advisory lock, taken only by
//! the migrations (two first opens at once).

mod carry;
mod connect;
mod error;
pub mod import;
mod instance;
pub mod log;
pub mod migrate;
mod prune;
mod reads;
pub mod rows;
mod schema;
mod server;
mod snapshot;
mod store;
pub mod types;
mod versions;
mod writer;

pub use connect::connect;
pub use error::PgError;
pub use instance::AtUrl;
pub use server::Postgres;
