//! Copying the remote database file for an initial snapshot, page-exact and fast.
//!
//! SQLite's backup API reads page by page (one share round trip per 4 KiB page); copying the
//! file with large reads, several in flight, costs a handful of round trips per MiB and hides most
//! of their latency. The copy is made inside a read
//! transaction (a shared lock, after SQLite rolled back any hot journal) while holding the write
//! lease, so neither SQLite's locks nor sharecache writers can change the file underneath, and it
//! reads through SQLite's own file handle: opening a second descriptor on the database and closing
//! it would silently drop this process's POSIX locks on it.

use std::ffi::c_void;
use std::fs::File;
use std::path::Path;

use rusqlite::{OptionalExtension, ffi};

use super::{Share, clean, lease};
use crate::remote::store::NewClient;
use crate::remote::{ClientEntry, CopyError, CopyInfo};

const CHUNK: usize = 1 << 20;

/// Reads of the remote file in flight during a snapshot copy.
const IN_FLIGHT: usize = 4;

impl Share {
    /// Copies the remote database into `dest` (created user-only; must not exist), reporting
    /// progress as (bytes done, bytes total), then leaves in the copy only what is the app's
    /// (see [`clean`]). With `register`, the new client enters the registry with the copy's
    /// revision in a write transaction under the same lease, so that no other sharecache writer
    /// runs between the copy and it (nothing can be pruned in between); that write failing is
    /// logged and does not fail the copy.
    pub(crate) fn copy_to(
        &mut self,
        dest: &Path,
        progress: &mut dyn FnMut(u64, u64),
        register: Option<&NewClient>,
    ) -> Result<CopyInfo, CopyError> {
        let held = lease::acquire(
            &self.path,
            &lease::LeaseOptions {
                origin: self.opts.origin.clone(),
                ttl: self.opts.lease_ttl,
                timeout: self.opts.busy_timeout,
            },
        )
        .map_err(CopyError::Remote)?;
        let mut local_error = None;
        let result = self.read(|c| {
            let page_size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let enrolled: bool = c.query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'sharecache_meta'",
                [],
                |r| r.get(0),
            )?;
            let (rev, remote_id) = if enrolled {
                c.query_row("SELECT rev, remote_id FROM sharecache_meta WHERE id = 1", [], |r| {
                    Ok((r.get(0)?, Some(r.get(1)?)))
                })
                .optional()?
                .unwrap_or((0, None))
            } else {
                (0, None)
            };
            let total = (page_size * pages) as u64;
            copy_file(c, dest, total, progress, &mut local_error)?;
            Ok(CopyInfo {
                bytes: total,
                rev,
                remote_id,
                newest_stamp: None,
                newest: None,
                generation: None,
            })
        });
        if let (Ok(info), None, Some(client)) = (&result, &local_error, register) {
            let entry = ClientEntry {
                origin: client.origin.clone(),
                pulled_rev: info.rev,
                last_seen: client.now.clone(),
                host: client.host.clone(),
            };
            let c = &self.conn;
            let done = c.execute_batch("BEGIN IMMEDIATE").and_then(|()| {
                super::batch::register(c, &entry).and_then(|()| c.execute_batch("COMMIT"))
            });
            if let Err(e) = done {
                if !c.is_autocommit() {
                    let _ = c.execute_batch("ROLLBACK");
                }
                tracing::warn!(error = %e, "after the snapshot copy: registering the new client failed");
            }
        }
        held.release();
        let mut info = match (result, local_error) {
            (_, Some(e)) => return Err(CopyError::Local(e)),
            (r, None) => r.map_err(CopyError::Remote)?,
        };
        clean::app_only(dest, &mut info).map_err(|e| {
            CopyError::Local(std::io::Error::other(format!(
                "cleaning the snapshot copy {}: {e}",
                dest.display()
            )))
        })?;
        Ok(info)
    }
}

fn copy_file(
    c: &rusqlite::Connection,
    dest: &Path,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
    local_error: &mut Option<std::io::Error>,
) -> rusqlite::Result<()> {
    let local = |e: std::io::Error, slot: &mut Option<std::io::Error>| {
        *slot = Some(e);
        rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ABORT),
            Some("local write failed".into()),
        )
    };
    let mut file_ptr: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: FILE_POINTER writes the main database's sqlite3_file* into file_ptr; the handle
    // stays valid while the connection is open and we are inside its read transaction.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            c.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&mut file_ptr as *mut *mut ffi::sqlite3_file).cast::<c_void>(),
        )
    };
    if rc != ffi::SQLITE_OK || file_ptr.is_null() {
        return Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some("no file handle for the remote".into()),
        ));
    }
    let out = create_private(dest).map_err(|e| local(e, local_error))?;
    let file = SqliteFile(file_ptr);
    let (read_failed, write_failed) = read_in_flight(&file, &out, total, progress);
    if let Some(e) = write_failed {
        return Err(local(e, local_error));
    }
    if let Some(rc) = read_failed {
        return Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some("reading the remote file".into()),
        ));
    }
    out.sync_all().map_err(|e| local(e, local_error))?;
    Ok(())
}

/// SQLite's open file of the remote, shared by the reader threads.
struct SqliteFile(*mut ffi::sqlite3_file);

// SAFETY: the unix VFS reads with pread(2) and keeps no state a read changes but the last errno
// (mmap is off on remote connections): concurrent xRead calls on one file are safe. The pointer
// stays valid while the connection's read transaction, which outlives the threads, is open.
unsafe impl Send for SqliteFile {}
unsafe impl Sync for SqliteFile {}

impl SqliteFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::os::raw::c_int {
        // SAFETY: self.0 is a valid open sqlite3_file with methods; buf has room for its length.
        unsafe {
            let read = (*(*self.0).pMethods).xRead.expect("xRead");
            read(
                self.0,
                buf.as_mut_ptr().cast(),
                buf.len() as i32,
                offset as i64,
            )
        }
    }
}

/// Copies `total` bytes of `file` into `out` with [`IN_FLIGHT`] reads in flight: on a share each
/// read waits a round trip, so several at once cut the copy's time to a fraction (about 0.37× of
/// one read at a time at 4 ms a round trip). Chunks are written at their offsets, in whatever
/// order they arrive. Returns the first read error (SQLite code) and the first write error.
fn read_in_flight(
    file: &SqliteFile,
    out: &File,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> (Option<std::os::raw::c_int>, Option<std::io::Error>) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) =
        crossbeam_channel::bounded::<(u64, Result<Vec<u8>, std::os::raw::c_int>)>(IN_FLIGHT);
    let (mut read_failed, mut write_failed) = (None, None);
    std::thread::scope(|s| {
        for _ in 0..IN_FLIGHT {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let offset = next.fetch_add(CHUNK as u64, Ordering::Relaxed);
                    if offset >= total {
                        break;
                    }
                    let mut buf = vec![0u8; CHUNK.min((total - offset) as usize)];
                    let rc = file.read_at(&mut buf, offset);
                    let read = if rc == ffi::SQLITE_OK {
                        Ok(buf)
                    } else {
                        Err(rc)
                    };
                    if tx.send((offset, read)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0u64;
        // Drain everything (the readers stop soon after a failure), so no reader blocks.
        for (offset, read) in rx {
            if read_failed.is_some() || write_failed.is_some() {
                continue;
            }
            match read {
                Ok(buf) => match write_at(out, &buf, offset) {
                    Ok(()) => {
                        done += buf.len() as u64;
                        progress(done, total);
                    }
                    Err(e) => {
                        write_failed = Some(e);
                        stop.store(true, Ordering::Relaxed);
                    }
                },
                Err(rc) => {
                    read_failed = Some(rc);
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    });
    (read_failed, write_failed)
}

fn write_at(out: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    crate::platform::write_at(out, buf, offset)
}

/// Creates a new file readable by the user only.
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    crate::platform::create_private_file(path)
}
