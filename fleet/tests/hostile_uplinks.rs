//! A broken or hostile device cannot stop the fleet manager hearing the others. Found by an
//! adversarial run: one valid uplink followed at once by one malformed uplink (both QoS 1) on
//! a device's own topics made the fleet's link acknowledge the malformed one before the core
//! had acknowledged the valid one; rumqttd refuses out-of-order PUBACKs and dropped the fleet
//! manager's connection, and the persistent session redelivered the same pair on every
//! reconnect, so the fleet heard nothing from any device again. Every refused message now
//! passes through the core and is acknowledged in its place in the order.
//!
//! Each scenario runs against the embedded broker and against Mosquitto: the pairs are
//! published while a real agent is being rolled out to, the rollout must complete, the real
//! agent's reports must keep arriving, and the valid halves of the pairs must be ingested.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use edgefleet::client::Client;
use edgefleet_protocol::encode;
use edgefleet_protocol::hardware::HardwareClass::Cpu;
use edgefleet_protocol::uplink::Health;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const MOSQUITTO: &str = "mqtt://127.0.0.1:1883";

fn host_port(url: &str) -> (String, u16) {
    let (host, port) = url.trim_start_matches("mqtt://").rsplit_once(':').unwrap();
    (host.to_string(), port.parse().unwrap())
}

fn health(seq: u64) -> Vec<u8> {
    encode(&Health {
        seq,
        boot_id: 1,
        timestamp_ms: seq,
        uptime_ms: seq,
        models: Vec::new(),
        outbox_depth: 0,
        outbox_bytes: 0,
        outbox_evictions: 0,
        rss_bytes: 1 << 20,
        cpu_percent: 1.0,
        free_disk_bytes: 1 << 30,
    })
    .unwrap()
}

/// Publishes `pairs` (valid health, malformed health) pairs, QoS 1, round-robin over
/// `devices` hostile device ids, and waits until the broker has acknowledged all of them.
///
/// Against Mosquitto the pairs are paced (1 ms apart): Mosquitto queues at most
/// `max_queued_messages` (default 1000) QoS 1 messages for a subscriber beyond the 20 it has
/// in flight, and drops the rest, so a burst of 2000 in a few milliseconds would lose
/// messages at the broker before the fleet manager could see them (measured: 542 of 1000
/// malformed halves arrived). That limit is the broker's to configure; what is tested here is
/// that nothing the fleet manager receives stops it.
async fn attack(broker: &str, namespace: &str, devices: usize, pairs: usize) {
    let pace = (broker == MOSQUITTO).then_some(Duration::from_millis(1));
    let (host, port) = host_port(broker);
    let mut options = MqttOptions::new(format!("{namespace}-hostile"), host, port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let namespace = namespace.to_string();
    let publishing = tokio::spawn(async move {
        for i in 0..pairs {
            let topic = format!("{namespace}/devices/hostile-{}/health", i % devices);
            let seq = (i / devices) as u64 + 1;
            client.publish(topic.clone(), QoS::AtLeastOnce, false, health(seq)).await.unwrap();
            client.publish(topic, QoS::AtLeastOnce, false, b"\x01\x03garbage".to_vec()).await.unwrap();
            if let Some(pace) = pace {
                tokio::time::sleep(pace).await;
            }
        }
        client
    });
    let mut acked = 0;
    while acked < 2 * pairs {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("the hostile client lost its broker: {e}"),
            Err(_) => panic!("the broker acknowledged only {acked} of {} hostile publishes", 2 * pairs),
        }
    }
    let client = publishing.await.unwrap();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
}

/// Waits until the device list has `id` with its hardware class (its birth arrived).
async fn wait_born(client: &Client, id: &str) {
    let born = |d: &Value| d.as_array().unwrap().iter().any(|d| d["id"] == id && d["hardware"] == "cpu");
    wait_for(client, "/v1/devices", 60, born).await;
}

/// Waits until device `id` (known without a birth: not in lists) has a health report.
async fn wait_health(client: &Client, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (c, path) = (client.clone(), format!("/v1/devices/{id}"));
        let device = tokio::task::spawn_blocking(move || c.get::<Value>(&path)).await.unwrap();
        if let Ok(d) = &device
            && d["health"].as_array().is_some_and(|h| !h.is_empty())
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{id} has no health report: {device:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn refused(status: &Value) -> u64 {
    status["counters"]["uplinks_refused"].as_u64().unwrap()
}

/// Attacks with `pairs` pairs over `hostile` devices while one real agent is rolled out to.
async fn survives(broker: Option<&str>, hostile: usize, pairs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let namespace = unique_namespace();
    let (server, shutdown) = start_server(dir.path(), &namespace, broker).await;
    let client = Client::new(&format!("http://{}", server.http_addr), "ops");
    let agents = Agents::start(dir.path(), &server.mqtt_url, &namespace, &devices("real", 1, Cpu));
    wait_born(&client, "real-00").await;
    push(&client, package(2, &[(Cpu, &model("vibration_mlp.onnx"))])).await.unwrap();

    let (url, ns) = (server.mqtt_url.clone(), namespace.clone());
    let attacking = tokio::spawn(async move { attack(&url, &ns, hostile, pairs).await });
    let plan = json!({"model": "vibration-mlp", "version_seq": 2, "stages": "100%", "bake": "0s",
        "max_failure_rate": "50%", "min_sample": 1, "probation": "1s", "probation_min_inferences": 1000});
    let id = post(&client, "/v1/rollouts", plan).await.unwrap()["id"].as_u64().unwrap();
    attacking.await.unwrap();

    let done = wait_for(&client, &format!("/v1/rollouts/{id}"), 120, |r| status(r) != "running").await;
    assert_eq!(status(&done), "completed", "{done:#}");
    let all_refused = wait_for(&client, "/v1/status", 60, |s| refused(s) >= pairs as u64).await;
    assert_eq!(refused(&all_refused), pairs as u64, "every malformed half was refused, once: {all_refused:#}");
    // The valid halves were ingested, in order with the malformed ones.
    for d in 0..hostile {
        wait_health(&client, &format!("hostile-{d}")).await;
        // Operators see what was refused and why; a device past the limit is flagged.
        let device = get(&client, &format!("/v1/devices/hostile-{d}")).await;
        let q = &device["quarantine"];
        let per_device = (pairs / hostile) as u64;
        assert_eq!(q["counts"]["malformed health"].as_u64(), Some(per_device), "{q:#}");
        assert_eq!(q["flagged"].is_object(), per_device > 20, "{q:#}");
        assert_eq!(q["recent"][0]["head_hex"], "010367617262616765", "{q:#}");
    }
    // Health says so, with the reason; the real agent stays healthy.
    let health = get(&client, "/v1/health").await;
    for h in health.as_array().unwrap() {
        let flagged = h["reasons"][0].as_str().is_some_and(|r| r.starts_with("flagged: sent "));
        if h["device"].as_str().unwrap().starts_with("hostile-") && pairs / hostile > 20 {
            assert!(flagged && h["state"] == "failing", "{h:#}");
        } else {
            assert!(!flagged, "{h:#}");
        }
    }
    let real = get(&client, "/v1/devices/real-00").await;
    assert_eq!(real["quarantine"]["counts"], json!({}), "the real agent sent nothing refused");
    // And the real agent is still heard: a health report that arrived after the attack.
    let before = get(&client, "/v1/devices/real-00").await["last_seen_ms"].as_u64().unwrap();
    wait_for(&client, "/v1/devices/real-00", 30, |d| d["last_seen_ms"].as_u64().unwrap() > before).await;
    agents.stop().await;
    shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_valid_then_malformed_pair_embedded_broker() {
    survives(None, 1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_valid_then_malformed_pair_mosquitto() {
    survives(Some(MOSQUITTO), 1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pairs_across_ten_devices_embedded_broker() {
    survives(None, 10, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pairs_across_ten_devices_mosquitto() {
    survives(Some(MOSQUITTO), 10, 1000).await;
}

/// The fleet manager restarts while pairs are waiting for it in its persistent session on
/// Mosquitto (before the fix, each reconnect was dropped again on the redelivered pair).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_attack_recovers_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let namespace = unique_namespace();
    let (server, shutdown) = start_server(dir.path(), &namespace, Some(MOSQUITTO)).await;
    shutdown.cancel();
    server.task.await.unwrap().unwrap();
    // While the fleet manager is away, its session collects pairs.
    attack(MOSQUITTO, &namespace, 3, 30).await;
    let (server, shutdown) = start_server(dir.path(), &namespace, Some(MOSQUITTO)).await;
    let client = Client::new(&format!("http://{}", server.http_addr), "ops");
    let drained = wait_for(&client, "/v1/status", 60, |s| refused(s) >= 30).await;
    assert_eq!(refused(&drained), 30, "{drained:#}");
    // Another batch mid-run, then a real agent is still heard.
    attack(MOSQUITTO, &namespace, 3, 30).await;
    let agents = Agents::start(dir.path(), MOSQUITTO, &namespace, &devices("real", 1, Cpu));
    wait_born(&client, "real-00").await;
    let after = wait_for(&client, "/v1/status", 60, |s| refused(s) >= 60).await;
    assert_eq!(refused(&after), 60, "{after:#}");
    agents.stop().await;
    shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

/// One valid message of every uplink family, with the topic leaf it belongs on.
fn valid_uplinks(seq: u64) -> Vec<(&'static str, Vec<u8>)> {
    use edgefleet_protocol::ModelName;
    use edgefleet_protocol::command::{CommandId, DeploymentId};
    use edgefleet_protocol::drift::Feedback;
    use edgefleet_protocol::hardware::HardwareInfo;
    use edgefleet_protocol::transfer::ChunkRequest;
    use edgefleet_protocol::uplink::*;
    let model = ModelName::new("vibration-mlp").unwrap();
    let birth = Birth {
        device_id: "hostile-0".parse().unwrap(),
        boot_id: 9,
        agent_version: edgefleet_protocol::SemVer { major: 0, minor: 1, patch: 0 },
        hardware: HardwareInfo {
            class: Cpu,
            cpu_arch: "x86_64".into(),
            cpu_cores: 2,
            memory_bytes: 1 << 30,
            gpu: None,
            accelerator: None,
        },
        free_disk_bytes: 1 << 30,
        free_memory_bytes: 1 << 29,
        active_models: vec![],
        seq,
    };
    let deployment = DeploymentStatus {
        seq,
        timestamp_ms: seq,
        deployment_id: DeploymentId((1 << 32) | seq),
        model: model.clone(),
        version_seq: 2,
        state: DeploymentState::Committed,
    };
    let drift = DriftSummary {
        seq,
        model: model.clone(),
        version_seq: 2,
        window_start_ms: 0,
        window_end_ms: 1_000,
        rows: 1,
        features: vec![],
        outputs: vec![],
        prediction: None,
        confidence: None,
        feedback: Feedback::default(),
    };
    let samples = SampleBatch {
        seq,
        model,
        version_seq: 2,
        records: vec![SampleRecord { inference_id: 1, timestamp_ms: 1, inputs: vec![1.0; 8], outputs: vec![0.5] }],
    };
    let ack = CommandAck { seq, command_id: CommandId(seq), result: AckResult::Rejected("no".into()) };
    let chunk =
        ChunkRequest { request_id: seq, digest: edgefleet_protocol::Digest::sha256(b"x"), offset: 0, max_len: 1024 };
    vec![
        ("birth", encode(&birth).unwrap()),
        ("presence", encode(&Presence { state: PresenceState::Online, boot_id: 9 }).unwrap()),
        ("health", health(seq)),
        ("deployment", encode(&deployment).unwrap()),
        ("ack", encode(&ack).unwrap()),
        ("drift", encode(&drift).unwrap()),
        ("samples", encode(&samples).unwrap()),
        ("chunk/req", encode(&chunk).unwrap()),
    ]
}

/// `bytes` mutated the way broken firmware or an attacker would: bit flips, truncation,
/// junk appended, a byte repeated, or left valid.
fn mutate(rng: &mut rand::rngs::SmallRng, mut bytes: Vec<u8>) -> Vec<u8> {
    use rand::Rng;
    match rng.random_range(0..6) {
        0 => {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => bytes.truncate(rng.random_range(0..bytes.len())),
        2 => bytes.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        3 => {
            let i = rng.random_range(0..bytes.len());
            bytes.insert(i, bytes[i]);
        }
        4 => bytes = (0..rng.random_range(0..256)).map(|_| rng.random::<u8>()).collect(),
        _ => {}
    }
    bytes
}

/// A bounded MQTT fuzz run: mutated uplinks of every family from hostile devices, some on
/// the wrong family's topic, while a real rollout runs. The rollout completes and every
/// record the real agents had acknowledged by the broker reached the fleet (`received` equals
/// the last sequence number on each stream: nothing lost, nothing skipped).
async fn fuzz_while_rolling_out(broker: Option<&str>) {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let namespace = unique_namespace();
    let (server, shutdown) = start_server(dir.path(), &namespace, broker).await;
    let client = Client::new(&format!("http://{}", server.http_addr), "ops");
    let real = devices("real", 2, Cpu);
    let agents = Agents::start(dir.path(), &server.mqtt_url, &namespace, &real);
    wait_born(&client, "real-00").await;
    wait_born(&client, "real-01").await;
    push(&client, package(2, &[(Cpu, &model("vibration_mlp.onnx"))])).await.unwrap();

    let (host, port) = host_port(&server.mqtt_url);
    let (fuzzer, mut eventloop) = AsyncClient::new(MqttOptions::new(format!("{namespace}-fuzz"), host, port), 64);
    let polling = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let ns = namespace.clone();
    let fuzzing = tokio::spawn(async move {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed);
        let mut sent = 0u32;
        for round in 0..400u64 {
            for (leaf, bytes) in valid_uplinks(round + 1) {
                let leaf = if rng.random_range(0..8) == 0 { "health" } else { leaf };
                let topic = format!("{ns}/devices/hostile-{}/{leaf}", rng.random_range(0..5));
                let qos = if rng.random_range(0..4) == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
                fuzzer.publish(topic, qos, false, mutate(&mut rng, bytes)).await.unwrap();
                sent += 1;
            }
            // Paced below Mosquitto's per-subscriber queue (see `attack`).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = fuzzer.disconnect().await;
        sent
    });
    let plan = json!({"model": "vibration-mlp", "version_seq": 2, "stages": "50%,100%", "bake": "1s",
        "max_failure_rate": "95%", "min_sample": 1, "probation": "1s", "probation_min_inferences": 1000});
    let id = post(&client, "/v1/rollouts", plan).await.unwrap()["id"].as_u64().unwrap();
    let sent = fuzzing.await.unwrap();
    assert_eq!(sent, 400 * 8);
    let done = wait_for(&client, &format!("/v1/rollouts/{id}"), 120, |r| status(r) != "running").await;
    assert_eq!(status(&done), "completed", "{done:#}");
    let after = get(&client, "/v1/status").await;
    assert!(refused(&after) > 100, "most mutations are refused: {after:#}");

    // Stop the agents (their outboxes drain first), then compare what each sent with what
    // the fleet applied.
    agents.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (id, _) in &real {
        let d = get(&client, &format!("/v1/devices/{id}")).await;
        for stream in ["health", "deployment", "ack"] {
            let last = d["last_seq"][stream].as_u64().unwrap_or(0);
            assert!(last > 0 || stream == "ack", "{id} sent no {stream}: {d:#}");
            assert_eq!(d["received"][stream].as_u64().unwrap_or(0), last, "{id} {stream}: lost records: {d:#}");
        }
    }
    polling.abort();
    shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_uplinks_of_every_family_during_a_rollout_embedded_broker() {
    fuzz_while_rolling_out(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_uplinks_of_every_family_during_a_rollout_mosquitto() {
    fuzz_while_rolling_out(Some(MOSQUITTO)).await;
}

/// The seed corpus of the `uplink_ingest` fuzz target (`fleet/fuzz/seeds`): one valid message
/// of each family behind the selector byte that picks its topic. Kept equal to what the
/// encoder makes today; `EDGEFLEET_WRITE_FUZZ_SEEDS=1` rewrites them.
#[test]
fn the_fuzz_seeds_are_todays_valid_uplinks() {
    const SELECTOR: [&str; 7] = ["birth", "presence", "health", "deployment", "ack", "drift", "samples"];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = std::env::var_os("EDGEFLEET_WRITE_FUZZ_SEEDS").is_some();
    for (leaf, payload) in valid_uplinks(1) {
        let Some(selector) = SELECTOR.iter().position(|s| *s == leaf) else { continue };
        let mut seed = vec![selector as u8];
        seed.extend(&payload);
        let path = dir.join(leaf);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &seed).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            seed,
            "{} is stale: rerun with EDGEFLEET_WRITE_FUZZ_SEEDS=1",
            path.display()
        );
        let kind = edgefleet_protocol::topic::TopicKind::ALL.into_iter().find(|k| k.leaf() == leaf).unwrap();
        assert!(edgefleet::server::registry::decode_uplink(kind, &payload).unwrap().is_some());
    }
}

/// Two real agents configured with one device id (each with its own data dir, so its own boot
/// id) take the MQTT session from each other; the fleet reports the duplicate and keeps the
/// agent it heard from first instead of following whichever spoke last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_with_one_device_id_are_reported_as_a_duplicate_and_the_first_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let namespace = unique_namespace();
    let (server, shutdown) = start_server(dir.path(), &namespace, None).await;
    let client = Client::new(&format!("http://{}", server.http_addr), "ops");
    let twin = devices("twin", 1, Cpu);
    let first = Agents::start(dir.path(), &server.mqtt_url, &namespace, &twin);
    wait_born(&client, "twin-00").await;
    let born = get(&client, "/v1/devices/twin-00").await;
    let first_boot = born["boot_id"].as_u64().unwrap();
    let second = Agents::start(elsewhere.path(), &server.mqtt_url, &namespace, &twin);
    let duplicate = |h: &Value| {
        h[0]["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r.as_str().unwrap().starts_with("duplicate device id")))
    };
    let health = wait_for(&client, "/v1/health?device=twin-00", 120, duplicate).await;
    assert_eq!(health[0]["state"], "failing", "{health:#}");
    let shown = get(&client, "/v1/devices/twin-00").await;
    assert_eq!(shown["boots"]["duplicate"]["kept"], first_boot, "{shown:#}");
    assert_eq!(shown["boot_id"], first_boot, "the registry follows the first agent: {shown:#}");
    let audit = get(&client, "/v1/audit?limit=1000").await;
    let found = audit.as_array().unwrap().iter().filter(|e| e["action"] == "device.duplicate").count();
    assert_eq!(found, 1, "{audit:#}");
    second.stop().await;
    first.stop().await;
    shutdown.cancel();
}
