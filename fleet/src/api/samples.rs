//! `GET /v1/samples`: sampled raw records, for retraining datasets.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One sampled inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SampleRecord {
    /// Device id.
    pub device: String,
    /// Model name.
    pub model: String,
    /// Version that ran it.
    pub version_seq: u64,
    /// Inference id on the device.
    pub inference_id: u64,
    /// Device clock, ms since the epoch.
    pub timestamp_ms: u64,
    /// Input values (null: not a number).
    pub inputs: Vec<Option<f32>>,
    /// Output values (null: not a number).
    pub outputs: Vec<Option<f32>>,
    /// The ground-truth label reported for this inference on the device (`POST
    /// /v1/feedback`), when one arrived (with the sample or after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<i64>,
}
