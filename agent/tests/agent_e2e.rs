//! The agent binary end to end against Mosquitto: signed packages sent by a (stand-in) fleet
//! are downloaded in chunks, verified, installed and served on `POST /v1/infer`; bad packages
//! are refused with their reason; a version that fails probation is rolled back; and a SIGKILL
//! at every install step leaves a verified model serving and the deployment resolved.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::fleet::FakeFleet;
use common::process::{AgentProcess, http, write_config};
use common::{MOSQUITTO, unique_namespace};
use ed25519_dalek::SigningKey;
use edgefleet_agent::inference::{Model, TractModel};
use edgefleet_protocol::PublicKey;
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::package::{GoldenVector, Manifest, PackageHead, TrustStore, hash_reader, write_package};
use edgefleet_protocol::uplink::{DeploymentState, FailureReason};
use edgefleet_protocol::{ModelName, package::PackageError};
use std::path::{Path, PathBuf};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(path)
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// The committed fixture package's manifest: real schema and golden vectors for vibration_mlp.
fn fixture_manifest() -> Manifest {
    let bytes = std::fs::read(fixture("packages/vibration-mlp-1.efpkg")).unwrap();
    let m = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    PackageHead::from_bytes(&bytes[..16 + m + 72]).unwrap().manifest_unverified().unwrap()
}

/// A cpu-only package of `model` as `version_seq`, golden vectors from `golden_model` (what
/// the device must reproduce), signed by `signer`.
fn package(version_seq: u64, model: &[u8], golden_model: &[u8], signer: &SigningKey) -> Vec<u8> {
    let mut manifest = fixture_manifest();
    manifest.name = ModelName::new("vibration-mlp").unwrap();
    manifest.version_seq = version_seq;
    manifest.label = format!("1.{version_seq}.0");
    let mut variant = manifest.variants[0].clone();
    let (digest, size) = hash_reader(model).unwrap();
    variant.digest = digest;
    variant.size = size;
    manifest.variants = vec![variant];
    let mut reference = TractModel::from_bytes(golden_model).unwrap();
    manifest.golden = manifest
        .golden
        .iter()
        .map(|g| GoldenVector { inputs: g.inputs.clone(), expected: reference.run(&g.inputs).unwrap() })
        .collect();
    let mut out = Vec::new();
    write_package(&mut out, &manifest, signer, &mut [model]).unwrap();
    out
}

fn model(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("models/{name}"))).unwrap()
}

fn trust_file(dir: &Path) -> PathBuf {
    let path = dir.join("trust.toml");
    std::fs::write(&path, TrustStore::single("release", PublicKey(key().verifying_key().to_bytes())).to_toml())
        .unwrap();
    path
}

const QUICK: ProbationBudget =
    ProbationBudget { duration_ms: 300, min_inferences: 1_000, max_error_rate_ppm: 0, max_p99_latency_us: 0 };

async fn infer(api: &str) -> serde_json::Value {
    let body = r#"{"inputs":[{"name":"features","shape":[1,8],"data":[0.12,0.8,-0.35,1.1,0.05,-0.6,0.9,0.3]}]}"#;
    let (status, text) = http(api, "POST", "/v1/infer", Some(body)).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn served_version(api: &str) -> Option<u64> {
    let (status, text) = http(api, "GET", "/v1/status", None).await;
    assert_eq!(status, 200, "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value.pointer("/active_model/version_seq").and_then(|v| v.as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_serves_refuses_and_rolls_back() {
    let namespace = unique_namespace();
    let fleet = FakeFleet::start(&namespace).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "edge-1", &namespace, MOSQUITTO, &trust_file(dir.path()));
    let mut agent = AgentProcess::start(&config, None);
    let api = agent.api().await;
    fleet.wait_birth(0).await;
    assert_eq!(served_version(&api).await, None, "nothing installed yet");

    let mlp = model("vibration_mlp.onnx");
    fleet.deploy("edge-1", 1, "vibration-mlp", 1, &package(1, &mlp, &mlp, &key()), QUICK).await;
    assert_eq!(fleet.outcome(1, 30).await, DeploymentState::Committed);
    let answer = infer(&api).await;
    assert_eq!(answer["model"]["version_seq"], 1);
    let scores: Vec<f64> =
        answer["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(scores.len(), 4);
    assert!((scores.iter().sum::<f64>() - 1.0).abs() < 1e-4);

    // Signed by a key the device does not trust: refused with the reason, v1 keeps serving.
    let stranger = SigningKey::from_bytes(&[7; 32]);
    fleet.deploy("edge-1", 2, "vibration-mlp", 2, &package(2, &mlp, &mlp, &stranger), QUICK).await;
    assert!(matches!(
        fleet.outcome(2, 30).await,
        DeploymentState::Failed(FailureReason::Package(PackageError::UnknownKey(_)))
    ));

    // A downgrade is refused by anti-rollback before anything is fetched past the head.
    fleet.deploy("edge-1", 3, "vibration-mlp", 0, &package(0, &mlp, &mlp, &key()), QUICK).await;
    assert!(matches!(
        fleet.outcome(3, 30).await,
        DeploymentState::Failed(FailureReason::Package(PackageError::NotNewer { installed: 1, offered: 0 }))
    ));

    // A model that does not reproduce its golden vectors never activates.
    let faulty = model("vibration_mlp_v2_faulty.onnx");
    fleet.deploy("edge-1", 4, "vibration-mlp", 4, &package(4, &faulty, &mlp, &key()), QUICK).await;
    assert!(matches!(fleet.outcome(4, 30).await, DeploymentState::Failed(FailureReason::GoldenMismatch { .. })));
    assert_eq!(served_version(&api).await, Some(1));

    // A version over its probation latency budget is rolled back to last-known-good.
    let strict =
        ProbationBudget { duration_ms: 20_000, min_inferences: 3, max_error_rate_ppm: 0, max_p99_latency_us: 1 };
    fleet.deploy("edge-1", 5, "vibration-mlp", 5, &package(5, &mlp, &mlp, &key()), strict).await;
    for _ in 0..400 {
        if served_version(&api).await == Some(5) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    for _ in 0..5 {
        infer(&api).await;
    }
    let outcome = fleet.outcome(5, 30).await;
    assert!(
        matches!(
            outcome,
            DeploymentState::RolledBack {
                to_version_seq: 1,
                reason: FailureReason::ProbationLatency { budget_us: 1, .. }
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(served_version(&api).await, Some(1));
    assert_eq!(infer(&api).await["model"]["version_seq"], 1);

    // SIGTERM: clean exit.
    let status = agent.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_install_step_leaves_a_verified_model_serving() {
    let mlp = model("vibration_mlp.onnx");
    let wide = model("vibration_mlp_wide.onnx");
    let v1 = package(1, &mlp, &mlp, &key());
    let v2 = package(2, &wide, &wide, &key());
    let probation =
        ProbationBudget { duration_ms: 500, min_inferences: 1_000, max_error_rate_ppm: 0, max_p99_latency_us: 0 };
    // Where the crash happens → what the restarted agent must end up serving.
    let cases = [
        ("fetched-head", 2),
        ("mid-blob", 2),
        ("fetched-blob", 2),
        ("installed", 2),
        ("before-switch", 1),
        ("after-switch", 1),
        ("activated", 1),
        ("probation", 1),
    ];
    for (point, expected) in cases {
        let namespace = unique_namespace();
        let fleet = FakeFleet::start(&namespace).await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), "edge-k", &namespace, MOSQUITTO, &trust_file(dir.path()));

        let mut agent = AgentProcess::start(&config, None);
        agent.api().await;
        fleet.wait_birth(0).await;
        fleet.deploy("edge-k", 1, "vibration-mlp", 1, &v1, QUICK).await;
        assert_eq!(fleet.outcome(1, 30).await, DeploymentState::Committed, "{point}: v1");
        agent.kill();

        let births = fleet.births();
        let mut crashing = AgentProcess::start(&config, Some(point));
        crashing.api().await;
        fleet.wait_birth(births).await;
        fleet.deploy("edge-k", 2, "vibration-mlp", 2, &v2, probation).await;
        let status = crashing.wait_exit(30).await;
        assert!(!status.success(), "{point}: the crash point must fire");

        let agent = AgentProcess::start(&config, None);
        let api = agent.api().await;
        let outcome = fleet.outcome(2, 30).await;
        let served = served_version(&api).await;
        assert_eq!(served, Some(expected), "{point}: outcome {outcome:?}");
        assert_eq!(infer(&api).await["model"]["version_seq"], expected, "{point}");
        match expected {
            2 => assert_eq!(outcome, DeploymentState::Committed, "{point}"),
            _ => assert!(
                matches!(
                    outcome,
                    DeploymentState::RolledBack { to_version_seq: 1, .. }
                        | DeploymentState::Failed(FailureReason::Crashed(_))
                ),
                "{point}: {outcome:?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_and_queues_without_a_network_then_delivers() {
    let namespace = unique_namespace();
    let fleet = FakeFleet::start(&namespace).await;
    let recorder = common::Recorder::start(&namespace).await;
    let dir = tempfile::tempdir().unwrap();
    let trust = trust_file(dir.path());
    let online = write_config(dir.path(), "edge-o", &namespace, MOSQUITTO, &trust);
    let mut agent = AgentProcess::start(&online, None);
    agent.api().await;
    fleet.wait_birth(0).await;
    let mlp = model("vibration_mlp.onnx");
    fleet.deploy("edge-o", 1, "vibration-mlp", 1, &package(1, &mlp, &mlp, &key()), QUICK).await;
    assert_eq!(fleet.outcome(1, 30).await, DeploymentState::Committed);
    assert!(agent.terminate().await.success());
    let seen_online = recorder.on("/devices/edge-o/health").len();

    // No broker at all (connection refused): the agent still starts, serves, and queues.
    let offline = write_config(dir.path(), "edge-o", &namespace, "127.0.0.1:9", &trust);
    let mut agent = AgentProcess::start(&offline, None);
    let api = agent.api().await;
    assert_eq!(infer(&api).await["model"]["version_seq"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let (_, status) = http(&api, "GET", "/v1/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["agent"]["mqtt"], "disconnected");
    let queued = status["agent"]["outbox"]["depth"].as_u64().unwrap();
    assert!(queued >= 2, "heartbeats queue while offline: {status}");
    assert!(agent.terminate().await.success());
    assert_eq!(recorder.on("/devices/edge-o/health").len(), seen_online, "nothing could have been sent");

    // Back online: the queued heartbeats are delivered.
    let online = write_config(dir.path(), "edge-o", &namespace, MOSQUITTO, &trust);
    let _agent = AgentProcess::start(&online, None);
    recorder
        .wait_for(20, "queued heartbeats", |r| r.on("/devices/edge-o/health").len() >= seen_online + queued as usize)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_input_source_drives_the_active_model() {
    let namespace = unique_namespace();
    let fleet = FakeFleet::start(&namespace).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "edge-s", &namespace, MOSQUITTO, &trust_file(dir.path()));
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[input]\nsource = \"synthetic\"\nrate_hz = 50.0\nseed = 7\n");
    std::fs::write(&config, text).unwrap();
    let agent = AgentProcess::start(&config, None);
    let api = agent.api().await;
    fleet.wait_birth(0).await;
    let mlp = model("vibration_mlp.onnx");
    fleet.deploy("edge-s", 1, "vibration-mlp", 1, &package(1, &mlp, &mlp, &key()), QUICK).await;
    assert_eq!(fleet.outcome(1, 30).await, DeploymentState::Committed);
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    let (_, status) = http(&api, "GET", "/v1/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let count = status["models"][0]["inference_count"].as_u64().unwrap();
    assert!(count >= 10, "synthetic inputs ran the model without any API call: {status}");
    assert_eq!(status["models"][0]["error_count"], 0);
}
