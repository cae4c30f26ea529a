use crate::codec::{MessageKind, WireMessage};
use crate::ids::ModelName;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// One sampled inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The inference's id (as returned by the local API, used for feedback).
    pub inference_id: u64,
    /// When it ran, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Flattened input values.
    pub inputs: Vec<f32>,
    /// Flattened output values.
    pub outputs: Vec<f32>,
}

/// A batch of sampled records on `…/samples`, QoS 1, through the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleBatch {
    /// Samples stream sequence number.
    pub seq: u64,
    /// Model that produced the outputs.
    pub model: ModelName,
    /// Its version.
    pub version_seq: u64,
    /// The records.
    pub records: Vec<SampleRecord>,
}

impl WireMessage for SampleBatch {
    const KIND: MessageKind = MessageKind::SampleBatch;
}
