//! Object names of a backup, under its prefix:
//!
//! ```text
//! generations/<generation>/index/<seq, 20 digits>           index objects, created once each
//! generations/<generation>/log/<base>-<last>.seg            a sealed log segment's frames
//! generations/<generation>/log/<base>-<last>.part           the active segment's durable prefix
//! generations/<generation>/snapshots/<snapshot dir>/<file>  a snapshot's files
//! generations/<generation>/snapshots/MANIFEST-<lsn>         the manifest that lists it
//! ```
//!
//! LSNs are written with 20 decimal digits, so names sort as their LSNs do. A generation
//! is `<ms since the epoch, 16 hex digits>-<random, 8 hex digits>`: generations sort by
//! the time they were started.

use orderlog_wal::Lsn;

/// The top-level directory of every generation.
pub const GENERATIONS: &str = "generations";

/// A generation's id: the time it was started and a random tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation {
    /// When it was started, ms since the Unix epoch.
    pub started_ms: u64,
    /// A random tag, so two generations started in the same millisecond differ.
    pub tag: u32,
}

impl Generation {
    /// A new generation, started now.
    pub fn new(now_ms: u64) -> Generation {
        Generation { started_ms: now_ms, tag: rand::random() }
    }

    /// Parses `<16 hex digits>-<8 hex digits>`.
    pub fn parse(s: &str) -> Option<Generation> {
        let (ms, tag) = s.split_once('-')?;
        if ms.len() != 16 || tag.len() != 8 {
            return None;
        }
        let generation = Generation {
            started_ms: u64::from_str_radix(ms, 16).ok()?,
            tag: u32::from_str_radix(tag, 16).ok()?,
        };
        // One spelling per generation: lowercase, no sign.
        (generation.to_string() == s).then_some(generation)
    }

    /// The generation's directory under the prefix.
    pub fn dir(&self) -> String {
        format!("{GENERATIONS}/{self}")
    }

    /// The index object number `seq`.
    pub fn index(&self, seq: u64) -> String {
        format!("{}/index/{seq:020}", self.dir())
    }

    /// A log piece's object.
    pub fn log_piece(&self, piece: LogPiece) -> String {
        format!("{}/log/{piece}", self.dir())
    }

    /// A snapshot file's object (`file`: its path inside the snapshot store, such as
    /// `snap-00000000000000000042/orders.arrow`).
    pub fn snapshot_file(&self, file: &str) -> String {
        format!("{}/snapshots/{file}", self.dir())
    }

    /// The object holding the manifest as it was when the snapshot at `lsn` was current.
    pub fn manifest(&self, lsn: Lsn) -> String {
        format!("{}/snapshots/MANIFEST-{lsn:020}", self.dir())
    }
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}-{:08x}", self.started_ms, self.tag)
    }
}

/// A piece of the log: the frames `base..=last` of the segment whose first LSN is
/// `base`, whole (sealed) or the durable prefix of the active segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPiece {
    /// The segment's first LSN.
    pub base: Lsn,
    /// The last LSN the piece holds (`base - 1`: none).
    pub last: Lsn,
    /// The segment was sealed: the piece is all of it and never changes.
    pub sealed: bool,
}

impl LogPiece {
    /// Parses `<base>-<last>.seg` or `<base>-<last>.part` (20 digits each).
    pub fn parse(name: &str) -> Option<LogPiece> {
        let (stem, sealed) = match name.strip_suffix(".seg") {
            Some(stem) => (stem, true),
            None => (name.strip_suffix(".part")?, false),
        };
        let (base, last) = stem.split_once('-')?;
        if base.len() != 20
            || last.len() != 20
            || !(base.bytes().chain(last.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let (base, last): (Lsn, Lsn) = (base.parse().ok()?, last.parse().ok()?);
        (base >= 1 && last < Lsn::MAX && last + 1 >= base).then_some(LogPiece {
            base,
            last,
            sealed,
        })
    }
}

impl std::fmt::Display for LogPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.sealed { "seg" } else { "part" };
        write!(f, "{:020}-{:020}.{kind}", self.base, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn names_parse_back(ms in 0u64..(1 << 50), tag: u32, base in 1u64..u64::MAX / 2, n in 0u64..1 << 20, sealed: bool) {
            let generation = Generation { started_ms: ms, tag };
            prop_assert_eq!(Generation::parse(&generation.to_string()), Some(generation));
            let piece = LogPiece { base, last: base - 1 + n, sealed };
            prop_assert_eq!(LogPiece::parse(&piece.to_string()), Some(piece));
        }

        #[test]
        fn garbage_names_are_refused_not_a_panic(s in ".{0,50}") {
            let _ = Generation::parse(&s);
            let _ = LogPiece::parse(&s);
        }
    }

    #[test]
    fn names_sort_as_their_numbers_do() {
        let a = Generation { started_ms: 9, tag: 0xffff_ffff };
        let b = Generation { started_ms: 10, tag: 0 };
        assert!(a.to_string() < b.to_string());
        assert!(a.index(9) < a.index(10));
        let p = |base, last| LogPiece { base, last, sealed: true }.to_string();
        assert!(p(9, 99) < p(100, 100));
        assert_eq!(LogPiece::parse("00000000000000000005-00000000000000000003.seg"), None);
        assert_eq!(LogPiece::parse("00000000000000000000-00000000000000000000.seg"), None);
        assert_eq!(Generation::parse("zz-00000000"), None);
        assert_eq!(Generation::parse("+000000000000009-ffffffff"), None);
        assert_eq!(Generation::parse("0000000000000009-FFFFFFFF"), None);
        assert_eq!(LogPiece::parse("00000000000000000001-18446744073709551615.seg"), None);
    }
}
