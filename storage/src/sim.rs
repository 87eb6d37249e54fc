//! A simulated disk for crash, power-loss and fault-injection tests.
//!
//! The disk holds a tree of directories and files. Every file keeps two images: `live`
//! (what a reader sees now: the page cache) and `durable` (what would survive a power
//! cut), plus the writes not yet synced. Every directory keeps its live entries, its
//! durable entries and the operations in between (new names, renames, removals).
//! [`SimStorage::crash`] builds the disk a power cut would leave, drawn from a seed so a
//! failing case replays exactly:
//! - each unsynced write is dropped, kept, torn at a 512 B or 4 KiB boundary (a prefix
//!   kept), torn sector by sector (any subset of its 512 B sectors kept, a later one
//!   without an earlier one), or garbled;
//! - each directory keeps its synced entries plus, of the changes made since its last
//!   sync, a random prefix or a random subset (changes persisted out of order); a
//!   directory whose own entry is lost takes everything under it along.
//!
//! A failed sync behaves as Linux's writeback does: the writes it covered are *lost* (the
//! pages are marked clean, the cache still serves them, and no later sync writes them).
//!
//! Faults: [`SimStorage::inject`] fails the N-th storage operation of a kind (once or
//! from then on) with an I/O error or `ENOSPC`; reads and listings can fail too
//! ([`FaultTarget::Read`]). [`SimStorage::crash_after`] makes every operation from the
//! N-th on fail, as if the process had died there; [`SimStorage::crash_at`] does the same
//! at a named kill point. Both may be armed before the store is opened, so recovery
//! itself is interrupted.
//!
//! One disk can be seen from several roots: [`SimStorage::at`] (or `Storage::sub`) gives
//! a view of a subdirectory sharing the same disk, as a store shares one disk between
//! its log and its snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{LockGuard, SegmentFile, Storage, WriteFile};

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// The operation fails with a generic I/O error (`EIO`).
    Io,
    /// The operation fails with `ENOSPC`.
    NoSpace,
}

/// Which operations a fault counts and hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultTarget {
    /// Every mutating operation.
    Any,
    /// `sync_range`, `sync_file`, a written file's `sync` and `sync_dir` only.
    Sync,
    /// File and segment creation only.
    Create,
    /// Writes only.
    Write,
    /// Reads, file lengths and directory listings only (not counted as operations by
    /// [`SimStorage::crash_after`]).
    Read,
}

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Which operations are counted.
    pub target: FaultTarget,
    /// The 0-based index, among counted operations, of the first that fails.
    pub nth: u64,
    /// What the failure looks like.
    pub kind: FaultKind,
    /// If true, every counted operation after the first failure fails too.
    pub persistent: bool,
}

/// The kinds of storage operations, for fault targeting, counting and the trace
/// ([`SimStorage::trace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Op {
    /// A file created (a new segment, a snapshot file).
    Create,
    /// An existing file opened.
    Open,
    /// Bytes written to a file (not yet durable).
    Write,
    /// A file's range or a directory made durable.
    Sync,
    /// A file or directory renamed.
    Rename,
    /// A file or directory removed.
    Remove,
    /// A directory created.
    MakeDir,
}

impl FaultTarget {
    fn matches(self, op: Op) -> bool {
        match self {
            FaultTarget::Any => true,
            FaultTarget::Sync => op == Op::Sync,
            FaultTarget::Create => op == Op::Create,
            FaultTarget::Write => op == Op::Write,
            FaultTarget::Read => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    offset: u64,
    data: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

impl SimFile {
    /// Moves the parts of pending writes inside `start..end` to the durable image.
    fn sync(&mut self, start: u64, end: u64) {
        self.settle(start, end, true);
    }

    /// Forgets the parts of pending writes inside `start..end` without making them
    /// durable: a failed writeback. The live image keeps them.
    fn lose(&mut self, start: u64, end: u64) {
        self.settle(start, end, false);
    }

    /// Takes the parts of pending writes inside `start..end` out of the pending list,
    /// into the durable image if `durable`.
    fn settle(&mut self, start: u64, end: u64, durable: bool) {
        let mut still = Vec::new();
        for p in self.pending.drain(..) {
            let (ps, pe) = (p.offset, p.offset + p.data.len() as u64);
            let (is, ie) = (ps.max(start), pe.min(end));
            if is >= ie {
                still.push(p);
                continue;
            }
            if durable {
                let inside = &p.data[(is - ps) as usize..(ie - ps) as usize];
                write_into(&mut self.durable, is, inside);
            }
            if ps < is {
                still.push(Pending { offset: ps, data: p.data[..(is - ps) as usize].to_vec() });
            }
            if ie < pe {
                still.push(Pending { offset: ie, data: p.data[(ie - ps) as usize..].to_vec() });
            }
        }
        self.pending = still;
    }

    /// Records a write of `data` at `offset`: live now, durable once synced.
    fn write(&mut self, offset: u64, data: Vec<u8>) {
        write_into(&mut self.live, offset, &data);
        self.pending.push(Pending { offset, data });
    }
}

/// Writes `data` into `image` at `offset`, growing it (with zeros) as needed.
pub fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(data);
}

/// A change to a directory's entries, not yet synced.
#[derive(Debug, Clone)]
enum DirOp {
    Link(String, u64),
    Rename { from: String, to: String, inode: u64 },
    Unlink(String),
}

#[derive(Debug, Clone, Default)]
struct SimDir {
    live: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
    ops: Vec<DirOp>,
}

impl SimDir {
    fn link(&mut self, name: &str, inode: u64) {
        self.live.insert(name.to_owned(), inode);
        self.ops.push(DirOp::Link(name.to_owned(), inode));
    }

    /// The entries a power cut leaves: the durable ones, plus a prefix or a subset of
    /// the changes since.
    fn crash(&self, rng: &mut StdRng) -> BTreeMap<String, u64> {
        let mut entries = self.durable.clone();
        for (op, keep) in self.ops.iter().zip(kept_changes(rng, self.ops.len())) {
            if !keep {
                continue;
            }
            match op {
                DirOp::Link(name, inode) => {
                    entries.insert(name.clone(), *inode);
                }
                DirOp::Rename { from, to, inode } => {
                    entries.remove(from);
                    entries.insert(to.clone(), *inode);
                }
                DirOp::Unlink(name) => {
                    entries.remove(name);
                }
            }
        }
        entries
    }
}

#[derive(Debug, Clone)]
enum Node {
    File(SimFile),
    Dir(SimDir),
}

/// The root directory's inode.
const ROOT: u64 = 0;

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file or directory"))
}

fn gone() -> io::Error {
    io::Error::other("simulated crash: the process is gone")
}

#[derive(Debug, Clone)]
struct State {
    /// Every inode ever made: an unlinked one may still be named by a durable entry.
    nodes: BTreeMap<u64, Node>,
    next_inode: u64,
    /// The roots whose writer lock is held.
    locked: BTreeSet<Vec<String>>,
    /// Files whose reads fail with `EIO` ([`SimStorage::make_unreadable`]).
    unreadable: BTreeSet<u64>,
    /// Reads, file lengths and listings performed (not counted in `ops`).
    reads: u64,
    /// How long a segment sync takes ([`SimStorage::set_sync_latency`]).
    sync_latency: std::time::Duration,
    ops: u64,
    /// The kind of every counted operation, in order (one byte each).
    trace: Vec<Op>,
    fault: Option<Fault>,
    fault_seen: u64,
    fault_fired: bool,
    crash_after: Option<u64>,
    /// Armed by `crash_at`: the point, and its passages left before the crash.
    kill_at: Option<(crate::KillPoint, u64)>,
    dead: bool,
}

impl Default for State {
    fn default() -> Self {
        State::with_nodes(BTreeMap::from([(ROOT, Node::Dir(SimDir::default()))]), ROOT + 1)
    }
}

/// Why an operation failed: the process died, or an injected fault hit it.
enum Failure {
    Dead(io::Error),
    Fault(io::Error),
}

impl From<Failure> for io::Error {
    fn from(failure: Failure) -> io::Error {
        match failure {
            Failure::Dead(e) | Failure::Fault(e) => e,
        }
    }
}

impl State {
    fn with_nodes(nodes: BTreeMap<u64, Node>, next_inode: u64) -> State {
        State {
            nodes,
            next_inode,
            locked: BTreeSet::new(),
            unreadable: BTreeSet::new(),
            reads: 0,
            sync_latency: std::time::Duration::ZERO,
            ops: 0,
            trace: Vec::new(),
            fault: None,
            fault_seen: 0,
            fault_fired: false,
            crash_after: None,
            kill_at: None,
            dead: false,
        }
    }

    /// Counts an operation and decides whether it fails.
    fn begin(&mut self, op: Op) -> io::Result<()> {
        self.check(op).map_err(io::Error::from)
    }

    /// [`State::begin`], telling a crash from an injected fault (a failed sync loses
    /// its pages; a dead process leaves them pending).
    fn check(&mut self, op: Op) -> Result<(), Failure> {
        if self.dead {
            return Err(Failure::Dead(gone()));
        }
        self.ops += 1;
        self.trace.push(op);
        if let Some(limit) = self.crash_after
            && self.ops > limit
        {
            self.dead = true;
            return Err(Failure::Dead(gone()));
        }
        let Some(fault) = self.fault else { return Ok(()) };
        if !fault.target.matches(op) {
            return Ok(());
        }
        self.fire(fault).map_err(Failure::Fault)
    }

    /// Checks a read or a listing: fails if the process is dead or a read fault hits it.
    /// Reads are not counted as operations.
    fn begin_read(&mut self) -> io::Result<()> {
        if self.dead {
            return Err(gone());
        }
        self.reads += 1;
        match self.fault {
            Some(fault) if fault.target == FaultTarget::Read => self.fire(fault),
            _ => Ok(()),
        }
    }

    /// Counts one operation the fault targets; the error if it is the one to fail.
    fn fire(&mut self, fault: Fault) -> io::Result<()> {
        let index = self.fault_seen;
        self.fault_seen += 1;
        let hit = index == fault.nth || (fault.persistent && self.fault_fired);
        if !hit {
            return Ok(());
        }
        self.fault_fired = true;
        Err(match fault.kind {
            FaultKind::Io => io::Error::from_raw_os_error(libc::EIO),
            FaultKind::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
        })
    }

    fn dir(&self, inode: u64) -> Option<&SimDir> {
        match self.nodes.get(&inode) {
            Some(Node::Dir(d)) => Some(d),
            _ => None,
        }
    }

    fn dir_mut(&mut self, inode: u64) -> Option<&mut SimDir> {
        match self.nodes.get_mut(&inode) {
            Some(Node::Dir(d)) => Some(d),
            _ => None,
        }
    }

    fn file(&self, inode: u64) -> Option<&SimFile> {
        match self.nodes.get(&inode) {
            Some(Node::File(f)) => Some(f),
            _ => None,
        }
    }

    fn file_mut(&mut self, inode: u64) -> Option<&mut SimFile> {
        match self.nodes.get_mut(&inode) {
            Some(Node::File(f)) => Some(f),
            _ => None,
        }
    }

    /// The inode a path names now.
    fn lookup(&self, path: &[String]) -> io::Result<u64> {
        let mut at = ROOT;
        for (i, name) in path.iter().enumerate() {
            let dir = self.dir(at).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{}: not a directory", path[..i].join("/")),
                )
            })?;
            at = *dir.live.get(name).ok_or_else(|| not_found(&path[..=i].join("/")))?;
        }
        Ok(at)
    }

    /// The directory holding `path`'s last component, and that component.
    fn parent<'p>(&self, path: &'p [String]) -> io::Result<(u64, &'p str)> {
        let Some((name, parent)) = path.split_last() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the root has no parent"));
        };
        let inode = self.lookup(parent)?;
        if self.dir(inode).is_none() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, parent.join("/")));
        }
        Ok((inode, name))
    }

    fn file_inode(&self, path: &[String]) -> io::Result<u64> {
        let inode = self.lookup(path)?;
        match self.nodes.get(&inode) {
            Some(Node::File(_)) => Ok(inode),
            _ => Err(io::Error::new(io::ErrorKind::IsADirectory, path.join("/"))),
        }
    }

    /// [`State::file_inode`], failing with `EIO` if the file was made unreadable.
    fn readable_inode(&self, path: &[String]) -> io::Result<u64> {
        let inode = self.file_inode(path)?;
        if self.unreadable.contains(&inode) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(inode)
    }

    fn dir_inode(&self, path: &[String]) -> io::Result<u64> {
        let inode = self.lookup(path)?;
        match self.nodes.get(&inode) {
            Some(Node::Dir(_)) => Ok(inode),
            _ => Err(io::Error::new(io::ErrorKind::NotADirectory, path.join("/"))),
        }
    }

    /// Adds a new node named `path`, which must not exist yet.
    fn link_new(&mut self, path: &[String], node: Node) -> io::Result<u64> {
        let (parent, name) = self.parent(path)?;
        if self.dir(parent).is_some_and(|d| d.live.contains_key(name)) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.join("/")),
            ));
        }
        let inode = self.next_inode;
        self.next_inode += 1;
        self.nodes.insert(inode, node);
        if let Some(dir) = self.dir_mut(parent) {
            dir.link(name, inode);
        }
        Ok(inode)
    }

    /// Removes the entry `path` (a file if `dir` is false, a directory if true).
    fn unlink(&mut self, path: &[String], dir: bool) -> io::Result<()> {
        if dir {
            self.dir_inode(path)?;
        } else {
            self.file_inode(path)?;
        }
        let (parent, name) = self.parent(path)?;
        if let Some(d) = self.dir_mut(parent) {
            d.live.remove(name);
            d.ops.push(DirOp::Unlink(name.to_owned()));
        }
        Ok(())
    }

    /// Runs the checks of a sync of `start..end` of file `inode`: on success the pending
    /// writes there become durable; when an injected fault fails it, they are lost, as
    /// when Linux fails a writeback: the pages are marked clean, the cache still serves
    /// them, and no later sync writes them again.
    fn sync_file_range(&mut self, inode: u64, start: u64, end: u64) -> io::Result<()> {
        let outcome = self.check(Op::Sync);
        let Some(f) = self.file_mut(inode) else { return outcome.map_err(Into::into) };
        match outcome {
            Ok(()) => {
                f.sync(start, end);
                Ok(())
            }
            Err(Failure::Fault(e)) => {
                f.lose(start, end);
                Err(e)
            }
            Err(dead) => Err(dead.into()),
        }
    }

    /// The tree a power cut leaves, as fresh state (nothing pending, nothing locked).
    fn crash(&self, rng: &mut StdRng) -> State {
        let mut nodes = BTreeMap::new();
        let mut todo = vec![ROOT];
        while let Some(inode) = todo.pop() {
            if nodes.contains_key(&inode) {
                continue;
            }
            let node = match self.nodes.get(&inode) {
                Some(Node::Dir(d)) => {
                    let entries = d.crash(rng);
                    todo.extend(entries.values().rev());
                    Node::Dir(SimDir { live: entries.clone(), durable: entries, ops: Vec::new() })
                }
                Some(Node::File(f)) => {
                    let mut image = f.durable.clone();
                    for p in &f.pending {
                        crash_write(rng, &mut image, p);
                    }
                    Node::File(SimFile { live: image.clone(), durable: image, pending: Vec::new() })
                }
                None => continue,
            };
            nodes.insert(inode, node);
        }
        State::with_nodes(nodes, self.next_inode)
    }

    /// The tree as it is now, as if everything had been synced.
    fn synced(&self) -> State {
        let mut nodes = BTreeMap::new();
        let mut todo = vec![ROOT];
        while let Some(inode) = todo.pop() {
            if nodes.contains_key(&inode) {
                continue;
            }
            let node = match self.nodes.get(&inode) {
                Some(Node::Dir(d)) => {
                    todo.extend(d.live.values());
                    Node::Dir(SimDir {
                        live: d.live.clone(),
                        durable: d.live.clone(),
                        ops: Vec::new(),
                    })
                }
                Some(Node::File(f)) => Node::File(SimFile {
                    live: f.live.clone(),
                    durable: f.live.clone(),
                    pending: Vec::new(),
                }),
                None => continue,
            };
            nodes.insert(inode, node);
        }
        State::with_nodes(nodes, self.next_inode)
    }
}

/// Splits a relative name into its components (`""` and `.` name the directory itself).
fn components(name: &str) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name}: '..' is not allowed"),
                ));
            }
            part => out.push(part.to_owned()),
        }
    }
    Ok(out)
}

/// A simulated disk, seen from one of its directories. Cloning shares the disk.
#[derive(Debug, Clone)]
pub struct SimStorage {
    path: PathBuf,
    /// This view's root, as components from the disk's root.
    root: Vec<String>,
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty simulated disk, seen from its root; `path` is used only in messages.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SimStorage {
            path: path.into(),
            root: Vec::new(),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// The same disk seen from its subdirectory `dir` (relative to this view; it need not
    /// exist yet: [`Storage::create_dir`] makes it).
    pub fn at(&self, dir: &str) -> SimStorage {
        let mut root = self.root.clone();
        // A name with '..' in it has no place on this disk: the view is of a directory
        // that cannot exist, so every operation on it fails.
        root.extend(components(dir).unwrap_or_else(|_| vec!["..".into()]));
        SimStorage { path: self.path.join(dir), root, state: Arc::clone(&self.state) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a test assertion; the state
        // is still consistent, so keep using it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The path from the disk's root to `name` in this view.
    fn full(&self, name: &str) -> io::Result<Vec<String>> {
        let mut path = self.root.clone();
        path.extend(components(name)?);
        Ok(path)
    }

    /// Injects a fault (replacing any earlier one).
    pub fn inject(&self, fault: Fault) {
        let mut s = self.state();
        s.fault = Some(fault);
        s.fault_seen = 0;
        s.fault_fired = false;
    }

    /// Removes the injected fault.
    pub fn clear_fault(&self) {
        self.state().fault = None;
    }

    /// True once the injected fault has fired.
    pub fn fault_fired(&self) -> bool {
        self.state().fault_fired
    }

    /// From the `n`-th mutating operation on (0-based, counted from now), every operation
    /// fails as if the process had died.
    pub fn crash_after(&self, n: u64) {
        let mut s = self.state();
        s.crash_after = Some(s.ops + n);
    }

    /// At the `nth` passage (from 1, counted from now) of the kill `point`, the process
    /// dies: that passage and every later operation fail, as with
    /// [`SimStorage::crash_after`].
    pub fn crash_at(&self, point: crate::KillPoint, nth: u64) {
        self.state().kill_at = Some((point, nth.max(1)));
    }

    /// Makes every segment sync take `latency`, as a real disk's does, so that
    /// concurrent writers meet in group commits (and an acknowledgement that runs ahead
    /// of the sync covering it has time to happen). Zero by default.
    pub fn set_sync_latency(&self, latency: std::time::Duration) {
        self.state().sync_latency = latency;
    }

    /// True once the simulated process has died (a crash point was reached).
    pub fn is_dead(&self) -> bool {
        self.state().dead
    }

    /// Mutating operations performed so far.
    pub fn op_count(&self) -> u64 {
        self.state().ops
    }

    /// Reads, file lengths and directory listings performed so far: the operations a
    /// [`FaultTarget::Read`] fault counts.
    pub fn read_count(&self) -> u64 {
        self.state().reads
    }

    /// The kind of every mutating or opening operation counted so far, in order: entry `k`
    /// is the operation that `crash_after(k)` (called on a fresh disk) makes fail.
    pub fn trace(&self) -> Vec<Op> {
        self.state().trace.clone()
    }

    /// The disk a power cut would leave now, drawn from `seed` (see the module docs),
    /// seen from the same directory. The result is a fresh, unlocked disk whose live and
    /// durable images are both the surviving bytes.
    pub fn crash(&self, seed: u64) -> SimStorage {
        let mut rng = StdRng::seed_from_u64(seed);
        let state = self.state().crash(&mut rng);
        SimStorage {
            path: self.path.clone(),
            root: self.root.clone(),
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The disk as it is now, restarted: what a process that died (without a power cut)
    /// leaves for the next one. Pending writes stay pending, the page cache serves them;
    /// locks, faults and crash points are gone.
    pub fn restart(&self) -> SimStorage {
        let s = self.state();
        let mut state = s.clone();
        state.locked.clear();
        state.dead = false;
        state.crash_after = None;
        state.kill_at = None;
        state.fault = None;
        state.ops = 0;
        state.trace.clear();
        drop(s);
        SimStorage {
            path: self.path.clone(),
            root: self.root.clone(),
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// A copy of the disk as it is now, as if everything had been synced (for corruption
    /// sweeps that damage a clean log).
    pub fn clone_synced(&self) -> SimStorage {
        let state = self.state().synced();
        SimStorage {
            path: self.path.clone(),
            root: self.root.clone(),
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Every file under this view's root, as relative names (`snapshots/MANIFEST`),
    /// sorted.
    pub fn files(&self) -> Vec<String> {
        let s = self.state();
        let Ok(root) = s.dir_inode(&self.root) else { return Vec::new() };
        let mut out = Vec::new();
        let mut todo = vec![(root, String::new())];
        while let Some((inode, prefix)) = todo.pop() {
            let Some(dir) = s.dir(inode) else { continue };
            for (name, &child) in &dir.live {
                let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
                match s.nodes.get(&child) {
                    Some(Node::Dir(_)) => todo.push((child, rel)),
                    Some(Node::File(_)) => out.push(rel),
                    None => {}
                }
            }
        }
        out.sort();
        out
    }

    /// The live bytes of a file.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let s = self.state();
        let inode = s.file_inode(&self.full(name).ok()?).ok()?;
        s.file(inode).map(|f| f.live.clone())
    }

    /// Makes every read of file `name` fail with `EIO` from now on, as a device whose
    /// sectors under that file went bad (writes and syncs still succeed).
    pub fn make_unreadable(&self, name: &str) {
        let mut s = self.state();
        let Ok(path) = self.full(name) else { return };
        if let Ok(inode) = s.file_inode(&path) {
            s.unreadable.insert(inode);
        }
    }

    /// Overwrites a file's live and durable bytes (for corruption tests).
    pub fn set_file_bytes(&self, name: &str, bytes: Vec<u8>) {
        let mut s = self.state();
        let Ok(path) = self.full(name) else { return };
        let Ok(inode) = s.file_inode(&path) else { return };
        if let Some(f) = s.file_mut(inode) {
            f.live = bytes.clone();
            f.durable = bytes;
            f.pending.clear();
        }
    }
}

/// Which of `n` directory changes made since the directory's last sync a power cut
/// keeps, drawn from `rng`: a prefix (changes persisted in order), or any subset (out of
/// order). Each change is whole: a rename is kept or not, never half of it.
pub fn kept_changes(rng: &mut StdRng, n: usize) -> Vec<bool> {
    if rng.random_bool(0.5) {
        let kept = rng.random_range(0..=n);
        (0..n).map(|i| i < kept).collect()
    } else {
        (0..n).map(|_| rng.random_bool(0.5)).collect()
    }
}

/// Applies one unsynced write to a crash image: dropped, kept, torn or garbled.
fn crash_write(rng: &mut StdRng, image: &mut Vec<u8>, p: &Pending) {
    tear_write(rng, image, p.offset, &p.data);
}

/// What a power cut leaves of one write of `data` at `offset` that was not synced, drawn
/// from `rng` and applied to `image`: dropped, kept, a prefix kept (cut at a 512 B or
/// 4 KiB boundary), any subset of its 512 B sectors kept (a later one without an earlier
/// one), or garbled.
pub fn tear_write(rng: &mut StdRng, image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    const SECTOR: u64 = 512;
    let end = offset + data.len() as u64;
    match rng.random_range(0..5u8) {
        0 => {}
        1 => write_into(image, offset, data),
        2 => {
            // A prefix survives, cut at a sector boundary.
            let sector: u64 = if rng.random_bool(0.5) { SECTOR } else { 4096 };
            let first_cut = (offset / sector + 1) * sector;
            if first_cut < end {
                let cuts = (end - first_cut).div_ceil(sector);
                let cut = first_cut + sector * rng.random_range(0..cuts);
                write_into(image, offset, &data[..(cut - offset) as usize]);
            }
        }
        3 => {
            // Sector by sector, in any order: any subset survives.
            let mut at = offset;
            while at < end {
                let next = ((at / SECTOR + 1) * SECTOR).min(end);
                if rng.random_bool(0.5) {
                    let range = (at - offset) as usize..(next - offset) as usize;
                    write_into(image, at, &data[range]);
                }
                at = next;
            }
        }
        _ => {
            let garbage: Vec<u8> = (0..data.len()).map(|_| rng.random()).collect();
            write_into(image, offset, &garbage);
        }
    }
}

struct SimSegment {
    disk: SimStorage,
    inode: u64,
    len: u64,
}

impl SegmentFile for SimSegment {
    fn size(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()> {
        let mut s = self.disk.state();
        s.begin(Op::Write)?;
        let data: Vec<u8> = parts.concat();
        if offset + data.len() as u64 > self.len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "write past end of segment"));
        }
        let f = s.file_mut(self.inode).ok_or_else(|| io::Error::other("file vanished"))?;
        f.write(offset, data);
        Ok(())
    }

    fn sync_range(&self, offset: u64, len: u64) -> io::Result<()> {
        let latency = self.disk.state().sync_latency;
        if !latency.is_zero() {
            // The disk at work, without the disk's lock: other threads go on writing.
            std::thread::sleep(latency);
        }
        self.disk.state().sync_file_range(self.inode, offset, offset + len)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut s = self.disk.state();
        s.begin_read()?;
        if s.unreadable.contains(&self.inode) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let f = s.file(self.inode).ok_or_else(|| io::Error::other("file vanished"))?;
        let end = offset as usize + buf.len();
        if end > f.live.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"));
        }
        buf.copy_from_slice(&f.live[offset as usize..end]);
        Ok(())
    }
}

/// A file of the simulated disk written from start to end.
struct SimWriter {
    disk: SimStorage,
    inode: u64,
    at: u64,
}

impl io::Write for SimWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.disk.state();
        s.begin(Op::Write)?;
        let f = s.file_mut(self.inode).ok_or_else(|| io::Error::other("file vanished"))?;
        f.write(self.at, buf.to_vec());
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteFile for SimWriter {
    fn sync(&mut self) -> io::Result<()> {
        self.disk.state().sync_file_range(self.inode, 0, u64::MAX)
    }
}

struct SimLock {
    disk: SimStorage,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let root = self.disk.root.clone();
        self.disk.state().locked.remove(&root);
    }
}

impl Storage for SimStorage {
    fn path(&self) -> &Path {
        &self.path
    }

    fn create_dir(&self) -> io::Result<()> {
        let mut s = self.state();
        for depth in 1..=self.root.len() {
            let path = &self.root[..depth];
            match s.lookup(path) {
                Ok(inode) if s.dir(inode).is_some() => continue,
                Ok(_) => return Err(io::Error::new(io::ErrorKind::NotADirectory, path.join("/"))),
                Err(_) => {}
            }
            s.begin(Op::MakeDir)?;
            s.link_new(path, Node::Dir(SimDir::default()))?;
            // Its entry is durable only once its parent is synced.
            let parent = s.lookup(&path[..depth - 1])?;
            s.begin(Op::Sync)?;
            if let Some(d) = s.dir_mut(parent) {
                d.durable = d.live.clone();
                d.ops.clear();
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut s = self.state();
        s.begin_read()?;
        let inode = s.dir_inode(&self.full(dir)?)?;
        Ok(s.dir(inode).map(|d| d.live.keys().cloned().collect()).unwrap_or_default())
    }

    fn try_lock(&self) -> io::Result<Option<Box<dyn LockGuard>>> {
        let mut s = self.state();
        if !s.locked.insert(self.root.clone()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock { disk: self.clone() })))
    }

    fn create(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let path = self.full(name)?;
        let mut s = self.state();
        s.begin(Op::Create)?;
        let zeros = vec![0u8; len as usize];
        let file = SimFile { live: zeros.clone(), durable: zeros, pending: Vec::new() };
        let inode = s.link_new(&path, Node::File(file))?;
        Ok(Arc::new(SimSegment { disk: self.clone(), inode, len }))
    }

    fn open(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let path = self.full(name)?;
        let mut s = self.state();
        s.begin(Op::Open)?;
        let inode = s.file_inode(&path)?;
        if let Some(f) = s.file_mut(inode) {
            let actual = f.live.len() as u64;
            if actual > len {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("file is {actual} bytes, longer than the {len} expected"),
                ));
            }
            if actual < len {
                f.live.resize(len as usize, 0);
                f.durable.resize(len as usize, 0);
            }
        }
        Ok(Arc::new(SimSegment { disk: self.clone(), inode, len }))
    }

    fn create_file(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        let path = self.full(name)?;
        let mut s = self.state();
        s.begin(Op::Create)?;
        let inode = s.link_new(&path, Node::File(SimFile::default()))?;
        Ok(Box::new(SimWriter { disk: self.clone(), inode, at: 0 }))
    }

    fn make_dir(&self, dir: &str) -> io::Result<()> {
        let path = self.full(dir)?;
        let mut s = self.state();
        s.begin(Op::MakeDir)?;
        s.link_new(&path, Node::Dir(SimDir::default())).map(|_| ())
    }

    fn remove_dir_all(&self, dir: &str) -> io::Result<()> {
        let path = self.full(dir)?;
        let mut s = self.state();
        s.begin(Op::Remove)?;
        s.unlink(&path, true)
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        let path = self.full(name)?;
        let mut s = self.state();
        s.begin_read()?;
        let inode = s.file_inode(&path)?;
        Ok(s.file(inode).map_or(0, |f| f.live.len() as u64))
    }

    fn read_exact_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let path = self.full(name)?;
        let mut s = self.state();
        s.begin_read()?;
        let inode = s.readable_inode(&path)?;
        let live = s.file(inode).map(|f| f.live.as_slice()).unwrap_or_default();
        let range =
            usize::try_from(offset).ok().and_then(|at| Some(at..at.checked_add(buf.len())?));
        match range.and_then(|r| live.get(r)) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => {
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{name}: read past end")))
            }
        }
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let path = self.full(name)?;
        let mut s = self.state();
        s.begin_read()?;
        let inode = s.readable_inode(&path)?;
        Ok(s.file(inode).map(|f| f.live.clone()).unwrap_or_default())
    }

    fn read_past_cache(&self, name: &str, from: u64, buf: &mut Vec<u8>) -> io::Result<()> {
        let path = self.full(name)?;
        let mut s = self.state();
        let inode = s.readable_inode(&path)?;
        s.sync_file_range(inode, 0, u64::MAX)?;
        s.begin_read()?;
        let f = s.file_mut(inode).ok_or_else(|| io::Error::other("file vanished"))?;
        // What a failed writeback left only in the cache is gone; the rest is synced.
        for at in (from as usize).min(f.live.len())..f.live.len() {
            f.live[at] = f.durable.get(at).copied().unwrap_or(0);
        }
        buf.clear();
        buf.extend_from_slice(&f.live);
        Ok(())
    }

    fn sync_file(&self, name: &str) -> io::Result<()> {
        let path = self.full(name)?;
        let mut s = self.state();
        match s.file_inode(&path) {
            Ok(inode) => s.sync_file_range(inode, 0, u64::MAX),
            Err(e) => {
                s.begin(Op::Sync)?;
                Err(e)
            }
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from_path, to_path) = (self.full(from)?, self.full(to)?);
        let mut s = self.state();
        s.begin(Op::Rename)?;
        let inode = s.lookup(&from_path)?;
        let (parent, from_name) = s.parent(&from_path)?;
        let (to_parent, to_name) = s.parent(&to_path)?;
        if parent != to_parent {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{from} -> {to}: the simulated disk renames within a directory only"),
            ));
        }
        if let Some(d) = s.dir_mut(parent) {
            d.live.remove(from_name);
            d.live.insert(to_name.to_owned(), inode);
            d.ops.push(DirOp::Rename { from: from_name.to_owned(), to: to_name.to_owned(), inode });
        }
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let path = self.full(name)?;
        let mut s = self.state();
        s.begin(Op::Remove)?;
        s.unlink(&path, false)
    }

    fn sync_dir_at(&self, dir: &str) -> io::Result<()> {
        let path = self.full(dir)?;
        let mut s = self.state();
        s.begin(Op::Sync)?;
        let inode = s.dir_inode(&path)?;
        if let Some(d) = s.dir_mut(inode) {
            d.durable = d.live.clone();
            d.ops.clear();
        }
        Ok(())
    }

    fn sub(&self, dir: &str) -> Arc<dyn Storage> {
        Arc::new(self.at(dir))
    }

    fn background_io(&self) -> bool {
        false
    }

    fn kill_point(&self, point: crate::KillPoint) -> io::Result<()> {
        let mut s = self.state();
        if s.dead {
            return Err(gone());
        }
        if let Some((target, left)) = s.kill_at.as_mut()
            && *target == point
        {
            *left -= 1;
            if *left == 0 {
                s.kill_at = None;
                s.dead = true;
                return Err(io::Error::other(format!("simulated crash at kill point {point}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_writes_survive_every_crash_and_unsynced_ones_may_not() {
        let disk = SimStorage::new("/sim");
        let seg = disk.create("a", 8192).expect("create");
        disk.sync_dir().expect("sync dir");
        seg.write_at(0, &[b"durable!"]).expect("write");
        seg.sync_range(0, 8).expect("sync");
        seg.write_at(4096, &[&[7u8; 100]]).expect("write");
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let after = disk.crash(seed);
            let bytes = after.file_bytes("a").expect("file survives: its entry was synced");
            assert_eq!(&bytes[..8], b"durable!");
            outcomes.insert(bytes[4096..4196].to_vec());
        }
        assert!(outcomes.len() >= 3, "crash outcomes do not vary: {}", outcomes.len());
    }

    #[test]
    fn a_failed_sync_loses_its_writes_and_a_later_sync_does_not_bring_them_back() {
        let disk = SimStorage::new("/sim");
        let seg = disk.create("a", 8192).expect("create");
        disk.sync_dir().expect("sync dir");
        seg.write_at(0, &[b"lost!"]).expect("write");
        disk.inject(Fault {
            target: FaultTarget::Sync,
            nth: 0,
            kind: FaultKind::Io,
            persistent: false,
        });
        assert!(seg.sync_range(0, 4096).is_err());
        seg.sync_range(0, 4096).expect("the fault fired once");
        let mut cached = [0u8; 5];
        seg.read_at(0, &mut cached).expect("read");
        assert_eq!(&cached, b"lost!", "the cache still serves a failed writeback's bytes");
        for seed in 0..50 {
            let bytes = disk.crash(seed).file_bytes("a").expect("file");
            assert_eq!(&bytes[..5], &[0u8; 5], "seed {seed}: a failed sync made bytes durable");
        }
        seg.write_at(0, &[b"again"]).expect("write");
        seg.sync_range(0, 4096).expect("sync");
        assert_eq!(&disk.crash(0).file_bytes("a").expect("file")[..5], b"again");
    }

    #[test]
    fn unsynced_directory_entries_can_vanish() {
        let disk = SimStorage::new("/sim");
        disk.create("a", 4096).expect("create");
        let survived = (0..100).filter(|&seed| disk.crash(seed).file_bytes("a").is_some()).count();
        assert!(survived > 0 && survived < 100, "survived {survived} of 100");
    }

    #[test]
    fn sync_range_splits_pending_writes() {
        let disk = SimStorage::new("/sim");
        let seg = disk.create("a", 4096).expect("create");
        disk.sync_dir().expect("sync dir");
        seg.write_at(0, &[&[1u8; 100]]).expect("write");
        seg.sync_range(10, 20).expect("sync");
        for seed in 0..50 {
            let bytes = disk.crash(seed).file_bytes("a").expect("file");
            assert_eq!(&bytes[10..30], &[1u8; 20]);
        }
    }

    #[test]
    fn injected_fault_fires_once_or_persistently() {
        let disk = SimStorage::new("/sim");
        let seg = disk.create("a", 4096).expect("create");
        disk.inject(Fault {
            target: FaultTarget::Sync,
            nth: 1,
            kind: FaultKind::Io,
            persistent: false,
        });
        assert!(seg.sync_range(0, 10).is_ok());
        assert!(seg.sync_range(0, 10).is_err());
        assert!(seg.sync_range(0, 10).is_ok());
        disk.inject(Fault {
            target: FaultTarget::Sync,
            nth: 0,
            kind: FaultKind::NoSpace,
            persistent: true,
        });
        for _ in 0..3 {
            let e = seg.sync_range(0, 10).expect_err("persistent fault");
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        }
        assert!(seg.write_at(0, &[b"x"]).is_ok(), "writes are not targeted");
    }

    #[test]
    fn crash_after_kills_every_later_operation() {
        let disk = SimStorage::new("/sim");
        let seg = disk.create("a", 4096).expect("create");
        disk.crash_after(2);
        assert!(seg.write_at(0, &[b"x"]).is_ok());
        assert!(seg.write_at(1, &[b"y"]).is_ok());
        assert!(seg.write_at(2, &[b"z"]).is_err());
        assert!(seg.sync_range(0, 3).is_err());
        assert!(disk.list().is_err());
    }
}
