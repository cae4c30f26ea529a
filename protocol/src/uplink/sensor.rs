use crate::codec::{MessageKind, WireMessage};
use crate::version::SemVer;
use serde::{Deserialize, Serialize};

/// What the sensor said about itself in its last `Hello` frame (WIRE.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorInfo {
    /// Sensor identity (e.g. from the MCU's unique id).
    pub sensor_id: u32,
    /// Sensor firmware version.
    pub firmware_version: SemVer,
    /// Values per `Samples` frame.
    pub channels: u8,
    /// `Samples` frames per second the sensor sends.
    pub sample_rate_hz: u32,
}

/// Counters of the serial link to the sensor, cumulative since `boot_id` started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorLinkCounters {
    /// Valid frames decoded (every kind).
    pub frames: u64,
    /// `Samples` frames decoded.
    pub samples: u64,
    /// Frames whose CRC did not match.
    pub crc_errors: u64,
    /// Times the decoder discarded bytes and resynchronized on the next delimiter (every bad
    /// frame: CRC, COBS, short, overflow, unsupported version, malformed).
    pub resyncs: u64,
    /// `Samples` sequence numbers that never arrived (the sum of the gaps).
    pub sequence_gaps: u64,
    /// Decoded samples dropped, oldest first, because inference fell behind.
    pub queue_drops: u64,
    /// Times the port was (re)opened after the first open.
    pub reconnects: u64,
}

/// The device's sensor link on `…/sensor`, QoS 1, retained: right after every birth, then
/// with every heartbeat and whenever the sensor falls silent or comes back. A latest-value
/// report (its counters are cumulative), so it does not travel through the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorStatus {
    /// Increments per report within one `boot_id`.
    pub seq: u64,
    /// Agent run this belongs to.
    pub boot_id: u64,
    /// Device wall clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The sensor's last hello, once one arrived.
    pub sensor: Option<SensorInfo>,
    /// Whether the serial port is open now.
    pub port_open: bool,
    /// Milliseconds since the last valid frame (`None`: none yet).
    pub since_last_frame_ms: Option<u64>,
    /// The configured silence limit in milliseconds.
    pub silence_limit_ms: u64,
    /// No valid frame for longer than the limit (or never, that long after start): the device
    /// is unhealthy for this reason.
    pub silent: bool,
    /// Link counters.
    pub counters: SensorLinkCounters,
}

impl WireMessage for SensorStatus {
    const KIND: MessageKind = MessageKind::SensorStatus;
}
