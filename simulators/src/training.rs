//! The simulator's reference distribution: "training data" rows for the baseline model, drawn
//! like the undrifted fleet (85% normal machines, 5% each known fault), so a drift reference
//! built from them matches a healthy simulated fleet and only the drift scenarios move away.

use crate::vibration::{MachineState, VibrationSource};
use edgefleet_firmware::features::FEATURE_COUNT;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// `n` feature rows with the state each was generated from; the same seed gives the same rows.
///
/// Each row comes from its own machine (its own shaft speed and starting phase), as a fleet's
/// windows come from many machines. Only the four known states appear: the new-state scenario's
/// looseness is by definition absent from training data.
pub fn training_rows(n: usize, seed: u64) -> Vec<([f32; FEATURE_COUNT], MachineState)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let state = MachineState::from_fleet_draw(rng.random());
            let phase = rng.random::<f32>() * core::f32::consts::TAU;
            VibrationSource::new(rng.random(), state).with_phase(phase).next_window()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_fleet_mix_deterministically() {
        let rows = training_rows(4000, 9);
        assert_eq!(rows, training_rows(4000, 9));
        assert_ne!(rows[..10], training_rows(10, 10)[..]);
        let share = |s| rows.iter().filter(|r| r.1 == s).count() as f64 / rows.len() as f64;
        assert!((share(MachineState::Normal) - 0.85).abs() < 0.02, "{}", share(MachineState::Normal));
        for fault in [MachineState::Imbalance, MachineState::BearingWear, MachineState::Misalignment] {
            assert!((share(fault) - 0.05).abs() < 0.015, "{fault:?}: {}", share(fault));
        }
        assert_eq!(share(MachineState::Looseness), 0.0);
        assert!(rows.iter().all(|r| r.0.iter().all(|x| x.is_finite())));
    }
}
