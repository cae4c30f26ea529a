//! Fleet manager benchmarks (`cargo bench -p edgefleet --bench fleet -- [--agents N]`):
//!
//! 1. **Ingest**: device messages applied per second (decode, dedup, registry update, durable
//!    commit, then PUBACK), against the same broker delivering the same messages to a plain
//!    subscriber that does nothing (the baseline, measured in the same run).
//! 2. **Gate decision latency**: from the moment a simulated device publishes the status that
//!    completes a stage, to the moment the next stage's first deploy command reaches a device
//!    (MQTT both ways, commit included).
//! 3. **Rollout**: a 4-stage rollout (1%,10%,50%,100%, zero bake, zero probation) of a ~1 MB
//!    package to N real agents in this process, against the same rollout to 1 agent.
//!
//! Everything shares the machine's cores (server, broker, agents), as on a 2-core box.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use edgefleet::api::devices::DeviceSummary;
use edgefleet::api::rollouts::{CreateRolloutResponse, RolloutDetail};
use edgefleet::api::status::StatusResponse;
use edgefleet::build::{BuildRequest, ModelArg, build_package};
use edgefleet::client::Client;
use edgefleet::keys;
use edgefleet::rollout::RolloutStatus;
use edgefleet::server::config::{Overrides, ServeConfig};
use edgefleet_agent::config::load;
use edgefleet_protocol::command::{Command, CommandBody};
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::Lineage;
use edgefleet_protocol::uplink::{DeploymentState, DeploymentStatus, Health};
use edgefleet_protocol::{ModelName, SemVer, decode, encode};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models").join(name)
}

fn build(dir: &Path, key_dir: &Path, model: &str, seq: u64) -> PathBuf {
    let out = dir.join(format!("{model}-{seq}.efpkg"));
    let name = if model.contains("wide") { "vibration-mlp-wide" } else { "vibration-mlp" };
    build_package(&BuildRequest {
        name: ModelName::new(name).unwrap(),
        version_seq: seq,
        label: format!("1.{seq}.0"),
        models: vec![ModelArg { class: HardwareClass::Cpu, precision: Precision::Fp32, path: fixture(model) }],
        key: key_dir.join(keys::SIGNING_KEY_FILE),
        out: out.clone(),
        min_agent_version: SemVer::new(0, 1, 0),
        golden_count: 1,
        tolerance: None,
        accelerator_kind: None,
        drift_reference: None,
        lineage: Lineage::default(),
    })
    .unwrap();
    out
}

struct Fleet {
    client: Client,
    mqtt_host: String,
    mqtt_port: u16,
    namespace: String,
    shutdown: CancellationToken,
}

async fn start_fleet(dir: &Path, trust: &Path, namespace: &str) -> Fleet {
    let flags = Overrides {
        data_dir: Some(dir.join("fleet")),
        http_listen: Some("127.0.0.1:0".into()),
        mqtt_listen: Some("127.0.0.1:0".into()),
        mqtt_url: None,
        trust_store: Some(trust.to_path_buf()),
    };
    let env = [("EDGEFLEET_SERVE__NAMESPACE".to_string(), namespace.to_string())];
    let shutdown = CancellationToken::new();
    let running =
        edgefleet::server::start(ServeConfig::load(None, env, &flags).unwrap(), shutdown.clone()).await.unwrap();
    let url = running.mqtt_url.trim_start_matches("mqtt://").to_string();
    let (host, port) = url.rsplit_once(':').unwrap();
    Fleet {
        client: Client::new(&format!("http://{}", running.http_addr), "bench"),
        mqtt_host: host.to_string(),
        mqtt_port: port.parse().unwrap(),
        namespace: namespace.to_string(),
        shutdown,
    }
}

async fn api<T: serde::de::DeserializeOwned + Send + 'static>(client: &Client, path: &str, body: Option<Value>) -> T {
    let (c, p) = (client.clone(), path.to_string());
    tokio::task::spawn_blocking(move || match body {
        Some(b) => c.post_json(&p, &b),
        None => c.get(&p),
    })
    .await
    .unwrap()
    .unwrap()
}

async fn push(client: &Client, file: &Path) {
    let (c, bytes) = (client.clone(), std::fs::read(file).unwrap());
    tokio::task::spawn_blocking(move || c.push_model(&bytes)).await.unwrap().unwrap();
}

fn mqtt(host: &str, port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut o = MqttOptions::new(id, host, port);
    o.set_max_packet_size(256 * 1024, 256 * 1024);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(200);
    let (client, mut eventloop) = AsyncClient::new(o, 10_000);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

fn health(seq: u64) -> Vec<u8> {
    encode(&Health {
        seq,
        boot_id: 1,
        timestamp_ms: seq,
        uptime_ms: seq,
        models: vec![],
        outbox_depth: 0,
        outbox_bytes: 0,
        outbox_evictions: 0,
        rss_bytes: 1 << 20,
        cpu_percent: 1.0,
        free_disk_bytes: 1 << 30,
    })
    .unwrap()
}

/// `devices` publishers send `per_device` health reports each on `namespace`; returns when all
/// publishes were acknowledged by the broker.
async fn publish_health(f: &Fleet, namespace: &str, devices: usize, per_device: u64) {
    let mut tasks = Vec::new();
    for d in 0..devices {
        let (client, mut eventloop) = mqtt(&f.mqtt_host, f.mqtt_port, &format!("{namespace}-pub-{d}"));
        let topic = format!("{namespace}/devices/dev-{d}/health");
        tasks.push(tokio::spawn(async move {
            let sender = tokio::spawn(async move {
                for seq in 1..=per_device {
                    client.publish(&topic, QoS::AtLeastOnce, false, health(seq)).await.unwrap();
                }
                client
            });
            let mut acked = 0;
            while acked < per_device {
                if let Ok(Event::Incoming(Incoming::PubAck(_))) = eventloop.poll().await {
                    acked += 1;
                }
            }
            let client = sender.await.unwrap();
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn ingest(f: &Fleet) -> (f64, f64) {
    let (devices, per_device) = (100usize, 500u64);
    let total = devices as u64 * per_device;

    // Baseline: the same messages through the same broker to a subscriber that only counts.
    let baseline_ns = format!("{}b", f.namespace);
    let (sub, mut sub_loop) = mqtt(&f.mqtt_host, f.mqtt_port, "baseline-sub");
    sub.subscribe(format!("{baseline_ns}/devices/+/health"), QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Ok(Event::Incoming(Incoming::SubAck(_))) = sub_loop.poll().await {
            break;
        }
    }
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let counting = tokio::spawn(async move {
        loop {
            if let Ok(Event::Incoming(Incoming::Publish(_))) = sub_loop.poll().await
                && counter.fetch_add(1, Ordering::Relaxed) + 1 == total
            {
                return;
            }
        }
    });
    let start = Instant::now();
    publish_health(f, &baseline_ns, devices, per_device).await;
    tokio::time::timeout(Duration::from_secs(120), counting).await.unwrap().unwrap();
    let baseline = total as f64 / start.elapsed().as_secs_f64();

    let applied = |v: &StatusResponse| v.counters.uplinks_applied;
    let before = applied(&api(&f.client, "/v1/status", None).await);
    let start = Instant::now();
    publish_health(f, &f.namespace, devices, per_device).await;
    loop {
        if applied(&api(&f.client, "/v1/status", None).await) >= before + total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fleet = total as f64 / start.elapsed().as_secs_f64();
    (fleet, baseline)
}

/// Simulated devices that answer every deploy with `Committed` at once, reporting when each
/// command arrived.
async fn instant_devices(f: &Fleet, n: usize, arrivals: tokio::sync::mpsc::UnboundedSender<(usize, Instant)>) {
    for d in 0..n {
        let id = format!("sim-{d:03}");
        let (client, mut eventloop) = mqtt(&f.mqtt_host, f.mqtt_port, &format!("{}-{id}", f.namespace));
        let ns = f.namespace.clone();
        let arrivals = arrivals.clone();
        client.subscribe(format!("{ns}/devices/{id}/cmd"), QoS::AtLeastOnce).await.unwrap();
        let birth = edgefleet_protocol::uplink::Birth {
            device_id: id.parse().unwrap(),
            boot_id: 7,
            agent_version: SemVer::new(0, 1, 0),
            hardware: edgefleet_protocol::hardware::HardwareInfo {
                class: HardwareClass::Cpu,
                cpu_arch: "x86_64".into(),
                cpu_cores: 2,
                memory_bytes: 1 << 30,
                gpu: None,
                accelerator: None,
            },
            free_disk_bytes: 1 << 30,
            free_memory_bytes: 1 << 29,
            active_models: vec![],
            seq: 1,
        };
        client
            .publish(format!("{ns}/devices/{id}/birth"), QoS::AtLeastOnce, false, encode(&birth).unwrap())
            .await
            .unwrap();
        tokio::spawn(async move {
            let mut seq = 0;
            loop {
                let Ok(event) = eventloop.poll().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Event::Incoming(Incoming::Publish(p)) = event else { continue };
                let Ok(Command { body: CommandBody::Deploy(deploy), .. }) = decode::<Command>(&p.payload) else {
                    continue;
                };
                let _ = arrivals.send((d, Instant::now()));
                seq += 1;
                let status = DeploymentStatus {
                    seq,
                    timestamp_ms: 0,
                    deployment_id: deploy.deployment_id,
                    model: deploy.model,
                    version_seq: deploy.version_seq,
                    state: DeploymentState::Committed,
                };
                let topic = format!("{ns}/devices/{id}/deployment");
                let _ = client.publish(topic, QoS::AtLeastOnce, false, encode(&status).unwrap()).await;
            }
        });
    }
}

async fn gate_latency(f: &Fleet, dir: &Path, key_dir: &Path) -> Vec<f64> {
    let n = 100;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    instant_devices(f, n, tx).await;
    loop {
        if api::<Vec<DeviceSummary>>(&f.client, "/v1/devices?select=hw%3Dcpu", None).await.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies = Vec::new();
    for seq in 2..=11u64 {
        push(&f.client, &build(dir, key_dir, "vibration_mlp.onnx", seq)).await;
        // Every device with a birth: the 100 simulated ones (the ingest senders never sent one).
        let plan = json!({"model": "vibration-mlp", "version_seq": seq,
            "stages": "10%,100%", "bake": "0s", "max_failure_rate": "50%", "confidence": "90%", "min_sample": 10,
            "max_concurrent_downloads": 1000});
        let id = api::<CreateRolloutResponse>(&f.client, "/v1/rollouts", Some(plan)).await.id.unwrap();
        // Stage 1: 10 commands arrive and are answered at once; stage 2 starts after the gate.
        let mut first_stage = Vec::new();
        while first_stage.len() < 10 {
            first_stage.push(rx.recv().await.unwrap().1);
        }
        let deciding = *first_stage.iter().max().unwrap();
        let next_stage = rx.recv().await.unwrap().1;
        latencies.push((next_stage - deciding).as_secs_f64() * 1000.0);
        for _ in 0..89 {
            rx.recv().await.unwrap();
        }
        loop {
            let r: RolloutDetail = api(&f.client, &format!("/v1/rollouts/{id}"), None).await;
            if r.status == RolloutStatus::Completed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    latencies
}

async fn rollout_to_agents(dir: &Path, trust: &Path, package: &Path, agents: usize) -> (f64, u64) {
    let ns = format!("r{agents}x{}", std::process::id());
    let f = start_fleet(&dir.join(&ns), trust, &ns).await;
    let shutdown = CancellationToken::new();
    let broker = format!("mqtt://{}:{}", f.mqtt_host, f.mqtt_port);
    for i in 0..agents {
        let env = vec![
            ("EDGEFLEET_AGENT__NAMESPACE".to_string(), ns.clone()),
            ("EDGEFLEET_AGENT__HARDWARE__CLASS".to_string(), "cpu".to_string()),
            ("EDGEFLEET_AGENT__MQTT__MAX_PACKET_BYTES".to_string(), "262144".to_string()),
        ];
        let overrides = edgefleet_agent::config::Overrides {
            device_id: Some(format!("agent-{i:05}")),
            broker_url: Some(broker.clone()),
            data_dir: Some(dir.join(&ns).join("agents").join(i.to_string())),
            trust_store: Some(trust.to_path_buf()),
            api_listen: Some("127.0.0.1:0".into()),
        };
        tokio::spawn(edgefleet_agent::daemon::run(load(None, env, &overrides).unwrap(), shutdown.clone()));
    }
    loop {
        if api::<StatusResponse>(&f.client, "/v1/status", None).await.devices >= agents {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    push(&f.client, package).await;
    let plan = json!({"model": "vibration-mlp-wide", "version_seq": 1, "stages": "1%,10%,50%,100%", "bake": "0s",
        "max_failure_rate": "60%", "confidence": "90%", "min_sample": 5, "probation": "0s",
        "max_concurrent_downloads": 100});
    let start = Instant::now();
    let id = api::<CreateRolloutResponse>(&f.client, "/v1/rollouts", Some(plan)).await.id.unwrap();
    loop {
        let r: RolloutDetail = api(&f.client, &format!("/v1/rollouts/{id}"), None).await;
        if r.status != RolloutStatus::Running {
            assert_eq!(r.status, RolloutStatus::Completed, "{r:#?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0))
        })
        .unwrap_or(0);
    shutdown.cancel();
    f.shutdown.cancel();
    (secs, rss)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let agents: usize = args
        .iter()
        .position(|a| a == "--agents")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = dir.path().join("keys");
        keys::generate(&key_dir, "bench").unwrap();
        let trust = key_dir.join(keys::TRUST_STORE_FILE);

        let f = start_fleet(&dir.path().join("ingest"), &trust, &format!("b{}", std::process::id())).await;
        let (fleet, baseline) = ingest(&f).await;
        println!("ingest: fleet manager {fleet:.0} msg/s, plain subscriber on the same broker {baseline:.0} msg/s, ratio {:.2}", fleet / baseline);
        let mut lat = gate_latency(&f, dir.path(), &key_dir).await;
        lat.sort_by(f64::total_cmp);
        println!(
            "gate decision latency (device status published → next stage command received, through the broker) over {} rollouts: median {:.1} ms, max {:.1} ms",
            lat.len(),
            percentile(&lat, 0.5),
            lat[lat.len() - 1]
        );
        let c = api::<StatusResponse>(&f.client, "/v1/status", None).await.counters;
        println!(
            "  storage commits: {} , mean {:.2} ms, max {:.2} ms (one fsync'd redb transaction per input batch)",
            c.commits,
            c.commit_us_total as f64 / (c.commits as f64).max(1.0) / 1000.0,
            c.commit_us_max as f64 / 1000.0
        );
        println!(
            "  inside the fleet manager: {} gate decisions, mean {:.2} ms, max {:.2} ms from the batch holding the deciding status to the next stage's commands queued",
            c.gate_decisions,
            c.gate_decision_us_total as f64 / (c.gate_decisions as f64).max(1.0) / 1000.0,
            c.gate_decision_us_max as f64 / 1000.0
        );
        f.shutdown.cancel();

        let package = build(dir.path(), &key_dir, "vibration_mlp_wide.onnx", 1);
        let size = std::fs::metadata(&package).unwrap().len();
        let (one, _) = rollout_to_agents(dir.path(), &trust, &package, 1).await;
        let (many, rss) = rollout_to_agents(dir.path(), &trust, &package, agents).await;
        println!(
            "rollout of a {} KiB package, 4 stages, zero bake: 1 agent {one:.2} s, {agents} agents {many:.2} s (ratio {:.1}); process RSS {} MiB",
            size >> 10,
            many / one,
            rss >> 10
        );
    });
}
