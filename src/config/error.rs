//! What can go wrong with a config file, worded for the person who has to fix it.

use std::path::{Path, PathBuf};

use super::schema;

/// Why a config could not be loaded, validated or edited.
///
/// Every message names the file and the key, and says what to do:
///
/// ```
/// use std::path::Path;
/// use sharecache::config::{Config, ConfigError};
///
/// let yaml = "database:\n  path: //server/share/app.db\n  sync_interval: 0\n";
/// let err = Config::from_yaml_str(yaml, Path::new("config.yaml"), Path::new("/etc/app"))
///     .unwrap_err();
/// assert!(matches!(err, ConfigError::InvalidValue { .. }));
/// assert_eq!(
///     err.to_string(),
///     "config.yaml: database.sync_interval: must be a positive number of seconds \
///      (at most 604800), got 0 (line 3; example: `sync_interval: 30`)"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}", read_message(path, source))]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not valid YAML, or not shaped like a config (empty, not a mapping); the message includes
    /// the line and column where available.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// A key the config does not know (a typo, or a key in the wrong section).
    #[error(
        "{}: unknown key `{key}`{}; the keys allowed here are: {expected}",
        path.display(),
        did_you_mean(key, expected)
    )]
    UnknownKey {
        /// The config file.
        path: PathBuf,
        /// The full key path, e.g. `database.sync_intervall` (or `databse` at the top level).
        key: String,
        /// The valid keys at that level, comma-separated.
        expected: String,
    },
    /// A known key with a bad value.
    #[error("{}: {key}: {message}", path.display())]
    InvalidValue {
        /// The config file.
        path: PathBuf,
        /// The full key path, e.g. `sync.batch_size`.
        key: String,
        /// What is allowed, the value found, its line and an example.
        message: String,
    },
    /// A required key is missing (`database.path`).
    #[error("{}: required key `{key}` is missing; {}", path.display(), missing_hint(key))]
    MissingKey {
        /// The config file.
        path: PathBuf,
        /// The full key path.
        key: String,
    },
    /// A valid setting this build cannot act on (a PostgreSQL URL before the backend exists).
    #[error("{}: {key}: {message}", path.display())]
    Unsupported {
        /// The config file (empty when built in code).
        path: PathBuf,
        /// The full key path.
        key: String,
        /// What is missing and what to do.
        message: String,
    },
    /// `config set` was given a key it cannot change, or a short name matching several keys.
    #[error(
        "`{key}` is not a setting `config set` can change{}; use one of: {expected} \
         (the part after the dot is enough, e.g. `sync_interval`)",
        did_you_mean(key, expected)
    )]
    UnknownSetting {
        /// The key as given.
        key: String,
        /// The settable keys, comma-separated.
        expected: String,
    },
    /// Writing the edited config failed; the file is unchanged.
    #[error("{}: cannot write the config file; it was left unchanged", path.display())]
    Write {
        /// The config file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn read_message(path: &Path, source: &std::io::Error) -> String {
    if source.kind() == std::io::ErrorKind::NotFound {
        format!(
            "{}: config file not found; pass --config <file> or set SHARECACHE_CONFIG, \
             or start from the sample config.yaml",
            path.display()
        )
    } else {
        format!("{}: cannot read the config file", path.display())
    }
}

fn did_you_mean(key: &str, expected: &str) -> String {
    let candidates: Vec<&str> = expected.split(", ").collect();
    schema::suggest(key, &candidates)
        .map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

fn missing_hint(key: &str) -> String {
    match key.split_once('.') {
        Some((section, name)) => {
            let example = schema::example(key).unwrap_or(name);
            format!("add `{example}` under `{section}:`")
        }
        None => format!("add a `{key}:` section"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> PathBuf {
        PathBuf::from("conf/app.yaml")
    }

    #[test]
    fn missing_file_says_how_to_point_at_one() {
        let err = ConfigError::Read {
            path: path(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let msg = err.to_string();
        assert!(
            msg.starts_with("conf/app.yaml: config file not found"),
            "{msg}"
        );
        assert!(
            msg.contains("--config") && msg.contains("SHARECACHE_CONFIG"),
            "{msg}"
        );
    }

    #[test]
    fn read_and_write_errors_expose_the_io_error_as_source() {
        use std::error::Error as _;
        let err = ConfigError::Write {
            path: path(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(err.source().is_some());
        assert!(err.to_string().contains("left unchanged"), "{err}");
    }

    #[test]
    fn unknown_key_suggests_the_closest_valid_key() {
        let err = ConfigError::UnknownKey {
            path: path(),
            key: "database.sync_intervall".into(),
            expected: "path, sync_interval, enable_cache, cache_directory".into(),
        };
        assert_eq!(
            err.to_string(),
            "conf/app.yaml: unknown key `database.sync_intervall` (did you mean `sync_interval`?); \
             the keys allowed here are: path, sync_interval, enable_cache, cache_directory"
        );
    }

    #[test]
    fn missing_key_shows_an_example_line() {
        let err = ConfigError::MissingKey {
            path: path(),
            key: "database.path".into(),
        };
        assert_eq!(
            err.to_string(),
            "conf/app.yaml: required key `database.path` is missing; \
             add `path: //server/share/app.db` under `database:`"
        );
    }
}
