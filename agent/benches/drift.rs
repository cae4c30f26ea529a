//! Drift summary cost: `cargo bench -p edgefleet-agent --bench drift`.
//!
//! 1. One numeric feature value into a `FeatureSummary` with 10 quantile bins (9 edges), over
//!    8 features × 1,000,000 rows (target ≤ 25 ns per value).
//! 2. `DriftTracker::observe` for a model-shaped inference: a `[1, 8]` f32 input and a
//!    `[1, 4]` output, with 8 feature, 4 output, prediction and confidence references.
//! 3. The worker's whole per-inference path, `Drift::observe` (mutex, feedback log, tracker,
//!    sampling coin flip at rate 0.01 with the default byte budget).
//! 4. State bytes per numeric feature: `size_of::<FeatureSummary>()` plus its bucket counts on
//!    the heap (target ≤ 256 bytes).
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet_agent::drift::{Drift, DriftHub, DriftTracker, Overrides, Policy};
use edgefleet_agent::inference::ModelInfo;
use edgefleet_protocol::ModelName;
use edgefleet_protocol::drift::{Binning, DriftReference, FeatureReference, FeatureSummary};
use edgefleet_protocol::tensor::{Tensor, TensorData};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const FEATURES: usize = 8;
const ROWS: usize = 1_000_000;
const INFERENCES: usize = 1_000_000;

/// A small deterministic generator (xorshift), so the benchmark needs no extra crate.
struct Xorshift(u64);

impl Xorshift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal (sum of uniforms), mean 0, sd 1.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }
}

/// Deciles of the standard normal: 10 quantile bins.
fn deciles() -> Binning {
    Binning::Numeric { edges: vec![-1.2816, -0.8416, -0.5244, -0.2533, 0.0, 0.2533, 0.5244, 0.8416, 1.2816] }
}

fn reference(name: &str, binning: Binning) -> FeatureReference {
    FeatureReference { name: name.into(), counts: vec![100; binning.buckets()], binning }
}

fn main() {
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    // 1. Raw FeatureSummary::observe.
    let values: Vec<f64> = (0..1 << 16).map(|_| rng.normal()).collect();
    let mask = values.len() - 1;
    let binnings: Vec<Binning> = (0..FEATURES).map(|_| deciles()).collect();
    let mut summaries: Vec<FeatureSummary> = binnings.iter().map(|b| FeatureSummary::empty(b.buckets())).collect();
    let start = Instant::now();
    for row in 0..ROWS {
        for (i, (summary, binning)) in summaries.iter_mut().zip(&binnings).enumerate() {
            summary.observe(binning, black_box(values[(row * FEATURES + i) & mask]));
        }
    }
    let per_value = start.elapsed().as_nanos() as f64 / (ROWS * FEATURES) as f64;
    black_box(&summaries);

    // 2. The tracker over model-shaped tensors.
    let full = Arc::new(DriftReference {
        features: (0..FEATURES).map(|i| reference(&format!("f{i}"), deciles())).collect(),
        outputs: (0..4)
            .map(|i| reference(&format!("p{i}"), Binning::Numeric { edges: vec![0.25, 0.5, 0.75] }))
            .collect(),
        prediction: Some(reference("class", Binning::Categorical { codes: vec![0, 1, 2, 3] })),
        confidence: Some(reference("confidence", Binning::Numeric { edges: vec![0.5, 0.7, 0.9] })),
    });
    let inputs: Vec<Vec<Tensor>> = (0..256)
        .map(|_| {
            let x = (0..FEATURES).map(|_| rng.normal() as f32).collect();
            vec![Tensor { shape: vec![1, FEATURES as u64], data: TensorData::F32(x) }]
        })
        .collect();
    let outputs: Vec<Vec<Tensor>> = (0..256)
        .map(|_| {
            let y: Vec<f32> = (0..4).map(|_| rng.unit() as f32).collect();
            let total: f32 = y.iter().sum();
            vec![Tensor { shape: vec![1, 4], data: TensorData::F32(y.iter().map(|v| v / total).collect()) }]
        })
        .collect();
    let name = ModelName::new("vibration-mlp").unwrap();
    let mut tracker = DriftTracker::new(name.clone(), 1, full.clone(), 0);
    let start = Instant::now();
    for n in 0..INFERENCES {
        tracker.observe(black_box(&inputs[n & 255]), black_box(&outputs[n & 255]));
    }
    let per_inference = start.elapsed().as_nanos() as f64 / INFERENCES as f64;
    let values_per_inference = (FEATURES + 4 + 2) as f64;
    assert_eq!(tracker.rows(), INFERENCES as u64);

    // 3. The worker's path through the shared hub.
    let policy = Policy { sample_rate: 0.01, max_sample_bytes_per_hour: 1 << 20, drift_window_ms: 60_000 };
    let drift = Drift::new(DriftHub::new(policy, Overrides::default(), 7));
    drift.activate(0, Some(ModelInfo { name, version_seq: 1, label: "1.0.0".into() }), full);
    let start = Instant::now();
    for n in 0..INFERENCES {
        drift.observe(
            1_000 + n as u64 / 1_000,
            n as u64 + 1,
            black_box(&inputs[n & 255]),
            black_box(&outputs[n & 255]),
        );
    }
    let per_hub_inference = start.elapsed().as_nanos() as f64 / INFERENCES as f64;

    // 4. State per numeric feature.
    let summary = FeatureSummary::empty(deciles().buckets());
    let state = std::mem::size_of::<FeatureSummary>() + summary.bin_counts.capacity() * std::mem::size_of::<u64>();

    println!("| what | result | target |");
    println!("|---|---|---|");
    println!(
        "| numeric feature value, 10 quantile bins ({FEATURES} features × {ROWS} rows) | {per_value:.1} ns/value | ≤ 25 ns |"
    );
    println!(
        "| `DriftTracker::observe`, [1,8] in + [1,4] out (14 values) | {per_inference:.0} ns/inference ({:.1} ns/value) | — |",
        per_inference / values_per_inference
    );
    println!(
        "| `Drift::observe` (worker path: lock, feedback log, tracker, 1% sampling) | {per_hub_inference:.0} ns/inference | — |"
    );
    println!(
        "| state per numeric feature (size_of FeatureSummary {} B + {} bucket counts) | {state} B | ≤ 256 B |",
        std::mem::size_of::<FeatureSummary>(),
        summary.bin_counts.len()
    );
}
