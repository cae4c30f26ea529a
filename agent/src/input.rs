//! Input sources: where inference requests come from besides the local API.
//!
//! A source turns the active model's input specs into tensors; the daemon feeds them to the
//! inference worker at the configured rate. `SyntheticSource` (seeded uniform noise in
//! [-1, 1), symbolic dimensions = 1) exercises a model on a bench and gives probation real
//! traffic; the serial sensor input (`crate::sensor`) pushes
//! frames instead, through a bounded queue, and [`tensors_from_values`] shapes them.

use edgefleet_protocol::tensor::{Dim, ElemType, Tensor, TensorData, TensorSpec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Produces one set of model inputs at a time.
pub trait InputSource: Send {
    /// Inputs for a model with these input specs, or `None` when the source has nothing now.
    fn next(&mut self, specs: &[TensorSpec]) -> Option<Vec<Tensor>>;

    /// The true class of the inputs [`Self::next`] returned last, when the source knows it
    /// (a simulator does; a real sensor does not). The daemon records it as ground-truth
    /// feedback for that inference, exactly as `POST /v1/feedback` would.
    fn ground_truth(&self) -> Option<i64> {
        None
    }
}

impl<T: InputSource + ?Sized> InputSource for Box<T> {
    fn next(&mut self, specs: &[TensorSpec]) -> Option<Vec<Tensor>> {
        (**self).next(specs)
    }

    fn ground_truth(&self) -> Option<i64> {
        (**self).ground_truth()
    }
}

/// One sensor frame's values as the model's inputs: a model with one `f32` input whose fixed
/// dimensions hold exactly `values.len()` elements (symbolic dimensions = 1), e.g. `[1, 8]`
/// for an 8-feature frame. `None` when the model wants something else.
pub fn tensors_from_values(specs: &[TensorSpec], values: Vec<f32>) -> Option<Vec<Tensor>> {
    let [spec] = specs else { return None };
    if spec.elem != ElemType::F32 {
        return None;
    }
    let shape: Vec<u64> = spec.shape.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect();
    let count = usize::try_from(shape.iter().product::<u64>()).ok()?;
    (count == values.len()).then(|| vec![Tensor { shape, data: TensorData::F32(values) }])
}

/// Seeded random inputs shaped like the model's.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    rng: SmallRng,
}

impl SyntheticSource {
    /// A source with `seed`; the same seed gives the same inputs.
    pub fn new(seed: u64) -> Self {
        Self { rng: SmallRng::seed_from_u64(seed) }
    }
}

impl InputSource for SyntheticSource {
    fn next(&mut self, specs: &[TensorSpec]) -> Option<Vec<Tensor>> {
        specs
            .iter()
            .map(|spec| {
                let shape: Vec<u64> = spec.shape.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect();
                let count = usize::try_from(shape.iter().product::<u64>()).ok()?;
                let data = match spec.elem {
                    ElemType::F32 | ElemType::F16 | ElemType::F64 => {
                        TensorData::F32((0..count).map(|_| self.rng.random_range(-1.0f32..1.0)).collect())
                    }
                    ElemType::I64 => TensorData::I64((0..count).map(|_| self.rng.random_range(0..10)).collect()),
                    ElemType::I32 | ElemType::I16 => {
                        TensorData::I32((0..count).map(|_| self.rng.random_range(0..10)).collect())
                    }
                    ElemType::U8 => TensorData::U8((0..count).map(|_| self.rng.random_range(0..10)).collect()),
                    ElemType::I8 => TensorData::I8((0..count).map(|_| self.rng.random_range(0..10)).collect()),
                    ElemType::Bool => TensorData::Bool((0..count).map(|_| self.rng.random_bool(0.5)).collect()),
                };
                Some(Tensor { shape, data })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_spec_and_the_seed_repeats() {
        let specs = vec![TensorSpec {
            name: "features".into(),
            elem: ElemType::F32,
            shape: vec![Dim::Symbolic("batch".into()), Dim::Fixed(8)],
        }];
        let a = SyntheticSource::new(3).next(&specs).unwrap();
        let b = SyntheticSource::new(3).next(&specs).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].shape, vec![1, 8]);
        assert!(a[0].is_consistent());
    }

    #[test]
    fn frame_values_fill_a_matching_input_only() {
        let spec =
            |elem, n| TensorSpec { name: "x".into(), elem, shape: vec![Dim::Symbolic("b".into()), Dim::Fixed(n)] };
        let t = tensors_from_values(&[spec(ElemType::F32, 3)], vec![1.0, 2.0, 3.0]).unwrap();
        assert_eq!(t[0].shape, vec![1, 3]);
        assert!(tensors_from_values(&[spec(ElemType::F32, 4)], vec![1.0, 2.0, 3.0]).is_none());
        assert!(tensors_from_values(&[spec(ElemType::I64, 3)], vec![1.0, 2.0, 3.0]).is_none());
    }
}
