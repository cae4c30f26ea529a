//! Device → fleet messages.
//!
//! Every message a device must not lose travels through its durable outbox and carries a
//! per-stream sequence number `seq` (streams: health, deployment, drift, samples, labels, ack; birth
//! and presence have their own). Sequence numbers start at 1, increase by one per message of
//! that stream and survive agent restarts, so the fleet drops any `(device, stream, seq)` it
//! has already processed.

mod ack;
mod birth;
mod deployment;
mod drift;
mod health;
mod labels;
mod presence;
mod samples;
mod sensor;

pub use ack::{AckResult, CommandAck};
pub use birth::{ActiveModel, Birth};
pub use deployment::{DeploymentState, DeploymentStatus, FailureReason};
pub use drift::{DriftSummary, FeatureSummary, Feedback};
pub use health::{Health, ModelHealth};
pub use labels::{SampleLabel, SampleLabels};
pub use presence::{OfflineReason, Presence, PresenceState};
pub use samples::{SampleBatch, SampleRecord};
pub use sensor::{SensorInfo, SensorLinkCounters, SensorStatus};
