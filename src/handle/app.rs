//! The app's connection of a handle: opened with the cache, or, for a handle that holds no
//! connection on the cache ([`super::OpenOptions::hold_cache`], `sharecache daemon`), at its
//! first use, so that merely running beside apps never keeps the file open.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use rusqlite::Connection;

use super::{Inner, Mode};
use crate::store::open_local;

impl Inner {
    /// The app's connection, opened now if it was deferred (an open that fails is logged and
    /// tried again at the next call; the stand-in in-memory connection serves meanwhile).
    pub(super) fn app(&self) -> MutexGuard<'_, Connection> {
        let mut app = self.app.lock().unwrap_or_else(|e| e.into_inner());
        if self.app_deferred.load(Ordering::Relaxed) {
            if let (Some(paths), Mode::Cached) = (&self.paths, self.mode()) {
                let timeout = self.config.get().busy_timeout;
                match open_local(&paths.db, &self.clock, timeout) {
                    Ok(c) => {
                        *app = c;
                        self.app_deferred.store(false, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open the app's connection on the cache; retried at the next call")
                    }
                }
            }
        }
        app
    }
}
