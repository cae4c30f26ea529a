//! Firmware ↔ agent serial framing: postcard + CRC-32 + COBS. Needs neither `alloc` nor `std`.
//!
//! ```text
//! raw    = version (u8 = 1) ‖ postcard(SensorMessage) ‖ crc32(version ‖ body) as u32 LE
//! frame  = COBS(raw) ‖ 0x00
//! ```
//! CRC-32 is CRC-32/ISO-HDLC (the zlib/Ethernet CRC: poly 0x04C11DB7 reflected, init and
//! xorout 0xFFFFFFFF). COBS guarantees the only zero byte on the line is the delimiter, so a
//! receiver that starts mid-stream or sees line noise loses at most the frame in progress.
//!
//! [`FrameDecoder`] takes bytes as they arrive (`push` one or `feed` a slice), yields one
//! result per delimiter, never holds more than `N` bytes, and skips empty frames (a run of
//! zeros is a valid way to resynchronize).

use crate::version::SemVer;
use core::fmt;
use crc::{CRC_32_ISO_HDLC, Crc};
use serde::{Deserialize, Serialize};

/// Serial framing version written in every frame.
pub const SERIAL_VERSION: u8 = 1;
/// Most sample channels in one [`SensorMessage::Samples`].
pub const MAX_CHANNELS: usize = 16;
/// Longest raw frame (version + body + CRC) before COBS.
pub const MAX_RAW_FRAME_LEN: usize = 128;
/// Longest encoded frame on the line, delimiter included.
pub const MAX_ENCODED_FRAME_LEN: usize = MAX_RAW_FRAME_LEN + MAX_RAW_FRAME_LEN / 254 + 2;

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);
const CRC_LEN: usize = 4;

/// What sensor firmware sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SensorMessage {
    /// Sent at boot and every few seconds until the first samples flow.
    Hello {
        /// Firmware version.
        firmware_version: SemVer,
        /// Sensor identity (e.g. from the MCU's unique id).
        sensor_id: u32,
        /// Channels per sample.
        channels: u8,
        /// Samples per second.
        sample_rate_hz: u32,
    },
    /// One multi-channel sample (or pre-computed feature vector).
    Samples {
        /// Increments per message; gaps tell the agent frames were lost.
        seq: u32,
        /// Sensor clock, microseconds since its boot.
        timestamp_us: u64,
        /// One value per channel.
        values: heapless::Vec<f32, MAX_CHANNELS>,
    },
    /// The sensor detected a fault (code is firmware-specific, 0 = cleared).
    Fault {
        /// Fault code.
        code: u16,
    },
}

/// A frame could not be built or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Message too large for [`MAX_RAW_FRAME_LEN`], or the output buffer too small.
    TooLarge,
    /// More than the decoder's buffer arrived before a delimiter; the frame was dropped.
    Overflow,
    /// The bytes between two delimiters are not valid COBS.
    Cobs,
    /// Shorter than version + CRC.
    Short,
    /// CRC mismatch (line noise, or a frame that began before we started listening).
    Crc {
        /// CRC carried by the frame.
        carried: u32,
        /// CRC computed over its bytes.
        computed: u32,
    },
    /// Framing version this build does not speak.
    UnsupportedVersion(u8),
    /// CRC matched but the body is not a valid message.
    Malformed,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge => write!(f, "frame larger than {MAX_RAW_FRAME_LEN} bytes or output buffer too small"),
            FrameError::Overflow => f.write_str("frame overflowed the decoder buffer before a delimiter; dropped"),
            FrameError::Cobs => f.write_str("invalid COBS encoding"),
            FrameError::Short => f.write_str("frame shorter than version + CRC"),
            FrameError::Crc { carried, computed } => {
                write!(f, "CRC mismatch: frame says {carried:08x}, bytes give {computed:08x}")
            }
            FrameError::UnsupportedVersion(v) => {
                write!(f, "serial framing version {v} not supported (expected {SERIAL_VERSION})")
            }
            FrameError::Malformed => f.write_str("CRC ok but body is not a valid sensor message"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}

/// Encodes `message` as one frame (delimiter included) into `out`; returns its length.
/// `out` of [`MAX_ENCODED_FRAME_LEN`] bytes always suffices.
pub fn encode_frame(message: &SensorMessage, out: &mut [u8]) -> Result<usize, FrameError> {
    let mut raw = [0u8; MAX_RAW_FRAME_LEN];
    raw[0] = SERIAL_VERSION;
    let body_len =
        postcard::to_slice(message, &mut raw[1..MAX_RAW_FRAME_LEN - CRC_LEN]).map_err(|_| FrameError::TooLarge)?.len();
    let crc_at = 1 + body_len;
    let crc = CRC32.checksum(&raw[..crc_at]);
    raw[crc_at..crc_at + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    let raw = &raw[..crc_at + CRC_LEN];
    let encoded = cobs::try_encode(raw, out).map_err(|_| FrameError::TooLarge)?;
    let delimiter = out.get_mut(encoded).ok_or(FrameError::TooLarge)?;
    *delimiter = 0;
    Ok(encoded + 1)
}

/// Decodes the bytes of one frame *without* its delimiter, in place.
pub fn decode_frame(encoded: &mut [u8]) -> Result<SensorMessage, FrameError> {
    let len = cobs::decode_in_place(encoded).map_err(|_| FrameError::Cobs)?;
    let raw = encoded.get(..len).ok_or(FrameError::Cobs)?;
    if raw.len() < 1 + CRC_LEN {
        return Err(FrameError::Short);
    }
    let (covered, crc_bytes) = raw.split_at(raw.len() - CRC_LEN);
    let carried = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    let computed = CRC32.checksum(covered);
    if carried != computed {
        return Err(FrameError::Crc { carried, computed });
    }
    if covered[0] != SERIAL_VERSION {
        return Err(FrameError::UnsupportedVersion(covered[0]));
    }
    match postcard::take_from_bytes::<SensorMessage>(&covered[1..]) {
        Ok((message, [])) => Ok(message),
        _ => Err(FrameError::Malformed),
    }
}

/// Streaming frame decoder with a fixed `N`-byte buffer.
#[derive(Debug)]
pub struct FrameDecoder<const N: usize = MAX_ENCODED_FRAME_LEN> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> Default for FrameDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameDecoder<N> {
    /// An empty decoder.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0, overflowed: false }
    }

    /// Takes one byte; returns a result when it completes a (non-empty) frame.
    pub fn push(&mut self, byte: u8) -> Option<Result<SensorMessage, FrameError>> {
        if byte == 0 {
            let len = core::mem::take(&mut self.len);
            if core::mem::take(&mut self.overflowed) {
                return Some(Err(FrameError::Overflow));
            }
            if len == 0 {
                return None;
            }
            return Some(decode_frame(&mut self.buf[..len]));
        }
        if self.overflowed {
            return None;
        }
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
            }
            None => self.overflowed = true,
        }
        None
    }

    /// Takes a slice of received bytes; yields one result per completed frame.
    pub fn feed<'a>(&'a mut self, bytes: &'a [u8]) -> impl Iterator<Item = Result<SensorMessage, FrameError>> + 'a {
        bytes.iter().filter_map(move |byte| self.push(*byte))
    }

    /// Bytes held for the frame in progress.
    pub fn pending(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(seq: u32, values: &[f32]) -> SensorMessage {
        SensorMessage::Samples { seq, timestamp_us: 1_000_000, values: heapless::Vec::from_slice(values).unwrap() }
    }

    #[test]
    fn golden_frame() {
        let mut out = [0u8; MAX_ENCODED_FRAME_LEN];
        let n = encode_frame(&SensorMessage::Fault { code: 3 }, &mut out).unwrap();
        // raw: 01 (version) 02 (variant Fault) 03 (code varint) + crc32(01 02 03) LE
        let crc = CRC32.checksum(&[1, 2, 3]).to_le_bytes();
        let raw = [1, 2, 3, crc[0], crc[1], crc[2], crc[3]];
        assert!(!raw.contains(&0), "golden CRC happens to contain no zero");
        // COBS of a 7-byte block with no zero: 08 then the bytes; then the delimiter.
        let mut expected = [0u8; 9];
        expected[0] = 0x08;
        expected[1..8].copy_from_slice(&raw);
        assert_eq!(&out[..n], &expected[..], "{:02x?}", &out[..n]);
    }

    #[test]
    fn round_trip_and_resync_after_noise() {
        let mut line = [0u8; 512];
        let mut at = 0;
        // Noise first (a partial frame from before we listened), then two frames.
        line[..5].copy_from_slice(&[0x13, 0x37, 0xff, 0x01, 0x00]);
        at += 5;
        at += encode_frame(&samples(1, &[1.0, -2.5]), &mut line[at..]).unwrap();
        at += encode_frame(&samples(2, &[3.0; 16]), &mut line[at..]).unwrap();
        let mut decoder = FrameDecoder::<MAX_ENCODED_FRAME_LEN>::new();
        let mut ok = 0;
        let mut errors = 0;
        for result in decoder.feed(&line[..at]) {
            match result {
                Ok(SensorMessage::Samples { seq, .. }) => {
                    ok += 1;
                    assert_eq!(seq, ok);
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => errors += 1,
            }
        }
        assert_eq!((ok, errors), (2, 1));
    }

    #[test]
    fn overflow_is_bounded_and_reported_once() {
        let mut decoder = FrameDecoder::<16>::new();
        let results: heapless::Vec<_, 4> = decoder.feed(&[0x55; 100]).collect();
        assert!(results.is_empty());
        assert_eq!(decoder.pending(), 16);
        assert_eq!(decoder.push(0), Some(Err(FrameError::Overflow)));
        let mut out = [0u8; MAX_ENCODED_FRAME_LEN];
        let n = encode_frame(&SensorMessage::Fault { code: 0 }, &mut out).unwrap();
        let decoded: heapless::Vec<_, 4> = decoder.feed(&out[..n]).collect();
        assert_eq!(decoded.as_slice(), &[Ok(SensorMessage::Fault { code: 0 })]);
    }

    #[test]
    fn corrupted_byte_fails_crc() {
        let mut out = [0u8; MAX_ENCODED_FRAME_LEN];
        let n = encode_frame(&samples(9, &[0.5, 0.25]), &mut out).unwrap();
        out[4] ^= 0x40;
        if out[4] == 0 {
            out[4] = 0x41;
        }
        let mut decoder = FrameDecoder::<MAX_ENCODED_FRAME_LEN>::new();
        let results: heapless::Vec<_, 4> = decoder.feed(&out[..n]).collect();
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
    }
}
