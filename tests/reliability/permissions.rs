//! Permissions (issue 5, item 9): the cache directory and every file sharecache creates in it
//! are the user's only, whatever the umask; the remote's mode and owner are left as they were,
//! and nothing is left beside it.
//!
//! `tests/share_safety.rs` checks the cache directory, the cache file and its WAL after an
//! in-process open. Here the command line runs with `umask 000` (as a service or a careless
//! login script may), and every file is checked: the cache and its `-wal`/`-shm`, the sync lock,
//! the directories created on the way, and the export of pending writes a rebuild writes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use super::figures;
use crate::support::{Share, one};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Runs `sharecache --config cfg <args>` with `umask 000`.
fn run_with_open_umask(cfg: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_sharecache"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("SHARECACHE_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn every_cache_file_and_directory_is_user_only_even_with_an_open_umask() {
    let share = Share::new();
    share
        .remote()
        .execute_batch("CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT)")
        .unwrap();
    // The cache directory is two levels below an existing directory: both are created.
    let dir = share.tmp.path().join("home/cache");
    let cfg = share.tmp.path().join("a.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database:\n  path: {}\n  enable_cache: true\n  cache_directory: {}\nsync:\n  lease_ttl: 3\n",
            share.remote_path().display(),
            dir.display()
        ),
    )
    .unwrap();
    run_with_open_umask(&cfg, &["sync"]);
    // A pending write to a table the remote then drops: the next sync rebuilds the cache and
    // exports that write to a file beside it.
    {
        // Without a sync thread: its shutdown would push the write before the table goes.
        let a = sharecache::Cache::open_with(
            sharecache::Config::load(&cfg).unwrap(),
            sharecache::OpenOptions::default().background(false),
        )
        .unwrap();
        a.conn()
            .execute(
                "INSERT INTO projects VALUES ('p1', 'kept in the export')",
                [],
            )
            .unwrap();
    }
    share.remote().execute_batch("DROP TABLE projects").unwrap();
    run_with_open_umask(&cfg, &["sync"]);
    // A connection open on the cache keeps its -wal and -shm files while we look.
    let holder = rusqlite::Connection::open(
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "db"))
            .unwrap(),
    )
    .unwrap();
    let _: i64 = one(&holder, "SELECT count(*) FROM sync_state");

    assert_eq!(
        mode(&share.tmp.path().join("home")),
        0o700,
        "created parent"
    );
    assert_eq!(mode(&dir), 0o700, "cache directory");
    let mut files = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        files.push((
            p.file_name().unwrap().to_string_lossy().into_owned(),
            mode(&p),
        ));
    }
    files.sort();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.iter().any(|n| n.ends_with(".db"))
            && names.iter().any(|n| n.ends_with(".db-wal"))
            && names.iter().any(|n| n.ends_with(".db-shm"))
            && names.iter().any(|n| n.ends_with(".sync-lock"))
            && names.iter().any(|n| n.starts_with("pending-export-")),
        "expected the cache, its WAL and shm, the sync lock and an export: {names:?}"
    );
    let loose: Vec<_> = files.iter().filter(|(_, m)| *m != 0o600).collect();
    assert!(
        loose.is_empty(),
        "files that others can read or write: {loose:?}"
    );
    figures("permissions", &[("files_checked", files.len() as u64 + 2)]);
}

#[test]
fn the_remotes_mode_and_owner_are_left_as_they_were_and_nothing_is_left_beside_it() {
    for (mode_before, owner) in [(0o640, (1234, 5678)), (0o666, (0, 0)), (0o600, (0, 0))] {
        let share = Share::new();
        let remote = share.backing().join("app.db");
        std::fs::set_permissions(&remote, std::fs::Permissions::from_mode(mode_before)).unwrap();
        std::os::unix::fs::chown(&remote, Some(owner.0), Some(owner.1)).unwrap();
        let dir_mode = mode(&share.backing());
        // First open sets sharecache up on the remote (writes), then push and pull.
        let a = share.client("a");
        let b = share.client("b");
        a.conn()
            .execute("INSERT INTO notes (id, body) VALUES (5, 'x')", [])
            .unwrap();
        a.sync_now().unwrap();
        b.sync_now().unwrap();
        let m = std::fs::metadata(&remote).unwrap();
        assert_eq!(
            (m.permissions().mode() & 0o777, m.uid(), m.gid()),
            (mode_before, owner.0, owner.1),
            "the remote's mode and owner changed"
        );
        assert_eq!(
            mode(&share.backing()),
            dir_mode,
            "the share directory's mode changed"
        );
        let beside: Vec<String> = std::fs::read_dir(share.backing())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(beside, vec!["app.db".to_string()], "left beside the remote");
    }
}
