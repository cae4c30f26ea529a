//! The sensor path end to end: the board firmware in `qemu-system-arm -machine mps2-an386`
//! (ADXL345 driver on a simulated part, feature windows, frames on UART0) feeds a real agent
//! daemon reading a pty with tokio-serial; the agent serves inferences on the frames and
//! reports the link's health on its `sensor` topic and local API.
//!
//! - Clean line: every feature frame the firmware says it sent is decoded or counted lost
//!   (`sent = samples + sequence_gaps`, and nothing is lost), each ran an inference (or was
//!   counted as dropped from the queue), the hello reached the status, the sensor turns silent
//!   after the board stops, and the agent re-opens the port when it comes back.
//! - Corrupting relay: CRC errors equal the frames corrupted, resyncs equal those plus the
//!   noise bursts, gaps equal the corrupted frames: no wrong frame accepted, no panic.
//!
//! Skipped (with a message) only where qemu-system-arm is missing; `.ci/run` installs it.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::fleet::FakeFleet;
use common::process::http;
use common::serial::{Board, Corruption, Pty, board_elf};
use common::{MOSQUITTO, Recorder, settings, unique_namespace};
use ed25519_dalek::SigningKey;
use edgefleet_agent::config::{InputSetting, SerialSettings};
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::package::{Manifest, PackageHead, TrustStore, write_package};
use edgefleet_protocol::uplink::{DeploymentState, SensorStatus};
use edgefleet_protocol::{PublicKey, decode};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// The fixture vibration MLP (`[1, 8]` features in: one board frame), re-signed with `key()`.
fn package() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/packages/vibration-mlp-1.efpkg");
    let bytes = std::fs::read(path).unwrap();
    let m = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let head_len = 16 + m + 72;
    let mut manifest: Manifest = PackageHead::from_bytes(&bytes[..head_len]).unwrap().manifest_unverified().unwrap();
    manifest.variants.truncate(1);
    let blob = &bytes[head_len..head_len + manifest.variants[0].size as usize];
    let mut out = Vec::new();
    write_package(&mut out, &manifest, &key(), &mut [blob]).unwrap();
    out
}

struct Agent {
    api: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
    link: PathBuf,
}

impl Agent {
    /// A daemon reading `<tmp>/ttyEF0` (a symlink the test points at a pty), with the model
    /// deployed and committed.
    async fn start(device: &str, namespace: &str, fleet: &FakeFleet) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trust.toml");
        std::fs::write(&trust, TrustStore::single("release", PublicKey(key().verifying_key().to_bytes())).to_toml())
            .unwrap();
        let link = dir.path().join("ttyEF0");
        let mut s = settings(device, namespace, MOSQUITTO, &dir.path().join("data"));
        s.trust_store = trust;
        s.input = InputSetting::Serial(SerialSettings {
            device: link.clone(),
            baud: 115_200,
            silence: Duration::from_millis(1_500),
            queue: 64,
        });
        let shutdown = CancellationToken::new();
        let births = fleet.births();
        let task = tokio::spawn(edgefleet_agent::daemon::run(s, shutdown.clone()));
        fleet.wait_birth(births).await;
        let probation = ProbationBudget {
            duration_ms: 200,
            min_inferences: 0,
            max_error_rate_ppm: 1_000_000,
            max_p99_latency_us: 0,
        };
        fleet.deploy(device, 1, "vibration-mlp", 1, &package(), probation).await;
        assert_eq!(fleet.outcome(1, 20).await, DeploymentState::Committed);
        let api = std::fs::read_to_string(dir.path().join("data/api.addr")).unwrap();
        Self { api, shutdown, task, _dir: dir, link }
    }

    async fn status(&self) -> Value {
        let (code, body) = http(&self.api, "GET", "/v1/status", None).await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn sensor(&self) -> SensorStatus {
        serde_json::from_value(self.status().await["agent"]["sensor"].clone()).unwrap()
    }

    async fn inferences(&self) -> u64 {
        let status = self.status().await;
        status["models"].as_array().unwrap().iter().map(|m| m["inference_count"].as_u64().unwrap_or(0)).sum()
    }

    async fn wait(&self, secs: u64, what: &str, check: impl Fn(&SensorStatus) -> bool) -> SensorStatus {
        let started = Instant::now();
        loop {
            let status = self.sensor().await;
            if check(&status) {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(secs), "{what} not within {secs} s: {status:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.unwrap().unwrap().unwrap();
    }
}

const FRAMES: u32 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_serves_inferences_on_every_frame_the_emulated_board_sends() {
    let Some(elf) = board_elf() else { return };
    assert!(std::net::TcpStream::connect(MOSQUITTO).is_ok(), "this test needs Mosquitto on {MOSQUITTO}");
    let started = Instant::now();
    let namespace = unique_namespace();
    let fleet = FakeFleet::start(&namespace).await;
    let recorder = Recorder::start(&namespace).await;
    let agent = Agent::start("board-1", &namespace, &fleet).await;
    let pty = Pty::open();
    pty.link_at(&agent.link);
    agent.wait(10, "port open", |s| s.port_open).await;

    let board = Board::start(&elf, FRAMES, None, &pty, |_| Corruption::None);
    let ((windows_sent, frames_sent), injected) =
        tokio::task::spawn_blocking(move || board.finish(Duration::from_secs(30))).await.unwrap();
    assert_eq!(windows_sent, FRAMES);
    assert_eq!(u64::from(frames_sent), injected.frames);
    let status = agent
        .wait(10, "every frame decoded or counted lost", |s| {
            s.counters.samples + s.counters.sequence_gaps == u64::from(windows_sent)
        })
        .await;
    let c = status.counters;
    eprintln!("board sent {windows_sent} feature frames ({frames_sent} in all); agent: {c:?}");
    assert_eq!(c.samples + c.sequence_gaps, u64::from(windows_sent), "sent = decoded + lost");
    assert_eq!(c.frames, u64::from(frames_sent), "a clean line loses nothing");
    assert_eq!((c.crc_errors, c.resyncs, c.sequence_gaps), (0, 0, 0));
    let hello = status.sensor.unwrap();
    assert_eq!((hello.sensor_id, hello.channels, hello.sample_rate_hz), (0x0386_0001, 8, 50));

    // Every decoded sample ran an inference, or was counted as dropped from the queue.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ran = agent.inferences().await;
        let drops = agent.sensor().await.counters.queue_drops;
        if ran + drops >= c.samples {
            eprintln!("inferences on sensor frames: {ran}, queue drops: {drops}");
            assert!(ran > 0);
            assert_eq!(ran + drops, c.samples);
            break;
        }
        assert!(Instant::now() < deadline, "only {ran} inferences + {drops} drops for {} samples", c.samples);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The board stopped: past the silence limit the device reports a silent sensor.
    let silent = agent.wait(5, "silent sensor", |s| s.silent).await;
    assert!(silent.since_last_frame_ms.unwrap() > silent.silence_limit_ms);
    recorder
        .wait_for(5, "a silent status on the sensor topic", |r| {
            r.on("/sensor").iter().any(|p| decode::<SensorStatus>(p).is_ok_and(|s| s.silent && s.sensor.is_some()))
        })
        .await;

    // The adapter vanishes and comes back (a new pty behind the same path): the agent re-opens.
    drop(pty);
    agent.wait(10, "port loss noticed", |s| !s.port_open).await;
    let again = Pty::open();
    again.link_at(&agent.link);
    let back = agent.wait(15, "port re-opened", |s| s.port_open).await;
    assert_eq!(back.counters.reconnects, 1);
    agent.stop().await;
    eprintln!("clean-line test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corruption_is_counted_exactly_and_no_wrong_frame_is_accepted() {
    let Some(elf) = board_elf() else { return };
    assert!(std::net::TcpStream::connect(MOSQUITTO).is_ok(), "this test needs Mosquitto on {MOSQUITTO}");
    let started = Instant::now();
    let namespace = unique_namespace();
    let fleet = FakeFleet::start(&namespace).await;
    let agent = Agent::start("board-2", &namespace, &fleet).await;
    let pty = Pty::open();
    pty.link_at(&agent.link);
    agent.wait(10, "port open", |s| s.port_open).await;

    // Frames 10k+5 get a flipped byte, frames 10k+3 a noise burst before them (the last frame,
    // 150, stays intact: a lost last frame leaves no gap to see).
    let policy = |seq: u32| match seq % 10 {
        5 => Corruption::Flip,
        3 => Corruption::NoiseBefore,
        _ => Corruption::None,
    };
    let board = Board::start(&elf, FRAMES, None, &pty, policy);
    let ((windows_sent, frames_sent), injected) =
        tokio::task::spawn_blocking(move || board.finish(Duration::from_secs(30))).await.unwrap();
    assert_eq!((injected.flipped, injected.noise), (15, 15));
    let status = agent
        .wait(10, "every frame accounted for", |s| {
            s.counters.samples + s.counters.sequence_gaps == u64::from(windows_sent)
        })
        .await;
    let c = status.counters;
    eprintln!("board sent {windows_sent} ({frames_sent} in all); injected {injected:?}; agent: {c:?}");
    assert_eq!(c.crc_errors, injected.flipped, "one CRC error per corrupted frame");
    assert_eq!(c.resyncs, injected.flipped + injected.noise, "one resync per bad frame and per noise burst");
    assert_eq!(c.sequence_gaps, injected.flipped, "exactly the corrupted frames are missing");
    assert_eq!(c.samples, u64::from(windows_sent) - injected.flipped);
    assert_eq!(c.frames, u64::from(frames_sent) - injected.flipped, "no wrong frame accepted");
    agent.stop().await;
    eprintln!("corruption test took {:?}", started.elapsed());
}
