//! The handle an app holds: [`Cache`], opened with [`OpenOptions`], serving the app in a
//! [`Mode`].
//!
//! Opening a cache that exists touches only local files, so an app starts and works with the
//! share gone. The first open (no cache yet) needs the share: it sets sharecache up on the remote
//! if needed and copies it (see `create` and `crate::sync::snapshot`). When the cache itself
//! cannot work (corrupt, disk full, directory not writable), the same handle serves the remote
//! directly and says why ([`Mode`]), after salvaging what it can ([`salvage`]).
//!
//! This is the orchestration floor: it sits on `sync` (the engine), `remote` and `store`, and
//! owns the background `worker`. `status` and `async_cache` sit above it.

mod app;
mod create;
mod fallback;
pub mod handover;
mod options;
mod rebind;
pub mod salvage;
pub(crate) mod worker;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use rusqlite::Connection;

pub use options::{Mode, OpenOptions};
pub use salvage::Salvaged;

use crate::clock::Clock;
use crate::config::{Config, Live, Watch};
use crate::conflicts::{self, Conflict};
use crate::error::{Error, Result};
use crate::store::{CachePaths, LocalError, detect, ensure_dir, lock, open_local};
use crate::sync::metadata::{self, Run};
use crate::sync::{ClearReport, Engine, Progress, SyncReport};
use worker::{Command, Worker};

/// What the handle and its sync thread share.
struct Inner {
    /// The one copy of the configuration in force (hot reload replaces it whole).
    config: Live,
    clock: Clock,
    /// The cache's files (kept in direct mode after a fallback, for status and `clear`).
    paths: Option<CachePaths>,
    mode: RwLock<Mode>,
    /// The `enable_cache` rule that decided to use a cache (or not).
    rule: String,
    app: Mutex<Connection>,
    /// Whether `app` is a stand-in until [`Cache::conn`] first opens the cache
    /// ([`OpenOptions::hold_cache`]).
    app_deferred: std::sync::atomic::AtomicBool,
    /// The host identity the origin is bound to, when a test fakes it.
    host: Option<String>,
    /// Pending writes of caches left behind, pushed when this handle opened (direct mode).
    handovers: Vec<handover::Handover>,
}

/// A cache of one remote database: the app's connection, background sync, status and the
/// operations on them. Dropping it stops the sync thread (pushing what is pending, within
/// `sync.shutdown_timeout`).
pub struct Cache {
    inner: Arc<Inner>,
    /// The thread that owns the sync engine (every cached handle has one; `None` in direct mode
    /// from the start).
    worker: Option<Worker>,
    _watch: Option<Watch>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("mode", &self.mode())
            .field("paths", &self.inner.paths)
            .finish_non_exhaustive()
    }
}

/// How long a sync asked for by the app waits for one running in another process.
const SYNC_LOCK_WAIT: Duration = Duration::from_secs(60);

impl Cache {
    /// Opens the cache for `config.remote_path` (creating it from the remote on first use) and
    /// starts the background sync thread if `sync.background` is on.
    ///
    /// ```no_run
    /// let cache = sharecache::Cache::open(sharecache::Config::for_remote("//server/share/app.db"))?;
    /// let n: i64 = cache.conn().query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))?;
    /// # Ok::<(), sharecache::Error>(())
    /// ```
    pub fn open(config: Config) -> Result<Cache> {
        Cache::open_with(config, OpenOptions::default())
    }

    /// [`Cache::open`] with options.
    ///
    /// ```no_run
    /// use sharecache::OpenOptions;
    /// // A one-shot tool: no background thread.
    /// let cache = sharecache::Cache::open_with(
    ///     sharecache::Config::load("config.yaml".as_ref())?,
    ///     OpenOptions::default().background(false),
    /// )?;
    /// cache.sync_now()?;
    /// # Ok::<(), sharecache::Error>(())
    /// ```
    pub fn open_with(config: Config, opts: OpenOptions) -> Result<Cache> {
        let clock = opts.clock;
        let decision = detect::decide(config.enable_cache, &config.remote_path);
        let background = opts.background.unwrap_or(config.background);
        let watch = opts.watch_config.unwrap_or(background) && config.source.is_some();
        if !decision.cached {
            // Direct mode hands the app the remote's SQLite file: a server has none.
            config.share_path()?;
            let handovers = handover::before_direct(&config, clock)?;
            let live = Live::new(config);
            let mut inner = Inner::direct(live, clock, None, decision.rule.clone(), decision.rule)?;
            inner.handovers = handovers;
            return Ok(Cache {
                inner: Arc::new(inner),
                worker: None,
                _watch: None,
            });
        }
        let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
        let host = opts.host_identity;
        // The one copy of the configuration: the handle, its thread and its engine share it.
        let live = Live::new(config);
        let config = live.get();
        let mut opened = Cache::open_cached(&live, clock, host.as_deref(), &());
        if let (Err(Error::Local(e)), Some(server)) = (&opened, &config.postgres)
            && e.is_fatal()
        {
            // A server has no direct mode (the app needs a SQLite file): salvage what the cache
            // holds and set it aside, then make a new cache from the server; if that cannot work
            // either (a cache directory that cannot exist), the open fails with its cause.
            let saved = salvage::salvage(None, &paths, &config, &clock);
            tracing::error!(error = %e, server = %server.display_url(), salvage = %saved.summary(), "the cache cannot work, and a PostgreSQL remote has no direct mode: making a new cache");
            opened = Cache::open_cached(&live, clock, host.as_deref(), &());
        }
        let (inner, engine) = match opened {
            Ok((paths, mut app, mut engine)) => {
                if opts.release_cache {
                    engine.release_between_syncs(true);
                    app = Connection::open_in_memory().map_err(Error::Sqlite)?;
                }
                let inner = Inner {
                    config: live,
                    clock,
                    paths: Some(paths),
                    mode: RwLock::new(Mode::Cached),
                    rule: decision.rule,
                    app: Mutex::new(app),
                    app_deferred: opts.release_cache.into(),
                    host,
                    handovers: Vec::new(),
                };
                (inner, Some(engine))
            }
            Err(Error::Local(e)) if e.is_fatal() && config.postgres.is_none() => {
                tracing::error!(error = %e, "the cache cannot work; salvaging it and serving the remote directly");
                let saved = salvage::salvage(None, &paths, &config, &clock);
                let reason = format!("the cache cannot work: {e}; {}", saved.summary());
                let inner = Inner::direct(live, clock, Some(paths), reason, decision.rule)?;
                (inner, None)
            }
            Err(e) => return Err(e),
        };
        let inner = Arc::new(inner);
        let worker = match engine {
            Some(engine) => Some(Cache::start_worker(&inner, engine, background)?),
            None => None,
        };
        let watch = match (&worker, watch) {
            (Some(w), true) if w.background() => Cache::start_watch(&inner, w),
            _ => None,
        };
        Ok(Cache {
            inner,
            worker,
            _watch: watch,
        })
    }

    /// Starts the thread that owns `engine` (see [`worker`]).
    fn start_worker(inner: &Arc<Inner>, engine: Engine, background: bool) -> Result<Worker> {
        let paths = inner.paths.as_ref().expect("a cached handle has its files");
        let weak = Arc::downgrade(inner);
        let on_fatal = Box::new(move |e: &LocalError, local: Option<&Connection>| {
            weak.upgrade()
                .is_some_and(|inner| inner.fall_back(e, local))
        });
        let config = inner.config.clone();
        let worker =
            Worker::spawn(engine, paths.clone(), config, on_fatal, background).map_err(|e| {
                LocalError::Directory {
                    path: paths.dir.clone(),
                    source: e,
                }
            })?;
        Ok(worker)
    }

    fn start_watch(inner: &Arc<Inner>, worker: &Worker) -> Option<Watch> {
        let source = inner.config.get().source.clone()?;
        let weak = Arc::downgrade(inner);
        let tx = worker.sender();
        let watched = crate::config::watch(&source, move |loaded| {
            let Some(inner) = weak.upgrade() else { return };
            match loaded {
                Ok(new) => {
                    let reloaded = inner.config.update(|current| {
                        let applied = current.reloaded(new);
                        (applied != *current).then_some(applied)
                    });
                    if let Some(applied) = reloaded {
                        tracing::info!(file = %source_name(&applied), "configuration reloaded");
                        let _ = tx.send(Command::Reconfigure);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "config edit rejected; the previous configuration stays in force")
                }
            }
        });
        match watched {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config file; edits apply at the next start");
                None
            }
        }
    }

    /// Opens (creating if needed) the cache files: the app's connection and the sync engine.
    pub(crate) fn open_cached(
        live: &Live,
        clock: Clock,
        host: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<(CachePaths, Connection, Engine)> {
        let held = live.get();
        let config: &Config = &held;
        let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
        ensure_dir(&paths.dir)?;
        let mut handed = Vec::new();
        if !paths.db.exists() {
            let _guard = lock::acquire(&paths.lock, SYNC_LOCK_WAIT)
                .map_err(|e| LocalError::Directory {
                    path: paths.dir.clone(),
                    source: e,
                })?
                .ok_or_else(|| Error::SyncRunning {
                    holder: lock::holder(&paths.lock),
                })?;
            if !paths.db.exists() {
                handed = handover::before_new_cache(config, clock, &paths)?;
                create::create(config, &paths, clock, progress)?;
            }
        }
        let app = open_local(&paths.db, &clock, config.busy_timeout)?;
        handover::record_taken_over(&app, &paths.db, &clock, &handed)?;
        create::check_cache(&app, &paths.db, config)?;
        let rebound = Cache::check_binding(&app, &paths, &clock, host)?;
        let mut engine = Engine::open(paths.clone(), live.clone(), clock)?;
        if let Some(r) = rebound {
            tracing::warn!(former = %r.former, origin = %r.origin, reason = %r.reason, "this cache is a copy: it became a new client");
            engine.took_new_origin(r.original_gone.then_some(r.former));
        }
        Ok((paths, app, engine))
    }

    /// The app's connection: on the cache, or on the remote in direct mode. Holds a lock while
    /// the guard lives; keep it short, or open more connections on [`Cache::cache_path`].
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.inner.app()
    }

    /// How the handle serves the app now.
    pub fn mode(&self) -> Mode {
        self.inner.mode()
    }

    /// The cache file (any SQLite client may open it), or `None` in direct mode.
    pub fn cache_path(&self) -> Option<&Path> {
        match self.mode() {
            Mode::Cached => self.inner.paths.as_ref().map(|p| p.db.as_path()),
            Mode::Direct { .. } => None,
        }
    }

    /// The configuration in force (hot reload may change it).
    pub fn config(&self) -> Config {
        Config::clone(&self.inner.config.get())
    }

    /// The clock this cache stamps with.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Whether a background sync thread runs for this handle.
    pub fn is_background(&self) -> bool {
        self.worker.as_ref().is_some_and(Worker::background)
    }

    /// Syncs now: push pending local writes, then pull remote changes, and returns what it did.
    /// Runs on the handle's sync thread, waiting for it (and for a sync running in another
    /// process). In direct mode there is nothing to sync. If the sync thread is gone (it
    /// panicked), fails with [`Error::WorkerGone`].
    ///
    /// ```no_run
    /// # let cache = sharecache::Cache::open(sharecache::Config::for_remote("//s/share/app.db"))?;
    /// let report = cache.sync_now()?;
    /// println!("{} pushed, {} pulled, {} conflicts", report.pushed, report.pulled, report.conflicts);
    /// # Ok::<(), sharecache::Error>(())
    /// ```
    pub fn sync_now(&self) -> Result<SyncReport> {
        self.sync_with_progress(&())
    }

    /// [`Cache::sync_now`], reporting progress of long phases to `progress` (called on this
    /// thread).
    pub fn sync_with_progress(&self, progress: &dyn Progress) -> Result<SyncReport> {
        match self.cached_worker()? {
            Some(w) => w.sync(progress),
            None => Ok(SyncReport::default()),
        }
    }

    /// The sync thread, while the handle serves the app through the cache (`None` in direct
    /// mode).
    fn cached_worker(&self) -> Result<Option<&Worker>> {
        match (&self.worker, self.mode()) {
            (Some(w), Mode::Cached) => Ok(Some(w)),
            (None, Mode::Cached) => Err(Error::WorkerGone),
            (_, Mode::Direct { .. }) => Ok(None),
        }
    }

    /// Test hook: makes the sync thread panic, as a bug in it would (cargo feature
    /// `failpoints`, which only the test suite turns on).
    #[cfg(feature = "failpoints")]
    #[doc(hidden)]
    pub fn crash_worker(&self) {
        if let Some(w) = &self.worker {
            w.send(Command::Crash);
        }
    }

    /// Pauses interval syncs of the background thread (`sync_now` still works).
    pub fn pause(&self) {
        if let Some(w) = &self.worker {
            w.send(Command::Pause);
        }
    }

    /// Resumes interval syncs (and syncs at once).
    pub fn resume(&self) {
        if let Some(w) = &self.worker {
            w.send(Command::Resume);
        }
    }

    /// The cache's files (kept in direct mode after a fallback, for status and `clear`).
    pub(crate) fn paths(&self) -> Option<&CachePaths> {
        self.inner.paths.as_ref()
    }

    /// The `enable_cache` rule that decided to use a cache (or not).
    pub(crate) fn rule(&self) -> &str {
        &self.inner.rule
    }

    /// Pending writes of caches left behind, pushed when this handle opened (direct mode).
    pub(crate) fn handovers(&self) -> &[handover::Handover] {
        &self.inner.handovers
    }

    /// Whether the background thread's interval syncs are paused (`None`: no thread).
    pub(crate) fn worker_paused(&self) -> Option<bool> {
        self.worker.as_ref().map(Worker::paused)
    }

    /// The most recent sync runs, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<Run>> {
        self.read_cache(|c| metadata::history(c, limit))
    }

    /// The most recent logged conflicts, newest first.
    pub fn conflicts(&self, limit: usize) -> Result<Vec<Conflict>> {
        self.read_cache(|c| conflicts::list(c, limit))
    }

    /// One logged conflict.
    pub fn conflict(&self, id: i64) -> Result<Option<Conflict>> {
        self.read_cache(|c| conflicts::get(c, id))
    }

    /// Makes the losing version of conflict `id` current again, as a new local change that syncs
    /// like any other (and so reaches every client).
    pub fn restore_conflict(&self, id: i64) -> Result<Conflict> {
        if self.cache_path().is_none() {
            return Err(Error::Unsupported(
                "restoring a conflict needs the cache; this handle is in direct mode".into(),
            ));
        }
        Ok(conflicts::restore(&self.conn(), id)?)
    }

    /// Removes the cache's content and rebuilds it from the remote. Pending writes are pushed
    /// first; if they cannot be, refuses ([`Error::PendingWrites`]) unless `discard_pending`, and
    /// then exports them to a file (named in the report) before discarding. A cache that could
    /// not work (direct mode after a fallback) is created afresh.
    pub fn clear(&self, discard_pending: bool, progress: &dyn Progress) -> Result<ClearReport> {
        match (&self.inner.paths, self.mode()) {
            (Some(_), Mode::Cached) => match self.cached_worker()? {
                Some(w) => w.clear(discard_pending, progress),
                None => Ok(ClearReport::default()),
            },
            (Some(_), Mode::Direct { .. }) => {
                Cache::open_cached(
                    &self.inner.config,
                    self.inner.clock,
                    self.inner.host.as_deref(),
                    progress,
                )?;
                Ok(ClearReport::default())
            }
            (None, _) => Err(Error::Unsupported(
                "there is no cache to clear: enable_cache is off for this path".into(),
            )),
        }
    }

    fn read_cache<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let Some(paths) = &self.inner.paths else {
            return Err(Error::Unsupported(
                "there is no cache: enable_cache is off for this path".into(),
            ));
        };
        let c = Connection::open_with_flags(
            &paths.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| LocalError::from_sqlite(&paths.db, e))?;
        c.busy_timeout(Duration::from_secs(5))
            .map_err(|e| LocalError::from_sqlite(&paths.db, e))?;
        Ok(f(&c).map_err(|e| LocalError::from_sqlite(&paths.db, e))?)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(mut w) = self.worker.take() {
            let timeout = self.config().shutdown_timeout;
            w.shutdown(timeout);
        }
    }
}

fn source_name(c: &Config) -> String {
    c.source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}
