//! Glue between the deployer and the inference worker: validation loads a candidate with
//! tract and runs its golden vectors off the reactor; serving swaps the worker's model.

use crate::deploy::{ProbationStats, Runtime, ServedModel};
use crate::inference::package::{GoldenError, check_golden};
use crate::inference::{InferenceHandle, InferenceStats, LoadedModel, Model, ModelInfo, ModelLayer, TractModel};
use edgefleet_protocol::ModelName;
use edgefleet_protocol::drift::DriftReference;
use edgefleet_protocol::package::{Manifest, PackageHead, Variant};
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
    /// Wraps every loaded model, for validation and serving alike (simulated hardware);
    /// `None` on a real device.
    pub layer: Option<Arc<dyn ModelLayer>>,
}

impl AgentRuntime {
    async fn load(&self, model_file: &Path, info: &ModelInfo) -> Result<Box<dyn Model>, FailureReason> {
        let path = model_file.to_path_buf();
        let model = tokio::task::spawn_blocking(move || TractModel::load(&path))
            .await
            .map_err(|e| FailureReason::ModelLoad(format!("loader thread failed: {e}")))?
            .map_err(|e| FailureReason::ModelLoad(e.to_string()))?;
        Ok(match &self.layer {
            Some(layer) => layer.wrap(Box::new(model), info),
            None => Box::new(model),
        })
    }
}

/// The drift reference of the generation holding `model_file`, from the signed head stored
/// beside it (`generations.rs` layout: `model.onnx` and `head.bin` share the directory; the
/// head was verified at install). Empty when unreadable: the model is served without drift
/// summaries rather than not at all.
fn drift_reference(model_file: &Path) -> DriftReference {
    std::fs::read(model_file.with_file_name("head.bin"))
        .ok()
        .and_then(|head| PackageHead::from_bytes(&head).ok()?.manifest_unverified().ok())
        .map(|manifest| manifest.drift_reference)
        .unwrap_or_default()
}

impl Runtime for AgentRuntime {
    async fn validate(&self, model_file: &Path, manifest: &Manifest, variant: &Variant) -> Result<(), FailureReason> {
        let info =
            ModelInfo { name: manifest.name.clone(), version_seq: manifest.version_seq, label: manifest.label.clone() };
        let mut model = self.load(model_file, &info).await?;
        let golden = manifest.golden.clone();
        let tolerance = variant.golden_tolerance;
        tokio::task::spawn_blocking(move || check_golden(model.as_mut(), &golden, tolerance))
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
        let info = ModelInfo { name: info.name, version_seq: info.version_seq, label: info.label };
        let model = self.load(model_file, &info).await?;
        let drift_reference = Arc::new(drift_reference(model_file));
        self.inference
            .swap_loaded(LoadedModel { model, info, drift_reference })
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
