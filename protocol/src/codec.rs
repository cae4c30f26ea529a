//! The payload envelope shared by every MQTT message.
//!
//! ```text
//! byte 0      protocol version (PROTOCOL_VERSION = 1)
//! byte 1      message kind (MessageKind)
//! bytes 2..   postcard encoding of the message; nothing may follow it
//! ```
//! Receivers check, in order: length ≤ [`MAX_PAYLOAD_LEN`], version, kind, body, no trailing
//! bytes. Each failure is its own [`WireError`]; nothing here panics on any input.

use alloc::vec::Vec;
use core::fmt;
use serde::{Serialize, de::DeserializeOwned};

/// The payload envelope version this crate writes and reads.
pub const PROTOCOL_VERSION: u8 = 1;

/// Largest payload accepted (envelope included). Chunk responses carry at most
/// [`crate::transfer::MAX_CHUNK_LEN`] bytes of data, well below this.
pub const MAX_PAYLOAD_LEN: usize = 1024 * 1024;

/// Envelope header length: version + kind.
pub const HEADER_LEN: usize = 2;

/// What a payload holds. The byte values are part of the wire format and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum MessageKind {
    /// [`crate::uplink::Birth`]
    Birth = 0x01,
    /// [`crate::uplink::Presence`]
    Presence = 0x02,
    /// [`crate::uplink::Health`]
    Health = 0x03,
    /// [`crate::uplink::DeploymentStatus`]
    DeploymentStatus = 0x04,
    /// [`crate::uplink::DriftSummary`]
    DriftSummary = 0x05,
    /// [`crate::uplink::SampleBatch`]
    SampleBatch = 0x06,
    /// [`crate::uplink::CommandAck`]
    CommandAck = 0x07,
    /// [`crate::uplink::SensorStatus`]
    SensorStatus = 0x08,
    /// [`crate::uplink::SampleLabels`]
    SampleLabels = 0x09,
    /// [`crate::command::Command`]
    Command = 0x10,
    /// [`crate::transfer::ChunkRequest`]
    ChunkRequest = 0x20,
    /// [`crate::transfer::ChunkResponse`]
    ChunkResponse = 0x21,
}

impl MessageKind {
    /// Every kind, in byte order.
    pub const ALL: [MessageKind; 12] = [
        MessageKind::Birth,
        MessageKind::Presence,
        MessageKind::Health,
        MessageKind::DeploymentStatus,
        MessageKind::DriftSummary,
        MessageKind::SampleBatch,
        MessageKind::CommandAck,
        MessageKind::SensorStatus,
        MessageKind::SampleLabels,
        MessageKind::Command,
        MessageKind::ChunkRequest,
        MessageKind::ChunkResponse,
    ];

    /// The kind with wire byte `byte`, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| *kind as u8 == byte)
    }
}

/// A message that travels in the envelope.
pub trait WireMessage: Serialize + DeserializeOwned {
    /// The kind byte written before its body.
    const KIND: MessageKind;
}

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The payload has fewer bytes than the envelope header.
    Truncated,
    /// Written by a protocol version this build does not speak.
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
        /// Version this build speaks.
        supported: u8,
    },
    /// Kind byte not assigned to any message.
    UnknownKind(u8),
    /// A valid message of another kind (for example a command published on a status topic).
    WrongKind {
        /// Kind the caller asked for.
        expected: MessageKind,
        /// Kind the payload holds.
        found: MessageKind,
    },
    /// Larger than [`MAX_PAYLOAD_LEN`].
    Oversized {
        /// Payload length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The body ended before the message was complete.
    TruncatedBody,
    /// The body is not a valid encoding of the message.
    Malformed(postcard::Error),
    /// Bytes left over after a complete message.
    TrailingBytes(usize),
    /// The message could not be serialized (only for values that break an invariant).
    Encode(postcard::Error),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "payload shorter than the {HEADER_LEN}-byte envelope header"),
            WireError::UnsupportedVersion { found, supported } => write!(
                f,
                "payload is protocol version {found}, this build speaks version {supported}: upgrade the older side"
            ),
            WireError::UnknownKind(kind) => write!(f, "unknown message kind byte 0x{kind:02x}"),
            WireError::WrongKind { expected, found } => {
                write!(f, "expected a {expected:?} message, got a {found:?} message")
            }
            WireError::Oversized { len, max } => write!(f, "payload of {len} bytes exceeds the {max}-byte limit"),
            WireError::TruncatedBody => f.write_str("message body ends early (truncated payload)"),
            WireError::Malformed(e) => write!(f, "malformed message body: {e}"),
            WireError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the message body"),
            WireError::Encode(e) => write!(f, "cannot encode message: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WireError {}

/// Encodes `message` in the envelope.
pub fn encode<M: WireMessage>(message: &M) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(64);
    out.push(PROTOCOL_VERSION);
    out.push(M::KIND as u8);
    let out = postcard::to_extend(message, out).map_err(WireError::Encode)?;
    if out.len() > MAX_PAYLOAD_LEN {
        return Err(WireError::Oversized { len: out.len(), max: MAX_PAYLOAD_LEN });
    }
    Ok(out)
}

/// Checks the envelope header and returns the kind of message inside, without decoding it.
pub fn peek_kind(payload: &[u8]) -> Result<MessageKind, WireError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(WireError::Oversized { len: payload.len(), max: MAX_PAYLOAD_LEN });
    }
    let [version, kind, ..] = *payload else {
        return Err(WireError::Truncated);
    };
    if version != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion { found: version, supported: PROTOCOL_VERSION });
    }
    MessageKind::from_byte(kind).ok_or(WireError::UnknownKind(kind))
}

/// Decodes a payload that must hold an `M`.
pub fn decode<M: WireMessage>(payload: &[u8]) -> Result<M, WireError> {
    let found = peek_kind(payload)?;
    if found != M::KIND {
        return Err(WireError::WrongKind { expected: M::KIND, found });
    }
    let body = &payload[HEADER_LEN..];
    let (message, rest) = postcard::take_from_bytes::<M>(body).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => WireError::TruncatedBody,
        other => WireError::Malformed(other),
    })?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(message)
}
