//! An in-memory [`Store`] for tests: same semantics as the engines, no disk.
//!
//! Clones share their contents, so a test can drop an [`Outbox`](super::Outbox) and open a new
//! one on a clone to simulate a restart. [`MemoryStore::fail_appends`] makes appends fail as if
//! the disk were full.

use super::store::{RECORD_OVERHEAD, Record, Removed, Store, StoreError, StreamStats};
use super::stream::{PerStream, Stream};
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<(u8, u64), (u64, Vec<u8>)>,
    next_seq: PerStream<u64>,
    evicted: PerStream<u64>,
}

/// In-memory store; clones share the same contents.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    fail_appends: Arc<AtomicBool>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `fail` is true, [`Store::append`] fails with [`StoreError::DiskFull`] and stores
    /// nothing.
    pub fn fail_appends(&self, fail: bool) {
        self.fail_appends.store(fail, Ordering::SeqCst);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below completes before it can panic, so a poisoned lock holds consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn append(&self, records: &[Record]) -> Result<(), StoreError> {
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(StoreError::io("<memory>", "appending", io::Error::from(io::ErrorKind::StorageFull)));
        }
        let mut inner = self.lock();
        for r in records {
            inner.records.insert((r.stream.id(), r.seq), (r.created_ms, r.payload.clone()));
            let next = &mut inner.next_seq[r.stream];
            *next = (*next).max(r.seq + 1);
        }
        Ok(())
    }

    fn range(&self, stream: Stream, after_seq: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        let inner = self.lock();
        let Some(start) = after_seq.checked_add(1) else { return Ok(Vec::new()) };
        Ok(inner
            .records
            .range((stream.id(), start)..=(stream.id(), u64::MAX))
            .take(limit)
            .map(|(&(_, seq), (created_ms, payload))| Record {
                stream,
                seq,
                created_ms: *created_ms,
                payload: payload.clone(),
            })
            .collect())
    }

    fn delete(&self, stream: Stream, seqs: &[u64]) -> Result<Removed, StoreError> {
        let mut inner = self.lock();
        let mut removed = Removed::default();
        for &seq in seqs {
            if let Some((_, payload)) = inner.records.remove(&(stream.id(), seq)) {
                removed.records += 1;
                removed.bytes += payload.len() as u64 + RECORD_OVERHEAD;
            }
        }
        Ok(removed)
    }

    fn delete_oldest(&self, stream: Stream, count: u64) -> Result<Removed, StoreError> {
        let mut inner = self.lock();
        let keys: Vec<(u8, u64)> = inner
            .records
            .range((stream.id(), 0)..=(stream.id(), u64::MAX))
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map(|(k, _)| *k)
            .collect();
        let mut removed = Removed::default();
        for key in keys {
            if let Some((_, payload)) = inner.records.remove(&key) {
                removed.records += 1;
                removed.bytes += payload.len() as u64 + RECORD_OVERHEAD;
            }
        }
        inner.evicted[stream] += removed.records;
        Ok(removed)
    }

    fn stats(&self) -> Result<PerStream<StreamStats>, StoreError> {
        let inner = self.lock();
        let mut stats = PerStream::<StreamStats>::default();
        for stream in Stream::all() {
            stats[stream].next_seq = inner.next_seq[stream].max(1);
            stats[stream].evicted = inner.evicted[stream];
        }
        for (&(id, _), (_, payload)) in &inner.records {
            if let Some(stream) = Stream::from_id(id) {
                stats[stream].records += 1;
                stats[stream].bytes += payload.len() as u64 + RECORD_OVERHEAD;
            }
        }
        Ok(stats)
    }
}
