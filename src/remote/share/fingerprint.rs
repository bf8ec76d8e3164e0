//! The cheap "has anything changed?" check every sync starts with, and the check that the file at
//! the remote path is still the one this connection has open.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::Share;
use crate::remote::{Fingerprint, Mark, RemoteError, Trail};

/// What an idle sync compares with the last full fingerprint.
///
/// The bytes of the database header that change with every commit in rollback-journal mode —
/// the file format versions (offsets 18-19: 1 = rollback journal, 2 = WAL) and the file change
/// counter (offsets 24-27) — and a hash of the page holding `sharecache_meta`'s row. The counter
/// alone can come back: a file restored from a backup, written as many times since as the
/// original was, shows the same counter. The meta row holds the change log's revision and the
/// newest stamp logged, which a restore followed by other writes does not bring back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    bytes: [u8; 6],
    meta: Option<MetaPage>,
}

/// Where `sharecache_meta`'s only page is in the file, and a hash of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MetaPage {
    offset: u64,
    len: usize,
    hash: u64,
}

/// How long an idle sync may trust that the path still leads to the open file before checking.
const SAME_FILE_RECHECK: Duration = Duration::from_secs(60);

/// `buf.len()` bytes at `offset` through the connection's own open file (a second descriptor,
/// once closed, would drop this process's POSIX locks on the file). `false` when the file is not
/// open or the read fails.
fn read_at(conn: &rusqlite::Connection, offset: u64, buf: &mut [u8]) -> bool {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: FILE_POINTER writes the main database's sqlite3_file* (owned by the connection,
    // valid while it is open) into `file`; xRead reads `buf.len()` bytes into `buf`.
    let rc = unsafe {
        let rc = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&mut file as *mut *mut ffi::sqlite3_file).cast(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
            return false;
        }
        let Some(read) = (*(*file).pMethods).xRead else {
            return false;
        };
        read(
            file,
            buf.as_mut_ptr().cast(),
            buf.len() as i32,
            offset as i64,
        )
    };
    rc == ffi::SQLITE_OK
}

/// The 100-byte database header through the connection's own open file.
fn read_header(conn: &rusqlite::Connection) -> Option<[u8; 100]> {
    let mut buf = [0u8; 100];
    read_at(conn, 0, &mut buf).then_some(buf)
}

/// FNV-1a, 64 bit.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Share {
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
    ///
    /// The same read transaction checks `mark`, what the cache knows of the remote's history
    /// ([`Trail`]): one lookup of the change-log entry at the mark's revision.
    pub fn fingerprint(&self, before_write: bool, mark: &Mark) -> Result<Fingerprint, RemoteError> {
        let header = self.peek_header();
        let recent = !before_write
            && self
                .same_file_checked
                .get()
                .is_some_and(|t| t.elapsed() < SAME_FILE_RECHECK);
        if let (Some(h), Some((seen, fp)), true) = (header, self.fingerprinted.get(), recent) {
            // A fingerprint older than the cache's mark describes a state the remote has since
            // left (this client pushed after it): the file back in exactly that state is a
            // restore, not an idle remote.
            if h == seen.bytes
                && fp.rev >= mark.rev
                && seen.meta.is_some()
                && self.peek_meta(seen.meta) == seen.meta
            {
                return Ok(fp);
            }
        }
        self.check_same_file()?;
        // SQLite keeps its cached pages when the header's change counter, page count and
        // free-list fields match what it last saw; a file restored from a backup and written as
        // often since can match them, and the cache would serve pages of the file before the
        // restore. The pages are read again instead (they changed anyway, or this would be idle).
        if let Err(e) = self.conn.release_memory() {
            tracing::debug!(error = %e, "could not release the remote's page cache");
        }
        let (fp, meta_at) = self.read_fingerprint(mark)?;
        // The header read before the transaction: a commit in between makes the next check miss.
        // The meta page read after it is only compared when that header is unchanged.
        let meta = meta_at.and_then(|(offset, len)| {
            self.peek_meta(Some(MetaPage {
                offset,
                len,
                hash: 0,
            }))
        });
        self.fingerprinted
            .set(header.map(|bytes| (Header { bytes, meta }, fp)));
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
    fn peek_header(&self) -> Option<[u8; 6]> {
        let buf = read_header(&self.conn)?;
        if buf[18] != 1 || buf[19] != 1 {
            return None;
        }
        Some([buf[18], buf[19], buf[24], buf[25], buf[26], buf[27]])
    }

    /// The meta page at `at`, read and hashed anew; `None` when the read fails.
    fn peek_meta(&self, at: Option<MetaPage>) -> Option<MetaPage> {
        let at = at?;
        let mut buf = vec![0u8; at.len];
        read_at(&self.conn, at.offset, &mut buf).then(|| MetaPage {
            hash: fnv1a(&buf),
            ..at
        })
    }

    /// Forgets the last full fingerprint, so the next one reads the remote again (after the
    /// cache's [`Mark`] changed other than by this connection's own writes).
    pub fn forget_fingerprint(&self) {
        self.fingerprinted.set(None);
    }

    /// The fingerprint, and where `sharecache_meta`'s page is (offset and length in the file).
    fn read_fingerprint(
        &self,
        mark: &Mark,
    ) -> Result<(Fingerprint, Option<(u64, usize)>), RemoteError> {
        let (fp, id, meta_at, moved): (_, _, _, Option<String>) = self.read(|c| {
            let (rev, id, pruned_rev, generation, moved): (i64, String, i64, String, _) = c
                .query_row(
                    "SELECT rev, remote_id, pruned_rev, generation, moved_to FROM sharecache_meta \
                     WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )?;
            let trail = trail(c, mark, rev, pruned_rev, &generation)?;
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
                trail,
            };
            // One small row: the table's root page is its only page.
            let (root, page_size): (i64, i64) = c.query_row(
                "SELECT (SELECT rootpage FROM sqlite_master WHERE name = 'sharecache_meta'), \
                 (SELECT page_size FROM pragma_page_size)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let meta_at = (root > 0).then(|| (((root - 1) * page_size) as u64, page_size as usize));
            Ok((fp, id, meta_at, moved))
        })?;
        if let Some(to) = moved {
            return Err(super::moved::refused(&self.path, to));
        }
        match &self.expected_id {
            Some(expected) if *expected != id => Err(RemoteError::WrongDatabase {
                path: self.path.clone(),
                expected: expected.clone(),
                found: id,
            }),
            _ => Ok((fp, meta_at)),
        }
    }
}

/// Checks `mark` against the remote's log (`rev`: its last revision; entries at or below
/// `pruned_rev` were pruned, so a mark there cannot be looked up and needs no check: the remote
/// had moved past it when it pruned).
fn trail(
    c: &Connection,
    mark: &Mark,
    rev: i64,
    pruned_rev: i64,
    generation: &str,
) -> rusqlite::Result<Trail> {
    if mark.generation.as_deref().is_some_and(|g| g != generation) {
        return Ok(Trail::Declared);
    }
    if mark.rev == 0 {
        return Ok(Trail::Intact);
    }
    if rev < mark.rev {
        return Ok(Trail::WentBack);
    }
    if mark.rev <= pruned_rev {
        return Ok(Trail::Intact);
    }
    let entry: Option<(String, String, Option<i64>)> = c
        .prepare_cached("SELECT stamp, origin, write_id FROM sharecache_log WHERE rev = ?1")?
        .query_row([mark.rev], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(match entry {
        Some((stamp, origin, write_id))
            if stamp == mark.stamp && origin == mark.origin && write_id == mark.write_id =>
        {
            Trail::Intact
        }
        _ => Trail::WentBack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE sharecache_log (rev INTEGER PRIMARY KEY, stamp TEXT, origin TEXT, write_id);
             INSERT INTO sharecache_log VALUES (5, 's5', 'a', NULL), (6, 's6', 'b', 66);",
        )
        .unwrap();
        c
    }

    /// A mark on the entry at `rev`; the write id the test log has there (6: 66, else none).
    fn mark(rev: i64, stamp: &str, origin: &str) -> Mark {
        Mark {
            rev,
            stamp: stamp.into(),
            origin: origin.into(),
            write_id: (rev == 6).then_some(66),
            generation: Some(String::new()),
        }
    }

    #[test]
    fn the_trail_is_intact_while_the_remote_holds_the_marked_entry() {
        let c = log();
        assert_eq!(
            trail(&c, &mark(6, "s6", "b"), 6, 0, "").unwrap(),
            Trail::Intact
        );
        assert_eq!(
            trail(&c, &mark(5, "s5", "a"), 9, 0, "").unwrap(),
            Trail::Intact
        );
        assert_eq!(
            trail(&c, &Mark::default(), 0, 0, "").unwrap(),
            Trail::Intact,
            "nothing known yet"
        );
    }

    #[test]
    fn a_log_behind_the_mark_or_another_entry_at_its_revision_went_back() {
        let c = log();
        assert_eq!(
            trail(&c, &mark(8, "s8", "a"), 6, 0, "").unwrap(),
            Trail::WentBack
        );
        assert_eq!(
            trail(
                &c,
                &Mark {
                    write_id: Some(65),
                    ..mark(6, "s6", "b")
                },
                9,
                0,
                ""
            )
            .unwrap(),
            Trail::WentBack,
            "the same version logged again at the revision by another write (a second restore)"
        );
        assert_eq!(
            trail(&c, &mark(6, "s6-before-the-restore", "a"), 9, 0, "").unwrap(),
            Trail::WentBack,
            "others pushed past the old revision after the restore"
        );
        assert_eq!(
            trail(&c, &mark(7, "s7", "a"), 9, 0, "").unwrap(),
            Trail::WentBack,
            "entry gone"
        );
    }

    #[test]
    fn a_pruned_mark_is_not_looked_up_and_a_new_generation_is_a_declaration() {
        let c = log();
        assert_eq!(
            trail(&c, &mark(3, "s3", "a"), 6, 4, "").unwrap(),
            Trail::Intact
        );
        assert_eq!(
            trail(&c, &mark(6, "s6", "b"), 6, 0, "g2").unwrap(),
            Trail::Declared
        );
        let unknown = Mark {
            generation: None,
            ..mark(6, "s6", "b")
        };
        assert_eq!(trail(&c, &unknown, 6, 0, "g2").unwrap(), Trail::Intact);
    }
}
