//! How many simulated devices this machine holds with stable heartbeats, and how long a staged
//! rollout to all of them takes.
//!
//! The fleet manager (`edgefleet serve` on embedded defaults: its rumqttd broker and redb
//! storage) runs in a child process, this same binary re-executed, as it would in production:
//! its sockets and memory are its own, not the simulator's. The simulated fleet (real agents:
//! own outbox, own MQTT session, own inference thread; local API off) runs in shard processes
//! of at most `--per-process` devices (default 5,000): each device holds two file descriptors
//! (its MQTT socket and its redb file) and a process may open 20,000 here. This process drives
//! the rollout and runs one MQTT subscriber that timestamps every heartbeat on arrival.
//!
//! Per fleet size: time until every device is online; a 4-stage rollout (1%, 10%, 50%, 100%,
//! zero bake, zero probation) of the package; then, with every device serving the model at
//! `--rate-hz` and reporting health every `--health-secs`, heartbeats are watched for
//! `--watch-secs`: delay (arrival − the device's timestamp, same clock), missed heartbeats (a
//! device silent for more than two intervals counts one per interval missed), the RSS and CPU
//! of both processes.
//!
//! ```text
//! cargo bench -p edgefleet-sim --bench scale -- --devices 1000,5000,10000 [--package small|wide]
//!     [--rate-hz 1] [--health-secs 10] [--watch-secs 60] [--mix cpu=70,gpu=20,accelerator=10]
//!     [--per-process 5000]
//! ```
#![allow(clippy::print_stdout)]

use anyhow::{Context, Result, bail};
use edgefleet::api::rollouts::{CreateRolloutResponse, OperateRequest, RolloutDetail};
use edgefleet::api::status::StatusResponse;
use edgefleet::client::Client;
use edgefleet::keys;
use edgefleet::rollout::{HoldReason, RolloutStatus};
use edgefleet::server::config::{Overrides, ServeConfig};
use edgefleet_protocol::codec::decode;
use edgefleet_protocol::uplink::Health;
use edgefleet_sim::fleet::{Mix, SimFleet, SimFleetConfig};
use edgefleet_sim::reference::vibration_package;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SMALL: &[u8] = include_bytes!("../../fixtures/models/vibration_mlp_trained.onnx");
const WIDE: &[u8] = include_bytes!("../../fixtures/models/vibration_mlp_wide.onnx");
/// Set in a child process: `fleet <dir>` or `shard <dir> <broker> <id prefix> <count> <mix>`
/// (children get the parent's arguments too).
const ROLE: &str = "EDGEFLEET_SCALE_BENCH_ROLE";
const NAMESPACE: &str = "edgefleet";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn num(name: &str, default: f64) -> f64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

use edgefleet_protocol::time::unix_now_ms as now_ms;

/// `(VmRSS bytes, user+system CPU seconds)` of a process.
fn usage(pid: u32) -> (u64, f64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024;
    // Fields 14 and 15 of /proc/PID/stat (after the parenthesised name) are utime and stime.
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

/// The child: a fleet manager on ephemeral ports; prints `READY <http> <mqtt>` and serves until
/// its stdin closes (the parent exited or is done with it).
fn fleet_manager_child(dir: &Path) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let flags = Overrides::ephemeral(dir.join("fleet"), dir.join("keys").join(keys::TRUST_STORE_FILE));
        let shutdown = CancellationToken::new();
        let server = edgefleet::server::start(ServeConfig::load(None, [], &flags)?, shutdown.clone()).await?;
        println!("READY {} {}", server.http_addr, server.mqtt_url);
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await??;
        shutdown.cancel();
        server.task.await??;
        anyhow::Ok(())
    })
}

/// A child process of this binary in `role`; returns it once it printed `READY ...`, with the
/// rest of that line. Closing its stdin ends it.
fn spawn_child(role: String) -> Result<(Child, Vec<String>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .env(ROLE, &role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the child process {role:?}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let mut parts = line.split_whitespace().map(str::to_string);
    if parts.next().as_deref() != Some("READY") {
        let _ = child.kill();
        bail!("child {role:?} did not start: {line:?}");
    }
    Ok((child, parts.collect()))
}

/// Ends a child: closes its stdin and waits.
fn finish(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

/// A shard: `count` simulated devices, `<prefix>-00000` on, until stdin closes.
fn shard_child(dir: &Path, broker: &str, prefix: &str, count: usize, mix: Mix) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let fleet = SimFleet::start(SimFleetConfig {
            namespace: NAMESPACE.into(),
            mix,
            rate_hz: num("--rate-hz", 1.0),
            health_interval_secs: num("--health-secs", 10.0) as u64,
            id_prefix: prefix.into(),
            local_api: false,
            ..SimFleetConfig::new(
                broker,
                dir.join("keys").join(keys::TRUST_STORE_FILE),
                dir.join("devices").join(prefix),
                count,
            )
        })?;
        println!("READY");
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await??;
        fleet.stop().await;
        anyhow::Ok(())
    })
}

use edgefleet_sim::api::{call as api, post};

/// Heartbeats seen per device: arrival times (ms) and delays (arrival − device timestamp).
#[derive(Default)]
struct Heartbeats {
    arrivals: HashMap<String, Vec<u64>>,
    delays_ms: Vec<u64>,
}

fn watch_heartbeats(mqtt_url: &str, seen: Arc<Mutex<Heartbeats>>, stop: CancellationToken) -> Result<()> {
    let address = mqtt_url.trim_start_matches("mqtt://");
    let (host, port) = address.rsplit_once(':').context("broker URL without a port")?;
    let mut options = MqttOptions::new(format!("scale-watch-{}", std::process::id()), host, port.parse()?);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    tokio::spawn(async move {
        let _ = client.subscribe(format!("{NAMESPACE}/devices/+/health"), QoS::AtMostOnce).await;
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => break,
                e = eventloop.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let arrived = now_ms();
                    let device = p.topic.split('/').nth(2).unwrap_or("").to_string();
                    if let Ok(h) = decode::<Health>(&p.payload) {
                        let mut s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        s.delays_ms.push(arrived.saturating_sub(h.timestamp_ms));
                        s.arrivals.entry(device).or_default().push(arrived);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Row {
    devices: usize,
    online_s: f64,
    rollout_s: f64,
    sim_rss: u64,
    fleet_rss: u64,
    sim_cores: f64,
    fleet_cores: f64,
    heard: usize,
    delay_p50: u64,
    delay_p99: u64,
    delay_max: u64,
    missed: u64,
    expected: u64,
}

async fn run_size(devices: usize, package_kind: &str, mix: Mix) -> Result<Row> {
    let health_secs = num("--health-secs", 10.0) as u64;
    let watch_secs = num("--watch-secs", 60.0) as u64;
    let dir = tempfile::tempdir()?;
    let key = keys::generate(&dir.path().join("keys"), "scale")?;
    let model: PathBuf = dir.path().join("model.onnx");
    std::fs::write(&model, if package_kind == "wide" { WIDE } else { SMALL })?;
    let package = vibration_package(dir.path(), &key.signing_key_path, &model, 1, "1.0.0", 1, 10)?;

    let dir_text = dir.path().to_str().context("non-UTF-8 temporary directory")?.to_string();
    let (manager, urls) = spawn_child(format!("fleet {dir_text}"))?;
    let (http, mqtt) = match urls.as_slice() {
        [http, mqtt] => (format!("http://{http}"), mqtt.clone()),
        _ => bail!("the fleet manager printed {urls:?}"),
    };
    let client = Client::new(&http, "scale-bench");
    let sim_started = Instant::now();
    let per_process = (num("--per-process", 5000.0) as usize).max(1);
    let mut shards = Vec::new();
    let mut ids = Vec::new();
    for (k, first) in (0..devices).step_by(per_process).enumerate() {
        let count = per_process.min(devices - first);
        let prefix = format!("s{k}");
        ids.extend((0..count).map(|i| format!("{prefix}-{i:05}")));
        shards.push(spawn_child(format!("shard {dir_text} {mqtt} {prefix} {count} {mix}"))?.0);
    }
    loop {
        let online = api::<StatusResponse>(&client, "/v1/status", None).await?.online;
        if online >= devices {
            break;
        }
        if sim_started.elapsed() > Duration::from_secs(900) {
            bail!("only {online} of {devices} devices online after 900 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let online_s = sim_started.elapsed().as_secs_f64();
    println!("  {devices} devices online in {online_s:.1}s");

    let bytes = std::fs::read(&package)?;
    let c = client.clone();
    tokio::task::spawn_blocking(move || c.push_model(&bytes)).await??;
    let plan = json!({"model": "vibration-mlp", "version_seq": 1, "stages": "1%,10%,50%,100%", "bake": "0s",
        "max_failure_rate": "50%", "confidence": "80%", "min_sample": 5, "probation": "0s",
        "max_concurrent_downloads": 200});
    let rollout_started = Instant::now();
    let id = api::<CreateRolloutResponse>(&client, "/v1/rollouts", Some(plan)).await?.id.unwrap_or(0);
    loop {
        let r: RolloutDetail = api(&client, &format!("/v1/rollouts/{id}"), None).await?;
        if r.status != RolloutStatus::Running {
            if r.status != RolloutStatus::Completed {
                bail!("rollout ended {}: {:#}", json!(r.status), json!(r));
            }
            break;
        }
        // Small canaries (1% of a small track) hold "inconclusive"; promote them as an operator would.
        for t in &r.tracks {
            if t.held == Some(HoldReason::Inconclusive) {
                let body = OperateRequest { reason: "scale bench".into(), track: Some(t.hardware.clone()) };
                post::<RolloutDetail>(&client, &format!("/v1/rollouts/{id}/promote"), &body).await?;
            }
        }
        if rollout_started.elapsed() > Duration::from_secs(1800) {
            bail!("rollout still running after 1800 s: {:#}", json!(r));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rollout_s = rollout_started.elapsed().as_secs_f64();
    println!(
        "  4-stage rollout of {} KiB to {devices} devices: {rollout_s:.1}s",
        std::fs::metadata(&package)?.len() / 1024
    );

    // Let the fleet settle into steady serving, then watch heartbeats.
    tokio::time::sleep(Duration::from_secs(health_secs)).await;
    let seen = Arc::new(Mutex::new(Heartbeats::default()));
    let stop = CancellationToken::new();
    watch_heartbeats(&mqtt, seen.clone(), stop.clone())?;
    let shard_usage =
        |shards: &[Child]| shards.iter().map(|c| usage(c.id())).fold((0, 0.0), |(r, c), (r1, c1)| (r + r1, c + c1));
    let (_, sim_cpu0) = shard_usage(&shards);
    let (_, fleet_cpu0) = usage(manager.id());
    let watch_started = Instant::now();
    let watch_from = now_ms();
    tokio::time::sleep(Duration::from_secs(watch_secs)).await;
    let watch_to = now_ms();
    let elapsed = watch_started.elapsed().as_secs_f64();
    let (sim_rss, sim_cpu1) = shard_usage(&shards);
    let (fleet_rss, fleet_cpu1) = usage(manager.id());
    stop.cancel();

    let s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut delays = s.delays_ms.clone();
    delays.sort_unstable();
    let interval = health_secs * 1000;
    let mut missed = 0u64;
    for id in &ids {
        let mut times = vec![watch_from];
        times.extend(s.arrivals.get(id).cloned().unwrap_or_default());
        times.push(watch_to);
        for pair in times.windows(2) {
            let gap = pair[1].saturating_sub(pair[0]);
            if gap > 2 * interval {
                missed += gap / interval - 1;
            }
        }
    }
    let row = Row {
        devices,
        online_s,
        rollout_s,
        sim_rss,
        fleet_rss,
        sim_cores: (sim_cpu1 - sim_cpu0) / elapsed,
        fleet_cores: (fleet_cpu1 - fleet_cpu0) / elapsed,
        heard: s.arrivals.len(),
        delay_p50: percentile(&delays, 0.5),
        delay_p99: percentile(&delays, 0.99),
        delay_max: delays.last().copied().unwrap_or(0),
        missed,
        expected: devices as u64 * (watch_to - watch_from) / interval,
    };
    drop(s);
    shards.into_iter().for_each(finish);
    finish(manager);
    Ok(row)
}

fn main() -> Result<()> {
    if let Ok(role) = std::env::var(ROLE) {
        let words: Vec<&str> = role.split(' ').collect();
        return match words.as_slice() {
            ["fleet", dir] => fleet_manager_child(Path::new(dir)),
            ["shard", dir, broker, prefix, count, mix] => {
                shard_child(Path::new(dir), broker, prefix, count.parse()?, mix.parse().map_err(anyhow::Error::msg)?)
            }
            _ => bail!("unknown {ROLE} {role:?}"),
        };
    }
    let sizes: Vec<usize> = arg("--devices")
        .unwrap_or_else(|| "1000".into())
        .split(',')
        .map(|s| s.trim().parse().context("--devices takes a comma-separated list of counts"))
        .collect::<Result<_>>()?;
    let package_kind = arg("--package").unwrap_or_else(|| "small".into());
    let mix: Mix =
        arg("--mix").unwrap_or_else(|| "cpu=70,gpu=20,accelerator=10".into()).parse().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut rows = Vec::new();
    for &n in &sizes {
        println!("{n} devices ({package_kind} package):");
        match runtime.block_on(run_size(n, &package_kind, mix)) {
            Ok(row) => {
                println!("{TABLE_HEAD}\n{}", table_row(&row));
                rows.push(row);
            }
            Err(e) => println!("  failed: {e:#}"),
        }
    }
    println!("\n{TABLE_HEAD}");
    for r in &rows {
        println!("{}", table_row(r));
    }
    Ok(())
}

const TABLE_HEAD: &str = "| devices | online after | 4-stage rollout | simulator RSS (per device) | fleet manager RSS | CPU sim / fleet (cores) | heartbeats heard | delay p50 / p99 / max | missed |\n|---|---|---|---|---|---|---|---|---|";

fn table_row(r: &Row) -> String {
    format!(
        "| {} | {:.1} s | {:.1} s | {:.0} MiB ({:.0} KiB) | {:.0} MiB | {:.2} / {:.2} | {} of {} devices | {} / {} / {} ms | {} of {} |",
        r.devices,
        r.online_s,
        r.rollout_s,
        r.sim_rss as f64 / (1 << 20) as f64,
        r.sim_rss as f64 / 1024.0 / r.devices as f64,
        r.fleet_rss as f64 / (1 << 20) as f64,
        r.sim_cores,
        r.fleet_cores,
        r.heard,
        r.devices,
        r.delay_p50,
        r.delay_p99,
        r.delay_max,
        r.missed,
        r.expected
    )
}
