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

impl SamplingPolicy {
    /// Shortest drift summary window accepted: 100 ms.
    pub const MIN_DRIFT_WINDOW_MS: u64 = 100;
    /// Longest drift summary window accepted: one day.
    pub const MAX_DRIFT_WINDOW_MS: u64 = 86_400_000;

    /// Checks the values: the one rule for the fleet (before it sends a policy) and the agent
    /// (before it applies one). See [`SamplingPolicy::check`].
    pub fn validate(&self) -> Result<(), SamplingPolicyError> {
        Self::check(self.sample_rate, self.drift_window_ms)
    }

    /// The rule on the values alone: `sample_rate` in `[0, 1]` by value with its sign (`-0.0`
    /// and NaN are refused), `drift_window_ms` in
    /// [`MIN_DRIFT_WINDOW_MS`](Self::MIN_DRIFT_WINDOW_MS)`..=`[`MAX_DRIFT_WINDOW_MS`](Self::MAX_DRIFT_WINDOW_MS).
    pub fn check(sample_rate: f32, drift_window_ms: u64) -> Result<(), SamplingPolicyError> {
        // is_sign_positive refuses -0.0; NaN and +inf fail `<= 1.0`.
        if !(sample_rate.is_sign_positive() && sample_rate <= 1.0) {
            return Err(SamplingPolicyError::SampleRate(sample_rate));
        }
        if !(Self::MIN_DRIFT_WINDOW_MS..=Self::MAX_DRIFT_WINDOW_MS).contains(&drift_window_ms) {
            return Err(SamplingPolicyError::DriftWindow(drift_window_ms));
        }
        Ok(())
    }
}

/// A [`SamplingPolicy`] value outside the rule.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum SamplingPolicyError {
    /// The sample rate is not a fraction in `[0, 1]` (negative, `-0.0`, NaN or above 1).
    SampleRate(f32),
    /// The drift window is shorter than 100 ms or longer than a day.
    DriftWindow(u64),
}

impl core::fmt::Display for SamplingPolicyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SamplingPolicyError::SampleRate(rate) => {
                write!(f, "sample_rate {rate} is not between 0.0 and 1.0")
            }
            SamplingPolicyError::DriftWindow(ms) => write!(
                f,
                "drift_window_ms {ms} is outside {}..={} (100 ms to one day)",
                SamplingPolicy::MIN_DRIFT_WINDOW_MS,
                SamplingPolicy::MAX_DRIFT_WINDOW_MS
            ),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::{SamplingPolicy, SamplingPolicyError};

    fn check(rate: f32, window: u64) -> Result<(), SamplingPolicyError> {
        SamplingPolicy { model: None, sample_rate: rate, max_sample_bytes_per_hour: 0, drift_window_ms: window }
            .validate()
    }

    #[test]
    fn the_sample_rate_is_a_fraction_by_value_and_sign() {
        assert_eq!(check(0.0, 60_000), Ok(()));
        assert_eq!(check(1.0, 60_000), Ok(()));
        assert_eq!(check(0.25, 60_000), Ok(()));
        assert!(matches!(check(-0.0, 60_000), Err(SamplingPolicyError::SampleRate(r)) if r.is_sign_negative()));
        assert!(matches!(check(f32::NAN, 60_000), Err(SamplingPolicyError::SampleRate(r)) if r.is_nan()));
        assert!(matches!(check(-f32::NAN, 60_000), Err(SamplingPolicyError::SampleRate(_))));
        assert_eq!(check(1.0 + f32::EPSILON, 60_000), Err(SamplingPolicyError::SampleRate(1.0 + f32::EPSILON)));
        assert_eq!(check(f32::INFINITY, 60_000), Err(SamplingPolicyError::SampleRate(f32::INFINITY)));
        assert_eq!(check(-0.5, 60_000), Err(SamplingPolicyError::SampleRate(-0.5)));
    }

    #[test]
    fn the_drift_window_is_100_ms_to_one_day() {
        assert_eq!(SamplingPolicy::MIN_DRIFT_WINDOW_MS, 100);
        assert_eq!(SamplingPolicy::MAX_DRIFT_WINDOW_MS, 86_400_000);
        assert_eq!(check(0.5, 100), Ok(()));
        assert_eq!(check(0.5, 86_400_000), Ok(()));
        assert_eq!(check(0.5, 99), Err(SamplingPolicyError::DriftWindow(99)));
        assert_eq!(check(0.5, 86_400_001), Err(SamplingPolicyError::DriftWindow(86_400_001)));
        assert_eq!(check(0.5, 0), Err(SamplingPolicyError::DriftWindow(0)));
    }

    #[test]
    fn the_rate_is_checked_first() {
        assert_eq!(check(2.0, 0), Err(SamplingPolicyError::SampleRate(2.0)));
    }
}
