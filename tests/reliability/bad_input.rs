//! Bad input matrix (issue 5, item 8): config files, remote paths, schemas and data that are
//! odd or wrong. Pass: a clear error naming the problem, or a correct sync; never a panic;
//! nothing lost.
//!
//! `tests/cli.rs` has the basic config cases (zero and negative interval, a misspelt key, a bad
//! `enable_cache`, a non-number `batch_size`, a missing `database.path`, unclosed YAML);
//! `tests/schema_follow.rs` has a table without primary key and two oddly named tables;
//! `tests/share_safety.rs` has an empty file, a non-SQLite file and a WAL remote nobody uses.
//! This module adds the rest of the matrix; `bad_data` has the odd data and names that are not
//! about the share (run against both backends).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::Connection;
use sharecache::{Cache, Config, EnableCache, ErrorKind};

use super::{assert_same_content, figures};
use crate::support::{Share, one, sharecache};

/// Runs the CLI; returns (exit code, stderr).
fn cli(cfg: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = sharecache()
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("panicked"),
        "sharecache {args:?} with {} panicked: {err}",
        cfg.display()
    );
    (out.status.code(), err)
}

#[test]
fn malformed_or_mistyped_config_files_are_refused_naming_the_file_and_the_problem() {
    let _machine = super::machine_shared();
    let bomb = {
        let mut lines = vec!["a0: &a0 [x, x, x, x, x, x, x, x, x, x]".to_string()];
        for i in 1..12 {
            lines.push(format!(
                "a{i}: &a{i} [{}]",
                vec![format!("*a{}", i - 1); 10].join(", ")
            ));
        }
        lines.push("database:\n  path: x.db".into());
        lines.join("\n").into_bytes()
    };
    let p = "database:\n  path: x.db\n";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "no settings"),
        (b"# only a comment\n".to_vec(), "no settings"),
        (b"- a\n- b\n".to_vec(), "got a list"),
        (b"database:\n\tpath: x.db\n".to_vec(), "tabs"),
        (
            b"database:\n  path: a.db\n  path: b.db\n".to_vec(),
            "duplicate",
        ),
        (format!("{p}foo: 1\n").into_bytes(), "unknown key `foo`"),
        (b"database: 5\n".to_vec(), "database:"),
        (format!("{p}sync: fast\n").into_bytes(), "sync:"),
        (
            format!("{p}  sync_interval: thirty\n").into_bytes(),
            "database.sync_interval",
        ),
        (
            format!("{p}  sync_interval: \"30\"\n").into_bytes(),
            "database.sync_interval",
        ),
        (
            format!("{p}  sync_interval: 99999999999999999999999\n").into_bytes(),
            "database.sync_interval",
        ),
        (
            format!("{p}  sync_interval: .inf\n").into_bytes(),
            "database.sync_interval",
        ),
        (
            format!("{p}  sync_interval: .nan\n").into_bytes(),
            "database.sync_interval",
        ),
        (
            format!("{p}  sync_interval: -0.5\n").into_bytes(),
            "database.sync_interval",
        ),
        (
            format!("{p}  enable_cache: 2\n").into_bytes(),
            "database.enable_cache",
        ),
        (
            format!("{p}  cache_directory: 42\n").into_bytes(),
            "database.cache_directory",
        ),
        (
            format!("{p}sync:\n  batch_size: 0\n").into_bytes(),
            "sync.batch_size",
        ),
        (
            format!("{p}sync:\n  batch_size: -1\n").into_bytes(),
            "sync.batch_size",
        ),
        (
            format!("{p}sync:\n  batch_size: 100000001\n").into_bytes(),
            "sync.batch_size",
        ),
        (
            format!("{p}sync:\n  busy_timeout_ms: -1\n").into_bytes(),
            "sync.busy_timeout_ms",
        ),
        (
            format!("{p}sync:\n  lock_retries: -1\n").into_bytes(),
            "sync.lock_retries",
        ),
        (
            format!("{p}sync:\n  lease_ttl: 0\n").into_bytes(),
            "sync.lease_ttl",
        ),
        (
            format!("{p}sync:\n  max_clock_drift: -1\n").into_bytes(),
            "sync.max_clock_drift",
        ),
        (b"database:\n  path: \"\"\n".to_vec(), "database.path"),
        (b"database:\n  path: ~\n".to_vec(), "database.path"),
        (b"database:\n  path: [a, b]\n".to_vec(), "database.path"),
        (b"database:\n  path: x.db\n\x00\x01".to_vec(), "line"),
        (b"database:\n  path: \xff\xfe.db\n".to_vec(), "UTF-8"),
        (bomb, "too large"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("odd config.yaml");
    for (yaml, says) in &cases {
        std::fs::write(&f, yaml).unwrap();
        for cmd in [&["status"][..], &["sync"][..]] {
            let (code, err) = cli(&f, cmd);
            let shown = String::from_utf8_lossy(yaml);
            assert_eq!(code, Some(3), "{shown:?} ({cmd:?}): {err}");
            assert!(
                err.contains("odd config.yaml"),
                "{shown:?}: names the file: {err}"
            );
            assert!(err.contains(says), "{shown:?}: should say {says:?}: {err}");
        }
    }
    figures("bad_config", &[("cases", cases.len() as u64)]);
}

/// `sharecache status | head -1` and the like: the reader goes away before the output is
/// written. The command must not panic (exit 101 with a backtrace).
#[test]
fn the_command_line_does_not_panic_when_its_output_is_closed() {
    let share = Share::new();
    let cfg = share.config_file("a");
    for args in [&["status"][..], &["status", "--json"], &["sync", "--json"]] {
        let mut child = sharecache()
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            !err.contains("panicked") && status.code() != Some(101),
            "sharecache {args:?} | (closed): {status:?}: {err}"
        );
    }
}

#[test]
fn a_missing_remote_path_is_refused_without_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("share/app.db");
    std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
    let mut cfg = Config::for_remote(&remote);
    cfg.cache_directory = dir.path().join("cache");
    cfg.enable_cache = EnableCache::On;
    let err = Cache::open(cfg.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Offline, "{err}");
    assert!(err.to_string().contains("is the share mounted?"), "{err}");
    assert_eq!(
        std::fs::read_dir(remote.parent().unwrap()).unwrap().count(),
        0
    );
    // Direct mode (enable_cache: false) refuses it the same way.
    cfg.enable_cache = EnableCache::Off;
    let err = Cache::open(cfg).unwrap_err();
    assert!(err.to_string().contains("is the share mounted?"), "{err}");
    assert_eq!(
        std::fs::read_dir(remote.parent().unwrap()).unwrap().count(),
        0
    );
}

/// The remote exists but this user may not read it, or only read it. Run as `nobody` (the
/// tests run as root, which may read anything). The error must name the path and say it is a
/// permission problem, not that the share is unreachable or the database broken.
#[test]
fn a_remote_the_user_may_not_read_or_write_is_refused_naming_the_permission_problem() {
    if Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let mut problems = Vec::new();
    for (mode, dir_mode, what) in [
        (0o600, 0o755, "unreadable"),
        (0o644, 0o755, "read-only, in a read-only directory"),
        (0o644, 0o777, "read-only, in a writable directory"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let share_dir = dir.path().join("share");
        std::fs::create_dir(&share_dir).unwrap();
        std::fs::set_permissions(&share_dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        let remote = share_dir.join("app.db");
        Connection::open(&remote)
            .unwrap()
            .execute_batch(crate::support::SCHEMA)
            .unwrap();
        std::fs::set_permissions(&remote, std::fs::Permissions::from_mode(mode)).unwrap();
        let before = std::fs::read(&remote).unwrap();
        let cfg = dir.path().join("a.yaml");
        std::fs::write(
            &cfg,
            format!(
                "database:\n  path: {}\n  enable_cache: true\n  cache_directory: {}\n",
                remote.display(),
                dir.path().join("cache").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_sharecache"))
            .arg("--config")
            .arg(&cfg)
            .arg("sync")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(!out.status.success(), "{what}: must be refused");
        assert_eq!(
            std::fs::read(&remote).unwrap(),
            before,
            "{what}: remote changed"
        );
        let named = err.contains(&remote.display().to_string());
        let lower = err.to_lowercase();
        let says = ["permission", "readonly", "read-only"]
            .iter()
            .any(|w| lower.contains(w));
        if !(named && says) {
            problems.push(format!(
                "{what} remote (mode {mode:o}): exit {:?}, error does not name the path and a permission problem: {}",
                out.status.code(),
                err.trim()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A WAL-mode remote that another program has open cannot be switched to DELETE mode: refused
/// with a clear error, nothing written; once the other program is gone, it syncs.
#[test]
fn a_remote_in_wal_mode_that_another_program_has_open_is_refused_until_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("app.db");
    let other = Connection::open(&remote).unwrap();
    other.execute_batch(crate::support::SCHEMA).unwrap();
    let m: String = other
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(m, "wal");
    other
        .execute_batch("BEGIN; SELECT count(*) FROM tasks;")
        .unwrap(); // in use
    let mut cfg = Config::for_remote(&remote);
    cfg.cache_directory = dir.path().join("cache");
    cfg.enable_cache = EnableCache::On;
    cfg.busy_timeout = Duration::from_millis(500);
    let size = std::fs::metadata(&remote).unwrap().len();
    let err = Cache::open(cfg.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert!(err.to_string().contains("WAL"), "{err}");
    assert!(err.to_string().contains("another program"), "{err}");
    assert_eq!(
        std::fs::metadata(&remote).unwrap().len(),
        size,
        "nothing written"
    );
    assert!(!cfg.cache_directory.join("x").exists());
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    let a = Cache::open(cfg).unwrap();
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (3, 'after')", [])
        .unwrap();
    a.sync_now().unwrap();
    let c = Connection::open(&remote).unwrap();
    assert_eq!(one::<String>(&c, "PRAGMA journal_mode"), "delete");
    assert_eq!(
        one::<String>(&c, "SELECT body FROM notes WHERE id = 3"),
        "after"
    );
}

#[test]
fn a_remote_path_with_spaces_quotes_and_non_ascii_characters_works() {
    let dir = tempfile::tempdir().unwrap();
    let share_dir = dir.path().join("my share 'x' \"y\" ünï 表");
    std::fs::create_dir(&share_dir).unwrap();
    let remote = share_dir.join("app db's ü.db");
    Connection::open(&remote)
        .unwrap()
        .execute_batch(crate::support::SCHEMA)
        .unwrap();
    let cfg = |name: &str| {
        let mut c = Config::for_remote(&remote);
        c.cache_directory = dir.path().join(format!("cache {name} ü"));
        c.enable_cache = EnableCache::On;
        c
    };
    let a = Cache::open(cfg("a")).unwrap();
    let b = Cache::open(cfg("b")).unwrap();
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (3, 'x')", [])
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    assert_eq!(
        one::<String>(&b.conn(), "SELECT body FROM notes WHERE id = 3"),
        "x"
    );
}

/// Oddly named tables and columns (keywords, quotes of every kind, brackets, dots, spaces,
/// LIKE wildcards, non-ASCII, a 200-character name, a name resembling sharecache's triggers),
/// generated columns, a view, an app trigger and a table without primary key in one schema:
/// every table with a key syncs both ways, the one without is reported.
#[test]
fn tables_and_columns_with_odd_names_sync_both_ways() {
    let long = "t".repeat(200);
    let schema = format!(
        r#"
        CREATE TABLE "select" ("from" INTEGER PRIMARY KEY, "where" TEXT, "group" TEXT);
        CREATE TABLE "it's" ("a'b" TEXT PRIMARY KEY, "c""d" TEXT);
        CREATE TABLE "[brackets]" ("`tick`" TEXT, "x.y" INTEGER, v TEXT, PRIMARY KEY ("`tick`", "x.y")) WITHOUT ROWID;
        CREATE TABLE "a.b" (id TEXT PRIMARY KEY, v TEXT);
        CREATE TABLE "100%_done\" (id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE "täblé 表" ("ключ" TEXT PRIMARY KEY, "値" TEXT);
        CREATE TABLE "{long}" (id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE "sync_ai_select" (id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE gen (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, c TEXT GENERATED ALWAYS AS ('c' || a) STORED);
        CREATE TABLE "no key" (v TEXT);
        CREATE VIEW "the view" AS SELECT * FROM "select";
        CREATE TABLE app_log (id INTEGER PRIMARY KEY, what TEXT);
        CREATE TRIGGER "app trigger" AFTER INSERT ON "a.b" BEGIN INSERT INTO app_log (what) VALUES ('inserted ' || NEW.id); END;
        "#
    );
    let share = Share::with_schema(&schema);
    let a = share.client("a");
    let b = share.client("b");
    let writes = format!(
        r#"
        INSERT INTO "select" VALUES (1, 'w', 'g');
        INSERT INTO "it's" VALUES ('k''1', 'v"1');
        INSERT INTO "[brackets]" VALUES ('`', 2, 'v');
        INSERT INTO "a.b" VALUES ('x.y', 'v');
        INSERT INTO "100%_done\" VALUES (1, 'v');
        INSERT INTO "täblé 表" VALUES ('ключ', '値');
        INSERT INTO "{long}" VALUES (1, 'long');
        INSERT INTO "sync_ai_select" VALUES (1, 'looks like a trigger');
        INSERT INTO gen (id, a) VALUES (1, 21);
        INSERT INTO "no key" VALUES ('local only');
        "#
    );
    a.conn().execute_batch(&writes).unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    let remote = share.remote();
    assert_same_content("a", &a.conn(), &remote);
    assert_same_content("b", &b.conn(), &remote);
    let synced = super::synced_tables(&a.conn());
    for t in [
        "select",
        "it's",
        "[brackets]",
        "a.b",
        "100%_done\\",
        "täblé 表",
        &long,
        "sync_ai_select",
        "gen",
        "app_log",
    ] {
        assert!(synced.iter().any(|s| s == t), "{t} is synced: {synced:?}");
        let n: i64 = one(
            &remote,
            &format!("SELECT count(*) FROM {}", sharecache::sql::quote(t)),
        );
        assert!(n >= 1, "{t} reached the remote");
    }
    assert_eq!(
        one::<i64>(&remote, "SELECT c = 'c21' AND b = 42 FROM gen"),
        1
    );
    let status = a.status().unwrap();
    assert!(
        status
            .unsynced_tables
            .iter()
            .any(|t| t.name == "no key" && t.reason.contains("primary key")),
        "{:?}",
        status.unsynced_tables
    );
    // And back: b updates and deletes, a pulls.
    b.conn()
        .execute_batch(&format!(
            r#"UPDATE "select" SET "where" = 'changed'; DELETE FROM "it's"; UPDATE "[brackets]" SET v = 'w';
               DELETE FROM "{long}"; UPDATE "täblé 表" SET "値" = '新'; UPDATE gen SET a = 5;"#
        ))
        .unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    assert_same_content("a after b's changes", &a.conn(), &share.remote());
    assert_eq!(
        one::<String>(&a.conn(), "SELECT \"where\" FROM \"select\""),
        "changed"
    );
}
