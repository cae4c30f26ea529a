//! Sampling and drift-window policy: the configured default, overridden by the fleet's
//! `SetSamplingPolicy` commands (WIRE.md §4.8) for one model or all of them. The overrides are
//! persisted (`data_dir/sampling.json`, written atomically) so they survive a restart; the
//! configuration file still decides whatever no command has overridden.

use crate::config::SamplingSettings;
use crate::deploy::fsutil::write_atomic;
use edgefleet_protocol::ModelName;
use edgefleet_protocol::command::{SamplingPolicy, SamplingPolicyError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Shortest drift window accepted (the wire rule, [`SamplingPolicy::MIN_DRIFT_WINDOW_MS`]).
pub const MIN_WINDOW_MS: u64 = SamplingPolicy::MIN_DRIFT_WINDOW_MS;
/// Longest drift window accepted, one day (the wire rule, [`SamplingPolicy::MAX_DRIFT_WINDOW_MS`]).
pub const MAX_WINDOW_MS: u64 = SamplingPolicy::MAX_DRIFT_WINDOW_MS;

/// A policy value that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The rate is not a fraction.
    #[error("sample_rate {0} is not between 0.0 and 1.0")]
    SampleRate(f32),
    /// The window is too short or too long.
    #[error("drift_window_ms {0} is outside {MIN_WINDOW_MS}..={MAX_WINDOW_MS}")]
    Window(u64),
}

/// What applies to one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Fraction of inferences whose raw (input, output) is sampled.
    pub sample_rate: f32,
    /// Byte budget for raw records per hour (0: none are sent).
    pub max_sample_bytes_per_hour: u64,
    /// Drift summary window.
    pub drift_window_ms: u64,
}

impl Policy {
    /// Checks the values by the wire rule ([`SamplingPolicy::check`]).
    pub fn validate(&self) -> Result<(), PolicyError> {
        SamplingPolicy::check(self.sample_rate, self.drift_window_ms).map_err(|e| match e {
            SamplingPolicyError::SampleRate(rate) => PolicyError::SampleRate(rate),
            // The window: the only other value the rule checks.
            _ => PolicyError::Window(self.drift_window_ms),
        })
    }
}

impl From<SamplingSettings> for Policy {
    fn from(s: SamplingSettings) -> Self {
        Self {
            sample_rate: s.sample_rate,
            max_sample_bytes_per_hour: s.max_sample_bytes_per_hour,
            drift_window_ms: u64::try_from(s.drift_window.as_millis()).unwrap_or(MAX_WINDOW_MS),
        }
    }
}

/// The fleet's overrides of the configured policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Set by a command without a model: applies to every model without its own.
    pub all: Option<Policy>,
    /// Set by commands naming a model.
    pub models: BTreeMap<ModelName, Policy>,
}

impl Overrides {
    /// The policy for `model`, falling back to `all`, then to `default`.
    pub fn resolve(&self, model: &ModelName, default: Policy) -> Policy {
        self.models.get(model).copied().or(self.all).unwrap_or(default)
    }

    /// Applies a command: a named model gets its own policy; no model replaces every policy
    /// (per-model ones included, so the command really applies to all models).
    pub fn apply(&mut self, command: &SamplingPolicy) -> Result<(), PolicyError> {
        let policy = Policy {
            sample_rate: command.sample_rate,
            max_sample_bytes_per_hour: command.max_sample_bytes_per_hour,
            drift_window_ms: command.drift_window_ms,
        };
        policy.validate()?;
        match &command.model {
            Some(model) => {
                self.models.insert(model.clone(), policy);
            }
            None => {
                self.models.clear();
                self.all = Some(policy);
            }
        }
        Ok(())
    }
}

/// Where the overrides are persisted.
#[derive(Debug, Clone)]
pub struct OverridesFile {
    path: PathBuf,
}

impl OverridesFile {
    /// `data_dir/sampling.json`.
    pub fn in_dir(data_dir: &Path) -> Self {
        Self { path: data_dir.join("sampling.json") }
    }

    /// The persisted overrides; none when the file is absent, unreadable or holds an invalid
    /// policy (the configured default then applies until the fleet sends the policy again).
    pub fn load(&self) -> Overrides {
        let Ok(bytes) = std::fs::read(&self.path) else { return Overrides::default() };
        match serde_json::from_slice::<Overrides>(&bytes) {
            Ok(o) if o.all.iter().chain(o.models.values()).all(|p| p.validate().is_ok()) => o,
            _ => {
                tracing::warn!(path = %self.path.display(), "ignoring an unreadable sampling policy file");
                Overrides::default()
            }
        }
    }

    /// Writes `overrides` durably (write, fsync, rename).
    pub fn store(&self, overrides: &Overrides) -> std::io::Result<()> {
        let bytes =
            serde_json::to_vec(overrides).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Policy = Policy { sample_rate: 0.0, max_sample_bytes_per_hour: 1024, drift_window_ms: 60_000 };

    fn command(model: Option<&str>, sample_rate: f32, drift_window_ms: u64) -> SamplingPolicy {
        SamplingPolicy {
            model: model.map(|m| ModelName::new(m).unwrap()),
            sample_rate,
            max_sample_bytes_per_hour: 500,
            drift_window_ms,
        }
    }

    #[test]
    fn named_then_all_then_named() {
        let (a, b) = (ModelName::new("a").unwrap(), ModelName::new("b").unwrap());
        let mut o = Overrides::default();
        o.apply(&command(Some("a"), 0.5, 1_000)).unwrap();
        assert_eq!((o.resolve(&a, DEFAULT).sample_rate, o.resolve(&b, DEFAULT)), (0.5, DEFAULT));
        o.apply(&command(None, 0.25, 2_000)).unwrap();
        assert_eq!(o.resolve(&a, DEFAULT).sample_rate, 0.25, "all replaces per-model policies");
        o.apply(&command(Some("b"), 1.0, 3_000)).unwrap();
        assert_eq!((o.resolve(&a, DEFAULT).drift_window_ms, o.resolve(&b, DEFAULT).drift_window_ms), (2_000, 3_000));
    }

    #[test]
    fn bad_values_are_refused_and_change_nothing() {
        let mut o = Overrides::default();
        assert_eq!(o.apply(&command(None, 1.5, 1_000)), Err(PolicyError::SampleRate(1.5)));
        assert!(matches!(o.apply(&command(None, f32::NAN, 1_000)), Err(PolicyError::SampleRate(_))));
        assert_eq!(o.apply(&command(None, 0.5, 99)), Err(PolicyError::Window(99)));
        assert_eq!(o, Overrides::default());
    }

    #[test]
    fn survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = OverridesFile::in_dir(dir.path());
        assert_eq!(file.load(), Overrides::default());
        let mut o = Overrides::default();
        o.apply(&command(Some("a"), 0.5, 1_000)).unwrap();
        o.apply(&command(None, 0.1, 5_000)).unwrap();
        o.apply(&command(Some("b"), 0.2, 7_000)).unwrap();
        file.store(&o).unwrap();
        assert_eq!(OverridesFile::in_dir(dir.path()).load(), o);
        std::fs::write(dir.path().join("sampling.json"), b"{not json").unwrap();
        assert_eq!(file.load(), Overrides::default());
    }
}
