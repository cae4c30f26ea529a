//! The durable outbox: everything the device reports waits here until the broker has it.
//!
//! Producers (deployment lifecycle, health, drift, sampling, command handling) [`Outbox::push`]
//! a record to its [`Stream`]; the MQTT link reads [`Outbox::pending`] records, publishes them at
//! QoS 1 and calls [`Outbox::ack`] when the PUBACK arrives. Records are deleted on ack, never on
//! read.
//!
//! # Sequence numbers
//! Each stream numbers its records from 1, +1 per record, assigned under one lock and persisted
//! in the same atomic commit as the record, so they survive restarts and are never reused. The
//! producer's `build` closure receives the seq so the message can carry it; the fleet
//! deduplicates by (device, stream, seq). A push that fails after its seq was handed out burns
//! that seq (a gap, never a reuse).
//!
//! # fsync policy and what a crash can lose
//! - [`Outbox::push`] returns `Ok` only after the store's commit is durable (redb:
//!   `Durability::Immediate`, i.e. fdatasync; sled: `flush()` and then an `fdatasync` of its
//!   log, because its `flush()` alone is not power-safe). `Ok` is the acknowledgement to the
//!   producer: a SIGKILL or power cut after it loses nothing. Before it, the push may or may not
//!   have landed; its seq is then either present or never seen by anyone.
//! - Acks and evictions are atomic but not fsynced on their own: they become durable with the
//!   next push (or the engine's background flush, or a clean close). A power cut can therefore
//!   bring back records that were already acknowledged; the link resends them after restart,
//!   like an in-flight publish whose PUBACK was lost, and the fleet drops the duplicates by
//!   (device, stream, seq). Duplicates are possible; loss of an acknowledged push is not.
//! - Tested by `tests/outbox_kill.rs` (SIGKILL at random points, both engines). A power cut
//!   cannot be simulated here; it relies on the engines' documented commit protocols.
//!
//! # Limits
//! After every push the outbox enforces [`OutboxLimits`]:
//! - **Age:** records older than `max_age_ms` are dropped, lowest-priority stream first.
//!   Deployment status and health are kept past their age while any record of a lower-priority
//!   stream remains.
//! - **Bytes:** while the total [`Record::size`] exceeds `max_bytes`, the oldest record of the
//!   lowest-priority non-empty stream goes: Samples, then Drift, Ack, Health, Deployment. So
//!   deployment status and health are never evicted while any sample, drift or ack record
//!   remains.
//!
//! Every eviction is counted per stream and persisted with the deletion.
//!
//! # Threads
//! All methods take `&self`; share an `Arc<Outbox<S>>`. Pushes, acks and evictions are
//! serialized by one lock, so records reach the store in seq order and `pending` never shows a
//! gap that a concurrent push could still fill. Reads do not take the lock. Every method blocks
//! on disk I/O (a push waits for an fsync): from async code, call them through
//! `spawn_blocking` or a dedicated thread.

mod memory_store;
mod redb_store;
#[cfg(feature = "outbox-sled")]
mod sled_store;
mod store;
mod stream;

pub use memory_store::MemoryStore;
pub use redb_store::RedbStore;
#[cfg(feature = "outbox-sled")]
pub use sled_store::SledStore;
pub use store::{RECORD_OVERHEAD, Record, Removed, Store, StoreError, StreamStats};
pub use stream::{PerStream, STREAM_COUNT, Stream};

use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How much the outbox may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Cap on the total [`Record::size`] of stored records.
    pub max_bytes: u64,
    /// Records older than this are dropped (subject to the stream priorities). `u64::MAX`
    /// disables the age limit.
    pub max_age_ms: u64,
}

/// A snapshot of the outbox's contents and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStats {
    /// Records waiting, all streams.
    pub depth: u64,
    /// Their total [`Record::size`].
    pub bytes: u64,
    /// Records evicted per stream (persisted across restarts).
    pub evictions: PerStream<u64>,
    /// Everything per stream.
    pub streams: PerStream<StreamStats>,
}

/// Why a push, read or ack failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The store failed; nothing was pushed or deleted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The record alone exceeds the byte cap; nothing was stored and no seq was used.
    #[error(
        "a {stream} record of {size} bytes is larger than the outbox cap of {max_bytes} bytes; \
         split the report or raise the outbox max_bytes"
    )]
    TooLarge {
        /// The stream it was pushed to.
        stream: Stream,
        /// Its [`Record::size`].
        size: u64,
        /// The configured cap.
        max_bytes: u64,
    },
}

/// The durable outbox over a [`Store`]; see the module documentation.
#[derive(Debug)]
pub struct Outbox<S: Store> {
    store: S,
    limits: OutboxLimits,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    streams: PerStream<StreamStats>,
    /// `created_ms` of each stream's oldest record; `None` when not known (read on demand).
    oldest_ms: PerStream<Option<u64>>,
}

/// Records read per step while evicting.
const EVICT_CHUNK: usize = 256;

impl<S: Store> Outbox<S> {
    /// Opens the outbox on `store`, reading its counters, and enforces the byte cap (which may
    /// have been lowered since the store was written).
    pub fn open(store: S, limits: OutboxLimits) -> Result<Self, OutboxError> {
        let streams = store.stats()?;
        let outbox = Outbox { store, limits, state: Mutex::new(State { streams, oldest_ms: PerStream::default() }) };
        outbox.enforce_bytes(&mut outbox.lock());
        Ok(outbox)
    }

    /// The store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The limits in force.
    pub fn limits(&self) -> OutboxLimits {
        self.limits
    }

    /// Appends one record to `stream`: takes the stream's next seq, calls `build(seq)` for the
    /// payload, stores it durably, then enforces the limits and returns the seq. `Ok` means the
    /// record survives any crash (see the module docs). `build` runs under the outbox lock:
    /// keep it to encoding, and never call the outbox from it.
    pub fn push(&self, stream: Stream, now_ms: u64, build: impl FnOnce(u64) -> Vec<u8>) -> Result<u64, OutboxError> {
        let mut seqs = self.push_batch(stream, now_ms, [build], |build, seq| build(seq))?;
        Ok(seqs.next().unwrap_or_default())
    }

    /// Appends one record per item of `items` to `stream` in one durable commit, in order:
    /// `build(item, seq)` encodes each. Returns the seqs assigned (empty for no items). Either
    /// every record is stored or, on error, none is.
    pub fn push_batch<T>(
        &self,
        stream: Stream,
        now_ms: u64,
        items: impl IntoIterator<Item = T>,
        mut build: impl FnMut(T, u64) -> Vec<u8>,
    ) -> Result<Range<u64>, OutboxError> {
        let mut state = self.lock();
        let first = state.streams[stream].next_seq;
        let mut records = Vec::new();
        for (seq, item) in (first..).zip(items) {
            let record = Record { stream, seq, created_ms: now_ms, payload: build(item, seq) };
            if record.size() > self.limits.max_bytes {
                return Err(OutboxError::TooLarge { stream, size: record.size(), max_bytes: self.limits.max_bytes });
            }
            records.push(record);
        }
        if records.is_empty() {
            return Ok(first..first);
        }
        let end = first + records.len() as u64;
        // Burn the seqs before the commit: if it fails ambiguously they are never handed out again.
        state.streams[stream].next_seq = end;
        self.store.append(&records)?;
        let was_empty = state.streams[stream].records == 0;
        let s = &mut state.streams[stream];
        s.records += records.len() as u64;
        s.bytes += records.iter().map(Record::size).sum::<u64>();
        if was_empty {
            state.oldest_ms[stream] = Some(now_ms);
        }
        self.enforce(&mut state, now_ms);
        Ok(first..end)
    }

    /// Up to `limit` records of `stream` with a seq above `after_seq`, in seq order. Does not
    /// remove anything.
    pub fn pending(&self, stream: Stream, after_seq: u64, limit: usize) -> Result<Vec<Record>, OutboxError> {
        Ok(self.store.range(stream, after_seq, limit)?)
    }

    /// Deletes record `seq` of `stream` after the broker acknowledged it. Idempotent: acking a
    /// record that is gone (acked, evicted, never existed) is not an error.
    pub fn ack(&self, stream: Stream, seq: u64) -> Result<(), OutboxError> {
        self.ack_batch(stream, &[seq])
    }

    /// [`Outbox::ack`] for several records of one stream, in one commit.
    pub fn ack_batch(&self, stream: Stream, seqs: &[u64]) -> Result<(), OutboxError> {
        let mut state = self.lock();
        let removed = self.store.delete(stream, seqs)?;
        state.forget(stream, removed);
        Ok(())
    }

    /// Applies the age limit (and the byte cap) now, without a push: for a periodic timer, so
    /// records expire on an idle device too.
    pub fn enforce_limits(&self, now_ms: u64) {
        self.enforce(&mut self.lock(), now_ms);
    }

    /// Depth, bytes and counters, from the outbox's own accounting (no disk access).
    pub fn stats(&self) -> OutboxStats {
        let state = self.lock();
        let streams = state.streams;
        let mut evictions = PerStream::default();
        for (stream, s) in streams.iter() {
            evictions[stream] = s.evicted;
        }
        OutboxStats {
            depth: streams.iter().map(|(_, s)| s.records).sum(),
            bytes: streams.iter().map(|(_, s)| s.bytes).sum(),
            evictions,
            streams,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // State changes only after the store call they account for succeeded, so the state
        // behind a poisoned lock (a panicking `build`) is consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Eviction failures do not fail the push that triggered them (its record is durable): they
    /// are logged and retried on the next push.
    fn enforce(&self, state: &mut State, now_ms: u64) {
        if self.limits.max_age_ms != u64::MAX {
            self.enforce_age(state, now_ms);
        }
        self.enforce_bytes(state);
    }

    fn enforce_age(&self, state: &mut State, now_ms: u64) {
        let expired = |created_ms: u64| now_ms.saturating_sub(created_ms) > self.limits.max_age_ms;
        for stream in Stream::eviction_order() {
            if stream.is_protected() && state.any_below(stream) {
                continue;
            }
            // Records are in seq order and normally in time order too. A record stamped later
            // than its successor (clock stepped back) holds the sweep until it expires itself.
            while state.streams[stream].records > 0 {
                let oldest_ms = match state.oldest_ms[stream] {
                    Some(ms) => ms,
                    None => match self.read_oldest(stream, 1) {
                        Some(records) => match records.first() {
                            Some(record) => record.created_ms,
                            None => break,
                        },
                        None => return,
                    },
                };
                state.oldest_ms[stream] = Some(oldest_ms);
                if !expired(oldest_ms) {
                    break;
                }
                let Some(oldest) = self.read_oldest(stream, EVICT_CHUNK) else { return };
                let count = oldest.iter().take_while(|r| expired(r.created_ms)).count();
                if !self.evict(state, stream, &oldest, count, "age") {
                    return;
                }
            }
        }
    }

    fn enforce_bytes(&self, state: &mut State) {
        while let Some(excess) = state.total_bytes().checked_sub(self.limits.max_bytes).filter(|&e| e > 0) {
            let Some(stream) = Stream::eviction_order().into_iter().find(|&s| state.streams[s].records > 0) else {
                return;
            };
            // Read about as many records as the excess needs (usually one), not a whole chunk.
            let s = state.streams[stream];
            let average = (s.bytes / s.records.max(1)).max(1);
            let want = usize::try_from(excess / average + 2).unwrap_or(EVICT_CHUNK).min(EVICT_CHUNK);
            let Some(oldest) = self.read_oldest(stream, want) else { return };
            let mut freed = 0;
            let count = oldest
                .iter()
                .take_while(|r| {
                    let needed = freed < excess;
                    freed += r.size();
                    needed
                })
                .count();
            if !self.evict(state, stream, &oldest, count, "bytes") {
                return;
            }
        }
    }

    fn read_oldest(&self, stream: Stream, limit: usize) -> Option<Vec<Record>> {
        match self.store.range(stream, 0, limit) {
            Ok(records) => Some(records),
            Err(error) => {
                tracing::warn!(%stream, %error, "outbox: reading for eviction failed; retried on the next push");
                None
            }
        }
    }

    /// Evicts the first `count` of `oldest` (the stream's oldest records, in order). Returns
    /// whether it made progress; false on a store failure or when the store and the accounting
    /// disagree (the accounting is then resynchronized from the store).
    fn evict(&self, state: &mut State, stream: Stream, oldest: &[Record], count: usize, reason: &'static str) -> bool {
        if count == 0 {
            state.oldest_ms[stream] = oldest.first().map(|r| r.created_ms);
            if oldest.is_empty() {
                self.resync(state);
            }
            return false;
        }
        match self.store.delete_oldest(stream, count as u64) {
            Ok(removed) => {
                state.forget(stream, removed);
                state.oldest_ms[stream] = oldest.get(count).map(|r| r.created_ms);
                state.streams[stream].evicted += removed.records;
                tracing::debug!(%stream, records = removed.records, bytes = removed.bytes, reason, "outbox: evicted");
                if removed.records == 0 {
                    self.resync(state);
                }
                removed.records > 0
            }
            Err(error) => {
                tracing::warn!(%stream, %error, reason, "outbox: eviction failed; retried on the next push");
                state.oldest_ms[stream] = None;
                false
            }
        }
    }

    /// Reloads the accounting from the store, after it was found to disagree.
    fn resync(&self, state: &mut State) {
        tracing::warn!("outbox: accounting disagreed with the store; reloading it");
        if let Ok(mut streams) = self.store.stats() {
            for stream in Stream::all() {
                // Keep seqs already handed out in this process.
                streams[stream].next_seq = streams[stream].next_seq.max(state.streams[stream].next_seq);
            }
            state.streams = streams;
            state.oldest_ms = PerStream::default();
        }
    }
}

impl State {
    fn total_bytes(&self) -> u64 {
        self.streams.iter().map(|(_, s)| s.bytes).sum()
    }

    /// Whether any stream evicted before `stream` still holds records.
    fn any_below(&self, stream: Stream) -> bool {
        Stream::all().into_iter().any(|s| s.eviction_rank() < stream.eviction_rank() && self.streams[s].records > 0)
    }

    fn forget(&mut self, stream: Stream, removed: Removed) {
        let s = &mut self.streams[stream];
        s.records = s.records.saturating_sub(removed.records);
        s.bytes = s.bytes.saturating_sub(removed.bytes);
        if removed.records > 0 {
            self.oldest_ms[stream] = None;
        }
    }
}

#[cfg(test)]
mod tests;
