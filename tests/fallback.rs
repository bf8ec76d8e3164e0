//! When the cache itself cannot work, the same handle serves the remote directly, says why, and
//! loses nothing it had acknowledged. Direct mode is the share's: a PostgreSQL server has none
//! (the app needs a SQLite file), which the one test run against both backends says.

use sharecache::{Cache, Mode};

use crate::support::remote::{Backend, Remote};
use crate::support::{Share, TinyFs, one};

crate::both_backends!(a_corrupt_cache_file_is_kept_aside_and_the_app_goes_on);

fn direct_reason(cache: &Cache) -> String {
    match cache.mode() {
        Mode::Direct { reason } => reason,
        Mode::Cached => panic!("expected direct mode"),
    }
}

fn writes_land_on_the_remote(share: &Share, cache: &Cache, id: i64) {
    cache
        .conn()
        .execute("INSERT INTO notes (id, body) VALUES (?1, 'direct')", [id])
        .unwrap();
    assert_eq!(
        one::<String>(
            &share.remote(),
            &format!("SELECT body FROM notes WHERE id = {id}")
        ),
        "direct"
    );
    let s = cache.status().unwrap();
    assert_eq!(s.mode, "direct");
    assert!(!s.mode_reason.is_empty());
}

/// A cache file damaged while the app was closed: kept aside, never deleted, and the app goes on.
/// On a share it is served the remote's file directly; a server has no direct mode, so it gets a
/// new cache made from the server.
fn a_corrupt_cache_file_is_kept_aside_and_the_app_goes_on(backend: Backend) {
    let remote = Remote::new(backend);
    let path = {
        let a = remote.client("a");
        a.cache_path().unwrap().to_path_buf()
    };
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let a = remote.client("a");
    let aside: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept, not deleted");
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (60, 'after')", [])
        .unwrap();
    match backend {
        Backend::Share => {
            let reason = direct_reason(&a);
            assert!(reason.contains("cannot work"), "{reason}");
            assert!(reason.contains("damaged cache kept at"), "{reason}");
            let s = a.status().unwrap();
            assert_eq!(s.mode, "direct");
        }
        Backend::Postgres => {
            assert_eq!(a.mode(), Mode::Cached, "a new cache from the server");
            assert_eq!(
                one::<String>(&a.conn(), "SELECT title FROM tasks WHERE id = 't1'"),
                "first"
            );
            a.sync_now().unwrap();
        }
    }
    assert_eq!(
        remote.one::<String>("SELECT body FROM notes WHERE id = 60"),
        "after"
    );
}

/// Overwrites the root page of `table` in a (checkpointed, closed) cache file with garbage.
fn garble_table(path: &std::path::Path, table: &str) {
    let (page_size, root): (i64, i64) = {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        let ps = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        let root = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        (ps, root)
    };
    let mut bytes = std::fs::read(path).unwrap();
    let start = ((root - 1) * page_size) as usize;
    bytes[start..start + page_size as usize].fill(0xA5);
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn pending_writes_of_a_damaged_cache_are_salvaged_and_what_cannot_be_read_is_named() {
    let share = Share::new();
    let path = {
        let a = share.client("a");
        a.conn()
            .execute_batch(
                "INSERT INTO notes (id, body) VALUES (61, 'pending 1'), (62, 'pending 2');
                 INSERT INTO tasks (id, title) VALUES ('lost-1', 'in a damaged page');",
            )
            .unwrap();
        a.cache_path().unwrap().to_path_buf()
    };
    garble_table(&path, "tasks");
    let a = share.client("a");
    assert_eq!(
        a.mode(),
        Mode::Cached,
        "the damage is not visible until the table is read"
    );
    let err = a.sync_now().unwrap_err();
    assert_eq!(err.kind(), sharecache::ErrorKind::Local, "{err}");
    let reason = direct_reason(&a);
    assert!(
        reason.contains("salvaged 2 of 3 pending writes (1 could not be read"),
        "{reason}"
    );
    let remote = share.remote();
    assert_eq!(
        one::<i64>(&remote, "SELECT count(*) FROM notes WHERE id IN (61, 62)"),
        2
    );
    writes_land_on_the_remote(&share, &a, 65);
}

#[test]
fn a_truncated_cache_file_falls_back_and_says_what_could_not_be_salvaged() {
    let share = Share::new();
    let path = {
        let a = share.client("a");
        a.conn()
            .execute("INSERT INTO notes (id, body) VALUES (66, 'pending')", [])
            .unwrap();
        a.cache_path().unwrap().to_path_buf()
    };
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let a = share.client("a");
    let _ = a.sync_now();
    let reason = direct_reason(&a);
    assert!(reason.contains("salvaged"), "{reason}");
    let pushed: i64 = one(&share.remote(), "SELECT count(*) FROM notes WHERE id = 66");
    assert!(
        pushed == 1 || reason.contains("could not"),
        "either salvaged or named as lost: {reason}"
    );
    writes_land_on_the_remote(&share, &a, 67);
}

#[test]
fn an_unwritable_cache_directory_falls_back_to_direct_mode() {
    let share = Share::new();
    let ro = TinyFs::new(1 << 20, true);
    let mut cfg = share.config("a");
    cfg.cache_directory = ro.path.join("cache");
    let a = Cache::open(cfg).unwrap();
    let reason = direct_reason(&a);
    assert!(reason.contains("cache directory"), "{reason}");
    writes_land_on_the_remote(&share, &a, 63);
}

#[test]
fn a_cache_directory_that_cannot_exist_falls_back_to_direct_mode() {
    let share = Share::new();
    let file = share.tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let mut cfg = share.config("a");
    cfg.cache_directory = file.join("cache");
    let a = Cache::open(cfg).unwrap();
    assert!(direct_reason(&a).contains("cache directory"));
    writes_land_on_the_remote(&share, &a, 64);
}

#[test]
fn a_full_disk_at_first_open_falls_back_to_direct_mode() {
    let share = Share::with_schema(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO notes (id, body) SELECT i, hex(randomblob(100)) FROM n;",
    );
    let tiny = TinyFs::new(128 * 1024, false);
    let mut cfg = share.config("a");
    cfg.cache_directory = tiny.path.join("cache");
    let a = Cache::open(cfg).unwrap();
    assert!(
        direct_reason(&a).to_lowercase().contains("full") || direct_reason(&a).contains("space"),
        "{}",
        direct_reason(&a)
    );
    writes_land_on_the_remote(&share, &a, 5000);
}

#[test]
fn a_disk_that_fills_up_while_running_falls_back_and_pushes_the_pending_writes() {
    let share = Share::new();
    let tiny = TinyFs::new(4 << 20, false);
    let mut cfg = share.config("a");
    cfg.cache_directory = tiny.path.join("cache");
    let a = Cache::open(cfg).unwrap();
    assert_eq!(a.mode(), Mode::Cached);
    a.conn()
        .execute_batch(
            "INSERT INTO notes (id, body) VALUES (70, 'before the disk filled'), (71, 'me too');",
        )
        .unwrap();
    tiny.fill();
    // Writes the app is refused are not acknowledged; the next sync notices the cache cannot work.
    let _ = a.conn().execute(
        "INSERT INTO notes (id, body) SELECT 72, hex(randomblob(200000))",
        [],
    );
    let r = a.sync_now();
    eprintln!("sync after fill: {r:?}");
    let reason = direct_reason(&a);
    assert!(reason.contains("salvaged 2 of 2"), "{reason}");
    assert_eq!(
        one::<i64>(
            &share.remote(),
            "SELECT count(*) FROM notes WHERE id IN (70, 71)"
        ),
        2
    );
    writes_land_on_the_remote(&share, &a, 73);
}

#[test]
fn a_cache_file_deleted_while_the_app_runs_is_salvaged_and_the_handle_goes_direct() {
    let share = Share::new();
    let a = share.client("a");
    a.conn()
        .execute(
            "INSERT INTO notes (id, body) VALUES (80, 'written before the delete')",
            [],
        )
        .unwrap();
    let path = a.cache_path().unwrap().to_path_buf();
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    let _ = a.sync_now();
    let reason = direct_reason(&a);
    assert!(reason.contains("deleted or replaced"), "{reason}");
    assert_eq!(
        one::<String>(&share.remote(), "SELECT body FROM notes WHERE id = 80"),
        "written before the delete"
    );
    writes_land_on_the_remote(&share, &a, 81);
}

#[test]
fn a_background_thread_falls_back_by_itself_when_the_cache_breaks() {
    let share = Share::new();
    let mut cfg = share.config("a");
    cfg.background = true;
    cfg.sync_interval = std::time::Duration::from_millis(300);
    let a = Cache::open(cfg).unwrap();
    a.conn()
        .execute("INSERT INTO notes (id, body) VALUES (90, 'x')", [])
        .unwrap();
    let path = a.cache_path().unwrap().to_path_buf();
    std::fs::remove_file(&path).unwrap();
    assert!(crate::support::eventually(
        std::time::Duration::from_secs(5),
        || a.mode() != Mode::Cached
    ));
    assert_eq!(
        one::<String>(&share.remote(), "SELECT body FROM notes WHERE id = 90"),
        "x"
    );
    writes_land_on_the_remote(&share, &a, 91);
}

#[test]
fn a_cache_on_a_filesystem_gone_read_only_falls_back_and_its_pending_writes_reach_the_remote() {
    let share = Share::new();
    let fs = TinyFs::new(16 << 20, false);
    let mut cfg = share.config("a");
    cfg.cache_directory = fs.path.join("cache");
    {
        let a = Cache::open(cfg.clone()).unwrap();
        a.sync_now().unwrap();
        a.conn()
            .execute(
                "INSERT INTO notes (id, body) VALUES (71, 'before read-only')",
                [],
            )
            .unwrap();
    }
    // The same files seen through a read-only bind mount (remounting the filesystem itself
    // read-only fails while any process, such as a child another test spawned, has a file of it
    // open for writing).
    let ro = tempfile::tempdir().unwrap();
    let mount = |args: &[&str]| {
        let st = std::process::Command::new("mount")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "mount {args:?}");
    };
    let ro_path = ro.path().to_str().unwrap();
    mount(&["--bind", fs.path.to_str().unwrap(), ro_path]);
    let _unmount = Unmount(ro.path().to_path_buf());
    mount(&["-o", "remount,bind,ro", ro_path]);
    cfg.cache_directory = ro.path().join("cache");
    let a = Cache::open(cfg).unwrap();
    let reason = direct_reason(&a);
    assert!(
        reason.to_lowercase().contains("read-only"),
        "the reason names the read-only cache: {reason}"
    );
    let arrived: i64 = one(&share.remote(), "SELECT count(*) FROM notes WHERE id = 71");
    assert_eq!(
        arrived, 1,
        "the pending write was salvaged to the remote: {reason}"
    );
    writes_land_on_the_remote(&share, &a, 72);
}

/// Unmounts a mount point on drop.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
