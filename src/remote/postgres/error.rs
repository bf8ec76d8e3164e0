//! What can go wrong talking to the PostgreSQL remote, before it maps onto the crate's error
//! kinds (with the remote-store interface).

/// A PostgreSQL remote failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The server or the connection failed (the client crate's error, never holding a password).
    #[error("PostgreSQL: {}", db_message(.0))]
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

/// The server's own message (with its detail and hint) when it sent one; the client's otherwise
/// (whose `Display` says only "db error" for a server's).
fn db_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("; {h}"));
            }
            m
        }
        None => e.to_string(),
    }
}

/// A TLS handshake that failed on its own terms, not for the network under it: the server's
/// certificate did not pass the check `sslmode=verify-…` asks for (or the two sides share no
/// protocol). Its message, or `None` (no TLS error, or an I/O failure during the handshake).
fn tls_refusal(e: &postgres::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    let mut tls = None;
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return None;
        }
        if s.is::<native_tls::Error>() {
            tls = Some(s.to_string());
        }
        source = s.source();
    }
    tls
}

impl PgError {
    /// This failure as the sync sees it: whether to retry (the server unreachable, restarting,
    /// read-only while a standby is promoted, a lock or serialisation conflict) or to stop (a
    /// login, permission or schema problem), with what to do. `location` names the server.
    pub fn into_remote(self, location: &str) -> crate::remote::RemoteError {
        use crate::error_kind::ErrorKind;
        use postgres::error::SqlState;
        let (kind, detail) = match &self {
            PgError::Db(err) => match err.code().map(|c| (c, db_message(err))) {
                None if tls_refusal(err).is_some() => (
                    ErrorKind::Remote,
                    format!(
                        "the TLS handshake with the server failed ({}); with sslmode=verify-ca or \
                         verify-full the server's certificate must be signed by sslrootcert, and \
                         with verify-full name the URL's host",
                        tls_refusal(err).unwrap_or_default()
                    ),
                ),
                None => (
                    ErrorKind::Offline,
                    format!(
                        "the server is unreachable ({err}); local reads and writes go on and will \
                         be synced when it is back"
                    ),
                ),
                Some((code, e)) => {
                    let class = &code.code()[..2];
                    if *code == SqlState::T_R_SERIALIZATION_FAILURE
                        || *code == SqlState::T_R_DEADLOCK_DETECTED
                        || *code == SqlState::LOCK_NOT_AVAILABLE
                    {
                        (ErrorKind::Locked, format!("{e}; will retry"))
                    } else if class == "08"
                        || class == "57"
                        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
                        || *code == SqlState::TOO_MANY_CONNECTIONS
                    {
                        (
                            ErrorKind::Offline,
                            format!(
                                "the server cannot serve sharecache now ({e}): restarting, shutting \
                                 down, read-only (a standby) or full; will retry"
                            ),
                        )
                    } else if class == "28" {
                        (
                            ErrorKind::Remote,
                            format!(
                                "the server refused the login ({e}); check the user in database.path \
                                 and the password (URL, password_file or PGPASSWORD)"
                            ),
                        )
                    } else if *code == SqlState::INVALID_CATALOG_NAME {
                        (
                            ErrorKind::Remote,
                            format!(
                                "no such database ({e}); sharecache never creates the remote database: \
                                 check database.path"
                            ),
                        )
                    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                        (
                            ErrorKind::Remote,
                            format!(
                                "permission denied ({e}); the role needs USAGE and CREATE on the \
                                 app's schema and on schema sharecache, and read and write on the \
                                 app's tables (README, When you outgrow the share)"
                            ),
                        )
                    } else {
                        (ErrorKind::Other, e)
                    }
                }
            },
            PgError::Unsupported(_) | PgError::UnsupportedType { .. } | PgError::Value { .. } => {
                (ErrorKind::Remote, self.to_string())
            }
            PgError::TooNew { .. } => (ErrorKind::Remote, self.to_string()),
        };
        crate::remote::RemoteError::Server {
            location: location.to_owned(),
            kind,
            detail,
        }
    }

    /// Whether the server refused a row for its values: a constraint (unique, check, not null,
    /// foreign key), a data exception (a number out of the column's range, text a column's type
    /// does not read), or a cache value of a storage class the column cannot take (refused here,
    /// before sending). Such a row is refused alone, kept in the conflict log; the others go.
    pub fn is_refusal(&self) -> bool {
        match self {
            PgError::Value { .. } => true,
            PgError::Db(e) => e
                .code()
                .is_some_and(|c| c.code().starts_with("23") || c.code().starts_with("22")),
            _ => false,
        }
    }
}
