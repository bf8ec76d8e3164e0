//! Integration tests: every test runs clients against a remote database behind the slow, flaky
//! `slowfs` share, and the behaviours that are not about the share run against a PostgreSQL
//! server too (`support::remote`; `both_backends!` names them `area::share::test` and
//! `area::postgres::test`). One test binary, a module per behaviour area.

mod support;

mod app_settings;
#[cfg(feature = "tokio")]
mod async_cache;
mod capture;
mod cli;
mod cli_daemon;
mod cli_ops;
mod conflicts;
mod crash;
mod end_to_end;
mod fallback;
mod handover;
mod instances;
mod layers;
mod local_schema;
mod local_schema_carry;
mod offline;
mod old_sqlite;
mod operations;
mod pg_config;
#[cfg(feature = "postgres")]
mod pg_connect;
#[cfg(feature = "postgres")]
mod pg_convergence;
#[cfg(feature = "postgres")]
mod pg_failover;
#[cfg(feature = "postgres")]
mod pg_log;
#[cfg(feature = "postgres")]
mod pg_migrate;
#[cfg(feature = "postgres")]
mod pg_push;
#[cfg(feature = "postgres")]
mod pg_rows;
#[cfg(feature = "postgres")]
mod pg_schema;
#[cfg(feature = "postgres")]
mod pg_sync;
#[cfg(feature = "postgres")]
mod pg_types;
mod push_pull;
mod reliability;
mod restore;
mod schema_follow;
mod share_safety;
mod status_truth;
mod windows;

// The remote-store conformance suite (every backend).
mod conformance;
