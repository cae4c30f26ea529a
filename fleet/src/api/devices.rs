//! `/v1/devices` and `/v1/sampling`: the inventory, labels and sampling policies.

use edgefleet_protocol::DeviceId;
use edgefleet_protocol::hardware::HardwareClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub use crate::server::registry::DeviceRecord;

/// A device in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceSummary {
    /// Device id.
    #[schema(value_type = String)]
    pub id: DeviceId,
    /// Hardware class (`Cpu`, `Gpu`, `Accelerator`); null until its birth arrived.
    #[schema(value_type = Option<String>)]
    pub hardware: Option<HardwareClass>,
    /// Connected, as far as the broker told.
    pub online: bool,
    /// Agent version.
    pub agent_version: String,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
    /// Models served, as `name@version_seq`.
    pub models: Vec<String>,
    /// Last message, fleet clock (ms since the epoch).
    pub last_seen_ms: u64,
}

/// `GET /v1/devices/{id}`: everything the fleet knows about one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct DeviceDetail(pub DeviceRecord);

/// `POST /v1/devices/{id}/labels` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabelRequest {
    /// Labels to set.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Labels to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A device's labels after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabelResponse {
    /// Device id.
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// Its labels now.
    pub labels: BTreeMap<String, String>,
}

/// `POST /v1/sampling` body: a SetSamplingPolicy for the devices a selector picks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplingRequest {
    /// Selector (`hw=gpu,site=plant-3`; empty: every device).
    #[serde(default)]
    pub select: String,
    /// Only this model (default: every model on the device).
    #[serde(default)]
    pub model: Option<String>,
    /// Fraction of inferences sampled as raw records, in [0, 1].
    pub sample_rate: f32,
    /// Byte budget for sampled records per hour (default 1 MiB).
    #[serde(default = "default_sample_bytes")]
    pub max_sample_bytes_per_hour: u64,
    /// Drift summary window in ms (default 60 s).
    #[serde(default = "default_drift_window_ms")]
    pub drift_window_ms: u64,
}

fn default_sample_bytes() -> u64 {
    1 << 20
}

fn default_drift_window_ms() -> u64 {
    60_000
}

/// What a sampling policy was sent to (also the audit entry's detail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SamplingResponse {
    /// The selector, normalized.
    pub select: String,
    /// Devices the policy was sent to.
    pub devices: usize,
    /// The model it applies to (null: every model).
    pub model: Option<String>,
    /// Sampled fraction.
    pub sample_rate: f32,
    /// Byte budget per hour.
    pub max_sample_bytes_per_hour: u64,
    /// Drift summary window, ms.
    pub drift_window_ms: u64,
}
