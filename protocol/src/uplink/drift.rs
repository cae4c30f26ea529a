use crate::codec::{MessageKind, WireMessage};
pub use crate::drift::{FeatureSummary, Feedback};
use crate::ids::ModelName;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Per-window drift summary on `…/drift`, QoS 1, through the outbox. Each part follows the
/// matching part of the package's [`crate::drift::DriftReference`]; a part the reference
/// lacks is empty (or `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSummary {
    /// Drift stream sequence number.
    pub seq: u64,
    /// Model the inputs went to.
    pub model: ModelName,
    /// Its version.
    pub version_seq: u64,
    /// Window start, ms since the Unix epoch (device clock).
    pub window_start_ms: u64,
    /// Window end (exclusive).
    pub window_end_ms: u64,
    /// Inferences summarized (batch rows).
    pub rows: u64,
    /// One per reference input feature.
    pub features: Vec<FeatureSummary>,
    /// One per reference output value.
    pub outputs: Vec<FeatureSummary>,
    /// Predicted class.
    pub prediction: Option<FeatureSummary>,
    /// Confidence (largest output value).
    pub confidence: Option<FeatureSummary>,
    /// Ground-truth feedback received in the window for this version's predictions.
    pub feedback: Feedback,
}

impl WireMessage for DriftSummary {
    const KIND: MessageKind = MessageKind::DriftSummary;
}
