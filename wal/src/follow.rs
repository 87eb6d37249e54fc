//! Following the log: the frames made durable, in LSN order, from any retained LSN on.
//!
//! A [`LogFollower`] reads the log from disk while it is behind (catch-up), and from an
//! in-memory cache of the frames appended most recently once it has caught up (live).
//! The cache ([`RecentFrames`]) exists only while some follower lives: writers copy
//! each frame into it under the writer's lock, before the frame can be synced, so a
//! frame that is durable and newer than the cache's oldest is always in it. A follower
//! that falls behind the cache (the cache is bounded, writers never wait for
//! followers) reads from disk again until it reaches the cache. Whichever it reads
//! from, a follower delivers a frame only once the log reports it durable, and
//! delivers every LSN exactly once, in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Lsn;
use crate::error::{Result, WalError};
use crate::iter::{Frame, WalIter};
use crate::wal::Shared;

/// The frames appended most recently, kept while a follower lives.
pub(crate) struct RecentFrames {
    /// Live followers; the cache is filled only while this is above zero.
    followers: AtomicUsize,
    cache: Mutex<Cache>,
}

struct Cache {
    /// Contiguous LSNs, oldest first.
    frames: VecDeque<Frame>,
    /// Payload bytes held.
    bytes: usize,
    /// Most payload bytes held; the oldest frames are dropped beyond it (one frame
    /// larger than this is still kept, alone).
    limit: usize,
}

impl RecentFrames {
    pub(crate) fn new(limit: usize) -> RecentFrames {
        RecentFrames {
            followers: AtomicUsize::new(0),
            cache: Mutex::new(Cache { frames: VecDeque::new(), bytes: 0, limit }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // Plain container updates under this lock: nothing panics while it is held.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while some follower lives (a writer then records its frames).
    pub(crate) fn wanted(&self) -> bool {
        self.followers.load(Ordering::Acquire) > 0
    }

    /// Records a group appended at `first..`. Called under the writer's lock, so groups
    /// arrive in LSN order; a gap (a group appended while no follower lived, between two
    /// that were recorded) empties the cache first, so it always holds contiguous LSNs.
    pub(crate) fn record(&self, first: Lsn, payloads: &[&[u8]]) {
        // Copied before the cache's lock is taken, and what is evicted freed after it is
        // released: followers taking frames wait only for the pointer moves.
        let frames = payloads.iter().enumerate().map(|(i, payload)| {
            Frame::owned(first + i as u64, payload.to_vec(), i + 1 < payloads.len())
        });
        let frames: Vec<Frame> = frames.collect();
        let mut evicted = Vec::new();
        let mut cache = self.lock();
        if cache.frames.back().is_some_and(|f| f.lsn() + 1 != first) {
            evicted.extend(cache.frames.drain(..));
            cache.bytes = 0;
        }
        for frame in frames {
            cache.bytes += frame.payload().len();
            cache.frames.push_back(frame);
        }
        while cache.bytes > cache.limit && cache.frames.len() > 1 {
            if let Some(old) = cache.frames.pop_front() {
                cache.bytes -= old.payload().len();
                evicted.push(old);
            }
        }
        drop(cache);
        drop(evicted);
    }

    fn join(&self) {
        self.followers.fetch_add(1, Ordering::AcqRel);
    }

    fn leave(&self) {
        if self.followers.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut cache = self.lock();
            // A follower may have joined meanwhile: keep what it can use.
            if !self.wanted() {
                cache.frames.clear();
                cache.bytes = 0;
            }
        }
    }

    /// Frames `next..=upto` from the cache, at most `max`, if the cache holds `next`.
    fn take(&self, next: Lsn, upto: Lsn, max: usize) -> Option<Vec<Frame>> {
        let cache = self.lock();
        let front = cache.frames.front()?.lsn();
        let back = cache.frames.back()?.lsn();
        if next < front || next > back {
            return None;
        }
        let start = (next - front) as usize;
        let end = upto.min(back);
        let count = ((end + 1).saturating_sub(next) as usize).min(max);
        Some(cache.frames.range(start..start + count).cloned().collect())
    }
}

/// What a follower found at its position ([`LogFollower::poll`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Followed {
    /// Durable frames from the follower's position on, in LSN order (at least one).
    Frames(Vec<Frame>),
    /// Every durable frame has been delivered: wait for the durable LSN to pass `durable`
    /// ([`crate::Wal::wait_durable_beyond`], [`crate::Wal::durable_beyond_async`]).
    CaughtUp {
        /// The durable LSN when the follower looked.
        durable: Lsn,
    },
    /// The follower's position lies below the oldest frame the log retains: a
    /// truncation removed the frames it needs. It can move on with
    /// [`LogFollower::skip_to`] (from a snapshot that covers them).
    Behind {
        /// The log's first retained LSN.
        first_lsn: Lsn,
    },
}

/// Reads the log's durable frames from an LSN on, from disk while behind and from the
/// cache of recent frames once caught up ([`crate::Wal::follow`]). Holds nothing the writers
/// or the compactor wait for; a truncation below it shows as [`Followed::Behind`].
pub struct LogFollower {
    wal: Arc<Shared>,
    next: Lsn,
    /// The disk read in progress while catching up.
    disk: Option<WalIter>,
    /// Frames delivered from disk and from the cache (for stats and tests).
    from_disk: u64,
    from_cache: u64,
}

impl std::fmt::Debug for LogFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFollower")
            .field("next", &self.next)
            .field("durable", &self.wal.durable_lsn())
            .field("first", &self.wal.first_lsn())
            .field("on_disk", &self.disk.is_some())
            .field("from_disk", &self.from_disk)
            .field("from_cache", &self.from_cache)
            .finish_non_exhaustive()
    }
}

impl LogFollower {
    pub(crate) fn new(wal: Arc<Shared>, from: Lsn) -> LogFollower {
        wal.recent.join();
        LogFollower { wal, next: from.max(1), disk: None, from_disk: 0, from_cache: 0 }
    }

    /// The LSN the next frame delivered will carry.
    pub fn next_lsn(&self) -> Lsn {
        self.next
    }

    /// Frames delivered so far that were read from disk, and from the cache.
    pub fn delivered(&self) -> (u64, u64) {
        (self.from_disk, self.from_cache)
    }

    /// Moves the position on to `next` (after a snapshot covering the frames below it
    /// stood in for them). Never backwards.
    pub fn skip_to(&mut self, next: Lsn) {
        if next > self.next {
            self.next = next;
            self.disk = None;
        }
    }

    /// Up to `max` durable frames from the position on, without waiting for a sync.
    /// Reading from disk blocks on I/O (call it off an async runtime's workers).
    pub fn poll(&mut self, max: usize) -> Result<Followed> {
        let max = max.max(1);
        let durable = self.wal.durable_lsn();
        if self.next > durable {
            self.disk = None;
            return Ok(Followed::CaughtUp { durable });
        }
        if let Some(frames) = self.wal.recent.take(self.next, durable, max) {
            self.disk = None;
            self.from_cache += frames.len() as u64;
            return Ok(self.deliver(frames));
        }
        self.poll_disk(durable, max)
    }

    /// [`LogFollower::poll`] without reading from disk: `None` if the position lies
    /// outside the cache (or below the retained log) and a read from disk is needed.
    pub fn poll_cached(&mut self, max: usize) -> Option<Followed> {
        let durable = self.wal.durable_lsn();
        if self.next > durable {
            self.disk = None;
            return Some(Followed::CaughtUp { durable });
        }
        let frames = self.wal.recent.take(self.next, durable, max.max(1))?;
        self.disk = None;
        self.from_cache += frames.len() as u64;
        Some(self.deliver(frames))
    }

    fn deliver(&mut self, frames: Vec<Frame>) -> Followed {
        if let Some(last) = frames.last() {
            self.next = last.lsn() + 1;
        }
        Followed::Frames(frames)
    }

    fn poll_disk(&mut self, durable: Lsn, max: usize) -> Result<Followed> {
        // Twice at most: an iterator ends at the LSN last written when it was made, so
        // one used up before the durable LSN is replaced by a fresh one.
        for _ in 0..2 {
            let first_lsn = self.wal.follow_floor();
            if self.next < first_lsn {
                self.disk = None;
                return Ok(Followed::Behind { first_lsn });
            }
            let mut iter = match self.disk.take() {
                Some(iter) => iter,
                None => match self.wal.iter_from(self.next) {
                    Ok(iter) => iter,
                    // Truncated between the floor's check and the listing.
                    Err(_) if self.next < self.wal.follow_floor() => {
                        return Ok(Followed::Behind { first_lsn: self.wal.follow_floor() });
                    }
                    Err(e) => return Err(e),
                },
            };
            let mut frames = Vec::new();
            let mut failure = None;
            while frames.len() < max && self.next + (frames.len() as u64) <= durable {
                match iter.next() {
                    Some(Ok(frame)) => frames.push(frame),
                    Some(Err(e)) => {
                        failure = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            match (failure, frames.is_empty()) {
                // Delivered; the error (if any) shows again on the next read.
                (_, false) => {
                    self.disk = Some(iter);
                    self.from_disk += frames.len() as u64;
                    return Ok(self.deliver(frames));
                }
                (Some(e), true) => {
                    // A segment deleted under the read: the log was truncated past the
                    // position (the floor says so before the first deletion).
                    let first_lsn = self.wal.follow_floor();
                    if self.next < first_lsn {
                        return Ok(Followed::Behind { first_lsn });
                    }
                    return Err(e);
                }
                (None, true) => {}
            }
        }
        Err(WalError::LsnOutOfRange {
            requested: self.next,
            first: self.wal.first_lsn(),
            last: self.wal.last_lsn(),
        })
    }
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        self.wal.recent.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsns(frames: &[Frame]) -> Vec<Lsn> {
        frames.iter().map(Frame::lsn).collect()
    }

    #[test]
    fn the_cache_keeps_contiguous_lsns_within_its_limit() {
        let recent = RecentFrames::new(10);
        recent.record(1, &[b"aaaa", b"bbbb"]);
        recent.record(3, &[b"cccc"]);
        // 12 bytes > 10: the oldest went.
        assert!(recent.take(1, 10, 10).is_none());
        assert_eq!(lsns(&recent.take(2, 10, 10).unwrap_or_default()), vec![2, 3]);
        // A gap empties it.
        recent.record(7, &[b"x"]);
        assert!(recent.take(3, 10, 10).is_none());
        assert_eq!(lsns(&recent.take(7, 7, 10).unwrap_or_default()), vec![7]);
        // Bounded by `upto` and `max`.
        recent.record(8, &[b"y", b"z"]);
        assert_eq!(lsns(&recent.take(7, 8, 10).unwrap_or_default()), vec![7, 8]);
        assert_eq!(lsns(&recent.take(7, 9, 1).unwrap_or_default()), vec![7]);
    }

    #[test]
    fn a_frame_larger_than_the_limit_is_kept_alone() {
        let recent = RecentFrames::new(2);
        recent.record(1, &[b"abcdef"]);
        assert_eq!(lsns(&recent.take(1, 1, 10).unwrap_or_default()), vec![1]);
        recent.record(2, &[b"ghijkl"]);
        assert!(recent.take(1, 2, 10).is_none());
        assert_eq!(lsns(&recent.take(2, 2, 10).unwrap_or_default()), vec![2]);
    }
}
