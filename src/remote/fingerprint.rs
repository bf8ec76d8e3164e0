//! The cheap "has anything changed?" check every sync starts with, and the check that the file at
//! the remote path is still the one this connection has open.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::{Remote, RemoteError};

/// What a sync needs to know about the remote before deciding there is nothing to do.
///
/// Equal fingerprints mean nothing on the remote needs pulling: no new change-log entry (`rev`),
/// no schema change (`schema_version`) and no new conflict-log entry (`conflicts`: a conflict
/// another client lost while pushing changes no row, so it does not move `rev`).
///
/// ```
/// # use sharecache::remote::Fingerprint;
/// let a = Fingerprint { rev: 7, schema_version: 3, conflicts: 0 };
/// let b = Fingerprint { conflicts: 1, ..a };
/// assert_ne!(a, b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// The change log's last revision.
    pub rev: i64,
    /// SQLite's schema cookie.
    pub schema_version: i64,
    /// The conflict log's last id (0 when empty).
    pub conflicts: i64,
}

/// The bytes of the database header that change with every commit in rollback-journal mode:
/// the file format versions (offsets 18-19: 1 = rollback journal, 2 = WAL) and the file change
/// counter (offsets 24-27).
pub(super) type Header = [u8; 6];

/// How long an idle sync may trust that the path still leads to the open file before checking.
const SAME_FILE_RECHECK: Duration = Duration::from_secs(60);

/// The 100-byte database header through the connection's own open file (a second descriptor,
/// once closed, would drop this process's POSIX locks on the file). `None` when the file is not
/// open or the read fails.
fn read_header(conn: &rusqlite::Connection) -> Option<[u8; 100]> {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    let mut buf = [0u8; 100];
    // SAFETY: FILE_POINTER writes the main database's sqlite3_file* (owned by the connection,
    // valid while it is open) into `file`; xRead reads into `buf`, which has room for 100 bytes.
    let rc = unsafe {
        let rc = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&mut file as *mut *mut ffi::sqlite3_file).cast(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
            return None;
        }
        let read = (*(*file).pMethods).xRead?;
        read(file, buf.as_mut_ptr().cast(), buf.len() as i32, 0)
    };
    (rc == ffi::SQLITE_OK).then_some(buf)
}

impl Remote {
    /// A cheap fingerprint of the remote's state. When it is unchanged since the last pull,
    /// nothing on the remote needs pulling.
    ///
    /// In rollback-journal mode every commit increments the file change counter in the database
    /// header, so when the header is unchanged since the last full fingerprint, so is the
    /// fingerprint: that check is one read of the header through the connection's open file
    /// (one share round trip, no lock, no path lookup). Otherwise — and when `before_write`,
    /// and at least once a minute — the path is checked to still lead to the open file (its
    /// header, read through a fresh connection, equals the open file's) and a read transaction
    /// reads the fingerprint and checks the remote's identity again.
    pub fn fingerprint(&self, before_write: bool) -> Result<Fingerprint, RemoteError> {
        let header = self.peek_header();
        let recent = !before_write
            && self
                .same_file_checked
                .get()
                .is_some_and(|t| t.elapsed() < SAME_FILE_RECHECK);
        if let (Some(h), Some((seen, fp)), true) = (header, self.fingerprinted.get(), recent) {
            if h == seen {
                return Ok(fp);
            }
        }
        self.check_same_file()?;
        let fp = self.read_fingerprint()?;
        // The header read before the transaction: a commit in between makes the next check miss.
        self.fingerprinted.set(header.map(|h| (h, fp)));
        Ok(fp)
    }

    /// Fails with [`RemoteError::Replaced`] when the path no longer leads to the file this
    /// connection has open (another file renamed over it, deleted and recreated): the header of
    /// the file at the path, read through a fresh read-only connection, differs from the open
    /// file's (file change counter, page count, schema cookie...). Inode numbers cannot tell:
    /// FUSE shares such as sshfs number files by path. Fails with `Missing`/`Offline` when the
    /// path cannot be opened. Costs about four share operations.
    pub(super) fn check_same_file(&self) -> Result<(), RemoteError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let fresh =
            Connection::open_with_flags(&self.path, flags).map_err(|e| match std::fs::metadata(
                &self.path,
            ) {
                Err(io) => RemoteError::from_io(&self.path, &io),
                Ok(_) => RemoteError::from_sqlite(&self.path, e),
            })?;
        // Twice: a writer committing between the two reads changes the header.
        for _ in 0..2 {
            let (Some(ours), Some(theirs)) = (read_header(&self.conn), read_header(&fresh)) else {
                return Err(RemoteError::Offline {
                    path: self.path.clone(),
                    detail: "reading the database header failed".into(),
                });
            };
            if ours == theirs {
                self.same_file_checked.set(Some(Instant::now()));
                return Ok(());
            }
        }
        Err(RemoteError::Replaced {
            path: self.path.clone(),
        })
    }

    /// The bytes of [`Header`] from the open file; `None` when the read fails or the database
    /// is not in rollback-journal mode.
    fn peek_header(&self) -> Option<Header> {
        let buf = read_header(&self.conn)?;
        if buf[18] != 1 || buf[19] != 1 {
            return None;
        }
        Some([buf[18], buf[19], buf[24], buf[25], buf[26], buf[27]])
    }

    fn read_fingerprint(&self) -> Result<Fingerprint, RemoteError> {
        let (fp, id) = self.read(|c| {
            let (rev, id): (i64, String) = c.query_row(
                "SELECT rev, remote_id FROM sharecache_meta WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let schema_version: i64 = c.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
            let conflicts: i64 = c.query_row(
                "SELECT coalesce(max(id), 0) FROM sharecache_conflicts",
                [],
                |r| r.get(0),
            )?;
            let fp = Fingerprint {
                rev,
                schema_version,
                conflicts,
            };
            Ok((fp, id))
        })?;
        match &self.expected_id {
            Some(expected) if *expected != id => Err(RemoteError::WrongDatabase {
                path: self.path.clone(),
                expected: expected.clone(),
                found: id,
            }),
            _ => Ok(fp),
        }
    }
}
