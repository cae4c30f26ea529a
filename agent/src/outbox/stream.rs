//! The outbox's streams: what each kind of report is called, its stable id on disk, and the
//! order in which the outbox gives them up when the disk cap or the age limit is reached.

use std::fmt;
use std::ops::{Index, IndexMut};

/// A kind of report the device sends. Each stream has its own sequence numbers.
///
/// Declared from most to least important; [`Stream::eviction_rank`] is the order in which
/// records are given up (Samples first, Deployment last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Deployment lifecycle status (installed, activated, rolled back...). Never evicted while a
    /// record of any other stream remains.
    Deployment,
    /// Periodic device health.
    Health,
    /// Acknowledgements of fleet commands.
    Ack,
    /// Drift summaries.
    Drift,
    /// Sampled input/output records: bulk data, the first to go.
    Samples,
    /// Ground-truth labels of sampled records (small; they follow their samples). Declared
    /// last so the on-disk ids of the older streams stay as they were.
    Labels,
}

/// Number of streams; the length of [`PerStream`].
pub const STREAM_COUNT: usize = 6;

impl Stream {
    /// Every stream, in declaration order (most important first).
    pub const fn all() -> [Stream; STREAM_COUNT] {
        [Stream::Deployment, Stream::Health, Stream::Ack, Stream::Drift, Stream::Samples, Stream::Labels]
    }

    /// Every stream in eviction order: the stream whose records go first comes first.
    pub const fn eviction_order() -> [Stream; STREAM_COUNT] {
        [Stream::Samples, Stream::Labels, Stream::Drift, Stream::Ack, Stream::Health, Stream::Deployment]
    }

    /// The stable on-disk id. Never renumber: stored keys and counters use it.
    pub const fn id(self) -> u8 {
        match self {
            Stream::Deployment => 1,
            Stream::Health => 2,
            Stream::Ack => 3,
            Stream::Drift => 4,
            Stream::Samples => 5,
            Stream::Labels => 6,
        }
    }

    /// The stream with this on-disk id.
    pub const fn from_id(id: u8) -> Option<Stream> {
        match id {
            1 => Some(Stream::Deployment),
            2 => Some(Stream::Health),
            3 => Some(Stream::Ack),
            4 => Some(Stream::Drift),
            5 => Some(Stream::Samples),
            6 => Some(Stream::Labels),
            _ => None,
        }
    }

    /// A short lowercase name, for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Deployment => "deployment",
            Stream::Health => "health",
            Stream::Ack => "ack",
            Stream::Drift => "drift",
            Stream::Samples => "samples",
            Stream::Labels => "labels",
        }
    }

    /// Position in eviction order: 0 is evicted first (Samples), 5 last (Deployment).
    pub const fn eviction_rank(self) -> u8 {
        match self {
            Stream::Samples => 0,
            Stream::Labels => 1,
            Stream::Drift => 2,
            Stream::Ack => 3,
            Stream::Health => 4,
            Stream::Deployment => 5,
        }
    }

    /// Deployment status and health: kept, even past the age limit, while any record of a
    /// lower-ranked stream remains.
    pub const fn is_protected(self) -> bool {
        matches!(self, Stream::Deployment | Stream::Health)
    }

    const fn index(self) -> usize {
        (self.id() - 1) as usize
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per stream, indexed by [`Stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PerStream<T>(pub [T; STREAM_COUNT]);

impl<T> PerStream<T> {
    /// `(stream, value)` pairs in [`Stream::all`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Stream, &T)> {
        Stream::all().into_iter().map(move |s| (s, &self[s]))
    }
}

impl<T> Index<Stream> for PerStream<T> {
    type Output = T;
    fn index(&self, stream: Stream) -> &T {
        &self.0[stream.index()]
    }
}

impl<T> IndexMut<Stream> for PerStream<T> {
    fn index_mut(&mut self, stream: Stream) -> &mut T {
        &mut self.0[stream.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_round_trip() {
        let ids: Vec<u8> = Stream::all().iter().map(|s| s.id()).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        for s in Stream::all() {
            assert_eq!(Stream::from_id(s.id()), Some(s));
        }
        assert_eq!(Stream::from_id(0), None);
        assert_eq!(Stream::from_id(7), None);
    }

    #[test]
    fn eviction_order_matches_ranks() {
        for (rank, s) in Stream::eviction_order().into_iter().enumerate() {
            assert_eq!(usize::from(s.eviction_rank()), rank, "{s}");
        }
        assert_eq!(Stream::eviction_order()[0], Stream::Samples);
        // Protected streams come after every unprotected one.
        for s in Stream::all() {
            for p in Stream::all().into_iter().filter(|p| p.is_protected()) {
                if !s.is_protected() {
                    assert!(s.eviction_rank() < p.eviction_rank(), "{s} before {p}");
                }
            }
        }
    }

    #[test]
    fn per_stream_indexes_each_stream_separately() {
        let mut per = PerStream::<u64>::default();
        for (i, s) in Stream::all().into_iter().enumerate() {
            per[s] = i as u64 * 10;
        }
        let seen: Vec<(Stream, u64)> = per.iter().map(|(s, v)| (s, *v)).collect();
        assert_eq!(seen[4], (Stream::Samples, 40));
        assert_eq!(Stream::Drift.to_string(), "drift");
    }
}
