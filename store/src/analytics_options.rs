//! Limits on the SQL analytics handles a store makes (cargo feature `analytics`): plain
//! data, so that [`crate::StoreOptions`] has the same fields with the feature on or off.

use std::path::PathBuf;
use std::time::Duration;

/// Where a query that needs more memory than the limit may spill.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Spill {
    /// Nowhere: such a query fails with `AnalyticsError::OutOfMemory` and DuckDB writes
    /// no file at all (the default: an embedded store should not fill a disk on a
    /// reporting query's behalf).
    #[default]
    Never,
    /// Into `dir` (DuckDB creates and removes its files there), at most `max_bytes` of
    /// them at once; past that the query fails with `AnalyticsError::OutOfMemory`.
    To {
        /// The directory.
        dir: PathBuf,
        /// The most the spilled files may hold.
        max_bytes: u64,
    },
}

/// Limits on one analytics handle (one in-memory DuckDB database).
///
/// DuckDB's own defaults are built for a machine given to it alone (memory limit 80% of
/// RAM, every core, no time limit); embedded in a service, one heavy query could take the
/// memory and CPU the writers need. These defaults bound it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsOptions {
    /// DuckDB's memory limit, in bytes (`memory_limit`). Default: 1 GiB.
    pub memory_limit_bytes: u64,
    /// Threads a query may use (`threads`), 1 to [`THREADS_MAX`]. Default: half the
    /// cores the process may run on, at least 1, so writers keep a core.
    pub threads: usize,
    /// Whether a query past the memory limit may spill to disk. Default: never.
    pub spill: Spill,
    /// Longest a query may run; past it the query is interrupted and
    /// `AnalyticsError::Timeout` returned. `None`: no limit. Default: 60 s.
    pub timeout: Option<Duration>,
    /// The most a result may hold once it leaves DuckDB (its Arrow buffers): the result
    /// is held whole in the caller's memory, outside DuckDB's limit. Past it the query
    /// stops with `AnalyticsError::ResultTooLarge`. Default: 256 MiB.
    pub max_result_bytes: u64,
}

/// The default memory limit: 1 GiB.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 1 << 30;
/// The default time limit per query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The default bound on a result: 256 MiB.
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 256 << 20;
/// The smallest memory limit accepted: DuckDB cannot open its catalog in less.
pub const MEMORY_LIMIT_MIN: u64 = 16 << 20;
/// The largest memory limit accepted (1 PiB): past it DuckDB refuses the setting.
pub const MEMORY_LIMIT_MAX: u64 = 1 << 50;
/// The most threads accepted.
pub const THREADS_MAX: usize = 4096;

impl Default for AnalyticsOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        AnalyticsOptions {
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            threads: (cores / 2).max(1),
            spill: Spill::Never,
            timeout: Some(DEFAULT_TIMEOUT),
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

impl AnalyticsOptions {
    /// Checks the options before anything is opened; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=THREADS_MAX).contains(&self.threads) {
            return Err(format!("threads must be 1 to {THREADS_MAX}, not {}", self.threads));
        }
        if !(MEMORY_LIMIT_MIN..=MEMORY_LIMIT_MAX).contains(&self.memory_limit_bytes) {
            return Err(format!(
                "memory limit {} bytes is outside {MEMORY_LIMIT_MIN}..={MEMORY_LIMIT_MAX} (below \
                 the least DuckDB can run in, or above what it accepts)",
                self.memory_limit_bytes
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err("timeout must be longer than zero (None for no limit)".into());
        }
        if self.max_result_bytes == 0 {
            return Err("max_result_bytes must be at least 1".into());
        }
        if let Spill::To { dir, max_bytes } = &self.spill
            && (dir.as_os_str().is_empty() || *max_bytes == 0)
        {
            return Err("a spill directory needs a name and room (max_bytes > 0)".into());
        }
        Ok(())
    }
}
