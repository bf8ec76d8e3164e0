//! The operations CLI: every read command's `--json` parses, bad arguments, `clear`,
//! `config set`, conflict restore across clients. Clearing online and restoring a conflict run
//! against both backends.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;

use crate::support::cli::{cache_file, cli, json, ok};
use crate::support::remote::{Backend, Remote};
use crate::support::{Share, one, rows};

crate::both_backends!(
    clear_online_rebuilds_the_cache_equal_to_the_remote,
    conflicts_restore_from_the_cli_brings_the_losing_version_back_on_all_clients,
);

#[test]
fn every_read_command_prints_parsable_json_and_none_creates_a_cache() {
    let share = Share::new();
    let cfg = share.config_file("a");

    // Before the first sync: no cache, and reading commands do not make one.
    let status = json(&cfg, &["status", "--json"]);
    assert_eq!(status["cache_exists"], false);
    assert_eq!(status["share_reachable"], true, "{status}");
    assert!(status["remote_bytes"].as_u64().unwrap() > 0);
    assert_eq!(json(&cfg, &["history", "--json"]), Value::Array(vec![]));
    assert_eq!(json(&cfg, &["conflicts", "--json"]), Value::Array(vec![]));
    let out = cli(&cfg, &["history"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cache yet"));
    assert!(!Path::new(status["cache_path"].as_str().unwrap()).exists());

    let report = json(&cfg, &["sync", "--json"]);
    for key in ["pushed", "pulled", "conflicts", "duration_ms", "idle"] {
        assert!(
            report.get(key).is_some(),
            "sync --json lacks {key}: {report}"
        );
    }
    let status = json(&cfg, &["status", "--json"]);
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
        "cache_exists",
        "cache_bytes",
        "remote_bytes",
        "share_reachable",
        "share_check",
        "worker_running",
    ] {
        assert!(
            status.get(key).is_some(),
            "status --json lacks {key}: {status}"
        );
    }
    assert_eq!(status["cache_exists"], true);
    assert_eq!(status["worker_running"], false);
    assert!(
        status["origin"].as_str().is_some_and(|o| o.len() >= 8),
        "status --json names this client's origin id: {status}"
    );

    let history = json(&cfg, &["history", "--json", "--limit", "5"]);
    assert_eq!(history[0]["status"], "success", "{history}");
    assert_eq!(history[0]["kind"], "sync");
    assert_eq!(json(&cfg, &["conflicts", "--json"]), Value::Array(vec![]));

    let config = json(&cfg, &["config", "show", "--json"]);
    assert_eq!(config["database"]["sync_interval"], 30);
    assert_eq!(config["sync"]["batch_size"], 500);
    assert_eq!(
        config["database"]["path"].as_str().unwrap(),
        share.remote_path().to_str().unwrap()
    );
    assert_eq!(config["source"].as_str().unwrap(), cfg.to_str().unwrap());
    assert!(ok(&cfg, &["config", "show"]).contains("# resolved from"));

    let cleared = json(&cfg, &["clear", "--json"]);
    assert!(cleared["bytes"].as_u64().unwrap() > 0, "{cleared}");
    assert_eq!(cleared["created"], false);
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let share = Share::new();
    let cfg = share.config_file("a");
    let cases: [(&[&str], &str); 6] = [
        (&["history", "--limit", "lots"], "invalid value 'lots'"),
        (&["conflicts", "show"], "<ID>"),
        (&["conflicts", "show", "first"], "invalid value 'first'"),
        (&["config", "set", "sync_interval"], "<VALUE>"),
        (&["clear", "--discard"], "--discard-pending"),
        (&["config", "set", "sync_intervall", "5"], "sync_interval"),
    ];
    for (args, expected) in cases {
        let out = cli(&cfg, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?} should mention {expected}: {err}"
        );
    }
}

#[test]
fn config_set_edits_in_place_keeping_comments_and_refuses_invalid_values() {
    let share = Share::new();
    let cfg = share.config_file("a");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = format!("# the team's shared database\n{text}")
        .replace("sync_interval: 30", "sync_interval: 30  # seconds");
    std::fs::write(&cfg, &text).unwrap();

    ok(&cfg, &["config", "set", "sync_interval", "5"]);
    let edited = std::fs::read_to_string(&cfg).unwrap();
    let (old, new): (Vec<&str>, Vec<&str>) = (text.lines().collect(), edited.lines().collect());
    assert_eq!(old.len(), new.len(), "{edited}");
    for (o, n) in old.iter().zip(&new) {
        if o.contains("sync_interval") {
            // The value changes; its comment stays (in the same column).
            assert!(n.starts_with("  sync_interval: 5 "), "{n}");
            assert!(n.ends_with("# seconds"), "{n}");
        } else {
            assert_eq!(o, n, "every other line is kept as it was");
        }
    }
    assert_eq!(
        json(&cfg, &["config", "show", "--json"])["database"]["sync_interval"],
        5
    );

    let out = cli(&cfg, &["config", "set", "sync_interval", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("database.sync_interval"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        edited,
        "file unchanged"
    );
}

#[test]
fn clear_while_offline_with_pending_writes_refuses_with_exit_4_and_keeps_them() {
    let share = Share::new();
    let cfg = share.config_file("a");
    ok(&cfg, &["sync"]);
    cache_file(&cfg)
        .execute("INSERT INTO notes (id, body) VALUES (21, 'keep me')", [])
        .unwrap();
    share.control.set_offline(true);
    let out = cli(&cfg, &["clear"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("clear refused"), "{err}");
    assert!(err.contains("--discard-pending"), "says what to do: {err}");
    let status = json(&cfg, &["status", "--json"]);
    assert_eq!(status["pending_writes"], 1);
    assert_eq!(status["share_reachable"], false);
    let body: String = one(&cache_file(&cfg), "SELECT body FROM notes WHERE id = 21");
    assert_eq!(body, "keep me");

    // Even --discard-pending discards nothing while there is no remote to rebuild from.
    let out = cli(&cfg, &["clear", "--discard-pending"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert_eq!(json(&cfg, &["status", "--json"])["pending_writes"], 1);

    // Back online, clear pushes the write first.
    share.control.set_offline(false);
    let cleared = json(&cfg, &["clear", "--json"]);
    assert_eq!(cleared["pushed"], 1, "{cleared}");
    let body: String = one(&share.remote(), "SELECT body FROM notes WHERE id = 21");
    assert_eq!(body, "keep me");
}

fn clear_online_rebuilds_the_cache_equal_to_the_remote(backend: Backend) {
    let remote = Remote::new(backend);
    let cfg = remote.config_file("a");
    ok(&cfg, &["sync"]);
    cache_file(&cfg)
        .execute("UPDATE tasks SET title = 'local edit' WHERE id = 't2'", [])
        .unwrap();
    remote.exec(
        "INSERT INTO notes (id, body) VALUES (2, 'written on the remote');
         INSERT INTO tags VALUES ('t1', 'urgent', 1.5);",
    );
    let out = ok(&cfg, &["clear"]);
    assert!(out.contains("pushed 1 pending writes first"), "{out}");
    assert!(out.contains("cache rebuilt from the remote"), "{out}");
    let cache = cache_file(&cfg);
    for table in ["tasks", "notes", "tags", "audit_log"] {
        let sql = format!("SELECT * FROM {table} ORDER BY 1, 2");
        assert_eq!(rows(&cache, &sql), remote.rows(&sql), "{table}");
    }
    assert_eq!(json(&cfg, &["status", "--json"])["pending_writes"], 0);
}

fn conflicts_restore_from_the_cli_brings_the_losing_version_back_on_all_clients(backend: Backend) {
    let remote = Remote::new(backend);
    let (a, b) = (remote.config_file("a"), remote.config_file("b"));
    ok(&a, &["sync"]);
    ok(&b, &["sync"]);
    cache_file(&a)
        .execute("UPDATE tasks SET title = 'older (a)' WHERE id = 't1'", [])
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    cache_file(&b)
        .execute("UPDATE tasks SET title = 'newer (b)' WHERE id = 't1'", [])
        .unwrap();
    ok(&a, &["sync"]);
    assert_eq!(json(&b, &["sync", "--json"])["conflicts"], 1);
    ok(&a, &["sync"]);

    let title = |c: &Connection| -> String { one(c, "SELECT title FROM tasks WHERE id = 't1'") };
    assert_eq!(title(&cache_file(&a)), "newer (b)");
    let list = json(&a, &["conflicts", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let c = &list[0];
    assert_eq!(c["table"], "tasks");
    assert_eq!(c["key"], serde_json::json!(["t1"]));
    for key in [
        "winner_stamp",
        "winner_origin",
        "loser_stamp",
        "loser_origin",
        "decided_at",
        "reason",
    ] {
        assert!(c[key].is_string(), "conflicts --json lacks {key}: {c}");
    }
    let id = c["id"].as_i64().unwrap().to_string();
    let shown = json(&a, &["conflicts", "show", &id, "--json"]);
    assert_eq!(shown["loser_row"]["title"], "older (a)", "{shown}");
    let human = ok(&a, &["conflicts", "show", &id]);
    assert!(human.contains("older (a)"), "{human}");
    assert!(human.contains("(this client)"), "{human}");

    let restored = ok(&a, &["conflicts", "restore", &id]);
    assert!(restored.contains("next sync"), "{restored}");
    ok(&a, &["sync"]);
    ok(&b, &["sync"]);
    assert_eq!(
        remote.one::<String>("SELECT title FROM tasks WHERE id = 't1'"),
        "older (a)"
    );
    assert_eq!(title(&cache_file(&a)), "older (a)");
    assert_eq!(title(&cache_file(&b)), "older (a)");

    // A missing id is a clear error.
    let out = cli(&a, &["conflicts", "show", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no conflict with id 999"));
}
