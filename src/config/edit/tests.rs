//! `config set`: text edits and the file they are written to.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::{EnableCache, paths};

const SAMPLE: &str = include_str!("../../../config.yaml");

/// `text` with `key` set to `value`, as `set_key` would write it (not validated).
fn edited(text: &str, key: &str, value: &str) -> String {
    let spec = setting(key).unwrap();
    let scalar = yaml::scalar(
        value,
        matches!(spec.kind, Kind::Path { .. } | Kind::Identifier),
    );
    edit_text(text, spec, &scalar, Path::new("config.yaml")).unwrap()
}

/// Check each `(before, key, value, after)` edit.
fn assert_edits(cases: &[(&str, &str, &str, &str)]) {
    for (before, key, value, after) in cases {
        assert_eq!(
            edited(before, key, value),
            *after,
            "setting {key} to {value:?} in {before:?}"
        );
    }
}

/// A temp dir holding `config.yaml` with `text`.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    fs::write(&file, text).unwrap();
    (dir, file)
}

/// The lines of `after` that differ from `before`'s (both must have the same number).
fn changed_lines<'a>(before: &str, after: &'a str) -> Vec<&'a str> {
    assert_eq!(
        before.lines().count(),
        after.lines().count(),
        "lines added or removed:\n{after}"
    );
    before
        .lines()
        .zip(after.lines())
        .filter(|(b, a)| b != a)
        .map(|(_, a)| a)
        .collect()
}

#[test]
fn replacing_a_value_changes_only_its_line() {
    let after = edited(SAMPLE, "sync_interval", "10");
    assert_eq!(changed_lines(SAMPLE, &after), ["  sync_interval: 10"]);
    assert!(after.ends_with('\n'));
}

#[test]
fn a_trailing_comment_keeps_its_column() {
    let text = "sync:\n  batch_size: 500   # rows\n";
    assert_edits(&[
        (
            text,
            "batch_size",
            "5",
            "sync:\n  batch_size: 5     # rows\n",
        ),
        (
            text,
            "batch_size",
            "20000",
            "sync:\n  batch_size: 20000 # rows\n",
        ),
        (
            text,
            "batch_size",
            "1234567",
            "sync:\n  batch_size: 1234567 # rows\n",
        ),
        (
            text,
            "batch_size",
            "",
            "sync:\n  batch_size:       # rows\n",
        ),
    ]);
}

#[test]
fn an_empty_value_is_filled_in_before_its_comment() {
    assert_edits(&[
        (
            "sync:\n  lease_ttl:   # later\n",
            "lease_ttl",
            "10",
            "sync:\n  lease_ttl: 10 # later\n",
        ),
        (
            "sync:\n  lease_ttl:       # s\n",
            "lease_ttl",
            "10",
            "sync:\n  lease_ttl: 10    # s\n",
        ),
        (
            "sync:\n  lease_ttl:\n  x: 1\n",
            "lease_ttl",
            "10",
            "sync:\n  lease_ttl: 10\n  x: 1\n",
        ),
        (
            "sync:\n  lease_ttl:\n",
            "lease_ttl",
            "",
            "sync:\n  lease_ttl:\n",
        ),
    ]);
}

#[test]
fn quoted_tagged_anchored_and_block_values_are_replaced_whole() {
    assert_edits(&[
        (
            "database:\n  enable_cache: \"auto\"\n",
            "enable_cache",
            "false",
            "database:\n  enable_cache: false\n",
        ),
        (
            "sync:\n  lease_ttl: &t 30\n",
            "lease_ttl",
            "9",
            "sync:\n  lease_ttl: &t 9\n",
        ),
        (
            "sync:\n  lease_ttl: !!str 30\n",
            "lease_ttl",
            "9",
            "sync:\n  lease_ttl: 9\n",
        ),
        (
            "sync:\n  lease_ttl: &t !!null\n",
            "lease_ttl",
            "9",
            "sync:\n  lease_ttl: &t 9\n",
        ),
        (
            "sync:\n  lease_ttl:\n    30\n",
            "lease_ttl",
            "9",
            "sync:\n  lease_ttl:\n    9\n",
        ),
        (
            "database:\n  path: |\n    //a/b.db\n  sync_interval: 3\n",
            "path",
            "//c/d.db",
            "database:\n  path: //c/d.db\n  sync_interval: 3\n",
        ),
        (
            "database:\n  path: >-\n    //a/\n    b.db\n\nsync: {}\n",
            "path",
            "//c/d.db",
            "database:\n  path: //c/d.db\n\nsync: {}\n",
        ),
    ]);
}

#[test]
fn path_values_are_quoted_when_yaml_would_misread_them() {
    let text = "database:\n  path: x\n";
    assert_edits(&[
        (text, "path", "2024", "database:\n  path: '2024'\n"),
        (text, "path", "a #1.db", "database:\n  path: 'a #1.db'\n"),
        (
            text,
            "path",
            r"\\nas\share\a b.db",
            "database:\n  path: \\\\nas\\share\\a b.db\n",
        ),
    ]);
}

#[test]
fn a_missing_key_is_inserted_after_its_sections_last_key() {
    let text = "database:\n    path: x  # p\n\n# sync settings\nsync:\n    batch_size: 5\n";
    assert_edits(&[
        (
            text,
            "sync_interval",
            "10",
            "database:\n    path: x  # p\n    sync_interval: 10\n\n# sync settings\nsync:\n    batch_size: 5\n",
        ),
        (text, "lease_ttl", "9", &format!("{text}    lease_ttl: 9\n")),
        (
            "database:\n  path: x\n  sync_interval:\n",
            "enable_cache",
            "true",
            "database:\n  path: x\n  sync_interval:\n  enable_cache: true\n",
        ),
        (
            "database:\n  path: x",
            "sync_interval",
            "9",
            "database:\n  path: x\n  sync_interval: 9\n",
        ),
    ]);
}

#[test]
fn a_missing_section_is_appended_with_the_files_indentation() {
    assert_edits(&[
        (
            "database:\n    path: x\n",
            "batch_size",
            "7",
            "database:\n    path: x\n\nsync:\n    batch_size: 7\n",
        ),
        (
            "database:\n  path: x",
            "lease_ttl",
            "9",
            "database:\n  path: x\n\nsync:\n  lease_ttl: 9\n",
        ),
        (
            "# empty\n",
            "path",
            "//a/b.db",
            "# empty\n\ndatabase:\n  path: //a/b.db\n",
        ),
        ("", "path", "//a/b.db", "database:\n  path: //a/b.db\n"),
    ]);
}

#[test]
fn an_empty_section_gets_the_key_below_it() {
    let db = "database:\n  path: x\n";
    assert_edits(&[
        (
            &format!("{db}sync:   # later\n"),
            "batch_size",
            "7",
            &format!("{db}sync:   # later\n  batch_size: 7\n"),
        ),
        (
            &format!("{db}sync: ~\n"),
            "batch_size",
            "7",
            &format!("{db}sync:\n  batch_size: 7\n"),
        ),
        (
            &format!("{db}sync:"),
            "batch_size",
            "7",
            &format!("{db}sync:\n  batch_size: 7\n"),
        ),
    ]);
}

#[test]
fn flow_style_sections_are_edited_in_flow_style() {
    assert_edits(&[
        (
            "database: {path: x}\n",
            "sync_interval",
            "5",
            "database: {path: x, sync_interval: 5}\n",
        ),
        ("sync: {}\n", "batch_size", "7", "sync: {batch_size: 7}\n"),
        (
            "sync: {lease_ttl: 3}\n",
            "lease_ttl",
            "5",
            "sync: {lease_ttl: 5}\n",
        ),
        (
            "sync: {batch_size: }\n",
            "lease_ttl",
            "9",
            "sync: {batch_size:, lease_ttl: 9 }\n",
        ),
        (
            "sync: {batch_size: }\n",
            "batch_size",
            "9",
            "sync: {batch_size: 9 }\n",
        ),
    ]);
}

#[test]
fn crlf_line_endings_are_kept() {
    let text = "database:\r\n  path: x\r\n";
    assert_edits(&[
        (
            text,
            "sync_interval",
            "5",
            "database:\r\n  path: x\r\n  sync_interval: 5\r\n",
        ),
        (
            text,
            "batch_size",
            "5",
            "database:\r\n  path: x\r\n\r\nsync:\r\n  batch_size: 5\r\n",
        ),
        (text, "path", "y", "database:\r\n  path: y\r\n"),
    ]);
}

#[test]
fn a_merged_key_is_overridden_by_an_explicit_one() {
    let text = "database:\n  <<: {sync_interval: 3}\n  path: x\n";
    let after = edited(text, "sync_interval", "9");
    assert_eq!(after, format!("{text}  sync_interval: 9\n"));
    let config = Config::from_yaml_str(&after, Path::new("c.yaml"), Path::new("/")).unwrap();
    assert_eq!(config.sync_interval, Duration::from_secs(9));
}

#[test]
fn a_section_of_only_merges_gets_the_key_at_the_merge_indentation() {
    let text = "database:\n  path: x\nsync:\n    <<: {batch_size: 3}\n";
    assert_eq!(
        edited(text, "batch_size", "9"),
        format!("{text}    batch_size: 9\n")
    );
}

#[test]
fn an_aliased_section_is_not_edited() {
    let text = "database: &db {path: x}\nsync: *db\n";
    let spec = setting("batch_size").unwrap();
    let err = edit_text(text, spec, "7", Path::new("c.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot change `sync.batch_size` in place"),
        "{err}"
    );
}

#[test]
fn set_key_keeps_comments_and_other_lines_byte_for_byte() {
    let (_dir, file) = config_file(SAMPLE);
    let config = set_key(&file, "database.enable_cache", "false").unwrap();
    assert_eq!(config.enable_cache, EnableCache::Off);
    let after = fs::read_to_string(&file).unwrap();
    assert_eq!(changed_lines(SAMPLE, &after), ["  enable_cache: false"]);
    assert_eq!(after.len(), SAMPLE.len() + 1);
}

#[test]
fn set_key_rejects_an_invalid_value_without_touching_the_file() {
    let (_dir, file) = config_file(SAMPLE);
    let modified = fs::metadata(&file).unwrap().modified().unwrap();
    for (key, value) in [
        ("sync_interval", "0"),
        ("batch_size", "-3"),
        ("enable_cache", "maybe"),
        ("path", ""),
    ] {
        let err = set_key(&file, key, value).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ConfigError::InvalidValue { .. }),
            "{key}: {err:?}"
        );
        assert!(
            msg.starts_with(&format!("{}: ", file.display())) && msg.contains(key),
            "{msg}"
        );
    }
    assert!(set_key(&file, "sync_interval", "1\n2").is_err());
    assert_eq!(fs::read_to_string(&file).unwrap(), SAMPLE);
    assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), modified);
    assert_eq!(
        fs::read_dir(file.parent().unwrap()).unwrap().count(),
        1,
        "temp file left behind"
    );
}

#[test]
fn set_key_rejects_unknown_settings() {
    let (_dir, file) = config_file(SAMPLE);
    let err = set_key(&file, "sync.interval", "5").unwrap_err();
    let ConfigError::UnknownSetting { key, expected } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(key, "sync.interval");
    assert_eq!(expected, &SETTABLE_KEYS.join(", "));
    assert_eq!(fs::read_to_string(&file).unwrap(), SAMPLE);
}

#[test]
fn set_key_accepts_full_and_short_names() {
    for key in ["sync.lock_retries", "lock_retries", "lock-retries"] {
        assert_eq!(setting(key).unwrap().path, "sync.lock_retries", "{key}");
    }
    for full in SETTABLE_KEYS {
        let short = full.rsplit('.').next().unwrap();
        assert_eq!(setting(short).unwrap().path, *full);
    }
}

#[test]
fn set_key_inserts_a_missing_key_and_returns_the_new_config() {
    let (_dir, file) = config_file("database:\n  path: //nas/a.db\n");
    let config = set_key(&file, "shutdown_timeout", "2.5").unwrap();
    assert_eq!(config.shutdown_timeout, Duration::from_millis(2500));
    assert_eq!(config.source.as_deref(), Some(file.as_path()));
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "database:\n  path: //nas/a.db\n\nsync:\n  shutdown_timeout: 2.5\n"
    );
}

#[test]
fn set_key_with_an_empty_value_restores_the_default() {
    let (_dir, file) =
        config_file("database:\n  path: //nas/a.db\n  cache_directory: /tmp/c  # mine\n");
    let config = set_key(&file, "cache_directory", "").unwrap();
    assert_eq!(config.cache_directory, paths::default_cache_dir());
    let after = fs::read_to_string(&file).unwrap();
    assert_eq!(
        after,
        "database:\n  path: //nas/a.db\n  cache_directory:         # mine\n"
    );
}

#[cfg(unix)]
#[test]
fn set_key_replaces_the_file_by_rename_and_keeps_its_permissions() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (dir, file) = config_file(SAMPLE);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let inode = fs::metadata(&file).unwrap().ino();
    set_key(&file, "batch_size", "50").unwrap();
    let meta = fs::metadata(&file).unwrap();
    assert_ne!(meta.ino(), inode, "written in place, not replaced");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["config.yaml"], "temp file left behind");
}

#[test]
fn set_key_leaves_an_unchanged_file_alone() {
    let (_dir, file) = config_file(SAMPLE);
    let modified = fs::metadata(&file).unwrap().modified().unwrap();
    set_key(&file, "batch_size", "500").unwrap();
    assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), modified);
}

#[test]
fn set_key_refuses_a_read_only_file() {
    let (_dir, file) = config_file(SAMPLE);
    let mut permissions = fs::metadata(&file).unwrap().permissions();
    permissions.set_readonly(true);
    fs::set_permissions(&file, permissions).unwrap();
    let err = set_key(&file, "batch_size", "50").unwrap_err();
    assert!(matches!(err, ConfigError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains("left unchanged"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), SAMPLE);
}

#[cfg(unix)]
#[test]
fn set_key_edits_the_target_of_a_symlink() {
    let (dir, file) = config_file(SAMPLE);
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    set_key(&link, "lease_ttl", "60").unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::read_to_string(&file)
            .unwrap()
            .contains("\n  lease_ttl: 60\n")
    );
}
