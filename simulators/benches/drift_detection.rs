//! Detection delay per drift scenario, end to end: a fleet manager (embedded broker), a
//! simulated fleet of real agents, the trained example model with its drift reference rolled
//! out, then each scenario switched on for a quarter of the devices. Measures the time from
//! onset until the fleet's drift report flags each affected device, and counts false alarms on
//! the others.
//!
//! `cargo bench -p edgefleet-sim --bench drift_detection [-- --devices 20 --window-ms 2000]`
#![allow(clippy::print_stdout)]

use anyhow::{Context, Result, bail};
use edgefleet::api::drift::{DriftReport, DriftState};
use edgefleet::api::rollouts::{CreateRolloutResponse, RolloutDetail};
use edgefleet::api::status::StatusResponse;
use edgefleet::client::Client;
use edgefleet::keys;
use edgefleet::rollout::RolloutStatus;
use edgefleet::server::config::{Overrides, ServeConfig};
use edgefleet_sim::drift::{Affected, DriftPlan, DriftScenario, Onset};
use edgefleet_sim::fleet::{SimFleet, SimFleetConfig};
use edgefleet_sim::reference::vibration_package;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const MODEL: &[u8] = include_bytes!("../../fixtures/models/vibration_mlp_trained.onnx");

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

use edgefleet_sim::api::call as api;

struct Outcome {
    detected: usize,
    affected: usize,
    median_s: f64,
    max_s: f64,
    false_alarms: usize,
    features: String,
}

async fn run_scenario(name: &str, devices: usize, window_ms: u64, rate_hz: f64) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let key = keys::generate(&dir.path().join("keys"), "bench")?;
    let model = dir.path().join("model.onnx");
    std::fs::write(&model, MODEL)?;
    let package = vibration_package(dir.path(), &key.signing_key_path, &model, 1, "1.0.0", 1, 5)?;
    let trust = dir.path().join("keys").join(keys::TRUST_STORE_FILE);
    let flags = Overrides::ephemeral(dir.path().join("fleet"), trust.clone());
    let rows_per_window = (rate_hz * window_ms as f64 / 1000.0) as u64;
    let env = [("EDGEFLEET_SERVE__DRIFT__MIN_ROWS".to_string(), (rows_per_window * 3 / 4).to_string())];
    let shutdown = CancellationToken::new();
    let server = edgefleet::server::start(ServeConfig::load(None, env, &flags)?, shutdown.clone()).await?;
    let client = Client::new(&format!("http://{}", server.http_addr), "bench");
    let mut fleet = SimFleet::start(SimFleetConfig {
        mix: "cpu=100".parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        seed: 3,
        rate_hz,
        health_interval_secs: 2,
        id_prefix: "d".into(),
        label_rate: 1.0,
        drift_window_ms: window_ms,
        ..SimFleetConfig::new(&server.mqtt_url, trust, dir.path().join("devices"), devices)
    })?;
    let (c, bytes) = (client.clone(), std::fs::read(&package)?);
    tokio::task::spawn_blocking(move || c.push_model(&bytes)).await??;
    let started = Instant::now();
    loop {
        let online = api::<StatusResponse>(&client, "/v1/status", None).await?.online;
        if online >= devices {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("devices did not come online");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let plan = json!({"model": "vibration-mlp", "version_seq": 1, "stages": "100%", "bake": "0s", "probation": "1s", "min_sample": 1});
    let id = api::<CreateRolloutResponse>(&client, "/v1/rollouts", Some(plan)).await?.id.context("rollout id")?;
    loop {
        let r: RolloutDetail = api(&client, &format!("/v1/rollouts/{id}"), None).await?;
        if r.status == RolloutStatus::Completed {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("rollout did not complete: {}", json!(r));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let every device settle into full windows of the installed version first.
    tokio::time::sleep(Duration::from_millis(3 * window_ms)).await;
    let scenario = DriftScenario::from_name(name).context("scenario")?;
    let affected = fleet.start_drift(&DriftPlan {
        scenario,
        onset: Onset::At(Instant::now()),
        affected: Affected::Fraction(0.25),
    });
    let onset = Instant::now();
    let mut detected: BTreeMap<String, f64> = BTreeMap::new();
    let mut false_alarms = std::collections::BTreeSet::new();
    let mut features: BTreeMap<String, usize> = BTreeMap::new();
    while onset.elapsed() < Duration::from_millis(window_ms * 25) && detected.len() < affected.len() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let report: DriftReport = api(&client, "/v1/drift?model=vibration-mlp", None).await?;
        for d in &report.devices {
            if d.state != DriftState::Drifting {
                continue;
            }
            let id = d.device.to_string();
            if affected.contains(&id) {
                if !detected.contains_key(&id) {
                    for f in d.latest_window.iter().flat_map(|w| &w.drifting) {
                        *features.entry(f.feature.clone()).or_insert(0) += 1;
                    }
                }
                detected.entry(id).or_insert_with(|| onset.elapsed().as_secs_f64());
            } else {
                false_alarms.insert(id);
            }
        }
    }
    let report: DriftReport = api(&client, "/v1/drift?model=vibration-mlp", None).await?;
    for d in &report.devices {
        let id = d.device.as_str();
        if affected.iter().any(|a| a == id) && !detected.contains_key(id) {
            eprintln!(
                "  {name}: {id} not flagged: {} {} {}",
                json!(d.state),
                json!(d.recent_windows),
                json!(d.reasons)
            );
        }
    }
    let mut times: Vec<f64> = detected.values().copied().collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    let mut top: Vec<(String, usize)> = features.into_iter().collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    let outcome = Outcome {
        detected: detected.len(),
        affected: affected.len(),
        median_s: at(0.5),
        max_s: at(1.0),
        false_alarms: false_alarms.len(),
        features: top.iter().take(3).map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(", "),
    };
    fleet.stop().await;
    shutdown.cancel();
    server.task.await??;
    Ok(outcome)
}

fn main() -> Result<()> {
    let devices = arg("--devices", 20) as usize;
    let window_ms = arg("--window-ms", 2000);
    let rate_hz = arg("--rate-hz", 50) as f64;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    println!(
        "drift detection delay: {devices} devices (25% affected), {rate_hz} Hz, {window_ms} ms windows, \
         5 quantile bins, FDR 0.01, alert at 3 of 5 windows"
    );
    println!(
        "{:<20} {:>9} {:>10} {:>8} {:>13}  first drifting features",
        "scenario", "detected", "median s", "max s", "false alarms"
    );
    let only = std::env::args().skip_while(|a| a != "--scenario").nth(1);
    for name in ["drift-sudden", "drift-gradual", "drift-new-state", "drift-stuck-sensor", "drift-noisy-sensor"] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let o = runtime.block_on(run_scenario(name, devices, window_ms, rate_hz))?;
        println!(
            "{:<20} {:>4} of {:<3} {:>10.1} {:>8.1} {:>13}  {}",
            name,
            o.detected,
            o.affected,
            o.median_s,
            o.max_s,
            format!("{} of {}", o.false_alarms, devices - o.affected),
            o.features
        );
    }
    Ok(())
}
