//! The command line: sync, status, demo, and clear errors for bad input. Syncing and `status`
//! run against both backends (`status` checks the remote: a `stat` of the share's file, a TCP
//! connect to a server).

use crate::support::remote::{Backend, Remote};
use crate::support::{Share, sharecache};

crate::both_backends!(
    sync_and_status_work_from_the_command_line_and_status_json_parses,
    sync_while_offline_fails_with_the_offline_exit_code_and_keeps_pending_writes,
);

fn sync_and_status_work_from_the_command_line_and_status_json_parses(backend: Backend) {
    let remote = Remote::new(backend);
    let cfg = remote.config_file("a");
    let out = sharecache()
        .arg("--config")
        .arg(&cfg)
        .arg("sync")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sharecache()
        .arg("--config")
        .arg(&cfg)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "mode",
        "state",
        "pending_writes",
        "conflicts",
        "cache_path",
        "remote_path",
        "last_sync",
        "sync_interval_secs",
        "unsynced_tables",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["mode"], "cached");
    assert_eq!(v["state"], "success");
    assert_eq!(v["unsynced_tables"][0]["name"], "audit_log");
    assert_eq!(v["share_reachable"], true, "{v}");
}

#[test]
fn the_config_file_comes_from_the_environment_when_not_given() {
    let share = Share::new();
    let out = sharecache()
        .env("SHARECACHE_CONFIG", share.config_file("a"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sync_while_offline_fails_with_the_offline_exit_code_and_keeps_pending_writes(backend: Backend) {
    let remote = Remote::new(backend);
    let cfg = remote.config_file("a");
    assert!(
        sharecache()
            .arg("--config")
            .arg(&cfg)
            .arg("sync")
            .status()
            .unwrap()
            .success()
    );
    let a = sharecache::Cache::open(sharecache::Config::load(&cfg).unwrap()).unwrap();
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (11, 'x')", [])
        .unwrap();
    drop(a);
    remote.set_offline(true);
    let out = sharecache()
        .arg("--config")
        .arg(&cfg)
        .arg("sync")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
    let out = sharecache()
        .arg("--config")
        .arg(&cfg)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "offline");
    assert_eq!(v["pending_writes"], 1);
}

#[test]
fn bad_config_values_give_clear_errors_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "database:\n  path: x.db\n  sync_interval: 0\n",
            "database.sync_interval",
        ),
        (
            "database:\n  path: x.db\n  sync_interval: -5\n",
            "database.sync_interval",
        ),
        (
            "database:\n  path: x.db\n  sync_intervall: 30\n",
            "sync_intervall",
        ),
        (
            "database:\n  path: x.db\n  enable_cache: maybe\n",
            "database.enable_cache",
        ),
        (
            "database:\n  path: x.db\nsync:\n  batch_size: lots\n",
            "sync.batch_size",
        ),
        ("database:\n  sync_interval: 30\n", "database.path"),
        ("database: [unclosed\n", "line"),
    ];
    for (yaml, key) in cases {
        let f = dir.path().join("bad.yaml");
        std::fs::write(&f, yaml).unwrap();
        let out = sharecache()
            .arg("--config")
            .arg(&f)
            .arg("status")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{yaml}: {err}");
        assert!(err.contains(key), "{yaml}: error should name {key}: {err}");
        assert!(
            err.contains("bad.yaml"),
            "{yaml}: error should name the file: {err}"
        );
    }
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = sharecache()
        .current_dir(dir.path())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.yaml"));
}

#[test]
fn bad_arguments_are_rejected_with_usage() {
    let out = sharecache().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}

#[test]
fn the_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = sharecache()
        .current_dir(dir.path())
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("newest edit wins everywhere: Alice sees \"Order toner (Bob)\", Bob sees \"Order toner (Bob)\""), "{stdout}");
    // Running it again replaces the previous demo.
    assert!(
        sharecache()
            .current_dir(dir.path())
            .arg("demo")
            .status()
            .unwrap()
            .success()
    );
}
