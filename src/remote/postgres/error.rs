//! What can go wrong talking to the PostgreSQL remote, before it maps onto the crate's error
//! kinds (with the remote-store interface).

/// A PostgreSQL remote failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The server or the connection failed (the client crate's error, never holding a password).
    #[error("PostgreSQL: {0}")]
    Db(#[from] postgres::Error),
    /// This build cannot do what the config asks (e.g. TLS).
    #[error("{0}")]
    Unsupported(String),
    /// A column whose type has no SQLite mapping (see [`super::types`]).
    #[error("{table}.{column}: PostgreSQL type {pg_type} has no SQLite mapping; {hint}")]
    UnsupportedType {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The type as `format_type` spells it.
        pg_type: String,
        /// What to do.
        hint: String,
    },
    /// A value that cannot cross between the two databases exactly.
    #[error("{column}: {message}")]
    Value {
        /// The column.
        column: String,
        /// What is wrong with the value.
        message: String,
    },
    /// The server's sharecache schema was made by a newer sharecache.
    #[error(
        "the server's sharecache schema is version {found}, this build knows up to {supported}: \
         upgrade sharecache"
    )]
    TooNew {
        /// The version found.
        found: i32,
        /// The newest this build knows.
        supported: i32,
    },
}
