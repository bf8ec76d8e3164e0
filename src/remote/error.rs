//! Errors of the remote (the database on the share, or the PostgreSQL server), classified the way a sync loop needs them.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::ErrorCode;

use crate::error_kind::ErrorKind;

/// A failure reaching or using the remote database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The share cannot be reached: I/O errors, a dropped connection.
    #[error("{}: the share is unreachable ({detail}); local reads and writes go on and will be synced when it is back", path.display())]
    Offline {
        /// The remote database path.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The database file does not exist. An unmounted share often looks like this.
    #[error("{}: no such database; is the share mounted? sharecache never creates the remote database", path.display())]
    Missing {
        /// The remote database path.
        path: PathBuf,
    },
    /// Other writers kept the remote locked past the busy timeout and retries.
    #[error("{}: the remote database stayed locked by other writers for {waited:?}; will retry", path.display())]
    Locked {
        /// The remote database path.
        path: PathBuf,
        /// How long we waited in total.
        waited: Duration,
    },
    /// The file is not a usable SQLite database (not SQLite, empty, corrupt).
    #[error("{}: not a usable SQLite database ({detail})", path.display())]
    Corrupt {
        /// The remote database path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file at the path is not the database this cache was made from.
    #[error("{}: this is not the database the cache was made from (expected id {expected}, found {found}); \
             if the remote was replaced on purpose, run `sharecache clear`", path.display())]
    WrongDatabase {
        /// The remote database path.
        path: PathBuf,
        /// The identity the cache recorded.
        expected: String,
        /// The identity found at the path.
        found: String,
    },
    /// This user may not read or write the remote (or create its journal beside it).
    #[error("{}: permission denied: {detail}; ask the share's administrator for read and write access to the \
             file and its folder, or point database.path at a copy you may write", path.display())]
    PermissionDenied {
        /// The remote database path.
        path: PathBuf,
        /// What is not allowed.
        detail: String,
    },
    /// The path now leads to another file than the one the connection has open (renamed or
    /// copied over, deleted and recreated). The sync reconnects and checks its identity again.
    #[error("{}: the remote database file was replaced while sharecache had it open; reconnecting", path.display())]
    Replaced {
        /// The remote database path.
        path: PathBuf,
    },
    /// SQLite read damaged data, but a fresh connection reads the database fine: a share
    /// failure (short or garbage read), retried like one. Persisting, it is reported as
    /// [`RemoteError::Corrupt`].
    #[error("{}: a read from the share returned damaged data ({detail}), but the database reads fine again; \
             treated as a share failure and retried (if this persists, check the remote with `PRAGMA integrity_check`)", path.display())]
    ReadFailed {
        /// The remote database path.
        path: PathBuf,
        /// SQLite's error.
        detail: String,
    },
    /// The remote is in WAL mode and in use: WAL does not work on network shares.
    #[error("{}: the remote database is in WAL journal mode, which is unsafe on a network share, and another program \
             has it open so it cannot be switched to DELETE mode; close the other programs and retry", path.display())]
    WalInUse {
        /// The remote database path.
        path: PathBuf,
    },
    /// The remote was set up by a newer sharecache.
    #[error("{}: sharecache schema version {found} on the remote is newer than this build supports ({supported}); upgrade sharecache", path.display())]
    TooNew {
        /// The remote database path.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The database moved to a server (`sharecache migrate-remote`): the share is not synced any
    /// more.
    #[error("{}: this database moved to {to} (sharecache migrate-remote); set database.path to it \
             (`sharecache config set database.path …`): this cache's pending writes are kept and go \
             there (run `sharecache adopt` if asked)", path.display())]
    Moved {
        /// The share's database path.
        path: PathBuf,
        /// Where it moved (no password).
        to: String,
    },
    /// A write lease file could not be handled (permissions on the share directory).
    #[error("{}: cannot take the write lease: {source}", path.display())]
    Lease {
        /// The lease file path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PostgreSQL server failed or refused (`kind`: what the sync does about it).
    #[error("{location}: {detail}")]
    Server {
        /// The server, as `database.path` names it (never with a password).
        location: String,
        /// Retry (offline, locked) or stop (remote).
        kind: ErrorKind,
        /// What happened and what to do.
        detail: String,
    },
    /// Any other SQLite error on the remote.
    #[error("{}: {source}", path.display())]
    Sqlite {
        /// The remote database path.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
}

impl RemoteError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RemoteError::Offline { .. }
            | RemoteError::Missing { .. }
            | RemoteError::ReadFailed { .. } => ErrorKind::Offline,
            RemoteError::Locked { .. } => ErrorKind::Locked,
            RemoteError::Lease { .. } => ErrorKind::Offline,
            RemoteError::Corrupt { .. }
            | RemoteError::WrongDatabase { .. }
            | RemoteError::Replaced { .. }
            | RemoteError::PermissionDenied { .. }
            | RemoteError::WalInUse { .. }
            | RemoteError::Moved { .. }
            | RemoteError::TooNew { .. } => ErrorKind::Remote,
            RemoteError::Server { kind, .. } => *kind,
            RemoteError::Sqlite { .. } => ErrorKind::Other,
        }
    }

    /// Classifies an SQLite error that happened on the remote.
    ///
    /// A share that drops under an open connection often makes SQLite see short or garbage reads
    /// and report a "malformed" database; so before calling the remote corrupt, the share is
    /// probed, and an unreachable share is reported as offline instead.
    pub fn from_sqlite(path: &std::path::Path, e: rusqlite::Error) -> RemoteError {
        let damaged = e.sqlite_error_code() == Some(ErrorCode::DatabaseCorrupt);
        let classified = RemoteError::classify(path, e);
        match classified {
            RemoteError::Corrupt { .. } | RemoteError::Sqlite { .. } => {
                match std::fs::metadata(path) {
                    Err(io) => RemoteError::from_io(path, &io),
                    Ok(_) => match classified {
                        RemoteError::Corrupt { path, detail }
                            if damaged && RemoteError::reads_fine(&path) =>
                        {
                            RemoteError::ReadFailed { path, detail }
                        }
                        other => other,
                    },
                }
            }
            other => other,
        }
    }

    /// Whether a fresh read-only connection reads the schema and sharecache's own table without
    /// finding damage: a "malformed" error on the kept connection that does not repeat there came
    /// from a failed share read, not from the file. Anything but damage found (busy, I/O) counts
    /// as reading fine: only a repeated finding makes a remote corrupt.
    fn reads_fine(path: &std::path::Path) -> bool {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let probe = rusqlite::Connection::open_with_flags(path, flags).and_then(|c| {
            c.busy_timeout(Duration::from_millis(500))?;
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            c.query_row("SELECT rev FROM sharecache_meta WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
        });
        !matches!(
            probe.as_ref().err().and_then(|e| e.sqlite_error_code()),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
        )
    }

    fn classify(path: &std::path::Path, e: rusqlite::Error) -> RemoteError {
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => RemoteError::Locked {
                path,
                waited: Duration::ZERO,
            },
            // ReadOnly: SQLite refuses to write when a `stat` of the path fails (it takes the
            // file for moved: SQLITE_READONLY_DBMOVED), a share failure like the others; the
            // connection is dropped and opened afresh.
            Some(
                ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::ReadOnly,
            ) => RemoteError::Offline {
                path,
                detail: e.to_string(),
            },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => RemoteError::Corrupt {
                path,
                detail: e.to_string(),
            },
            _ => RemoteError::Sqlite { path, source: e },
        }
    }

    /// Classifies an I/O error on the share.
    pub fn from_io(path: &std::path::Path, e: &std::io::Error) -> RemoteError {
        // Before the portable kinds: std reports Windows' ERROR_BAD_NETPATH (server unreachable)
        // as NotFound, which would read as a missing database on a reachable share.
        if crate::platform::classify(e) == crate::platform::IoClass::NetworkGone {
            return RemoteError::Offline {
                path: path.to_path_buf(),
                detail: format!("the share is unreachable ({e})"),
            };
        }
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            return RemoteError::PermissionDenied {
                path: path.to_path_buf(),
                detail: e.to_string(),
            };
        }
        if e.kind() == std::io::ErrorKind::NotFound {
            RemoteError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            RemoteError::Offline {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_server_is_offline_not_a_missing_database() {
        // Windows: ERROR_BAD_NETPATH, which std reads as NotFound.
        #[cfg(windows)]
        let code = 53;
        #[cfg(unix)]
        let code = libc::ENOTCONN;
        let path = std::path::Path::new("app.db");
        let e = std::io::Error::from_raw_os_error(code);
        let r = RemoteError::from_io(path, &e);
        assert!(matches!(r, RemoteError::Offline { .. }), "{r:?}");
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let r = RemoteError::from_io(path, &missing);
        assert!(matches!(r, RemoteError::Missing { .. }), "{r:?}");
    }
}
