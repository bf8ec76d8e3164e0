//! How a handle is opened ([`OpenOptions`]) and how it serves the app ([`Mode`]).

use serde::Serialize;

use crate::clock::Clock;

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

/// Options for [`Cache::open_with`](super::Cache::open_with).
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
    /// (a test fakes a second machine with it; see [`crate::store::instance`]).
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
    /// `locking_mode=EXCLUSIVE` cannot take the file. [`Cache::conn`](super::Cache::conn) then opens its connection
    /// at the first call.
    pub fn hold_cache(mut self, on: bool) -> Self {
        self.release_cache = !on;
        self
    }
}
