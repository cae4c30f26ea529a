//! `uses: evaluate`: runs a candidate model (and a baseline, when given) through the shared
//! inference runtime (`edgefleet_runtime::TractModel`, the code devices run) on a labelled CSV
//! and writes `metrics.json`: accuracy, recall per class, log loss, latency. A `min_accuracy`
//! the candidate misses fails the step.
//!
//! The CSV has a header; every column but the label is a feature, in order, fed as one row of
//! the model's first input (`[1, features]`); the label is the class index. The model's first
//! float output with one score per class is read as class probabilities (a softmax is applied
//! when the scores are not already probabilities).

use super::runner::{BuiltinCall, BuiltinOutcome};
use edgefleet_protocol::tensor::{Tensor, TensorData};
use edgefleet_runtime::{Model, TractModel};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// A labelled table.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// Feature rows.
    pub rows: Vec<Vec<f32>>,
    /// Class index per row.
    pub labels: Vec<usize>,
}

/// Reads a labelled CSV: `label_column` (default `label`, else the last column) is the class.
pub fn read_labelled(path: &Path, label_column: Option<&str>) -> Result<Labelled, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header: Vec<String> =
        reader.headers().map_err(|e| format!("{}: {e}", path.display()))?.iter().map(str::to_string).collect();
    if header.len() < 2 {
        return Err(format!("{}: needs at least one feature column and a label column", path.display()));
    }
    let label_at = match label_column {
        Some(name) => header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{}: no column {name:?} (columns: {})", path.display(), header.join(", ")))?,
        None => header.iter().position(|h| h == "label").unwrap_or(header.len() - 1),
    };
    let mut out = Labelled { rows: Vec::new(), labels: Vec::new() };
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| format!("{}: line {line}: {e}", path.display()))?;
        let mut row = Vec::with_capacity(header.len() - 1);
        for (col, field) in record.iter().enumerate() {
            if col == label_at {
                let label = field.trim().parse::<f64>().ok().filter(|v| v.fract() == 0.0 && *v >= 0.0);
                let label = label
                    .ok_or_else(|| format!("{}: line {line}: label {field:?} is not a class index", path.display()))?;
                out.labels.push(label as usize);
            } else {
                let value = field.trim().parse::<f32>().map_err(|_| {
                    format!("{}: line {line}: column {:?}: {field:?} is not a number", path.display(), header[col])
                })?;
                row.push(value);
            }
        }
        out.rows.push(row);
    }
    if out.rows.is_empty() {
        return Err(format!("{}: no rows", path.display()));
    }
    Ok(out)
}

/// What one model scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Share of rows whose most probable class is the label.
    pub accuracy: f64,
    /// Per class index: share of its rows predicted as it.
    pub recall: BTreeMap<usize, f64>,
    /// Mean negative log probability of the label (probabilities clamped at 1e-15).
    pub log_loss: f64,
    /// Median inference latency, µs.
    pub latency_p50_us: f64,
    /// 99th percentile latency, µs.
    pub latency_p99_us: f64,
}

fn probabilities(scores: &[f32]) -> Vec<f64> {
    let is_distribution = scores.iter().all(|s| (0.0..=1.0).contains(s))
        && (scores.iter().map(|s| *s as f64).sum::<f64>() - 1.0).abs() < 1e-3;
    if is_distribution {
        return scores.iter().map(|s| *s as f64).collect();
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = scores.iter().map(|s| (*s as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Runs `model` on every row of `data`.
pub fn score(model: &mut dyn Model, data: &Labelled) -> Result<Scores, String> {
    let Some(input) = model.inputs().first().cloned() else {
        return Err("the model has no input".into());
    };
    let mut latencies = Vec::with_capacity(data.rows.len());
    let (mut correct, mut loss) = (0usize, 0.0f64);
    let mut per_class: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (row, &label) in data.rows.iter().zip(&data.labels) {
        let tensor = Tensor { shape: vec![1, row.len() as u64], data: TensorData::F32(row.clone()) };
        let started = Instant::now();
        let outputs = model.run(&[tensor]).map_err(|e| format!("input {}: {e}", input.name))?;
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        let scores = outputs
            .iter()
            .find_map(|t| match &t.data {
                TensorData::F32(v) if v.len() >= 2 => Some(v.clone()),
                _ => None,
            })
            .ok_or("the model has no float output with a score per class")?;
        if label >= scores.len() {
            return Err(format!("label {label} is not a class of a model with {} outputs", scores.len()));
        }
        let p = probabilities(&scores);
        let predicted = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
        let entry = per_class.entry(label).or_default();
        entry.0 += 1;
        if predicted == label {
            correct += 1;
            entry.1 += 1;
        }
        loss -= p[label].clamp(1e-15, 1.0).ln();
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let n = data.rows.len() as f64;
    Ok(Scores {
        accuracy: correct as f64 / n,
        recall: per_class.into_iter().map(|(c, (total, hit))| (c, hit as f64 / total as f64)).collect(),
        log_loss: loss / n,
        latency_p50_us: at(0.5),
        latency_p99_us: at(0.99),
    })
}

fn metrics(prefix: &str, s: &Scores, out: &mut serde_json::Map<String, serde_json::Value>) {
    out.insert(format!("{prefix}accuracy"), json!(s.accuracy));
    out.insert(format!("{prefix}log_loss"), json!(s.log_loss));
    out.insert(format!("{prefix}latency_p50_us"), json!(s.latency_p50_us));
    out.insert(format!("{prefix}latency_p99_us"), json!(s.latency_p99_us));
    let recall: serde_json::Map<String, serde_json::Value> =
        s.recall.iter().map(|(c, r)| (c.to_string(), json!(r))).collect();
    out.insert(format!("{prefix}recall"), serde_json::Value::Object(recall));
}

fn load(path: &str) -> Result<TractModel, String> {
    TractModel::load(Path::new(path)).map_err(|e| format!("{path}: {e}"))
}

/// Runs the step (blocking).
pub fn run(call: &BuiltinCall) -> Result<BuiltinOutcome, String> {
    let arg = |k: &str| call.with.get(k).map(String::as_str);
    let data = read_labelled(Path::new(arg("data").unwrap_or_default()), arg("label_column"))?;
    let candidate = score(&mut load(arg("candidate").unwrap_or_default())?, &data)?;
    let mut out = serde_json::Map::new();
    out.insert("rows".into(), json!(data.rows.len()));
    metrics("", &candidate, &mut out);
    let mut summary = format!("candidate: accuracy {:.4}, log loss {:.4}", candidate.accuracy, candidate.log_loss);
    if let Some(baseline) = arg("baseline") {
        let base = score(&mut load(baseline)?, &data)?;
        let mut b = serde_json::Map::new();
        metrics("", &base, &mut b);
        out.insert("baseline".into(), serde_json::Value::Object(b));
        out.insert("accuracy_delta".into(), json!(candidate.accuracy - base.accuracy));
        summary += &format!("; baseline: accuracy {:.4}, log loss {:.4}", base.accuracy, base.log_loss);
    }
    let bytes = serde_json::to_vec_pretty(&serde_json::Value::Object(out)).map_err(|e| e.to_string())?;
    std::fs::write(call.work.join("metrics.json"), bytes).map_err(|e| format!("writing metrics.json: {e}"))?;
    if let Some(path) = call.outputs.get("metrics") {
        std::fs::copy(call.work.join("metrics.json"), path).map_err(|e| format!("writing its metrics output: {e}"))?;
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&call.log) {
        use std::io::Write;
        let _ = writeln!(f, "{} rows; {summary}", data.rows.len());
    }
    if let Some(min) = arg("min_accuracy") {
        let min = crate::rollout::plan::parse_rate("min_accuracy", min).map_err(|e| e.to_string())?;
        if candidate.accuracy < min {
            return Err(format!("accuracy {:.4} is below min_accuracy {min:.4}", candidate.accuracy));
        }
    }
    Ok(BuiltinOutcome::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trained_fixture_scores_well_and_bad_tables_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models");
        // A row per class, from the simulator's states: the untrained model gets some wrong.
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, "a,b,c,d,e,f,g,h,label\n0,0,0,0,0,0,0,0,0\n1,2,3,4,5,6,7,8,2\n").expect("write");
        let data = read_labelled(&csv, None).expect("table");
        assert_eq!(data.labels, vec![0, 2]);
        let mut model = TractModel::load(&fixtures.join("vibration_mlp.onnx")).expect("model");
        let s = score(&mut model, &data).expect("score");
        assert!((0.0..=1.0).contains(&s.accuracy));
        assert!(s.log_loss > 0.0 && s.latency_p99_us >= s.latency_p50_us);
        assert_eq!(s.recall.len(), 2);

        std::fs::write(&csv, "a,label\nx,1\n").expect("write");
        assert!(read_labelled(&csv, None).unwrap_err().contains("\"x\" is not a number"));
        std::fs::write(&csv, "a,label\n1,0.5\n").expect("write");
        assert!(read_labelled(&csv, None).unwrap_err().contains("not a class index"));
        assert!(read_labelled(&csv, Some("y")).unwrap_err().contains("no column \"y\""));
        std::fs::write(&csv, "a,label\n1,9\n").expect("write");
        let nine = read_labelled(&csv, None).expect("table");
        let mut model = TractModel::load(&fixtures.join("vibration_mlp.onnx")).expect("model");
        assert!(score(&mut model, &nine).is_err(), "one input column for an 8-feature model");
    }

    #[test]
    fn probabilities_pass_through_and_logits_are_softmaxed() {
        assert_eq!(probabilities(&[0.25, 0.75]), vec![0.25, 0.75]);
        let p = probabilities(&[2.0, 0.0]);
        assert!((p[0] - 0.880_797).abs() < 1e-5 && (p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
