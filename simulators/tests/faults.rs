//! Fault injection against a real fleet manager (embedded broker): a network partition,
//! corrupted and dropped package chunks, a full disk, skewed device clocks, and a release whose
//! model fails on the devices.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet::client::Client;
use edgefleet::keys;
use edgefleet::server::config::{Overrides, ServeConfig};
use edgefleet_protocol::codec::decode;
use edgefleet_protocol::uplink::Health;
use edgefleet_sim::drift::Affected;
use edgefleet_sim::fleet::{SimFleet, SimFleetConfig};
use edgefleet_sim::hardware::{ClockSkew, ModelFault, Versions};
use edgefleet_sim::reference::vibration_package;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const MODEL: &[u8] = include_bytes!("../../fixtures/models/vibration_mlp_trained.onnx");

struct Setup {
    _dir: tempfile::TempDir,
    client: Client,
    mqtt_url: String,
    sim: SimFleet,
    shutdown: CancellationToken,
    server: edgefleet::server::Running,
}

async fn setup(devices: usize, network_faults: bool) -> Setup {
    setup_with(devices, |c| c.network_faults = network_faults).await
}

async fn setup_with(devices: usize, adjust: impl FnOnce(&mut SimFleetConfig)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    keys::generate(&dir.path().join("keys"), "t").unwrap();
    let trust = dir.path().join("keys").join(keys::TRUST_STORE_FILE);
    let flags = Overrides::ephemeral(dir.path().join("fleet"), trust.clone());
    let shutdown = CancellationToken::new();
    let server =
        edgefleet::server::start(ServeConfig::load(None, [], &flags).unwrap(), shutdown.clone()).await.unwrap();
    let client = Client::new(&format!("http://{}", server.http_addr), "t");
    let mut config = SimFleetConfig {
        mix: "cpu=1".parse().unwrap(),
        seed: 3,
        rate_hz: 20.0,
        health_interval_secs: 1,
        id_prefix: "f".into(),
        local_api: false,
        ..SimFleetConfig::new(&server.mqtt_url, trust, dir.path().join("devices"), devices)
    };
    adjust(&mut config);
    let sim = SimFleet::start(config).unwrap();
    let mqtt_url = server.mqtt_url.clone();
    let s = Setup { _dir: dir, client, mqtt_url, sim, shutdown, server };
    wait_until("every device online", Duration::from_secs(30), || async {
        api(&s.client, "/v1/status", None).await["online"].as_u64() == Some(devices as u64)
    })
    .await;
    s
}

async fn api(client: &Client, path: &str, body: Option<Value>) -> Value {
    edgefleet_sim::api::call(client, path, body).await.unwrap()
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn online(devices: &Value, id: &str) -> bool {
    devices.as_array().unwrap().iter().any(|d| d["id"] == id && d["online"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_device_goes_offline_queues_its_heartbeats_and_delivers_all_of_them_in_order() {
    let s = setup(3, true).await;
    // Every health report device 0 publishes, in arrival order.
    let seqs = Arc::new(Mutex::new(Vec::<u64>::new()));
    let address = s.mqtt_url.trim_start_matches("mqtt://");
    let (host, port) = address.rsplit_once(':').unwrap();
    let (watcher, mut eventloop) = AsyncClient::new(MqttOptions::new("watcher", host, port.parse().unwrap()), 100);
    watcher.subscribe("edgefleet/devices/f-00000/health", QoS::AtLeastOnce).await.unwrap();
    let seen = seqs.clone();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event
                && let Ok(h) = decode::<Health>(&p.payload)
            {
                seen.lock().unwrap().push(h.seq);
            }
        }
    });
    wait_until("heartbeats from device 0", Duration::from_secs(10), || async { seqs.lock().unwrap().len() >= 2 }).await;

    assert_eq!(s.sim.partition(&[0], true), 1);
    wait_until("device 0 offline in the fleet", Duration::from_secs(30), || async {
        !online(&api(&s.client, "/v1/devices", None).await, "f-00000")
    })
    .await;
    let heard_before = seqs.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(seqs.lock().unwrap().len(), heard_before, "nothing gets through the partition");
    assert!(online(&api(&s.client, "/v1/devices", None).await, "f-00001"), "the other devices are unaffected");

    s.sim.partition(&[0], false);
    wait_until("device 0 online again", Duration::from_secs(30), || async {
        online(&api(&s.client, "/v1/devices", None).await, "f-00000")
    })
    .await;
    // What it queued while cut off arrives: at least the ~4 s of heartbeats, with no gap.
    wait_until("the queued heartbeats", Duration::from_secs(20), || async {
        seqs.lock().unwrap().len() >= heard_before + 5
    })
    .await;
    let mut got = seqs.lock().unwrap().clone();
    got.dedup();
    let first = got[0];
    assert!(
        got.iter().enumerate().all(|(i, &seq)| seq == first + i as u64),
        "health seqs arrive in order without a gap: {got:?}"
    );
    s.sim.stop().await;
    s.shutdown.cancel();
    s.server.task.await.unwrap().unwrap();
}

async fn push(client: &Client, dir: &Path, version_seq: u64) {
    let model = dir.join("model.onnx");
    std::fs::write(&model, MODEL).unwrap();
    let key = dir.join("keys").join(keys::SIGNING_KEY_FILE);
    let package = vibration_package(dir, &key, &model, version_seq, &format!("{version_seq}.0.0"), 1, 5).unwrap();
    let (c, bytes) = (client.clone(), std::fs::read(package).unwrap());
    tokio::task::spawn_blocking(move || c.post_bytes::<Value>("/v1/models", &bytes)).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_fails_the_install_with_its_reason_and_a_clean_retry_installs() {
    let s = setup(1, true).await;
    let dir = s._dir.path();
    push(&s.client, dir, 1).await;
    assert_eq!(s.sim.chunk_faults(&[0], 1.0, 0.0), 1);
    let r = roll_out(&s.client, 1).await;
    assert_ne!(r["status"], "completed", "every chunk arrives corrupted: {r:#}");
    let text = r.to_string().to_lowercase();
    assert!(text.contains("hash") || text.contains("digest"), "the failure names the digest check: {r:#}");
    // The network heals; the next attempt must not trust what the corrupted one left behind.
    s.sim.chunk_faults(&[0], 0.0, 0.0);
    let r = roll_out(&s.client, 1).await;
    assert_eq!(r["status"], "completed", "{r:#}");
    s.sim.stop().await;
    s.shutdown.cancel();
    s.server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_chunks_are_requested_again_and_the_install_completes() {
    let s = setup(1, true).await;
    push(&s.client, s._dir.path(), 1).await;
    s.sim.chunk_faults(&[0], 0.0, 0.5);
    let started = Instant::now();
    let r = roll_out(&s.client, 1).await;
    assert_eq!(r["status"], "completed", "{r:#}");
    assert!(started.elapsed() < Duration::from_secs(60));
    s.sim.stop().await;
    s.shutdown.cancel();
    s.server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_a_full_disk_refuses_the_download_with_its_reason_and_reports_its_free_space() {
    let s = setup(1, false).await;
    push(&s.client, s._dir.path(), 1).await;
    s.sim.full_disks().set(&[0], Some(1024));
    let r = roll_out(&s.client, 1).await;
    assert_ne!(r["status"], "completed", "{r:#}");
    assert!(r.to_string().to_lowercase().contains("disk"), "the failure names the disk: {r:#}");
    wait_until("a heartbeat with the full disk", Duration::from_secs(10), || async {
        let device = api(&s.client, "/v1/devices/f-00000", None).await;
        device.to_string().contains("\"free_disk_bytes\":1024")
    })
    .await;
    s.sim.full_disks().set(&[0], None);
    assert_eq!(roll_out(&s.client, 1).await["status"], "completed");
    s.sim.stop().await;
    s.shutdown.cancel();
    s.server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_six_hours_behind_still_feed_the_accuracy_gate_and_the_scorecard() {
    let s = setup_with(2, |c| {
        c.clock_skew = Some(ClockSkew { affected: Affected::Fraction(1.0), offset_ms: -6 * 3_600_000 });
        c.label_rate = 1.0;
        c.drift_window_ms = 1_000;
    })
    .await;
    assert_eq!(s.sim.skewed(), [0, 1]);
    let dir = s._dir.path();
    push(&s.client, dir, 1).await;
    assert_eq!(roll_out(&s.client, 1).await["status"], "completed");
    push(&s.client, dir, 2).await;
    // The gate needs 20 labelled inferences from each cohort, counted from the rollout's
    // creation on the fleet's clock: windows stamped 6 h earlier by the devices must count.
    // (Latency is not what this is about: two devices on a busy machine make a noisy p99.)
    let plan = json!({"model": "vibration-mlp", "version_seq": 2, "stages": "50%,100%", "bake": "2s",
        "max_failure_rate": "50%", "confidence": "80%", "min_sample": 1, "probation": "1s",
        "min_inferences": 20, "max_p99_ratio": 100.0, "gates": ["ab:accuracy>=-20%", "ab:min_labelled=20"]});
    let id = api(&s.client, "/v1/rollouts", Some(plan)).await["id"].as_u64().unwrap();
    wait_until("the accuracy gate to judge both cohorts on their labels", Duration::from_secs(60), || async {
        let r = api(&s.client, &format!("/v1/rollouts/{id}"), None).await;
        let health = &r["tracks"][0]["last_decision"]["evidence"]["health"];
        let labelled = |cohort: &str| health[cohort]["labelled"].as_u64().unwrap_or(0);
        labelled("new") >= 20 && labelled("control") >= 20 && health["verdict"] == "fine"
    })
    .await;
    let card = api(&s.client, &format!("/v1/rollouts/{id}/scorecard"), None).await;
    let labelled = &card["tracks"][0]["new"]["accuracy"]["labelled"];
    assert!(labelled.as_u64().unwrap_or(0) >= 20, "the scorecard counts the skewed windows: {card:#}");
    s.sim.stop().await;
    s.shutdown.cancel();
    s.server.task.await.unwrap().unwrap();
}

async fn roll_out(client: &Client, version_seq: u64) -> Value {
    let plan = json!({"model": "vibration-mlp", "version_seq": version_seq, "stages": "100%", "bake": "1s",
        "max_failure_rate": "50%", "confidence": "80%", "min_sample": 1, "probation": "3s"});
    follow(client, plan).await
}

async fn follow(client: &Client, plan: Value) -> Value {
    let id = api(client, "/v1/rollouts", Some(plan)).await["id"].as_u64().unwrap();
    let started = Instant::now();
    loop {
        let r = api(client, &format!("/v1/rollouts/{id}"), None).await;
        if r["status"] != "running" {
            return r;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "rollout {id} still running: {r:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_whose_model_fails_on_the_devices_is_rolled_back_by_their_probation() {
    let s = setup(2, false).await;
    let dir = s._dir.path();
    // Version 2 on, both devices' model runtime fails a third of the calls once the golden
    // vectors have passed.
    s.sim.model_faults().set(&[0, 1], ModelFault::Failing { after_calls: 2, error_rate: 0.3 }, Versions::From(2));
    push(&s.client, dir, 1).await;
    assert_eq!(roll_out(&s.client, 1).await["status"], "completed");
    push(&s.client, dir, 2).await;
    let r = roll_out(&s.client, 2).await;
    assert_ne!(r["status"], "completed", "{r:#}");
    wait_until("both devices back on version 1", Duration::from_secs(30), || async {
        let devices = api(&s.client, "/v1/devices", None).await;
        devices
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["models"].as_array().unwrap().iter().any(|m| m == "vibration-mlp@1"))
    })
    .await;
    let text = r.to_string();
    assert!(text.contains("rolledback") || text.contains("rolled"), "{r:#}");
    s.sim.stop().await;
    s.shutdown.cancel();
    s.server.task.await.unwrap().unwrap();
}
