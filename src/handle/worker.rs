//! The background sync thread.
//!
//! One named thread runs the sync loop; the handle talks to it over a `crossbeam-channel`:
//! sync now (with a reply), pause, resume, reconfigure (hot reload), shutdown (push what is
//! pending within a time limit, then stop). It syncs every `sync_interval`; after an offline or
//! locked share it retries with exponential backoff and jitter, capped at the interval, and the
//! first successful sync after that clears the offline state without anyone's help. An idle
//! cycle costs one small read of the remote.
//!
//! Only one sync runs per cache across processes: each cycle takes the cache's sync lock
//! (`flock`); when another process holds it, the cycle is skipped and retried shortly. While the
//! thread lives it also holds the cache's *worker lock*, which is how `status` tells that a sync
//! thread or daemon is running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, bounded, never, select, unbounded};

use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::remote::retry::backoff;
use crate::store::{CachePaths, LocalError, lock};
use crate::sync::{Engine, SyncReport};

/// A command for the sync thread.
pub(crate) enum Command {
    /// Sync now; send the outcome if a reply channel is given.
    SyncNow(Option<Sender<Result<SyncReport, Error>>>),
    /// Stop syncing on the interval (commands still work).
    Pause,
    /// Resume syncing on the interval (and sync at once).
    Resume,
    /// Apply a new configuration.
    Reconfigure(Box<Config>),
    /// Push what is pending (one last sync), then stop.
    Shutdown(Sender<()>),
}

/// What the handle sees of the thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Interval syncs are paused.
    pub paused: AtomicBool,
    /// A sync found that the cache cannot work; the handle has fallen back.
    pub fatal: AtomicBool,
}

/// Called by the thread when the cache cannot work; returns whether the handle fell back to
/// direct access (if not, e.g. because the remote is unreachable too, the thread retries later).
pub(crate) type OnFatal = Box<dyn Fn(&LocalError) -> bool + Send>;

/// Handle on a running sync thread.
pub(crate) struct Worker {
    tx: Sender<Command>,
    handle: Option<JoinHandle<()>>,
    pub shared: Arc<Shared>,
}

/// How long a background cycle waits for another process's sync before skipping.
const LOCK_WAIT: Duration = Duration::from_millis(200);
/// Retry soon after a skipped cycle.
const SKIPPED_RETRY: Duration = Duration::from_secs(1);

impl Worker {
    /// Starts the thread. Fails (`Ok(None)`) only if the worker lock cannot be created.
    pub fn spawn(
        engine: Arc<Mutex<Engine>>,
        paths: CachePaths,
        config: Config,
        on_fatal: OnFatal,
    ) -> std::io::Result<Worker> {
        let (tx, rx) = unbounded();
        let shared = Arc::new(Shared::default());
        let worker_lock = lock::acquire(&worker_lock_path(&paths), Duration::ZERO)?;
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("sharecache-sync".into())
            .spawn(move || {
                let _held = worker_lock; // status reads "a sync thread is running" while this lives
                run(engine, paths, config, rx, s, on_fatal);
            })?;
        Ok(Worker {
            tx,
            handle: Some(handle),
            shared,
        })
    }

    /// Whether interval syncs are paused.
    pub fn paused(&self) -> bool {
        self.shared.paused.load(Ordering::Relaxed)
    }

    /// A sender for commands (for the config watcher).
    pub fn sender(&self) -> Sender<Command> {
        self.tx.clone()
    }

    /// Sends a command (ignored if the thread is gone).
    pub fn send(&self, c: Command) {
        let _ = self.tx.send(c);
    }

    /// Asks for a sync and waits for its outcome.
    pub fn sync_now(&self) -> Option<Result<SyncReport, Error>> {
        let (reply, rx) = bounded(1);
        self.tx.send(Command::SyncNow(Some(reply))).ok()?;
        rx.recv().ok()
    }

    /// Stops the thread: one last sync to push what is pending, waiting at most `timeout`.
    /// Returns whether the thread finished in time (if not, it is left to finish on its own).
    pub fn shutdown(&mut self, timeout: Duration) -> bool {
        let (done, rx) = bounded(1);
        if self.tx.send(Command::Shutdown(done)).is_err() {
            return true;
        }
        match rx.recv_timeout(timeout) {
            Ok(()) => {
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
                true
            }
            Err(_) => {
                tracing::warn!(
                    ?timeout,
                    "the sync thread did not finish in time; pending writes stay queued in the cache"
                );
                false
            }
        }
    }
}

/// The file whose lock tells that a sync thread or daemon runs for this cache.
pub fn worker_lock_path(paths: &CachePaths) -> std::path::PathBuf {
    paths.lock.with_extension("worker-lock")
}

/// Whether a sync thread or daemon (in any process) runs for this cache, and its holder.
pub fn worker_running(paths: &CachePaths) -> Option<String> {
    let p = worker_lock_path(paths);
    if !p.exists() {
        return None;
    }
    match lock::acquire(&p, Duration::ZERO) {
        Ok(Some(_free)) => None,
        Ok(None) => Some(lock::holder(&p)),
        Err(_) => None,
    }
}

/// What the loop does next.
enum Action {
    /// Sync, answering `reply` if given.
    Sync(Option<Sender<Result<SyncReport, Error>>>),
    /// Sync one last time, then stop (and signal `done` if given).
    Stop(Option<Sender<()>>),
    /// Nothing to do (a setting changed).
    Nothing,
}

/// The loop.
fn run(
    engine: Arc<Mutex<Engine>>,
    paths: CachePaths,
    mut config: Config,
    rx: Receiver<Command>,
    shared: Arc<Shared>,
    on_fatal: OnFatal,
) {
    let mut next = Some(Instant::now()); // sync at start
    let mut failures = 0u32;
    loop {
        let paused = shared.paused.load(Ordering::Relaxed);
        let timer = match next {
            Some(t) if !paused => after(t.saturating_duration_since(Instant::now())),
            _ => never(),
        };
        let action = select! {
            recv(rx) -> cmd => match cmd {
                Ok(Command::SyncNow(reply)) => Action::Sync(reply),
                Ok(Command::Pause) => {
                    shared.paused.store(true, Ordering::Relaxed);
                    Action::Nothing
                }
                Ok(Command::Resume) => {
                    shared.paused.store(false, Ordering::Relaxed);
                    next = Some(Instant::now());
                    Action::Nothing
                }
                Ok(Command::Reconfigure(c)) => {
                    if c.sync_interval != config.sync_interval {
                        tracing::info!(interval_secs = c.sync_interval.as_secs_f64(), "sync interval changed");
                        // The new interval counts from now, but never later than the old schedule.
                        let due = Instant::now() + c.sync_interval;
                        next = Some(next.map_or(due, |n| n.min(due)));
                    }
                    config = *c;
                    engine.lock().unwrap_or_else(|e| e.into_inner()).set_config(config.clone());
                    Action::Nothing
                }
                Ok(Command::Shutdown(done)) => Action::Stop(Some(done)),
                Err(_) => Action::Stop(None), // the handle is gone
            },
            recv(timer) -> _ => Action::Sync(None),
        };
        let (reply, stop) = match action {
            Action::Nothing => continue,
            Action::Sync(reply) => (reply, None),
            Action::Stop(done) => (None, Some(done)),
        };
        let asked = reply.is_some() || stop.is_some();
        let outcome = if shared.fatal.load(Ordering::Relaxed) {
            None
        } else {
            cycle(&engine, &paths, asked)
        };
        if let Some(Err(Error::Local(e))) = &outcome {
            if e.is_fatal() {
                tracing::error!(error = %e, "the cache cannot work any more");
                if on_fatal(e) {
                    shared.fatal.store(true, Ordering::Relaxed);
                }
            }
        }
        next = if shared.fatal.load(Ordering::Relaxed) {
            None // direct mode from now on: nothing to sync
        } else {
            Some(Instant::now() + delay_after(&outcome, &config, &mut failures))
        };
        if let Some(reply) = reply {
            let _ = reply.send(outcome.unwrap_or_else(|| {
                if shared.fatal.load(Ordering::Relaxed) {
                    Ok(SyncReport {
                        idle: true,
                        ..SyncReport::default()
                    })
                } else {
                    Err(Error::SyncRunning {
                        holder: lock::holder(&paths.lock),
                    })
                }
            }));
        }
        if let Some(done) = stop {
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// One sync under the cross-process lock. `None`: another process is syncing (skipped).
fn cycle(
    engine: &Arc<Mutex<Engine>>,
    paths: &CachePaths,
    asked: bool,
) -> Option<Result<SyncReport, Error>> {
    let wait = if asked {
        Duration::from_secs(60)
    } else {
        LOCK_WAIT
    };
    let _guard = match lock::acquire(&paths.lock, wait) {
        Ok(Some(g)) => g,
        Ok(None) => {
            tracing::debug!(holder = %lock::holder(&paths.lock), "another process is syncing this cache; skipping this cycle");
            return None;
        }
        Err(e) => {
            return Some(Err(Error::Local(LocalError::Directory {
                path: paths.dir.clone(),
                source: e,
            })));
        }
    };
    let mut engine = engine.lock().unwrap_or_else(|e| e.into_inner());
    Some(engine.sync(&()))
}

/// When to sync next after an outcome.
fn delay_after(
    outcome: &Option<Result<SyncReport, Error>>,
    config: &Config,
    failures: &mut u32,
) -> Duration {
    match outcome {
        None => SKIPPED_RETRY.min(config.sync_interval),
        Some(Ok(_)) => {
            *failures = 0;
            config.sync_interval
        }
        Some(Err(e)) if matches!(e.kind(), ErrorKind::Offline | ErrorKind::Locked) => {
            *failures += 1;
            backoff(*failures, Duration::from_millis(500), config.sync_interval)
        }
        Some(Err(_)) => {
            *failures += 1;
            config.sync_interval
        }
    }
}
