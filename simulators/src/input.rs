//! Simulated sensor input for agents: each device watches one machine whose state (normal,
//! imbalance, bearing wear, misalignment) is drawn from its seed, and feeds the model the
//! feature vectors the firmware would compute from that machine's vibration.
//!
//! The input also knows the truth: [`InputSource::ground_truth`] returns the class index of the
//! state behind the last window (for a seeded fraction of windows, [`VibrationInput::with_label_rate`]),
//! which the agent records as labelled feedback. In a fleet, each input reads the fleet's
//! [`DriftControl`] once per window and applies the drift in force if its device is affected.

use crate::drift::{ActiveDrift, DriftControl, DriftingSource};
use crate::vibration::{MachineState, VibrationSource};
use edgefleet_agent::input::InputSource;
use edgefleet_firmware::features::FEATURE_COUNT;
use edgefleet_protocol::tensor::{Dim, ElemType, Tensor, TensorData, TensorSpec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Instant;

/// The labelling draw has its own stream so the label rate does not change the windows.
const LABEL_SALT: u64 = 0x1AB3_1000_0000_0003;
/// A station's machine draws have their own stream too.
const STATION_SALT: u64 = 0x57A7_1011_0000_0004;

/// An [`InputSource`] of vibration features for models taking `f32[batch, 8]`.
#[derive(Debug)]
pub struct VibrationInput {
    source: DriftingSource,
    /// The origin of the elapsed times [`DriftingSource`] sees: the input's start, or an
    /// earlier drift onset (a device restarted after onset keeps the drift's age).
    epoch: Instant,
    started: Instant,
    /// The fleet's drift handle and this device's index in the fleet.
    drift: Option<(DriftControl, usize)>,
    /// The drift last applied to `source` (compared by pointer to skip unchanged windows).
    applied: Option<Arc<ActiveDrift>>,
    label_rate: f64,
    label_rng: SmallRng,
    last_truth: Option<i64>,
    /// For a station: draws the next machine for every window.
    station: Option<SmallRng>,
}

impl VibrationInput {
    /// A machine picked by `seed` ([`MachineState::from_fleet_draw`]: 85% normal, 5% each
    /// fault), every window labelled, no drift.
    pub fn new(seed: u64) -> Self {
        let now = Instant::now();
        VibrationInput {
            source: DriftingSource::new(seed, MachineState::from_fleet_draw(seed)),
            epoch: now,
            started: now,
            drift: None,
            applied: None,
            label_rate: 1.0,
            label_rng: SmallRng::seed_from_u64(seed ^ LABEL_SALT),
            last_truth: None,
            station: None,
        }
    }

    /// A monitoring station: every window comes from another machine drawn from the fleet's
    /// population exactly as [`crate::training::training_rows`] draws the training data (state
    /// by [`MachineState::from_fleet_draw`], its own shaft speed and phase). So an undrifted
    /// station's windows follow the drift reference built from training rows, and only the
    /// drift scenarios move them away. (A device watching a single machine sees a narrow slice
    /// of that population and would differ from a population reference on its own.)
    pub fn station(seed: u64) -> Self {
        let mut input = VibrationInput::new(seed);
        input.station = Some(SmallRng::seed_from_u64(seed ^ STATION_SALT));
        input
    }

    /// Measures drift onsets against `start` instead of the moment of construction (tests pass
    /// a fixed instant and then synthetic times to [`Self::window_at`]).
    pub fn started_at(mut self, start: Instant) -> Self {
        self.started = start;
        self.epoch = start;
        self.applied = None;
        self
    }

    /// Follows the fleet's `control` as device `index`.
    pub fn with_drift(mut self, control: DriftControl, index: usize) -> Self {
        self.drift = Some((control, index));
        self.applied = None;
        self
    }

    /// Labels each window with probability `rate` (seeded; `>= 1.0` all, `<= 0.0` or NaN none).
    pub fn with_label_rate(mut self, rate: f64) -> Self {
        self.label_rate = rate;
        self
    }

    /// The machine's own state (a drift scenario may override it; see [`Self::window_at`]).
    pub fn state(&self) -> MachineState {
        self.source.state()
    }

    /// The window the sensor produces at `now` and the state that produced it; sets the
    /// ground truth [`InputSource::ground_truth`] reports.
    pub fn window_at(&mut self, now: Instant) -> ([f32; FEATURE_COUNT], MachineState) {
        self.follow_drift();
        if let Some(rng) = &mut self.station {
            let state = MachineState::from_fleet_draw(rng.random());
            let phase = rng.random::<f32>() * core::f32::consts::TAU;
            self.source.replace_machine(VibrationSource::new(rng.random(), state).with_phase(phase), state);
        }
        let (window, truth) = self.source.next_window_at(now.saturating_duration_since(self.epoch));
        // Always draw, so the labelled subset depends only on the seed and the window count.
        let labelled = self.label_rng.random::<f64>() < self.label_rate;
        self.last_truth = labelled.then(|| truth.class_index());
        (window, truth)
    }

    /// Picks up a changed [`DriftControl`] setting.
    fn follow_drift(&mut self) {
        let Some((control, index)) = &self.drift else { return };
        let current = control.current();
        let unchanged = match (&current, &self.applied) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            return;
        }
        let mine = current.as_deref().filter(|d| d.affected.contains(index));
        match mine {
            Some(drift) => {
                self.epoch = self.started.min(drift.onset);
                self.source.set_drift(Some((drift.scenario.clone(), drift.onset - self.epoch)));
            }
            None => {
                self.epoch = self.started;
                self.source.set_drift(None);
            }
        }
        self.applied = current;
    }
}

impl InputSource for VibrationInput {
    fn next(&mut self, specs: &[TensorSpec]) -> Option<Vec<Tensor>> {
        // One f32 input whose last dimension is the feature count; anything else is not a
        // vibration model and gets nothing from this sensor.
        // Whatever happens below, a previous window's label must not be attributed to it.
        self.last_truth = None;
        let [spec] = specs else { return None };
        let features = match spec.shape.last() {
            Some(Dim::Fixed(n)) => *n as usize,
            _ => return None,
        };
        if spec.elem != ElemType::F32 || features != FEATURE_COUNT || spec.shape.len() != 2 {
            return None;
        }
        let (window, _) = self.window_at(Instant::now());
        Some(vec![Tensor { shape: vec![1, FEATURE_COUNT as u64], data: TensorData::F32(window.to_vec()) }])
    }

    fn ground_truth(&self) -> Option<i64> {
        self.last_truth
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::{Affected, DriftScenario};
    use std::time::Duration;

    #[test]
    fn feeds_eight_features_to_a_vibration_model_only() {
        let spec = TensorSpec {
            name: "features".into(),
            elem: ElemType::F32,
            shape: vec![Dim::Symbolic("batch".into()), Dim::Fixed(8)],
        };
        let mut input = VibrationInput::new(7);
        let tensors = input.next(std::slice::from_ref(&spec)).unwrap();
        assert_eq!(tensors[0].shape, vec![1, 8]);
        assert_eq!(input.ground_truth(), Some(input.state().class_index()));
        let other = TensorSpec { shape: vec![Dim::Fixed(1), Dim::Fixed(3)], ..spec };
        assert!(input.next(&[other]).is_none());
        assert_eq!(input.ground_truth(), None);
    }

    #[test]
    fn ground_truth_follows_the_state_behind_each_window() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Seeds 20..24 draw imbalance, bearing wear, misalignment, normal.
        for (seed, class) in [(20, 1), (21, 2), (22, 3), (23, 0)] {
            let mut input = VibrationInput::new(seed).started_at(t0);
            assert_eq!(input.state().class_index(), class);
            input.window_at(at(1));
            assert_eq!(input.ground_truth(), Some(class));
        }
        let control = DriftControl::new();
        control.set(ActiveDrift { scenario: DriftScenario::NewState, onset: at(10), affected: [0].into() });
        let mut input = VibrationInput::new(23).started_at(t0).with_drift(control, 0);
        assert_eq!(input.window_at(at(9)).1, MachineState::Normal);
        assert_eq!(input.ground_truth(), Some(0));
        assert_eq!(input.window_at(at(10)).1, MachineState::Looseness);
        assert_eq!(input.ground_truth(), Some(4));
    }

    #[test]
    fn label_rate_labels_a_seeded_fraction_without_changing_windows() {
        let t0 = Instant::now();
        let mut all = VibrationInput::new(5).started_at(t0);
        let mut some = VibrationInput::new(5).started_at(t0).with_label_rate(0.3);
        let mut labelled = Vec::new();
        for i in 0..1000 {
            let now = t0 + Duration::from_millis(100 * i);
            assert_eq!(all.window_at(now), some.window_at(now));
            assert!(all.ground_truth().is_some());
            labelled.push(some.ground_truth().is_some());
        }
        let share = labelled.iter().filter(|&&l| l).count() as f64 / 1000.0;
        assert!((share - 0.3).abs() < 0.05, "{share}");
        let mut again = VibrationInput::new(5).started_at(t0).with_label_rate(0.3);
        let again: Vec<bool> = (0..1000)
            .map(|_| {
                again.window_at(t0);
                again.ground_truth().is_some()
            })
            .collect();
        assert_eq!(again, labelled);
        let mut none = VibrationInput::new(5).with_label_rate(f64::NAN);
        none.window_at(t0);
        assert_eq!(none.ground_truth(), None);
    }

    #[test]
    fn only_affected_devices_drift_and_only_after_onset() {
        let t0 = Instant::now();
        let control = DriftControl::new();
        let affected = Affected::Fraction(0.3).resolve(10, 4);
        assert_eq!(affected.len(), 3);
        let onset = t0 + Duration::from_secs(30);
        let drift = DriftScenario::from_name("drift-sudden").unwrap();
        control.set(ActiveDrift { scenario: drift, onset, affected: affected.iter().copied().collect() });
        for device in 0..10 {
            let seed = 100 + device as u64;
            let mut drifting = VibrationInput::new(seed).started_at(t0).with_drift(control.clone(), device);
            let mut plain = VibrationInput::new(seed).started_at(t0);
            let mut energy = [0.0_f64; 2];
            for i in 0..600 {
                let now = t0 + Duration::from_millis(100 * i);
                let (a, b) = (drifting.window_at(now).0, plain.window_at(now).0);
                if now < onset || !affected.contains(&device) {
                    assert_eq!(a, b, "device {device} drifted at {i}");
                } else {
                    energy[0] += f64::from(a[1]);
                    energy[1] += f64::from(b[1]);
                }
            }
            if affected.contains(&device) {
                // Gain ×1.8 is ×3.24 in mean square.
                assert!(energy[0] > 3.0 * energy[1], "device {device}: {energy:?}");
            }
        }
    }

    #[test]
    fn a_station_sees_the_training_population() {
        let t0 = Instant::now();
        let mut station = VibrationInput::station(3).started_at(t0);
        let states: Vec<MachineState> = (0..2000).map(|_| station.window_at(t0).1).collect();
        let normal = states.iter().filter(|s| **s == MachineState::Normal).count() as f64 / 2000.0;
        assert!((normal - 0.85).abs() < 0.03, "{normal}");
        assert_eq!(station.ground_truth(), Some(states[1999].class_index()));
    }

    #[test]
    fn a_device_restarted_after_onset_keeps_the_drift_age() {
        let t0 = Instant::now();
        let control = DriftControl::new();
        let ramp = DriftScenario::Gradual { ramp: Duration::from_secs(100), gain: 3.0, noise_floor: 0.0 };
        control.set(ActiveDrift { scenario: ramp, onset: t0, affected: [0].into() });
        let restarted = t0 + Duration::from_secs(100);
        let mut input = VibrationInput::new(1).started_at(restarted).with_drift(control, 0);
        input.window_at(restarted);
        assert_eq!(input.source.effect_at(restarted - input.epoch).gain, 3.0);
    }
}
