//! Opening a connection from a [`PgTarget`], with the session settings the value mapping needs.

use postgres::{Client, NoTls};

use super::PgError;
use crate::config::{PgTarget, SslMode};

/// Session settings that make text forms of values exact and independent of the server's
/// defaults: ISO dates, UTC for `timestamptz`, and floats printed round-trippably.
const SESSION: &str = "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; \
                       SET IntervalStyle = 'postgres'; SET extra_float_digits = 3";

/// Connects to `target`. TLS is not in this build yet: `sslmode=require` is refused with a clear
/// error instead of connecting in plain text; `prefer` connects without TLS.
pub fn connect(target: &PgTarget) -> Result<Client, PgError> {
    if target.sslmode == SslMode::Require {
        return Err(PgError::Unsupported(
            "sslmode=require: TLS to PostgreSQL is not in this build yet; use sslmode=disable on \
             a trusted network or a tunnel"
                .to_owned(),
        ));
    }
    let mut config = postgres::Config::new();
    config
        .user(&target.user)
        .host(&target.host)
        .port(target.port)
        .dbname(&target.dbname)
        .application_name(target.application_name.as_deref().unwrap_or("sharecache"))
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(password) = &target.password {
        config.password(password.expose());
    }
    let mut client = config.connect(NoTls)?;
    client.batch_execute(SESSION)?;
    Ok(client)
}
