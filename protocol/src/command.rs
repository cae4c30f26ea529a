//! Fleet → device commands on `…/cmd`, QoS 1.
//!
//! A device acknowledges every command with a [`crate::uplink::CommandAck`] and remembers the
//! last command ids it executed, so a redelivered command is acknowledged as `Duplicate`
//! and not run twice.

use crate::codec::{MessageKind, WireMessage};
use crate::ids::{Digest, ModelName};
use alloc::string::String;
use serde::{Deserialize, Serialize};

/// Identifies a command (unique per fleet manager, increasing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(pub u64);

/// Identifies a deployment: one model version sent to one device by one rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(pub u64);

/// Limits the new version must respect during probation, or it is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbationBudget {
    /// How long probation lasts after activation, in milliseconds.
    pub duration_ms: u64,
    /// Minimum inferences before the error and latency checks apply.
    pub min_inferences: u32,
    /// Largest tolerated error rate, in parts per million.
    pub max_error_rate_ppm: u32,
    /// Largest tolerated p99 latency, in microseconds (0 = no latency check).
    pub max_p99_latency_us: u64,
}

/// Install a model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployCommand {
    /// The deployment this belongs to (echoed in every status).
    pub deployment_id: DeploymentId,
    /// Model name (must match the manifest).
    pub model: ModelName,
    /// Version sequence (must match the manifest).
    pub version_seq: u64,
    /// Package id: SHA-256 of the package head, fetched by chunk transfer.
    pub package_id: Digest,
    /// Size of the package head in bytes.
    pub head_size: u64,
    /// Probation limits.
    pub probation: ProbationBudget,
    /// Lets a package with a lower version sequence than the installed one through
    /// anti-rollback (signed by a trusted release key, naming exactly this package).
    pub downgrade: Option<crate::package::SignedDowngrade>,
}

/// Switch back to an earlier, still-installed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackCommand {
    /// The deployment being undone.
    pub deployment_id: DeploymentId,
    /// Model to roll back.
    pub model: ModelName,
    /// Version to return to; `None` means the device's last-known-good version.
    pub to_version_seq: Option<u64>,
    /// Why (recorded in the device's status report).
    pub reason: String,
}

/// Sampling and drift-summary settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingPolicy {
    /// Model it applies to; `None` for every model.
    pub model: Option<ModelName>,
    /// Fraction of inferences sampled as raw records, 0.0 to 1.0.
    pub sample_rate: f32,
    /// Byte budget for raw records per hour.
    pub max_sample_bytes_per_hour: u64,
    /// Drift summary window, in milliseconds.
    pub drift_window_ms: u64,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandBody {
    /// Install a model version.
    Deploy(DeployCommand),
    /// Return to an earlier version.
    Rollback(RollbackCommand),
    /// Stop a deployment that has not activated yet.
    Cancel {
        /// The deployment to stop.
        deployment_id: DeploymentId,
    },
    /// Change sampling.
    SetSamplingPolicy(SamplingPolicy),
    /// Liveness check; answered by an ack.
    Ping {
        /// Echo value.
        nonce: u64,
    },
    /// Publish `Birth` and `Presence { Online }` again, as after a connect: the fleet manager
    /// missed this device's birth (it subscribed after the device connected, or its broker
    /// session was lost) and cannot place the device without it.
    Rebirth,
}

/// A command to one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique id, echoed in the ack.
    pub command_id: CommandId,
    /// Fleet wall clock when issued, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// The command.
    pub body: CommandBody,
}

impl WireMessage for Command {
    const KIND: MessageKind = MessageKind::Command;
}
