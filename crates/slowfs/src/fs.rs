//! `fuser::Filesystem` implementation: every request goes through
//! [`Shared::gate`](crate::control::Shared::gate) (count, faults, offline,
//! hang, latency) and then to the passthrough in `ops.rs`.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents,
    PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen, ReplyPoll,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::control::Op;
use crate::ops::SlowFsImpl;

/// Entries and attributes are never cached by the kernel: every `stat`,
/// path walk and `open` reaches the daemon (and so sees offline/faults).
const TTL: Duration = Duration::ZERO;

fn owner(req: &Request) -> (u32, u32) {
    (req.uid(), req.gid())
}

fn entry(reply: ReplyEntry, r: Result<fuser::FileAttr, Errno>) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn attr(reply: ReplyAttr, r: Result<fuser::FileAttr, Errno>) {
    match r {
        Ok(a) => reply.attr(&TTL, &a),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for SlowFsImpl {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Lookups in one directory run in parallel, like on a network share.
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // Let shared mmap work on direct-I/O files (kernel >= 6.6).
        let _ = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        entry(
            reply,
            self.run(Op::Lookup, "lookup", parent, |w| {
                self.lookup(w, parent.0, name)
            }),
        );
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let fh = fh.map(|f| f.0);
        attr(
            reply,
            self.run(Op::Getattr, "getattr", ino, |w| self.getattr(w, ino.0, fh)),
        );
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let fh = fh.map(|f| f.0);
        let r = self.run(Op::Setattr, "setattr", ino, |w| {
            self.setattr(w, ino.0, fh, mode, uid, gid, size, atime, mtime)
        });
        attr(reply, r);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.run(Op::Other, "readlink", ino, |w| self.readlink(w, ino.0)) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = self.run(Op::Other, "mknod", parent, |w| {
            self.mknod(w, parent.0, name, mode, umask, rdev, owner(req))
        });
        entry(reply, r);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.run(Op::Other, "mkdir", parent, |w| {
            self.mkdir(w, parent.0, name, mode, umask, owner(req))
        });
        entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(
            reply,
            self.run(Op::Unlink, "unlink", parent, |w| {
                self.unlink(w, parent.0, name, false)
            }),
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(
            reply,
            self.run(Op::Other, "rmdir", parent, |w| {
                self.unlink(w, parent.0, name, true)
            }),
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = self.run(Op::Other, "symlink", parent, |w| {
            self.symlink(w, parent.0, link_name, target, owner(req))
        });
        entry(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.run(Op::Rename, "rename", parent, |w| {
            self.rename(w, parent.0, name, newparent.0, newname, flags.bits())
        });
        empty(reply, r);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        entry(
            reply,
            self.run(Op::Other, "link", ino, |w| {
                self.link(w, ino.0, newparent.0, newname)
            }),
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.run(Op::Open, "open", ino, |w| self.open(w, ino.0, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), self.fopen_flags()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.run(Op::Read, "read", ino, |w| self.read(w, fh.0, offset, size)) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.run(Op::Write, "write", ino, |w| {
            self.write(w, fh.0, offset, data)
        }) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        empty(
            reply,
            self.run(Op::Flush, "flush", ino, |w| self.flush(w, fh.0)),
        );
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Close the backing fd even when the request "fails".
        let r = self.run(Op::Release, "release", ino, |_| Ok(()));
        self.release(fh.0);
        empty(reply, r);
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(
            reply,
            self.run(Op::Fsync, "fsync", ino, |w| self.fsync(w, fh.0, datasync)),
        );
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.run(Op::Other, "opendir", ino, |w| self.opendir(w, ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.run(Op::Readdir, "readdir", ino, |w| {
            self.readdir(w, ino.0, fh.0, offset)
        }) {
            Ok(entries) => {
                for (i, (child, kind, name)) in entries.into_iter().enumerate() {
                    if reply.add(INodeNo(child), offset + i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.run(Op::Other, "releasedir", ino, |_| Ok(()));
        self.releasedir(fh.0);
        empty(reply, r);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(
            reply,
            self.run(Op::Other, "fsyncdir", ino, |w| self.fsyncdir(w, fh.0)),
        );
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        match self.run(Op::Other, "statfs", ino, |w| self.statfs(w)) {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        empty(
            reply,
            self.run(Op::Other, "access", ino, |w| {
                self.access(w, ino.0, mask.bits())
            }),
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.run(Op::Create, "create", parent, |w| {
            self.create(w, parent.0, name, mode, umask, flags, owner(req))
        });
        match r {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), self.fopen_flags())
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = self.run(Op::Other, "fallocate", ino, |w| {
            self.fallocate(w, fh.0, offset, length, mode)
        });
        empty(reply, r);
    }

    // getlk/setlk are deliberately not implemented: without FUSE_POSIX_LOCKS
    // the kernel keeps POSIX locks locally, so SQLite locking between
    // processes on this machine works as on a share with local locks.

    // Counted but unsupported requests (ENOSYS makes the kernel stop asking
    // or fall back to a generic implementation).

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(self.unsupported("setxattr", ino, Errno::ENOSYS));
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(self.unsupported("getxattr", ino, Errno::ENOSYS));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(self.unsupported("listxattr", ino, Errno::ENOSYS));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(self.unsupported("removexattr", ino, Errno::ENOSYS));
    }

    fn bmap(&self, _req: &Request, ino: INodeNo, _blocksize: u32, _idx: u64, reply: ReplyBmap) {
        reply.error(self.unsupported("bmap", ino, Errno::ENOSYS));
    }

    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(self.unsupported("ioctl", ino, Errno::ENOTTY));
    }

    fn poll(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        reply.error(self.unsupported("poll", ino, Errno::ENOSYS));
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: ReplyLseek,
    ) {
        reply.error(self.unsupported("lseek", ino, Errno::ENOSYS));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(self.unsupported("copy_file_range", ino_in, Errno::ENOSYS));
    }
}
