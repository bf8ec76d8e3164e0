//! Apps that write the database with an old SQLite, or one built without JSON functions, keep
//! working beside sharecache (README, Known limits: the floor). Each build of
//! `tests/old-sqlite/driver.c` (built by `tests/old-sqlite/build.sh`: SQLite 3.7.17, 3.24.0,
//! 3.31.1 and the current one without JSON) writes the remote and a cache while clients sync;
//! every change must be captured and reach every cache.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rusqlite::types::Value;

use crate::support::{Share, open_cache_file, rows};

/// The builds `tests/old-sqlite/build.sh` makes, oldest first.
const BUILDS: [&str; 4] = [
    "sqlite-3.7.17",
    "sqlite-3.24.0",
    "sqlite-3.31.1",
    "sqlite-current-nojson",
];

/// An app linked against one SQLite build.
struct OldSqlite {
    bin: PathBuf,
    version: String,
}

impl OldSqlite {
    /// Runs `sql` on the database at `db`; the output, or the error it printed.
    fn run(&self, db: &std::path::Path, sql: &str) -> Result<String, String> {
        let out = Command::new(&self.bin).arg(db).arg(sql).output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `sql` and fails the test, naming the version, if SQLite reported an error.
    fn write(&self, db: &std::path::Path, sql: &str) {
        if let Err(e) = self.run(db, sql) {
            panic!("SQLite {} failed: {e}\nSQL: {sql}", self.version);
        }
    }
}

/// The old SQLite builds, or none (with a notice) when they are not built outside CI. Under
/// `CI=true` a missing build fails the test.
fn builds() -> Vec<OldSqlite> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("old-sqlite/bin");
    let missing: Vec<&str> = BUILDS
        .iter()
        .copied()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    if !missing.is_empty() {
        let msg = format!(
            "the old SQLite test helpers {missing:?} are not built in {}: run tests/old-sqlite/build.sh \
             (needs cc, npm and the crates.io registry; .ci/run does it)",
            dir.display()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return Vec::new();
    }
    let builds: Vec<OldSqlite> = BUILDS
        .iter()
        .map(|b| {
            let bin = dir.join(b);
            let out = Command::new(&bin).arg("--version").output().unwrap();
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            OldSqlite { bin, version }
        })
        .collect();
    for b in &builds {
        assert!(
            b.version.ends_with("(no json)"),
            "{}: the helper must lack JSON functions",
            b.version
        );
    }
    println!(
        "old SQLite builds: {}",
        builds
            .iter()
            .map(|b| b.version.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    builds
}

#[test]
fn every_old_sqlite_builds_the_key_text_rust_encodes_and_refuses_a_real_it_cannot_hold() {
    let builds = builds();
    let dir = tempfile::tempdir().unwrap();
    let cols: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    let rows_in: Vec<[Value; 2]> = vec![
        [Value::Integer(-5), Value::Null],
        [Value::Integer(i64::MIN), Value::Integer(i64::MAX)],
        [
            Value::Blob(vec![0, 255, 16]),
            Value::Text("it's, \"odd\"".into()),
        ],
        [Value::Real(2.5), Value::Real(-0.1)],
        [Value::Real(1e15), Value::Real(0.1 + 0.2)],
        [Value::Real(1.0 / 3.0), Value::Text("ünï\ncødé".into())],
    ];
    let literal = |v: &Value| match v {
        Value::Real(r) => format!("{r:e}"), // exact: Rust prints the shortest round-trip form
        other => sharecache::sql::encode_key(std::slice::from_ref(other)),
    };
    for b in &builds {
        let db = dir
            .path()
            .join(format!("{}.db", b.bin.file_name().unwrap().display()));
        std::fs::File::create(&db).unwrap();
        let mut sql = format!(
            "CREATE TABLE t(a, b); CREATE TABLE k(id INTEGER PRIMARY KEY, key); \
             CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN INSERT INTO k(key) VALUES ({}); END;",
            sharecache::sql::key_expr("NEW", &cols)
        );
        for r in &rows_in {
            sql += &format!(
                "INSERT INTO t VALUES ({}, {});",
                literal(&r[0]),
                literal(&r[1])
            );
        }
        sql += "SELECT key FROM k ORDER BY id;";
        let out = b
            .run(&db, &sql)
            .unwrap_or_else(|e| panic!("{}: {e}", b.version));
        let want: Vec<String> = rows_in
            .iter()
            .map(|r| sharecache::sql::encode_key(r))
            .collect();
        assert_eq!(out, want.join("\n") + "\n", "SQLite {}", b.version);
        for text in &want {
            let back = sharecache::sql::decode_key(text).unwrap();
            assert!(rows_in.iter().any(|r| r[..] == back[..]), "{text}");
        }
        let refused = b.run(&db, "INSERT INTO t VALUES (1e-5, 1)").unwrap_err();
        assert!(
            refused.contains("REAL key value cannot be synced"),
            "SQLite {}: {refused}",
            b.version
        );
    }
}

/// The app's tables: TEXT, INTEGER, BLOB, REAL and composite keys, all readable by SQLite 3.7.
const SCHEMA: &str = "
    CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL, updated_at TEXT);
    CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
    CREATE TABLE files (k BLOB PRIMARY KEY, v TEXT);
    CREATE TABLE points (x REAL PRIMARY KEY, v TEXT);
    CREATE TABLE tags (task_id TEXT, tag TEXT, weight REAL, PRIMARY KEY (task_id, tag));
    INSERT INTO tasks (id, title) VALUES ('t1', 'first');
    INSERT INTO notes VALUES (1, 'note one');
";

/// Inserts, updates (also of a key) and deletes in every table, `tag` telling the writer apart.
fn app_writes(tag: &str, n: i64) -> String {
    format!(
        "INSERT INTO tasks (id, title) VALUES ('{tag}', 'new {tag}'), ('{tag}-gone', 'x');
         UPDATE tasks SET title = 'edited by {tag}' WHERE id = '{tag}';
         DELETE FROM tasks WHERE id = '{tag}-gone';
         INSERT INTO notes VALUES ({n}, 'it''s {tag}'), ({n} + 1, 'moved');
         UPDATE notes SET id = {n} + 2 WHERE id = {n} + 1;
         INSERT INTO files VALUES (x'00{n:04x}ff', '{tag}'), (x'{n:04x}', 'gone');
         UPDATE files SET v = v || ' edited' WHERE k = x'00{n:04x}ff';
         DELETE FROM files WHERE k = x'{n:04x}';
         INSERT INTO points VALUES ({n}.5, '{tag}'), ({n}.25, 'gone');
         DELETE FROM points WHERE x = {n}.25;
         INSERT INTO tags VALUES ('{tag}', 'a', 1.5), ('{tag}', 'b', 2), ('{tag}', 'c', 3);
         UPDATE tags SET weight = weight * 2 WHERE task_id = '{tag}' AND tag = 'a';
         UPDATE tags SET tag = 'd' WHERE task_id = '{tag}' AND tag = 'c';
         DELETE FROM tags WHERE task_id = '{tag}' AND tag = 'b';
         UPDATE tasks SET title = 'seen by {tag}' WHERE id = 't1';"
    )
}

/// Every synced table's rows, in key order.
fn contents(c: &rusqlite::Connection) -> Vec<Vec<Vec<String>>> {
    [
        "SELECT id, title FROM tasks ORDER BY id",
        "SELECT * FROM notes ORDER BY id",
        "SELECT hex(k), v FROM files ORDER BY k",
        "SELECT * FROM points ORDER BY x",
        "SELECT * FROM tags ORDER BY task_id, tag",
    ]
    .iter()
    .map(|q| rows(c, q))
    .collect()
}

#[test]
fn old_sqlite_writers_on_the_remote_and_the_cache_are_captured_and_reach_every_cache() {
    let builds = builds();
    if builds.is_empty() {
        return;
    }
    let share = Share::with_schema(SCHEMA);
    // Client a syncs in the background while the apps write; b syncs by hand.
    let mut cfg = share.config("a");
    cfg.background = true;
    cfg.sync_interval = Duration::from_millis(300);
    let a = sharecache::Cache::open(cfg).unwrap();
    let b = share.client("b");
    let a_file = a.cache_path().unwrap().to_path_buf();
    for (i, build) in builds.iter().enumerate() {
        let n = 100 * (i as i64 + 1);
        build.write(&share.remote_path(), &app_writes(&format!("r{i}"), n));
        build.write(&a_file, &app_writes(&format!("c{i}"), n + 50));
        b.sync_now().unwrap();
    }
    for _ in 0..2 {
        a.sync_now().unwrap();
        b.sync_now().unwrap();
    }
    let remote = contents(&share.remote());
    assert_eq!(contents(&open_cache_file(&a)), remote, "cache a");
    assert_eq!(contents(&open_cache_file(&b)), remote, "cache b");
    let tasks = &remote[0];
    for (i, build) in builds.iter().enumerate() {
        for tag in [format!("r{i}"), format!("c{i}")] {
            assert!(
                tasks.contains(&vec![tag.clone(), format!("edited by {tag}")]),
                "{tag} ({}): {tasks:?}",
                build.version
            );
        }
    }
    assert_eq!(tasks.len(), 1 + 2 * builds.len(), "{tasks:?}");
    for table in &remote[1..] {
        // notes: 1 + 2 per writer; files, points: 1 per writer; tags: 2 per writer.
        assert!(table.len() >= 2 * builds.len(), "{table:?}");
    }
    assert_eq!(remote[1].len(), 1 + 4 * builds.len(), "{:?}", remote[1]);
    assert_eq!(remote[2].len(), 2 * builds.len(), "{:?}", remote[2]);
    assert_eq!(remote[4].len(), 4 * builds.len(), "{:?}", remote[4]);
    let pending = sharecache::store::journal::pending(&open_cache_file(&a)).unwrap();
    assert_eq!(pending, 0, "every change of cache a was pushed");
}

#[test]
fn a_remote_set_up_by_the_previous_sharecache_stops_breaking_old_writers_after_one_sync() {
    let builds = builds();
    let Some(floor) = builds.first() else {
        return;
    };
    let share = Share::with_schema(SCHEMA);
    let a = share.client("a");
    // Back to the previous format, as the last release left remotes: change-log triggers that
    // build JSON keys, JSON keys in the log, migrations 4 (core-SQL keys) and 5 (write ids, moved
    // share) not applied. The runner applies the steps above the highest recorded version, so
    // every later step is undone too.
    let remote = share.remote();
    let col = vec!["id".to_string()];
    for prefix in ["NEW", "OLD"] {
        let new_key = sharecache::sql::key_expr(prefix, &col);
        let old_key = format!(
            "json_array(CASE WHEN typeof({prefix}.\"id\") = 'blob' THEN json_object('$blob', hex({prefix}.\"id\")) ELSE {prefix}.\"id\" END)"
        );
        let triggers: Vec<(String, String)> = remote
            .prepare(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'notes'",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (name, sql) in triggers.into_iter().filter(|t| t.1.contains(&new_key)) {
            remote
                .execute_batch(&format!(
                    "DROP TRIGGER \"{name}\"; {};",
                    sql.replace(&new_key, &old_key)
                ))
                .unwrap();
        }
    }
    remote
        .execute_batch(
            "DROP TRIGGER sharecache_log_key_format;
             INSERT INTO notes VALUES (2, 'logged by the JSON trigger');
             ALTER TABLE sharecache_log DROP COLUMN write_id;
             ALTER TABLE sharecache_meta DROP COLUMN moved_to;
             DELETE FROM sharecache_migrations WHERE version >= 4;",
        )
        .unwrap();
    let json_keys: i64 = crate::support::one(
        &remote,
        "SELECT count(*) FROM sharecache_log WHERE pk = '[2]'",
    );
    assert_eq!(json_keys, 1, "the previous format is in place");
    let broken = floor
        .run(
            &share.remote_path(),
            "INSERT INTO notes VALUES (3, 'old app')",
        )
        .unwrap_err();
    assert!(broken.contains("json_array"), "{broken}");

    drop(a);
    let a = share.client("a"); // the upgraded client starts and syncs once
    a.sync_now().unwrap();
    // A client of the previous release cannot append JSON keys any more (its push fails loudly).
    let refused = remote
        .execute(
            "INSERT INTO sharecache_log (rev, tbl, pk, stamp, origin) VALUES (1000, 'notes', '[9]', 's', 'o')",
            [],
        )
        .unwrap_err();
    assert!(
        refused.to_string().contains("upgrade sharecache"),
        "{refused}"
    );
    floor.write(
        &share.remote_path(),
        "INSERT INTO notes VALUES (3, 'old app'); UPDATE notes SET body = 'old app, edited' WHERE id = 2;",
    );
    let keys = rows(
        &remote,
        "SELECT pk FROM sharecache_log WHERE tbl = 'notes' ORDER BY rev",
    );
    assert!(
        keys.iter().all(|k| !k[0].starts_with('[')),
        "every key converted: {keys:?}"
    );
    a.sync_now().unwrap();
    assert_eq!(
        rows(&open_cache_file(&a), "SELECT * FROM notes ORDER BY id"),
        rows(&remote, "SELECT * FROM notes ORDER BY id"),
    );
    assert_eq!(
        crate::support::one::<String>(&open_cache_file(&a), "SELECT body FROM notes WHERE id = 2"),
        "old app, edited"
    );
}
