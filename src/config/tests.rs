//! Loading and validating whole config files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const ORIGIN: &str = "conf/site.yaml";
const BASE: &str = "/etc/sharecache";

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str(yaml, Path::new(ORIGIN), Path::new(BASE))
}

fn with_db(extra: &str) -> String {
    format!("database:\n  path: //server/share/app.db\n{extra}")
}

/// The error for `yaml`, checked to name the file and `key`; returns its message.
fn error_naming(yaml: &str, key: &str) -> (ConfigError, String) {
    let err = parse(yaml).expect_err(yaml);
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{ORIGIN}: ")), "no file in: {msg}");
    assert!(msg.contains(key), "no `{key}` in: {msg}");
    (err, msg)
}

#[test]
fn defaults_apply_when_only_the_path_is_given() {
    let config = parse(&with_db("")).unwrap();
    let expected = Config::defaults(PathBuf::from("//server/share/app.db"), Some(ORIGIN.into()));
    assert_eq!(config, expected);
    assert_eq!(config.sync_interval, Duration::from_secs(30));
    assert_eq!(config.enable_cache, EnableCache::Auto);
    assert_eq!(config.batch_size, 500);
    assert_eq!(config.max_clock_drift, Duration::from_secs(300));
    assert_eq!(config.busy_timeout, Duration::from_millis(5000));
    assert_eq!(config.lock_retries, 5);
    assert_eq!(config.lease_ttl, Duration::from_secs(30));
    assert!(config.background);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(config.cache_directory, paths::default_cache_dir());
}

#[test]
fn every_key_is_read_into_its_field() {
    let yaml = "database:\n  path: /srv/app.db\n  sync_interval: 2.5\n  enable_cache: false\n  \
                cache_directory: /var/cache/sc\nsync:\n  batch_size: 20\n  max_clock_drift: 60\n  \
                busy_timeout_ms: 250\n  lock_retries: 0\n  lease_ttl: 12\n  background: false\n  \
                shutdown_timeout: 0\n";
    let config = parse(yaml).unwrap();
    assert_eq!(config.remote_path, Path::new("/srv/app.db"));
    assert_eq!(config.sync_interval, Duration::from_millis(2500));
    assert_eq!(config.enable_cache, EnableCache::Off);
    assert_eq!(config.cache_directory, Path::new("/var/cache/sc"));
    assert_eq!(config.batch_size, 20);
    assert_eq!(config.max_clock_drift, Duration::from_secs(60));
    assert_eq!(config.busy_timeout, Duration::from_millis(250));
    assert_eq!(config.lock_retries, 0);
    assert_eq!(config.lease_ttl, Duration::from_secs(12));
    assert!(!config.background);
    assert_eq!(config.shutdown_timeout, Duration::ZERO);
}

#[test]
fn empty_optional_values_and_sections_mean_defaults() {
    let config = parse(&with_db("  sync_interval:\n  cache_directory: ~\nsync:\n")).unwrap();
    assert_eq!(config.sync_interval, Duration::from_secs(30));
    assert_eq!(config.cache_directory, paths::default_cache_dir());
}

#[test]
fn enable_cache_accepts_auto_true_false_in_any_case() {
    for (written, mode) in [
        ("auto", EnableCache::Auto),
        ("AUTO", EnableCache::Auto),
        ("true", EnableCache::On),
        ("True", EnableCache::On),
        ("false", EnableCache::Off),
        ("'false'", EnableCache::Off),
    ] {
        let config = parse(&with_db(&format!("  enable_cache: {written}\n"))).unwrap();
        assert_eq!(config.enable_cache, mode, "{written}");
    }
}

#[test]
fn tilde_in_cache_directory_expands_to_home() {
    let home = directories::BaseDirs::new()
        .unwrap()
        .home_dir()
        .to_path_buf();
    let config = parse(&with_db("  cache_directory: ~/.sharecache\n")).unwrap();
    assert_eq!(config.cache_directory, home.join(".sharecache"));
}

#[test]
fn relative_paths_resolve_against_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        "database:\n  path: data/app.db\n  cache_directory: ./cache\n",
    )
    .unwrap();
    assert_ne!(
        std::env::current_dir().unwrap(),
        dir.path(),
        "the test needs cwd elsewhere"
    );
    let config = Config::load(&file).unwrap();
    assert_eq!(config.remote_path, dir.path().join("data").join("app.db"));
    assert_eq!(config.cache_directory, dir.path().join("cache"));
    assert_eq!(config.source.as_deref(), Some(file.as_path()));
}

#[test]
fn for_remote_resolves_relative_paths_against_the_current_directory() {
    let config = Config::for_remote("app.db");
    assert_eq!(
        config.remote_path,
        std::env::current_dir().unwrap().join("app.db")
    );
    assert_eq!(config.source, None);
}

#[cfg(not(windows))]
#[test]
fn unc_remote_paths_are_normalised_to_forward_slashes() {
    let config = parse("database:\n  path: \\\\server\\share\\dir\\app.db\n").unwrap();
    assert_eq!(config.remote_path, Path::new("//server/share/dir/app.db"));
    assert_eq!(
        Config::for_remote(r"\\nas\x\a.db").remote_path,
        Path::new("//nas/x/a.db")
    );
}

#[test]
fn zero_sync_interval_is_rejected_with_key_value_and_example() {
    let (err, msg) = error_naming(&with_db("  sync_interval: 0\n"), "database.sync_interval");
    assert!(
        matches!(err, ConfigError::InvalidValue { ref key, .. } if key == "database.sync_interval")
    );
    assert!(
        msg.contains("positive number of seconds") && msg.contains("got 0"),
        "{msg}"
    );
    assert!(
        msg.contains("line 3") && msg.contains("example: `sync_interval: 30`"),
        "{msg}"
    );
}

#[test]
fn bad_durations_are_rejected() {
    for (value, shown) in [
        ("\"abc\"", "got \"abc\""),
        ("abc", "got \"abc\""),
        ("-5", "got -5"),
        ("30s", "got \"30s\""),
        (".inf", "got .inf"),
        ("[30]", "got a list"),
        ("700000", "got 700000"),
    ] {
        let (_, msg) = error_naming(
            &with_db(&format!("  sync_interval: {value}\n")),
            "database.sync_interval",
        );
        assert!(msg.contains(shown), "{value}: {msg}");
    }
}

#[test]
fn quoted_numbers_get_a_hint_to_remove_the_quotes() {
    let (_, msg) = error_naming(&with_db("sync:\n  lease_ttl: '30'\n"), "sync.lease_ttl");
    assert!(
        msg.contains("got \"30\"") && msg.contains("remove the quotes"),
        "{msg}"
    );
}

#[test]
fn out_of_range_or_fractional_counts_are_rejected() {
    for value in ["-3", "0", "1.5", "100001", "many"] {
        let (err, msg) = error_naming(
            &with_db(&format!("sync:\n  batch_size: {value}\n")),
            "sync.batch_size",
        );
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{value}");
        assert!(
            msg.contains("whole number from 1 to 100000"),
            "{value}: {msg}"
        );
    }
    assert_eq!(
        parse(&with_db("sync:\n  batch_size: 1e3\n"))
            .unwrap()
            .batch_size,
        1000
    );
}

#[test]
fn enable_cache_rejects_anything_but_auto_true_false() {
    for value in ["maybe", "yes", "on", "1"] {
        let (_, msg) = error_naming(
            &with_db(&format!("  enable_cache: {value}\n")),
            "database.enable_cache",
        );
        assert!(
            msg.contains("must be auto, true or false"),
            "{value}: {msg}"
        );
    }
}

#[test]
fn background_must_be_a_boolean() {
    let (_, msg) = error_naming(&with_db("sync:\n  background: yes\n"), "sync.background");
    assert!(msg.contains("must be true or false, got \"yes\""), "{msg}");
}

#[test]
fn unknown_nested_key_names_its_section_and_the_valid_keys() {
    let (err, msg) = error_naming(
        &with_db("  sync_intervall: 10\n"),
        "database.sync_intervall",
    );
    let ConfigError::UnknownKey { key, expected, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(key, "database.sync_intervall");
    assert_eq!(
        expected,
        "path, sync_interval, enable_cache, schema, password_file, cache_directory"
    );
    assert!(msg.contains("did you mean `sync_interval`?"), "{msg}");
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let (err, msg) = error_naming("databse:\n  path: x\n", "databse");
    assert!(
        matches!(&err, ConfigError::UnknownKey { expected, .. } if expected == "database, sync")
    );
    assert!(msg.contains("did you mean `database`?"), "{msg}");
}

#[test]
fn key_in_the_wrong_section_points_to_the_right_one() {
    let (_, msg) = error_naming(&with_db("  batch_size: 10\n"), "database.batch_size");
    assert!(msg.contains("did you mean `sync.batch_size`?"), "{msg}");
}

#[test]
fn missing_path_is_a_missing_key() {
    let (err, msg) = error_naming("database:\n  sync_interval: 5\n", "database.path");
    assert!(matches!(err, ConfigError::MissingKey { .. }), "{err:?}");
    assert!(
        msg.contains("add `path: //server/share/app.db` under `database:`"),
        "{msg}"
    );
    let (err, _) = error_naming("sync:\n  batch_size: 5\n", "database.path");
    assert!(matches!(err, ConfigError::MissingKey { .. }), "{err:?}");
}

#[test]
fn empty_path_is_rejected() {
    for value in ["''", "\"  \"", "", "~"] {
        let (err, msg) = error_naming(&format!("database:\n  path: {value}\n"), "database.path");
        assert!(
            matches!(err, ConfigError::InvalidValue { .. }),
            "{value}: {err:?}"
        );
        assert!(msg.contains("must not be empty"), "{value}: {msg}");
    }
}

#[test]
fn numeric_path_must_be_quoted() {
    let (_, msg) = error_naming("database:\n  path: 2024\n", "database.path");
    assert!(
        msg.contains("must be a path, got 2024 (line 2, quote it if that is the name"),
        "{msg}"
    );
    assert_eq!(
        parse("database:\n  path: '2024'\n").unwrap().remote_path,
        Path::new(BASE).join("2024")
    );
}

#[test]
fn malformed_yaml_is_a_parse_error_with_line_and_column() {
    let (err, msg) = error_naming("database:\n  path: \"unterminated\n", "line 2, column 9");
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    assert!(msg.contains("invalid YAML"), "{msg}");
}

#[test]
fn duplicate_keys_are_a_parse_error_naming_the_key() {
    let (_, msg) = error_naming(&with_db("  path: //other/x.db\n"), "`path`");
    assert!(msg.contains("line 3"), "{msg}");
}

#[test]
fn empty_or_comment_only_file_is_a_parse_error() {
    for text in ["", "\n\n", "# nothing yet\n", "---\n"] {
        let (err, msg) = error_naming(text, "database:");
        assert!(
            matches!(err, ConfigError::Parse { .. }),
            "{text:?}: {err:?}"
        );
        assert!(msg.contains("no settings"), "{msg}");
    }
}

#[test]
fn non_mapping_documents_are_parse_errors() {
    for (text, shown) in [
        ("- a\n- b\n", "got a list"),
        ("hello\n", "got \"hello\""),
        ("42\n", "got 42"),
    ] {
        let (err, msg) = error_naming(text, "database:");
        assert!(matches!(err, ConfigError::Parse { .. }), "{text:?}");
        assert!(msg.contains(shown), "{msg}");
    }
}

#[test]
fn a_section_that_is_not_a_mapping_is_rejected() {
    let (err, msg) = error_naming(&with_db("sync: 5\n"), "sync");
    assert!(
        matches!(&err, ConfigError::InvalidValue { key, .. } if key == "sync"),
        "{err:?}"
    );
    assert!(msg.contains("indented `key: value` lines, got 5"), "{msg}");
}

#[test]
fn unreadable_file_is_a_read_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: config file not found", missing.display()))
    );
}

#[test]
fn to_yaml_parses_back_to_an_equal_config() {
    let mut config = Config::for_remote("//server/share/app.db");
    config.sync_interval = Duration::from_millis(2500);
    config.enable_cache = EnableCache::On;
    config.cache_directory = PathBuf::from("/var/cache/it's here #1");
    config.batch_size = 42;
    config.max_clock_drift = Duration::new(1, 5);
    config.busy_timeout = Duration::from_millis(1);
    config.lock_retries = 9;
    config.lease_ttl = Duration::from_secs(7);
    config.background = false;
    config.shutdown_timeout = Duration::ZERO;
    config.source = Some(PathBuf::from("/etc/x.yaml"));
    let yaml = config.to_yaml();
    let again = parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(
        Config {
            source: config.source.clone(),
            ..again
        },
        config,
        "{yaml}"
    );
}

#[test]
fn to_yaml_round_trips_the_defaults() {
    let config = parse(&with_db("")).unwrap();
    assert_eq!(parse(&config.to_yaml()).unwrap(), config);
}

#[test]
fn sample_config_loads_and_documents_the_defaults() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml");
    let config = Config::load(&sample).unwrap_or_else(|e| panic!("{e}"));
    let home = directories::BaseDirs::new()
        .unwrap()
        .home_dir()
        .to_path_buf();
    let expected = Config {
        cache_directory: home.join(".sharecache"),
        // `load` makes the path absolute: the same path on Unix; on Windows (under Wine, where
        // the manifest dir is a Unix path) it gains the current drive.
        ..Config::defaults(
            PathBuf::from("//server/share/app.db"),
            Some(std::path::absolute(&sample).unwrap()),
        )
    };
    assert_eq!(config, expected);
}

#[test]
fn sample_config_documents_every_key() {
    let sample = include_str!("../../config.yaml");
    for spec in schema::KEYS {
        let line = format!("\n  {}:", spec.name());
        assert!(sample.contains(&line), "{} is not in the sample", spec.path);
    }
}

#[test]
fn settable_keys_are_exactly_the_known_keys() {
    let mut settable: Vec<&str> = SETTABLE_KEYS.to_vec();
    let mut known: Vec<&str> = schema::KEYS.iter().map(|spec| spec.path).collect();
    settable.sort_unstable();
    known.sort_unstable();
    assert_eq!(settable, known);
}

#[test]
fn locate_prefers_cli_then_env_then_the_default_file() {
    let cli = Path::new("/cli.yaml");
    assert_eq!(locate_with(Some(cli), Some("/env.yaml".into())), cli);
    assert_eq!(
        locate_with(None, Some("/env.yaml".into())),
        Path::new("/env.yaml")
    );
    assert_eq!(locate_with(None, Some("".into())), Path::new("config.yaml"));
    assert_eq!(locate_with(None, None), Path::new("config.yaml"));
}

/// The only test touching the process environment (tests run on threads of one process).
#[test]
fn locate_reads_sharecache_config_from_the_environment() {
    let before = std::env::var_os(CONFIG_ENV);
    // SAFETY: no other test in this crate reads or writes SHARECACHE_CONFIG, and this test
    // restores it before returning.
    unsafe { std::env::set_var(CONFIG_ENV, "/from/env.yaml") };
    let from_env = Config::locate(None);
    let from_cli = Config::locate(Some(Path::new("cli.yaml")));
    unsafe { std::env::set_var(CONFIG_ENV, "") };
    let when_empty = Config::locate(None);
    match before {
        Some(value) => unsafe { std::env::set_var(CONFIG_ENV, value) },
        None => unsafe { std::env::remove_var(CONFIG_ENV) },
    }
    assert_eq!(from_env, Path::new("/from/env.yaml"));
    assert_eq!(from_cli, Path::new("cli.yaml"));
    assert_eq!(when_empty, Path::new("config.yaml"));
}

#[test]
fn enable_cache_serialises_as_yaml_writes_it() {
    assert_eq!(
        serde_saphyr::to_string(&EnableCache::Auto).unwrap().trim(),
        "auto"
    );
    assert_eq!(
        serde_saphyr::to_string(&EnableCache::On).unwrap().trim(),
        "true"
    );
    let modes: Vec<EnableCache> = serde_saphyr::from_str("[auto, true, false]").unwrap();
    assert_eq!(
        modes,
        [EnableCache::Auto, EnableCache::On, EnableCache::Off]
    );
    assert!(serde_saphyr::from_str::<EnableCache>("maybe").is_err());
}

/// The README's Windows example loads as written, and its commented alternative spellings of the
/// UNC path lead to the same cache (on Windows and, for UNC paths, on Linux too).
#[test]
fn the_readme_windows_example_loads_and_its_unc_spellings_share_one_cache() {
    let readme = include_str!("../../README.md");
    let windows = &readme[readme.find("## Windows").unwrap()..];
    let start = windows.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &windows[start..start + windows[start..].find("```").unwrap()];
    let config = parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(config.enable_cache, EnableCache::Auto);
    let spellings: Vec<String> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# path: "))
        .map(|p| p.split_whitespace().next().unwrap().trim_matches('\''))
        .filter(|p| p.starts_with(['\\', '/']))
        .map(|p| {
            parse(&format!("database:\n  path: '{p}'\n"))
                .unwrap()
                .remote_path
        })
        .map(|p| crate::platform::unc::cache_key(&p))
        .collect();
    assert_eq!(spellings.len(), 2, "{yaml}");
    for key in &spellings {
        assert_eq!(key, &crate::platform::unc::cache_key(&config.remote_path));
    }
}
