use crate::codec::{MessageKind, WireMessage};
use crate::command::DeploymentId;
use crate::ids::ModelName;
use crate::package::PackageError;
use alloc::string::String;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Why a deployment failed or was rolled back. Package problems carry the same
/// [`PackageError`] that `edgefleet-agent verify` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FailureReason {
    /// The package (head or blob) failed verification.
    Package(PackageError),
    /// Not enough free disk for the variant blob plus headroom.
    InsufficientDisk {
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// The download could not complete (chunk source unreachable, not found, ...).
    Download(String),
    /// The inference backend could not load the model.
    ModelLoad(String),
    /// A golden validation vector's output was outside tolerance.
    GoldenMismatch {
        /// Index of the vector in the manifest.
        vector: u32,
        /// Largest absolute difference seen (infinite for shape mismatch or NaN).
        max_abs_diff: f64,
    },
    /// Too many inference errors during probation.
    ProbationErrors {
        /// Errors seen.
        errors: u64,
        /// Inferences run.
        total: u64,
    },
    /// p99 latency above budget during probation.
    ProbationLatency {
        /// Measured p99, microseconds.
        p99_us: u64,
        /// Budget, microseconds.
        budget_us: u64,
    },
    /// The agent died during this step and restarted (text names the step).
    Crashed(String),
    /// A local I/O error (disk full, permission, ...).
    Io(String),
    /// An operator asked for it.
    Operator(String),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Package(e) => write!(f, "package rejected: {e}"),
            FailureReason::InsufficientDisk { needed, free } => {
                write!(f, "insufficient disk: need {needed} bytes, {free} free")
            }
            FailureReason::Download(d) => write!(f, "download failed: {d}"),
            FailureReason::ModelLoad(d) => write!(f, "model failed to load: {d}"),
            FailureReason::GoldenMismatch { vector, max_abs_diff } => {
                write!(f, "golden vector {vector} outside tolerance (max abs diff {max_abs_diff})")
            }
            FailureReason::ProbationErrors { errors, total } => {
                write!(f, "probation: {errors} of {total} inferences failed")
            }
            FailureReason::ProbationLatency { p99_us, budget_us } => {
                write!(f, "probation: p99 latency {p99_us} µs over budget {budget_us} µs")
            }
            FailureReason::Crashed(step) => write!(f, "agent crashed during {step}"),
            FailureReason::Io(d) => write!(f, "I/O error: {d}"),
            FailureReason::Operator(d) => write!(f, "operator: {d}"),
        }
    }
}

/// A deployment's lifecycle on the device. Transitions happen in declaration order; `Failed`,
/// `RolledBack`, `Cancelled` and `Committed` are terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeploymentState {
    /// Deploy command accepted and persisted.
    Accepted,
    /// Download progress (sent at most every few seconds).
    Downloading {
        /// Bytes verified and persisted so far.
        received: u64,
        /// Total bytes to fetch.
        total: u64,
    },
    /// Head signature and blob digest verified.
    Verified,
    /// Written to a new generation directory and fsynced.
    Installed,
    /// Golden vectors passed; now the active model.
    Activated,
    /// Probation passed; the new version is committed (previous kept as last-known-good).
    Committed,
    /// Stopped before activation; the previous model keeps serving.
    Failed(FailureReason),
    /// Activated, then switched back to the last-known-good version.
    RolledBack {
        /// The version now served.
        to_version_seq: u64,
        /// Why.
        reason: FailureReason,
    },
    /// Cancelled by a command before activation.
    Cancelled,
}

/// A deployment transition on `…/deployment`, QoS 1, through the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// Deployment stream sequence number.
    pub seq: u64,
    /// Device wall clock, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The deployment, as named in the deploy command.
    pub deployment_id: DeploymentId,
    /// Model being deployed.
    pub model: ModelName,
    /// Version being deployed.
    pub version_seq: u64,
    /// The new state.
    pub state: DeploymentState,
}

impl WireMessage for DeploymentStatus {
    const KIND: MessageKind = MessageKind::DeploymentStatus;
}
