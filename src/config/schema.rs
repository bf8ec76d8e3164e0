//! The keys a config file may hold, and the checks that turn a parsed file into a [`Config`].
//!
//! One table, [`KEYS`], drives validation, the "allowed keys" lists in errors, `config set` and
//! the examples in messages, so a new setting is added in one place (plus its [`Config`] field).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::postgres::{self, PgTarget};
use super::yaml::{self, Node, SNode};
use super::{Config, ConfigError, EnableCache, paths};

/// Upper bound for every setting in seconds: a week. Larger values are typos (milliseconds
/// written as seconds) and would overflow deadline arithmetic.
pub(crate) const MAX_SECONDS: u64 = 7 * 24 * 60 * 60;
/// Upper bound for `sync.busy_timeout_ms`: ten minutes.
pub(crate) const MAX_MILLIS: u64 = 10 * 60 * 1000;

/// The top-level sections, in file order.
pub(crate) const SECTIONS: &[&str] = &["database", "sync"];

/// What a key's value must be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A path; `required` ones must be present and non-empty.
    Path { required: bool },
    /// Seconds, whole or fractional, up to [`MAX_SECONDS`]; zero only when `allow_zero`.
    Seconds { allow_zero: bool },
    /// Whole milliseconds, 0 to [`MAX_MILLIS`].
    Millis,
    /// A whole number in `min..=max`.
    Count { min: u64, max: u64 },
    /// `true` or `false`.
    Bool,
    /// `auto`, `true` or `false`.
    EnableCache,
    /// A PostgreSQL identifier (any text of 1 to 63 bytes; it is quoted where used).
    Identifier,
}

/// One key of the config file.
#[derive(Debug)]
pub(crate) struct KeySpec {
    /// `section.name`.
    pub(crate) path: &'static str,
    pub(crate) kind: Kind,
    /// A correct line, shown in error messages.
    pub(crate) example: &'static str,
}

impl KeySpec {
    pub(crate) fn section(&self) -> &'static str {
        self.path
            .split_once('.')
            .map_or(self.path, |(section, _)| section)
    }

    pub(crate) fn name(&self) -> &'static str {
        self.path
            .split_once('.')
            .map_or(self.path, |(_, name)| name)
    }
}

/// Every key, in the order of the sample config.
pub(crate) const KEYS: &[KeySpec] = &[
    KeySpec {
        path: "database.path",
        kind: Kind::Path { required: true },
        example: "path: //server/share/app.db",
    },
    KeySpec {
        path: "database.sync_interval",
        kind: Kind::Seconds { allow_zero: false },
        example: "sync_interval: 30",
    },
    KeySpec {
        path: "database.enable_cache",
        kind: Kind::EnableCache,
        example: "enable_cache: auto",
    },
    KeySpec {
        path: "database.schema",
        kind: Kind::Identifier,
        example: "schema: public",
    },
    KeySpec {
        path: "database.password_file",
        kind: Kind::Path { required: false },
        example: "password_file: ~/.sharecache/pg-password",
    },
    KeySpec {
        path: "database.cache_directory",
        kind: Kind::Path { required: false },
        example: "cache_directory: ~/.sharecache",
    },
    KeySpec {
        path: "sync.batch_size",
        kind: Kind::Count {
            min: 1,
            max: 100_000,
        },
        example: "batch_size: 500",
    },
    KeySpec {
        path: "sync.max_clock_drift",
        kind: Kind::Seconds { allow_zero: false },
        example: "max_clock_drift: 300",
    },
    KeySpec {
        path: "sync.busy_timeout_ms",
        kind: Kind::Millis,
        example: "busy_timeout_ms: 5000",
    },
    KeySpec {
        path: "sync.lock_retries",
        kind: Kind::Count { min: 0, max: 1000 },
        example: "lock_retries: 5",
    },
    KeySpec {
        path: "sync.lease_ttl",
        kind: Kind::Seconds { allow_zero: false },
        example: "lease_ttl: 30",
    },
    KeySpec {
        path: "sync.background",
        kind: Kind::Bool,
        example: "background: true",
    },
    KeySpec {
        path: "sync.shutdown_timeout",
        kind: Kind::Seconds { allow_zero: true },
        example: "shutdown_timeout: 10",
    },
];

/// The spec of a full key path.
pub(crate) fn spec(path: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|spec| spec.path == path)
}

/// The example line of a full key path.
pub(crate) fn example(path: &str) -> Option<&'static str> {
    spec(path).map(|spec| spec.example)
}

/// The key names of a section, comma-separated.
fn names_in(section: &str) -> String {
    let names: Vec<&str> = KEYS
        .iter()
        .filter(|spec| spec.section() == section)
        .map(KeySpec::name)
        .collect();
    names.join(", ")
}

/// The most likely intended key for a misspelt or misplaced `key`, among `candidates`.
pub(crate) fn suggest(key: &str, candidates: &[&str]) -> Option<String> {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    // The right name in the wrong section (`database.batch_size`).
    if let Some(spec) = KEYS
        .iter()
        .find(|spec| spec.name() == leaf && spec.path != key)
    {
        return Some(spec.path.to_owned());
    }
    let lower = leaf.to_lowercase();
    candidates
        .iter()
        .filter_map(|candidate| {
            let name = candidate.rsplit('.').next().unwrap_or(candidate);
            let distance = edit_distance(&lower, name);
            (name != leaf && distance <= 2.max(name.len() / 5)).then_some((distance, *candidate))
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate.to_owned())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// A checked value, ready to be stored in its [`Config`] field.
#[derive(Debug)]
enum Value {
    Path(PathBuf),
    Duration(Duration),
    Count(u64),
    Bool(bool),
    EnableCache(EnableCache),
    Postgres(Box<PgTarget>),
    Text(String),
}

/// Parse and validate config text. See [`Config::from_yaml_str`].
pub(crate) fn build(text: &str, origin: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
    let parse_error = |message: String| ConfigError::Parse {
        path: origin.to_path_buf(),
        message,
    };
    let root = yaml::parse(text)
        .map_err(|err| parse_error(format!("invalid YAML: {}", yaml::error_message(&err))))?;
    let sections = match &root.value {
        Node::Map(entries) => entries,
        Node::Null => {
            return Err(parse_error(
                "the file holds no settings; it needs at least `database:` with \
                 `path: //server/share/app.db` under it (see the sample config.yaml)"
                    .to_owned(),
            ));
        }
        _ => {
            return Err(parse_error(format!(
                "expected the sections `database:` and `sync:` at the top level, got {} \
                 (line {})",
                yaml::describe(text, &root),
                root.referenced.line()
            )));
        }
    };

    let mut config = Config::defaults(PathBuf::new(), Some(origin.to_path_buf()));
    let mut has_remote = false;
    for (section_key, section) in sections {
        let section_name = yaml::key_name(text, section_key);
        if !SECTIONS.contains(&section_name.as_str()) {
            return Err(ConfigError::UnknownKey {
                path: origin.to_path_buf(),
                key: section_name,
                expected: SECTIONS.join(", "),
            });
        }
        let entries = match &section.value {
            Node::Map(entries) => entries.as_slice(),
            Node::Null => &[],
            _ => {
                return Err(ConfigError::InvalidValue {
                    path: origin.to_path_buf(),
                    message: format!(
                        "must hold settings as indented `key: value` lines, got {} (line {})",
                        yaml::describe(text, section),
                        section.referenced.line()
                    ),
                    key: section_name,
                });
            }
        };
        for (key, value) in entries {
            let full = format!("{section_name}.{}", yaml::key_name(text, key));
            let Some(spec) = spec(&full) else {
                return Err(ConfigError::UnknownKey {
                    path: origin.to_path_buf(),
                    key: full,
                    expected: names_in(&section_name),
                });
            };
            let checked = check(text, spec, value, base_dir).map_err(|message| {
                ConfigError::InvalidValue {
                    path: origin.to_path_buf(),
                    key: full.clone(),
                    message,
                }
            })?;
            if let Some(checked) = checked {
                has_remote |= spec.path == "database.path";
                apply(&mut config, spec.path, checked);
            }
        }
    }
    if !has_remote {
        return Err(ConfigError::MissingKey {
            path: origin.to_path_buf(),
            key: "database.path".to_owned(),
        });
    }
    finish_postgres(config, std::env::var("PGPASSWORD").ok()).map_err(|(key, message)| {
        ConfigError::InvalidValue {
            path: origin.to_path_buf(),
            key: key.to_owned(),
            message,
        }
    })
}

/// The keys that only a PostgreSQL remote reads are refused for a share; a PostgreSQL target
/// gets its password (see [`postgres::with_password`]).
fn finish_postgres(
    mut config: Config,
    pgpassword: Option<String>,
) -> Result<Config, (&'static str, String)> {
    match config.postgres.take() {
        None => {
            let only_pg = "applies only when database.path is a postgres:// URL; remove it";
            if config.password_file.is_some() {
                return Err(("database.password_file", only_pg.to_owned()));
            }
            if config.schema != super::DEFAULT_SCHEMA {
                return Err(("database.schema", only_pg.to_owned()));
            }
        }
        Some(target) => {
            let target = postgres::with_password(target, config.password_file.clone(), pgpassword)
                .map_err(|message| ("database.password_file", message))?;
            config.postgres = Some(target);
        }
    }
    Ok(config)
}

/// Check one value against its spec. `Ok(None)`: left empty, the default applies.
fn check(
    text: &str,
    spec: &KeySpec,
    node: &SNode,
    base_dir: &Path,
) -> Result<Option<Value>, String> {
    let bad = |rule: &str| {
        let got = yaml::describe(text, node);
        let hint = match (&node.value, spec.kind) {
            (Node::Int(_) | Node::Float(_) | Node::Bool(_), Kind::Path { .. }) => {
                ", quote it if that is the name"
            }
            (Node::Str(_), Kind::Path { .. }) => "",
            (Node::Str(s), _)
                if s.trim().parse::<f64>().is_ok()
                    || ["true", "false"].contains(&s.to_ascii_lowercase().as_str()) =>
            {
                ", remove the quotes"
            }
            _ => "",
        };
        let line = node.referenced.line();
        Err(format!(
            "{rule}, got {got} (line {line}{hint}; example: `{}`)",
            spec.example
        ))
    };
    let number = match node.value {
        Node::Int(i) => Some(i as f64),
        Node::Float(f) => Some(f),
        _ => None,
    };
    let whole = |min: u64, max: u64| match node.value {
        Node::Int(i) => u64::try_from(i).ok().filter(|n| (min..=max).contains(n)),
        Node::Float(f) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => Some(f as u64),
        _ => None,
    };
    if matches!(node.value, Node::Null) && !matches!(spec.kind, Kind::Path { required: true }) {
        return Ok(None);
    }
    match spec.kind {
        Kind::Path { .. } => match &node.value {
            Node::Str(s) if spec.path == "database.path" && postgres::is_url(s) => {
                postgres::parse(s)
                    .map(|target| Some(Value::Postgres(Box::new(target))))
                    .map_err(|message| format!("{message} (line {})", node.referenced.line()))
            }
            Node::Str(s) if !s.trim().is_empty() => paths::resolve(s, base_dir)
                .map(|path| Some(Value::Path(path)))
                .map_err(|message| format!("{message} (line {})", node.referenced.line())),
            Node::Str(_) | Node::Null => bad("must not be empty"),
            Node::Seq | Node::Map(_) => bad("must be a single path"),
            _ => bad("must be a path"),
        },
        Kind::Seconds { allow_zero } => {
            let seconds = number.filter(|&x| {
                x.is_finite() && (x > 0.0 || allow_zero && x == 0.0) && x <= MAX_SECONDS as f64
            });
            match seconds.and_then(|x| Duration::try_from_secs_f64(x).ok()) {
                Some(duration) => Ok(Some(Value::Duration(duration))),
                None if allow_zero => bad(&format!(
                    "must be a number of seconds from 0 to {MAX_SECONDS}"
                )),
                None => bad(&format!(
                    "must be a positive number of seconds (at most {MAX_SECONDS})"
                )),
            }
        }
        Kind::Millis => match whole(0, MAX_MILLIS) {
            Some(ms) => Ok(Some(Value::Duration(Duration::from_millis(ms)))),
            None => bad(&format!(
                "must be a whole number of milliseconds from 0 to {MAX_MILLIS}"
            )),
        },
        Kind::Count { min, max } => match whole(min, max) {
            Some(n) => Ok(Some(Value::Count(n))),
            None => bad(&format!("must be a whole number from {min} to {max}")),
        },
        Kind::Bool => match node.value {
            Node::Bool(b) => Ok(Some(Value::Bool(b))),
            _ => bad("must be true or false"),
        },
        Kind::EnableCache => match &node.value {
            Node::Bool(true) => Ok(Some(Value::EnableCache(EnableCache::On))),
            Node::Bool(false) => Ok(Some(Value::EnableCache(EnableCache::Off))),
            Node::Str(s) => match s.parse() {
                Ok(mode) => Ok(Some(Value::EnableCache(mode))),
                Err(_) => bad("must be auto, true or false"),
            },
            _ => bad("must be auto, true or false"),
        },
        Kind::Identifier => match &node.value {
            Node::Str(s) if !s.is_empty() && s.len() <= 63 && !s.contains('\0') => {
                Ok(Some(Value::Text(s.clone())))
            }
            _ => bad("must be a schema name of 1 to 63 bytes"),
        },
    }
}

/// Store a checked value in its field.
fn apply(config: &mut Config, key: &str, value: Value) {
    match (key, value) {
        ("database.path", Value::Path(p)) => {
            config.remote_path = p;
            config.postgres = None;
        }
        ("database.path", Value::Postgres(target)) => {
            config.remote_path = PathBuf::from(target.display_url());
            config.postgres = Some(*target);
        }
        ("database.schema", Value::Text(s)) => config.schema = s,
        ("database.password_file", Value::Path(p)) => config.password_file = Some(p),
        ("database.sync_interval", Value::Duration(d)) => config.sync_interval = d,
        ("database.enable_cache", Value::EnableCache(e)) => config.enable_cache = e,
        ("database.cache_directory", Value::Path(p)) => config.cache_directory = p,
        ("sync.batch_size", Value::Count(n)) => config.batch_size = n as usize,
        ("sync.max_clock_drift", Value::Duration(d)) => config.max_clock_drift = d,
        ("sync.busy_timeout_ms", Value::Duration(d)) => config.busy_timeout = d,
        ("sync.lock_retries", Value::Count(n)) => config.lock_retries = n as u32,
        ("sync.lease_ttl", Value::Duration(d)) => config.lease_ttl = d,
        ("sync.background", Value::Bool(b)) => config.background = b,
        ("sync.shutdown_timeout", Value::Duration(d)) => config.shutdown_timeout = d,
        (key, value) => debug_assert!(false, "KEYS and apply() disagree on {key}: {value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggest_finds_near_misses_and_misplaced_keys() {
        let db = ["path", "sync_interval", "enable_cache", "cache_directory"];
        assert_eq!(
            suggest("database.sync_intervall", &db).as_deref(),
            Some("sync_interval")
        );
        assert_eq!(suggest("database.Path", &db).as_deref(), Some("path"));
        assert_eq!(
            suggest("database.batch_size", &db).as_deref(),
            Some("sync.batch_size")
        );
        assert_eq!(
            suggest("databse", &["database", "sync"]).as_deref(),
            Some("database")
        );
        assert_eq!(suggest("database.colour", &db), None);
    }

    #[test]
    fn every_key_reaches_its_own_field() {
        let base = Config::defaults(PathBuf::from("/r.db"), None);
        for spec in KEYS {
            let value = match spec.kind {
                Kind::Path { .. } => Value::Path(PathBuf::from("/elsewhere")),
                Kind::Seconds { .. } | Kind::Millis => Value::Duration(Duration::from_millis(1234)),
                Kind::Count { .. } => Value::Count(7),
                Kind::Bool => Value::Bool(!base.background),
                Kind::EnableCache => Value::EnableCache(EnableCache::Off),
                Kind::Identifier => Value::Text("sales".into()),
            };
            let mut config = base.clone();
            apply(&mut config, spec.path, value);
            assert_ne!(config, base, "{} changed nothing", spec.path);
        }
    }

    #[test]
    fn section_and_name_split_the_path() {
        let spec = spec("sync.busy_timeout_ms").unwrap();
        assert_eq!((spec.section(), spec.name()), ("sync", "busy_timeout_ms"));
    }
}
