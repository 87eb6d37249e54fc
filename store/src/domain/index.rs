//! `order_id -> row`: an open-addressing hash table that stores only row numbers.
//!
//! The keys are not stored: they already sit in the `order_id` column, so a slot holds a
//! `u32` row and a probe compares `ids[row]` with the key. At a load factor of at most
//! 3/4 that is 4–8 bytes per order, where a `HashMap<u64, u32>` would take about 16.
//! Linear probing with backward-shift deletion: no tombstones, so lookups stay short
//! after many erases.

/// Marks an empty slot.
const EMPTY: u32 = u32::MAX;

/// Most rows an index can address (one value is reserved for empty slots).
pub const MAX_ROWS: usize = (u32::MAX - 1) as usize;

/// A row index over an external key column.
#[derive(Debug, Clone, Default)]
pub struct RowIndex {
    slots: Vec<u32>,
    len: usize,
}

/// Fibonacci hashing: multiply by 2^64/φ and keep the high bits.
fn home(id: u64, mask: usize) -> usize {
    let bits = mask.count_ones();
    if bits == 0 {
        return 0;
    }
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize & mask
}

impl RowIndex {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes the table occupies.
    pub fn allocated_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<u32>()
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot holding `id`, if any.
    fn find(&self, id: u64, ids: &[u64]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut at = home(id, mask);
        loop {
            let row = self.slots[at];
            if row == EMPTY {
                return None;
            }
            if ids[row as usize] == id {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// The row of `id`.
    pub fn get(&self, id: u64, ids: &[u64]) -> Option<usize> {
        self.find(id, ids).map(|at| self.slots[at] as usize)
    }

    /// Adds `row` (whose key is `ids[row]`, not yet indexed; rows `0..row` are). The
    /// caller has checked that the key is absent and `row < MAX_ROWS`.
    pub fn insert(&mut self, row: usize, ids: &[u64]) {
        debug_assert_eq!(row, self.len, "rows are indexed in order");
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.rebuild((self.len + 1).max(8), ids);
        }
        self.place(row as u32, ids);
        self.len += 1;
    }

    /// Reads the home slot of each key in `keys` and the key it points to, so that
    /// lookups of those keys that follow hit the cache: the reads of a whole batch
    /// overlap instead of missing one after another. Changes nothing.
    pub fn warm(&self, keys: impl Iterator<Item = u64>, ids: &[u64]) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.mask();
        let mut touched = 0u64;
        for id in keys {
            let held = self.slots[home(id, mask)];
            if held != EMPTY {
                touched ^= ids[held as usize];
            }
        }
        std::hint::black_box(touched);
    }

    /// Adds rows `rows` (keys `ids[rows]`, not yet indexed; rows `0..rows.start` are),
    /// probing once per row and stopping at the first key already indexed:
    /// `Err((row, the row holding it))`. Rows before it stay indexed. The caller has
    /// checked `rows.end <= MAX_ROWS`.
    ///
    /// The rows go in groups: the home slot of every key of a group (and the key a taken
    /// slot points to) is read before any of the group is placed, so the group's cache
    /// misses overlap instead of coming one after another. Loading a 10M-order snapshot
    /// is dominated by these misses.
    pub fn insert_all_new(
        &mut self,
        rows: std::ops::Range<usize>,
        ids: &[u64],
    ) -> Result<(), (usize, usize)> {
        const GROUP: usize = 16;
        debug_assert_eq!(rows.start, self.len, "rows are indexed in order");
        self.reserve(rows.len(), ids);
        let mask = self.mask();
        let mut start = rows.start;
        while start < rows.end {
            let end = (start + GROUP).min(rows.end);
            let mut homes = [0usize; GROUP];
            let mut touched = 0u64;
            for (slot, row) in homes.iter_mut().zip(start..end) {
                *slot = home(ids[row], mask);
                let held = self.slots[*slot];
                if held != EMPTY {
                    touched ^= ids[held as usize];
                }
            }
            std::hint::black_box(touched);
            for (&at, row) in homes.iter().zip(start..end) {
                let id = ids[row];
                let mut at = at;
                loop {
                    let held = self.slots[at];
                    if held == EMPTY {
                        self.slots[at] = row as u32;
                        self.len += 1;
                        break;
                    }
                    if ids[held as usize] == id {
                        return Err((row, held as usize));
                    }
                    at = (at + 1) & mask;
                }
            }
            start = end;
        }
        Ok(())
    }

    fn place(&mut self, row: u32, ids: &[u64]) {
        let mask = self.mask();
        let mut at = home(ids[row as usize], mask);
        while self.slots[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.slots[at] = row;
    }

    /// Rebuilds with room for `rows` entries at load ≤ 3/4. The rows indexed are always
    /// `0..len` (rows are added at the end, and a removal moves the last row into the
    /// hole), so they are placed in row order: the keys are read one after another
    /// rather than at random through the old table.
    fn rebuild(&mut self, rows: usize, ids: &[u64]) {
        self.rebuild_into(vec![EMPTY; Self::capacity_for(rows)], ids);
    }

    /// Slots for `rows` entries at load ≤ 3/4.
    fn capacity_for(rows: usize) -> usize {
        (rows * 4).div_ceil(3).next_power_of_two()
    }

    /// Places rows `0..len` into `slots` (all empty) and makes it the table.
    fn rebuild_into(&mut self, slots: Vec<u32>, ids: &[u64]) {
        self.slots = slots;
        for row in 0..self.len {
            self.place(row as u32, ids);
        }
    }

    /// [`RowIndex::reserve`], reporting a failed allocation instead of aborting. The
    /// caller has checked `len() + additional <= MAX_ROWS`.
    pub fn try_reserve(
        &mut self,
        additional: usize,
        ids: &[u64],
    ) -> Result<(), std::collections::TryReserveError> {
        let Some(capacity) = self.capacity_wanted(additional) else { return Ok(()) };
        let mut slots = Vec::new();
        slots.try_reserve_exact(capacity)?;
        slots.resize(capacity, EMPTY);
        self.rebuild_into(slots, ids);
        Ok(())
    }

    /// Makes room for `additional` more entries without rehashing on the way.
    pub fn reserve(&mut self, additional: usize, ids: &[u64]) {
        if let Some(capacity) = self.capacity_wanted(additional) {
            self.rebuild_into(vec![EMPTY; capacity], ids);
        }
    }

    /// The table size `additional` more entries need, if the table is too small for them.
    fn capacity_wanted(&self, additional: usize) -> Option<usize> {
        let want = self.len + additional;
        (want * 4 > self.slots.len() * 3).then(|| Self::capacity_for(want))
    }

    /// Removes `id`; returns its row.
    pub fn remove(&mut self, id: u64, ids: &[u64]) -> Option<usize> {
        let mut hole = self.find(id, ids)?;
        let row = self.slots[hole] as usize;
        let mask = self.mask();
        // Backward-shift: pull later members of the probe run into the hole.
        let mut at = (hole + 1) & mask;
        while self.slots[at] != EMPTY {
            let want = home(ids[self.slots[at] as usize], mask);
            // Move the entry at `at` if its home is not in (hole, at] cyclically.
            let dist_at = at.wrapping_sub(want) & mask;
            let dist_hole = at.wrapping_sub(hole) & mask;
            if dist_at >= dist_hole {
                self.slots[hole] = self.slots[at];
                hole = at;
            }
            at = (at + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        Some(row)
    }

    /// Points `id` (currently at `old_row`) at `new_row`, after the column moved it.
    pub fn repoint(&mut self, id: u64, old_row: usize, new_row: usize) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.mask();
        let mut at = home(id, mask);
        while self.slots[at] != EMPTY {
            if self.slots[at] as usize == old_row {
                self.slots[at] = new_row as u32;
                return;
            }
            at = (at + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn index_agrees_with_a_hashmap(ops in proptest::collection::vec((any::<bool>(), 0u64..200), 1..400)) {
            // Model: ids column with swap_remove on delete, as OrderSoA does.
            let mut ids: Vec<u64> = Vec::new();
            let mut index = RowIndex::default();
            let mut model: HashMap<u64, ()> = HashMap::new();
            for (insert, id) in ops {
                if insert {
                    if model.insert(id, ()).is_none() {
                        ids.push(id);
                        index.insert(ids.len() - 1, &ids);
                    }
                } else if model.remove(&id).is_some() {
                    let row = index.remove(id, &ids).expect("present");
                    let last = ids.len() - 1;
                    ids.swap_remove(row);
                    if row != last {
                        index.repoint(ids[row], last, row);
                    }
                }
                prop_assert_eq!(index.len(), model.len());
            }
            for probe in 0u64..200 {
                let got = index.get(probe, &ids).map(|r| ids[r]);
                prop_assert_eq!(got, model.contains_key(&probe).then_some(probe));
            }
        }
    }

    #[test]
    fn index_costs_under_seven_bytes_per_entry_at_ten_million() {
        let rows = 10_000_000usize;
        let capacity = (rows * 4).div_ceil(3).next_power_of_two();
        assert!(capacity * 4 < rows * 7, "{capacity} slots");
    }

    proptest! {
        /// Rows added one by one, in groups and removed, with the table rebuilt as it
        /// grows, always index exactly the rows held.
        #[test]
        fn grouped_and_single_inserts_index_exactly_the_rows_held(
            ops in proptest::collection::vec((0..3u8, 1..40usize), 1..60),
        ) {
            let mut ids: Vec<u64> = Vec::new();
            let mut index = RowIndex::default();
            let mut next = 0u64;
            for (op, n) in ops {
                let first = ids.len();
                let fresh = |next: &mut u64| {
                    *next += 1;
                    next.wrapping_mul(0x2545_F491_4F6C_DD1D)
                };
                match op {
                    0 => {
                        ids.push(fresh(&mut next));
                        index.insert(first, &ids);
                    }
                    1 => {
                        for _ in 0..n {
                            ids.push(fresh(&mut next));
                        }
                        prop_assert!(index.insert_all_new(first..ids.len(), &ids).is_ok());
                    }
                    _ => {
                        for _ in 0..n.min(ids.len()) {
                            let row = n % ids.len();
                            let id = ids[row];
                            prop_assert_eq!(index.remove(id, &ids), Some(row));
                            let last = ids.len() - 1;
                            ids.swap_remove(row);
                            if row != last {
                                index.repoint(ids[row], last, row);
                            }
                        }
                    }
                }
                prop_assert_eq!(index.len(), ids.len());
            }
            for (row, &id) in ids.iter().enumerate() {
                prop_assert_eq!(index.get(id, &ids), Some(row));
            }
            // The ids are 1, 2, ... times an odd constant (mod 2^64): never 0.
            prop_assert_eq!(index.get(0, &ids), None);
        }
    }

    #[test]
    fn grouped_inserts_index_every_row_and_stop_at_a_duplicate() {
        let ids: Vec<u64> = (0..1_000u64).map(|i| i.wrapping_mul(0x2545_F491_4F6C_DD1D)).collect();
        let mut index = RowIndex::default();
        index.insert_all_new(0..600, &ids).expect("distinct");
        index.insert_all_new(600..1_000, &ids).expect("distinct");
        assert_eq!(index.len(), 1_000);
        for (row, &id) in ids.iter().enumerate() {
            assert_eq!(index.get(id, &ids), Some(row));
        }
        let mut with_duplicate = ids.clone();
        with_duplicate.push(ids[123]);
        with_duplicate.push(7);
        assert_eq!(index.insert_all_new(1_000..1_002, &with_duplicate), Err((1_000, 123)));
        assert_eq!(index.len(), 1_000);
    }
}
