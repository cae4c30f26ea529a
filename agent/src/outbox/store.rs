//! The outbox's I/O seam: a small, synchronous, crash-safe record store.
//!
//! A [`Store`] holds [`Record`]s keyed by (stream, seq) plus two persisted counters per stream:
//! the next sequence number and the number of records evicted. It makes no policy decisions
//! (which stream to give up, when): that is [`Outbox`](super::Outbox)'s job, tested against
//! [`MemoryStore`](super::MemoryStore).
//!
//! Durability contract, which every implementation keeps:
//! - [`Store::append`] is atomic (all records of the batch and the new next-seq counters, or
//!   none) and durable when it returns `Ok`: a power cut afterwards loses none of it.
//! - [`Store::delete`] and [`Store::delete_oldest`] are atomic (with the eviction counter) but
//!   may become durable only with the next successful `append` (or a background flush, or a
//!   clean close). A power cut can undo a deletion, which brings back a record that was
//!   already acknowledged (resent, deduplicated by the fleet) or evicted (evicted again); it
//!   can never lose a record that was not deleted.

use super::stream::{PerStream, Stream};
use std::io;
use std::path::PathBuf;

/// Bytes a record costs beyond its payload in the outbox's accounting: its key (stream id and
/// seq, 9 bytes) and its creation time (8 bytes).
pub const RECORD_OVERHEAD: u64 = 17;

/// One stored report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The stream it belongs to.
    pub stream: Stream,
    /// Its sequence number within the stream (from 1, never reused).
    pub seq: u64,
    /// When it was pushed, in milliseconds (the caller's clock), for the age limit.
    pub created_ms: u64,
    /// The encoded message, which embeds `seq`.
    pub payload: Vec<u8>,
}

impl Record {
    /// The bytes this record counts for against the outbox's cap: payload plus
    /// [`RECORD_OVERHEAD`]. The engines' on-disk size is larger (pages, free space).
    pub fn size(&self) -> u64 {
        self.payload.len() as u64 + RECORD_OVERHEAD
    }
}

/// What a store holds for one stream, and its persisted counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Records present.
    pub records: u64,
    /// Their total [`Record::size`].
    pub bytes: u64,
    /// The seq the next record of this stream gets (1 for a stream never written).
    pub next_seq: u64,
    /// Records of this stream evicted (by the byte cap or the age limit) since the store was
    /// created.
    pub evicted: u64,
}

impl Default for StreamStats {
    fn default() -> Self {
        StreamStats { records: 0, bytes: 0, next_seq: 1, evicted: 0 }
    }
}

/// What a deletion removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Removed {
    /// Records deleted.
    pub records: u64,
    /// Their total [`Record::size`].
    pub bytes: u64,
}

/// Synchronous storage for the outbox. See the module documentation for the durability
/// contract. Implementations serialize their own writes; callers may share one across threads.
pub trait Store: Send + Sync + 'static {
    /// Appends `records` atomically and durably. For every stream in the batch, the persisted
    /// next seq becomes at least the highest seq appended plus one, in the same commit. A record
    /// with an existing (stream, seq) replaces it (the outbox never does this).
    fn append(&self, records: &[Record]) -> Result<(), StoreError>;

    /// Up to `limit` records of `stream` with a seq above `after_seq`, in seq order.
    fn range(&self, stream: Stream, after_seq: u64, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// Deletes the records of `stream` with these seqs; seqs that are not present are ignored.
    fn delete(&self, stream: Stream, seqs: &[u64]) -> Result<Removed, StoreError>;

    /// Deletes the `count` oldest (lowest seq) records of `stream` and adds the number deleted
    /// to its eviction counter, atomically.
    fn delete_oldest(&self, stream: Stream, count: u64) -> Result<Removed, StoreError>;

    /// Records, bytes and counters per stream. May scan the whole store: the outbox calls it
    /// once, when it opens, and keeps its own accounting afterwards.
    fn stats(&self) -> Result<PerStream<StreamStats>, StoreError>;
}

/// Why a store operation failed: what happened, to which file, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The filesystem is full.
    #[error(
        "outbox store {}: disk full while {op}; free space on that filesystem or lower the outbox \
         max_bytes (nothing acknowledged was lost)",
        path.display()
    )]
    DiskFull {
        /// The store's file or directory.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// Any other I/O failure.
    #[error("outbox store {}: I/O error while {op}: {source}; check the disk, its mount and permissions", path.display())]
    Io {
        /// The store's file or directory.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// Another process holds the store open.
    #[error(
        "outbox store {}: already open by another process; stop the other edgefleet-agent using this data dir",
        path.display()
    )]
    Locked {
        /// The store's file or directory.
        path: PathBuf,
    },
    /// The stored data is not what the outbox wrote.
    #[error(
        "outbox store {} is corrupt ({detail}); move it aside and restart to begin an empty outbox \
         (the records in it will not be sent)",
        path.display()
    )]
    Corrupt {
        /// The store's file or directory.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Any other failure reported by the storage engine.
    #[error("outbox store {}: {engine} failed while {op}: {detail}", path.display())]
    Engine {
        /// The store's file or directory.
        path: PathBuf,
        /// `redb`, `sled` or `memory`.
        engine: &'static str,
        /// What the store was doing.
        op: &'static str,
        /// The engine's message.
        detail: String,
    },
}

impl StoreError {
    /// Classifies an I/O error: disk full (`ENOSPC`, quota) or anything else.
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreError::DiskFull { path, op, source },
            _ => StoreError::Io { path, op, source },
        }
    }

    /// Whether retrying later may succeed (disk full, I/O) rather than never (corruption).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. } | StoreError::Io { .. })
    }
}

/// Encodes a record's stored value: `created_ms` (u64 little-endian) then the payload. Both
/// engines store this after a key of stream id and big-endian seq.
pub(super) fn encode_value(created_ms: u64, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + payload.len());
    value.extend_from_slice(&created_ms.to_le_bytes());
    value.extend_from_slice(payload);
    value
}

/// Decodes [`encode_value`]'s bytes into a record, or says why they are not one.
pub(super) fn decode_value(stream: Stream, seq: u64, value: &[u8]) -> Result<Record, String> {
    let Some((created, payload)) = value.split_first_chunk::<8>() else {
        return Err(format!("{stream} record {seq} is {} bytes, shorter than its 8-byte header", value.len()));
    };
    Ok(Record { stream, seq, created_ms: u64::from_le_bytes(*created), payload: payload.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_values_are_corrupt() {
        let value = encode_value(0x0102_0304_0506_0708, b"hello");
        assert_eq!(&value[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        let record = decode_value(Stream::Ack, 9, &value).unwrap();
        assert_eq!(
            record,
            Record { stream: Stream::Ack, seq: 9, created_ms: 0x0102_0304_0506_0708, payload: b"hello".to_vec() }
        );
        assert_eq!(record.size(), 5 + RECORD_OVERHEAD);
        assert!(decode_value(Stream::Ack, 9, &[1, 2, 3]).unwrap_err().contains("shorter"));
    }

    #[test]
    fn disk_full_is_recognised_and_says_what_to_do() {
        let e = StoreError::io("/data/outbox.redb", "appending", io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(e, StoreError::DiskFull { .. }));
        assert!(e.is_transient());
        let text = e.to_string();
        assert!(
            text.contains("/data/outbox.redb") && text.contains("appending") && text.contains("free space"),
            "{text}"
        );
        let e = StoreError::io("/x", "reading", io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(e, StoreError::Io { .. }));
    }
}

/// The behaviour every durable [`Store`] must show, shared by the engines' tests.
#[cfg(test)]
pub(crate) mod contract {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::Path;

    /// A record with a recognizable timestamp.
    pub(crate) fn record(stream: Stream, seq: u64, payload: &[u8]) -> Record {
        Record { stream, seq, created_ms: 1000 + seq, payload: payload.to_vec() }
    }

    /// Records, seq counters, eviction counters and deletions survive closing and reopening
    /// the store at `path`; returns the reopened store for engine-specific checks.
    pub(crate) fn survives_reopen<S: Store>(open: impl Fn(&Path) -> S, path: &Path) -> S {
        {
            let store = open(path);
            store.append(&[record(Stream::Health, 1, b"a"), record(Stream::Health, 2, b"bb")]).unwrap();
            store.append(&[record(Stream::Samples, 1, b"ccc"), record(Stream::Samples, 2, b"d")]).unwrap();
            assert_eq!(
                store.delete(Stream::Health, &[1, 7]).unwrap(),
                Removed { records: 1, bytes: 1 + RECORD_OVERHEAD }
            );
            assert_eq!(store.delete_oldest(Stream::Samples, 1).unwrap().records, 1);
        }
        let store = open(path);
        let stats = store.stats().unwrap();
        assert_eq!(
            stats[Stream::Health],
            StreamStats { records: 1, bytes: 2 + RECORD_OVERHEAD, next_seq: 3, evicted: 0 }
        );
        assert_eq!(
            stats[Stream::Samples],
            StreamStats { records: 1, bytes: 1 + RECORD_OVERHEAD, next_seq: 3, evicted: 1 }
        );
        assert_eq!(stats[Stream::Ack], StreamStats::default());
        assert_eq!(store.range(Stream::Health, 0, 10).unwrap(), vec![record(Stream::Health, 2, b"bb")]);
        assert_eq!(store.range(Stream::Samples, 0, 10).unwrap(), vec![record(Stream::Samples, 2, b"d")]);
        store
    }
}
