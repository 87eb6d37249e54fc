//! The file system's state: a tree of inodes, each file with the bytes a reader sees now
//! (`live`), the bytes that would survive a power cut (`durable`) and the changes in
//! between; each directory with its live entries, its durable entries and the changes in
//! between. Every operation the kernel forwards lands here; `fsync` and `fsyncdir` move
//! changes from pending to durable; [`Model::power_cut`] draws the image a power cut
//! leaves.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use orderlog_storage::sim::{kept_changes, tear_write, write_into};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fault::{Fault, FaultOp};

/// An inode number; the root is 1, as FUSE requires.
pub(crate) type Ino = u64;
/// The root directory's inode.
pub(crate) const ROOT: Ino = 1;

/// An error the kernel passes on to the caller (an `errno`).
pub(crate) type Errno = i32;

/// A change to a file not yet synced.
#[derive(Debug, Clone)]
enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct File {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Change>,
}

impl File {
    fn apply(image: &mut Vec<u8>, change: &Change) {
        match change {
            Change::Write { offset, data } => write_into(image, *offset, data),
            Change::SetLen(len) => image.resize(*len as usize, 0),
        }
    }

    fn change(&mut self, change: Change) {
        File::apply(&mut self.live, &change);
        self.pending.push(change);
    }
}

/// A change to a directory's entries not yet synced; each is whole (a rename is one).
#[derive(Debug, Clone)]
enum DirOp {
    Link(OsString, Ino),
    Unlink(OsString),
    Rename { from: OsString, to: OsString, ino: Ino },
}

#[derive(Debug, Clone, Default)]
struct Dir {
    live: BTreeMap<OsString, Ino>,
    durable: BTreeMap<OsString, Ino>,
    ops: Vec<DirOp>,
}

#[derive(Debug, Clone)]
enum Kind {
    File(File),
    Dir(Dir),
}

#[derive(Debug, Clone)]
struct Node {
    /// The name it was last given (for fault filters and messages).
    name: OsString,
    kind: Kind,
}

/// What an inode is, for the kernel's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    File,
    Dir,
}

/// Counts of what the file system did since it was mounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsStats {
    /// Writes received (from `write`, and from the page cache's writeback of mapped
    /// pages).
    pub writes: u64,
    /// Bytes those writes carried.
    pub bytes_written: u64,
    /// File syncs (`fsync`, `fdatasync`, `msync(MS_SYNC)`) that succeeded.
    pub file_syncs: u64,
    /// Directory syncs that succeeded.
    pub dir_syncs: u64,
    /// Operations an injected fault failed.
    pub faults_fired: u64,
    /// Operations refused after the power was cut.
    pub refused_after_cut: u64,
    /// Mutating operations (creations, removals, renames, writes, length changes,
    /// `fallocate`, syncs), the count [`crate::CrashFs::cut_power_after`] counts in.
    pub operations: u64,
}

/// The file system's state; see the module docs.
#[derive(Debug)]
pub(crate) struct Model {
    nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
    faults: Vec<Armed>,
    /// Set by a power cut: every later operation fails (`EIO`), changing nothing.
    cut: bool,
    /// Mutating operations counted so far.
    ops: u64,
    /// The power goes off at the operation after this count ([`Model::cut_after`]).
    cut_after: Option<u64>,
    stats: FsStats,
}

/// A fault and how many matching operations it has seen.
#[derive(Debug)]
struct Armed {
    fault: Fault,
    seen: u64,
    fired: bool,
}

impl Model {
    /// An empty file system.
    pub(crate) fn empty() -> Model {
        let root = Node { name: OsString::from("/"), kind: Kind::Dir(Dir::default()) };
        Model {
            nodes: BTreeMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            faults: Vec::new(),
            cut: false,
            ops: 0,
            cut_after: None,
            stats: FsStats::default(),
        }
    }

    /// The tree under `dir` (files and directories; anything else is refused), durable
    /// as it is.
    pub(crate) fn load(dir: &Path) -> io::Result<Model> {
        let mut model = Model::empty();
        model.load_into(ROOT, dir)?;
        Ok(model)
    }

    fn load_into(&mut self, parent: Ino, dir: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let ino = self.next_ino;
            self.next_ino += 1;
            let node = if kind.is_dir() {
                Kind::Dir(Dir::default())
            } else if kind.is_file() {
                let bytes = std::fs::read(entry.path())?;
                Kind::File(File { live: bytes.clone(), durable: bytes, pending: Vec::new() })
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: neither a file nor a directory", entry.path().display()),
                ));
            };
            self.nodes.insert(ino, Node { name: entry.file_name(), kind: node });
            if let Some(Kind::Dir(d)) = self.nodes.get_mut(&parent).map(|n| &mut n.kind) {
                d.live.insert(entry.file_name(), ino);
                d.durable.insert(entry.file_name(), ino);
            }
            if kind.is_dir() {
                self.load_into(ino, &entry.path())?;
            }
        }
        Ok(())
    }

    pub(crate) fn stats(&self) -> FsStats {
        FsStats { operations: self.ops, ..self.stats }
    }

    /// The `n`-th mutating operation from now (from 1) and every later one find the power
    /// off: they fail with `EIO` and change nothing.
    pub(crate) fn cut_after(&mut self, n: u64) {
        self.cut_after = Some(self.ops + n.saturating_sub(1));
    }

    pub(crate) fn inject(&mut self, fault: Fault) {
        self.faults.push(Armed { fault, seen: 0, fired: false });
    }

    pub(crate) fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Faults that fired since injected (each counted once).
    pub(crate) fn faults_fired(&self) -> usize {
        self.faults.iter().filter(|a| a.fired).count()
    }

    /// Counts an operation on `ino` against the armed faults; the `errno` if one fails it.
    fn check(&mut self, op: FaultOp, ino: Ino) -> Result<(), Errno> {
        // The name is needed only to match armed faults: no copy per operation otherwise.
        let name = match self.faults.is_empty() {
            true => Vec::new(),
            false => self.nodes.get(&ino).map(|n| n.name.as_bytes().to_vec()).unwrap_or_default(),
        };
        self.check_named(op, &name)
    }

    /// [`Model::check`] for an operation on the file named `name` (a new one). Every
    /// armed fault that matches counts it, whichever fails it.
    fn check_named(&mut self, op: FaultOp, name: &[u8]) -> Result<(), Errno> {
        if self.cut {
            self.stats.refused_after_cut += 1;
            return Err(libc::EIO);
        }
        if self.cut_after.is_some_and(|last| self.ops >= last) {
            self.cut = true;
            self.stats.refused_after_cut += 1;
            return Err(libc::EIO);
        }
        self.ops += 1;
        let mut failed = Ok(());
        for armed in &mut self.faults {
            if !armed.fault.matches(op, name) {
                continue;
            }
            armed.seen += 1;
            let hit = armed.seen == armed.fault.nth || (armed.fault.persistent && armed.fired);
            if hit && failed.is_ok() {
                armed.fired = true;
                failed = Err(armed.fault.errno());
            }
        }
        if failed.is_err() {
            self.stats.faults_fired += 1;
        }
        failed
    }

    fn node(&self, ino: Ino) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: Ino) -> Result<&Dir, Errno> {
        match &self.node(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut Dir, Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.kind) {
            Some(Kind::Dir(d)) => Ok(d),
            Some(Kind::File(_)) => Err(libc::ENOTDIR),
            None => Err(libc::ENOENT),
        }
    }

    fn file(&self, ino: Ino) -> Result<&File, Errno> {
        match &self.node(ino)?.kind {
            Kind::File(f) => Ok(f),
            Kind::Dir(_) => Err(libc::EISDIR),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut File, Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.kind) {
            Some(Kind::File(f)) => Ok(f),
            Some(Kind::Dir(_)) => Err(libc::EISDIR),
            None => Err(libc::ENOENT),
        }
    }

    /// The kind and size of `ino`.
    pub(crate) fn attr(&self, ino: Ino) -> Result<(NodeKind, u64), Errno> {
        Ok(match &self.node(ino)?.kind {
            Kind::File(f) => (NodeKind::File, f.live.len() as u64),
            Kind::Dir(d) => (NodeKind::Dir, d.live.len() as u64),
        })
    }

    pub(crate) fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino, Errno> {
        self.dir(parent)?.live.get(name).copied().ok_or(libc::ENOENT)
    }

    /// The live entries of directory `ino`, in name order.
    pub(crate) fn entries(&self, ino: Ino) -> Result<Vec<(OsString, Ino, NodeKind)>, Errno> {
        let dir = self.dir(ino)?;
        Ok(dir
            .live
            .iter()
            .map(|(name, &child)| {
                let kind = match self.nodes.get(&child).map(|n| &n.kind) {
                    Some(Kind::Dir(_)) => NodeKind::Dir,
                    _ => NodeKind::File,
                };
                (name.clone(), child, kind)
            })
            .collect())
    }

    /// A new, empty file or directory named `name` in `parent`: live now, its name
    /// durable once `parent` is synced.
    pub(crate) fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: NodeKind,
    ) -> Result<Ino, Errno> {
        self.check_named(FaultOp::Create, name.as_bytes())?;
        if self.dir(parent)?.live.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let node = match kind {
            NodeKind::File => Kind::File(File::default()),
            NodeKind::Dir => Kind::Dir(Dir::default()),
        };
        self.nodes.insert(ino, Node { name: name.to_owned(), kind: node });
        let dir = self.dir_mut(parent)?;
        dir.live.insert(name.to_owned(), ino);
        dir.ops.push(DirOp::Link(name.to_owned(), ino));
        Ok(ino)
    }

    /// Removes the entry `name` of `parent` (a directory only if `dir`, and only if
    /// empty). The inode stays: a durable entry may still name it.
    pub(crate) fn remove(&mut self, parent: Ino, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (&self.node(ino)?.kind, dir) {
            (Kind::Dir(d), true) if !d.live.is_empty() => return Err(libc::ENOTEMPTY),
            (Kind::Dir(_), true) | (Kind::File(_), false) => {}
            (Kind::Dir(_), false) => return Err(libc::EISDIR),
            (Kind::File(_), true) => return Err(libc::ENOTDIR),
        }
        self.check(FaultOp::Remove, ino)?;
        let d = self.dir_mut(parent)?;
        d.live.remove(name);
        d.ops.push(DirOp::Unlink(name.to_owned()));
        Ok(())
    }

    /// Renames `parent/name` to `new_parent/new_name`, replacing a file there. Within
    /// one directory the rename is one change, durable (whole) once it is synced. Across
    /// two it is a removal from one and a new entry in the other, each durable with its
    /// directory: a cut may keep both names or neither, stricter than a journal (the
    /// store renames within a directory only).
    pub(crate) fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        if let Ok(existing) = self.lookup(new_parent, new_name) {
            match &self.node(existing)?.kind {
                Kind::Dir(d) if !d.live.is_empty() => return Err(libc::ENOTEMPTY),
                _ => {}
            }
        }
        self.dir(new_parent)?;
        self.check(FaultOp::Rename, ino)?;
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.name = new_name.to_owned();
        }
        if parent == new_parent {
            let d = self.dir_mut(parent)?;
            d.live.remove(name);
            d.live.insert(new_name.to_owned(), ino);
            d.ops.push(DirOp::Rename { from: name.to_owned(), to: new_name.to_owned(), ino });
        } else {
            let from = self.dir_mut(parent)?;
            from.live.remove(name);
            from.ops.push(DirOp::Unlink(name.to_owned()));
            let to = self.dir_mut(new_parent)?;
            to.live.insert(new_name.to_owned(), ino);
            to.ops.push(DirOp::Link(new_name.to_owned(), ino));
        }
        Ok(())
    }

    /// Up to `size` bytes of `ino` from `offset`, as they are now. Served after a cut
    /// too: a read changes nothing durable, and a failed read under a mapping makes the
    /// kernel retry the page fault, so the process would spin instead of failing.
    pub(crate) fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<&[u8], Errno> {
        let live = &self.file(ino)?.live;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(live.len());
        let end = start.saturating_add(size as usize).min(live.len());
        Ok(&live[start..end])
    }

    /// Writes `data` at `offset`: readable now, durable once the file is synced.
    pub(crate) fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.check(FaultOp::Write, ino)?;
        let n = u32::try_from(data.len()).map_err(|_| libc::EINVAL)?;
        self.file_mut(ino)?.change(Change::Write { offset, data: data.to_vec() });
        self.stats.writes += 1;
        self.stats.bytes_written += u64::from(n);
        Ok(n)
    }

    /// Sets the file's length (truncate or extend with zeros), durable once synced.
    pub(crate) fn set_len(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        self.check(FaultOp::Write, ino)?;
        self.file_mut(ino)?.change(Change::SetLen(len));
        Ok(())
    }

    /// `fallocate`: mode 0 extends the file to at least `offset + len` (durable once
    /// synced); `FALLOC_FL_KEEP_SIZE` only reserves, which changes nothing seen here.
    pub(crate) fn fallocate(
        &mut self,
        ino: Ino,
        offset: u64,
        len: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        self.check(FaultOp::Fallocate, ino)?;
        let file = self.file_mut(ino)?;
        let end = offset.checked_add(len).ok_or(libc::EFBIG)?;
        if mode == 0 && end > file.live.len() as u64 {
            file.change(Change::SetLen(end));
        }
        Ok(())
    }

    /// `fsync` of a file: its pending changes become durable. A failed one (an injected
    /// fault) loses them, as a failed writeback does: the device never got them, so the
    /// file reads as its durable bytes from then on, zeros past them up to its length
    /// (the kernel's page cache above may still serve its own copy), and no later sync
    /// writes them.
    pub(crate) fn fsync(&mut self, ino: Ino) -> Result<(), Errno> {
        let checked = self.check(FaultOp::Fsync, ino);
        let cut = self.cut;
        let file = self.file_mut(ino)?;
        match checked {
            Ok(()) => {
                for change in std::mem::take(&mut file.pending) {
                    File::apply(&mut file.durable, &change);
                }
                self.stats.file_syncs += 1;
                Ok(())
            }
            Err(e) => {
                if !cut {
                    // The length stays: the kernel caches it, and a preallocated file's
                    // length is what its users go by.
                    let len = file.live.len();
                    file.pending.clear();
                    file.live = file.durable.clone();
                    file.live.resize(len, 0);
                }
                Err(e)
            }
        }
    }

    /// `fsync` of a directory: its entries as they are now become durable.
    pub(crate) fn fsyncdir(&mut self, ino: Ino) -> Result<(), Errno> {
        self.check(FaultOp::FsyncDir, ino)?;
        let dir = self.dir_mut(ino)?;
        dir.durable = dir.live.clone();
        dir.ops.clear();
        self.stats.dir_syncs += 1;
        Ok(())
    }

    /// Cuts the power: every later operation fails. Returns the tree a power cut leaves,
    /// drawn from `seed`: synced bytes and entries survive; each unsynced write is dropped,
    /// kept, torn or garbled, each unsynced length change kept or not, and of each
    /// directory's unsynced changes a prefix or any subset is kept.
    pub(crate) fn power_cut(&mut self, seed: u64) -> Image {
        self.cut = true;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut image = Image { files: Vec::new(), dirs: Vec::new() };
        let mut drawn = std::collections::BTreeSet::new();
        self.draw(ROOT, &mut Vec::new(), &mut rng, &mut image, &mut drawn);
        image
    }

    /// Draws directory `dir` (at `path`) and what is under it into `image`. A directory
    /// reached a second time (under two names after unsynced moves) is drawn once.
    fn draw(
        &self,
        dir: Ino,
        path: &mut Vec<OsString>,
        rng: &mut StdRng,
        image: &mut Image,
        drawn: &mut std::collections::BTreeSet<Ino>,
    ) {
        if !drawn.insert(dir) {
            return;
        }
        let Ok(d) = self.dir(dir) else { return };
        let mut entries = d.durable.clone();
        for (op, keep) in d.ops.iter().zip(kept_changes(rng, d.ops.len())) {
            if !keep {
                continue;
            }
            match op {
                DirOp::Link(name, ino) => {
                    entries.insert(name.clone(), *ino);
                }
                DirOp::Unlink(name) => {
                    entries.remove(name);
                }
                DirOp::Rename { from, to, ino } => {
                    entries.remove(from);
                    entries.insert(to.clone(), *ino);
                }
            }
        }
        for (name, ino) in entries {
            path.push(name);
            let rel: std::path::PathBuf = path.iter().collect();
            match self.nodes.get(&ino).map(|n| &n.kind) {
                Some(Kind::Dir(_)) if !drawn.contains(&ino) => {
                    image.dirs.push(rel);
                    self.draw(ino, path, rng, image, drawn);
                }
                Some(Kind::Dir(_)) => {}
                Some(Kind::File(f)) => {
                    let mut bytes = f.durable.clone();
                    for change in &f.pending {
                        match change {
                            Change::Write { offset, data } => {
                                for (at, run) in changed_runs(&bytes, *offset, data) {
                                    tear_write(rng, &mut bytes, at, run);
                                }
                            }
                            Change::SetLen(_) if rng.random_bool(0.5) => {
                                File::apply(&mut bytes, change);
                            }
                            Change::SetLen(_) => {}
                        }
                    }
                    image.files.push((rel, bytes));
                }
                None => {}
            }
            path.pop();
        }
    }
}

/// The runs of `data` (written at `offset`) that differ from what `image` holds there,
/// with their offsets. The page cache writes mapped pages back whole, so a write may
/// carry bytes already durable beside new ones; a power cut tears or garbles only the new
/// ones (a sector is written whole or not at all, so rewriting it with the bytes it holds
/// leaves them).
fn changed_runs<'d>(image: &[u8], offset: u64, data: &'d [u8]) -> Vec<(u64, &'d [u8])> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let same = |i: usize| start.checked_add(i).and_then(|at| image.get(at)) == Some(&data[i]);
    let mut runs = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if same(i) {
            i += 1;
            continue;
        }
        let first = i;
        while i < data.len() && !same(i) {
            i += 1;
        }
        runs.push((offset + first as u64, &data[first..i]));
    }
    runs
}

/// The tree a power cut left: directories (parents first) and files, by path relative
/// to the root.
#[derive(Debug)]
pub(crate) struct Image {
    pub(crate) dirs: Vec<std::path::PathBuf>,
    pub(crate) files: Vec<(std::path::PathBuf, Vec<u8>)>,
}

impl Image {
    /// Writes the tree into `dir`, which must be empty.
    pub(crate) fn write_to(&self, dir: &Path) -> io::Result<()> {
        for d in &self.dirs {
            std::fs::create_dir(dir.join(d))?;
        }
        for (f, bytes) in &self.files {
            std::fs::write(dir.join(f), bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultError;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn unsynced_writes_and_names_are_lost_synced_ones_survive() {
        let mut fs = Model::empty();
        let a = fs.create(ROOT, name("a"), NodeKind::File).unwrap();
        fs.write(a, 0, b"durable").unwrap();
        fs.fsync(a).unwrap();
        fs.fsyncdir(ROOT).unwrap();
        let b = fs.create(ROOT, name("b"), NodeKind::File).unwrap();
        fs.write(b, 0, b"never synced").unwrap();
        fs.fsync(b).unwrap(); // the data, but not the name
        fs.write(a, 7, b" and more").unwrap();
        for seed in 0..50 {
            let mut copy = Model { nodes: fs.nodes.clone(), ..Model::empty() };
            let image = copy.power_cut(seed);
            let files: BTreeMap<_, _> = image.files.iter().cloned().collect();
            let a = &files[Path::new("a")];
            assert!(a.starts_with(b"durable"), "seed {seed}: synced bytes lost: {a:?}");
            assert!(a.len() == 7 || a.len() == 16, "seed {seed}: {a:?}");
            // b's entry is a pending link: a prefix or subset may keep it, with its data.
            if let Some(b) = files.get(Path::new("b")) {
                assert_eq!(b, b"never synced");
            }
        }
        fs.power_cut(0);
        assert_eq!(fs.write(a, 0, b"x"), Err(libc::EIO), "after the cut nothing changes");
    }

    #[test]
    fn a_failed_fsync_loses_the_pending_writes_for_good() {
        let mut fs = Model::empty();
        let a = fs.create(ROOT, name("a.wal"), NodeKind::File).unwrap();
        fs.fsyncdir(ROOT).unwrap();
        fs.write(a, 0, b"one").unwrap();
        fs.fsync(a).unwrap();
        fs.inject(Fault::eio_on_fsync(1).on_names_containing(".wal"));
        fs.write(a, 3, b"two").unwrap();
        assert_eq!(fs.fsync(a), Err(libc::EIO));
        // The device never got them: zeros up to the length the kernel caches.
        assert_eq!(fs.read(a, 0, 100).unwrap(), b"one\0\0\0");
        assert_eq!(fs.faults_fired(), 1);
        fs.fsync(a).unwrap();
        let image = fs.power_cut(1);
        assert_eq!(image.files, vec![(Path::new("a.wal").to_path_buf(), b"one".to_vec())]);
    }

    #[test]
    fn a_cut_never_changes_synced_bytes_rewritten_unchanged() {
        // The page cache writes a mapped page back whole: the synced half travels again
        // beside the new half, which alone may be torn or garbled.
        let mut fs = Model::empty();
        let a = fs.create(ROOT, name("seg"), NodeKind::File).unwrap();
        fs.fsyncdir(ROOT).unwrap();
        fs.write(a, 0, &[7; 4096]).unwrap();
        fs.fsync(a).unwrap();
        let mut page = vec![7u8; 2048];
        page.extend([9u8; 2048]);
        fs.write(a, 0, &page).unwrap();
        let mut new_half_changed = 0;
        for seed in 0..64 {
            let mut copy = Model { nodes: fs.nodes.clone(), ..Model::empty() };
            let image = copy.power_cut(seed);
            let bytes = &image.files[0].1;
            assert!(bytes[..2048].iter().all(|&b| b == 7), "seed {seed}: synced bytes changed");
            new_half_changed += usize::from(bytes[2048..] != [7u8; 2048][..]);
        }
        assert!(new_half_changed > 0, "the new half is sometimes kept or damaged");
        assert_eq!(
            changed_runs(&[1, 2, 3, 4], 0, &[1, 9, 3, 8, 5]),
            vec![(1, &[9][..]), (3, &[8, 5][..])]
        );
    }

    #[test]
    fn a_rename_is_kept_whole_or_not_at_all() {
        for seed in 0..64 {
            let mut fs = Model::empty();
            let t = fs.create(ROOT, name("m.tmp"), NodeKind::File).unwrap();
            fs.write(t, 0, b"new").unwrap();
            fs.fsync(t).unwrap();
            fs.fsyncdir(ROOT).unwrap();
            fs.rename(ROOT, name("m.tmp"), ROOT, name("MANIFEST")).unwrap();
            let names: Vec<_> = fs
                .power_cut(seed)
                .files
                .into_iter()
                .map(|(p, _)| p.display().to_string())
                .collect();
            assert!(names == ["m.tmp"] || names == ["MANIFEST"], "seed {seed}: {names:?}");
        }
    }

    #[test]
    fn the_power_goes_off_at_the_chosen_operation() {
        let mut fs = Model::empty();
        let a = fs.create(ROOT, name("a"), NodeKind::File).unwrap(); // 1
        fs.cut_after(3);
        fs.write(a, 0, b"one").unwrap(); // 1st from now
        fs.fsync(a).unwrap(); // 2nd
        assert_eq!(fs.fsyncdir(ROOT), Err(libc::EIO), "the 3rd finds the power off");
        assert_eq!(fs.write(a, 3, b"two"), Err(libc::EIO));
        assert_eq!(fs.stats().operations, 3);
        // The name was never synced: it survives only if the cut keeps the pending link,
        // and then with the synced bytes.
        for seed in 0..16 {
            let mut copy = Model { nodes: fs.nodes.clone(), ..Model::empty() };
            for (path, bytes) in copy.power_cut(seed).files {
                assert_eq!((path.as_path(), &bytes[..]), (Path::new("a"), &b"one"[..]));
            }
        }
    }

    #[test]
    fn a_fault_on_creation_matches_the_new_name() {
        let mut fs = Model::empty();
        let wal = fs.create(ROOT, name("wal"), NodeKind::Dir).unwrap();
        fs.inject(Fault::new(FaultOp::Create, 1, FaultError::Io).on_names_containing(".wal"));
        fs.create(wal, name("LOCK"), NodeKind::File).unwrap();
        assert_eq!(fs.create(wal, name("0001.wal"), NodeKind::File), Err(libc::EIO));
        assert_eq!(fs.lookup(wal, name("0001.wal")), Err(libc::ENOENT), "nothing created");
    }

    #[test]
    fn faults_count_matching_operations_only() {
        let mut fs = Model::empty();
        let a = fs.create(ROOT, name("x.wal"), NodeKind::File).unwrap();
        let b = fs.create(ROOT, name("y.arrow"), NodeKind::File).unwrap();
        fs.inject(Fault::enospc_on_fallocate(2).on_names_containing(".wal"));
        fs.fallocate(b, 0, 4096, 0).unwrap();
        fs.fallocate(a, 0, 4096, 0).unwrap();
        fs.fallocate(b, 0, 8192, 0).unwrap();
        assert_eq!(fs.fallocate(a, 0, 8192, 0), Err(libc::ENOSPC));
        assert_eq!(fs.attr(a).unwrap(), (NodeKind::File, 4096));
        fs.inject(Fault::eio_on_write(1).persistent());
        assert_eq!(fs.write(b, 0, b"x"), Err(libc::EIO));
        assert_eq!(fs.write(b, 0, b"x"), Err(libc::EIO), "persistent");
        assert_eq!(fs.stats().faults_fired, 3);
    }

    #[test]
    fn load_and_write_round_trip_a_tree() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("wal")).unwrap();
        std::fs::write(src.path().join("wal/0001.wal"), b"frames").unwrap();
        std::fs::write(src.path().join("LOCK"), b"").unwrap();
        let mut fs = Model::load(src.path()).unwrap();
        let wal = fs.lookup(ROOT, name("wal")).unwrap();
        let seg = fs.lookup(wal, name("0001.wal")).unwrap();
        assert_eq!(fs.read(seg, 0, 64).unwrap(), b"frames");
        let out = tempfile::tempdir().unwrap();
        fs.power_cut(3).write_to(out.path()).unwrap();
        assert_eq!(std::fs::read(out.path().join("wal/0001.wal")).unwrap(), b"frames");
        assert!(out.path().join("LOCK").is_file());
    }
}
