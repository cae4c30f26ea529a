//! The daemon in process against Mosquitto: a deployed package carrying a drift reference
//! makes the agent publish `DriftSummary` messages on its drift topic (with the ground truth
//! its input source knows counted as feedback) and sampled records on its samples topic; a
//! `SetSamplingPolicy` command is acknowledged and persisted.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::fleet::FakeFleet;
use common::{MOSQUITTO, Recorder, settings, unique_namespace};
use ed25519_dalek::SigningKey;
use edgefleet_agent::input::InputSource;
use edgefleet_protocol::command::{CommandBody, ProbationBudget, SamplingPolicy};
use edgefleet_protocol::drift::{Binning, DriftReference, FeatureReference};
use edgefleet_protocol::package::{Manifest, PackageHead, TrustStore, write_package};
use edgefleet_protocol::tensor::{Tensor, TensorData, TensorSpec};
use edgefleet_protocol::uplink::{AckResult, DeploymentState, DriftSummary, SampleBatch};
use edgefleet_protocol::{PublicKey, decode};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(path)
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn numeric(name: &str) -> FeatureReference {
    let binning = Binning::Numeric { edges: vec![-0.5, 0.0, 0.5] };
    FeatureReference { name: name.into(), counts: vec![10; binning.buckets()], binning }
}

/// The fixture package (vibration-mlp: `[1, 8]` in, 4 class scores out) with a drift reference.
fn package() -> Vec<u8> {
    let bytes = std::fs::read(fixture("packages/vibration-mlp-1.efpkg")).unwrap();
    let m = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let head_len = 16 + m + 72;
    let mut manifest: Manifest = PackageHead::from_bytes(&bytes[..head_len]).unwrap().manifest_unverified().unwrap();
    let classes = Binning::Categorical { codes: vec![0, 1, 2, 3] };
    manifest.drift_reference = DriftReference {
        features: (0..8).map(|i| numeric(&format!("f{i}"))).collect(),
        outputs: (0..4).map(|i| numeric(&format!("p{i}"))).collect(),
        prediction: Some(FeatureReference { name: "class".into(), counts: vec![5; 5], binning: classes }),
        confidence: Some(numeric("confidence")),
    };
    manifest.variants.truncate(1); // the cpu variant: the first blob
    let blob = &bytes[head_len..head_len + manifest.variants[0].size as usize];
    let mut out = Vec::new();
    write_package(&mut out, &manifest, &key(), &mut [blob]).unwrap();
    out
}

/// Fixed inputs whose true class is 0.
struct Labelled;

impl InputSource for Labelled {
    fn next(&mut self, _specs: &[TensorSpec]) -> Option<Vec<Tensor>> {
        Some(vec![Tensor {
            shape: vec![1, 8],
            data: TensorData::F32(vec![0.12, 0.8, -0.35, 1.1, 0.05, -0.6, 0.9, 0.3]),
        }])
    }

    fn ground_truth(&self) -> Option<i64> {
        Some(0)
    }
}

#[tokio::test]
async fn a_deployed_reference_produces_drift_summaries_on_the_drift_topic() {
    assert!(std::net::TcpStream::connect(MOSQUITTO).is_ok(), "this test needs Mosquitto on {MOSQUITTO}");
    let namespace = unique_namespace();
    let fleet = FakeFleet::start(&namespace).await;
    let recorder = Recorder::start(&namespace).await;
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, TrustStore::single("release", PublicKey(key().verifying_key().to_bytes())).to_toml())
        .unwrap();
    let mut s = settings("drift-1", &namespace, MOSQUITTO, &dir.path().join("data"));
    s.trust_store = trust;
    s.sampling.drift_window = Duration::from_millis(200);
    s.sampling.sample_rate = 1.0;

    let shutdown = CancellationToken::new();
    let source: Box<dyn InputSource> = Box::new(Labelled);
    let agent = tokio::spawn(edgefleet_agent::daemon::run_embedded(
        s,
        shutdown.clone(),
        edgefleet_agent::daemon::Embedding { input: Some((source, 100.0)), ..Default::default() },
    ));
    fleet.wait_birth(0).await;
    let probation =
        ProbationBudget { duration_ms: 300, min_inferences: 1, max_error_rate_ppm: 1_000_000, max_p99_latency_us: 0 };
    fleet.deploy("drift-1", 1, "vibration-mlp", 1, &package(), probation).await;
    assert_eq!(fleet.outcome(1, 20).await, DeploymentState::Committed);

    let summaries =
        || -> Vec<DriftSummary> { recorder.on("/drift").iter().map(|p| decode::<DriftSummary>(p).unwrap()).collect() };
    recorder.wait_for(10, "two drift summaries", |_| summaries().len() >= 2).await;
    let all = summaries();
    let s = &all[1];
    assert_eq!((s.model.as_str(), s.version_seq), ("vibration-mlp", 1));
    assert!(s.rows > 0 && s.window_end_ms > s.window_start_ms, "{s:?}");
    assert!(s.window_end_ms - s.window_start_ms < 2_000, "200 ms windows: {s:?}");
    assert_eq!(s.features.len(), 8);
    assert_eq!(s.features[1].bin_counts, vec![0, 0, 0, s.features[1].count], "0.8 is above every edge");
    assert_eq!(s.outputs.len(), 4);
    let prediction = s.prediction.as_ref().unwrap();
    assert_eq!(prediction.count, s.rows);
    let predicted = prediction.bin_counts.iter().position(|n| *n > 0).unwrap() as u64;
    // A label is recorded right after its inference returns, so when a window closes between
    // the two it counts in the next window: compare the sums over the windows so far, where
    // only the last inference's label can still be pending.
    let rows: u64 = all.iter().map(|w| w.rows).sum();
    let labelled: u64 = all.iter().map(|w| w.feedback.labelled).sum();
    let correct: u64 = all.iter().map(|w| w.feedback.correct).sum();
    assert!(labelled == rows || labelled + 1 == rows, "every inference came with ground truth: {labelled} of {rows}");
    assert_eq!(correct, if predicted == 0 { labelled } else { 0 });
    assert!(all.windows(2).all(|w| w[0].window_end_ms <= w[1].window_start_ms && w[0].seq < w[1].seq));

    recorder.wait_for(10, "sampled records", |r| !r.on("/samples").is_empty()).await;
    let batch = decode::<SampleBatch>(&recorder.on("/samples")[0]).unwrap();
    assert_eq!((batch.records[0].inputs.len(), batch.records[0].outputs.len()), (8, 4));

    let policy = SamplingPolicy { model: None, sample_rate: 0.0, max_sample_bytes_per_hour: 0, drift_window_ms: 50 };
    let rejected = fleet.command("drift-1", CommandBody::SetSamplingPolicy(policy.clone())).await;
    let accepted = fleet
        .command("drift-1", CommandBody::SetSamplingPolicy(SamplingPolicy { drift_window_ms: 300, ..policy }))
        .await;
    let ack = |id| fleet.seen.lock().unwrap().acks.iter().find(|a| a.command_id == id).map(|a| a.result.clone());
    for _ in 0..200 {
        if ack(accepted).is_some() && ack(rejected).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(matches!(ack(rejected), Some(AckResult::Rejected(r)) if r.contains("drift_window_ms 50")));
    assert_eq!(ack(accepted), Some(AckResult::Accepted));
    let persisted = std::fs::read_to_string(dir.path().join("data/sampling.json")).unwrap();
    assert!(persisted.contains("\"drift_window_ms\":300"), "{persisted}");

    shutdown.cancel();
    agent.await.unwrap().unwrap();
}
