//! Faults injected into the mounted file system: the N-th matching operation fails with
//! `EIO` or `ENOSPC`, as a failing disk or a full one would make the kernel report it.

/// The operations a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultOp {
    /// A write reaching the file system (`write`, `pwrite`, or the page cache writing
    /// back mapped pages, which `msync` or `fsync` then reports), or a length change.
    Write,
    /// A file sync (`fsync`, `fdatasync`, `msync(MS_SYNC)`).
    Fsync,
    /// A directory sync.
    FsyncDir,
    /// `fallocate`.
    Fallocate,
    /// A new file or directory.
    Create,
    /// A rename.
    Rename,
    /// A removal.
    Remove,
}

/// The error a fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultError {
    /// `EIO`: the device failed.
    Io,
    /// `ENOSPC`: the device is full.
    NoSpace,
}

/// A fault: the `nth` operation of kind `op` (counted from when it is injected, from 1)
/// on a file whose name contains `name` (any file if empty) fails with `error`; with
/// `persistent`, every matching operation after it fails too.
///
/// ```
/// use orderlog_crashfs::Fault;
/// // The third fsync of a log segment fails, and every one after it.
/// let fault = Fault::eio_on_fsync(3).on_names_containing(".wal").persistent();
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Which operations are counted.
    pub op: FaultOp,
    /// The 1-based index, among counted operations, of the first that fails.
    pub nth: u64,
    /// What the failure looks like.
    pub error: FaultError,
    /// Only files (or directories) whose name contains this count (empty: all).
    pub name: Vec<u8>,
    /// Every counted operation after the first failure fails too.
    pub persistent: bool,
}

impl Fault {
    /// The `nth` operation of kind `op` fails with `error`.
    pub fn new(op: FaultOp, nth: u64, error: FaultError) -> Fault {
        Fault { op, nth, error, name: Vec::new(), persistent: false }
    }

    /// The `nth` file sync fails with `EIO`.
    pub fn eio_on_fsync(nth: u64) -> Fault {
        Fault::new(FaultOp::Fsync, nth, FaultError::Io)
    }

    /// The `nth` write fails with `EIO`.
    pub fn eio_on_write(nth: u64) -> Fault {
        Fault::new(FaultOp::Write, nth, FaultError::Io)
    }

    /// The `nth` `fallocate` fails with `ENOSPC`.
    pub fn enospc_on_fallocate(nth: u64) -> Fault {
        Fault::new(FaultOp::Fallocate, nth, FaultError::NoSpace)
    }

    /// Counts only files whose name contains `part` (`".wal"`: log segments).
    pub fn on_names_containing(mut self, part: &str) -> Fault {
        self.name = part.as_bytes().to_vec();
        self
    }

    /// Every counted operation after the first failure fails too.
    pub fn persistent(mut self) -> Fault {
        self.persistent = true;
        self
    }

    pub(crate) fn matches(&self, op: FaultOp, name: &[u8]) -> bool {
        op == self.op
            && (self.name.is_empty() || name.windows(self.name.len()).any(|w| w == self.name))
    }

    pub(crate) fn errno(&self) -> i32 {
        match self.error {
            FaultError::Io => libc::EIO,
            FaultError::NoSpace => libc::ENOSPC,
        }
    }
}
