//! `database.path` as a PostgreSQL server URL (issue 16): the parts sharecache needs, checked
//! when the config is read, and a password that is never shown.
//!
//! The URL is parsed here, without the client crate, so a build without the `postgres` feature
//! still reads, shows and validates such a config and can say exactly what it lacks. The password
//! comes from the URL, else the `database.password_file` key, else `PGPASSWORD` (the variable
//! libpq and psql read); it lives in a [`Secret`], whose `Debug` prints `***` and which has no
//! `Display`, and the URL kept for display ([`PgTarget::display_url`]) never holds it.

use std::fmt;
use std::path::PathBuf;

/// A password: compared and cloned, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for the one place that hands it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the password came from (shown in `config show` instead of the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFrom {
    /// None anywhere: the server must not ask for one (trust or peer authentication).
    Nowhere,
    /// The URL's `user:password@` part.
    Url,
    /// The `database.password_file` key (first line of the file).
    File(PathBuf),
    /// The `PGPASSWORD` environment variable.
    Env,
}

/// TLS to the server (`sslmode=`), with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it (the default, as in libpq).
    Prefer,
    /// TLS or fail; the certificate is not checked.
    Require,
    /// TLS, and the server's certificate must be signed by `sslrootcert`.
    VerifyCa,
    /// As [`SslMode::VerifyCa`], and the certificate must name the host of the URL.
    VerifyFull,
}

impl SslMode {
    /// The URL spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate is checked.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// What the server's certificate is checked against (`sslrootcert=`, with a `verify-` mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of the certificate authority (or the server's own self-signed certificate).
    File(String),
    /// The platform's trust store (`sslrootcert=system`, as libpq 16 spells it).
    System,
}

/// A PostgreSQL server and database, from a `postgres://` or `postgresql://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// The role to log in as.
    pub user: String,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (default 5432).
    pub port: u16,
    /// The database.
    pub dbname: String,
    /// `sslmode=` (default `prefer`).
    pub sslmode: SslMode,
    /// `sslrootcert=`: set exactly when `sslmode` verifies.
    pub sslrootcert: Option<RootCert>,
    /// `application_name=`, shown in `pg_stat_activity`.
    pub application_name: Option<String>,
    /// The password, if any (see [`PasswordFrom`]).
    pub password: Option<Secret>,
    /// Where [`PgTarget::password`] came from.
    pub password_from: PasswordFrom,
}

impl PgTarget {
    /// The URL without the password: what `config show`, `status` and logs print, and what names
    /// the cache file (one cache per role, server and database).
    pub fn display_url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut url = format!(
            "postgres://{}@{host}:{}/{}?sslmode={}",
            encode(&self.user),
            self.port,
            encode(&self.dbname),
            self.sslmode.as_str()
        );
        match &self.sslrootcert {
            Some(RootCert::File(path)) => {
                url.push_str("&sslrootcert=");
                url.push_str(&encode(path));
            }
            Some(RootCert::System) => url.push_str("&sslrootcert=system"),
            None => {}
        }
        if let Some(name) = &self.application_name {
            url.push_str("&application_name=");
            url.push_str(&encode(name));
        }
        url
    }
}

/// Whether `database.path` is written as a PostgreSQL URL (scheme in any case).
pub fn is_url(path: &str) -> bool {
    let lower = path.trim().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// A URL's parts, the password still in it: `postgres://user[:password]@host[:port]/database
/// [?sslmode=…&application_name=…]`. The error says what is wrong and never repeats the password.
pub(crate) fn parse(url: &str) -> Result<PgTarget, String> {
    const FORM: &str = "write postgres://user[:password]@host[:port]/database[?sslmode=require]";
    let url = url.trim();
    let rest = &url[url.find("://").map(|i| i + 3).ok_or(FORM)?..];
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, dbname) = rest
        .split_once('/')
        .ok_or_else(|| format!("the URL names no database; {FORM}"))?;
    let (userinfo, hostport) = authority
        .rsplit_once('@')
        .ok_or_else(|| format!("the URL names no user (`user@` before the host); {FORM}"))?;
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(Secret(decode(password, "password")?))),
        None => (userinfo, None),
    };
    let user = decode(user, "user name")?;
    if user.is_empty() {
        return Err(format!("the URL's user name is empty; {FORM}"));
    }
    if hostport.contains(',') {
        return Err("several hosts are not supported: name one server".to_owned());
    }
    let (host, port) = split_host_port(hostport)?;
    if host.is_empty() {
        return Err(format!("the URL names no host; {FORM}"));
    }
    let dbname = decode(dbname, "database name")?;
    if dbname.is_empty() || dbname.contains('/') {
        return Err(format!("`{dbname}` is not a database name; {FORM}"));
    }
    let mut target = PgTarget {
        user,
        host,
        port,
        dbname,
        sslmode: SslMode::Prefer,
        sslrootcert: None,
        application_name: None,
        password_from: if password.is_some() {
            PasswordFrom::Url
        } else {
            PasswordFrom::Nowhere
        },
        password,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value, key)?;
        match key {
            "sslmode" => {
                target.sslmode = match value.as_str() {
                    "disable" => SslMode::Disable,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other} is not supported: use disable, prefer, require, \
                             verify-ca or verify-full"
                        ));
                    }
                }
            }
            "sslrootcert" if value.is_empty() => {
                return Err("sslrootcert= names no file".to_owned());
            }
            "sslrootcert" if value == "system" => target.sslrootcert = Some(RootCert::System),
            "sslrootcert" => target.sslrootcert = Some(RootCert::File(value)),
            "application_name" => target.application_name = Some(value),
            "password" | "user" | "host" | "port" | "dbname" => {
                return Err(format!(
                    "`{key}=` in the query is not supported: put it in the URL itself ({FORM})"
                ));
            }
            other => {
                return Err(format!(
                    "unknown URL parameter `{other}`: the ones read are sslmode, sslrootcert and \
                     application_name"
                ));
            }
        }
    }
    match (target.sslmode.verifies(), &target.sslrootcert) {
        (true, None) => {
            return Err(format!(
                "sslmode={} checks the server's certificate against a root certificate: add \
                 sslrootcert=<file> (the PEM of the authority that signed it) or \
                 sslrootcert=system (the platform's trust store)",
                target.sslmode.as_str()
            ));
        }
        (false, Some(_)) => {
            return Err(format!(
                "sslrootcert is read only with sslmode=verify-ca or verify-full (sslmode={} does \
                 not check the certificate)",
                target.sslmode.as_str()
            ));
        }
        _ => {}
    }
    Ok(target)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 host needs its closing `]`")?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => 5432,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("port `{p}` is not a number from 1 to 65535"))?,
    };
    Ok((decode(host, "host")?, port))
}

/// Percent-decoding (`%40` → `@`); `what` names the part in the error.
fn decode(text: &str, what: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!("the URL's {what} has a `%` not followed by two hex digits")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the URL's {what} is not UTF-8 once decoded"))
}

/// Percent-encode what would break the URL's structure.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Attach the password when the URL has none: the file's (first line), else `PGPASSWORD`'s. A URL
/// password and a file both is an error (which one is meant?).
pub(crate) fn with_password(
    mut target: PgTarget,
    file: Option<PathBuf>,
    env: Option<String>,
) -> Result<PgTarget, String> {
    match (&target.password_from, file) {
        (PasswordFrom::Url, Some(_)) => Err("the URL holds a password and \
             database.password_file names one too: keep one (the file keeps it out of the config)"
            .to_owned()),
        (PasswordFrom::Url, None) => Ok(target),
        (_, Some(file)) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read the password file {}: {e}", file.display()))?;
            let line = text.lines().next().unwrap_or("");
            if line.is_empty() {
                return Err(format!("the password file {} is empty", file.display()));
            }
            target.password = Some(Secret(line.to_owned()));
            target.password_from = PasswordFrom::File(file);
            Ok(target)
        }
        (_, None) => {
            if let Some(p) = env.filter(|p| !p.is_empty()) {
                target.password = Some(Secret(p));
                target.password_from = PasswordFrom::Env;
            }
            Ok(target)
        }
    }
}
