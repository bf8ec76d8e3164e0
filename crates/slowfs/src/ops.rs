//! The real work behind each request, on the backing (or scratch) directory.
//! Every function here runs after [`crate::control::Shared::gate`] let the
//! request through, and returns the error to reply with.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{Errno, FileAttr, FileType, FopenFlags, INodeNo, TimeOrNow};

use crate::control::{Op, Shared, World};
use crate::inodes::{Inodes, ROOT};
use crate::sys;

/// An open regular file: the backing fd, used with pread/pwrite only, so
/// handles never share an offset.
#[derive(Debug)]
struct OpenFile {
    world: World,
    file: Arc<File>,
}

/// An open directory: its fd (for fsyncdir) and a listing snapshot taken
/// by the `readdir` at offset 0.
#[derive(Debug)]
struct OpenDir {
    world: World,
    rel: PathBuf,
    file: Arc<File>,
    entries: Vec<(u64, FileType, OsString)>,
}

/// The passthrough filesystem. `fs.rs` implements `fuser::Filesystem` on it.
#[derive(Debug)]
pub(crate) struct SlowFsImpl {
    pub(crate) shared: Arc<Shared>,
    pub(crate) direct_io: bool,
    inodes: Inodes,
    files: Mutex<HashMap<u64, OpenFile>>,
    dirs: Mutex<HashMap<u64, OpenDir>>,
    next_fh: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SlowFsImpl {
    pub(crate) fn new(shared: Arc<Shared>, direct_io: bool) -> Self {
        SlowFsImpl {
            shared,
            direct_io,
            inodes: Inodes::new(),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn full(&self, w: World, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.shared.root(w).to_path_buf()
        } else {
            self.shared.root(w).join(rel)
        }
    }

    fn node_path(&self, w: World, ino: u64) -> Result<PathBuf, Errno> {
        Ok(self.full(w, &self.inodes.path(ino, w)?))
    }

    /// Attributes of `rel` (allocating its node id).
    fn entry(&self, w: World, rel: &Path) -> Result<FileAttr, Errno> {
        let m = sys::lstat(&self.full(w, rel))?;
        Ok(sys::attr(self.inodes.ino_for(w, rel), &m))
    }

    fn file(&self, w: World, fh: u64) -> Result<Arc<File>, Errno> {
        match lock(&self.files).get(&fh) {
            Some(h) if h.world == w => Ok(h.file.clone()),
            Some(_) => Err(Errno::EIO),
            None => Err(Errno::EBADF),
        }
    }

    fn add_file(&self, w: World, file: File) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.files).insert(
            fh,
            OpenFile {
                world: w,
                file: Arc::new(file),
            },
        );
        fh
    }

    pub(crate) fn lookup(&self, w: World, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        let rel = self.inodes.child(parent, name, w)?;
        self.entry(w, &rel)
    }

    pub(crate) fn getattr(&self, w: World, ino: u64, fh: Option<u64>) -> Result<FileAttr, Errno> {
        if let Some(f) = fh.and_then(|fh| self.file(w, fh).ok()) {
            return Ok(sys::attr(ino, &f.metadata().map_err(sys::io_errno)?));
        }
        let m = sys::lstat(&self.node_path(w, ino)?)?;
        Ok(sys::attr(ino, &m))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn setattr(
        &self,
        w: World,
        ino: u64,
        fh: Option<u64>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<FileAttr, Errno> {
        let path = self.node_path(w, ino)?;
        let file = fh.and_then(|fh| self.file(w, fh).ok());
        if let Some(mode) = mode {
            sys::chmod(&path, mode)?;
        }
        if uid.is_some() || gid.is_some() {
            sys::lchown(&path, uid, gid)?;
        }
        if let Some(size) = size {
            match &file {
                Some(f) => f.set_len(size).map_err(sys::io_errno)?,
                None => sys::truncate(&path, size)?,
            }
        }
        if atime.is_some() || mtime.is_some() {
            sys::set_times(&path, file.as_deref(), atime, mtime)?;
        }
        self.getattr(w, ino, fh)
    }

    pub(crate) fn readlink(&self, w: World, ino: u64) -> Result<Vec<u8>, Errno> {
        use std::os::unix::ffi::OsStringExt;
        let target = std::fs::read_link(self.node_path(w, ino)?).map_err(sys::io_errno)?;
        Ok(target.into_os_string().into_vec())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mknod(
        &self,
        w: World,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        owner: (u32, u32),
    ) -> Result<FileAttr, Errno> {
        let rel = self.inodes.child(parent, name, w)?;
        let path = self.full(w, &rel);
        sys::mknod(&path, mode & !umask, rdev)?;
        sys::chmod(&path, mode & !umask)?;
        sys::give_to(&path, owner.0, owner.1);
        self.entry(w, &rel)
    }

    pub(crate) fn mkdir(
        &self,
        w: World,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        owner: (u32, u32),
    ) -> Result<FileAttr, Errno> {
        let rel = self.inodes.child(parent, name, w)?;
        let path = self.full(w, &rel);
        std::fs::create_dir(&path).map_err(sys::io_errno)?;
        sys::chmod(&path, mode & !umask)?;
        sys::give_to(&path, owner.0, owner.1);
        self.entry(w, &rel)
    }

    pub(crate) fn unlink(
        &self,
        w: World,
        parent: u64,
        name: &OsStr,
        dir: bool,
    ) -> Result<(), Errno> {
        let rel = self.inodes.child(parent, name, w)?;
        let path = self.full(w, &rel);
        if dir {
            std::fs::remove_dir(&path).map_err(sys::io_errno)?;
        } else {
            std::fs::remove_file(&path).map_err(sys::io_errno)?;
        }
        self.inodes.remove(w, &rel);
        Ok(())
    }

    pub(crate) fn symlink(
        &self,
        w: World,
        parent: u64,
        name: &OsStr,
        target: &Path,
        owner: (u32, u32),
    ) -> Result<FileAttr, Errno> {
        let rel = self.inodes.child(parent, name, w)?;
        let path = self.full(w, &rel);
        std::os::unix::fs::symlink(target, &path).map_err(sys::io_errno)?;
        sys::give_to(&path, owner.0, owner.1);
        self.entry(w, &rel)
    }

    pub(crate) fn link(
        &self,
        w: World,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
    ) -> Result<FileAttr, Errno> {
        let src = self.node_path(w, ino)?;
        let rel = self.inodes.child(newparent, newname, w)?;
        std::fs::hard_link(&src, self.full(w, &rel)).map_err(sys::io_errno)?;
        self.entry(w, &rel)
    }

    pub(crate) fn rename(
        &self,
        w: World,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<(), Errno> {
        let from = self.inodes.child(parent, name, w)?;
        let to = self.inodes.child(newparent, newname, w)?;
        sys::rename(&self.full(w, &from), &self.full(w, &to), flags)?;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        self.inodes.rename(w, &from, &to, exchange);
        Ok(())
    }

    pub(crate) fn open(&self, w: World, ino: u64, flags: i32) -> Result<u64, Errno> {
        let path = self.node_path(w, ino)?;
        let file = sys::open(&path, flags, 0, 0)?;
        Ok(self.add_file(w, file))
    }

    /// Creates and opens `name`; honours `O_EXCL` atomically on the backing
    /// directory and sets the exact requested mode on a newly created file.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create(
        &self,
        w: World,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        owner: (u32, u32),
    ) -> Result<(FileAttr, u64), Errno> {
        let rel = self.inodes.child(parent, name, w)?;
        let path = self.full(w, &rel);
        let mode = mode & !umask & 0o7777;
        let mut tries = 0;
        let file = loop {
            tries += 1;
            match sys::open(&path, flags, libc::O_CREAT | libc::O_EXCL, mode) {
                Ok(f) => {
                    sys::chmod(&path, mode)?;
                    sys::give_to(&path, owner.0, owner.1);
                    break f;
                }
                Err(e) if e == Errno::EEXIST && flags & libc::O_EXCL == 0 => {
                    match sys::open(&path, flags, 0, 0) {
                        Ok(f) => break f,
                        Err(e) if e == Errno::ENOENT && tries < 10 => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let m = file.metadata().map_err(sys::io_errno)?;
        let attr = sys::attr(self.inodes.ino_for(w, &rel), &m);
        Ok((attr, self.add_file(w, file)))
    }

    pub(crate) fn read(&self, w: World, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let f = self.file(w, fh)?;
        let mut buf = vec![0u8; size as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match f.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(sys::io_errno(e)),
            }
        }
        buf.truncate(filled);
        self.shared.add_bytes_read(filled as u64);
        Ok(buf)
    }

    pub(crate) fn write(&self, w: World, fh: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let f = self.file(w, fh)?;
        f.write_all_at(data, offset).map_err(sys::io_errno)?;
        self.shared.add_bytes_written(data.len() as u64);
        Ok(data.len() as u32)
    }

    pub(crate) fn flush(&self, w: World, fh: u64) -> Result<(), Errno> {
        self.file(w, fh).map(|_| ())
    }

    pub(crate) fn fsync(&self, w: World, fh: u64, datasync: bool) -> Result<(), Errno> {
        let f = self.file(w, fh)?;
        let r = if datasync {
            f.sync_data()
        } else {
            f.sync_all()
        };
        r.map_err(sys::io_errno)
    }

    pub(crate) fn fallocate(
        &self,
        w: World,
        fh: u64,
        offset: u64,
        len: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let f = self.file(w, fh)?;
        sys::fallocate(&f, mode, offset, len)
    }

    /// Closes a file handle whatever the state of the share.
    pub(crate) fn release(&self, fh: u64) {
        lock(&self.files).remove(&fh);
    }

    pub(crate) fn opendir(&self, w: World, ino: u64) -> Result<u64, Errno> {
        let rel = self.inodes.path(ino, w)?;
        let file = sys::open_dir(&self.full(w, &rel))?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let dir = OpenDir {
            world: w,
            rel,
            file: Arc::new(file),
            entries: Vec::new(),
        };
        lock(&self.dirs).insert(fh, dir);
        Ok(fh)
    }

    /// Entries of directory handle `fh` from `offset` on (offset `i` means
    /// "after the i-th entry"); the listing is re-read at offset 0.
    pub(crate) fn readdir(
        &self,
        w: World,
        ino: u64,
        fh: u64,
        offset: u64,
    ) -> Result<Vec<(u64, FileType, OsString)>, Errno> {
        let (rel, have) = match lock(&self.dirs).get(&fh) {
            Some(d) if d.world != w => return Err(Errno::EIO),
            Some(d) => (d.rel.clone(), !d.entries.is_empty()),
            None => return Err(Errno::EBADF),
        };
        if offset == 0 || !have {
            let mut entries = vec![(ino, FileType::Directory, OsString::from("."))];
            let parent = rel.parent().map_or(ROOT, |p| self.inodes.ino_for(w, p));
            entries.push((parent, FileType::Directory, OsString::from("..")));
            let rd = std::fs::read_dir(self.full(w, &rel)).map_err(sys::io_errno)?;
            for e in rd {
                let e = e.map_err(sys::io_errno)?;
                let kind = match e.file_type() {
                    Ok(t) => FileType::from_std(t).unwrap_or(FileType::RegularFile),
                    Err(_) => FileType::RegularFile,
                };
                let child = self.inodes.ino_for(w, &rel.join(e.file_name()));
                entries.push((child, kind, e.file_name()));
            }
            if let Some(d) = lock(&self.dirs).get_mut(&fh) {
                d.entries = entries;
            }
        }
        let dirs = lock(&self.dirs);
        let d = dirs.get(&fh).ok_or(Errno::EBADF)?;
        Ok(d.entries.iter().skip(offset as usize).cloned().collect())
    }

    pub(crate) fn fsyncdir(&self, w: World, fh: u64) -> Result<(), Errno> {
        let f = match lock(&self.dirs).get(&fh) {
            Some(d) if d.world == w => d.file.clone(),
            Some(_) => return Err(Errno::EIO),
            None => return Err(Errno::EBADF),
        };
        f.sync_all().map_err(sys::io_errno)
    }

    pub(crate) fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }

    pub(crate) fn statfs(&self, w: World) -> Result<sys::StatFs, Errno> {
        sys::statvfs(self.shared.root(w))
    }

    pub(crate) fn access(&self, w: World, ino: u64, mask: i32) -> Result<(), Errno> {
        sys::access(&self.node_path(w, ino)?, mask)
    }
}

/// Glue used by the `fuser::Filesystem` implementation in `fs.rs`.
impl SlowFsImpl {
    /// Gate the request, run `f`, and count an ordinary error.
    pub(crate) fn run<T>(
        &self,
        op: Op,
        name: &str,
        ino: INodeNo,
        f: impl FnOnce(World) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let w = self.shared.gate(op, name, ino.0)?;
        let r = f(w);
        if let Err(e) = &r {
            self.shared.note_error(name, *e);
        }
        r
    }

    /// A counted request the passthrough does not support.
    pub(crate) fn unsupported(&self, name: &str, ino: INodeNo, err: Errno) -> Errno {
        match self.run(Op::Other, name, ino, |_| Err::<(), _>(err)) {
            Err(e) => e,
            Ok(()) => err,
        }
    }

    pub(crate) fn fopen_flags(&self) -> FopenFlags {
        if self.direct_io {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }
}
