//! `GET /v1/health`: device health states with their reasons, model drift included.

use edgefleet_protocol::DeviceId;
use edgefleet_protocol::hardware::HardwareClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::drift::DriftState;

/// A device's health state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Nothing wrong.
    Healthy,
    /// An error rate above 0.5%, outbox evictions, low disk, or a recent drifting window.
    Degraded,
    /// An error rate above 5%.
    Failing,
    /// A persistent model-drift alert.
    Drifting,
    /// Not connected.
    Offline,
    /// No health report yet.
    Unknown,
}

impl HealthState {
    /// The JSON form (`healthy`, `degraded`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Failing => "failing",
            HealthState::Drifting => "drifting",
            HealthState::Offline => "offline",
            HealthState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One served model's figures from the latest health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelFigures {
    /// Model name.
    pub model: String,
    /// Version.
    pub version_seq: u64,
    /// Inferences since the agent started.
    pub inferences: u64,
    /// Failed inferences since the agent started.
    pub errors: u64,
    /// Error rate over the last report interval (since start when the counters do not allow).
    pub error_rate_recent: f64,
    /// Median latency of the last report window, µs.
    pub p50_us: u32,
    /// p99 latency of the last report window, µs.
    pub p99_us: u32,
}

/// A device's model-drift state for one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelDriftState {
    /// The state.
    pub state: DriftState,
    /// Why.
    pub reasons: Vec<String>,
}

/// Health of one device with a state and the reasons for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// Device id.
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// Hardware class.
    #[schema(value_type = Option<String>)]
    pub hardware: Option<HardwareClass>,
    /// The state.
    pub state: HealthState,
    /// Why, in words.
    pub reasons: Vec<String>,
    /// Per served model.
    pub models: Vec<ModelFigures>,
    /// Resident memory at the latest report.
    pub rss_bytes: Option<u64>,
    /// CPU use at the latest report.
    pub cpu_percent: Option<f32>,
    /// Outbox depth at the latest report.
    pub outbox_depth: Option<u64>,
    /// Last message, fleet clock.
    pub last_seen_ms: u64,
    /// Model drift per model name.
    #[serde(default)]
    pub drift: BTreeMap<String, ModelDriftState>,
    /// The serial sensor link, for devices that read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<SensorLink>,
}

/// A device's serial sensor link from its latest `SensorStatus` (WIRE.md §4.7a): counters are
/// cumulative since the agent started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SensorLink {
    /// Sensor id from its hello (hex), when one arrived.
    pub sensor_id: Option<String>,
    /// Sensor firmware version from its hello.
    pub firmware_version: Option<String>,
    /// Values per frame, from its hello.
    pub channels: Option<u8>,
    /// Whether the agent has the serial port open.
    pub port_open: bool,
    /// No valid frame for longer than the limit.
    pub silent: bool,
    /// Milliseconds since the last valid frame when the device reported (`None`: none yet).
    pub since_last_frame_ms: Option<u64>,
    /// The device's silence limit, ms.
    pub silence_limit_ms: u64,
    /// Valid frames.
    pub frames: u64,
    /// Frames that failed their CRC.
    pub crc_errors: u64,
    /// Bad frames the decoder dropped before resynchronizing.
    pub resyncs: u64,
    /// Sample frames that never arrived.
    pub sequence_gaps: u64,
    /// Samples dropped because inference fell behind.
    pub queue_drops: u64,
    /// Port re-opens.
    pub reconnects: u64,
    /// Device clock of the report, ms since the epoch.
    pub reported_ms: u64,
}
