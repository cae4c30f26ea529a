//! The baseline model's drift reference, built as a training pipeline would: profile the
//! training rows ([`crate::training::training_rows`]) with quantile bins, run the model on them
//! (tract, the devices' own backend) and profile its scores, predicted class and confidence.

use crate::training::training_rows;
use anyhow::{Context, Result};
use edgefleet::build::{BuildRequest, ModelArg, build_package};
use edgefleet::drift::profile::{categorical_reference, numeric_reference};
use edgefleet_agent::inference::{Model, TractModel};
use edgefleet_firmware::features::FEATURE_COUNT;
use edgefleet_protocol::drift::DriftReference;
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::Lineage;
use edgefleet_protocol::tensor::{Tensor, TensorData};
use edgefleet_protocol::{ModelName, SemVer};
use std::path::{Path, PathBuf};

/// The firmware's feature names, in vector order.
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "mean",
    "mean_square",
    "variance",
    "peak",
    "peak_to_peak",
    "crest_factor_squared",
    "zero_crossing_rate",
    "mean_abs_diff",
];

/// The example model's classes, in output order.
pub const CLASSES: [&str; 4] = ["normal", "imbalance", "bearing_wear", "misalignment"];

/// Builds a signed `vibration-mlp` package of `model` (the same file for the cpu, gpu and
/// accelerator variants) at version `seq`, carrying the drift reference of 4,000 training rows
/// (`seed`, `bins` quantile bins), as `dir/vibration-mlp-<seq>.efpkg`; the reference is also
/// kept as `dir/models/drift-reference-<seq>.json`.
pub fn vibration_package(
    dir: &Path,
    key: &Path,
    model: &Path,
    seq: u64,
    label: &str,
    seed: u64,
    bins: usize,
) -> Result<PathBuf> {
    let out = dir.join(format!("vibration-mlp-{seq}.efpkg"));
    let reference = baseline_reference(&std::fs::read(model)?, 4_000, seed, bins)?;
    std::fs::create_dir_all(dir.join("models"))?;
    let reference_path = dir.join(format!("models/drift-reference-{seq}.json"));
    std::fs::write(&reference_path, serde_json::to_vec_pretty(&reference)?)?;
    let arg = |class| ModelArg { class, precision: Precision::Fp32, path: model.to_path_buf() };
    build_package(&BuildRequest {
        name: ModelName::new("vibration-mlp").map_err(|e| anyhow::anyhow!("{e:?}"))?,
        version_seq: seq,
        label: label.into(),
        models: vec![arg(HardwareClass::Cpu), arg(HardwareClass::Gpu), arg(HardwareClass::Accelerator)],
        key: key.to_path_buf(),
        out: out.clone(),
        min_agent_version: SemVer::new(0, 1, 0),
        golden_count: 2,
        tolerance: None,
        accelerator_kind: Some("sim-npu".into()),
        drift_reference: Some(reference_path),
        lineage: Lineage { training_run_id: Some("edgefleet-sim".into()), ..Lineage::default() },
    })
    .with_context(|| format!("building {}", out.display()))?;
    Ok(out)
}

/// Profiles `rows` training rows (seeded) through `model_onnx` with `bins` quantile bins.
pub fn baseline_reference(model_onnx: &[u8], rows: usize, seed: u64, bins: usize) -> Result<DriftReference> {
    let data = training_rows(rows, seed);
    let mut reference = DriftReference::default();
    for (i, name) in FEATURE_NAMES.iter().enumerate() {
        let column: Vec<f64> = data.iter().map(|(row, _)| f64::from(row[i])).collect();
        reference.features.push(numeric_reference(name, &column, bins));
    }
    let mut model = TractModel::from_bytes(model_onnx).context("loading the baseline model")?;
    let flat: Vec<f32> = data.iter().flat_map(|(row, _)| row.iter().copied()).collect();
    let input = Tensor { shape: vec![data.len() as u64, FEATURE_COUNT as u64], data: TensorData::F32(flat) };
    let outputs = model.run(&[input]).context("running the baseline model on the training rows")?;
    let TensorData::F32(scores) = &outputs.first().context("the model has no output")?.data else {
        anyhow::bail!("the baseline model's first output is not f32");
    };
    let classes = scores.len() / data.len().max(1);
    anyhow::ensure!(classes > 0 && scores.len() == classes * data.len(), "unexpected output size {}", scores.len());
    let rows_of = || scores.chunks(classes);
    for c in 0..classes {
        let column: Vec<f64> = rows_of().map(|r| f64::from(r[c])).collect();
        let name = CLASSES.get(c).map_or(format!("score[{c}]"), |n| format!("score[{n}]"));
        reference.outputs.push(numeric_reference(&name, &column, bins));
    }
    // Argmax, first on ties, as devices compute it (WIRE.md §4.5).
    let argmax = |r: &[f32]| r.iter().enumerate().fold(0, |best, (i, v)| if *v > r[best] { i } else { best });
    let predicted: Vec<f64> = rows_of().map(|r| argmax(r) as f64).collect();
    reference.prediction = Some(categorical_reference("predicted_class", (0..classes as i64).collect(), &predicted));
    let confidence: Vec<f64> = rows_of().map(|r| f64::from(r[argmax(r)])).collect();
    reference.confidence = Some(numeric_reference("confidence", &confidence, bins));
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_reference_profiles_inputs_scores_prediction_and_confidence() {
        let model = include_bytes!("../../fixtures/models/vibration_mlp.onnx");
        let r = baseline_reference(model, 2000, 1, 10).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((r.features.len(), r.outputs.len()), (8, 4));
        assert!(r.all().all(|f| f.is_valid()));
        let prediction = r.prediction.as_ref().unwrap_or_else(|| unreachable!());
        assert_eq!(prediction.counts.iter().sum::<u64>(), 2000);
        // Codes 0..3 plus an empty "other" bucket: the model only ever predicts its classes.
        assert_eq!((prediction.counts.len(), prediction.counts[4]), (5, 0));
    }
}
