//! A cache belongs to a remote database, not to a path string: a moved database takes over the
//! old cache's pending writes, a copy is never adopted silently, direct mode pushes pending writes
//! first (or refuses), and `status` reports any cache left behind holding writes.

use std::path::{Path, PathBuf};

use sharecache::{Cache, EnableCache, Error, ErrorKind};

use crate::reliability::assert_same_content;
use crate::support::cli::{cli, json, ok};
use crate::support::{Share, one};

fn title(c: &rusqlite::Connection) -> String {
    one(c, "SELECT title FROM tasks WHERE id = 't1'")
}

/// Client `name` on the database at `path` (same cache directory as `share.client(name)`).
fn config_at(share: &Share, name: &str, path: &Path) -> sharecache::Config {
    let mut c = share.config(name);
    c.remote_path = path.to_path_buf();
    c
}

/// Leaves one pending write in client a's cache (closed), and returns the cache file.
fn pending_in_a(share: &Share) -> PathBuf {
    let a = share.client("a");
    a.conn()
        .execute(
            "UPDATE tasks SET title = 'pending in a' WHERE id = 't1'",
            [],
        )
        .unwrap();
    assert_eq!(a.status().unwrap().pending_writes, 1);
    a.cache_path().unwrap().to_path_buf()
}

fn pending_in(file: &Path) -> i64 {
    let c = rusqlite::Connection::open(file).unwrap();
    sharecache::store::journal::pending(&c).unwrap()
}

/// A config file for client `name` on the database at `path`.
fn config_file_at(share: &Share, name: &str, path: &Path) -> PathBuf {
    let file = share.config_file(name);
    let text = std::fs::read_to_string(&file).unwrap().replace(
        &share.remote_path().display().to_string(),
        &path.display().to_string(),
    );
    let file = file.with_extension("moved.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn a_new_path_to_a_moved_database_pushes_the_old_caches_pending_writes_first() {
    let share = Share::new();
    let old_cache = pending_in_a(&share);
    let moved = share.mount.path().join("moved.db");
    std::fs::rename(share.remote_path(), &moved).unwrap();

    let a = Cache::open(config_at(&share, "a", &moved)).unwrap();
    assert_ne!(
        a.cache_path().unwrap(),
        old_cache,
        "the new path has a cache of its own"
    );
    assert_eq!(
        pending_in(&old_cache),
        0,
        "the old cache's write was pushed first"
    );
    let moved_db = rusqlite::Connection::open(&moved).unwrap();
    assert_eq!(title(&moved_db), "pending in a");
    assert_eq!(title(&a.conn()), "pending in a");
    let status = a.status().unwrap();
    let said = status.handover.expect("status says what happened");
    assert!(
        said.contains("moved") && said.contains("1 pending writes"),
        "{said}"
    );
    assert!(status.other_caches.is_empty());
    assert!(
        a.history(5).unwrap().iter().any(|r| r.kind == "handover"),
        "history records it"
    );

    let b = Cache::open(config_at(&share, "b", &moved)).unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    assert_same_content("a", &a.conn(), &moved_db);
    assert_same_content("b", &b.conn(), &moved_db);
}

#[test]
fn a_copy_of_the_database_is_never_adopted_silently_and_adopt_pushes_on_the_admins_word() {
    let share = Share::new();
    let old_cache = pending_in_a(&share);
    let copy = share.mount.path().join("copy.db");
    std::fs::copy(share.remote_path(), &copy).unwrap();

    let refused = Cache::open(config_at(&share, "a", &copy)).unwrap_err();
    assert!(matches!(refused, Error::OtherCache { .. }), "{refused}");
    assert_eq!(refused.kind(), ErrorKind::Config);
    let msg = refused.to_string();
    assert!(
        msg.contains("sharecache adopt") && msg.contains("copy"),
        "{msg}"
    );
    assert_eq!(
        pending_in(&old_cache),
        1,
        "the write stays pending in its cache"
    );
    let copy_db = rusqlite::Connection::open(&copy).unwrap();
    assert_eq!(title(&copy_db), "first", "nothing was written to the copy");

    // The CLI refuses the same way (exit code 3), then the admin says it moved.
    let cfg = config_file_at(&share, "a", &copy);
    let out = cli(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("sharecache adopt"));
    let said = ok(&cfg, &["adopt"]);
    assert!(
        said.contains("adopted") && said.contains("1 pending writes"),
        "{said}"
    );
    assert_eq!(pending_in(&old_cache), 0);
    assert_eq!(title(&copy_db), "pending in a");
    ok(&cfg, &["sync"]);
    let history = ok(&cfg, &["history"]);
    assert!(
        history.contains("handover") && history.contains("adopted by `sharecache adopt`"),
        "{history}"
    );
    assert!(ok(&cfg, &["adopt"]).contains("nothing to adopt"));
}

#[test]
fn a_copy_gets_a_cache_of_its_own_once_the_old_caches_writes_are_synced_to_their_own_path() {
    let share = Share::new();
    pending_in_a(&share);
    let copy = share.mount.path().join("test-copy.db");
    std::fs::copy(share.remote_path(), &copy).unwrap();
    share.client("a").sync_now().unwrap();

    let test = Cache::open(config_at(&share, "a", &copy)).unwrap();
    let copy_db = rusqlite::Connection::open(&copy).unwrap();
    assert_eq!(
        title(&copy_db),
        "first",
        "production's write did not go to the copy"
    );
    assert_eq!(title(&share.remote()), "pending in a");
    assert!(test.status().unwrap().handover.is_none());
}

#[test]
fn switching_to_direct_mode_pushes_pending_writes_first_and_says_so() {
    let share = Share::new();
    let b = share.client("b");
    let cache = pending_in_a(&share);
    let mut config = share.config("a");
    config.enable_cache = EnableCache::Off;
    let direct = Cache::open(config).unwrap();
    assert_eq!(direct.mode().name(), "direct");
    assert_eq!(title(&direct.conn()), "pending in a");
    assert_eq!(pending_in(&cache), 0);
    let status = direct.status().unwrap();
    assert!(
        status
            .handover
            .as_deref()
            .unwrap_or("")
            .contains("enable_cache is off"),
        "{status:?}"
    );
    assert!(status.other_caches.is_empty(), "{status:?}");
    b.sync_now().unwrap();
    assert_same_content("b", &b.conn(), &share.remote());
}

#[test]
fn switching_to_direct_mode_refuses_while_pending_writes_cannot_be_pushed() {
    let share = Share::new();
    let cache = pending_in_a(&share);
    share.control.set_offline(true);
    let mut config = share.config("a");
    config.enable_cache = EnableCache::Off;
    let refused = Cache::open(config.clone()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Offline, "{refused}");
    assert!(refused.to_string().contains("pending writes"), "{refused}");
    assert_eq!(pending_in(&cache), 1, "kept");
    share.control.set_offline(false);
    Cache::open(config).unwrap();
    assert_eq!(pending_in(&cache), 0);
    assert_eq!(title(&share.remote()), "pending in a");
}

#[test]
fn status_reports_a_cache_left_behind_with_pending_writes_whatever_path_it_was_made_for() {
    let share = Share::new();
    let old_cache = pending_in_a(&share);
    let moved = share.mount.path().join("moved.db");
    std::fs::rename(share.remote_path(), &moved).unwrap();
    let cfg = config_file_at(&share, "a", &moved);

    let status = json(&cfg, &["status", "--json"]);
    assert_eq!(status["state"], "pending", "{status}");
    let others = status["other_caches"].as_array().unwrap();
    assert_eq!(others.len(), 1, "{status}");
    assert_eq!(others[0]["pending_writes"], 1);
    assert_eq!(others[0]["cache_path"], old_cache.display().to_string());
    let human = ok(&cfg, &["status"]);
    assert!(human.contains("left behind"), "{human}");
}

#[test]
fn config_set_says_when_each_setting_applies() {
    let share = Share::new();
    let cfg = share.config_file("a");
    let said = ok(&cfg, &["config", "set", "enable_cache", "false"]);
    assert!(said.contains("next start"), "{said}");
    assert!(!said.contains("within 2 s"), "{said}");
    let said = ok(&cfg, &["config", "set", "sync_interval", "5"]);
    assert!(said.contains("within 2 s"), "{said}");
}

#[test]
fn the_same_database_spelled_another_way_takes_over_the_pending_writes_without_refusing() {
    let share = Share::new();
    let old_cache = pending_in_a(&share);
    let respelled = share.mount.path().join(".").join("app.db");
    let a = Cache::open(config_at(&share, "a", &respelled)).unwrap();
    assert_ne!(a.cache_path().unwrap(), old_cache);
    assert_eq!(pending_in(&old_cache), 0);
    assert_eq!(title(&share.remote()), "pending in a");
    let said = a.status().unwrap().handover.unwrap();
    assert!(said.contains("same file"), "{said}");
}
