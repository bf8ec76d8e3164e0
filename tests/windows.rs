//! The Windows build as a client of the slow share: `sharecache.exe` under Wine reaches the share
//! by a UNC path (`\\server\share\app.db`, a `$WINEPREFIX/dosdevices/unc/server/share` symlink to
//! the slowfs mount) beside Linux clients of the same remote.
//!
//! Needs `SHARECACHE_WINE_EXE` (the Windows `sharecache.exe`) and `WINEPREFIX` (a prefix made by
//! `ci/wine-prefix`); `ci/windows-tests` builds both and runs this module. Without them the tests
//! say they are skipped, except under `CI=true`, where that is a failure: CI must prove Windows.
//!
//! The Windows client's own writes are made as an app would: a plain SQLite connection on its
//! cache file (through the prefix's `drive_c`), captured by the cache's triggers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;

use crate::support::cli::wait_until;
use crate::support::{Share, one};

/// Wine and the Windows binary, when available.
struct Wine {
    exe: PathBuf,
    prefix: PathBuf,
}

fn wine() -> Option<Wine> {
    let exe = std::env::var_os("SHARECACHE_WINE_EXE").map(PathBuf::from);
    let prefix = std::env::var_os("WINEPREFIX").map(PathBuf::from);
    match (exe, prefix) {
        (Some(exe), Some(prefix)) if exe.is_file() && prefix.join("system.reg").is_file() => {
            Some(Wine { exe, prefix })
        }
        (exe, prefix) => {
            let why = format!(
                "SHARECACHE_WINE_EXE={exe:?} and WINEPREFIX={prefix:?} must name sharecache.exe and a prefix made by ci/wine-prefix (ci/windows-tests sets both)"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the Windows tests cannot run under CI: {why}");
            }
            eprintln!("skipped: the Windows tests need Wine: {why}");
            None
        }
    }
}

/// A share mapped into the Wine prefix as `\\server\share`, unmapped on drop.
struct Unc {
    link: PathBuf,
    server: String,
}

impl Drop for Unc {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
        let _ = std::fs::remove_dir(self.link.parent().unwrap());
    }
}

/// A Linux path as Wine's `Z:` drive shows it.
fn z(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

impl Wine {
    /// Maps `share`'s mount as `\\<unique server>\share` (mixed case, as users write it).
    fn map(&self, share: &Share) -> Unc {
        static N: AtomicU32 = AtomicU32::new(0);
        let server = format!(
            "FileServer{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        // Wine looks the server up in lowercase.
        let dir = self
            .prefix
            .join("dosdevices/unc")
            .join(server.to_lowercase());
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("share");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(share.mount.path(), &link).unwrap();
        Unc { link, server }
    }

    /// Writes a config for Windows client `name` (extra YAML lines under `database:` and `sync:`)
    /// and returns its Windows path.
    fn config(&self, share: &Share, unc: &Unc, name: &str, database: &str, sync: &str) -> String {
        let path = share.tmp.path().join(format!("{name}.win.yaml"));
        let text = format!(
            "database:\n  path: '\\\\{}\\Share\\app.db'\n  enable_cache: auto\n{database}sync:\n  busy_timeout_ms: 3000\n  lease_ttl: 3\n  background: false\n{sync}",
            unc.server
        );
        std::fs::write(&path, text).unwrap();
        z(&path)
    }

    /// A cache directory for client `name` under the share's temp dir, as a Windows path.
    fn cache_dir_line(share: &Share, name: &str) -> String {
        format!(
            "  cache_directory: '{}'\n",
            z(&share.tmp.path().join(format!("cache-{name}")))
        )
    }

    fn cmd(&self, cfg: &str, args: &[&str]) -> Command {
        let mut c = Command::new("wine");
        c.arg(&self.exe)
            .arg("--config")
            .arg(cfg)
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("RUST_LOG", "warn")
            .env_remove("SHARECACHE_CONFIG")
            .env_remove("SHARECACHE_FAILPOINT");
        c
    }

    fn run(&self, cfg: &str, args: &[&str]) -> Output {
        self.cmd(cfg, args).output().unwrap()
    }

    fn ok(&self, cfg: &str, args: &[&str]) -> String {
        let out = self.run(cfg, args);
        assert!(
            out.status.success(),
            "wine sharecache.exe {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, cfg: &str, args: &[&str]) -> Value {
        let s = self.ok(cfg, args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: {e}: {s}"))
    }

    /// The Linux path of a Windows path (`C:\…` in the prefix, `Z:\…` is `/`).
    fn linux_path(&self, win: &str) -> PathBuf {
        let (drive, rest) = win.split_at(2);
        let rest = rest.replace('\\', "/");
        match drive.to_ascii_uppercase().as_str() {
            "Z:" => PathBuf::from(rest),
            "C:" => self
                .prefix
                .join("drive_c")
                .join(rest.trim_start_matches('/')),
            other => panic!("unexpected drive {other} in {win}"),
        }
    }

    /// The Windows client's cache file, opened as an app would open it.
    fn cache_file(&self, cfg: &str) -> (Connection, PathBuf) {
        let status = self.json(cfg, &["status", "--json"]);
        let path = self.linux_path(status["cache_path"].as_str().unwrap());
        let c = Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        (c, path)
    }
}

#[test]
fn a_windows_client_over_unc_caches_under_localappdata_and_converges_with_linux_and_a_second_windows_client()
 {
    let Some(wine) = wine() else { return };
    let share = Share::new();
    let unc = wine.map(&share);
    // Client w1 uses the default cache directory, w2 one of its own.
    let w1 = wine.config(&share, &unc, "w1", "", "");
    let w2 = wine.config(&share, &unc, "w2", &Wine::cache_dir_line(&share, "w2"), "");
    wine.ok(&w1, &["sync"]);
    let status = wine.json(&w1, &["status", "--json"]);
    assert_eq!(status["mode"], "cached", "{status}");
    assert!(
        status["mode_reason"].as_str().unwrap().contains("UNC path"),
        "{status}"
    );
    let cache_path = status["cache_path"].as_str().unwrap();
    assert!(
        cache_path.starts_with(r"C:\")
            && cache_path
                .to_ascii_lowercase()
                .contains(r"\appdata\local\sharecache\cache\app-"),
        "the cache is under %LOCALAPPDATA%\\sharecache\\cache: {cache_path}"
    );
    assert_eq!(
        status["remote_path"],
        format!(r"\\{}\Share\app.db", unc.server)
    );
    wine.ok(&w2, &["sync"]);

    let linux = share.client("linux");
    let (w1_db, _) = wine.cache_file(&w1);
    let (w2_db, _) = wine.cache_file(&w2);
    w1_db
        .execute(
            "INSERT INTO notes (id, body) VALUES (101, 'from windows 1')",
            [],
        )
        .unwrap();
    w2_db
        .execute(
            "INSERT INTO notes (id, body) VALUES (102, 'from windows 2')",
            [],
        )
        .unwrap();
    linux
        .conn()
        .execute(
            "INSERT INTO notes (id, body) VALUES (103, 'from linux')",
            [],
        )
        .unwrap();
    wine.ok(&w1, &["sync"]);
    wine.ok(&w2, &["sync"]);
    linux.sync_now().unwrap();
    wine.ok(&w1, &["sync"]);
    wine.ok(&w2, &["sync"]);

    let all =
        "SELECT group_concat(body, '|') FROM (SELECT body FROM notes WHERE id > 100 ORDER BY id)";
    let expected = "from windows 1|from windows 2|from linux";
    assert_eq!(one::<String>(&share.remote(), all), expected);
    assert_eq!(one::<String>(&linux.conn(), all), expected);
    assert_eq!(one::<String>(&w1_db, all), expected);
    assert_eq!(one::<String>(&w2_db, all), expected);
    assert_eq!(wine.json(&w1, &["status", "--json"])["pending_writes"], 0);
}

#[test]
fn a_conflict_between_windows_and_linux_is_won_by_the_newest_stamp_and_the_loser_is_logged() {
    let Some(wine) = wine() else { return };
    let share = Share::new();
    let unc = wine.map(&share);
    let w = wine.config(&share, &unc, "w", &Wine::cache_dir_line(&share, "w"), "");
    wine.ok(&w, &["sync"]);
    let linux = share.client("linux");
    let (w_db, _) = wine.cache_file(&w);

    // Windows edits first (older stamp) but pushes last; Linux's newer edit must win anyway.
    w_db.execute(
        "UPDATE tasks SET title = 'windows, older' WHERE id = 't1'",
        [],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    linux
        .conn()
        .execute(
            "UPDATE tasks SET title = 'linux, newer' WHERE id = 't1'",
            [],
        )
        .unwrap();
    linux.sync_now().unwrap();
    let report = wine.json(&w, &["sync", "--json"]);
    assert_eq!(report["conflicts"], 1, "{report}");

    // Then Linux edits first and Windows later: Windows wins.
    linux
        .conn()
        .execute(
            "UPDATE tasks SET title = 'linux, older' WHERE id = 't2'",
            [],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    w_db.execute(
        "UPDATE tasks SET title = 'windows, newer' WHERE id = 't2'",
        [],
    )
    .unwrap();
    linux.sync_now().unwrap();
    wine.ok(&w, &["sync"]);
    linux.sync_now().unwrap();

    let titles = "SELECT group_concat(title, '|') FROM (SELECT title FROM tasks WHERE id IN ('t1', 't2') ORDER BY id)";
    let expected = "linux, newer|windows, newer";
    assert_eq!(one::<String>(&share.remote(), titles), expected, "remote");
    assert_eq!(one::<String>(&linux.conn(), titles), expected, "linux");
    assert_eq!(one::<String>(&w_db, titles), expected, "windows");
    let conflicts = wine.json(&w, &["conflicts", "--json"]);
    let text = conflicts.to_string();
    assert!(
        text.contains("windows, older"),
        "the loser is logged: {text}"
    );
}

#[test]
fn a_windows_sync_exits_with_the_offline_code_when_the_share_drops_and_catches_up_after() {
    let Some(wine) = wine() else { return };
    let share = Share::new();
    let unc = wine.map(&share);
    let w = wine.config(&share, &unc, "w", &Wine::cache_dir_line(&share, "w"), "");
    wine.ok(&w, &["sync"]);
    let (w_db, _) = wine.cache_file(&w);
    w_db.execute(
        "INSERT INTO notes (id, body) VALUES (201, 'written offline')",
        [],
    )
    .unwrap();

    share.control.set_offline(true);
    let out = wine.run(&w, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "the offline exit code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = wine.json(&w, &["status", "--json"]);
    assert_eq!(status["state"], "offline", "{status}");
    assert_eq!(status["pending_writes"], 1, "{status}");

    share.control.set_offline(false);
    wine.ok(&w, &["sync"]);
    assert_eq!(
        one::<String>(&share.remote(), "SELECT body FROM notes WHERE id = 201"),
        "written offline"
    );
    assert_eq!(wine.json(&w, &["status", "--json"])["pending_writes"], 0);
}

/// Sends SIGINT to the Wine process: Wine turns it into a console Ctrl-C event, which is what
/// the daemon's handler receives on Windows.
fn ctrl_c(child: &std::process::Child) {
    // SAFETY: kill(2) on the pid of our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
}

#[test]
fn a_windows_daemon_keeps_up_with_thousands_of_rows_and_pushes_what_is_pending_on_ctrl_c() {
    let Some(wine) = wine() else { return };
    let share = Share::new();
    let unc = wine.map(&share);
    let database = format!(
        "{}  sync_interval: 0.5\n",
        Wine::cache_dir_line(&share, "w")
    );
    let w = wine.config(&share, &unc, "w", &database, "");
    wine.ok(&w, &["sync"]);
    let (w_db, _) = wine.cache_file(&w);

    let mut daemon = wine
        .cmd(&w, &["daemon"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let remote = share.remote();
    // An app writing 4,000 rows in 40 transactions while the daemon syncs.
    for batch in 0..40 {
        let tx = w_db.unchecked_transaction().unwrap();
        for i in 0..100 {
            let id = 1000 + batch * 100 + i;
            tx.execute("INSERT INTO notes (id, body) VALUES (?1, 'app row')", [id])
                .unwrap();
        }
        tx.commit().unwrap();
        std::thread::sleep(Duration::from_millis(25));
    }
    wait_until(
        "the daemon to push 4,000 rows",
        Duration::from_secs(120),
        || one::<i64>(&remote, "SELECT count(*) FROM notes WHERE id >= 1000") == 4000,
    );

    // Writes pending at Ctrl-C are pushed before the daemon exits. The interval goes up first
    // (the daemon reloads its config within 2 s), so no periodic sync can push them instead.
    let cfg_file = wine.linux_path(&w);
    let text = std::fs::read_to_string(&cfg_file).unwrap();
    std::fs::write(
        &cfg_file,
        text.replace("sync_interval: 0.5", "sync_interval: 3600"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    w_db.execute(
        "INSERT INTO notes (id, body) VALUES (9001, 'pending at ctrl-c')",
        [],
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        one::<i64>(&remote, "SELECT count(*) FROM notes WHERE id = 9001"),
        0,
        "still pending when Ctrl-C comes"
    );
    ctrl_c(&daemon);
    let start = Instant::now();
    let code = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = daemon.kill();
            panic!("the daemon did not stop within 30 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut daemon.stderr.take().unwrap(), &mut log).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("daemon stopped"), "{log}");
    assert_eq!(
        one::<i64>(&remote, "SELECT count(*) FROM notes WHERE id = 9001"),
        1,
        "pending at Ctrl-C, pushed before exit: {log}"
    );
}

#[test]
fn killing_a_windows_sync_mid_push_loses_nothing() {
    let Some(wine) = wine() else { return };
    let share = Share::new();
    let unc = wine.map(&share);
    let w = wine.config(
        &share,
        &unc,
        "w",
        &Wine::cache_dir_line(&share, "w"),
        "  batch_size: 50\n",
    );
    wine.ok(&w, &["sync"]);
    let (w_db, _) = wine.cache_file(&w);
    let tx = w_db.unchecked_transaction().unwrap();
    for id in 0..3000 {
        tx.execute("INSERT INTO notes (id, body) VALUES (?1 + 5000, 'x')", [id])
            .unwrap();
    }
    tx.commit().unwrap();

    let remote = share.remote();
    let count = || one::<i64>(&remote, "SELECT count(*) FROM notes WHERE id >= 5000");
    let mut sync = wine
        .cmd(&w, &["sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some batches landed and others have not.
    wait_until("the first batches to land", Duration::from_secs(60), || {
        count() > 0
    });
    sync.kill().unwrap(); // SIGKILL: Wine's process dies as a Windows process killed at once
    sync.wait().unwrap();
    let landed = count();
    assert!(landed < 3000, "killed mid-push ({landed} landed)");

    wine.ok(&w, &["sync"]);
    assert_eq!(count(), 3000, "every row reached the remote");
    assert_eq!(
        one::<i64>(
            &remote,
            "SELECT count(DISTINCT id) FROM notes WHERE id >= 5000"
        ),
        3000
    );
    assert_eq!(wine.json(&w, &["status", "--json"])["pending_writes"], 0);
}

#[test]
fn a_damaged_windows_cache_falls_back_to_direct_mode_and_is_kept_aside() {
    let Some(wine) = wine() else { return };
    let share = Share::new();
    let unc = wine.map(&share);
    let w = wine.config(&share, &unc, "w", &Wine::cache_dir_line(&share, "w"), "");
    wine.ok(&w, &["sync"]);
    let (db, path) = wine.cache_file(&w);
    drop(db);
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let _ = std::fs::remove_file(path.with_extension("db-wal"));

    let out = wine.ok(&w, &["sync"]);
    assert!(out.contains("direct mode"), "{out}");
    assert!(out.contains("damaged cache kept at"), "{out}");
    let aside = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .count();
    assert_eq!(aside, 1, "the damaged file is kept, not deleted");
}

#[test]
fn a_long_non_ascii_unc_path_and_cache_directory_work_from_windows() {
    let Some(wine) = wine() else { return };
    let share = Share::empty();
    // More than 260 characters in all (Windows' classic MAX_PATH), non-ASCII on both sides.
    let sub = format!(
        "Données partagées/{}/{}/{}",
        "é".repeat(60),
        "k".repeat(120),
        "m".repeat(100)
    );
    let dir = share.backing().join(&sub);
    std::fs::create_dir_all(&dir).unwrap();
    Connection::open(dir.join("app.db"))
        .unwrap()
        .execute_batch(
            "PRAGMA journal_mode = DELETE;
             CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);",
        )
        .unwrap();
    let unc = wine.map(&share);
    let remote = format!(r"\\{}\Share\{}\app.db", unc.server, sub.replace('/', "\\"));
    assert!(remote.chars().count() > 260, "{}", remote.chars().count());
    let cfg = share.tmp.path().join("long.win.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database:\n  path: '{remote}'\n  enable_cache: auto\n  cache_directory: '{}'\nsync:\n  background: false\n",
            z(&share.tmp.path().join("caché ü"))
        ),
    )
    .unwrap();
    let cfg = z(&cfg);
    wine.ok(&cfg, &["sync"]);
    let (db, path) = wine.cache_file(&cfg);
    assert!(
        path.to_string_lossy().contains("caché ü"),
        "{}",
        path.display()
    );
    db.execute("INSERT INTO notes (id, body) VALUES (1, 'ünïcödé row')", [])
        .unwrap();
    wine.ok(&cfg, &["sync"]);
    let on_remote = Connection::open(share.mount.path().join(&sub).join("app.db")).unwrap();
    assert_eq!(
        one::<String>(&on_remote, "SELECT body FROM notes WHERE id = 1"),
        "ünïcödé row"
    );
}
