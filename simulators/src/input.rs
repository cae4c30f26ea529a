//! Simulated sensor input for agents: each device watches one machine whose state (normal,
//! imbalance, bearing wear, misalignment) is drawn from its seed, and feeds the model the
//! feature vectors the firmware would compute from that machine's vibration.

use crate::vibration::{MachineState, VibrationSource};
use edgefleet_agent::input::InputSource;
use edgefleet_protocol::tensor::{Dim, ElemType, Tensor, TensorData, TensorSpec};

/// An [`InputSource`] of vibration features for models taking `f32[batch, 8]`.
#[derive(Debug)]
pub struct VibrationInput {
    source: VibrationSource,
}

impl VibrationInput {
    /// A machine picked by `seed`: 85% normal, 5% each fault.
    pub fn new(seed: u64) -> Self {
        let state = match seed % 20 {
            0 => MachineState::Imbalance,
            1 => MachineState::BearingWear,
            2 => MachineState::Misalignment,
            _ => MachineState::Normal,
        };
        VibrationInput { source: VibrationSource::new(seed, state) }
    }

    /// The machine's state (ground truth).
    pub fn state(&self) -> MachineState {
        self.source.state()
    }
}

impl InputSource for VibrationInput {
    fn next(&mut self, specs: &[TensorSpec]) -> Option<Vec<Tensor>> {
        // One f32 input whose last dimension is the feature count; anything else is not a
        // vibration model and gets nothing from this sensor.
        let [spec] = specs else { return None };
        let features = match spec.shape.last() {
            Some(Dim::Fixed(n)) => *n as usize,
            _ => return None,
        };
        if spec.elem != ElemType::F32 || features != 8 || spec.shape.len() != 2 {
            return None;
        }
        let (window, _) = self.source.next_window();
        Some(vec![Tensor { shape: vec![1, 8], data: TensorData::F32(window.to_vec()) }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let other = TensorSpec { shape: vec![Dim::Fixed(1), Dim::Fixed(3)], ..spec };
        assert!(input.next(&[other]).is_none());
    }
}
