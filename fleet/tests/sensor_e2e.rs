//! The sensor path end to end, board → agent → MQTT → fleet manager, as README's "Run the
//! emulated sensor board" walkthrough runs it: the board firmware in `qemu-system-arm -machine
//! mps2-an386 -serial pty` (ADXL345 driver on a simulated part, feature windows, frames on
//! UART0); a real agent daemon reading that pty with `source = "serial"`; a real fleet manager
//! (embedded broker) that rolled the agent a package built by `package build` with a drift
//! reference profiled from the same board's healthy frames.
//!
//! Through the fleet's HTTP API (what `edgefleet drift report` and `edgefleet health` print):
//! while every frame the agent has decoded is from before the part's drift switch, the fleet
//! has evaluated the device's windows and does not flag it; once the switch is on, the fleet
//! flags that device for that model, with the features that moved; the link's health (frames,
//! CRC errors, the sensor's hello) is in the device's health view; and when QEMU stops, the
//! device turns unhealthy with the reason "sensor silent".
//!
//! No timed assertions: each phase is polled with a generous deadline, and "before the switch"
//! is decided by the frames' sequence numbers (the agent's `samples + sequence_gaps` is the
//! last frame's), not by the clock.
//!
//! Skipped (with a message) only where qemu-system-arm is missing; `.ci/run` installs it.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::board::{self, PtyBoard};
use common::{Agents, start_server_with};
use edgefleet::api::drift::{DeviceDriftView, DriftState};
use edgefleet::api::health::{HealthState, HealthView};
use edgefleet::api::rollouts::RolloutRequest;
use edgefleet::build::{BuildRequest, ModelArg, build_package};
use edgefleet::client::Client;
use edgefleet::rollout::RolloutStatus;
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::Lineage;
use edgefleet_protocol::uplink::SensorStatus;
use edgefleet_protocol::{ModelName, SemVer};
use serde::de::DeserializeOwned;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DEVICE: &str = "board-1";
const MODEL: &str = "vibration-mlp";
/// The part's drift switch turns on after this many windows (frames): 15 s at 50 frames/s,
/// more when QEMU runs slower on a busy machine (the test goes by frame numbers, not time).
/// The fleet has judged its first 3 windows by about frame 350.
const DRIFT_AFTER: u32 = 750;
/// Healthy frames the reference is profiled from (a separate run of the board).
const REFERENCE_FRAMES: u32 = 250;
/// Evaluated windows the fleet must have judged before "not flagged" means anything (the
/// detector's `persist_n`; it flags a device at 2 drifting windows of them).
const PERSIST_N: usize = 3;

/// `T` from `path` on `client`, off the async workers (the client blocks).
async fn fetch<T: DeserializeOwned + Send + 'static>(client: &Client, path: &str) -> T {
    let (c, p) = (client.clone(), path.to_string());
    tokio::task::spawn_blocking(move || c.get::<T>(&p)).await.unwrap().unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Polls `probe` until it returns `Ok`, or panics with `what` and the last `Err` after `secs`.
async fn poll<T, F: std::future::Future<Output = Result<T, String>>>(
    secs: u64,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => panic!("{what}: not within {secs} s; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The agent's local status, the part this test reads.
#[derive(serde::Deserialize)]
struct AgentStatus {
    agent: AgentPart,
}

#[derive(serde::Deserialize)]
struct AgentPart {
    sensor: Option<SensorStatus>,
}

/// The last frame's sequence number the agent decoded (every earlier one decoded or counted
/// lost), from its local API: read after a fleet answer, it bounds the frames behind it.
async fn last_seq(agent: &Client) -> u64 {
    let status: AgentStatus = fetch(agent, "/v1/status").await;
    status.agent.sensor.map_or(0, |s| s.counters.samples + s.counters.sequence_gaps)
}

async fn device_drift(fleet: &Client) -> Option<DeviceDriftView> {
    let report: edgefleet::api::drift::DriftReport =
        fetch(fleet, &format!("/v1/drift?model={MODEL}&device={DEVICE}")).await;
    report.devices.into_iter().find(|d| d.device.as_str() == DEVICE)
}

async fn health(fleet: &Client) -> Option<HealthView> {
    let views: Vec<HealthView> = fetch(fleet, &format!("/v1/health?device={DEVICE}")).await;
    views.into_iter().next()
}

/// `edgefleet package build` of the fixture vibration MLP (`[1, 8]` in: one board frame),
/// signed with the key the fleet and the agent trust, carrying `reference` as its drift
/// reference (a JSON file, as `drift profile` writes it).
fn build(dir: &Path, reference: &edgefleet_protocol::drift::DriftReference) -> PathBuf {
    let key = dir.join("signing.key");
    let hex: String = common::key().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&key, format!("{hex}\n")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let profile = dir.join("board-reference.json");
    std::fs::write(&profile, serde_json::to_vec_pretty(reference).unwrap()).unwrap();
    let out = dir.join("vibration-mlp-1.efpkg");
    build_package(&BuildRequest {
        name: ModelName::new(MODEL).unwrap(),
        version_seq: 1,
        label: "1.0.0".into(),
        models: vec![ModelArg {
            class: HardwareClass::Cpu,
            precision: Precision::Fp32,
            path: common::fixture("models/vibration_mlp.onnx"),
        }],
        key,
        out: out.clone(),
        min_agent_version: SemVer::new(0, 1, 0),
        golden_count: 2,
        tolerance: None,
        accelerator_kind: None,
        drift_reference: Some(profile),
        lineage: Lineage::default(),
    })
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_flags_the_device_whose_board_drifts_and_a_silent_board_makes_it_unhealthy() {
    let Some(elf) = board::elf() else { return };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let namespace = common::unique_namespace();

    // 1. A drift reference from the board's healthy frames (UART0 into a file), in a package.
    let capture_elf = elf.clone();
    let frames =
        tokio::task::spawn_blocking(move || board::capture(&capture_elf, REFERENCE_FRAMES, None)).await.unwrap();
    let reference = board::reference(&frames, 10);
    let package = build(dir.path(), &reference);
    eprintln!("reference profiled from {} board frames after {:?}", frames.len(), started.elapsed());

    // 2. A fleet manager (embedded broker) with windows small enough for a short test, and an
    //    agent whose serial input is a path the board's pty is linked at once the model runs.
    let persist_n = PERSIST_N.to_string();
    let detector = [
        ("EDGEFLEET_SERVE__DRIFT__MIN_ROWS", "30"),
        ("EDGEFLEET_SERVE__DRIFT__PERSIST_K", "2"),
        ("EDGEFLEET_SERVE__DRIFT__PERSIST_N", persist_n.as_str()),
    ];
    let (server, shutdown) = start_server_with(dir.path(), &namespace, None, &detector).await;
    let fleet = Client::new(&format!("http://{}", server.http_addr), "sensor-e2e");
    let f = &fleet;
    let tty = dir.path().join("ttyEF0");
    let tty_setting = tty.display().to_string();
    let input = [
        ("EDGEFLEET_AGENT__INPUT__SOURCE", "serial"),
        ("EDGEFLEET_AGENT__INPUT__DEVICE", tty_setting.as_str()),
        ("EDGEFLEET_AGENT__INPUT__SILENCE_MS", "1500"),
        // Windows of about 100 frames at 50 frames/s (the fleet tests 30 or more).
        ("EDGEFLEET_AGENT__SAMPLING__DRIFT_WINDOW_MS", "2000"),
        ("EDGEFLEET_AGENT__HEALTH__INTERVAL_SECS", "1"),
    ];
    let agents = Agents::start_with(
        dir.path(),
        &server.mqtt_url,
        &namespace,
        &[(DEVICE.to_string(), HardwareClass::Cpu)],
        &input,
    );
    poll(60, "the device registered", move || async move {
        let devices = f.clone();
        let known =
            tokio::task::spawn_blocking(move || devices.devices("")).await.unwrap().map_err(|e| e.to_string())?;
        if known.iter().any(|d| d.id.as_str() == DEVICE && d.hardware.is_some()) {
            Ok(())
        } else {
            Err(format!("{known:?}"))
        }
    })
    .await;

    // Pushed and rolled out like any release (one stage; the one device decides its gate).
    let bytes = std::fs::read(&package).unwrap();
    let pusher = fleet.clone();
    let pushed = tokio::task::spawn_blocking(move || pusher.push_model(&bytes)).await.unwrap().unwrap();
    assert!(!pushed.model.drift_reference.is_empty(), "the fleet keeps the package's drift reference");
    let request: RolloutRequest = serde_json::from_value(serde_json::json!({
        "model": MODEL,
        "version_seq": 1,
        "stages": "100%",
        "bake": "0s",
        "max_failure_rate": "90%",
        "confidence": "80%",
        "min_sample": 1,
        "probation": "1s",
        "probation_min_inferences": 0,
    }))
    .unwrap();
    let creator = fleet.clone();
    let created = tokio::task::spawn_blocking(move || creator.create_rollout(&request, false)).await.unwrap().unwrap();
    let id = created.id.unwrap();
    let done = poll(120, "the rollout finished", move || async move {
        let r: edgefleet::api::rollouts::RolloutDetail = fetch(f, &format!("/v1/rollouts/{id}")).await;
        if r.status == RolloutStatus::Running { Err(format!("{r:?}")) } else { Ok(r) }
    })
    .await;
    assert_eq!(done.status, RolloutStatus::Completed, "{done:#?}");
    eprintln!("model committed on {DEVICE} after {:?}", started.elapsed());

    // 3. The board on a pty, its drift switch after DRIFT_AFTER windows; the agent opens it.
    let mut qemu = PtyBoard::start(&elf, None, Some(DRIFT_AFTER));
    let _ = std::fs::remove_file(&tty);
    std::os::unix::fs::symlink(&qemu.pty, &tty).unwrap();
    let api = std::fs::read_to_string(dir.path().join("agents").join(DEVICE).join("api.addr")).unwrap();
    let agent = Client::new(&format!("http://{}", api.trim()), "sensor-e2e");
    let a = &agent;

    // Before the switch: the fleet evaluates PERSIST_N windows and does not flag the device.
    // Each fleet answer is read before the agent's last sequence number, which bounds the
    // frames behind every window in it.
    let calm = poll(120, "the fleet evaluated the device's healthy windows", move || async move {
        let view = device_drift(f).await;
        let seq = last_seq(a).await;
        assert!(
            seq <= u64::from(DRIFT_AFTER),
            "the drift switch turned on (frame {seq}) before the fleet had evaluated {PERSIST_N} windows: {view:#?}"
        );
        match view {
            Some(v) if v.recent_windows.as_ref().is_some_and(|w| w.len() >= PERSIST_N) => Ok((v, seq)),
            other => Err(format!("{other:?} (last frame {seq})")),
        }
    })
    .await;
    let (calm, seq) = calm;
    eprintln!(
        "healthy: {} after frame {seq}, windows {:?}, max psi {:?} ({:?})",
        calm.state,
        calm.recent_windows,
        calm.latest_window.as_ref().and_then(|w| w.max_psi),
        started.elapsed()
    );
    assert_ne!(calm.state, DriftState::Drifting, "healthy board windows flagged: {calm:#?}");
    assert_eq!(calm.version_seq, Some(1));
    let before = health(f).await.unwrap();
    assert_ne!(before.state, HealthState::Drifting, "{before:#?}");

    // The link's health is in the fleet's health view: frames flowing, a clean line, the hello.
    let link = poll(30, "the sensor link in the fleet's health view", move || async move {
        let view = health(f).await;
        match view.as_ref().and_then(|h| h.sensor.clone()) {
            Some(s) if s.frames > 0 && s.sensor_id.is_some() => Ok(s),
            _ => Err(format!("{view:?}")),
        }
    })
    .await;
    assert!(link.port_open && !link.silent, "{link:#?}");
    assert_eq!((link.crc_errors, link.resyncs), (0, 0), "a pty loses nothing on the way: {link:#?}");
    assert_eq!(link.sensor_id.as_deref(), Some(board::SENSOR_ID));
    assert_eq!(link.channels, Some(8));

    // After the switch: the fleet flags that device for that model, with the features that moved.
    let flagged = poll(120, "the fleet flagged the drifting device", move || async move {
        match device_drift(f).await {
            Some(v) if v.state == DriftState::Drifting => Ok(v),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let seq = last_seq(a).await;
    assert!(seq > u64::from(DRIFT_AFTER), "flagged at frame {seq}, before the switch: {flagged:#?}");
    let moved = flagged.latest_window.as_ref().unwrap();
    eprintln!(
        "drifted: flagged by frame {seq}, windows {:?}, moved: {:?} ({:?})",
        flagged.recent_windows,
        moved.drifting.iter().map(|f| f.feature.as_str()).collect::<Vec<_>>(),
        started.elapsed()
    );
    assert!(flagged.alert_since_ms.is_some() && !flagged.reasons.is_empty(), "{flagged:#?}");
    assert!(moved.drifting.iter().any(|f| board::FEATURES.contains(&f.feature.as_str())), "{moved:#?}");
    let drifting = health(f).await.unwrap();
    assert_eq!(drifting.state, HealthState::Drifting, "{drifting:#?}");
    assert_eq!(drifting.drift[MODEL].state, DriftState::Drifting);
    let cohorts: edgefleet::api::drift::DriftReport = fetch(&fleet, &format!("/v1/drift?model={MODEL}")).await;
    assert_eq!(cohorts.devices.iter().filter(|d| d.state == DriftState::Drifting).count(), 1);

    // The board stops: past silence_ms the device is unhealthy, the reason first.
    qemu.stop();
    let silent = poll(30, "a silent sensor in the fleet's health view", move || async move {
        match health(f).await {
            Some(h) if h.state == HealthState::Failing && h.sensor.as_ref().is_some_and(|s| s.silent) => Ok(h),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eprintln!("silent: {:?} ({:?})", silent.reasons, started.elapsed());
    assert!(silent.reasons[0].starts_with("sensor silent: no frame for"), "{:?}", silent.reasons);

    agents.stop().await;
    shutdown.cancel();
    server.task.await.unwrap().unwrap();
    eprintln!("sensor end-to-end test took {:?}", started.elapsed());
}
