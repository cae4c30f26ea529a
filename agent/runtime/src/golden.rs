//! Golden vectors: replaying a package manifest's recorded inputs through a [`Model`] and
//! comparing the outputs with the recorded ones, within the variant's tolerance. The agent runs
//! this on a candidate before it activates it.

use crate::model::{InferenceError, Model};
use edgefleet_protocol::package::GoldenVector;
use edgefleet_protocol::tensor::{Comparison, Tolerance};

/// Golden vectors did not reproduce.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoldenError {
    /// The model could not run a golden vector.
    #[error("golden vector {vector}: {source}")]
    Inference {
        /// Index of the vector.
        vector: usize,
        /// Why.
        source: InferenceError,
    },
    /// An output is outside the tolerance (or has the wrong shape or count).
    #[error("golden vector {vector}, output {output}: max |difference| {max_abs_diff:e} is outside tolerance (abs {}, rel {})", tolerance.abs, tolerance.rel)]
    Mismatch {
        /// Index of the vector.
        vector: usize,
        /// Index of the output.
        output: usize,
        /// Largest absolute difference (infinite for a shape mismatch or NaN).
        max_abs_diff: f64,
        /// The tolerance applied.
        tolerance: Tolerance,
    },
}

/// Runs every golden vector through `model`; returns the largest absolute difference seen.
pub fn check_golden(model: &mut dyn Model, golden: &[GoldenVector], tolerance: Tolerance) -> Result<f64, GoldenError> {
    let mut worst = 0.0f64;
    for (vector, g) in golden.iter().enumerate() {
        let actual = model.run(&g.inputs).map_err(|source| GoldenError::Inference { vector, source })?;
        if actual.len() != g.expected.len() {
            let max_abs_diff = f64::INFINITY;
            return Err(GoldenError::Mismatch {
                vector,
                output: actual.len().min(g.expected.len()),
                max_abs_diff,
                tolerance,
            });
        }
        for (output, (expected, actual)) in g.expected.iter().zip(&actual).enumerate() {
            match tolerance.compare(expected, actual) {
                Comparison::Within { max_abs_diff } => worst = worst.max(max_abs_diff),
                Comparison::Outside { max_abs_diff } => {
                    return Err(GoldenError::Mismatch { vector, output, max_abs_diff, tolerance });
                }
            }
        }
    }
    Ok(worst)
}
