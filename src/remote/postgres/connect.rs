//! Opening a connection from a [`PgTarget`], with TLS as `sslmode` asks and the session settings
//! the value mapping needs.
//!
//! TLS is the platform's (OpenSSL on Linux, SChannel on Windows) through `postgres-native-tls`.
//! `sslmode` has libpq's meaning: `prefer` tries TLS and falls back to plain TCP, `require`
//! insists on TLS. Neither verifies the server's certificate (libpq does not either, without a
//! root certificate): they protect against listening, not against a server impersonated on the
//! network path. `verify-full` (with a root certificate) is not supported yet; the config refuses it.

use native_tls::TlsConnector;
use postgres::Client;
use postgres::config::SslMode as ClientSslMode;
use postgres_native_tls::MakeTlsConnector;

use super::PgError;
use crate::config::{PgTarget, SslMode};

/// Session settings that make text forms of values exact and independent of the server's
/// defaults: ISO dates, UTC for `timestamptz`, and floats printed round-trippably.
/// READ COMMITTED whatever the server's default: the change log's numbering needs it
/// ([`super::server`]).
const SESSION: &str = "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; \
                       SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; \
                       SET default_transaction_isolation = 'read committed'";

/// Connects to `target`.
pub fn connect(target: &PgTarget) -> Result<Client, PgError> {
    let mut config = postgres::Config::new();
    config
        .user(&target.user)
        .host(&target.host)
        .port(target.port)
        .dbname(&target.dbname)
        .application_name(target.application_name.as_deref().unwrap_or("sharecache"))
        .connect_timeout(std::time::Duration::from_secs(10))
        .ssl_mode(match target.sslmode {
            SslMode::Disable => ClientSslMode::Disable,
            SslMode::Prefer => ClientSslMode::Prefer,
            SslMode::Require => ClientSslMode::Require,
        });
    if let Some(password) = &target.password {
        config.password(password.expose());
    }
    let tls = TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build()
        .map_err(|e| PgError::Unsupported(format!("the platform's TLS cannot start: {e}")))?;
    let mut client = config.connect(MakeTlsConnector::new(tls))?;
    client.batch_execute(SESSION)?;
    Ok(client)
}
