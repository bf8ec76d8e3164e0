//! The background sync thread, concurrent syncs, recovery after the remote comes back, hot
//! reload and the conflict-log operations. All against both backends: the thread and the
//! operations are the handle's, whatever the remote.

use std::time::Duration;

use sharecache::{Cache, Error, ErrorKind, OpenOptions, State};

use crate::support::remote::{Backend, Remote};
use crate::support::{eventually, one, open_cache_file, sharecache};

crate::both_backends!(
    the_background_thread_pushes_a_write_within_one_interval,
    dropping_the_handle_pushes_pending_writes_before_stopping,
    sync_now_from_the_app_and_the_cli_at_once_do_not_double_apply,
    the_thread_recovers_by_itself_after_the_remote_comes_back_with_nothing_lost,
    editing_sync_interval_in_the_config_file_changes_the_cadence_of_a_running_thread,
    clear_with_pending_writes_while_offline_refuses_and_keeps_them,
    clear_rebuilds_the_cache_from_the_remote_keeping_connections_of_other_programs_working,
    restoring_a_conflict_brings_the_losing_version_back_on_all_clients,
    a_paused_thread_does_not_sync_on_its_interval_but_syncs_when_asked,
    status_tells_that_a_sync_thread_runs_for_the_cache,
    a_dead_sync_thread_is_an_error_and_nothing_syncs_on_the_callers_thread,
);

fn background(remote: &Remote, name: &str, interval: Duration) -> Cache {
    let mut cfg = remote.config(name);
    cfg.sync_interval = interval;
    cfg.background = true;
    Cache::open(cfg).unwrap()
}

fn remote_has_note(remote: &Remote, id: i64) -> bool {
    remote.one::<i64>(&format!("SELECT count(*) FROM notes WHERE id = {id}")) == 1
}

fn the_background_thread_pushes_a_write_within_one_interval(backend: Backend) {
    let remote = Remote::new(backend);
    let a = background(&remote, "a", Duration::from_secs(1));
    assert!(a.is_background());
    open_cache_file(&a)
        .execute("INSERT INTO notes (id, body) VALUES (20, 'bg')", [])
        .unwrap();
    // One interval plus the time a sync takes on the remote.
    assert!(eventually(Duration::from_secs(3), || remote_has_note(
        &remote, 20
    )));
}

fn dropping_the_handle_pushes_pending_writes_before_stopping(backend: Backend) {
    let remote = Remote::new(backend);
    let a = background(&remote, "a", Duration::from_secs(3600));
    assert!(eventually(Duration::from_secs(5), || a
        .history(1)
        .map(|h| !h.is_empty())
        .unwrap_or(false)));
    a.conn()
        .execute(
            "INSERT INTO notes (id, body) VALUES (21, 'on shutdown')",
            [],
        )
        .unwrap();
    drop(a);
    assert!(remote_has_note(&remote, 21));
}

fn sync_now_from_the_app_and_the_cli_at_once_do_not_double_apply(backend: Backend) {
    let remote = Remote::new(backend);
    let cfg_file = remote.config_file("a");
    let mut cfg = sharecache::Config::load(&cfg_file).unwrap();
    cfg.background = true;
    cfg.sync_interval = Duration::from_secs(3600);
    let a = Cache::open(cfg).unwrap();
    assert!(eventually(Duration::from_secs(5), || a
        .history(1)
        .map(|h| !h.is_empty())
        .unwrap_or(false)));
    a.conn()
        .execute_batch("WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM n WHERE i < 1199) INSERT INTO notes (id, body) SELECT i, 'x' FROM n")
        .unwrap();
    let rev_before = remote.head_rev();
    let child = sharecache()
        .arg("--config")
        .arg(&cfg_file)
        .arg("sync")
        .spawn()
        .unwrap();
    let mine = a.sync_now();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = mine.unwrap();
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM notes WHERE id >= 1000"),
        200
    );
    let rev_after = remote.head_rev();
    assert_eq!(
        rev_after - rev_before,
        200,
        "each row written once (app pushed {})",
        mine.pushed
    );
    assert_eq!(remote.conflicts().len(), 0);
    assert_eq!(a.status().unwrap().pending_writes, 0);
}

fn the_thread_recovers_by_itself_after_the_remote_comes_back_with_nothing_lost(backend: Backend) {
    let remote = Remote::new(backend);
    let a = background(&remote, "a", Duration::from_secs(1));
    remote.set_offline(true);
    for i in 0..5 {
        a.conn()
            .execute(
                "INSERT INTO notes (id, body) VALUES (?1, 'offline')",
                [30 + i],
            )
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || a
        .status()
        .unwrap()
        .state
        == State::Offline));
    let status = a.status().unwrap();
    assert_eq!(status.pending_writes, 5);
    assert!(status.offline_since.is_some());
    remote.set_offline(false);
    assert!(
        eventually(Duration::from_secs(5), || a.status().unwrap().state
            == State::Success),
        "{:?}",
        a.status().unwrap()
    );
    assert_eq!(
        remote.one::<i64>("SELECT count(*) FROM notes WHERE body = 'offline'"),
        5
    );
}

fn editing_sync_interval_in_the_config_file_changes_the_cadence_of_a_running_thread(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let file = remote.config_file("a");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("background: false", "background: true");
    std::fs::write(&file, &text).unwrap();
    let a = Cache::open(sharecache::Config::load(&file).unwrap()).unwrap();
    assert_eq!(a.config().sync_interval, Duration::from_secs(30));
    assert!(
        eventually(Duration::from_secs(5), || a.history(10).unwrap().len() == 1),
        "the start-up sync"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        a.history(10).unwrap().len(),
        1,
        "no second sync within 30 s"
    );

    // An invalid edit is rejected and the previous configuration stays in force.
    std::fs::write(&file, text.replace("sync_interval: 30", "sync_interval: 0")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.config().sync_interval, Duration::from_secs(30));

    // A valid edit takes effect within 2 seconds, without a restart.
    std::fs::write(
        &file,
        text.replace("sync_interval: 30", "sync_interval: 0.5"),
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(2), || a
        .config()
        .sync_interval
        == Duration::from_millis(500)));
    assert!(
        eventually(Duration::from_secs(4), || a.history(10).unwrap().len() >= 4),
        "syncs every half second now: {} runs",
        a.history(10).unwrap().len()
    );
}

fn clear_with_pending_writes_while_offline_refuses_and_keeps_them(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (40, 'keep me')", [])
        .unwrap();
    remote.set_offline(true);
    let err = a.clear(false, &()).unwrap_err();
    assert!(
        matches!(err, sharecache::Error::PendingWrites { pending: 1, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Offline);
    assert!(err.to_string().contains("--discard-pending"));
    let err = a.clear(true, &()).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Offline,
        "nothing is discarded while the remote cannot be rebuilt from: {err}"
    );
    assert_eq!(a.status().unwrap().pending_writes, 1);
    assert_eq!(
        one::<String>(&a.conn(), "SELECT body FROM notes WHERE id = 40"),
        "keep me"
    );
    remote.set_offline(false);
    let r = a.clear(false, &()).unwrap();
    assert_eq!(r.pushed, 1);
    assert!(remote_has_note(&remote, 40));
}

fn clear_rebuilds_the_cache_from_the_remote_keeping_connections_of_other_programs_working(
    backend: Backend,
) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let other = open_cache_file(&a);
    // A change the cache missed (written straight into the cache with capture off, as if drifted).
    other.execute_batch("UPDATE sync_state SET applying = 1; UPDATE tasks SET title = 'drifted'; UPDATE sync_state SET applying = 0;").unwrap();
    let r = a.clear(false, &()).unwrap();
    assert!(r.bytes > 0);
    assert_eq!(
        one::<String>(&other, "SELECT title FROM tasks WHERE id = 't1'"),
        "first",
        "the other connection sees the rebuilt data"
    );
    other
        .execute(
            "INSERT INTO notes (id, body) VALUES (41, 'after clear')",
            [],
        )
        .unwrap();
    a.sync_now().unwrap();
    assert!(remote_has_note(&remote, 41));
}

fn restoring_a_conflict_brings_the_losing_version_back_on_all_clients(backend: Backend) {
    let remote = Remote::new(backend);
    let a = remote.client("a");
    let b = remote.client("b");
    a.conn()
        .execute("UPDATE tasks SET title = 'loser (a)' WHERE id = 't1'", [])
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    b.conn()
        .execute("UPDATE tasks SET title = 'winner (b)' WHERE id = 't1'", [])
        .unwrap();
    b.sync_now().unwrap();
    a.sync_now().unwrap();
    let conflicts = a.conflicts(10).unwrap();
    assert_eq!(conflicts.len(), 1);
    let restored = a.restore_conflict(conflicts[0].id).unwrap();
    assert!(restored.loser_row.as_deref().unwrap().contains("loser (a)"));
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    let title =
        |c: &rusqlite::Connection| one::<String>(c, "SELECT title FROM tasks WHERE id = 't1'");
    assert_eq!(
        remote.one::<String>("SELECT title FROM tasks WHERE id = 't1'"),
        "loser (a)"
    );
    assert_eq!(title(&a.conn()), "loser (a)");
    assert_eq!(title(&b.conn()), "loser (a)");
    let stamp: String = one(&a.conn(), "SELECT updated_at FROM tasks WHERE id = 't1'");
    assert!(
        stamp > restored.winner_stamp,
        "the restored version carries a fresh stamp"
    );
}

fn a_paused_thread_does_not_sync_on_its_interval_but_syncs_when_asked(backend: Backend) {
    let remote = Remote::new(backend);
    let a = background(&remote, "a", Duration::from_millis(300));
    assert!(eventually(Duration::from_secs(5), || !a
        .history(1)
        .unwrap()
        .is_empty()));
    a.pause();
    std::thread::sleep(Duration::from_millis(400)); // let a cycle in flight finish
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (42, 'paused')", [])
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        !remote_has_note(&remote, 42),
        "no interval sync while paused"
    );
    assert!(a.status().unwrap().worker.unwrap().contains("paused"));
    a.sync_now().unwrap();
    assert!(remote_has_note(&remote, 42));
    a.resume();
}

fn status_tells_that_a_sync_thread_runs_for_the_cache(backend: Backend) {
    let remote = Remote::new(backend);
    let a = background(&remote, "a", Duration::from_secs(3600));
    assert!(a.status().unwrap().worker.is_some());
    // Another process (here: a plain status read of the same files) sees it too.
    let cfg = remote.config("a");
    let paths = sharecache::store::CachePaths::new(&cfg.cache_directory, &cfg.remote_path);
    let seen = sharecache::status::read(&cfg, &paths, "test").unwrap();
    assert!(seen.worker.is_some());
    drop(a);
    let seen = sharecache::status::read(&cfg, &paths, "test").unwrap();
    assert!(seen.worker.is_none());
    let _ = OpenOptions::default();
}

fn a_dead_sync_thread_is_an_error_and_nothing_syncs_on_the_callers_thread(backend: Backend) {
    let remote = Remote::new(backend);
    for (name, background, id) in [("fg", false, 40), ("bg", true, 41)] {
        let mut cfg = remote.config(name);
        cfg.background = background;
        cfg.sync_interval = Duration::from_millis(200);
        let a = Cache::open(cfg).unwrap();
        a.crash_worker();
        let gone = a.sync_now().unwrap_err();
        assert!(matches!(gone, Error::WorkerGone), "{name}: {gone}");
        assert!(gone.to_string().contains("sync thread"), "{name}: {gone}");
        // The app's connection still works; its writes wait in the cache, never pushed inline.
        a.conn()
            .execute("INSERT INTO notes (id, body) VALUES (?1, 'after')", [id])
            .unwrap();
        assert!(matches!(a.sync_now(), Err(Error::WorkerGone)), "{name}");
        assert!(
            matches!(a.sync_with_progress(&()), Err(Error::WorkerGone)),
            "{name}"
        );
        assert!(
            matches!(a.clear(false, &()), Err(Error::WorkerGone)),
            "{name}"
        );
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !remote_has_note(&remote, id),
            "{name}: pushed behind the caller's back"
        );
        assert_eq!(a.status().unwrap().pending_writes, 1, "{name}");
    }
}
