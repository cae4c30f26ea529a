//! Package transfer over MQTT: content addressed by SHA-256, resumable by offset.
//!
//! A device that can reach only the broker fetches a package as:
//! 1. the package head (addressed by the deploy command's `package_id`), then
//! 2. the blob of the variant it selects (addressed by the digest in the verified manifest).
//!
//! It asks for one chunk at a time (`ChunkRequest` on `…/chunk/req`), appends the response to
//! a partial file, hashes as it goes, and persists the offset. After a restart it re-hashes the
//! partial file and continues from its length, so at most one chunk is fetched twice.

use crate::codec::{MessageKind, WireMessage};
use crate::ids::Digest;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Largest chunk a fleet serves, in bytes. Responses fit in a 128 KiB MQTT packet.
pub const MAX_CHUNK_LEN: u32 = 64 * 1024;

/// Asks for bytes `[offset, offset + max_len)` of the object with `digest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRequest {
    /// Echoed in the response (requests may be retried).
    pub request_id: u64,
    /// Object wanted.
    pub digest: Digest,
    /// First byte wanted.
    pub offset: u64,
    /// Bytes wanted; the fleet serves at most [`MAX_CHUNK_LEN`].
    pub max_len: u32,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkBody {
    /// Bytes starting at the requested offset (empty only at end of object).
    Data(Vec<u8>),
    /// No object with that digest.
    NotFound,
    /// Offset beyond the end of the object.
    OutOfRange,
    /// Download concurrency limit reached: ask again later.
    Busy {
        /// Suggested wait in milliseconds.
        retry_after_ms: u32,
    },
}

/// A chunk (or refusal) on `…/chunk/resp`, QoS 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkResponse {
    /// The request answered.
    pub request_id: u64,
    /// Object.
    pub digest: Digest,
    /// Offset of the first byte in `body`.
    pub offset: u64,
    /// Size of the whole object (0 when unknown: `NotFound`).
    pub total_size: u64,
    /// Payload.
    pub body: ChunkBody,
}

impl WireMessage for ChunkRequest {
    const KIND: MessageKind = MessageKind::ChunkRequest;
}

impl WireMessage for ChunkResponse {
    const KIND: MessageKind = MessageKind::ChunkResponse;
}
