use crate::codec::{MessageKind, WireMessage};
use crate::ids::ModelName;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Summary of one numeric feature (or model output) over a window. Summaries of the same
/// feature merge by adding `bin_counts` and `count`, combining `mean`/`m2` (Chan et al.), and
/// taking min/max.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    /// Counts per bin of the package's drift reference for this feature:
    /// `[underflow, bin 0, …, bin n-1, overflow]`, so `len = edges + 1`.
    pub bin_counts: Vec<u64>,
    /// Values seen (NaN excluded).
    pub count: u64,
    /// Running mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean (variance = m2 / count).
    pub m2: f64,
    /// Smallest value (+inf when empty).
    pub min: f64,
    /// Largest value (-inf when empty).
    pub max: f64,
}

/// Per-window drift summary on `…/drift`, QoS 1, through the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSummary {
    /// Drift stream sequence number.
    pub seq: u64,
    /// Model the inputs went to.
    pub model: ModelName,
    /// Its version.
    pub version_seq: u64,
    /// Window start, ms since the Unix epoch.
    pub window_start_ms: u64,
    /// Window end (exclusive).
    pub window_end_ms: u64,
    /// One per input feature, in the reference profile's order.
    pub features: Vec<FeatureSummary>,
    /// One per model output value (scores), in output order.
    pub outputs: Vec<FeatureSummary>,
}

impl WireMessage for DriftSummary {
    const KIND: MessageKind = MessageKind::DriftSummary;
}
