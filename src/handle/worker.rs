//! The sync thread: the one owner of a cache's sync engine.
//!
//! As in sqlx's SQLite driver, one named thread owns the engine (its connections on the cache and
//! the remote), and the handle talks to it over a `crossbeam-channel`: every operation that needs
//! the engine is a [`Command`] carrying its own reply sender — sync now, sync with progress,
//! `clear` — besides pause, resume, reconfigure (hot reload) and shutdown (push what is pending
//! within a time limit, then stop). Progress of a long phase travels back to the caller's thread
//! over the command's progress channel, so a progress bar never runs on the sync thread. When the
//! thread is gone (it panicked), the caller gets [`Error::WorkerGone`]: nothing syncs on the
//! caller's thread behind its back.
//!
//! Every cached handle has the thread. With `sync.background` it also syncs every
//! `sync_interval`; after an offline or locked share it retries with exponential backoff and
//! jitter, capped at the interval, and the first successful sync after that clears the offline
//! state without anyone's help. An idle cycle costs one small read of the remote. Without it, the
//! thread syncs only when asked.
//!
//! Only one sync runs per cache across processes: each cycle takes the cache's sync lock
//! (`flock`); when another process holds it, an interval cycle is skipped and retried shortly.
//! While a background thread lives it also holds the cache's *worker lock*, which is how `status`
//! tells that a sync thread or daemon is running.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, bounded, never, select, unbounded};
use rusqlite::Connection;

use crate::config::Live;
use crate::error::{Error, ErrorKind};
use crate::remote::retry::backoff;
use crate::store::{CachePaths, LocalError, lock};
use crate::sync::{ClearReport, Engine, Progress, SyncReport};

/// One progress step of a long phase, sent back to the caller's thread.
pub(crate) struct Step {
    phase: String,
    done: u64,
    total: u64,
}

/// A command for the sync thread.
pub(crate) enum Command {
    /// Sync now and send the outcome; progress steps go to `progress` if given.
    Sync {
        progress: Option<Sender<Step>>,
        reply: Sender<Result<SyncReport, Error>>,
    },
    /// Clear the cache (see `Engine::clear`) and send the outcome.
    Clear {
        discard_pending: bool,
        progress: Sender<Step>,
        reply: Sender<Result<ClearReport, Error>>,
    },
    /// Stop syncing on the interval (commands still work).
    Pause,
    /// Resume syncing on the interval (and sync at once).
    Resume,
    /// The configuration was reloaded (the handle's [`Live`] holds the new version).
    Reconfigure,
    /// Push what is pending (one last sync, with `sync.background`), then stop.
    Shutdown(Sender<()>),
    /// Test hook: the thread panics (see `Cache::crash_worker`).
    #[cfg(feature = "failpoints")]
    Crash,
}

/// What the handle sees of the thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Interval syncs are paused.
    pub paused: AtomicBool,
    /// A sync found that the cache cannot work; the handle has fallen back.
    pub fatal: AtomicBool,
}

/// Called by the thread when the cache cannot work, with the engine's connection on the cache
/// (salvage reads through it); returns whether the handle fell back to direct access (if not,
/// e.g. because the remote is unreachable too, the thread retries later).
pub(crate) type OnFatal = Box<dyn Fn(&LocalError, Option<&Connection>) -> bool + Send>;

/// Handle on a running sync thread.
pub(crate) struct Worker {
    tx: Sender<Command>,
    handle: Option<JoinHandle<()>>,
    /// Whether the thread syncs on the interval (`sync.background`).
    background: bool,
    pub shared: Arc<Shared>,
}

/// How long a background cycle waits for another process's sync before skipping.
const LOCK_WAIT: Duration = Duration::from_millis(200);
/// How long a sync or clear asked for by the app waits for one running in another process.
pub(crate) const ASKED_LOCK_WAIT: Duration = Duration::from_secs(60);
/// Retry soon after a skipped cycle.
const SKIPPED_RETRY: Duration = Duration::from_secs(1);

impl Worker {
    /// Starts the thread, which takes `engine`. With `background`, it syncs on the interval and
    /// holds the worker lock (fails only if that lock cannot be created).
    pub fn spawn(
        engine: Engine,
        paths: CachePaths,
        config: Live,
        on_fatal: OnFatal,
        background: bool,
    ) -> std::io::Result<Worker> {
        let (tx, rx) = unbounded();
        let shared = Arc::new(Shared::default());
        let worker_lock = if background {
            lock::acquire(&worker_lock_path(&paths), Duration::ZERO)?
        } else {
            None
        };
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("sharecache-sync".into())
            .spawn(move || {
                let _held = worker_lock; // status reads "a sync thread is running" while this lives
                let interval = config.get().sync_interval;
                let mut w = Loop {
                    engine,
                    paths,
                    config,
                    interval,
                    shared: s,
                    on_fatal,
                    background,
                    failures: 0,
                };
                w.run(rx);
            })?;
        Ok(Worker {
            tx,
            handle: Some(handle),
            background,
            shared,
        })
    }

    /// Whether the thread syncs on the interval.
    pub fn background(&self) -> bool {
        self.background
    }

    /// Whether interval syncs are paused.
    pub fn paused(&self) -> bool {
        self.shared.paused.load(Ordering::Relaxed)
    }

    /// A sender for commands (for the config watcher).
    pub fn sender(&self) -> Sender<Command> {
        self.tx.clone()
    }

    /// Sends a command that needs no reply (ignored if the thread is gone).
    pub fn send(&self, c: Command) {
        let _ = self.tx.send(c);
    }

    /// Asks for a sync and waits for its outcome, passing progress steps to `progress` on this
    /// thread.
    pub fn sync(&self, progress: &dyn Progress) -> Result<SyncReport, Error> {
        self.ask(
            |progress, reply| Command::Sync {
                progress: Some(progress),
                reply,
            },
            progress,
        )
    }

    /// Asks for a `clear` and waits for its outcome.
    pub fn clear(
        &self,
        discard_pending: bool,
        progress: &dyn Progress,
    ) -> Result<ClearReport, Error> {
        self.ask(
            |progress, reply| Command::Clear {
                discard_pending,
                progress,
                reply,
            },
            progress,
        )
    }

    fn ask<T>(
        &self,
        command: impl FnOnce(Sender<Step>, Sender<Result<T, Error>>) -> Command,
        progress: &dyn Progress,
    ) -> Result<T, Error> {
        let (steps_tx, steps) = unbounded();
        let (reply, outcome) = bounded(1);
        self.tx
            .send(command(steps_tx, reply))
            .map_err(|_| Error::WorkerGone)?;
        let mut steps = Some(steps);
        loop {
            let Some(s) = &steps else {
                return outcome.recv().map_err(|_| Error::WorkerGone)?;
            };
            select! {
                recv(outcome) -> r => {
                    // Steps sent before the outcome are shown first.
                    for step in s.try_iter() {
                        progress.step(&step.phase, step.done, step.total);
                    }
                    return r.map_err(|_| Error::WorkerGone)?;
                }
                recv(s) -> step => match step {
                    Ok(step) => progress.step(&step.phase, step.done, step.total),
                    Err(_) => steps = None,
                },
            }
        }
    }

    /// Stops the thread: with `sync.background`, one last sync to push what is pending, waiting
    /// at most `timeout`. Returns whether the thread finished in time (if not, it is left to
    /// finish on its own).
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

/// Sends progress steps to the caller's thread.
struct Forward(Option<Sender<Step>>);

impl Progress for Forward {
    fn step(&self, phase: &str, done: u64, total: u64) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(Step {
                phase: phase.to_string(),
                done,
                total,
            });
        }
    }
}

/// What the loop does next.
enum Action {
    /// Sync, answering `reply` if given.
    Sync {
        progress: Forward,
        reply: Option<Sender<Result<SyncReport, Error>>>,
    },
    /// Clear, answering `reply`.
    Clear {
        discard_pending: bool,
        progress: Forward,
        reply: Sender<Result<ClearReport, Error>>,
    },
    /// Sync one last time (with `sync.background`), then stop (and signal `done` if given).
    Stop(Option<Sender<()>>),
    /// Nothing to do (a setting changed).
    Nothing,
}

/// The thread's state.
struct Loop {
    engine: Engine,
    paths: CachePaths,
    /// The handle's configuration (the engine reads it at every sync).
    config: Live,
    /// The sync interval the schedule follows.
    interval: Duration,
    shared: Arc<Shared>,
    on_fatal: OnFatal,
    background: bool,
    /// Failed cycles in a row (for the backoff).
    failures: u32,
}

impl Loop {
    fn fatal(&self) -> bool {
        self.shared.fatal.load(Ordering::Relaxed)
    }

    fn run(&mut self, rx: Receiver<Command>) {
        let mut next = self.background.then(Instant::now); // sync at start
        loop {
            let paused = self.shared.paused.load(Ordering::Relaxed);
            let timer = match next {
                Some(t) if !paused => after(t.saturating_duration_since(Instant::now())),
                _ => never(),
            };
            let action = select! {
                recv(rx) -> cmd => match cmd {
                    Ok(c) => self.command(c, &mut next),
                    Err(_) => Action::Stop(None), // the handle is gone
                },
                recv(timer) -> _ => Action::Sync { progress: Forward(None), reply: None },
            };
            match action {
                Action::Nothing => {}
                Action::Sync { progress, reply } => {
                    let asked = reply.is_some();
                    let outcome = self.sync(asked, &progress);
                    next = self.next_sync(&outcome);
                    if let Some(reply) = reply {
                        let idle = || SyncReport {
                            idle: true,
                            ..SyncReport::default()
                        };
                        let _ = reply.send(self.answer(outcome, idle));
                    }
                }
                Action::Clear {
                    discard_pending,
                    progress,
                    reply,
                } => {
                    let outcome =
                        self.locked(ASKED_LOCK_WAIT, |e| e.clear(discard_pending, &progress));
                    let _ = reply.send(self.answer(outcome, ClearReport::default));
                }
                Action::Stop(done) => {
                    if self.background {
                        // Failures are logged by the engine; what is pending stays queued.
                        let _ = self.sync(true, &Forward(None));
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    }

    fn command(&mut self, c: Command, next: &mut Option<Instant>) -> Action {
        match c {
            Command::Sync { progress, reply } => Action::Sync {
                progress: Forward(progress),
                reply: Some(reply),
            },
            Command::Clear {
                discard_pending,
                progress,
                reply,
            } => Action::Clear {
                discard_pending,
                progress: Forward(Some(progress)),
                reply,
            },
            Command::Pause => {
                self.shared.paused.store(true, Ordering::Relaxed);
                Action::Nothing
            }
            Command::Resume => {
                self.shared.paused.store(false, Ordering::Relaxed);
                if self.background {
                    *next = Some(Instant::now());
                }
                Action::Nothing
            }
            Command::Reconfigure => {
                let interval = self.config.get().sync_interval;
                if self.background && interval != self.interval {
                    tracing::info!(
                        interval_secs = interval.as_secs_f64(),
                        "sync interval changed"
                    );
                    // The new interval counts from now, but never later than the old schedule.
                    let due = Instant::now() + interval;
                    *next = Some(next.map_or(due, |n| n.min(due)));
                }
                self.interval = interval;
                Action::Nothing
            }
            Command::Shutdown(done) => Action::Stop(Some(done)),
            #[cfg(feature = "failpoints")]
            Command::Crash => panic!("sharecache: the sync thread was told to crash (test hook)"),
        }
    }

    /// One sync, unless the cache fell back to direct mode. `None`: another process is syncing
    /// (skipped; only an interval cycle gives up that soon).
    fn sync(&mut self, asked: bool, progress: &Forward) -> Option<Result<SyncReport, Error>> {
        if self.fatal() {
            return None;
        }
        let wait = if asked { ASKED_LOCK_WAIT } else { LOCK_WAIT };
        self.locked(wait, |e| e.sync(progress))
    }

    /// Runs `f` on the engine under the cross-process lock; a cache that cannot work makes the
    /// handle fall back. `None`: another process held the lock for `wait`.
    fn locked<T>(
        &mut self,
        wait: Duration,
        f: impl FnOnce(&mut Engine) -> Result<T, Error>,
    ) -> Option<Result<T, Error>> {
        let outcome = match lock::acquire(&self.paths.lock, wait) {
            Ok(Some(_guard)) => f(&mut self.engine),
            Ok(None) => {
                tracing::debug!(holder = %lock::holder(&self.paths.lock), "another process is syncing this cache");
                return None;
            }
            Err(e) => Err(Error::Local(LocalError::Directory {
                path: self.paths.dir.clone(),
                source: e,
            })),
        };
        if let Err(Error::Local(e)) = &outcome {
            if e.is_fatal() && !self.fatal() {
                tracing::error!(error = %e, "the cache cannot work any more");
                if (self.on_fatal)(e, self.engine.local()) {
                    self.shared.fatal.store(true, Ordering::Relaxed);
                }
            }
        }
        Some(outcome)
    }

    /// The reply to an operation asked for: `None` (skipped) is `nothing()` once the handle fell
    /// back to direct mode (nothing to sync), else the other process's lock.
    fn answer<T>(
        &self,
        outcome: Option<Result<T, Error>>,
        nothing: impl FnOnce() -> T,
    ) -> Result<T, Error> {
        outcome.unwrap_or_else(|| {
            if self.fatal() {
                Ok(nothing())
            } else {
                Err(Error::SyncRunning {
                    holder: lock::holder(&self.paths.lock),
                })
            }
        })
    }

    /// When to sync next after an outcome (`None`: only when asked).
    fn next_sync(&mut self, outcome: &Option<Result<SyncReport, Error>>) -> Option<Instant> {
        if !self.background || self.fatal() {
            return None; // direct mode from now on: nothing to sync
        }
        Some(Instant::now() + delay_after(outcome, self.interval, &mut self.failures))
    }
}

/// When to sync next after an outcome.
fn delay_after(
    outcome: &Option<Result<SyncReport, Error>>,
    interval: Duration,
    failures: &mut u32,
) -> Duration {
    match outcome {
        None => SKIPPED_RETRY.min(interval),
        Some(Ok(_)) => {
            *failures = 0;
            interval
        }
        Some(Err(e)) if matches!(e.kind(), ErrorKind::Offline | ErrorKind::Locked) => {
            *failures += 1;
            backoff(*failures, Duration::from_millis(500), interval)
        }
        Some(Err(_)) => {
            *failures += 1;
            interval
        }
    }
}
