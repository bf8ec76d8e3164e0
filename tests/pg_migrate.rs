//! `sharecache migrate-remote`: a share's database moved to a PostgreSQL server with its
//! sharecache state, and the caches that synced with the share going on against the server.

use sharecache::remote::postgres::import;

use crate::support::pg;
use crate::support::{Share, rows};

/// The options an admin's `sharecache migrate-remote` writes the share with.
fn opts(share: &Share) -> sharecache::remote::RemoteOptions {
    sharecache::remote::RemoteOptions::from_config(&share.config("admin"), "migrate-remote")
}

/// `share`'s database moved to `db` (schema `public`), as `migrate-remote` does it.
fn move_to(
    share: &Share,
    db: &pg::PgDb,
) -> Result<import::Imported, sharecache::remote::RemoteError> {
    import::from_share(
        &share.remote_path(),
        &opts(share),
        &db.target(),
        "public",
        &mut |_, _| {},
    )
}

#[test]
fn a_share_moved_to_postgres_keeps_its_rows_history_and_caches() {
    let Some(db) = pg::database("migrate") else {
        return;
    };
    let share = Share::new();
    let a = share.client("a");
    let b = share.client("b");
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('m1', 'before the move')",
            [],
        )
        .unwrap();
    a.conn()
        .execute(
            "INSERT INTO tags (task_id, tag, weight) VALUES ('m1', 'x', 0.5)",
            [],
        )
        .unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    // A write b made after its last sync, left in its cache for the share.
    b.conn()
        .execute(
            "UPDATE tasks SET title = 'pending in b' WHERE id = 'm1'",
            [],
        )
        .unwrap();
    let share_rev: i64 = crate::support::one(&share.remote(), "SELECT rev FROM sharecache_meta");
    let q = "SELECT id, title, done FROM tasks ORDER BY id";
    let before = rows(&share.remote(), q);
    let mut seen = Vec::new();
    let got = import::from_share(
        &share.remote_path(),
        &opts(&share),
        &db.target(),
        "public",
        &mut |t, n| seen.push((t.to_owned(), n)),
    )
    .unwrap();
    assert_eq!(got.log.1, share_rev);
    assert!(
        got.skipped.iter().any(|(t, _)| t == "audit_log"),
        "a table without a key is named, not silently left: {:?}",
        got.skipped
    );
    let mut server = db.connect();
    let max_rev: i64 = server
        .query_one("SELECT max(rev) FROM sharecache.log", &[])
        .unwrap()
        .get(0);
    assert_eq!(max_rev, share_rev, "the log keeps its revisions");
    let share_ids: i64 = crate::support::one(
        &share.remote(),
        "SELECT count(*) FROM sharecache_log WHERE write_id IS NOT NULL",
    );
    let server_ids: i64 = server
        .query_one(
            "SELECT count(*) FROM sharecache.log WHERE write_id IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(share_ids > 0);
    assert_eq!(server_ids, share_ids, "and the writes that logged them");
    let id: String = server
        .query_one("SELECT remote_id FROM sharecache.meta", &[])
        .unwrap()
        .get(0);
    let share_id: String =
        crate::support::one(&share.remote(), "SELECT remote_id FROM sharecache_meta");
    assert_eq!(id, share_id, "the identity is kept");
    // The caches now point at the server and go on.
    drop((a, b));
    let config = |name: &str| {
        let mut c = sharecache::Config::for_remote(db.url.as_str());
        c.cache_directory = share.config(name).cache_directory;
        c.background = false;
        c
    };
    let open = |name: &str| sharecache::Cache::open(config(name)).unwrap();
    let a = open("a");
    assert_eq!(rows(&a.conn(), q), before);
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('m2', 'after the move')",
            [],
        )
        .unwrap();
    let first = a.sync_now().unwrap();
    assert!(
        first.reconciled.is_none(),
        "the cache's trail mark is found on the server: no reconcile"
    );
    // b's cache holds a write for this database (its identity) made under the share's path:
    // the first open under the server's URL refuses to guess, and says to adopt.
    let refused = match sharecache::Cache::open(config("b")) {
        Ok(_) => panic!("b's pending write for the share was passed over"),
        Err(e) => e.to_string(),
    };
    assert!(refused.contains("sharecache adopt"), "{refused}");
    let adopted =
        sharecache::handle::handover::adopt(&config("b"), sharecache::clock::Clock::system())
            .unwrap();
    assert_eq!(adopted.len(), 1, "{adopted:?}");
    let b = open("b");
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    assert_eq!(rows(&b.conn(), q), rows(&a.conn(), q));
    assert!(
        rows(&a.conn(), q).iter().any(|r| r[1] == "pending in b"),
        "b's write made before the move reached the server and a"
    );
    let title: String = server
        .query_one("SELECT title FROM tasks WHERE id = 'm2'", &[])
        .unwrap()
        .get(0);
    assert_eq!(title, "after the move");
    // A direct writer on the server reaches the caches.
    server
        .execute(
            "UPDATE tasks SET title = 'edited on the server' WHERE id = 'm2'",
            &[],
        )
        .unwrap();
    a.sync_now().unwrap();
    assert!(
        rows(&a.conn(), q)
            .iter()
            .any(|r| r[1] == "edited on the server")
    );
    // Moving the same database again copies nothing (a move whose marking of the share failed
    // is finished this way).
    let again = move_to(&share, &db).unwrap();
    assert!(again.resumed && again.tables.is_empty(), "{again:?}");
    // Another database to the same server is refused: it holds a sharecache remote now.
    let other = Share::new();
    drop(other.client("o")); // sets sharecache up there
    let refused = move_to(&other, &db).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("already holds a sharecache remote"),
        "{refused}"
    );
}

#[test]
fn a_moved_share_refuses_its_clients_and_other_programs_writes_naming_the_server() {
    let Some(db) = pg::database("migrate_moved") else {
        return;
    };
    let share = Share::new();
    let a = share.client("a");
    a.conn()
        .execute("INSERT INTO tasks (id, title) VALUES ('s1', 'synced')", [])
        .unwrap();
    a.sync_now().unwrap();
    move_to(&share, &db).unwrap();
    // A desk whose database.path still names the share: its write stays pending, the sync says
    // where the database went (without the password).
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('s2', 'after the move')",
            [],
        )
        .unwrap();
    let err = a.sync_now().unwrap_err().to_string();
    let shown = db.target().display_url();
    assert!(err.contains(&format!("moved to {shown}")), "{err}");
    assert!(!err.contains(&db.url), "no password: {err}");
    assert_eq!(a.status().unwrap().pending_writes, 1, "the write is kept");
    drop(a);
    let reopened = share.client("a");
    let err = reopened.sync_now().unwrap_err().to_string();
    assert!(err.contains("moved to"), "refused at connect too: {err}");
    drop(reopened);
    // Another program writing the share directly: refused with the same sentence; reads work.
    let direct = share.remote();
    let refused = direct
        .execute("INSERT INTO tasks (id, title) VALUES ('d1', 'direct')", [])
        .unwrap_err()
        .to_string();
    assert!(refused.contains(&format!("moved to {shown}")), "{refused}");
    let refused = direct
        .execute("UPDATE tasks SET title = 'x' WHERE id = 's1'", [])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("moved to"), "{refused}");
    let title: String = crate::support::one(&direct, "SELECT title FROM tasks WHERE id = 's1'");
    assert_eq!(title, "synced");
}

#[test]
fn migrate_remote_from_the_command_line_copies_and_says_what_next_and_refuses_a_bad_url() {
    let Some(db) = pg::database("migrate_cli") else {
        return;
    };
    let share = Share::new();
    let a = share.client("a");
    a.conn()
        .execute(
            "INSERT INTO tasks (id, title) VALUES ('c1', 'from the cli')",
            [],
        )
        .unwrap();
    a.sync_now().unwrap();
    drop(a);
    let cfg = share.config_file("a");
    let bad = crate::support::cli::cli(&cfg, &["migrate-remote", "--to", "//server/other.db"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is not a PostgreSQL URL"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let out = crate::support::cli::json(&cfg, &["migrate-remote", "--to", &db.url, "--json"]);
    let tasks = out["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "tasks")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(tasks["rows"], 3, "{out}");
    assert!(
        !out.to_string().contains(&db.url),
        "the password is not printed: {out}"
    );
    let text = crate::support::cli::cli(&cfg, &["migrate-remote", "--to", &db.url]);
    let said = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(0), "{said}");
    assert!(said.contains("already holds this database"), "{said}");
    // The desk still configured for the share is told where the database went.
    let sync = crate::support::cli::cli(&cfg, &["sync"]);
    let err = String::from_utf8_lossy(&sync.stderr);
    assert_eq!(sync.status.code(), Some(6), "{err}");
    assert!(
        err.contains("moved to") && err.contains("database.path"),
        "{err}"
    );
}

#[test]
fn a_share_last_written_by_a_sharecache_without_write_ids_moves_with_its_log() {
    let Some(db) = pg::database("migrate_old_log") else {
        return;
    };
    let share = Share::new();
    let a = share.client("a");
    a.conn()
        .execute("INSERT INTO tasks (id, title) VALUES ('o1', 'old')", [])
        .unwrap();
    a.sync_now().unwrap();
    drop(a);
    // The log as remote format 4 had it.
    share
        .remote()
        .execute_batch("ALTER TABLE sharecache_log DROP COLUMN write_id")
        .unwrap();
    let got = move_to(&share, &db).unwrap();
    assert!(got.log.0 > 0, "entries copied: {:?}", got.log);
    let nulls: i64 = db
        .connect()
        .query_one(
            "SELECT count(*) FROM sharecache.log WHERE write_id IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(nulls as u64, got.log.0);
}
