//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/` (an ignored
//! test: run it to regenerate the seeds).
//!
//! Every seed is made by the real encoders: a small store (8 KiB log segments) receives
//! batches of every event kind and is compacted three times (the last snapshot
//! partitioned), then its segment files, their frame runs, the batches and the manifest
//! are copied out, with a few edge cases. Run from the repository root:
//!
//! ```text
//! cargo test --release -p orderlog-store --no-default-features --lib write_seed_corpus -- --ignored
//! ```
//!
//! Segment salts and snapshot times differ on every run, so the files do too.

use std::fs;
use std::path::{Path, PathBuf};

use crate::events::encode_batch;
use crate::{
    Event, Order, OrderStatus, OrderStore, PaymentMethod, SnapshotOptions, StoreOptions, WalOptions,
};
use orderlog_wal::Wal;
use orderlog_wal::format::{
    FRAME_HEADER_BYTES, FRAMES_OFFSET, FrameHeader, SegmentHeader, segment_file_name,
};

const T0: u64 = 1_767_225_600_000;

#[test]
#[ignore = "writes fuzz/corpus: run it to regenerate the seeds"]
fn write_seed_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let batches = batches();
    let dir = tempfile::tempdir().expect("temp dir");
    build_store(dir.path(), &batches);

    let events = target(&corpus, "decode_events");
    let mut bytes = Vec::new();
    for (name, batch) in &batches {
        encode_batch(batch, &mut bytes);
        write(&events, name, &bytes);
    }
    encode_batch(&[], &mut bytes);
    write(&events, "edge-empty-batch", &bytes);
    encode_batch(&batches[0].1, &mut bytes);
    write(&events, "edge-truncated", &bytes[..bytes.len() - 3]);
    bytes.push(0);
    write(&events, "edge-trailing-byte", &bytes);
    write(&events, "edge-huge-count", &[1, 0xff, 0xff, 0xff, 0xff]);

    let segments = target(&corpus, "scan_segment");
    let frames = target(&corpus, "decode_frames");
    let mut wal_files: Vec<PathBuf> = fs::read_dir(dir.path().join("wal"))
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    wal_files.sort();
    for (i, path) in wal_files.iter().enumerate() {
        let seg = fs::read(path).expect("segment");
        let end = written_end(&seg);
        // The first segment whole; the others cut after their last frame (the scanner
        // reads missing bytes as unwritten).
        let keep = if i == 0 { seg.len() } else { end };
        if i < 2 || i + 1 == wal_files.len() {
            write(&segments, &format!("segment-{i}"), &seg[..keep]);
        }
        let (header, header_crc) = SegmentHeader::decode(&seg).expect("segment header");
        let mut prefix = Vec::new();
        prefix.extend_from_slice(&header.salt.to_le_bytes());
        prefix.extend_from_slice(&header_crc.to_le_bytes());
        prefix.extend_from_slice(&header.base_lsn.to_le_bytes());
        let run = &seg[FRAMES_OFFSET as usize..end.max(FRAMES_OFFSET as usize)];
        if i < 2 {
            write(&frames, &format!("segment-{i}-frames"), &[&prefix[..], run].concat());
        }
        if i == 0 {
            let first = frame_len(run, 0);
            write(&frames, "single-frame", &[&prefix[..], &run[..first]].concat());
        }
    }
    // The store logs one frame per batch; a log written directly holds groups.
    let log = tempfile::tempdir().expect("temp dir");
    let wal = Wal::open(log.path(), WalOptions { segment_bytes: 8192, ..WalOptions::default() })
        .expect("open log");
    wal.append(b"alone").expect("append");
    wal.append_batch(&[&b"group of three: one"[..], b"", b"three"]).expect("append group");
    wal.append_batch(&[&b"a group of two"[..], &[0u8; 13]]).expect("append group");
    wal.close().expect("close log");
    drop(wal);
    let seg = fs::read(log.path().join(segment_file_name(1))).expect("segment");
    let end = written_end(&seg);
    write(&segments, "groups-segment", &seg[..end]);
    let (header, header_crc) = SegmentHeader::decode(&seg).expect("segment header");
    let mut prefix = Vec::new();
    prefix.extend_from_slice(&header.salt.to_le_bytes());
    prefix.extend_from_slice(&header_crc.to_le_bytes());
    prefix.extend_from_slice(&header.base_lsn.to_le_bytes());
    write(&frames, "groups", &[&prefix[..], &seg[FRAMES_OFFSET as usize..end]].concat());
    let header_only = fs::read(&wal_files[0]).expect("segment");
    write(&segments, "edge-header-page-only", &header_only[..FRAMES_OFFSET as usize]);
    write(&segments, "edge-header-only", &header_only[..64]);
    write(&frames, "edge-prefix-only", &[0u8; 20]);

    let manifest = target(&corpus, "decode_manifest");
    let bytes = fs::read(dir.path().join("snapshots/MANIFEST")).expect("manifest");
    write(&manifest, "manifest-3-snapshots", &bytes);
    // The body alone: the target also decodes its input behind a correct header.
    write(&manifest, "manifest-3-snapshots-body", &bytes[64..]);
    write(&manifest, "edge-header-only", &bytes[..64]);
}

/// Batches covering every event kind, each with and without an expected version.
fn batches() -> Vec<(&'static str, Vec<Event>)> {
    let order = |id: u64| {
        Order::builder(id)
            .customer(100 + id)
            .product(7)
            .quantity(2)
            .unit_price(9.5)
            .build()
            .unwrap()
            .with_status(OrderStatus::Pending)
            .with_payment_method(PaymentMethod::PayPal)
            .with_timestamp(1_767_225_600)
            .with_shipping_address_hash(0xfeed_f00d)
    };
    let creates: Vec<Event> =
        (1..=20).map(|id| Event::create(order(id)).stamped(T0 + id)).collect();
    vec![
        ("batch-create", creates),
        ("batch-create-expecting", vec![Event::create(order(21)).stamped(T0).expecting(0)]),
        (
            "batch-set-status",
            vec![
                Event::set_status(1, OrderStatus::Confirmed).stamped(T0 + 100),
                Event::set_status(1, OrderStatus::Shipped).stamped(T0 + 101).expecting(2),
            ],
        ),
        (
            "batch-amend",
            vec![
                Event::amend(2, Some(5), None).stamped(T0 + 200),
                Event::amend(2, None, Some(3.25)).stamped(T0 + 201),
                Event::amend(2, Some(1), Some(0.0)).stamped(T0 + 202).expecting(3),
            ],
        ),
        (
            "batch-change-payment",
            vec![Event::change_payment(3, PaymentMethod::BankTransfer).stamped(T0 + 300)],
        ),
        ("batch-cancel", vec![Event::cancel(4).stamped(T0 + 400).expecting(1)]),
        ("batch-erase", vec![Event::erase(5).stamped(T0 + 500)]),
        (
            "batch-mixed",
            vec![
                Event::create(order(30)).stamped(T0 + 600),
                Event::set_status(30, OrderStatus::Confirmed).stamped(T0 + 601),
                Event::amend(30, Some(3), None).stamped(T0 + 602),
                Event::change_payment(30, PaymentMethod::CashOnDelivery).stamped(T0 + 603),
                Event::cancel(30).stamped(T0 + 604),
                Event::erase(30).stamped(T0 + 605),
            ],
        ),
    ]
}

/// A store in `dir` holding the batches, compacted three times (keeping three snapshots).
fn build_store(dir: &Path, batches: &[(&str, Vec<Event>)]) {
    let options = |partition: Option<&str>| {
        let mut o = StoreOptions {
            wal: WalOptions { segment_bytes: 8192, ..WalOptions::default() },
            ..StoreOptions::default()
        };
        o.compaction.background = false;
        o.compaction.retain_segments = 8;
        o.compaction.snapshot = SnapshotOptions {
            keep_last: 3,
            partition_by: partition.map(Into::into),
            ..o.compaction.snapshot
        };
        o
    };
    let mut next_id = 1000;
    for round in 0..3 {
        let store =
            OrderStore::open(dir, options((round == 2).then_some("status"))).expect("open store");
        if round == 0 {
            for (_, batch) in batches {
                store.apply_batch(batch).expect("apply");
            }
        }
        // Enough creates to seal a segment, so there is something to compact.
        for _ in 0..40 {
            let batch: Vec<Event> = (0..3)
                .map(|k| {
                    next_id += 1;
                    let o = Order::builder(next_id)
                        .customer(next_id)
                        .product(3)
                        .quantity(1 + k)
                        .unit_price(4.0)
                        .build()
                        .unwrap()
                        .with_status(OrderStatus::ALL[(next_id % 6) as usize])
                        .with_timestamp(1_767_225_600);
                    Event::create(o).stamped(T0 + next_id)
                })
                .collect();
            store.apply_batch(&batch).expect("apply");
        }
        store.compact().expect("compact");
        store.close().expect("close");
    }
}

/// Offset just past the last frame written in a segment (8-byte aligned).
fn written_end(seg: &[u8]) -> usize {
    let mut pos = FRAMES_OFFSET as usize;
    while pos + FRAME_HEADER_BYTES <= seg.len() {
        let h = FrameHeader::read(&seg[pos..pos + FRAME_HEADER_BYTES]);
        if h.is_end() {
            break;
        }
        pos += frame_len(seg, pos);
    }
    pos
}

/// Bytes of the frame at `at`, padding included.
fn frame_len(bytes: &[u8], at: usize) -> usize {
    let h = FrameHeader::read(&bytes[at..at + FRAME_HEADER_BYTES]);
    orderlog_wal::format::frame_size(h.payload_len()) as usize
}

fn target(corpus: &Path, name: &str) -> PathBuf {
    let dir = corpus.join(name);
    fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("write seed");
    println!("{:>7}  {}", bytes.len(), dir.join(name).display());
}
