//! The local cache and the handle an app holds: [`Cache`].
//!
//! Opening a cache that exists touches only local files, so an app starts and works with the
//! share gone. The first open (no cache yet) needs the share: it sets sharecache up on the remote
//! if needed and copies it (see the `snapshot` module). When the cache itself cannot work (corrupt, disk full,
//! directory not writable), the same handle serves the remote directly and says why ([`Mode`]).

mod app;
pub mod capture;
mod create;
pub mod detect;
mod error;
mod fallback;
pub mod handover;
pub mod instance;
pub mod lock;
pub(crate) mod mirror;
mod open;
pub mod others;
mod rebind;
pub mod salvage;
pub(crate) mod snapshot;
pub mod watch;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

pub use error::LocalError;
pub use open::CachePaths;
pub use open::MIN_FREE_BYTES;
pub(crate) use open::{check_space, ensure_dir, journal_mode, open_local};
pub use salvage::Salvaged;

use crate::clock::Clock;
use crate::config::{Config, Watch};
use crate::conflicts::{self, Conflict};
use crate::error::{Error, Result};
use crate::status::Status;
use crate::sync::metadata::{self, Run};
use crate::sync::worker::{Command, Worker};
use crate::sync::{ClearReport, Engine, Progress, SyncReport};

/// How the handle serves the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Mode {
    /// Through the local cache, synced in the background.
    Cached,
    /// Directly on the remote (share-safe settings), with the reason.
    Direct {
        /// Why the cache is not used.
        reason: String,
    },
}

impl Mode {
    /// `"cached"` or `"direct"`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Cached => "cached",
            Mode::Direct { .. } => "direct",
        }
    }
}

/// Options for [`Cache::open_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// The clock stamps are taken from (shift it to test clock skew).
    pub clock: Clock,
    /// Start the background sync thread: `None` follows `sync.background` in the config.
    pub background: Option<bool>,
    /// Watch the config file and apply edits while running (default: with the background thread).
    pub watch_config: Option<bool>,
    /// Test hook: the host identity the cache's origin is bound to, instead of this machine's
    /// (a test fakes a second machine with it; see [`instance`]).
    #[doc(hidden)]
    pub host_identity: Option<String>,
    /// Release the cache file between syncs (see [`OpenOptions::hold_cache`]).
    pub release_cache: bool,
}

impl OpenOptions {
    /// Uses `clock` for this cache's stamps.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Starts (or not) the background sync thread, whatever the config says.
    pub fn background(mut self, on: bool) -> Self {
        self.background = Some(on);
        self
    }

    /// Watches (or not) the config file for edits.
    pub fn watch_config(mut self, on: bool) -> Self {
        self.watch_config = Some(on);
        self
    }

    /// Test hook: binds the cache's origin to `host` instead of this machine's identity.
    #[doc(hidden)]
    pub fn host_identity(mut self, host: &str) -> Self {
        self.host_identity = Some(host.to_string());
        self
    }

    /// Whether the handle keeps connections open on the cache file (the default). With `false`
    /// (what `sharecache daemon` uses) it holds none between syncs, so that apps opening the
    /// cache themselves can set their own startup pragmas: while any other connection is open
    /// on a WAL database, `PRAGMA journal_mode=DELETE` fails "database is locked" and
    /// `locking_mode=EXCLUSIVE` cannot take the file. [`Cache::conn`] then opens its connection
    /// at the first call.
    pub fn hold_cache(mut self, on: bool) -> Self {
        self.release_cache = !on;
        self
    }
}

/// What the handle and its sync thread share.
struct Inner {
    config: RwLock<Config>,
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
    engine: Option<Arc<Mutex<Engine>>>,
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
    /// use sharecache::cache::OpenOptions;
    /// // A one-shot tool: no background thread.
    /// let cache = sharecache::Cache::open_with(
    ///     sharecache::Config::load("config.yaml".as_ref())?,
    ///     OpenOptions::default().background(false),
    /// )?;
    /// cache.sync_now()?;
    /// # Ok::<(), sharecache::Error>(())
    /// ```
    pub fn open_with(config: Config, opts: OpenOptions) -> Result<Cache> {
        config.share_path()?;
        let clock = opts.clock;
        let decision = detect::decide(config.enable_cache, &config.remote_path);
        let background = opts.background.unwrap_or(config.background);
        let watch = opts.watch_config.unwrap_or(background) && config.source.is_some();
        if !decision.cached {
            let handovers = handover::before_direct(&config, clock)?;
            let mut inner =
                Inner::direct(config, clock, None, decision.rule.clone(), decision.rule)?;
            inner.handovers = handovers;
            return Ok(Cache {
                inner: Arc::new(inner),
                worker: None,
                _watch: None,
            });
        }
        let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
        let host = opts.host_identity;
        let inner = match Cache::open_cached(&config, clock, host.as_deref(), &()) {
            Ok((paths, mut app, mut engine)) => {
                if opts.release_cache {
                    engine.release_between_syncs(true);
                    app = Connection::open_in_memory().map_err(Error::Sqlite)?;
                }
                Inner {
                    config: RwLock::new(config),
                    clock,
                    paths: Some(paths),
                    mode: RwLock::new(Mode::Cached),
                    rule: decision.rule,
                    app: Mutex::new(app),
                    app_deferred: opts.release_cache.into(),
                    engine: Some(Arc::new(Mutex::new(engine))),
                    host,
                    handovers: Vec::new(),
                }
            }
            Err(Error::Local(e)) if e.is_fatal() => {
                tracing::error!(error = %e, "the cache cannot work; salvaging it and serving the remote directly");
                let saved = salvage::salvage(None, &paths, &config, &clock);
                let reason = format!("the cache cannot work: {e}; {}", saved.summary());
                Inner::direct(config, clock, Some(paths), reason, decision.rule)?
            }
            Err(e) => return Err(e),
        };
        let inner = Arc::new(inner);
        let worker = if background {
            Cache::start_worker(&inner)?
        } else {
            None
        };
        let watch = match (&worker, watch) {
            (Some(w), true) => Cache::start_watch(&inner, w),
            _ => None,
        };
        Ok(Cache {
            inner,
            worker,
            _watch: watch,
        })
    }

    fn start_worker(inner: &Arc<Inner>) -> Result<Option<Worker>> {
        let (Some(engine), Some(paths)) = (&inner.engine, &inner.paths) else {
            return Ok(None);
        };
        let weak = Arc::downgrade(inner);
        let on_fatal =
            Box::new(move |e: &LocalError| weak.upgrade().is_some_and(|inner| inner.fall_back(e)));
        let config = inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let worker =
            Worker::spawn(engine.clone(), paths.clone(), config, on_fatal).map_err(|e| {
                LocalError::Directory {
                    path: paths.dir.clone(),
                    source: e,
                }
            })?;
        Ok(Some(worker))
    }

    fn start_watch(inner: &Arc<Inner>, worker: &Worker) -> Option<Watch> {
        let source = inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .source
            .clone()?;
        let weak = Arc::downgrade(inner);
        let tx = worker.sender();
        let watched = crate::config::watch(&source, move |loaded| {
            let Some(inner) = weak.upgrade() else { return };
            match loaded {
                Ok(new) => {
                    let mut current = inner.config.write().unwrap_or_else(|e| e.into_inner());
                    let applied = current.reloaded(new);
                    if applied != *current {
                        tracing::info!(file = %source_name(&applied), "configuration reloaded");
                        *current = applied.clone();
                        let _ = tx.send(Command::Reconfigure(Box::new(applied)));
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
        config: &Config,
        clock: Clock,
        host: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<(CachePaths, Connection, Engine)> {
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
        let mut engine = Engine::open(paths.clone(), config.clone(), clock)?;
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
        self.inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The clock this cache stamps with.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Whether a background sync thread runs for this handle.
    pub fn is_background(&self) -> bool {
        self.worker.is_some()
    }

    /// Syncs now: push pending local writes, then pull remote changes, and returns what it did.
    /// Runs on the background thread if there is one (waiting for it), else here; waits for a
    /// sync running in another process. In direct mode there is nothing to sync.
    ///
    /// ```no_run
    /// # let cache = sharecache::Cache::open(sharecache::Config::for_remote("//s/share/app.db"))?;
    /// let report = cache.sync_now()?;
    /// println!("{} pushed, {} pulled, {} conflicts", report.pushed, report.pulled, report.conflicts);
    /// # Ok::<(), sharecache::Error>(())
    /// ```
    pub fn sync_now(&self) -> Result<SyncReport> {
        if let Some(w) = &self.worker {
            if let Some(outcome) = w.sync_now() {
                return outcome;
            }
        }
        self.sync_with_progress(&())
    }

    /// Syncs on the calling thread, reporting progress of long phases.
    pub fn sync_with_progress(&self, progress: &dyn Progress) -> Result<SyncReport> {
        self.with_engine(|engine| engine.sync(progress))
    }

    fn with_engine<T: Default>(&self, f: impl FnOnce(&mut Engine) -> Result<T>) -> Result<T> {
        let (Some(engine), Some(paths), Mode::Cached) =
            (&self.inner.engine, &self.inner.paths, self.mode())
        else {
            return Ok(T::default());
        };
        let result = match lock::acquire(&paths.lock, SYNC_LOCK_WAIT) {
            Ok(Some(_guard)) => f(&mut engine.lock().unwrap_or_else(|e| e.into_inner())),
            Ok(None) => Err(Error::SyncRunning {
                holder: lock::holder(&paths.lock),
            }),
            Err(e) => Err(LocalError::Directory {
                path: paths.dir.clone(),
                source: e,
            }
            .into()),
        };
        if let Err(Error::Local(e)) = &result {
            if e.is_fatal() {
                self.inner.fall_back(e);
            }
        }
        result
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

    /// The current status (local files only: never waits on the share).
    pub fn status(&self) -> Result<Status> {
        let config = self.config();
        let mut status = match (&self.inner.paths, self.mode()) {
            (Some(paths), Mode::Cached) => crate::status::read(&config, paths, &self.inner.rule)?,
            (_, mode) => Status::direct(&config, &mode, &self.inner.rule),
        };
        if !self.inner.handovers.is_empty() {
            let said: Vec<String> = self.inner.handovers.iter().map(|h| h.summary()).collect();
            status.handover = Some(said.join("; "));
        }
        if let Some(w) = &self.worker {
            let paused = if w.paused() { ", paused" } else { "" };
            status.worker = Some(format!(
                "sync thread of process {}{paused}",
                std::process::id()
            ));
        }
        Ok(status)
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
            (Some(_), Mode::Cached) => {
                self.with_engine(|engine| engine.clear(discard_pending, progress))
            }
            (Some(_), Mode::Direct { .. }) => {
                let config = self.config();
                Cache::open_cached(
                    &config,
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
