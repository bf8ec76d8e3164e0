//! An async handle for tokio apps (Tauri and the like): [`AsyncCache`].
//!
//! A [`Cache`]'s operations block: a sync waits on the share, `clear` copies the whole remote,
//! even `status` reads a file. Called from an async task they would stall the runtime's worker
//! thread, and with it every other task on that thread. [`AsyncCache`] runs each of them on
//! tokio's blocking thread pool ([`tokio::task::spawn_blocking`]) and awaits the result, so the
//! runtime's own threads never wait on the share. The background sync thread works as with
//! [`Cache`]; dropping the last handle shuts it down (pushing what is pending) off the
//! runtime's threads too.
//!
//! Enable with the cargo feature `tokio`.
//!
//! ```
//! use sharecache::async_cache::AsyncCache;
//! use sharecache::{Config, EnableCache};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // A remote database (here a local file standing in for `\\server\share\app.db`).
//!     let dir = tempfile::tempdir()?;
//!     let remote = dir.path().join("app.db");
//!     rusqlite::Connection::open(&remote)?
//!         .execute_batch("CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL);")?;
//!
//!     let mut config = Config::for_remote(&remote);
//!     config.enable_cache = EnableCache::On; // a local path would otherwise be used directly
//!     config.cache_directory = dir.path().join("cache");
//!     let cache = AsyncCache::open(config).await?;
//!
//!     cache
//!         .with_conn(|c| c.execute("INSERT INTO tasks VALUES ('t1', 'write the docs')", []))
//!         .await?;
//!     let report = cache.sync_now().await?;
//!     println!("{} pushed, {} pulled", report.pushed, report.pulled);
//!     assert_eq!(cache.status().await?.pending_writes, 0);
//!     assert!(!cache.history(10).await?.is_empty());
//!
//!     cache.close().await; // stops the sync thread, pushing anything still pending
//!     Ok(())
//! }
//! ```

use std::sync::Arc;

use rusqlite::Connection;

use crate::config::Config;
use crate::conflicts::Conflict;
use crate::error::Result;
use crate::handle::{Cache, OpenOptions};
use crate::status::Status;
use crate::sync::metadata::Run;
use crate::sync::{ClearReport, SyncReport};

/// A [`Cache`] for async code: every blocking operation runs on tokio's blocking thread pool.
///
/// Cheap to clone (an [`Arc`]); the cache closes when the last clone is dropped or
/// [`closed`](AsyncCache::close).
#[derive(Debug, Clone)]
pub struct AsyncCache {
    /// Always `Some`, except while being dropped or closed.
    cache: Option<Arc<Cache>>,
}

/// Runs `f` on the blocking pool and waits for it without blocking the runtime. A panic in `f`
/// is resumed here, as if `f` had been called directly.
async fn blocking<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("sharecache: the tokio runtime shut down before the call ran: {e}"),
    }
}

impl AsyncCache {
    /// [`Cache::open`] on the blocking pool: the first open copies the remote.
    pub async fn open(config: Config) -> Result<AsyncCache> {
        AsyncCache::open_with(config, OpenOptions::default()).await
    }

    /// [`Cache::open_with`] on the blocking pool.
    pub async fn open_with(config: Config, opts: OpenOptions) -> Result<AsyncCache> {
        let cache = blocking(move || Cache::open_with(config, opts)).await?;
        Ok(AsyncCache::from(cache))
    }

    /// The synchronous handle, for the calls that never wait on anything
    /// ([`Cache::mode`], [`Cache::cache_path`], [`Cache::config`], [`Cache::pause`], …).
    pub fn cache(&self) -> &Arc<Cache> {
        self.cache.as_ref().expect("present until dropped")
    }

    /// Runs `f` with a clone of the handle on the blocking pool.
    async fn call<T, F>(&self, f: F) -> T
    where
        F: FnOnce(&Cache) -> T + Send + 'static,
        T: Send + 'static,
    {
        let cache = self.cache().clone();
        blocking(move || f(&cache)).await
    }

    /// [`Cache::sync_now`]: push pending writes, then pull; waits for the share without
    /// blocking the runtime.
    pub async fn sync_now(&self) -> Result<SyncReport> {
        self.call(Cache::sync_now).await
    }

    /// [`Cache::status`].
    pub async fn status(&self) -> Result<Status> {
        self.call(Cache::status).await
    }

    /// [`Cache::history`]: the `limit` most recent sync runs, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<Run>> {
        self.call(move |c| c.history(limit)).await
    }

    /// [`Cache::conflicts`]: the `limit` most recent logged conflicts, newest first.
    pub async fn conflicts(&self, limit: usize) -> Result<Vec<Conflict>> {
        self.call(move |c| c.conflicts(limit)).await
    }

    /// [`Cache::conflict`]: one logged conflict.
    pub async fn conflict(&self, id: i64) -> Result<Option<Conflict>> {
        self.call(move |c| c.conflict(id)).await
    }

    /// [`Cache::restore_conflict`]: makes the losing version of conflict `id` current again.
    pub async fn restore_conflict(&self, id: i64) -> Result<Conflict> {
        self.call(move |c| c.restore_conflict(id)).await
    }

    /// [`Cache::clear`]: rebuilds the cache from the remote (pushing pending writes first, or
    /// refusing, unless `discard_pending`).
    pub async fn clear(&self, discard_pending: bool) -> Result<ClearReport> {
        self.call(move |c| c.clear(discard_pending, &())).await
    }

    /// Runs `f` with the app's connection ([`Cache::conn`]) on the blocking pool and returns
    /// its result. The connection is locked while `f` runs: keep `f` short.
    pub async fn with_conn<T, F>(&self, f: F) -> T
    where
        F: FnOnce(&Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.call(move |c| f(&c.conn())).await
    }

    /// Drops this handle; if it was the last one, closes the cache — stopping the sync thread,
    /// which pushes pending writes within `sync.shutdown_timeout` — and waits for that on the
    /// blocking pool.
    pub async fn close(mut self) {
        if let Some(cache) = self.cache.take().and_then(Arc::into_inner) {
            blocking(move || drop(cache)).await;
        }
    }
}

impl From<Cache> for AsyncCache {
    fn from(cache: Cache) -> AsyncCache {
        AsyncCache {
            cache: Some(Arc::new(cache)),
        }
    }
}

impl Drop for AsyncCache {
    /// The last handle closes the cache on the blocking pool when dropped inside a runtime
    /// (closing waits for the final push), in place otherwise.
    fn drop(&mut self) {
        let Some(cache) = self.cache.take().and_then(Arc::into_inner) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || drop(cache));
            }
            Err(_) => drop(cache),
        }
    }
}
