//! Falling back to direct access: a handle whose cache cannot work serves the remote itself,
//! after salvaging the pending writes it can still read.

use std::sync::{Mutex, RwLock};

use rusqlite::Connection;

use super::{Inner, Mode, salvage};
use crate::clock::Clock;
use crate::config::Live;
use crate::error::Result;
use crate::remote;
use crate::store::{CachePaths, LocalError};

impl Inner {
    pub(super) fn direct(
        config: Live,
        clock: Clock,
        paths: Option<CachePaths>,
        reason: String,
        rule: String,
    ) -> Result<Inner> {
        let (path, timeout) = {
            let c = config.get();
            (c.remote_path.clone(), c.busy_timeout)
        };
        let conn = remote::share::open_connection(&path, timeout)?;
        Ok(Inner {
            config,
            clock,
            paths,
            mode: RwLock::new(Mode::Direct { reason }),
            rule,
            app: Mutex::new(conn),
            app_deferred: false.into(),
            host: None,
            handovers: Vec::new(),
        })
    }

    pub(super) fn mode(&self) -> Mode {
        self.mode.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The cache stopped working while in use: salvage its pending writes, then serve the app
    /// from the remote directly. Does nothing (returns false) while the remote cannot be reached
    /// either: the cache keeps whatever it still holds, and the sync thread tries again later.
    /// `local` is the engine's connection on the cache (salvage reads through it: it still reads
    /// a cache file that was deleted).
    pub(super) fn fall_back(&self, e: &LocalError, local: Option<&Connection>) -> bool {
        if self.mode() != Mode::Cached {
            return true;
        }
        let Some(paths) = &self.paths else {
            return false;
        };
        let config = self.config.get();
        if let Some(server) = &config.postgres {
            tracing::error!(cache_error = %e, server = %server.display_url(), "the cache cannot work, and a PostgreSQL remote has no direct mode (the app needs a SQLite file); pending writes stay in the cache, retrying later");
            return false;
        }
        let conn = match remote::share::open_connection(&config.remote_path, config.busy_timeout) {
            Ok(c) => c,
            Err(re) => {
                tracing::error!(error = %re, cache_error = %e, "the cache cannot work and the remote cannot be reached; retrying later");
                return false;
            }
        };
        let saved = salvage::salvage(local, paths, &config, &self.clock);
        let reason = format!("the cache stopped working: {e}; {}", saved.summary());
        *self.app.lock().unwrap_or_else(|e| e.into_inner()) = conn;
        self.app_deferred
            .store(false, std::sync::atomic::Ordering::Relaxed);
        *self.mode.write().unwrap_or_else(|e| e.into_inner()) = Mode::Direct {
            reason: reason.clone(),
        };
        tracing::error!(reason, "switched to direct access on the remote");
        true
    }
}
