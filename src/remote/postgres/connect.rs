//! Opening a connection from a [`PgTarget`], with TLS as `sslmode` asks and the session settings
//! the value mapping needs.
//!
//! TLS is the platform's (OpenSSL on Linux, SChannel on Windows) through `postgres-native-tls`.
//! `sslmode` has libpq's meaning: `prefer` tries TLS and falls back to plain TCP, `require`
//! insists on TLS. Neither verifies the server's certificate (libpq does not either, without a
//! root certificate): they protect against listening, not against a server impersonated on the
//! network path. `verify-ca` checks that the certificate was signed by `sslrootcert` (a PEM file,
//! or `system`: the platform's trust store), `verify-full` also that it names the URL's host.
//! Unlike libpq, there is no default root file (`~/.postgresql/root.crt`): the URL names it, so
//! the same config means the same check on every desk.

use native_tls::TlsConnector;
use postgres::Client;
use postgres::config::SslMode as ClientSslMode;
use postgres_native_tls::MakeTlsConnector;

use super::PgError;
use crate::config::{PgTarget, RootCert, SslMode};

/// Session settings that make text forms of values exact and independent of the server's
/// defaults: ISO dates, UTC for `timestamptz`, and floats printed round-trippably.
/// READ COMMITTED whatever the server's default: the change log's numbering needs it
/// ([`super::server`]).
const SESSION: &str = "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; \
                       SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; \
                       SET default_transaction_isolation = 'read committed'";

/// The certificate in the PEM file at `path` (`sslrootcert=`).
fn root_certificate(path: &str) -> Result<native_tls::Certificate, PgError> {
    let pem = std::fs::read(path).map_err(|e| {
        PgError::Unsupported(format!(
            "sslrootcert: cannot read {path} ({e}); name the PEM file of the certificate \
             authority that signed the server's certificate"
        ))
    })?;
    native_tls::Certificate::from_pem(&pem).map_err(|e| {
        PgError::Unsupported(format!(
            "sslrootcert: {path} holds no PEM certificate ({e})"
        ))
    })
}

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
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => ClientSslMode::Require,
        });
    if let Some(password) = &target.password {
        config.password(password.expose());
    }
    let mut tls = TlsConnector::builder();
    match (&target.sslrootcert, target.sslmode) {
        (Some(root), mode) if mode.verifies() => {
            if let RootCert::File(path) = root {
                tls.disable_built_in_roots(true)
                    .add_root_certificate(root_certificate(path)?);
            }
            tls.danger_accept_invalid_hostnames(mode == SslMode::VerifyCa);
        }
        _ => {
            tls.danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
    }
    let tls = tls
        .build()
        .map_err(|e| PgError::Unsupported(format!("the platform's TLS cannot start: {e}")))?;
    let mut client = config.connect(MakeTlsConnector::new(tls))?;
    client.batch_execute(SESSION)?;
    Ok(client)
}
