//! Helpers for fleet-manager tests: real agents in-process, signed packages, API calls.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

pub mod board;

use ed25519_dalek::SigningKey;
use edgefleet::client::Client;
use edgefleet_agent::config::{Overrides, load};
use edgefleet_agent::inference::{Model, TractModel};
use edgefleet_protocol::ModelName;
use edgefleet_protocol::PublicKey;
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::package::{GoldenVector, Manifest, PackageHead, TrustStore, hash_reader, write_package};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(path)
}

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

pub fn trust_file(dir: &Path) -> PathBuf {
    let path = dir.join("trust.toml");
    std::fs::write(&path, TrustStore::single("release", PublicKey(key().verifying_key().to_bytes())).to_toml())
        .unwrap();
    path
}

pub fn model(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("models/{name}"))).unwrap()
}

fn fixture_manifest() -> Manifest {
    let bytes = std::fs::read(fixture("packages/vibration-mlp-1.efpkg")).unwrap();
    let m = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    PackageHead::from_bytes(&bytes[..16 + m + 72]).unwrap().manifest_unverified().unwrap()
}

/// A package of `vibration-mlp` version `seq` with one variant per `(class, model bytes)`;
/// golden vectors come from the good model, so a variant built from the faulty model fails
/// validation on the device (a release that is bad on that hardware only).
pub fn package(seq: u64, variants: &[(HardwareClass, &[u8])]) -> Vec<u8> {
    package_golden(seq, variants, &model("vibration_mlp.onnx"))
}

/// Like [`package`], with golden vectors from `golden_model`.
pub fn package_golden(seq: u64, variants: &[(HardwareClass, &[u8])], golden_model: &[u8]) -> Vec<u8> {
    let mut manifest = fixture_manifest();
    manifest.name = ModelName::new("vibration-mlp").unwrap();
    manifest.version_seq = seq;
    manifest.label = format!("1.{seq}.0");
    let template = manifest.variants[0].clone();
    manifest.variants = variants
        .iter()
        .map(|(class, bytes)| {
            let mut v = template.clone();
            let (digest, size) = hash_reader(*bytes).unwrap();
            v.hardware = *class;
            v.digest = digest;
            v.size = size;
            v
        })
        .collect();
    let mut reference = TractModel::from_bytes(golden_model).unwrap();
    manifest.golden = manifest
        .golden
        .iter()
        .map(|g| GoldenVector { inputs: g.inputs.clone(), expected: reference.run(&g.inputs).unwrap() })
        .collect();
    let mut out = Vec::new();
    let mut blobs: Vec<&[u8]> = variants.iter().map(|(_, b)| *b).collect();
    write_package(&mut out, &manifest, &key(), &mut blobs).unwrap();
    out
}

/// Real agents (the daemon, in this process), each with its own data dir and MQTT session.
pub struct Agents {
    pub shutdown: CancellationToken,
    pub tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Agents {
    pub fn start(dir: &Path, broker: &str, namespace: &str, fleet: &[(String, HardwareClass)]) -> Agents {
        Self::start_with(dir, broker, namespace, fleet, &[])
    }

    /// Like [`Agents::start`] with extra `EDGEFLEET_AGENT__…` settings.
    pub fn start_with(
        dir: &Path,
        broker: &str,
        namespace: &str,
        fleet: &[(String, HardwareClass)],
        extra: &[(&str, &str)],
    ) -> Agents {
        let trust = trust_file(dir);
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        for (id, class) in fleet {
            let mut env: Vec<(String, String)> = Vec::new();
            env.extend([
                ("EDGEFLEET_AGENT__NAMESPACE".to_string(), namespace.to_string()),
                ("EDGEFLEET_AGENT__HARDWARE__CLASS".to_string(), class.to_string()),
                ("EDGEFLEET_AGENT__HEALTH__INTERVAL_SECS".to_string(), "2".to_string()),
                ("EDGEFLEET_AGENT__MQTT__RECONNECT_MAX_MS".to_string(), "1000".to_string()),
            ]);
            // Later settings win.
            env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let overrides = Overrides {
                device_id: Some(id.clone()),
                broker_url: Some(broker.to_string()),
                data_dir: Some(dir.join("agents").join(id)),
                trust_store: Some(trust.clone()),
                api_listen: Some("127.0.0.1:0".into()),
            };
            let settings = load(None, env, &overrides).unwrap();
            let (id, stop) = (id.clone(), shutdown.clone());
            tasks.push(tokio::spawn(async move {
                let result = edgefleet_agent::daemon::run(settings, stop).await;
                // An agent that cannot start says why (a test waiting for it would only time out).
                if let Err(e) = &result {
                    eprintln!("agent {id} stopped: {e:#}");
                }
                result
            }));
        }
        Agents { shutdown, tasks }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// `n` devices named `{prefix}-{i}` of `class`.
pub fn devices(prefix: &str, n: usize, class: HardwareClass) -> Vec<(String, HardwareClass)> {
    (0..n).map(|i| (format!("{prefix}-{i:02}"), class)).collect()
}

/// A namespace fixed by `dir` (so a restarted process keeps it), unique across tests.
pub fn unique_namespace_for(dir: &Path) -> String {
    let digest = edgefleet_protocol::Digest::sha256(dir.as_os_str().as_encoded_bytes());
    format!("t{}", &digest.to_hex()[..12])
}

pub fn unique_namespace() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    format!("t{}", u32::from_le_bytes(b))
}

/// Calls the API off the async workers (the client blocks).
pub async fn get(client: &Client, path: &str) -> Value {
    let (c, p) = (client.clone(), path.to_string());
    tokio::task::spawn_blocking(move || c.get(&p)).await.unwrap().unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub async fn post(client: &Client, path: &str, body: Value) -> Result<Value, edgefleet::client::ClientError> {
    let (c, p) = (client.clone(), path.to_string());
    tokio::task::spawn_blocking(move || c.post_json(&p, &body)).await.unwrap()
}

pub async fn push(client: &Client, bytes: Vec<u8>) -> Result<Value, edgefleet::client::ClientError> {
    let c = client.clone();
    tokio::task::spawn_blocking(move || c.post_bytes("/v1/models", &bytes)).await.unwrap()
}

/// Polls `path` until `done` holds, or panics with the last answer after `secs`.
pub async fn wait_for(client: &Client, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let value = get(client, path).await;
        if done(&value) {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting on {path}: {value:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Devices serving `model` at each version: `{version: count}`.
pub fn versions(devices: &Value, model: &str) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for d in devices.as_array().unwrap() {
        let v = d["models"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m.as_str())
            .find(|m| m.starts_with(&format!("{model}@")))
            .map_or("none".to_string(), |m| m.rsplit('@').next().unwrap().to_string());
        *out.entry(v).or_insert(0) += 1;
    }
    out
}

pub fn status(rollout: &Value) -> String {
    rollout["status"].as_str().unwrap_or_default().to_string()
}

/// A free TCP port on loopback (bound and released; a small race other tests can lose).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `edgefleet serve` as a child process (so SIGKILL and crashes are real).
pub struct ServeProcess {
    pub child: std::process::Child,
    pub http: String,
    pub mqtt: String,
    pub data_dir: PathBuf,
    pub trust: PathBuf,
    pub namespace: String,
    ports: (u16, u16),
}

impl ServeProcess {
    /// A fresh fleet manager in `dir/fleet`, trusting [`key`], on free ports and its own namespace.
    pub fn start(dir: &Path) -> ServeProcess {
        let trust = trust_file(dir);
        let ports = (free_port(), free_port());
        let namespace = unique_namespace_for(dir);
        let child = Self::spawn_child(&dir.join("fleet"), &trust, &namespace, ports);
        ServeProcess {
            child,
            http: format!("http://127.0.0.1:{}", ports.1),
            mqtt: format!("mqtt://127.0.0.1:{}", ports.0),
            data_dir: dir.join("fleet"),
            trust,
            namespace,
            ports,
        }
    }

    /// Starts it again on the same data dir, ports and namespace (after [`ServeProcess::sigkill`]).
    pub fn respawn(&mut self) {
        self.child = Self::spawn_child(&self.data_dir, &self.trust, &self.namespace, self.ports);
    }

    fn spawn_child(
        data_dir: &Path,
        trust: &Path,
        namespace: &str,
        (mqtt_port, http_port): (u16, u16),
    ) -> std::process::Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.with_extension("log")).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_edgefleet"))
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt_port}")])
            .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
            .arg("--trust-store")
            .arg(trust)
            .env("EDGEFLEET_SERVE__NAMESPACE", namespace)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Waits until the API answers.
    pub async fn ready(&mut self, client: &Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(self.child.try_wait().unwrap().is_none(), "edgefleet serve exited");
            let c = client.clone();
            if tokio::task::spawn_blocking(move || c.get::<Value>("/v1/status")).await.unwrap().is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "edgefleet serve did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn sigkill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fleet manager in this process (embedded broker, or `mqtt_url`), trusting [`key`].
pub async fn start_server(
    dir: &std::path::Path,
    namespace: &str,
    mqtt_url: Option<&str>,
) -> (edgefleet::server::Running, CancellationToken) {
    start_server_with(dir, namespace, mqtt_url, &[]).await
}

/// Like [`start_server`] with extra `EDGEFLEET_SERVE__…` settings.
pub async fn start_server_with(
    dir: &std::path::Path,
    namespace: &str,
    mqtt_url: Option<&str>,
    extra: &[(&str, &str)],
) -> (edgefleet::server::Running, CancellationToken) {
    let flags = edgefleet::server::config::Overrides {
        data_dir: Some(dir.join("fleet")),
        http_listen: Some("127.0.0.1:0".into()),
        mqtt_listen: mqtt_url.is_none().then(|| "127.0.0.1:0".into()),
        mqtt_url: mqtt_url.map(str::to_string),
        trust_store: Some(trust_file(dir)),
    };
    let mut env = vec![("EDGEFLEET_SERVE__NAMESPACE".to_string(), namespace.to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let shutdown = CancellationToken::new();
    let server = edgefleet::server::start(
        edgefleet::server::config::ServeConfig::load(None, env, &flags).unwrap(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    (server, shutdown)
}

/// The `edgefleet` CLI against `server`, acting as `actor` (as an operator types it).
pub fn cli_as(actor: &str, server: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_edgefleet"))
        .args(["--server", server, "--as", actor])
        .args(args)
        .output()
        .unwrap()
}

/// [`cli_as`] on a blocking thread, for async tests.
pub async fn cli_async(actor: &str, server: &str, args: &[&str]) -> std::process::Output {
    let (actor, server) = (actor.to_string(), server.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || cli_as(&actor, &server, &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

/// A command's stdout then stderr, as text.
pub fn output_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
