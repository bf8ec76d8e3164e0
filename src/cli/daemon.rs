//! `sharecache daemon`: the background sync loop as a foreground process, for apps that are not
//! written in Rust and simply open the cache file.
//!
//! It opens the cache with the library's sync thread (which also hot-reloads `config.yaml`), logs
//! every finished sync run, and on a stop signal drops the cache, which pushes pending writes
//! within `sync.shutdown_timeout`, then exits 0. A second signal stops it at once.
//!
//! Stop signals (the `ctrlc` crate): SIGINT, SIGTERM and SIGHUP on Unix; Ctrl-C, Ctrl-Break and
//! closing the console window on Windows. Windows ends a process whose console is closed as soon
//! as the handler has returned: then the pending writes stay in the cache (nothing is lost) and
//! are pushed by the next sync.
//!
//! It holds no connection on the cache between syncs ([`OpenOptions::hold_cache`]): the apps
//! beside it open the cache with their own startup pragmas (`journal_mode=DELETE`,
//! `locking_mode=EXCLUSIVE`), which fail or block while another connection is open. A cache
//! held by such an app is waited for, at start as between syncs, never a reason to stop.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use sharecache::store::CachePaths;
use sharecache::sync::metadata::{self, Run};
use sharecache::{Cache, Config, ErrorKind, Mode, OpenOptions};

use super::Failure;
use super::local;

/// How often the loop looks for finished runs to log.
const POLL: Duration = Duration::from_millis(500);

/// How often a daemon waiting for a cache held by another program tries again.
const LOCKED_RETRY: Duration = Duration::from_secs(1);

/// Runs `sharecache daemon` until a signal.
pub fn run(config: Config) -> anyhow::Result<()> {
    // Signals first: a stop asked during a long first open is honoured right after it.
    let stop = stop_on_signals()?;
    if let Some(holder) = super::status::status_of(&config)
        .ok()
        .and_then(|s| s.worker)
    {
        return Err(Failure::new(
            5,
            format!("a sync thread or daemon already runs for this cache ({holder})"),
        )
        .into());
    }
    let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
    let mut last = if paths.db.exists() {
        last_run_id(&paths.db)
    } else {
        0
    };
    let interval = config.sync_interval;
    let Some(cache) = open_waiting(config, &stop)? else {
        return Ok(()); // stopped while waiting for the cache
    };
    if let Mode::Direct { reason } = cache.mode() {
        return Err(Failure::new(
            3,
            format!("nothing for a daemon to sync: {reason} (reads and writes go directly to the remote)"),
        )
        .into());
    }
    let db = paths.db.clone();
    tracing::info!(
        cache = %db.display(),
        remote = %cache.config().remote_path.display(),
        interval_secs = interval.as_secs_f64(),
        "daemon running; stop with Ctrl-C (or SIGTERM, Ctrl-Break)"
    );
    let mut seen = modified(&db);
    let outcome = loop {
        match stop.recv_timeout(POLL) {
            Ok(()) => {
                tracing::info!(
                    timeout_secs = cache.config().shutdown_timeout.as_secs_f64(),
                    "stopping: pushing pending writes first"
                );
                break Ok(());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        // Opened only when the cache changed: every open is a moment in which an app's
        // `PRAGMA journal_mode=DELETE` fails.
        let now = modified(&db);
        if now != seen {
            seen = now;
            last = log_runs(&db, last);
        }
        if let Mode::Direct { reason } = cache.mode() {
            break Err(Failure::new(
                7,
                format!("the cache stopped working, so the daemon stops: {reason}"),
            ));
        }
    };
    drop(cache);
    log_runs(&db, last);
    if outcome.is_ok() {
        tracing::info!("daemon stopped");
    }
    Ok(outcome?)
}

/// Catches the stop signals: the first is sent on the returned channel, a second one ends the
/// process at once (exit code 130, as a shell reports an interrupted command).
fn stop_on_signals() -> anyhow::Result<mpsc::Receiver<()>> {
    let (tx, rx) = mpsc::channel();
    let mut asked = false;
    ctrlc::set_handler(move || {
        if asked {
            eprintln!("sharecache: stopping at once; pending writes stay in the cache");
            std::process::exit(130);
        }
        asked = true;
        let _ = tx.send(());
    })?;
    Ok(rx)
}

/// The id of the newest recorded run (0 if none or unreadable).
fn last_run_id(db: &Path) -> i64 {
    local::read_only(db)
        .ok()
        .and_then(|c| metadata::history(&c, 1).ok())
        .and_then(|runs| runs.first().map(|r| r.id))
        .unwrap_or(0)
}

/// Opens the cache for the daemon, waiting while another program holds it (and giving up on a
/// signal: `None`).
fn open_waiting(config: Config, stop: &mpsc::Receiver<()>) -> anyhow::Result<Option<Cache>> {
    let mut told = false;
    loop {
        let opts = OpenOptions::default().background(true).hold_cache(false);
        match Cache::open_with(config.clone(), opts) {
            Ok(cache) => return Ok(Some(cache)),
            Err(e @ sharecache::Error::Local(_)) if e.kind() == ErrorKind::Locked => {
                if !told {
                    tracing::warn!(error = %e, "waiting for the cache");
                    told = true;
                }
                match stop.recv_timeout(LOCKED_RETRY) {
                    Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(None),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// When the cache file and its WAL were last modified (a finished sync run changes one of them).
fn modified(db: &Path) -> [Option<std::time::SystemTime>; 2] {
    let wal = {
        let mut p = db.as_os_str().to_owned();
        p.push("-wal");
        std::path::PathBuf::from(p)
    };
    [db, wal.as_path()].map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// Logs the runs finished after `last`, oldest first; returns the id to continue after (a run
/// still going is waited for). Opens the cache only for the read: the daemon holds no
/// connection between syncs.
fn log_runs(db: &Path, last: i64) -> i64 {
    let Ok(conn) = local::read_only(db) else {
        return last;
    };
    let runs = match metadata::history(&conn, 100) {
        Ok(runs) => runs,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the sync history");
            return last;
        }
    };
    let mut next = last;
    for r in runs.iter().rev().filter(|r| r.id > last) {
        if r.status == "running" {
            break;
        }
        log_run(r);
        next = r.id;
    }
    next
}

fn log_run(r: &Run) {
    let ms = r.duration_ms.unwrap_or(0);
    match &r.error {
        None => tracing::info!(
            run = r.id,
            pushed = r.pushed,
            pulled = r.pulled,
            conflicts = r.conflicts,
            ms,
            "{} {}",
            r.kind,
            r.status
        ),
        Some(error) => tracing::info!(
            run = r.id,
            ms,
            error = %error,
            "{} {}",
            r.kind,
            r.status
        ),
    }
}
