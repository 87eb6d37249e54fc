//! Property tests: whatever is appended, in whatever grouping, reads back the same from
//! any starting LSN, before and after a reopen.

use orderlog_wal::storage::SimStorage;
use proptest::prelude::*;

use crate::support::{open_sim, small_opts};

fn groups() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    let frame = proptest::collection::vec(any::<u8>(), 0..400);
    proptest::collection::vec(proptest::collection::vec(frame, 1..4), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn props_iter_returns_exactly_what_was_appended(groups in groups(), start in any::<prop::sample::Index>()) {
        let disk = SimStorage::new("/sim/wal");
        let wal = open_sim(&disk, small_opts()).expect("open");
        let mut model = Vec::new();
        for g in &groups {
            let refs: Vec<&[u8]> = g.iter().map(Vec::as_slice).collect();
            let lsns = wal.append_batch(&refs).expect("append");
            prop_assert_eq!(*lsns.start(), model.len() as u64 + 1);
            model.extend(g.iter().cloned());
        }
        let from = start.index(model.len()) as u64 + 1;
        let read = |wal: &orderlog_wal::Wal| -> Vec<Vec<u8>> {
            wal.iter_from(from).expect("iter").map(|f| f.expect("frame").payload().to_vec()).collect()
        };
        prop_assert_eq!(read(&wal), model[from as usize - 1..].to_vec());
        drop(wal);
        let wal = open_sim(&disk, small_opts()).expect("reopen");
        prop_assert_eq!(read(&wal), model[from as usize - 1..].to_vec());
    }
}
