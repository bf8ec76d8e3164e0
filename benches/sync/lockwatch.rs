//! Who holds the cache's WAL write lock, and for how long.
//!
//! The local apply rate of a pull and the waits it imposes on app writers are decided by how long
//! the sync's connection holds the cache's write lock. No SQLite API reports that for a
//! connection we do not own (the engine's), so this registers, as the process's default VFS, a
//! copy of the default VFS whose files get a copy of their I/O methods with `xShmLock` wrapped:
//! taking and releasing the WAL write lock (shm lock 0, exclusive) and the checkpoint lock (shm
//! lock 1) is timed and recorded with the thread that did it. Everything else is the original code, called with the original file.

use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use rusqlite::ffi;

/// One interval during which a connection held a cache's WAL write lock (or, with
/// `checkpoint`, its checkpoint lock).
#[derive(Debug, Clone, Copy)]
pub struct Hold {
    pub thread: ThreadId,
    pub start: Instant,
    pub held: Duration,
    pub checkpoint: bool,
}

/// I/O methods with `xShmLock` wrapped; `orig` is the table they were copied from.
#[repr(C)]
struct Wrapped {
    methods: ffi::sqlite3_io_methods,
    orig: *const ffi::sqlite3_io_methods,
}

// SAFETY: the tables are immutable once built and live for the whole process.
unsafe impl Send for Wrapped {}
unsafe impl Sync for Wrapped {}

static BASE: OnceLock<usize> = OnceLock::new();
/// Original method table address → leaked wrapped copy.
static TABLES: Mutex<Vec<(usize, &'static Wrapped)>> = Mutex::new(Vec::new());
/// (File address, lock) → (since, thread) while that lock is held.
type Held = HashMap<(usize, c_int), (Instant, ThreadId)>;
static HELD: Mutex<Option<Held>> = Mutex::new(None);
static LOG: Mutex<Vec<Hold>> = Mutex::new(Vec::new());

const WAL_WRITE_LOCK: c_int = 0;
const WAL_CKPT_LOCK: c_int = 1;

/// Registers the watching VFS as the default (idempotent). Call before opening connections.
pub fn install() {
    BASE.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, which lives for the process.
        // The copy is leaked because a registered VFS must outlive every connection using it.
        unsafe {
            ffi::sqlite3_initialize();
            let base = ffi::sqlite3_vfs_find(std::ptr::null());
            assert!(!base.is_null(), "SQLite has no default VFS");
            let mut vfs = *base;
            vfs.zName = c"sharecache-bench-lockwatch".as_ptr();
            vfs.pNext = std::ptr::null_mut();
            vfs.xOpen = Some(x_open);
            let vfs: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
            let rc = ffi::sqlite3_vfs_register(vfs, 1);
            assert_eq!(rc, ffi::SQLITE_OK, "registering the lockwatch VFS");
            base as usize
        }
    });
}

/// Every write-lock interval recorded so far, removing them.
pub fn take() -> Vec<Hold> {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()))
}

fn wrapped_for(orig: *const ffi::sqlite3_io_methods) -> *const ffi::sqlite3_io_methods {
    let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, w)) = tables.iter().find(|(o, _)| *o == orig as usize) {
        return &w.methods;
    }
    // SAFETY: `orig` is a method table SQLite's own VFS just installed; it is static.
    let mut methods = unsafe { *orig };
    if methods.xShmLock.is_some() {
        methods.xShmLock = Some(x_shm_lock);
    }
    let w: &'static Wrapped = Box::leak(Box::new(Wrapped { methods, orig }));
    tables.push((orig as usize, w));
    &w.methods
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let base = *BASE.get().expect("installed") as *mut ffi::sqlite3_vfs;
    // SAFETY: forwarded from SQLite with valid pointers; `file` has room for the base VFS's
    // file object (our szOsFile is the base's).
    unsafe {
        let rc = (*base).xOpen.expect("xOpen")(base, name, file, flags, out_flags);
        if rc == ffi::SQLITE_OK && !(*file).pMethods.is_null() {
            (*file).pMethods = wrapped_for((*file).pMethods);
        }
        rc
    }
}

unsafe extern "C" fn x_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: `pMethods` of a file opened through `x_open` points at the `methods` field of a
    // `Wrapped` (its first field, `repr(C)`), whose `orig` is the table to forward to.
    let rc = unsafe {
        let w = (*file).pMethods as *const Wrapped;
        (*(*w).orig).xShmLock.expect("xShmLock")(file, offset, n, flags)
    };
    if rc == ffi::SQLITE_OK
        && (offset == WAL_WRITE_LOCK || offset == WAL_CKPT_LOCK)
        && n == 1
        && flags & ffi::SQLITE_SHM_EXCLUSIVE != 0
    {
        let key = (file as usize, offset);
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        let held = held.get_or_insert_with(HashMap::new);
        if flags & ffi::SQLITE_SHM_LOCK != 0 {
            held.insert(key, (Instant::now(), std::thread::current().id()));
        } else if let Some((start, thread)) = held.remove(&key) {
            LOG.lock().unwrap_or_else(|e| e.into_inner()).push(Hold {
                thread,
                start,
                held: start.elapsed(),
                checkpoint: offset == WAL_CKPT_LOCK,
            });
        }
    }
    rc
}
