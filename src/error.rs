//! The crate's umbrella error. Each layer has its own error type ([`ConfigError`],
//! [`LocalError`], [`RemoteError`]) so that a caller matches only the failures its call can
//! produce; they all convert into [`Error`], whose [`Error::kind`] is what the CLI maps to exit
//! codes and what the sync loop uses to decide whether to retry.
//!
//! It sits above `remote` (it wraps [`RemoteError`]) and below `sync`; the classification
//! [`ErrorKind`] is a leaf (`error_kind`), so that every layer's error can name its kind.

use crate::config::ConfigError;
pub use crate::error_kind::ErrorKind;
use crate::remote::RemoteError;
use crate::store::LocalError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error sharecache can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The local cache failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The remote database on the share failed or refused.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// Another sync of the same cache is running (in this or another process).
    #[error("a sync of this cache is already running ({holder})")]
    SyncRunning {
        /// Who holds the sync lock, as far as known.
        holder: String,
    },
    /// Local writes are pending and could not be pushed, so the operation (e.g. `clear`) refused
    /// to run rather than lose them.
    #[error(
        "{pending} local writes are pending and could not be pushed ({reason}); nothing was cleared. \
         Sync when the share is back, or pass --discard-pending to export them to a file and clear anyway"
    )]
    PendingWrites {
        /// Number of pending writes.
        pending: i64,
        /// Why they could not be pushed.
        reason: String,
        /// The class of the push failure, if it failed.
        kind: Option<ErrorKind>,
        /// The push failure, if it failed.
        source: Option<Box<Error>>,
    },
    /// Another cache of the same remote database (made for another path of it) holds pending
    /// writes that could not be pushed first, so the open (or the switch to direct mode) refused
    /// rather than leave them behind.
    #[error("the cache {} (made for {}) holds {pending} pending writes for this database; {what}", cache.display(), made_for.display())]
    OtherCache {
        /// The other cache file.
        cache: std::path::PathBuf,
        /// The remote path it was made for.
        made_for: std::path::PathBuf,
        /// Its pending writes.
        pending: i64,
        /// Why they were not pushed, and what to do.
        what: String,
        /// The class of the failure.
        kind: ErrorKind,
    },
    /// The operation does not apply to this handle (e.g. restoring a conflict in direct mode).
    #[error("{0}")]
    Unsupported(String),
    /// A conflict could not be restored.
    #[error(transparent)]
    Restore(#[from] crate::conflicts::RestoreError),
    /// The handle's sync thread is gone (it panicked): nothing can sync through this handle any
    /// more. The app's connection still works; reopen the cache to sync again.
    #[error(
        "the sync thread of this cache is gone (it panicked; see the log); nothing was synced. \
         Local reads and writes still work: reopen the cache to sync again"
    )]
    WorkerGone,
    /// An error reported by SQLite on an app connection.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl Error {
    /// The class of this error.
    ///
    /// ```
    /// use sharecache::{Error, ErrorKind};
    /// let e = Error::SyncRunning { holder: "pid 42".into() };
    /// assert_eq!(e.kind(), ErrorKind::Locked);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Config,
            Error::Local(e) if e.is_locked() => ErrorKind::Locked,
            Error::Local(_) => ErrorKind::Local,
            Error::Remote(e) => e.kind(),
            Error::SyncRunning { .. } => ErrorKind::Locked,
            Error::PendingWrites { kind, .. } => kind.unwrap_or(ErrorKind::Other),
            Error::OtherCache { kind, .. } => *kind,
            Error::Sqlite(_) | Error::Unsupported(_) | Error::Restore(_) | Error::WorkerGone => {
                ErrorKind::Other
            }
        }
    }

    /// Whether retrying later can succeed without anyone's help (offline, locked).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind(), ErrorKind::Offline | ErrorKind::Locked)
    }
}
