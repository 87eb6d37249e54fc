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
    /// Into this directory (DuckDB creates and removes its files there).
    To(PathBuf),
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
    /// Threads a query may use (`threads`), at least 1. Default: half the cores the
    /// process may run on, at least 1, so writers keep a core.
    pub threads: usize,
    /// Whether a query past the memory limit may spill to disk. Default: never.
    pub spill: Spill,
    /// Longest a query may run; past it the query is interrupted and
    /// `AnalyticsError::Timeout` returned. `None`: no limit. Default: 60 s.
    pub timeout: Option<Duration>,
}

/// The default memory limit: 1 GiB.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 1 << 30;
/// The default time limit per query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for AnalyticsOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        AnalyticsOptions {
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            threads: (cores / 2).max(1),
            spill: Spill::Never,
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }
}

impl AnalyticsOptions {
    /// Checks the options before anything is opened; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let invalid = |reason: String| Err(reason);
        if self.threads == 0 {
            return invalid("threads must be at least 1".into());
        }
        if self.memory_limit_bytes < MEMORY_LIMIT_MIN {
            return invalid(format!(
                "memory limit {} bytes is below the least DuckDB can run in ({} bytes)",
                self.memory_limit_bytes, MEMORY_LIMIT_MIN
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return invalid("timeout must be longer than zero (None for no limit)".into());
        }
        Ok(())
    }
}

/// The smallest memory limit accepted: DuckDB cannot open its catalog in less.
pub const MEMORY_LIMIT_MIN: u64 = 16 << 20;
