//! Drift scenarios: seeded, deterministic descriptions of how a device's sensor data moves away
//! from the training distribution, applied per device from an onset on.
//!
//! - [`DriftScenario`] says *what* changes; [`DriftScenario::effect`] turns it into the sensor
//!   [`Effect`] some time after onset (a pure function: no clock, no randomness).
//! - [`plan`] says *where and when*: which devices ([`Affected`]), from when ([`Onset`]), and
//!   the [`DriftControl`] handle a running fleet's sensors read, so drift can be switched on
//!   (or moved) while the fleet runs.
//! - [`source`]: [`DriftingSource`], a vibration generator with a scenario applied, driven by
//!   an elapsed time the caller passes in (tests step it without sleeping).
//!
//! Invariant: before onset, and on devices not affected, the windows are bit-for-bit those of
//! an undrifted [`crate::vibration::VibrationSource`] with the same seed.

pub mod plan;
pub mod source;

pub use plan::{ActiveDrift, Affected, DriftControl, DriftPlan, Onset};
pub use source::DriftingSource;

use crate::vibration::MachineState;
use edgefleet_firmware::features::FEATURE_COUNT;
use std::time::Duration;

/// What goes wrong with an affected device's data.
#[derive(Debug, Clone, PartialEq)]
pub enum DriftScenario {
    /// Sensor gain and noise floor move linearly from nominal (1.0, 0.0) at onset to `gain`
    /// and `noise_floor` after `ramp`, then stay (a sensor ageing, a mount loosening).
    Gradual {
        /// How long the move takes.
        ramp: Duration,
        /// Gain at the end of the ramp.
        gain: f32,
        /// Extra broadband noise amplitude at the end of the ramp.
        noise_floor: f32,
    },
    /// A step at onset: every sample multiplied by `gain` and shifted by `offset` (a sensor
    /// swapped for another model, a recalibration gone wrong).
    Sudden {
        /// Gain from onset on.
        gain: f32,
        /// Offset from onset on.
        offset: f32,
    },
    /// The machine develops a fault the model never saw ([`MachineState::Looseness`]); ground
    /// truth becomes class 4.
    NewState,
    /// One feature channel reads `value` forever (a stuck ADC channel or a broken feature
    /// pipeline); the others are untouched.
    StuckSensor {
        /// Feature index, `0..8`.
        channel: usize,
        /// The constant it reads.
        value: f32,
    },
    /// One feature channel gets Gaussian noise of `std_dev` added (a failing connector).
    NoisySensor {
        /// Feature index, `0..8`.
        channel: usize,
        /// Standard deviation of the added noise, in the channel's units.
        std_dev: f32,
    },
}

/// The `edgefleet-sim run --scenario` names of the drift scenarios, with a description.
pub const SCENARIO_NAMES: [(&str, &str); 5] = [
    ("drift-gradual", "sensor gain 1.0→1.6 and noise floor 0→0.15 over 60 s on affected devices"),
    ("drift-sudden", "sensor gain steps to ×1.8 on affected devices"),
    ("drift-new-state", "affected machines develop looseness, a fault the model never saw (label 4)"),
    ("drift-stuck-sensor", "feature 1 (mean square) reads 0.0 forever on affected devices"),
    ("drift-noisy-sensor", "feature 4 (peak-to-peak) gets Gaussian noise σ=0.5 on affected devices"),
];

impl DriftScenario {
    /// The scenario `edgefleet-sim run --scenario NAME` runs (see [`SCENARIO_NAMES`]), with
    /// its default parameters; `None` for a name that is not a drift scenario.
    pub fn from_name(name: &str) -> Option<DriftScenario> {
        Some(match name {
            "drift-gradual" => DriftScenario::Gradual { ramp: Duration::from_secs(60), gain: 1.6, noise_floor: 0.15 },
            "drift-sudden" => DriftScenario::Sudden { gain: 1.8, offset: 0.0 },
            "drift-new-state" => DriftScenario::NewState,
            "drift-stuck-sensor" => DriftScenario::StuckSensor { channel: 1, value: 0.0 },
            "drift-noisy-sensor" => DriftScenario::NoisySensor { channel: 4, std_dev: 0.5 },
            _ => return None,
        })
    }

    /// The scenario's name (the one [`Self::from_name`] takes).
    pub fn name(&self) -> &'static str {
        match self {
            DriftScenario::Gradual { .. } => "drift-gradual",
            DriftScenario::Sudden { .. } => "drift-sudden",
            DriftScenario::NewState => "drift-new-state",
            DriftScenario::StuckSensor { .. } => "drift-stuck-sensor",
            DriftScenario::NoisySensor { .. } => "drift-noisy-sensor",
        }
    }

    /// What the scenario does to the sensor `since_onset` after its onset.
    pub fn effect(&self, since_onset: Duration) -> Effect {
        let nominal = Effect::NONE;
        match *self {
            DriftScenario::Gradual { ramp, gain, noise_floor } => {
                // A zero ramp is a step; otherwise the fraction of the ramp done, capped at 1.
                let done =
                    if ramp.is_zero() { 1.0 } else { (since_onset.as_secs_f64() / ramp.as_secs_f64()).min(1.0) as f32 };
                Effect { gain: 1.0 + (gain - 1.0) * done, noise_floor: noise_floor * done, ..nominal }
            }
            DriftScenario::Sudden { gain, offset } => Effect { gain, offset, ..nominal },
            DriftScenario::NewState => Effect { state: Some(MachineState::Looseness), ..nominal },
            DriftScenario::StuckSensor { channel, value } => {
                Effect { channel: valid(channel).map(|c| ChannelFault::Stuck { channel: c, value }), ..nominal }
            }
            DriftScenario::NoisySensor { channel, std_dev } => {
                Effect { channel: valid(channel).map(|c| ChannelFault::Noisy { channel: c, std_dev }), ..nominal }
            }
        }
    }
}

/// A channel index outside the feature vector affects nothing rather than panicking later.
fn valid(channel: usize) -> Option<usize> {
    (channel < FEATURE_COUNT).then_some(channel)
}

/// A fault on one feature channel, applied after the features are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChannelFault {
    /// The channel reads `value`.
    Stuck {
        /// Feature index.
        channel: usize,
        /// The constant.
        value: f32,
    },
    /// The channel gets zero-mean Gaussian noise.
    Noisy {
        /// Feature index.
        channel: usize,
        /// Its standard deviation.
        std_dev: f32,
    },
}

/// The sensor's condition at one moment: knobs of the generator, an overriding machine state,
/// and a fault on one feature channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    /// Multiplies every sample.
    pub gain: f32,
    /// Added to every sample.
    pub offset: f32,
    /// Extra broadband noise amplitude.
    pub noise_floor: f32,
    /// The machine's state instead of its own (`None`: unchanged).
    pub state: Option<MachineState>,
    /// A fault on one feature channel.
    pub channel: Option<ChannelFault>,
}

impl Effect {
    /// No drift: the generator as specified.
    pub const NONE: Effect = Effect { gain: 1.0, offset: 0.0, noise_floor: 0.0, state: None, channel: None };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_not_drift() {
        for (name, _) in SCENARIO_NAMES {
            assert_eq!(DriftScenario::from_name(name).map(|s| s.name()), Some(name));
        }
        assert_eq!(DriftScenario::from_name("steady"), None);
    }

    #[test]
    fn gradual_ramps_linearly_then_holds() {
        let s = DriftScenario::Gradual { ramp: Duration::from_secs(10), gain: 2.0, noise_floor: 0.2 };
        assert_eq!(s.effect(Duration::ZERO), Effect::NONE);
        let half = s.effect(Duration::from_secs(5));
        assert!((half.gain - 1.5).abs() < 1e-6 && (half.noise_floor - 0.1).abs() < 1e-6);
        assert_eq!(s.effect(Duration::from_secs(10)), s.effect(Duration::from_secs(1000)));
        let step = DriftScenario::Gradual { ramp: Duration::ZERO, gain: 2.0, noise_floor: 0.0 };
        assert_eq!(step.effect(Duration::ZERO).gain, 2.0);
    }

    #[test]
    fn channel_faults_outside_the_vector_do_nothing() {
        let s = DriftScenario::StuckSensor { channel: 8, value: 1.0 };
        assert_eq!(s.effect(Duration::from_secs(1)), Effect::NONE);
    }
}
