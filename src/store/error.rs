//! Errors of the local cache file.

use std::path::PathBuf;

use rusqlite::ErrorCode;

/// A failure of the local cache (the SQLite file under `cache_directory`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The cache directory cannot be created or written.
    #[error("cache directory {}: {source}; make it writable or set database.cache_directory in the config", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The disk holding the cache is full.
    #[error("cache {}: the disk is full; free some space (pending writes are kept)", path.display())]
    DiskFull {
        /// The cache file.
        path: PathBuf,
        /// What reported it (SQLite or the OS), if it was an error and not the free-space check.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The cache file is damaged.
    #[error("cache {}: the file is damaged ({detail})", path.display())]
    Corrupt {
        /// The cache file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The cache was made by a newer sharecache.
    #[error("cache {}: made by a newer sharecache (schema {found}, this build knows up to {supported}); upgrade sharecache", path.display())]
    TooNew {
        /// The cache file.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The remote has an app table with the name of one of sharecache's own tables in the cache
    /// (`sync_state`, `sync_tracking`, ...): one SQLite file cannot hold both.
    #[error("the remote database has a table named {table:?}, the name of one of sharecache's own tables in the cache ({}); \
             the cache cannot hold both (a share's file is then used directly; a PostgreSQL server cannot be, so the open fails); \
             rename the table to use the cache",
             crate::schema::LOCAL_INTERNAL.join(", "))]
    NameClash {
        /// The app's table.
        table: String,
    },
    /// A remote schema the cache cannot follow.
    #[error("table {table}: {message}")]
    Schema {
        /// The table.
        table: String,
        /// What failed.
        message: String,
    },
    /// The remote's schema change could not be followed in the cache (the change is retried at
    /// the next sync).
    #[error("cache {}: the remote's schema change cannot be followed: {source}", path.display())]
    FollowSchema {
        /// The cache file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// An app's migration changed a synced table in the cache in a way sharecache cannot carry
    /// to the remote (see `store::watch`). The table's pending writes stay pending.
    #[error(
        "table {table:?}: {change}; sharecache cannot carry this change to the remote, so nothing \
             is synced until it is resolved (pending writes are kept). Make the same change on the \
             remote database ({remote}) and sync, or rebuild the cache from the remote with \
             `sharecache clear --discard-pending` (pending writes are exported to a JSON-lines file)"
    )]
    SchemaRefused {
        /// The synced table.
        table: String,
        /// What changed.
        change: String,
        /// The remote database, as configured.
        remote: String,
    },
    /// Another program holds the cache (a connection in `locking_mode=EXCLUSIVE`, or a write
    /// transaction longer than the busy timeout). Nothing is wrong with the cache: sharecache
    /// waits and syncs when the program lets go.
    #[error("cache {}: held by another program ({source}); sharecache waits and syncs when it lets go \
             (an app in PRAGMA locking_mode=EXCLUSIVE holds the cache until it closes its connection)", path.display())]
    Locked {
        /// The cache file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A file operation on the cache failed.
    #[error("cache {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Any other SQLite error on the cache.
    #[error("cache {}: {source}", path.display())]
    Sqlite {
        /// The cache file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
}

impl LocalError {
    /// Classifies an SQLite error on the cache file.
    pub fn from_sqlite(path: &std::path::Path, e: rusqlite::Error) -> LocalError {
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => LocalError::DiskFull {
                path,
                source: Some(Box::new(e)),
            },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                LocalError::Locked { path, source: e }
            }
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => LocalError::Corrupt {
                path,
                detail: e.to_string(),
            },
            _ => LocalError::Sqlite { path, source: e },
        }
    }

    /// Classifies an I/O error on the cache's files.
    pub fn from_io(path: &std::path::Path, e: std::io::Error) -> LocalError {
        if crate::platform::classify(&e) == crate::platform::IoClass::DiskFull {
            LocalError::DiskFull {
                path: path.to_path_buf(),
                source: Some(Box::new(e)),
            }
        } else {
            LocalError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }

    /// Whether another program holds the cache (retry later; see [`LocalError::Locked`]).
    pub fn is_locked(&self) -> bool {
        matches!(self, LocalError::Locked { .. })
    }

    /// Whether the cache cannot work at all (then the handle falls back to direct access).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            LocalError::Directory { .. }
                | LocalError::DiskFull { .. }
                | LocalError::Corrupt { .. }
                | LocalError::TooNew { .. }
                | LocalError::NameClash { .. }
        ) || matches!(self, LocalError::Sqlite { source, .. }
            if matches!(source.sqlite_error_code(), Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::SystemIoFailure)))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::path::Path;

    use super::*;

    fn sqlite(code: i32, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.into()))
    }

    #[test]
    fn classified_errors_keep_their_cause_as_source() {
        let p = Path::new("/c/cache.db");
        let locked =
            LocalError::from_sqlite(p, sqlite(rusqlite::ffi::SQLITE_BUSY, "database is locked"));
        assert!(locked.is_locked());
        assert!(
            locked.to_string().contains("(database is locked)"),
            "{locked}"
        );
        let cause = locked.source().expect("a source");
        assert!(cause.downcast_ref::<rusqlite::Error>().is_some());

        let full = LocalError::from_sqlite(p, sqlite(rusqlite::ffi::SQLITE_FULL, "disk full"));
        assert!(matches!(full, LocalError::DiskFull { .. }));
        assert!(full.source().is_some());

        let io = std::io::Error::other("boom");
        let other = LocalError::from_io(p, io);
        assert!(
            other
                .source()
                .unwrap()
                .downcast_ref::<std::io::Error>()
                .is_some()
        );
    }
}
