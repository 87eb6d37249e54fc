//! A simulated disk for crash, power-loss and fault-injection tests.
//!
//! Every file keeps two images: `live` (what a reader sees now) and `durable` (what would
//! survive a power cut), plus the list of writes not yet synced. The directory keeps its
//! live entries, its durable entries and the operations in between. [`SimStorage::crash`]
//! builds the disk a power cut would leave: each pending write is dropped, kept, torn at a
//! 512 B or 4 KiB boundary, or garbled, and a random prefix of unsynced directory
//! operations survives — all drawn from a seed, so a failing case replays exactly.
//!
//! Faults: [`SimStorage::inject`] fails the N-th storage operation (once or from then on)
//! with an I/O error, `ENOSPC`, or a failed sync; [`SimStorage::crash_after`] makes every
//! operation from the N-th on fail, as if the process had died there.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{LockGuard, SegmentFile, Storage};

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
    /// `sync_range`, `sync_file` and `sync_dir` only.
    Sync,
    /// `create` only.
    Create,
    /// `write_at` only.
    Write,
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
    /// A file created (a new segment).
    Create,
    /// An existing file opened.
    Open,
    /// Bytes written to a file (not yet durable).
    Write,
    /// A file's range or the directory made durable.
    Sync,
    /// A file renamed.
    Rename,
    /// A file removed.
    Remove,
}

impl FaultTarget {
    fn matches(self, op: Op) -> bool {
        match self {
            FaultTarget::Any => true,
            FaultTarget::Sync => op == Op::Sync,
            FaultTarget::Create => op == Op::Create,
            FaultTarget::Write => op == Op::Write,
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
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(data);
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(String, u64),
    Rename(String, String),
    Unlink(String),
}

#[derive(Debug, Clone, Default)]
struct State {
    files: BTreeMap<u64, SimFile>,
    live_dir: BTreeMap<String, u64>,
    durable_dir: BTreeMap<String, u64>,
    dir_ops: Vec<DirOp>,
    next_inode: u64,
    locked: bool,
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
    /// Counts an operation and decides whether it fails.
    fn begin(&mut self, op: Op) -> io::Result<()> {
        self.check(op).map_err(io::Error::from)
    }

    /// [`State::begin`], telling a crash from an injected fault (a failed sync loses
    /// its pages; a dead process leaves them pending).
    fn check(&mut self, op: Op) -> Result<(), Failure> {
        if self.dead {
            return Err(Failure::Dead(io::Error::other("simulated crash: the process is gone")));
        }
        self.ops += 1;
        self.trace.push(op);
        if let Some(limit) = self.crash_after
            && self.ops > limit
        {
            self.dead = true;
            return Err(Failure::Dead(io::Error::other("simulated crash: the process is gone")));
        }
        let Some(fault) = self.fault else { return Ok(()) };
        if !fault.target.matches(op) {
            return Ok(());
        }
        let index = self.fault_seen;
        self.fault_seen += 1;
        let hit = index == fault.nth || (fault.persistent && self.fault_fired);
        if !hit {
            return Ok(());
        }
        self.fault_fired = true;
        Err(Failure::Fault(match fault.kind {
            FaultKind::Io => io::Error::from_raw_os_error(libc::EIO),
            FaultKind::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
        }))
    }

    /// Runs the checks of a sync of `start..end` of file `inode`: on success the pending
    /// writes there become durable; when an injected fault fails it, they are lost, as
    /// when Linux fails a writeback: the pages are marked clean, the cache still serves
    /// them, and no later sync writes them again.
    fn sync_file_range(&mut self, inode: u64, start: u64, end: u64) -> io::Result<()> {
        let outcome = self.check(Op::Sync);
        let Some(f) = self.files.get_mut(&inode) else { return outcome.map_err(Into::into) };
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

    fn inode(&self, name: &str) -> io::Result<u64> {
        self.live_dir
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file")))
    }
}

/// A simulated disk holding one directory. Cloning shares the disk.
#[derive(Debug, Clone)]
pub struct SimStorage {
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty simulated directory; `path` is used only in messages.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SimStorage { path: path.into(), state: Arc::new(Mutex::new(State::default())) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a test assertion; the state
        // is still consistent, so keep using it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

    /// Mutating operations performed so far.
    pub fn op_count(&self) -> u64 {
        self.state().ops
    }

    /// The kind of every mutating or opening operation counted so far, in order: entry `k`
    /// is the operation that `crash_after(k)` (called on a fresh disk) makes fail.
    pub fn trace(&self) -> Vec<Op> {
        self.state().trace.clone()
    }

    /// The disk a power cut would leave now, drawn from `seed`. The result is a fresh,
    /// unlocked disk whose live and durable images are both the surviving bytes.
    pub fn crash(&self, seed: u64) -> SimStorage {
        let s = self.state();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut dir = s.durable_dir.clone();
        let keep_ops = rng.random_range(0..=s.dir_ops.len());
        for op in &s.dir_ops[..keep_ops] {
            match op {
                DirOp::Link(name, ino) => {
                    dir.insert(name.clone(), *ino);
                }
                DirOp::Rename(from, to) => {
                    if let Some(ino) = dir.remove(from) {
                        dir.insert(to.clone(), ino);
                    }
                }
                DirOp::Unlink(name) => {
                    dir.remove(name);
                }
            }
        }
        let mut files = BTreeMap::new();
        for &ino in dir.values() {
            let Some(f) = s.files.get(&ino) else { continue };
            let mut image = f.durable.clone();
            for p in &f.pending {
                crash_write(&mut rng, &mut image, p);
            }
            files.insert(ino, SimFile { live: image.clone(), durable: image, pending: Vec::new() });
        }
        let state = State {
            files,
            live_dir: dir.clone(),
            durable_dir: dir,
            next_inode: s.next_inode,
            ..State::default()
        };
        SimStorage { path: self.path.clone(), state: Arc::new(Mutex::new(state)) }
    }

    /// A copy of the disk as it is now, as if everything had been synced (for corruption
    /// sweeps that damage a clean log).
    pub fn clone_synced(&self) -> SimStorage {
        let s = self.state();
        let mut files = BTreeMap::new();
        for &ino in s.live_dir.values() {
            if let Some(f) = s.files.get(&ino) {
                files.insert(
                    ino,
                    SimFile { live: f.live.clone(), durable: f.live.clone(), pending: Vec::new() },
                );
            }
        }
        let state = State {
            files,
            live_dir: s.live_dir.clone(),
            durable_dir: s.live_dir.clone(),
            next_inode: s.next_inode,
            ..State::default()
        };
        SimStorage { path: self.path.clone(), state: Arc::new(Mutex::new(state)) }
    }

    /// The live bytes of a file.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let s = self.state();
        let ino = s.live_dir.get(name)?;
        s.files.get(ino).map(|f| f.live.clone())
    }

    /// Overwrites a file's live and durable bytes (for corruption tests).
    pub fn set_file_bytes(&self, name: &str, bytes: Vec<u8>) {
        let mut s = self.state();
        if let Some(&ino) = s.live_dir.get(name)
            && let Some(f) = s.files.get_mut(&ino)
        {
            f.live = bytes.clone();
            f.durable = bytes;
            f.pending.clear();
        }
    }
}

/// Applies one unsynced write to a crash image: dropped, kept, torn or garbled.
fn crash_write(rng: &mut StdRng, image: &mut Vec<u8>, p: &Pending) {
    match rng.random_range(0..4u8) {
        0 => {}
        1 => write_into(image, p.offset, &p.data),
        2 => {
            let sector: u64 = if rng.random_bool(0.5) { 512 } else { 4096 };
            let end = p.offset + p.data.len() as u64;
            let first_cut = (p.offset / sector + 1) * sector;
            if first_cut < end {
                let cuts = (end - first_cut).div_ceil(sector);
                let cut = first_cut + sector * rng.random_range(0..cuts);
                write_into(image, p.offset, &p.data[..(cut - p.offset) as usize]);
            }
        }
        _ => {
            let garbage: Vec<u8> = (0..p.data.len()).map(|_| rng.random()).collect();
            write_into(image, p.offset, &garbage);
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
        let f = s.files.entry(self.inode).or_default();
        write_into(&mut f.live, offset, &data);
        f.pending.push(Pending { offset, data });
        Ok(())
    }

    fn sync_range(&self, offset: u64, len: u64) -> io::Result<()> {
        self.disk.state().sync_file_range(self.inode, offset, offset + len)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let s = self.disk.state();
        let f = s.files.get(&self.inode).ok_or_else(|| io::Error::other("file vanished"))?;
        let end = offset as usize + buf.len();
        if end > f.live.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"));
        }
        buf.copy_from_slice(&f.live[offset as usize..end]);
        Ok(())
    }
}

struct SimLock {
    disk: SimStorage,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.disk.state().locked = false;
    }
}

impl Storage for SimStorage {
    fn path(&self) -> &Path {
        &self.path
    }

    fn create_dir(&self) -> io::Result<()> {
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let s = self.state();
        if s.dead {
            return Err(io::Error::other("simulated crash: the process is gone"));
        }
        Ok(s.live_dir.keys().cloned().collect())
    }

    fn try_lock(&self) -> io::Result<Option<Box<dyn LockGuard>>> {
        let mut s = self.state();
        if s.locked {
            return Ok(None);
        }
        s.locked = true;
        Ok(Some(Box::new(SimLock { disk: self.clone() })))
    }

    fn create(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let mut s = self.state();
        s.begin(Op::Create)?;
        if s.live_dir.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{name} exists")));
        }
        let inode = s.next_inode;
        s.next_inode += 1;
        let zeros = vec![0u8; len as usize];
        s.files.insert(inode, SimFile { live: zeros.clone(), durable: zeros, pending: Vec::new() });
        s.live_dir.insert(name.to_owned(), inode);
        s.dir_ops.push(DirOp::Link(name.to_owned(), inode));
        Ok(Arc::new(SimSegment { disk: self.clone(), inode, len }))
    }

    fn open(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let mut s = self.state();
        s.begin(Op::Open)?;
        let inode = s.inode(name)?;
        if let Some(f) = s.files.get_mut(&inode)
            && (f.live.len() as u64) < len
        {
            f.live.resize(len as usize, 0);
            f.durable.resize(len as usize, 0);
        }
        Ok(Arc::new(SimSegment { disk: self.clone(), inode, len }))
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let s = self.state();
        if s.dead {
            return Err(io::Error::other("simulated crash: the process is gone"));
        }
        let inode = s.inode(name)?;
        Ok(s.files.get(&inode).map(|f| f.live.clone()).unwrap_or_default())
    }

    fn sync_file(&self, name: &str) -> io::Result<()> {
        let mut s = self.state();
        match s.live_dir.get(name).copied() {
            Some(inode) => s.sync_file_range(inode, 0, u64::MAX),
            None => {
                s.begin(Op::Sync)?;
                s.inode(name).map(|_| ())
            }
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut s = self.state();
        s.begin(Op::Rename)?;
        let inode = s.inode(from)?;
        s.live_dir.remove(from);
        s.live_dir.insert(to.to_owned(), inode);
        s.dir_ops.push(DirOp::Rename(from.to_owned(), to.to_owned()));
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut s = self.state();
        s.begin(Op::Remove)?;
        s.inode(name)?;
        s.live_dir.remove(name);
        s.dir_ops.push(DirOp::Unlink(name.to_owned()));
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut s = self.state();
        s.begin(Op::Sync)?;
        s.durable_dir = s.live_dir.clone();
        s.dir_ops.clear();
        Ok(())
    }

    fn kill_point(&self, point: crate::KillPoint) -> io::Result<()> {
        let mut s = self.state();
        if s.dead {
            return Err(io::Error::other("simulated crash: the process is gone"));
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
