//! One origin per client instance: a cache copied to another path or machine, cloned with its
//! VM, or restored from its own backup becomes a new client, and nothing it or its original
//! acknowledged is lost or written twice. Against both backends: the instance binding is the
//! cache's, and each backend must keep the versions and registrations it implies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use sharecache::Cache;
use sharecache::OpenOptions;

use crate::support::cli::{json, ok};
use crate::support::one;
use crate::support::remote::{Backend, Remote};

crate::both_backends!(
    a_cache_copied_to_a_second_path_becomes_a_new_client_and_its_pending_edit_is_pushed_once,
    a_clone_and_its_original_editing_the_same_row_end_with_the_newer_and_the_older_in_the_conflict_log,
    a_cache_carried_to_another_machine_becomes_a_new_client_and_keeps_its_pending_edit,
    a_cache_restored_from_its_own_backup_pushes_nothing_twice_and_loses_nothing,
    a_clone_that_pushed_its_originals_pending_edit_is_not_taken_for_a_restored_remote,
);

/// Opens client `name` bound to the host identity `host` (a fake machine).
fn open_on(remote: &Remote, name: &str, host: &str) -> Cache {
    Cache::open_with(
        remote.config(name),
        OpenOptions::default().host_identity(host),
    )
    .unwrap()
}

/// Copies a closed cache file to client `to`'s cache directory, as a cloned disk would carry it.
fn copy_cache(from: &Path, remote: &Remote, to: &str) -> PathBuf {
    assert!(
        !PathBuf::from(format!("{}-wal", from.display())).exists(),
        "copy a closed cache (its WAL checkpointed)"
    );
    let dir = remote.config(to).cache_directory;
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join(from.file_name().unwrap());
    std::fs::copy(from, &dest).unwrap();
    dest
}

fn origin(c: &Cache) -> String {
    c.status().unwrap().origin.unwrap()
}

fn title(c: &Connection, id: &str) -> String {
    one(c, &format!("SELECT title FROM tasks WHERE id = '{id}'"))
}

fn set_title(c: &Cache, id: &str, title: &str) {
    c.conn()
        .execute(
            "UPDATE tasks SET title = ?2 WHERE id = ?1",
            rusqlite::params![id, title],
        )
        .unwrap();
}

/// Change-log entries of one row of `tasks`, oldest first: `(stamp, origin)`.
fn log_of(remote: &Remote, id: &str) -> Vec<(String, String)> {
    let pk = sharecache::sql::encode_key(&[rusqlite::types::Value::Text(id.into())]);
    remote.log_of("tasks", &pk)
}

fn remote_title(remote: &Remote, id: &str) -> String {
    remote.one(&format!("SELECT title FROM tasks WHERE id = '{id}'"))
}

/// The oracle: every cache holds what the remote holds.
fn converged(remote: &Remote, clients: &[&Cache]) {
    for round in 0..2 {
        for (i, c) in clients.iter().enumerate() {
            c.sync_now().unwrap();
            assert_eq!(
                c.status().unwrap().pending_writes,
                0,
                "round {round}, client {i}"
            );
        }
    }
    for (i, c) in clients.iter().enumerate() {
        remote.assert_same_content(&format!("client {i}"), &c.conn());
    }
}

fn a_cache_copied_to_a_second_path_becomes_a_new_client_and_its_pending_edit_is_pushed_once(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let a_origin = origin(&a);
    set_title(&a, "t1", "pending when copied");
    let file = a.cache_path().unwrap().to_path_buf();
    drop(a);
    copy_cache(&file, &remote, "b");

    let a = remote.client("a");
    assert_eq!(origin(&a), a_origin, "the original keeps its origin");
    let b = remote.client("b");
    let b_origin = origin(&b);
    assert_ne!(b_origin, a_origin, "the copy takes a new origin");
    assert_eq!(
        b.status().unwrap().pending_writes,
        1,
        "the copy keeps the pending edit"
    );
    let runs = b.history(5).unwrap();
    let event = runs
        .iter()
        .find(|r| r.kind == "new-origin")
        .expect("history says so");
    assert!(
        event.note.as_deref().unwrap().contains("another path"),
        "{event:?}"
    );
    // The command line says it too, for people and for scripts.
    let cfg = remote.config_file("b");
    let human = ok(&cfg, &["status"]);
    assert!(
        human.contains("new client") && human.contains(&a_origin),
        "{human}"
    );
    assert!(ok(&cfg, &["history"]).contains("new-origin"));
    let status = json(&cfg, &["status", "--json"]);
    assert_eq!(
        status["origin_change"]["former"],
        a_origin.as_str(),
        "{status}"
    );

    // Both push the same change, in either order: one version of it, no conflict.
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    assert_eq!(
        log_of(&remote, "t1").len(),
        1,
        "{:?}",
        log_of(&remote, "t1")
    );
    assert_eq!(
        log_of(&remote, "t1")[0].1,
        a_origin,
        "made before the copy: the original's version"
    );
    assert!(remote.conflicts().is_empty(), "{:?}", remote.conflicts());
    let mut both = vec![a_origin, b_origin];
    both.sort();
    assert_eq!(remote.registered(), both, "both clients are registered");
    assert_eq!(remote_title(&remote, "t1"), "pending when copied");
    converged(&remote, &[&a, &b]);
}

fn a_clone_and_its_original_editing_the_same_row_end_with_the_newer_and_the_older_in_the_conflict_log(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    a.sync_now().unwrap();
    let file = a.cache_path().unwrap().to_path_buf();
    drop(a);
    copy_cache(&file, &remote, "clone");
    let a = remote.client("a");
    let clone = remote.client("clone");
    let c = remote.client("c");

    set_title(&clone, "t1", "older (clone)");
    std::thread::sleep(Duration::from_millis(5));
    set_title(&a, "t1", "newer (original)");
    set_title(&clone, "t2", "only the clone");
    // The newer edit reaches the remote first; the clone's older one must lose, not overwrite it.
    a.sync_now().unwrap();
    let r = clone.sync_now().unwrap();
    assert_eq!(r.conflicts, 1, "the clone's older edit is a conflict");
    assert_eq!(remote_title(&remote, "t1"), "newer (original)");
    assert_eq!(remote_title(&remote, "t2"), "only the clone");
    let log = remote.conflicts();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0]
            .loser_row
            .as_deref()
            .unwrap()
            .contains("older (clone)"),
        "the loser is kept: {log:?}"
    );
    assert_eq!(log[0].loser_origin, origin(&clone));
    assert_eq!(log[0].winner_origin, origin(&a));
    converged(&remote, &[&a, &clone, &c]);
    assert_eq!(title(&c.conn(), "t1"), "newer (original)");
}

fn a_cache_carried_to_another_machine_becomes_a_new_client_and_keeps_its_pending_edit(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let b = remote.client("b");
    let a = open_on(&remote, "a", "laptop/1111");
    let old = origin(&a);
    set_title(&a, "t1", "edited on the old machine");
    drop(a);
    // Same file, same path: only the machine differs (a disk moved, a VM cloned).
    let a = open_on(&remote, "a", "desktop/2222");
    let new = origin(&a);
    assert_ne!(new, old);
    let change = a.status().unwrap().origin_change.expect("status says so");
    assert_eq!(change.former, old);
    assert!(change.reason.contains("another machine"), "{change:?}");
    a.sync_now().unwrap();
    assert_eq!(remote_title(&remote, "t1"), "edited on the old machine");
    assert!(
        remote.registered().contains(&new),
        "{:?}",
        remote.registered()
    );
    assert!(
        remote.registered().contains(&old),
        "the old machine may still run its copy: its entry stays"
    );
    set_title(&b, "t2", "from b");
    converged(&remote, &[&a, &b]);
    assert_eq!(
        origin(&open_on(&remote, "a", "desktop/2222")),
        new,
        "stays bound"
    );
}

fn a_cache_restored_from_its_own_backup_pushes_nothing_twice_and_loses_nothing(backend: Backend) {
    let remote = Remote::new(backend);
    // A client away for now holds the change log's history (pruning waits for it), so the
    // restored cache can find its own pushed change there. (Once that history is pruned, the
    // change is decided against the newest pruned stamp instead: kept in the conflict log if
    // something newer came since; see README, "Change log".)
    let away = remote.client("away");
    let b = remote.client("b");
    let a = remote.client("a");
    let old = origin(&a);
    set_title(&a, "t1", "pending at backup time");
    let file = a.cache_path().unwrap().to_path_buf();
    drop(a);
    let backup = remote.tmp().join("backup.db");
    std::fs::copy(&file, &backup).unwrap();

    // Life goes on after the backup: the pending edit is pushed, then edited again, and another
    // client edits the row after that.
    let a = remote.client("a");
    a.sync_now().unwrap();
    set_title(&a, "t2", "after the backup");
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    set_title(&b, "t1", "b after the backup");
    b.sync_now().unwrap();
    drop(a);

    // The disk dies; the backup comes back at the same path (a new file).
    std::fs::remove_file(&file).unwrap();
    std::fs::copy(&backup, &file).unwrap();
    let a = remote.client("a");
    let new = origin(&a);
    assert_ne!(new, old);
    assert_eq!(a.status().unwrap().pending_writes, 1);
    let log_before = log_of(&remote, "t1").len();
    let r = a.sync_now().unwrap();
    assert_eq!(r.conflicts, 0, "its own pushed edit is not a conflict");
    assert_eq!(
        log_of(&remote, "t1").len(),
        log_before,
        "nothing pushed twice"
    );
    assert!(remote.conflicts().is_empty(), "{:?}", remote.conflicts());
    assert_eq!(title(&a.conn(), "t1"), "b after the backup");
    assert_eq!(title(&a.conn(), "t2"), "after the backup");
    let clients = remote.registered();
    assert!(clients.contains(&new));
    assert!(
        !clients.contains(&old),
        "the replaced instance is gone: its registry entry no longer holds back pruning ({clients:?})"
    );
    converged(&remote, &[&a, &b, &away]);
}

fn a_clone_that_pushed_its_originals_pending_edit_is_not_taken_for_a_restored_remote(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let a_origin = origin(&a);
    set_title(&a, "t1", "pending when copied");
    let file = a.cache_path().unwrap().to_path_buf();
    drop(a);
    copy_cache(&file, &remote, "b");
    let b = remote.client("b");
    b.sync_now().unwrap();
    // The entry it wrote carries the former origin: its trail mark must say so, or the next sync
    // finds "its" entry missing and reconciles as if the remote had gone back in time.
    b.sync_now().unwrap();
    b.sync_now().unwrap();
    let kinds: Vec<String> = b.history(20).unwrap().into_iter().map(|r| r.kind).collect();
    assert!(!kinds.iter().any(|k| k == "reconcile"), "{kinds:?}");
    let origins: Vec<String> = log_of(&remote, "t1").into_iter().map(|e| e.1).collect();
    assert_eq!(
        origins,
        vec![a_origin],
        "one version, under the origin it was made under"
    );
}
