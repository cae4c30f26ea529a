use crate::codec::{MessageKind, WireMessage};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// The ground-truth label of one sampled inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleLabel {
    /// The sampled record's `inference_id`.
    pub inference_id: u64,
    /// The sampled record's `timestamp_ms` (inference ids restart with each agent run: the
    /// pair names one record).
    pub timestamp_ms: u64,
    /// The label, as `POST /v1/feedback` gave it (e.g. the true class index).
    pub label: i64,
}

/// Ground-truth labels of sampled records on `…/labels`, QoS 1, through the outbox
/// (WIRE.md §4.6a). The fleet joins each label to the stored record with the same device,
/// `inference_id` and `timestamp_ms`; a later label for the same record replaces an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleLabels {
    /// Labels stream sequence number.
    pub seq: u64,
    /// The labels.
    pub labels: Vec<SampleLabel>,
}

impl WireMessage for SampleLabels {
    const KIND: MessageKind = MessageKind::SampleLabels;
}
