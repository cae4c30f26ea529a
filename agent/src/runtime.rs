//! Glue between the deployer and the inference worker: validation loads a candidate with
//! tract and runs its golden vectors off the reactor; serving swaps the worker's model.

use crate::deploy::{ProbationStats, Runtime, ServedModel};
use crate::inference::package::{GoldenError, check_golden};
use crate::inference::{InferenceHandle, InferenceStats, ModelInfo, TractModel};
use edgefleet_protocol::ModelName;
use edgefleet_protocol::package::{Manifest, Variant};
use edgefleet_protocol::uplink::FailureReason;
use std::path::Path;
use std::sync::Arc;

/// The agent's [`Runtime`]: tract on the CPU behind the inference worker.
#[derive(Debug, Clone)]
pub struct AgentRuntime {
    /// The worker.
    pub inference: InferenceHandle,
    /// Its statistics.
    pub stats: Arc<InferenceStats>,
}

async fn load(model_file: &Path) -> Result<TractModel, FailureReason> {
    let path = model_file.to_path_buf();
    tokio::task::spawn_blocking(move || TractModel::load(&path))
        .await
        .map_err(|e| FailureReason::ModelLoad(format!("loader thread failed: {e}")))?
        .map_err(|e| FailureReason::ModelLoad(e.to_string()))
}

impl Runtime for AgentRuntime {
    async fn validate(&self, model_file: &Path, manifest: &Manifest, variant: &Variant) -> Result<(), FailureReason> {
        let mut model = load(model_file).await?;
        let golden = manifest.golden.clone();
        let tolerance = variant.golden_tolerance;
        tokio::task::spawn_blocking(move || check_golden(&mut model, &golden, tolerance))
            .await
            .map_err(|e| FailureReason::ModelLoad(format!("validation thread failed: {e}")))?
            .map(|_| ())
            .map_err(|e| match e {
                GoldenError::Mismatch { vector, max_abs_diff, .. } => {
                    FailureReason::GoldenMismatch { vector: vector as u32, max_abs_diff }
                }
                other => FailureReason::ModelLoad(other.to_string()),
            })
    }

    async fn serve(&self, model_file: &Path, info: ServedModel) -> Result<(), FailureReason> {
        let model = load(model_file).await?;
        let info = ModelInfo { name: info.name, version_seq: info.version_seq, label: info.label };
        self.inference
            .swap(Box::new(model), info)
            .await
            .map(|_| ())
            .map_err(|e| FailureReason::ModelLoad(e.to_string()))
    }

    fn probation_stats(&self, model: &ModelName, version_seq: u64) -> ProbationStats {
        let snapshot = self.stats.snapshot();
        snapshot
            .models
            .iter()
            .find(|v| &v.model.name == model && v.model.version_seq == version_seq)
            .map(|v| ProbationStats {
                inferences: v.inference_count,
                errors: v.error_count,
                p99_us: v.latency_p99_us.unwrap_or(0),
            })
            .unwrap_or_default()
    }
}
