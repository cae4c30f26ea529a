//! [`Store`] on sled 0.34.7, kept for comparison (see ARCHITECTURE.md: it holds about 4× the
//! byte cap on disk and does not give it back after a drain, and its format is not stable).
//!
//! One tree; keys `b'r' ‖ stream id ‖ seq (u64 BE)` hold `created_ms (u64 LE) ‖ payload`, keys
//! `b'm' ‖ counter kind ‖ stream id` hold a u64 LE counter. Every change is one atomic
//! `apply_batch`; deletions leave durability to the next append or sled's background flush
//! (every 500 ms).
//!
//! **sled's `flush()` alone is not durable across a power cut.** On Linux, 0.34.7 writes its log
//! with `pwrite` + `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`, which neither flushes
//! the drive's write cache nor the file's metadata (`sync_all` only runs on the 500 ms
//! background thread). So an append here calls `flush()` and then `fdatasync`s sled's log file
//! (`<dir>/db`) through a handle of our own: fsync acts on the inode, whichever descriptor
//! asks. A residual gap remains: sled writes log items over ~128 KiB (a record payload that
//! large) to separate blob files that it never fsyncs.

use super::store::{RECORD_OVERHEAD, Record, Removed, Store, StoreError, StreamStats, decode_value, encode_value};
use super::stream::{PerStream, Stream};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

const RECORD: u8 = b'r';
const META: u8 = b'm';
const META_NEXT_SEQ: u8 = 1;
const META_EVICTED: u8 = 2;
/// sled's page cache; its default (1 GiB) lets RSS grow to hundreds of MB (PITFALLS.md).
const CACHE_BYTES: u64 = 16 << 20;
/// sled 0.34's log file inside its directory.
const LOG_FILE: &str = "db";

/// The outbox in one sled directory.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    /// sled's log file, opened by us to fdatasync it (see the module docs).
    log: File,
    path: PathBuf,
    /// Serializes read-modify-write batches (counters, deletions with their sizes).
    write: Mutex<()>,
}

impl SledStore {
    /// The directory name the agent uses inside its data dir.
    pub const DIR_NAME: &'static str = "outbox.sled";

    /// Opens (or creates) the store in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|e| map_err(&path, "opening", e))?;
        let log_path = path.join(LOG_FILE);
        let log = File::open(&log_path).map_err(|e| StoreError::io(log_path, "opening sled's log to sync it", e))?;
        Ok(SledStore { db, log, path, write: Mutex::new(()) })
    }

    /// The directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn counter(&self, kind: u8, stream: Stream) -> Result<Option<u64>, StoreError> {
        let value = self.db.get(meta_key(kind, stream)).map_err(|e| map_err(&self.path, "reading counters", e))?;
        match value {
            None => Ok(None),
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_ref()) {
                Ok(array) => Ok(Some(u64::from_le_bytes(array))),
                Err(_) => Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("{stream} counter {kind} is {} bytes, not 8", bytes.len()),
                }),
            },
        }
    }

    fn apply(&self, op: &'static str, batch: sled::Batch) -> Result<(), StoreError> {
        self.db.apply_batch(batch).map_err(|e| map_err(&self.path, op, e))
    }
}

impl Store for SledStore {
    fn append(&self, records: &[Record]) -> Result<(), StoreError> {
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = sled::Batch::default();
        let mut highest = PerStream::<u64>::default();
        for r in records {
            batch.insert(&record_key(r.stream, r.seq)[..], encode_value(r.created_ms, &r.payload));
            highest[r.stream] = highest[r.stream].max(r.seq);
        }
        for (stream, &seq) in highest.iter().filter(|(_, seq)| **seq > 0) {
            let next = self.counter(META_NEXT_SEQ, stream)?.unwrap_or(1).max(seq + 1);
            batch.insert(&meta_key(META_NEXT_SEQ, stream)[..], &next.to_le_bytes()[..]);
        }
        self.apply("appending", batch)?;
        self.db.flush().map_err(|e| map_err(&self.path, "flushing an append", e))?;
        self.log.sync_data().map_err(|e| StoreError::io(self.path.join(LOG_FILE), "syncing an append", e))
    }

    fn range(&self, stream: Stream, after_seq: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        let Some(start) = after_seq.checked_add(1) else { return Ok(Vec::new()) };
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in self.db.range(record_key(stream, start)..=record_key(stream, u64::MAX)).take(limit) {
            let (key, value) = entry.map_err(|e| map_err(&self.path, "reading", e))?;
            let record = decode_value(stream, seq_of(&key), &value)
                .map_err(|detail| StoreError::Corrupt { path: self.path.clone(), detail })?;
            out.push(record);
        }
        Ok(out)
    }

    fn delete(&self, stream: Stream, seqs: &[u64]) -> Result<Removed, StoreError> {
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = sled::Batch::default();
        let mut removed = Removed::default();
        for &seq in seqs {
            let key = record_key(stream, seq);
            if let Some(value) = self.db.get(key).map_err(|e| map_err(&self.path, "reading", e))? {
                removed.records += 1;
                removed.bytes += stored_size(&value);
                batch.remove(&key[..]);
            }
        }
        self.apply("deleting acknowledged records", batch)?;
        Ok(removed)
    }

    fn delete_oldest(&self, stream: Stream, count: u64) -> Result<Removed, StoreError> {
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = sled::Batch::default();
        let mut removed = Removed::default();
        let oldest = self.db.range(record_key(stream, 0)..=record_key(stream, u64::MAX));
        for entry in oldest.take(usize::try_from(count).unwrap_or(usize::MAX)) {
            let (key, value) = entry.map_err(|e| map_err(&self.path, "reading", e))?;
            removed.records += 1;
            removed.bytes += stored_size(&value);
            batch.remove(key);
        }
        let evicted = self.counter(META_EVICTED, stream)?.unwrap_or(0) + removed.records;
        batch.insert(&meta_key(META_EVICTED, stream)[..], &evicted.to_le_bytes()[..]);
        self.apply("evicting records", batch)?;
        Ok(removed)
    }

    fn stats(&self) -> Result<PerStream<StreamStats>, StoreError> {
        let mut stats = PerStream::<StreamStats>::default();
        for stream in Stream::all() {
            stats[stream].next_seq = self.counter(META_NEXT_SEQ, stream)?.unwrap_or(1).max(1);
            stats[stream].evicted = self.counter(META_EVICTED, stream)?.unwrap_or(0);
        }
        for entry in self.db.scan_prefix([RECORD]) {
            let (key, value) = entry.map_err(|e| map_err(&self.path, "reading statistics", e))?;
            if let Some(stream) = key.get(1).copied().and_then(Stream::from_id) {
                stats[stream].records += 1;
                stats[stream].bytes += stored_size(&value);
            }
        }
        Ok(stats)
    }
}

fn record_key(stream: Stream, seq: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[0] = RECORD;
    key[1] = stream.id();
    key[2..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn seq_of(key: &[u8]) -> u64 {
    key.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes)
}

fn meta_key(kind: u8, stream: Stream) -> [u8; 3] {
    [META, kind, stream.id()]
}

fn stored_size(value: &[u8]) -> u64 {
    (value.len() as u64).saturating_sub(8) + RECORD_OVERHEAD
}

fn map_err(path: &Path, op: &'static str, error: sled::Error) -> StoreError {
    let path = path.to_path_buf();
    match error {
        sled::Error::Io(source) if source.to_string().contains("could not acquire lock") => StoreError::Locked { path },
        sled::Error::Io(source) => StoreError::io(path, op, source),
        sled::Error::Corruption { at, .. } => {
            StoreError::Corrupt { path, detail: format!("sled reports corruption at {at:?}") }
        }
        other => StoreError::Engine { path, engine: "sled", op, detail: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::store::contract::survives_reopen;

    #[test]
    fn records_counters_and_deletions_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SledStore::DIR_NAME);
        let store = survives_reopen(|path| SledStore::open(path).unwrap(), &path);
        drop(store);
    }

    #[test]
    fn keys_sort_by_stream_then_seq() {
        assert!(record_key(Stream::Health, 255) < record_key(Stream::Health, 256));
        assert!(record_key(Stream::Health, u64::MAX) < record_key(Stream::Ack, 0));
        assert_eq!(seq_of(&record_key(Stream::Drift, 0xdead_beef)), 0xdead_beef);
    }
}
