//! What the link needs from the outbox, and an in-memory implementation for tests.

use edgefleet_protocol::topic::TopicKind;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Records waiting to be published, per stream (a stream is a device → fleet topic kind).
pub trait UplinkQueue: Send + Sync + 'static {
    /// Up to `limit` records of `stream` with seq greater than `after_seq`, in seq order, as
    /// `(seq, payload)`. Never removes anything.
    fn pending(&self, stream: TopicKind, after_seq: u64, limit: usize) -> Vec<(u64, Vec<u8>)>;
    /// The broker acknowledged `(stream, seq)`: it may be deleted.
    fn ack(&self, stream: TopicKind, seq: u64);
}

/// An in-memory queue (tests and tools; not durable).
#[derive(Debug, Default)]
pub struct MemoryUplink {
    streams: Mutex<HashMap<TopicKind, BTreeMap<u64, Vec<u8>>>>,
}

impl MemoryUplink {
    /// Queues a record.
    pub fn push(&self, stream: TopicKind, seq: u64, payload: Vec<u8>) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.entry(stream).or_default().insert(seq, payload);
        }
    }

    /// Records not yet acknowledged.
    pub fn len(&self) -> usize {
        self.streams.lock().map(|s| s.values().map(BTreeMap::len).sum()).unwrap_or(0)
    }

    /// True when everything was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl UplinkQueue for MemoryUplink {
    fn pending(&self, stream: TopicKind, after_seq: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        let Ok(streams) = self.streams.lock() else { return Vec::new() };
        streams
            .get(&stream)
            .map(|s| s.range(after_seq + 1..).take(limit).map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }

    fn ack(&self, stream: TopicKind, seq: u64) {
        if let Ok(mut streams) = self.streams.lock()
            && let Some(s) = streams.get_mut(&stream)
        {
            s.remove(&seq);
        }
    }
}
