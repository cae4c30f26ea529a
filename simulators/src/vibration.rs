//! Synthetic vibration of a rotating machine, window by window.
//!
//! Each window is 256 accelerometer samples at 2 kHz of a shaft turning at ~25 Hz: the 1× tone,
//! its 2× harmonic, broadband noise, and for bearing wear periodic impacts. The machine state
//! sets the mix, so the state is recoverable from the features (the example model classifies
//! them) and drift can be injected by moving the mix (see [`crate::drift`]).
//!
//! Class indices are the example model's output order (`normal, imbalance, bearing_wear,
//! misalignment`); [`MachineState::Looseness`] is a fifth state the model never saw, labelled
//! with the new index 4 so the four known indices never move.

use edgefleet_firmware::features::{FEATURE_COUNT, FeatureWindow};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Samples per window.
pub const WINDOW_LEN: usize = 256;
/// Sample rate, Hz.
pub const SAMPLE_RATE_HZ: f32 = 2000.0;

/// Ground truth: what is wrong with the machine (the example model's four classes, in order,
/// then states the model was not trained on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineState {
    /// Healthy.
    Normal,
    /// Mass imbalance: strong 1× tone.
    Imbalance,
    /// Bearing wear: periodic impacts, high crest factor.
    BearingWear,
    /// Shaft misalignment: strong 2× harmonic.
    Misalignment,
    /// Mechanical looseness (not one of the model's classes; the new-state drift scenario):
    /// strong 3× harmonic, a ½× sub-harmonic and raised broadband noise.
    Looseness,
}

/// Amplitudes of the components a state mixes.
#[derive(Debug, Clone, Copy)]
struct Signature {
    half_x: f32,
    one_x: f32,
    two_x: f32,
    three_x: f32,
    noise: f32,
    impact: f32,
}

impl MachineState {
    /// The states the example model was trained on, in class-index order.
    pub const ALL: [MachineState; 4] =
        [MachineState::Normal, MachineState::Imbalance, MachineState::BearingWear, MachineState::Misalignment];

    /// The ground-truth label: the model's class index, or 4 for [`MachineState::Looseness`].
    pub fn class_index(self) -> i64 {
        match self {
            MachineState::Normal => 0,
            MachineState::Imbalance => 1,
            MachineState::BearingWear => 2,
            MachineState::Misalignment => 3,
            MachineState::Looseness => 4,
        }
    }

    /// The state of a machine drawn from the fleet's mix (85% normal, 5% each known fault) by
    /// `draw` (any number; only `draw % 20` matters). [`crate::input::VibrationInput::new`] and
    /// [`crate::training::training_rows`] share it so training data and fleet agree.
    pub fn from_fleet_draw(draw: u64) -> MachineState {
        match draw % 20 {
            0 => MachineState::Imbalance,
            1 => MachineState::BearingWear,
            2 => MachineState::Misalignment,
            _ => MachineState::Normal,
        }
    }

    fn signature(self) -> Signature {
        let base = Signature { half_x: 0.0, one_x: 0.0, two_x: 0.0, three_x: 0.0, noise: 0.0, impact: 0.0 };
        match self {
            MachineState::Normal => Signature { one_x: 0.2, two_x: 0.05, noise: 0.05, ..base },
            MachineState::Imbalance => Signature { one_x: 0.9, two_x: 0.08, noise: 0.06, ..base },
            MachineState::BearingWear => Signature { one_x: 0.25, two_x: 0.05, noise: 0.12, impact: 2.5, ..base },
            MachineState::Misalignment => Signature { one_x: 0.3, two_x: 0.7, noise: 0.06, ..base },
            MachineState::Looseness => {
                Signature { half_x: 0.35, one_x: 0.3, two_x: 0.1, three_x: 0.6, noise: 0.2, ..base }
            }
        }
    }
}

/// A seeded source of feature windows for one machine.
#[derive(Debug, Clone)]
pub struct VibrationSource {
    rng: SmallRng,
    state: MachineState,
    shaft_hz: f32,
    phase: f32,
    half_phase: f32,
    /// Multiplies every amplitude (1.0 = as specified; drift scenarios move it).
    pub gain: f32,
    /// Added to every sample (a sensor offset; drift scenarios move it).
    pub offset: f32,
    /// Extra broadband noise amplitude on top of the state's own (a rising noise floor; drift
    /// scenarios move it).
    pub noise_floor: f32,
}

impl VibrationSource {
    /// A machine in `state`; the same seed gives the same windows.
    pub fn new(seed: u64, state: MachineState) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let shaft_hz = 24.0 + rng.random::<f32>() * 2.0;
        Self { rng, state, shaft_hz, phase: 0.0, half_phase: 0.0, gain: 1.0, offset: 0.0, noise_floor: 0.0 }
    }

    /// Starts the shaft at `phase` radians instead of 0 (training rows use it so one-window
    /// sources do not all start in phase).
    pub fn with_phase(mut self, phase: f32) -> Self {
        self.phase = phase.rem_euclid(core::f32::consts::TAU);
        self
    }

    /// Changes the machine's state (a fault developing).
    pub fn set_state(&mut self, state: MachineState) {
        self.state = state;
    }

    /// The current ground truth.
    pub fn state(&self) -> MachineState {
        self.state
    }

    /// The next window's feature vector and the ground truth it was generated from.
    pub fn next_window(&mut self) -> ([f32; FEATURE_COUNT], MachineState) {
        let sig = self.state.signature();
        let noise = sig.noise + self.noise_floor;
        let mut window = FeatureWindow::new();
        let step = core::f32::consts::TAU * self.shaft_hz / SAMPLE_RATE_HZ;
        // Bearing impacts arrive ~3.6 times per revolution (a typical outer-race frequency).
        let impact_every = (SAMPLE_RATE_HZ / (self.shaft_hz * 3.6)) as usize;
        // The ½× sub-harmonic needs a phase that does not wrap with the shaft's; it is
        // rebuilt from a per-window counter so the 1× phase below keeps its old arithmetic
        // (the known states' windows are bit-for-bit what they were before looseness existed).
        let half_start = self.half_phase;
        for i in 0..WINDOW_LEN {
            let white = self.rng.random::<f32>() * 2.0 - 1.0;
            let mut x = sig.one_x * self.phase.sin() + sig.two_x * (2.0 * self.phase).sin() + noise * white;
            if sig.three_x > 0.0 || sig.half_x > 0.0 {
                let half = half_start + 0.5 * step * i as f32;
                x += sig.three_x * (3.0 * self.phase).sin() + sig.half_x * half.sin();
            }
            if sig.impact > 0.0 && impact_every > 0 && i % impact_every == 0 {
                x += sig.impact * (0.8 + 0.4 * self.rng.random::<f32>());
            }
            window.push(self.gain * x + self.offset);
            self.phase = (self.phase + step) % core::f32::consts::TAU;
        }
        self.half_phase = (half_start + 0.5 * step * WINDOW_LEN as f32) % core::f32::consts::TAU;
        // A non-empty window always yields features.
        (window.finish().unwrap_or([0.0; FEATURE_COUNT]), self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_states_are_distinguishable() {
        let a = VibrationSource::new(7, MachineState::Normal).next_window();
        let b = VibrationSource::new(7, MachineState::Normal).next_window();
        assert_eq!(a, b);
        let energy = |s| VibrationSource::new(1, s).next_window().0[1];
        let crest = |s| VibrationSource::new(1, s).next_window().0[5];
        assert!(energy(MachineState::Imbalance) > 3.0 * energy(MachineState::Normal));
        assert!(crest(MachineState::BearingWear) > 2.0 * crest(MachineState::Normal));
        let zcr = |s| VibrationSource::new(1, s).next_window().0[6];
        assert!(zcr(MachineState::Misalignment) > zcr(MachineState::Imbalance));
    }
}
