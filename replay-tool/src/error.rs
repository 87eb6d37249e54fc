//! The tool's error type and its exit codes: 0 ok, 1 verdict failed, 2 usage or I/O.

use std::path::PathBuf;

use orderlog_store::StoreError;

/// Exit code: everything went as asked.
pub const EXIT_OK: u8 = 0;
/// Exit code: the subcommand ran and its verdict is negative (`verify` found damage).
pub const EXIT_VERDICT: u8 = 1;
/// Exit code: bad usage, or the subcommand could not do its work (I/O, damage in the way).
pub const EXIT_ERROR: u8 = 2;

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The arguments make no sense together.
    #[error("{0}")]
    Usage(String),
    /// The directory given is not a store directory.
    #[error("{} is not an orderlog store directory: {why}", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// A live store holds the directory and the subcommand would write to it.
    #[error(
        "{} is in use by a live store{}; `{command}` writes to the directory and needs it to itself (read-only subcommands such as dump, stats and verify are safe on a live store)",
        path.display(),
        pid.map(|p| format!(" (process {p})")).unwrap_or_default()
    )]
    Locked {
        /// The directory.
        path: PathBuf,
        /// The holder, if known.
        pid: Option<u32>,
        /// The subcommand refused.
        command: &'static str,
    },
    /// A file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the tool was doing.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The store, its log or its snapshots failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The verdict is negative; the findings were printed.
    #[error("{0}")]
    Verdict(String),
}

impl From<orderlog_wal::WalError> for CliError {
    fn from(e: orderlog_wal::WalError) -> Self {
        CliError::Store(StoreError::Wal(e))
    }
}

impl From<orderlog_snapshot::SnapshotError> for CliError {
    fn from(e: orderlog_snapshot::SnapshotError) -> Self {
        CliError::Store(StoreError::Snapshot(e))
    }
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Verdict(_) => EXIT_VERDICT,
            _ => EXIT_ERROR,
        }
    }

    /// A wrapper for I/O errors naming the path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CliError::Io { what, path, source }
    }
}

/// Result alias for the tool.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
