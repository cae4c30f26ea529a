//! [`DriftingSource`]: one machine's vibration windows with a drift scenario applied from its
//! onset on. The caller passes the elapsed time with every window, so this stays a pure
//! function of (seed, state, scenario, elapsed sequence): tests step time without sleeping, and
//! the live sensor ([`crate::input::VibrationInput`]) passes wall-clock time.

use super::{ChannelFault, DriftScenario, Effect};
use crate::vibration::{MachineState, VibrationSource};
use edgefleet_firmware::features::FEATURE_COUNT;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Channel-fault noise has its own stream (seeded from the machine's seed with this mixed in)
/// so switching a fault on does not shift the vibration generator's random sequence.
const FAULT_SALT: u64 = 0x6E01_5E5E_0000_0002;

/// A seeded machine whose windows drift from an onset on.
#[derive(Debug, Clone)]
pub struct DriftingSource {
    source: VibrationSource,
    /// The machine's own state (a scenario may override it after onset).
    state: MachineState,
    /// The scenario and its onset, measured on the same clock as `elapsed`.
    drift: Option<(DriftScenario, Duration)>,
    fault_rng: SmallRng,
}

impl DriftingSource {
    /// A machine in `state` with no drift; the same seed gives the same windows as
    /// [`VibrationSource::new`].
    pub fn new(seed: u64, state: MachineState) -> DriftingSource {
        DriftingSource {
            source: VibrationSource::new(seed, state),
            state,
            drift: None,
            fault_rng: SmallRng::seed_from_u64(seed ^ FAULT_SALT),
        }
    }

    /// With `scenario` from `onset` (elapsed time) on.
    pub fn with_drift(mut self, scenario: DriftScenario, onset: Duration) -> DriftingSource {
        self.drift = Some((scenario, onset));
        self
    }

    /// Points the sensor at another machine (the drift in force stays): a monitoring station
    /// sees one machine after another.
    pub fn replace_machine(&mut self, source: VibrationSource, state: MachineState) {
        self.source = source;
        self.state = state;
    }

    /// Replaces the scenario and onset (`None`: no drift from the next window on).
    pub fn set_drift(&mut self, drift: Option<(DriftScenario, Duration)>) {
        self.drift = drift;
    }

    /// The scenario and onset in force.
    pub fn drift(&self) -> Option<&(DriftScenario, Duration)> {
        self.drift.as_ref()
    }

    /// The machine's own state (before any scenario overrides it).
    pub fn state(&self) -> MachineState {
        self.state
    }

    /// The sensor effect at `elapsed`: nominal before onset.
    pub fn effect_at(&self, elapsed: Duration) -> Effect {
        match &self.drift {
            Some((scenario, onset)) if elapsed >= *onset => scenario.effect(elapsed - *onset),
            _ => Effect::NONE,
        }
    }

    /// The window generated at `elapsed` and the ground truth it was generated from.
    pub fn next_window_at(&mut self, elapsed: Duration) -> ([f32; FEATURE_COUNT], MachineState) {
        let effect = self.effect_at(elapsed);
        self.source.gain = effect.gain;
        self.source.offset = effect.offset;
        self.source.noise_floor = effect.noise_floor;
        self.source.set_state(effect.state.unwrap_or(self.state));
        let (mut features, truth) = self.source.next_window();
        match effect.channel {
            Some(ChannelFault::Stuck { channel, value }) => features[channel] = value,
            Some(ChannelFault::Noisy { channel, std_dev }) => {
                features[channel] += std_dev * gaussian(&mut self.fault_rng);
            }
            None => {}
        }
        (features, truth)
    }
}

/// A standard normal draw (Box–Muller; `rand` alone has no normal distribution and one draw per
/// window does not justify `rand_distr`).
fn gaussian(rng: &mut SmallRng) -> f32 {
    // 1 - [0, 1) is (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONSET: Duration = Duration::from_secs(30);
    /// Windows per phase: 10 Hz for 30 s.
    const WINDOWS: u64 = 300;

    /// Mean and variance of each feature over windows at `from`, `from + 0.1 s`, ….
    fn stats(source: &mut DriftingSource, from: Duration) -> [(f64, f64); FEATURE_COUNT] {
        let rows: Vec<[f32; FEATURE_COUNT]> =
            (0..WINDOWS).map(|i| source.next_window_at(from + Duration::from_millis(100 * i)).0).collect();
        std::array::from_fn(|c| {
            let n = rows.len() as f64;
            let mean = rows.iter().map(|r| f64::from(r[c])).sum::<f64>() / n;
            let var = rows.iter().map(|r| (f64::from(r[c]) - mean).powi(2)).sum::<f64>() / n;
            (mean, var)
        })
    }

    /// Before onset the windows equal an undrifted source's exactly; after it, `changed`
    /// holds for the before/after statistics.
    fn check(
        scenario: &str,
        state: MachineState,
        changed: impl Fn(&[(f64, f64); FEATURE_COUNT], &[(f64, f64); FEATURE_COUNT]) -> bool,
    ) {
        let drift = DriftScenario::from_name(scenario).unwrap();
        let mut drifting = DriftingSource::new(11, state).with_drift(drift, ONSET);
        let mut plain = VibrationSource::new(11, state);
        for i in 0..WINDOWS {
            let at = Duration::from_millis(100 * i);
            assert!(at < ONSET);
            assert_eq!(drifting.next_window_at(at), plain.next_window(), "{scenario}: changed before onset");
        }
        let mut baseline = DriftingSource::new(12, state);
        let before = stats(&mut baseline, Duration::ZERO);
        // Well past onset (and past the gradual ramp).
        let after = stats(&mut drifting, ONSET + Duration::from_secs(120));
        assert!(changed(&before, &after), "{scenario}: no change after onset\nbefore {before:?}\nafter {after:?}");
        // Control: a second undrifted machine's statistics do not pass the same test.
        let control = stats(&mut DriftingSource::new(13, state), Duration::from_secs(150));
        assert!(!changed(&before, &control), "{scenario}: the test flags an undrifted machine");
    }

    #[test]
    fn gradual_raises_energy_and_noise() {
        check("drift-gradual", MachineState::Normal, |b, a| a[1].0 > 2.0 * b[1].0 && a[7].0 > 1.5 * b[7].0);
        // Halfway up the ramp lies between.
        let drift = DriftScenario::from_name("drift-gradual").unwrap();
        let mut s = DriftingSource::new(3, MachineState::Normal).with_drift(drift, ONSET);
        let early = stats(&mut s, ONSET)[1].0;
        let late = stats(&mut s, ONSET + Duration::from_secs(60))[1].0;
        assert!(late > early, "{early} then {late}");
    }

    #[test]
    fn sudden_steps_the_gain() {
        check("drift-sudden", MachineState::Normal, |b, a| a[1].0 > 3.0 * b[1].0 && a[3].0 > 1.6 * b[3].0);
    }

    #[test]
    fn new_state_is_looseness_with_label_4() {
        check("drift-new-state", MachineState::Normal, |b, a| a[6].0 > 1.5 * b[6].0 && a[1].0 > 2.0 * b[1].0);
        let drift = DriftScenario::NewState;
        let mut s = DriftingSource::new(1, MachineState::Imbalance).with_drift(drift, ONSET);
        assert_eq!(s.next_window_at(Duration::ZERO).1, MachineState::Imbalance);
        assert_eq!(s.next_window_at(ONSET).1, MachineState::Looseness);
        assert_eq!(s.state(), MachineState::Imbalance);
        assert_eq!(MachineState::Looseness.class_index(), 4);
    }

    #[test]
    fn stuck_sensor_freezes_one_channel() {
        check("drift-stuck-sensor", MachineState::Normal, |b, a| {
            a[1] == (0.0, 0.0)
                && (0..FEATURE_COUNT).filter(|&c| c != 1).all(|c| (a[c].0 - b[c].0).abs() <= 0.2 * b[c].0.abs() + 1e-3)
        });
    }

    #[test]
    fn noisy_sensor_adds_variance_to_one_channel() {
        check("drift-noisy-sensor", MachineState::Normal, |b, a| {
            a[4].1 > 100.0 * b[4].1 && (0..FEATURE_COUNT).filter(|&c| c != 4).all(|c| a[c].1 < 3.0 * b[c].1 + 1e-9)
        });
    }

    #[test]
    fn clearing_drift_restores_the_machine() {
        let mut s = DriftingSource::new(2, MachineState::Normal).with_drift(DriftScenario::NewState, Duration::ZERO);
        assert_eq!(s.next_window_at(Duration::ZERO).1, MachineState::Looseness);
        s.set_drift(None);
        assert_eq!(s.next_window_at(Duration::from_secs(1)).1, MachineState::Normal);
    }
}
