//! The local cache and the handle an app holds: [`Cache`].
//!
//! Opening a cache that exists touches only local files, so an app starts and works with the
//! share gone. The first open (no cache yet) needs the share: it sets sharecache up on the remote
//! if needed and copies it (see the `snapshot` module). When the cache itself cannot work (corrupt, disk full,
//! directory not writable), the same handle serves the remote directly and says why ([`Mode`]).

pub mod capture;
pub mod detect;
mod error;
pub mod lock;
pub(crate) mod mirror;
mod open;
pub(crate) mod snapshot;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

pub use error::LocalError;
pub use open::CachePaths;
pub(crate) use open::{ensure_dir, open_local};

use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::remote::{self, Remote, RemoteOptions};
use crate::status::Status;
use crate::sync::{Engine, Progress, SyncReport};

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
}

impl OpenOptions {
    /// Uses `clock` for this cache's stamps.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// A cache of one remote database: the app's connection, sync and status.
pub struct Cache {
    config: Config,
    clock: Clock,
    paths: Option<CachePaths>,
    mode: Mode,
    rule: String,
    app: Mutex<Connection>,
    engine: Option<Mutex<Engine>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("mode", &self.mode)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// How long `sync_now` waits for a sync running in another process.
const SYNC_LOCK_WAIT: Duration = Duration::from_secs(60);

impl Cache {
    /// Opens the cache for `config.remote_path` (creating it from the remote on first use).
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
    pub fn open_with(config: Config, opts: OpenOptions) -> Result<Cache> {
        let decision = detect::decide(config.enable_cache, &config.remote_path);
        if !decision.cached {
            return Cache::direct(config, opts.clock, decision.rule.clone(), decision.rule);
        }
        match Cache::open_cached(&config, opts.clock, &()) {
            Ok((paths, app, engine)) => Ok(Cache {
                config,
                clock: opts.clock,
                paths: Some(paths),
                mode: Mode::Cached,
                rule: decision.rule,
                app: Mutex::new(app),
                engine: Some(Mutex::new(engine)),
            }),
            Err(Error::Local(e)) if e.is_fatal() => {
                tracing::error!(error = %e, "the cache cannot work; serving the remote directly");
                Cache::direct(
                    config,
                    opts.clock,
                    format!("the cache cannot work: {e}"),
                    decision.rule,
                )
            }
            Err(e) => Err(e),
        }
    }

    fn direct(config: Config, clock: Clock, reason: String, rule: String) -> Result<Cache> {
        let conn = remote::open_connection(&config.remote_path, config.busy_timeout)?;
        Ok(Cache {
            config,
            clock,
            paths: None,
            mode: Mode::Direct { reason },
            rule,
            app: Mutex::new(conn),
            engine: None,
        })
    }

    /// Opens (creating if needed) the cache files: the app's connection and the sync engine.
    pub(crate) fn open_cached(
        config: &Config,
        clock: Clock,
        progress: &dyn Progress,
    ) -> Result<(CachePaths, Connection, Engine)> {
        let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
        ensure_dir(&paths.dir)?;
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
                create(config, &paths, clock, progress)?;
            }
        }
        let app = open_local(&paths.db, &clock, config.busy_timeout)?;
        check_cache(&app, &paths.db, config)?;
        let engine = Engine::open(paths.clone(), config.clone(), clock)?;
        Ok((paths, app, engine))
    }

    /// The app's connection: on the cache, or on the remote in direct mode. Holds a lock while
    /// the guard lives; keep it short, or open more connections on [`Cache::cache_path`].
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.app.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How the handle serves the app.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The cache file (any SQLite client may open it), or `None` in direct mode.
    pub fn cache_path(&self) -> Option<&Path> {
        self.paths.as_ref().map(|p| p.db.as_path())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Syncs now: push pending local writes, then pull remote changes. Waits for a sync already
    /// running (in this or another process). In direct mode there is nothing to sync.
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

    /// [`Cache::sync_now`] reporting progress of long phases.
    pub fn sync_with_progress(&self, progress: &dyn Progress) -> Result<SyncReport> {
        let (Some(engine), Some(paths)) = (&self.engine, &self.paths) else {
            return Ok(SyncReport {
                idle: true,
                ..SyncReport::default()
            });
        };
        let mut engine = engine.lock().unwrap_or_else(|e| e.into_inner());
        let _guard = lock::acquire(&paths.lock, SYNC_LOCK_WAIT)
            .map_err(|e| LocalError::Directory {
                path: paths.dir.clone(),
                source: e,
            })?
            .ok_or_else(|| Error::SyncRunning {
                holder: lock::holder(&paths.lock),
            })?;
        engine.sync(progress)
    }

    /// The current status (local files only: never waits on the share).
    pub fn status(&self) -> Result<Status> {
        match &self.paths {
            Some(paths) => crate::status::read(&self.config, paths, &self.rule),
            None => Ok(Status::direct(&self.config, &self.mode, &self.rule)),
        }
    }

    /// The clock this cache stamps with.
    pub fn clock(&self) -> Clock {
        self.clock
    }
}

/// Creates the cache from the remote (called under the cache lock).
fn create(
    config: &Config,
    paths: &CachePaths,
    clock: Clock,
    progress: &dyn Progress,
) -> Result<()> {
    let origin = crate::clock::new_origin();
    let mut remote = Remote::open(
        &config.remote_path,
        RemoteOptions::from_config(config, &origin),
    )?;
    remote.enroll(&clock.now_stamp())?;
    snapshot::build(&mut remote, paths, &origin, &clock, &mut |done, total| {
        progress.step("snapshot", done, total)
    })
}

/// Checks an existing cache: sharecache's tables current (migrating an older cache), and made
/// for this remote path.
fn check_cache(c: &Connection, path: &Path, config: &Config) -> Result<()> {
    let sql = |e| LocalError::from_sqlite(path, e);
    match crate::migrate::CACHE.current(c).map_err(sql)? {
        v if v > crate::migrate::CACHE.latest() => {
            return Err(LocalError::TooNew {
                path: path.into(),
                found: v,
                supported: crate::migrate::CACHE.latest(),
            }
            .into());
        }
        0 => {
            return Err(LocalError::Corrupt {
                path: path.into(),
                detail: "sharecache's tables are missing".into(),
            }
            .into());
        }
        v if v < crate::migrate::CACHE.latest() => {
            crate::sync::write_tx(c, |c| {
                crate::migrate::CACHE
                    .apply(c, &crate::clock::format_stamp(chrono::Utc::now()))
                    .map(|_| ())
            })
            .map_err(sql)?;
        }
        _ => {}
    }
    let recorded: String = c
        .query_row("SELECT remote_path FROM sync_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    if Path::new(&recorded) != config.remote_path {
        tracing::warn!(recorded, configured = %config.remote_path.display(), "the cache was made for another path of the remote; its identity is checked at sync");
    }
    Ok(())
}
