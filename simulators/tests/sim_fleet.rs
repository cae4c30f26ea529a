//! `SimFleet` against a real fleet manager (embedded broker), and the README demo command.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet::client::Client;
use edgefleet::keys;
use edgefleet::server::config::{Overrides, ServeConfig};
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_sim::drift::{Affected, DriftPlan, DriftScenario, Onset};
use edgefleet_sim::fleet::{SimFleet, SimFleetConfig};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn devices_online(client: &Client) -> u64 {
    let c = client.clone();
    tokio::task::spawn_blocking(move || c.get::<serde_json::Value>("/v1/status")).await.unwrap().unwrap()["online"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sim_fleet_registers_with_its_mix_and_survives_crash_restarts() {
    let dir = tempfile::tempdir().unwrap();
    keys::generate(&dir.path().join("keys"), "t").unwrap();
    let trust = dir.path().join("keys").join(keys::TRUST_STORE_FILE);
    let flags = Overrides::ephemeral(dir.path().join("fleet"), trust.clone());
    let shutdown = CancellationToken::new();
    let server =
        edgefleet::server::start(ServeConfig::load(None, [], &flags).unwrap(), shutdown.clone()).await.unwrap();
    let client = Client::new(&format!("http://{}", server.http_addr), "t");
    let mut sim = SimFleet::start(SimFleetConfig {
        mix: "cpu=50,gpu=30,accelerator=20".parse().unwrap(),
        seed: 5,
        rate_hz: 5.0,
        health_interval_secs: 1,
        id_prefix: "t".into(),
        drift: Some(DriftPlan {
            scenario: DriftScenario::from_name("drift-sudden").unwrap(),
            onset: Onset::AfterStart(Duration::from_secs(3600)),
            affected: Affected::Fraction(0.2),
        }),
        label_rate: 0.5,
        ..SimFleetConfig::new(&server.mqtt_url, trust, dir.path().join("devices"), 20)
    })
    .unwrap();
    assert_eq!(sim.devices().filter(|d| d.1 == HardwareClass::Accelerator).count(), 4);
    // The affected set is the seeded 20% of the fleet, by index and by id.
    assert_eq!(sim.affected(), Affected::Fraction(0.2).resolve(20, 5));
    let ids: Vec<String> = sim.affected_devices().map(str::to_string).collect();
    assert_eq!(ids, sim.affected().iter().map(|i| format!("t-{i:05}")).collect::<Vec<_>>());
    let again = sim.start_drift(&DriftPlan {
        scenario: DriftScenario::NewState,
        onset: Onset::At(Instant::now()),
        affected: Affected::Devices(vec![3, 1]),
    });
    assert_eq!(again, ["t-00001", "t-00003"]);
    assert!(sim.drift_control().current().is_some());
    let deadline = Instant::now() + Duration::from_secs(60);
    while devices_online(&client).await < 20 {
        assert!(Instant::now() < deadline, "devices did not come online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in [0, 7, 19] {
        sim.crash_restart(i).await.unwrap();
    }
    assert_eq!(sim.restarts(), 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    while devices_online(&client).await < 20 {
        assert!(Instant::now() < deadline, "restarted devices did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = client.clone();
    let list = tokio::task::spawn_blocking(move || c.get::<serde_json::Value>("/v1/devices?select=hw%3Daccelerator"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);
    sim.stop().await;
    shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[test]
fn the_readme_demo_runs_to_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgefleet-sim"))
        .args(["demo", "--devices", "40", "--dir"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rollout 1: completed"), "{text}");
    assert!(text.contains("rollout 2: failed"), "{text}");
    assert!(text.contains("40 of 40 devices back on / still on v1"), "{text}");
    assert!(text.contains("chain verified"), "{text}");
    // The drift act: the 20% of devices at plant-b are flagged, nobody else.
    assert!(text.contains("8 of 8 plant-b devices flagged"), "{text}");
    assert!(text.contains("0 false alarm(s) among the other 32 devices"), "{text}");
    let cohort = |site: &str| text.lines().find(|l| l.contains(&format!("version=1 site={site} "))).unwrap_or("");
    assert!(cohort("plant-a").contains(" 32 devices,   0 drifting"), "{text}");
    assert!(cohort("plant-b").contains("  8 devices,   8 drifting"), "{text}");
    assert!(text.contains("raw (input, output) records from"), "{text}");
    // A second run replaces the first; a directory that is not a demo's is left alone.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_edgefleet-sim"))
        .args(["demo", "--devices", "0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not a previous demo directory"));
}
