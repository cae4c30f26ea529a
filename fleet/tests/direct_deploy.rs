//! `edgefleet direct deploy` against a real agent (the daemon, in-process) over Mosquitto:
//! a package built by `package build` is installed, served, and a refused one says why.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet::build::{BuildRequest, ModelArg, build_package};
use edgefleet::direct::{DirectDeploy, DirectError, deploy};
use edgefleet::keys;
use edgefleet_agent::config::{Overrides, load};
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::{Lineage, PackageError};
use edgefleet_protocol::topic::Namespace;
use edgefleet_protocol::uplink::{DeploymentState, FailureReason};
use edgefleet_protocol::{DeviceId, ModelName, SemVer};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models").join(name)
}

fn build(dir: &Path, key_dir: &Path, seq: u64) -> PathBuf {
    let out = dir.join(format!("v{seq}.efpkg"));
    let request = BuildRequest {
        name: ModelName::new("vibration-mlp").unwrap(),
        version_seq: seq,
        label: format!("1.{seq}.0"),
        models: vec![ModelArg {
            class: HardwareClass::Cpu,
            precision: Precision::Fp32,
            path: fixture("vibration_mlp.onnx"),
        }],
        key: key_dir.join(keys::SIGNING_KEY_FILE),
        out: out.clone(),
        min_agent_version: SemVer::new(0, 1, 0),
        golden_count: 2,
        tolerance: None,
        accelerator_kind: None,
        drift_reference: None,
        lineage: Lineage::default(),
    };
    build_package(&request).unwrap();
    out
}

async fn post(addr: &str, path: &str, body: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_on_a_running_agent_and_reports_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let key_dir = dir.path().join("keys");
    keys::generate(&key_dir, "test").unwrap();
    let mut ns = [0u8; 4];
    getrandom::fill(&mut ns).unwrap();
    let namespace = format!("d{}", u32::from_le_bytes(ns));

    let agent_dir = dir.path().join("agent");
    let env = vec![("EDGEFLEET_AGENT__NAMESPACE".to_string(), namespace.clone())];
    let overrides = Overrides {
        device_id: Some("bench-7".into()),
        broker_url: Some("mqtt://127.0.0.1:1883".into()),
        data_dir: Some(agent_dir.clone()),
        trust_store: Some(key_dir.join(keys::TRUST_STORE_FILE)),
        api_listen: Some("127.0.0.1:0".into()),
    };
    let settings = load(None, env, &overrides).unwrap();
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(edgefleet_agent::daemon::run(settings, shutdown.clone()));
    while !agent_dir.join("api.addr").exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let api = std::fs::read_to_string(agent_dir.join("api.addr")).unwrap();

    let request = |package: PathBuf| DirectDeploy {
        broker: "mqtt://127.0.0.1:1883".parse().unwrap(),
        namespace: Namespace::new(namespace.clone()).unwrap(),
        device: DeviceId::new("bench-7").unwrap(),
        package,
        probation: ProbationBudget {
            duration_ms: 200,
            min_inferences: 100,
            max_error_rate_ppm: 0,
            max_p99_latency_us: 0,
        },
        timeout: Duration::from_secs(30),
        downgrade_key: None,
        downgrade_valid: Duration::from_secs(60),
    };
    let mut seen = Vec::new();
    let state = deploy(&request(build(dir.path(), &key_dir, 2)), |s| seen.push(s.clone())).await.unwrap();
    assert_eq!(state, DeploymentState::Committed, "{seen:?}");
    assert!(seen.iter().any(|s| matches!(s, DeploymentState::Downloading { .. })));
    let answer = post(&api, "/v1/infer", r#"{"inputs":[{"shape":[1,8],"data":[0,0,0,0,0,0,0,0]}]}"#).await;
    assert!(answer.contains("\"version_seq\":2"), "{answer}");

    // An older version is refused by the device, with the reason.
    let state = deploy(&request(build(dir.path(), &key_dir, 1)), |_| {}).await.unwrap();
    assert!(
        matches!(
            state,
            DeploymentState::Failed(FailureReason::Package(PackageError::NotNewer { installed: 2, offered: 1 }))
        ),
        "{state:?}"
    );

    // The same older version with a downgrade authorization signed by the release key: installed.
    let mut authorized = request(build(dir.path(), &key_dir, 1));
    authorized.downgrade_key = Some(key_dir.join(keys::SIGNING_KEY_FILE));
    assert_eq!(deploy(&authorized, |_| {}).await.unwrap(), DeploymentState::Committed);
    let answer = post(&api, "/v1/infer", r#"{"inputs":[{"shape":[1,8],"data":[0,0,0,0,0,0,0,0]}]}"#).await;
    assert!(answer.contains("\"version_seq\":1"), "{answer}");

    // A device nobody runs: a clear timeout, not a hang.
    let mut lonely = request(build(dir.path(), &key_dir, 3));
    lonely.device = DeviceId::new("nobody-home").unwrap();
    lonely.timeout = Duration::from_millis(500);
    assert!(matches!(deploy(&lonely, |_| {}).await, Err(DirectError::Timeout { .. })));

    shutdown.cancel();
    agent.await.unwrap().unwrap();
}
