//! The live tail: the orders touched after a snapshot, and their current rows.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use arrow::array::RecordBatch;
use orderlog_snapshot::ArrowSchemaGen;

use super::AnalyticsError;
use crate::state::{IdHasher, OrderState};

/// A set of order ids (hashed cheaply: ids are already well spread).
pub(crate) type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// The orders a view takes from memory rather than from the snapshot.
#[derive(Debug, Clone)]
pub struct Tail {
    /// The current rows of the touched orders still present, in the state's schema
    /// (order columns plus `version`), sorted by `order_id`.
    pub rows: RecordBatch,
    /// Every order touched after the snapshot (created, changed or erased), sorted: the
    /// snapshot's rows for them are hidden.
    pub touched: Vec<u64>,
}

impl Tail {
    /// No tail: the view is the snapshot alone.
    pub fn empty() -> Tail {
        Tail { rows: RecordBatch::new_empty(OrderState::arrow_schema()), touched: Vec::new() }
    }

    /// The current rows in `state` of the orders in `touched` (any order, duplicates
    /// allowed); orders absent from `state` (erased) contribute no row.
    pub fn gather(
        state: &OrderState,
        touched: impl IntoIterator<Item = u64>,
    ) -> Result<Tail, AnalyticsError> {
        let mut touched: Vec<u64> = touched.into_iter().collect();
        touched.sort_unstable();
        touched.dedup();
        let rows: Vec<usize> = touched.iter().filter_map(|&id| state.orders.row_of(id)).collect();
        let rows =
            state.gather_record_batch(&rows).map_err(|e| AnalyticsError::Result(e.to_string()))?;
        Ok(Tail { rows, touched })
    }
}
