//! The FUSE operations: each one the kernel forwards is answered from the model.
//!
//! Files are opened with `FOPEN_KEEP_CACHE`: the kernel keeps a file's cached pages
//! across opens, as it does on a local file system, so a reopened file may still show
//! pages whose sync failed (see [`crate::model::Model::fsync`]).

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::model::{Ino, Model, NodeKind};

/// How long the kernel may cache names and attributes. Only the kernel changes them,
/// through this file system, except a failed sync's rollback of a file's bytes, whose
/// length a segment keeps (it is preallocated).
const TTL: Duration = Duration::from_secs(1);

/// A directory's entries as one `opendir` saw them.
type Listing = Vec<(std::ffi::OsString, Ino, NodeKind)>;

pub(crate) struct CrashFsOps {
    model: Arc<Mutex<Model>>,
    /// Each open directory handle's listing, taken at `opendir`: `readdir` offsets index
    /// it, so entries created or removed while a reader iterates (as `remove_dir_all`
    /// does) neither shift nor repeat the rest.
    listings: Mutex<(u64, std::collections::HashMap<u64, Listing>)>,
    /// Every time stamp: the model keeps none.
    mounted_at: SystemTime,
}

impl CrashFsOps {
    pub(crate) fn new(model: Arc<Mutex<Model>>) -> CrashFsOps {
        CrashFsOps { model, listings: Mutex::default(), mounted_at: SystemTime::now() }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        // Every model operation checks before it changes anything, so a poisoned lock
        // still guards a whole model.
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn attr(&self, model: &Model, ino: Ino) -> Result<FileAttr, i32> {
        let (kind, size) = model.attr(ino)?;
        let (kind, perm, nlink) = match kind {
            NodeKind::File => (FileType::RegularFile, 0o644, 1),
            NodeKind::Dir => (FileType::Directory, 0o755, 2),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn entry(&self, model: &Model, ino: Result<Ino, i32>, reply: ReplyEntry) {
        match ino.and_then(|ino| self.attr(model, ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn make(&self, parent: INodeNo, name: &OsStr, kind: NodeKind, reply: ReplyEntry) {
        let mut model = self.model();
        let ino = model.create(parent.0, name, kind);
        self.entry(&model, ino, reply);
    }
}

fn empty(result: Result<(), i32>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(Errno::from_i32(e)),
    }
}

impl Filesystem for CrashFsOps {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let model = self.model();
        let ino = model.lookup(parent.0, name);
        self.entry(&model, ino, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(&self.model(), ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Only the length is kept; modes, owners and times are not modelled.
        let mut model = self.model();
        let changed = match size {
            Some(len) => model.set_len(ino.0, len),
            None => Ok(()),
        };
        match changed.and_then(|()| self.attr(&model, ino.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::from_i32(libc::EPERM));
        }
        self.make(parent, name, NodeKind::File, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.make(parent, name, NodeKind::Dir, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.model().remove(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.model().remove(parent.0, name, true), reply);
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
        if !flags.is_empty() {
            // RENAME_NOREPLACE, RENAME_EXCHANGE: not modelled.
            return reply.error(Errno::from_i32(libc::EINVAL));
        }
        empty(self.model().rename(parent.0, name, newparent.0, newname), reply);
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.model().read(ino.0, offset, size) {
            Ok(bytes) => reply.data(bytes),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.model().write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // `close` makes nothing durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The length is data here: `fdatasync` syncs it too, as it must when it changed.
        empty(self.model().fsync(ino.0), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let entries = match self.model().entries(ino.0) {
            Ok(entries) => entries,
            Err(e) => return reply.error(Errno::from_i32(e)),
        };
        let dots = [
            (OsStr::new(".").to_owned(), ino.0, NodeKind::Dir),
            (OsStr::new("..").to_owned(), ino.0, NodeKind::Dir),
        ];
        let mut listings = self.listings.lock().unwrap_or_else(|p| p.into_inner());
        listings.0 += 1;
        let fh = listings.0;
        listings.1.insert(fh, dots.into_iter().chain(entries).collect());
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.listings.lock().unwrap_or_else(|p| p.into_inner()).1.remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listings = self.listings.lock().unwrap_or_else(|p| p.into_inner());
        let Some(all) = listings.1.get(&fh.0) else {
            return reply.error(Errno::from_i32(libc::EBADF));
        };
        for (i, (name, child, kind)) in all.iter().enumerate().skip(offset as usize) {
            let kind = match kind {
                NodeKind::File => FileType::RegularFile,
                NodeKind::Dir => FileType::Directory,
            };
            if reply.add(INodeNo(*child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(self.model().fsyncdir(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Room enough for any test: 1 TiB in 4 KiB blocks.
        let blocks = 1 << 28;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut model = self.model();
        match model.create(parent.0, name, NodeKind::File).and_then(|ino| self.attr(&model, ino)) {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        empty(self.model().fallocate(ino.0, offset, length, mode), reply);
    }
}
