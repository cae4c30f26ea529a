use crate::codec::{MessageKind, WireMessage};
use crate::ids::ModelName;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Inference counters for one served model version. Counters are cumulative since the
/// agent started (`boot_id`), so a lost heartbeat loses no information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelHealth {
    /// Model name.
    pub name: ModelName,
    /// Version sequence being served.
    pub version_seq: u64,
    /// Inferences run.
    pub inference_count: u64,
    /// Inferences that returned an error.
    pub error_count: u64,
    /// Median latency over the last window, in microseconds.
    pub latency_p50_us: u32,
    /// 99th-percentile latency over the last window, in microseconds.
    pub latency_p99_us: u32,
}

/// Periodic heartbeat on `…/health`, QoS 1, through the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Health stream sequence number.
    pub seq: u64,
    /// Agent run this belongs to.
    pub boot_id: u64,
    /// Device wall clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Milliseconds since the agent started.
    pub uptime_ms: u64,
    /// Per served model.
    pub models: Vec<ModelHealth>,
    /// Records waiting in the outbox.
    pub outbox_depth: u64,
    /// Bytes waiting in the outbox.
    pub outbox_bytes: u64,
    /// Records evicted from the outbox since the agent started (cumulative).
    pub outbox_evictions: u64,
    /// Agent resident set size in bytes.
    pub rss_bytes: u64,
    /// Agent CPU use over the last window, percent of one core (may exceed 100).
    pub cpu_percent: f32,
    /// Free bytes on the data partition.
    pub free_disk_bytes: u64,
}

impl WireMessage for Health {
    const KIND: MessageKind = MessageKind::Health;
}
