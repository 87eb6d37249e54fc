//! Reading frames in LSN order, across segments.

use std::sync::Arc;

use crate::Lsn;
use crate::error::{CorruptionKind, Result, WalError};
use crate::format::FRAME_HEADER_BYTES;
use crate::scan::{ScannedFrame, scan_segment};
use crate::storage::Storage;

/// A frame read back from the log. Cheap to clone: it shares its segment's bytes.
#[derive(Clone)]
pub struct Frame {
    lsn: Lsn,
    bytes: Arc<Vec<u8>>,
    frame: ScannedFrame,
}

impl Frame {
    /// A frame over a segment's bytes (the range was validated by a scan).
    pub(crate) fn new(bytes: Arc<Vec<u8>>, frame: ScannedFrame) -> Frame {
        Frame { lsn: frame.lsn, bytes, frame }
    }

    /// A frame holding its own copy of its payload (the followers' cache).
    pub(crate) fn owned(lsn: Lsn, payload: Vec<u8>, group_continues: bool) -> Frame {
        let frame = ScannedFrame { lsn, payload: 0..payload.len(), group_continues };
        Frame { lsn, bytes: Arc::new(payload), frame }
    }

    /// The frame's LSN.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The payload exactly as appended.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.frame.payload.clone()]
    }

    /// True if more frames of the same atomic group follow this one.
    pub fn group_continues(&self) -> bool {
        self.frame.group_continues
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("lsn", &self.lsn)
            .field("len", &self.frame.payload.len())
            .field("group_continues", &self.frame.group_continues)
            .finish()
    }
}

/// A segment being read: its bytes, frames not yet returned, and damage after them.
struct Loaded {
    bytes: Arc<Vec<u8>>,
    frames: std::vec::IntoIter<ScannedFrame>,
    path: std::path::PathBuf,
    damage: Option<crate::scan::Damage>,
}

/// Iterator over frames `from..=last`, loading one segment at a time.
///
/// Each segment is validated as it is loaded; damage before `last` is returned as an
/// error (and ends the iteration).
pub struct WalIter {
    storage: Arc<dyn Storage>,
    /// Segments still to read (base LSN, name), oldest first.
    segments: std::collections::VecDeque<(Lsn, String)>,
    next: Lsn,
    last: Lsn,
    current: Option<Loaded>,
    failed: bool,
}

impl WalIter {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        segments: Vec<(Lsn, String)>,
        from: Lsn,
        last: Lsn,
    ) -> Result<WalIter> {
        let first = segments.first().map_or(last + 1, |s| s.0);
        let from = from.max(1);
        if from < first || from > last + 1 {
            return Err(WalError::LsnOutOfRange { requested: from, first, last });
        }
        let start = segments.iter().rposition(|s| s.0 <= from).unwrap_or(0);
        Ok(WalIter {
            storage,
            segments: segments.into_iter().skip(start).collect(),
            next: from,
            last,
            current: None,
            failed: false,
        })
    }

    fn load_next_segment(&mut self) -> Result<bool> {
        let Some((_, name)) = self.segments.pop_front() else { return Ok(false) };
        let path = self.storage.path().join(&name);
        // The previous segment's buffer, unless a frame handed out still shares it.
        let mut bytes = self
            .current
            .take()
            .and_then(|loaded| Arc::try_unwrap(loaded.bytes).ok())
            .unwrap_or_default();
        self.storage
            .read_into(&name, &mut bytes)
            .map_err(|e| WalError::io("reading segment", &path, e))?;
        let scan = scan_segment(&bytes).map_err(|d| WalError::Corruption {
            file: path.clone(),
            offset: d.offset,
            kind: d.kind,
        })?;
        self.current = Some(Loaded {
            bytes: Arc::new(bytes),
            frames: scan.frames.into_iter(),
            path,
            damage: scan.damage,
        });
        Ok(true)
    }

    /// The next frame of the loaded segment, checking LSN continuity.
    fn next_loaded(&mut self) -> Option<Result<Frame>> {
        let loaded = self.current.as_mut()?;
        for frame in loaded.frames.by_ref() {
            if frame.lsn < self.next {
                continue;
            }
            if frame.lsn != self.next {
                let kind = CorruptionKind::LsnGap { expected: self.next, found: frame.lsn };
                let offset = (frame.payload.start - FRAME_HEADER_BYTES) as u64;
                return Some(Err(WalError::Corruption { file: loaded.path.clone(), offset, kind }));
            }
            self.next = frame.lsn + 1;
            return Some(Ok(Frame { lsn: frame.lsn, bytes: Arc::clone(&loaded.bytes), frame }));
        }
        // Frames we were promised lie beyond damage in this segment.
        let damage = loaded.damage.take()?;
        let later = self.segments.front().map_or(Lsn::MAX, |s| s.0);
        if later > self.next && self.next <= self.last {
            let file = loaded.path.clone();
            return Some(Err(WalError::Corruption {
                file,
                offset: damage.offset,
                kind: damage.kind,
            }));
        }
        None
    }
}

impl Iterator for WalIter {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Result<Frame>> {
        if self.failed {
            return None;
        }
        while self.next <= self.last {
            if let Some(item) = self.next_loaded() {
                self.failed = item.is_err();
                return Some(item);
            }
            match self.load_next_segment() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        if self.next <= self.last {
            self.failed = true;
            let first = self.next;
            return Some(Err(WalError::LsnOutOfRange { requested: first, first, last: self.last }));
        }
        None
    }
}

/// A log that can be read: the live [`crate::Wal`] and the offline [`crate::LogReader`]
/// both are, so one fold serves the store, its compactor, analytics and the tool.
pub trait ReadLog {
    /// LSN of the first frame held (the next LSN if none is).
    fn first_lsn(&self) -> Lsn;
    /// LSN of the last frame held (0 if none).
    fn last_lsn(&self) -> Lsn;
    /// Frames from `from` to [`ReadLog::last_lsn`] as it was when the iterator was made.
    fn iter_from(&self, from: Lsn) -> Result<WalIter>;
}

impl ReadLog for crate::Wal {
    fn first_lsn(&self) -> Lsn {
        crate::Wal::first_lsn(self)
    }
    fn last_lsn(&self) -> Lsn {
        crate::Wal::last_lsn(self)
    }
    fn iter_from(&self, from: Lsn) -> Result<WalIter> {
        crate::Wal::iter_from(self, from)
    }
}

impl ReadLog for crate::LogReader {
    fn first_lsn(&self) -> Lsn {
        crate::LogReader::first_lsn(self)
    }
    fn last_lsn(&self) -> Lsn {
        crate::LogReader::last_lsn(self)
    }
    fn iter_from(&self, from: Lsn) -> Result<WalIter> {
        crate::LogReader::iter_from(self, from)
    }
}
