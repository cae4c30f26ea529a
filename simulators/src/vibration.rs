//! Synthetic vibration of a rotating machine, window by window.
//!
//! Each window is 256 accelerometer samples at 2 kHz of a shaft turning at ~25 Hz: the 1× tone,
//! its 2× harmonic, broadband noise, and for bearing wear periodic impacts. The machine state
//! sets the mix, so the state is recoverable from the features (the example model classifies
//! them) and drift can be injected by moving the mix.

use edgefleet_firmware::features::{FEATURE_COUNT, FeatureWindow};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Samples per window.
pub const WINDOW_LEN: usize = 256;
/// Sample rate, Hz.
pub const SAMPLE_RATE_HZ: f32 = 2000.0;

/// Ground truth: what is wrong with the machine (the example model's four classes, in order).
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
}

impl MachineState {
    /// Every state, in class-index order.
    pub const ALL: [MachineState; 4] =
        [MachineState::Normal, MachineState::Imbalance, MachineState::BearingWear, MachineState::Misalignment];

    /// (1× amplitude, 2× amplitude, noise, impact amplitude)
    fn mix(self) -> (f32, f32, f32, f32) {
        match self {
            MachineState::Normal => (0.2, 0.05, 0.05, 0.0),
            MachineState::Imbalance => (0.9, 0.08, 0.06, 0.0),
            MachineState::BearingWear => (0.25, 0.05, 0.12, 2.5),
            MachineState::Misalignment => (0.3, 0.7, 0.06, 0.0),
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
    /// Multiplies every amplitude (1.0 = as specified; drift scenarios move it).
    pub gain: f32,
    /// Added to every sample (a sensor offset; drift scenarios move it).
    pub offset: f32,
}

impl VibrationSource {
    /// A machine in `state`; the same seed gives the same windows.
    pub fn new(seed: u64, state: MachineState) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let shaft_hz = 24.0 + rng.random::<f32>() * 2.0;
        Self { rng, state, shaft_hz, phase: 0.0, gain: 1.0, offset: 0.0 }
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
        let (one_x, two_x, noise, impact) = self.state.mix();
        let mut window = FeatureWindow::new();
        let step = core::f32::consts::TAU * self.shaft_hz / SAMPLE_RATE_HZ;
        // Bearing impacts arrive ~3.6 times per revolution (a typical outer-race frequency).
        let impact_every = (SAMPLE_RATE_HZ / (self.shaft_hz * 3.6)) as usize;
        for i in 0..WINDOW_LEN {
            let white = self.rng.random::<f32>() * 2.0 - 1.0;
            let mut x = one_x * self.phase.sin() + two_x * (2.0 * self.phase).sin() + noise * white;
            if impact > 0.0 && impact_every > 0 && i % impact_every == 0 {
                x += impact * (0.8 + 0.4 * self.rng.random::<f32>());
            }
            window.push(self.gain * x + self.offset);
            self.phase = (self.phase + step) % core::f32::consts::TAU;
        }
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
