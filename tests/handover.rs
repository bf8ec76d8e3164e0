//! A cache belongs to a remote database, not to a path string: a moved database takes over the
//! old cache's pending writes, a copy is never adopted silently, direct mode pushes pending writes
//! first (or refuses), and `status` reports any cache left behind holding writes. Against both
//! backends (a server's database copied, moved, its address spelled another way), except direct
//! mode: a server has none.

use std::path::{Path, PathBuf};

use sharecache::{Cache, EnableCache, Error, ErrorKind};

use crate::support::cli::{cli, json, ok};
use crate::support::one;
use crate::support::remote::{Backend, Remote};

crate::both_backends!(
    a_new_path_to_a_moved_database_pushes_the_old_caches_pending_writes_first,
    a_copy_of_the_database_is_never_adopted_silently_and_adopt_pushes_on_the_admins_word,
    a_copy_gets_a_cache_of_its_own_once_the_old_caches_writes_are_synced_to_their_own_path,
    status_reports_a_cache_left_behind_with_pending_writes_whatever_path_it_was_made_for,
    config_set_says_when_each_setting_applies,
    the_same_database_spelled_another_way_takes_over_the_pending_writes_without_refusing,
);

fn title(c: &rusqlite::Connection) -> String {
    one(c, "SELECT title FROM tasks WHERE id = 't1'")
}

/// The title of t1 in the database at `path`.
fn title_at(remote: &Remote, path: &str) -> String {
    remote.one_at(path, "SELECT title FROM tasks WHERE id = 't1'")
}

/// Leaves one pending write in client a's cache (closed), and returns the cache file.
fn pending_in_a(remote: &Remote) -> PathBuf {
    let a = remote.client("a");
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

fn a_new_path_to_a_moved_database_pushes_the_old_caches_pending_writes_first(backend: Backend) {
    let remote = Remote::new(backend);
    let old_cache = pending_in_a(&remote);
    let moved = remote.move_database("moved.db");

    let a = Cache::open(remote.config_at("a", &moved)).unwrap();
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
    assert_eq!(title_at(&remote, &moved), "pending in a");
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

    let b = Cache::open(remote.config_at("b", &moved)).unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    remote.assert_same_content_at(&moved, "a", &a.conn());
    remote.assert_same_content_at(&moved, "b", &b.conn());
}

fn a_copy_of_the_database_is_never_adopted_silently_and_adopt_pushes_on_the_admins_word(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let old_cache = pending_in_a(&remote);
    let copy = remote.copy_database("copy.db");

    let refused = Cache::open(remote.config_at("a", &copy)).unwrap_err();
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
    assert_eq!(
        title_at(&remote, &copy),
        "first",
        "nothing was written to the copy"
    );

    // The CLI refuses the same way (exit code 3), then the admin says it moved.
    let cfg = remote.config_file_at("a", &copy);
    let out = cli(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("sharecache adopt"));
    let said = ok(&cfg, &["adopt"]);
    assert!(
        said.contains("adopted") && said.contains("1 pending writes"),
        "{said}"
    );
    assert_eq!(pending_in(&old_cache), 0);
    assert_eq!(title_at(&remote, &copy), "pending in a");
    ok(&cfg, &["sync"]);
    let history = ok(&cfg, &["history"]);
    assert!(
        history.contains("handover") && history.contains("adopted by `sharecache adopt`"),
        "{history}"
    );
    assert!(ok(&cfg, &["adopt"]).contains("nothing to adopt"));
}

fn a_copy_gets_a_cache_of_its_own_once_the_old_caches_writes_are_synced_to_their_own_path(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    pending_in_a(&remote);
    let copy = remote.copy_database("test-copy.db");
    remote.client("a").sync_now().unwrap();

    let test = Cache::open(remote.config_at("a", &copy)).unwrap();
    assert_eq!(
        title_at(&remote, &copy),
        "first",
        "production's write did not go to the copy"
    );
    assert_eq!(title_at(&remote, &remote.database_path()), "pending in a");
    assert!(test.status().unwrap().handover.is_none());
}

// Direct mode is the share's own: a server is always cached (the app works on a SQLite file,
// and a server has none to hand it).

#[test]
fn switching_to_direct_mode_pushes_pending_writes_first_and_says_so() {
    let remote = Remote::new(Backend::Share);
    let b = remote.client("b");
    let cache = pending_in_a(&remote);
    let mut config = remote.config("a");
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
    remote.assert_same_content("b", &b.conn());
}

#[test]
fn switching_to_direct_mode_refuses_while_pending_writes_cannot_be_pushed() {
    let remote = Remote::new(Backend::Share);
    let cache = pending_in_a(&remote);
    remote.set_offline(true);
    let mut config = remote.config("a");
    config.enable_cache = EnableCache::Off;
    let refused = Cache::open(config.clone()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Offline, "{refused}");
    assert!(refused.to_string().contains("pending writes"), "{refused}");
    assert_eq!(pending_in(&cache), 1, "kept");
    remote.set_offline(false);
    Cache::open(config).unwrap();
    assert_eq!(pending_in(&cache), 0);
    assert_eq!(title_at(&remote, &remote.database_path()), "pending in a");
}

fn status_reports_a_cache_left_behind_with_pending_writes_whatever_path_it_was_made_for(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let old_cache = pending_in_a(&remote);
    let moved = remote.move_database("moved.db");
    let cfg = remote.config_file_at("a", &moved);

    let status = json(&cfg, &["status", "--json"]);
    assert_eq!(status["state"], "pending", "{status}");
    let others = status["other_caches"].as_array().unwrap();
    assert_eq!(others.len(), 1, "{status}");
    assert_eq!(others[0]["pending_writes"], 1);
    assert_eq!(others[0]["cache_path"], old_cache.display().to_string());
    let human = ok(&cfg, &["status"]);
    assert!(human.contains("left behind"), "{human}");
}

fn config_set_says_when_each_setting_applies(backend: Backend) {
    let remote = Remote::new(backend);
    let cfg = remote.config_file("a");
    let said = ok(&cfg, &["config", "set", "enable_cache", "false"]);
    assert!(said.contains("next start"), "{said}");
    assert!(!said.contains("within 2 s"), "{said}");
    let said = ok(&cfg, &["config", "set", "sync_interval", "5"]);
    assert!(said.contains("within 2 s"), "{said}");
}

fn the_same_database_spelled_another_way_takes_over_the_pending_writes_without_refusing(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let old_cache = pending_in_a(&remote);
    let respelled = remote.respelled_path();
    let a = Cache::open(remote.config_at("a", &respelled)).unwrap();
    assert_ne!(a.cache_path().unwrap(), old_cache);
    assert_eq!(pending_in(&old_cache), 0);
    assert_eq!(title_at(&remote, &remote.database_path()), "pending in a");
    let said = a.status().unwrap().handover.unwrap();
    let same = match backend {
        Backend::Share => "same file",
        // One server, one database: it names what is the same.
        Backend::Postgres => "same database",
    };
    assert!(said.contains(same), "{said}");
}
