//! Loading, validating and editing `config.yaml`.
//!
//! The config file is the one thing a person edits by hand, often on a machine where nothing
//! else explains what went wrong; so every error names the file and the key (`database.path`,
//! not just "invalid type at line 3") and says what is allowed, and a file with a typo is
//! rejected rather than half-applied. `config set` edits one line of the file and leaves the
//! rest, comments included, exactly as it was.
//!
//! Which file: [`Config::locate`] (`--config`, else `$SHARECACHE_CONFIG`, else
//! `./config.yaml`). What it may contain: the documented sample `config.yaml` at the project
//! root. How paths are read: `~` is the home directory, relative paths are relative to the
//! config file's directory, and a UNC path (`\\server\share\app.db`) is kept on Windows and
//! becomes `//server/share/app.db` elsewhere.
//!
//! ```
//! use std::path::Path;
//! use std::time::Duration;
//! use sharecache::config::{Config, EnableCache};
//!
//! let yaml = "database:\n  path: //server/share/app.db\nsync:\n  batch_size: 200\n";
//! let config = Config::from_yaml_str(yaml, Path::new("config.yaml"), Path::new("/etc/app"))?;
//! assert_eq!(config.remote_path, Path::new("//server/share/app.db"));
//! assert_eq!(config.batch_size, 200);
//! assert_eq!(config.sync_interval, Duration::from_secs(30)); // the default
//! assert_eq!(config.enable_cache, EnableCache::Auto);
//! # Ok::<(), sharecache::config::ConfigError>(())
//! ```

mod edit;
mod error;
mod live;
mod paths;
mod postgres;
#[cfg(test)]
mod postgres_tests;
mod schema;
#[cfg(test)]
mod tests;
mod watch;
mod yaml;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use edit::set_key;
pub use error::ConfigError;
pub(crate) use live::Live;
pub use postgres::{PasswordFrom, PgTarget, RootCert, Secret, SslMode, is_url as is_postgres_url};
pub use watch::{Watch, applies_at_next_start, watch};

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "SHARECACHE_CONFIG";

/// The config file used when neither `--config` nor [`CONFIG_ENV`] names one (in the current
/// directory).
pub const DEFAULT_CONFIG_FILE: &str = "config.yaml";

/// Keys `config set` can change, with their YAML path. [`set_key`] also accepts the part after
/// the dot (`sync_interval`).
pub const SETTABLE_KEYS: &[&str] = &[
    "database.sync_interval",
    "database.enable_cache",
    "database.cache_directory",
    "database.path",
    "database.schema",
    "database.password_file",
    "sync.batch_size",
    "sync.max_clock_drift",
    "sync.busy_timeout_ms",
    "sync.lock_retries",
    "sync.lease_ttl",
    "sync.background",
    "sync.shutdown_timeout",
];

/// The PostgreSQL schema holding the app's tables unless `database.schema` says otherwise.
pub const DEFAULT_SCHEMA: &str = "public";

/// Whether to use the local cache.
///
/// In YAML: `auto`, `true` or `false`.
///
/// ```
/// use sharecache::config::EnableCache;
///
/// assert_eq!("auto".parse::<EnableCache>(), Ok(EnableCache::Auto));
/// assert_eq!("false".parse::<EnableCache>(), Ok(EnableCache::Off));
/// assert!("yes".parse::<EnableCache>().is_err());
/// assert_eq!(EnableCache::On.to_string(), "true");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EnableCache {
    /// Cache when the remote is on a network share, access local files directly (`auto`).
    #[default]
    Auto,
    /// Always use the cache (`true`).
    On,
    /// Never use the cache: every access goes to the remote (`false`).
    Off,
}

impl EnableCache {
    /// The YAML spelling: `auto`, `true` or `false`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnableCache::Auto => "auto",
            EnableCache::On => "true",
            EnableCache::Off => "false",
        }
    }
}

impl fmt::Display for EnableCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`EnableCache`] from text other than `auto`, `true` or `false`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a cache mode: expected auto, true or false")]
pub struct ParseEnableCacheError(pub String);

impl FromStr for EnableCache {
    type Err = ParseEnableCacheError;

    /// `auto`, `true` or `false`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(EnableCache::Auto),
            "true" => Ok(EnableCache::On),
            "false" => Ok(EnableCache::Off),
            _ => Err(ParseEnableCacheError(s.to_owned())),
        }
    }
}

/// Serialized as YAML writes it: the string `auto`, or the booleans `true` / `false`.
impl Serialize for EnableCache {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            EnableCache::Auto => serializer.serialize_str("auto"),
            EnableCache::On => serializer.serialize_bool(true),
            EnableCache::Off => serializer.serialize_bool(false),
        }
    }
}

/// Accepts a boolean, or the strings `auto`, `true`, `false`.
impl<'de> Deserialize<'de> for EnableCache {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = EnableCache;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("auto, true or false")
            }
            fn visit_bool<E>(self, v: bool) -> Result<EnableCache, E> {
                Ok(if v { EnableCache::On } else { EnableCache::Off })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EnableCache, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A validated configuration, with every path resolved and every default applied.
///
/// Build one with [`Config::load`] (a file), [`Config::from_yaml_str`] (text) or
/// [`Config::for_remote`] (defaults, in code); the fields are public for adjusting afterwards.
///
/// ```
/// use std::time::Duration;
/// use sharecache::Config;
///
/// let mut config = Config::for_remote("//server/share/app.db");
/// config.background = false; // tests drive sync by hand
/// assert_eq!(config.lease_ttl, Duration::from_secs(30));
/// assert_eq!(config.source, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The remote database (`database.path`), resolved: `~` expanded, a relative path joined to
    /// the config file's directory, a UNC path `\\server\share\x` kept as written on Windows and
    /// normalised to `//server/share/x` elsewhere. For a PostgreSQL remote: the URL without its
    /// password ([`PgTarget::display_url`]), which names the cache; see [`Config::postgres`].
    pub remote_path: PathBuf,
    /// The PostgreSQL server when `database.path` is a `postgres://` URL; `None` for a share.
    pub postgres: Option<PgTarget>,
    /// Where the app's tables live on a PostgreSQL remote (`database.schema`, default `public`).
    pub schema: String,
    /// A file whose first line is the PostgreSQL password (`database.password_file`).
    pub password_file: Option<PathBuf>,
    /// Time between background syncs (`database.sync_interval`, seconds, default 30).
    pub sync_interval: Duration,
    /// Whether to use the local cache (`database.enable_cache`, default `auto`).
    pub enable_cache: EnableCache,
    /// Where local caches live (`database.cache_directory`, resolved like `remote_path`;
    /// default: the platform cache directory, e.g. `~/.cache/sharecache`).
    pub cache_directory: PathBuf,
    /// Rows per remote transaction (`sync.batch_size`, 1 to 100000, default 500).
    pub batch_size: usize,
    /// Stamps further ahead of the local clock than this are accepted but logged
    /// (`sync.max_clock_drift`, seconds, default 300).
    pub max_clock_drift: Duration,
    /// SQLite busy timeout on the remote (`sync.busy_timeout_ms`, default 5000 ms).
    pub busy_timeout: Duration,
    /// Bounded retries, with jitter, while the remote stays locked (`sync.lock_retries`,
    /// default 5).
    pub lock_retries: u32,
    /// A remote write lease not renewed for this long is stale (`sync.lease_ttl`, seconds,
    /// default 30).
    pub lease_ttl: Duration,
    /// Whether `Cache::open` starts the background sync thread (`sync.background`, default
    /// true).
    pub background: bool,
    /// On shutdown, push pending writes for at most this long (`sync.shutdown_timeout`,
    /// seconds, default 10; 0 skips the final push).
    pub shutdown_timeout: Duration,
    /// Where this config came from (`None` when built in code): the absolute path of the file
    /// for [`Config::load`], the `origin` given to [`Config::from_yaml_str`]. Used in error
    /// messages and for hot reload.
    pub source: Option<PathBuf>,
}

impl Config {
    /// Every default, for an already resolved remote path.
    pub(crate) fn defaults(remote_path: PathBuf, source: Option<PathBuf>) -> Config {
        Config {
            remote_path,
            postgres: None,
            schema: DEFAULT_SCHEMA.to_owned(),
            password_file: None,
            sync_interval: Duration::from_secs(30),
            enable_cache: EnableCache::Auto,
            cache_directory: paths::default_cache_dir(),
            batch_size: 500,
            max_clock_drift: Duration::from_secs(300),
            busy_timeout: Duration::from_millis(5000),
            lock_retries: 5,
            lease_ttl: Duration::from_secs(30),
            background: true,
            shutdown_timeout: Duration::from_secs(10),
            source,
        }
    }

    /// Defaults for a remote path, as if from a config file holding only `database.path`;
    /// a relative path is resolved against the current directory. Nothing is validated.
    ///
    /// ```
    /// use std::path::Path;
    /// use sharecache::Config;
    ///
    /// let config = Config::for_remote("//server/share/app.db");
    /// assert_eq!(config.remote_path, Path::new("//server/share/app.db"));
    /// assert_eq!(config.batch_size, 500);
    /// ```
    pub fn for_remote(remote_path: impl Into<PathBuf>) -> Config {
        let remote_path = remote_path.into();
        // A PostgreSQL URL: its target, password from the URL or $PGPASSWORD. One that does not
        // parse is kept as written, and opening it fails on the share path it is not.
        if let Some(target) = remote_path
            .to_str()
            .filter(|p| postgres::is_url(p))
            .and_then(|p| postgres::parse(p).ok())
            .and_then(|t| postgres::with_password(t, None, std::env::var("PGPASSWORD").ok()).ok())
        {
            let mut config = Config::defaults(PathBuf::from(target.display_url()), None);
            config.postgres = Some(target);
            return config;
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let resolved = match remote_path.to_str() {
            Some(written) => paths::resolve(written, &cwd).unwrap_or_else(|_| remote_path.clone()),
            None => cwd.join(&remote_path),
        };
        Config::defaults(resolved, None)
    }

    /// Load and validate a YAML config file.
    ///
    /// Relative paths in the file are resolved against the file's directory; [`Config::source`]
    /// is the file's absolute path. Errors name the file as given.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sharecache::Config;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("config.yaml");
    /// std::fs::write(&file, "database:\n  path: shared/app.db\n")?;
    ///
    /// let config = Config::load(&file)?;
    /// assert_eq!(config.remote_path, dir.path().join("shared/app.db"));
    /// assert_eq!(config.source.as_deref(), Some(file.as_path()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (absolute, base_dir) = file_and_dir(path);
        let mut config = Config::from_yaml_str(&text, path, &base_dir)?;
        config.source = Some(absolute);
        tracing::debug!(config = %path.display(), remote = %config.remote_path.display(), "config loaded");
        Ok(config)
    }

    /// Parse and validate YAML text. `origin` names the file in errors (and becomes
    /// [`Config::source`]); relative paths resolve against `base_dir`.
    ///
    /// ```
    /// use std::path::Path;
    /// use sharecache::config::{Config, ConfigError};
    ///
    /// let origin = Path::new("site.yaml");
    /// let err = Config::from_yaml_str("databse:\n  path: x\n", origin, Path::new("/etc"))
    ///     .unwrap_err();
    /// assert!(matches!(&err, ConfigError::UnknownKey { key, .. } if key == "databse"));
    /// assert!(err.to_string().starts_with("site.yaml: unknown key `databse` (did you mean `database`?)"));
    /// ```
    pub fn from_yaml_str(
        text: &str,
        origin: &Path,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        schema::build(text, origin, base_dir)
    }

    /// The config file to use: the `--config` value if given, else `$SHARECACHE_CONFIG` if set
    /// and not empty, else `config.yaml` in the current directory.
    ///
    /// ```
    /// use std::path::Path;
    /// use sharecache::Config;
    ///
    /// let cli = Path::new("/etc/sharecache.yaml");
    /// assert_eq!(Config::locate(Some(cli)), cli);
    /// ```
    pub fn locate(cli: Option<&Path>) -> PathBuf {
        locate_with(cli, std::env::var_os(CONFIG_ENV))
    }

    /// Render this config as YAML (for `config show`), with resolved paths and every default
    /// spelled out. Loading the output gives back an equal config (except
    /// [`source`](Config::source)); a path that is not valid UTF-8 is rendered lossily.
    ///
    /// ```
    /// use std::path::Path;
    /// use sharecache::Config;
    ///
    /// let yaml = Config::for_remote("//server/share/app.db").to_yaml();
    /// assert!(yaml.contains("database:\n  path: //server/share/app.db\n  sync_interval: 30\n"));
    /// let again = Config::from_yaml_str(&yaml, Path::new("shown.yaml"), Path::new("/"))?;
    /// assert_eq!(again.batch_size, 500);
    /// # Ok::<(), sharecache::config::ConfigError>(())
    /// ```
    pub fn to_yaml(&self) -> String {
        let path = |p: &Path| yaml::scalar(&p.to_string_lossy(), true);
        let header = match &self.source {
            Some(source) => format!(
                "# resolved from {}\n",
                source.display().to_string().escape_debug()
            ),
            None => String::new(),
        };
        format!(
            "{header}database:\n  path: {}\n{}  sync_interval: {}\n  enable_cache: {}\n  \
             cache_directory: {}\nsync:\n  batch_size: {}\n  max_clock_drift: {}\n  \
             busy_timeout_ms: {}\n  lock_retries: {}\n  lease_ttl: {}\n  background: {}\n  \
             shutdown_timeout: {}\n",
            path(&self.remote_path),
            self.postgres_yaml(),
            seconds(self.sync_interval),
            self.enable_cache,
            path(&self.cache_directory),
            self.batch_size,
            seconds(self.max_clock_drift),
            self.busy_timeout.as_millis(),
            self.lock_retries,
            seconds(self.lease_ttl),
            self.background,
            seconds(self.shutdown_timeout),
        )
    }
}

impl Config {
    /// This config pointed at the PostgreSQL server and database of `url` instead, everything
    /// else kept: `url` is one a cache was made for, as caches record it (without the
    /// password). The password is the URL's, else this config's when it logs in as the same
    /// role, else `$PGPASSWORD`. `None` when `url` is not a PostgreSQL URL that reads.
    pub fn at_server_url(&self, url: &str) -> Option<Config> {
        if !postgres::is_url(url) {
            return None;
        }
        let mut target = postgres::parse(url).ok()?;
        if target.password.is_none() {
            match &self.postgres {
                Some(own) if own.user == target.user && own.password.is_some() => {
                    target.password = own.password.clone();
                    target.password_from = own.password_from.clone();
                }
                _ => {
                    target = postgres::with_password(target, None, std::env::var("PGPASSWORD").ok())
                        .ok()?
                }
            }
        }
        let mut config = self.clone();
        config.remote_path = PathBuf::from(target.display_url());
        config.postgres = Some(target);
        Some(config)
    }

    /// The remote as a SQLite file, for direct mode (the app served from the remote itself); a
    /// PostgreSQL server has none, so a config that asks for direct mode with one is a
    /// `Config`-kind error and nothing treats the URL as a file name.
    pub fn share_path(&self) -> Result<&Path, ConfigError> {
        match &self.postgres {
            None => Ok(&self.remote_path),
            Some(target) => Err(ConfigError::Unsupported {
                path: self.source.clone().unwrap_or_default(),
                key: "database.path".to_owned(),
                message: format!(
                    "{} is a PostgreSQL server, which sharecache always caches (the app works on \
                     a SQLite file, and a server has none to hand it directly); set \
                     enable_cache: auto or true",
                    target.display_url()
                ),
            }),
        }
    }

    /// `config show`'s PostgreSQL lines: the schema, the password file, where the password
    /// comes from (never the password).
    fn postgres_yaml(&self) -> String {
        let Some(target) = &self.postgres else {
            return String::new();
        };
        let mut out = format!("  schema: {}\n", yaml::scalar(&self.schema, true));
        if let Some(file) = &self.password_file {
            out.push_str(&format!(
                "  password_file: {}\n",
                yaml::scalar(&file.to_string_lossy(), true)
            ));
        }
        let from = match &target.password_from {
            PasswordFrom::Nowhere => "none",
            PasswordFrom::Url => "the URL in the config file (not shown)",
            PasswordFrom::File(_) => "password_file",
            PasswordFrom::Env => "PGPASSWORD",
        };
        out.push_str(&format!("  # password: {from}\n"));
        out
    }
}

/// [`Config::locate`] with the environment passed in.
fn locate_with(cli: Option<&Path>, env: Option<OsString>) -> PathBuf {
    match (cli, env) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(value)) if !value.is_empty() => PathBuf::from(value),
        (None, _) => PathBuf::from(DEFAULT_CONFIG_FILE),
    }
}

/// A config file's absolute path and the directory its relative paths resolve against.
fn file_and_dir(path: &Path) -> (PathBuf, PathBuf) {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    (absolute, dir)
}

/// Seconds as an exact decimal: `30`, `0.5`, `2.000000001`.
fn seconds(duration: Duration) -> String {
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        duration.as_secs().to_string()
    } else {
        let decimal = format!("{}.{nanos:09}", duration.as_secs());
        decimal.trim_end_matches('0').to_owned()
    }
}
