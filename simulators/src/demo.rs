//! `edgefleet-sim demo`: the whole story on embedded defaults, nothing else installed.
//!
//! A fleet manager (embedded broker and storage) and a simulated fleet (real agents, hardware
//! mix, vibration sensors) start in this process; a signed baseline model rolls out in stages
//! with live progress; then a release that installs fine but is many times slower on the devices is
//! stopped at its canary stage by the health gate (p99 against the devices still on the old
//! version) and rolled back, with its A/B scorecard; then the sensors at one site drift and the
//! fleet's drift detection flags exactly those devices (per device and per site cohort, with
//! the time it took); the audit chain is verified; a summary with numbers follows.

use crate::drift::{Affected, DriftPlan, DriftScenario, Onset};
use crate::fleet::{Mix, SimFleet, SimFleetConfig};
use crate::reference::vibration_package;
use anyhow::{Context, Result, bail};
use edgefleet::api::audit::AuditVerify;
use edgefleet::api::devices::{DeviceSummary, LabelRequest, LabelResponse, SamplingRequest, SamplingResponse};
use edgefleet::api::drift::{AssessmentView, DriftReport, DriftState, Scorecard, ScorecardTrack};
use edgefleet::api::models::PushResponse;
use edgefleet::api::rollouts::{CreateRolloutResponse, OperateRequest, RolloutDetail, TrackView};
use edgefleet::api::samples::SampleRecord;
use edgefleet::client::Client;
use edgefleet::keys;
use edgefleet::rollout::machine::HealthVerdict;
use edgefleet::rollout::{HoldReason, RolloutStatus};
use edgefleet::server::config::{Overrides, ServeConfig};
use edgefleet_protocol::hardware::HardwareClass;
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// v1: the example MLP trained on the simulator's training data (fixtures/models/train_vibration.py).
const SMALL_MODEL: &[u8] = include_bytes!("../../fixtures/models/vibration_mlp_trained.onnx");
/// v2: 32 hidden 512-wide layers sharing one weight matrix: a 1 MB package that runs 10-30×
/// longer than v1, far above the scheduling noise in a p99 on a busy 2-core machine (a wider
/// but shallow network was only 1.5-3× slower there and sometimes slipped under the gate).
const DEEP_MODEL: &[u8] = include_bytes!("../../fixtures/models/vibration_mlp_deep.onnx");
const MARKER: &str = ".edgefleet-demo";
/// Drift summary window on the simulated devices.
const DRIFT_WINDOW_MS: u64 = 4_000;
/// Sensor windows per device per second.
const RATE_HZ: f64 = 20.0;
/// Quantile bins of the demo's drift references: with ~80 rows per device window, 5 bins keep
/// 16 expected values per bin (the chi-square approximation holds) and the PSI of pure sampling
/// noise near 0.05, under the 0.1 floor.
const REFERENCE_BINS: usize = 5;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where everything goes (recreated; must be a previous demo dir or absent).
    pub dir: PathBuf,
    /// Simulated devices.
    pub devices: usize,
    /// Hardware mix.
    pub mix: Mix,
    /// Seed.
    pub seed: u64,
    /// Leave the fleet manager and devices running at the end.
    pub keep_running: bool,
}

use crate::api::{call as api, post};

async fn push(client: &Client, file: &Path) -> Result<PushResponse> {
    let (c, bytes) = (client.clone(), std::fs::read(file)?);
    Ok(tokio::task::spawn_blocking(move || c.push_model(&bytes)).await??)
}

/// A field as its JSON text (strings quoted, `null` for none), as the demo always printed them.
fn j(field: &impl Serialize) -> String {
    serde_json::to_value(field).unwrap_or_default().to_string()
}

/// A rollout status in words (`completed`, `failed`, `rolled back`, ...), as `edgefleet` prints it.
fn word(status: RolloutStatus) -> &'static str {
    status.words()
}

/// Models a device list shows as serving version 1.
fn on_v1(d: &DeviceSummary) -> bool {
    d.models.iter().any(|m| m == "vibration-mlp@1")
}

fn build(dir: &Path, model: &Path, seq: u64, label: &str, seed: u64) -> Result<PathBuf> {
    let key = dir.join("keys").join(keys::SIGNING_KEY_FILE);
    vibration_package(dir, &key, model, seq, label, seed, REFERENCE_BINS)
}

fn counts(track: &TrackView) -> String {
    track.counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// Follows a rollout, printing each change of a track's stage, phase or counts; returns the
/// final rollout and how long it took.
async fn follow(client: &Client, id: u32, limit: Duration) -> Result<(RolloutDetail, Duration)> {
    let started = Instant::now();
    let mut last: Vec<String> = Vec::new();
    let mut held_since: std::collections::BTreeMap<String, Instant> = std::collections::BTreeMap::new();
    loop {
        let r: RolloutDetail = api(client, &format!("/v1/rollouts/{id}"), None).await?;
        let lines: Vec<String> = r
            .tracks
            .iter()
            .map(|t| {
                // The percentage unpadded, as it has always printed (a JSON value ignores widths).
                format!(
                    "{:<12} stage {}/{} ({}%) {:<22} {}",
                    t.hardware,
                    t.stage,
                    t.stages,
                    t.stage_percent,
                    t.phase,
                    counts(t)
                )
            })
            .collect();
        if lines != last {
            println!("  [{:>5.1}s]", started.elapsed().as_secs_f64());
            for l in &lines {
                println!("    {l}");
            }
            last = lines;
        }
        // Playing the operator: a canary too small for the install gate's bound to decide holds
        // `Inconclusive`; once its health evidence is in and fine, promote it (audited).
        for t in &r.tracks {
            let track = t.hardware.clone();
            let verdict = t
                .last_decision
                .as_ref()
                .and_then(|d| d.evidence.health.as_ref())
                .map_or(HealthVerdict::Fine, |h| h.verdict);
            if t.held != Some(HoldReason::Inconclusive)
                || !matches!(verdict, HealthVerdict::Fine | HealthVerdict::NoControl)
            {
                held_since.remove(&track);
                continue;
            }
            let since = *held_since.entry(track.clone()).or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(2) {
                println!(
                    "    operator: promote {track} (its canary is too small for the bound to decide; health is fine)"
                );
                let body = OperateRequest { reason: "demo: small canary, healthy".into(), track: Some(track.clone()) };
                post::<RolloutDetail>(client, &format!("/v1/rollouts/{id}/promote"), &body).await?;
                held_since.remove(&track);
            }
        }
        if r.status != RolloutStatus::Running {
            return Ok((r, started.elapsed()));
        }
        if started.elapsed() > limit {
            bail!("rollout {id} did not finish within {}s: {:#}", limit.as_secs(), json!(r));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!("{} exists and is not a previous demo directory; pick another with --dir", dir.display());
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing the previous demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("models"))?;
    std::fs::write(dir.join(MARKER), "created by edgefleet-sim demo; removed by the next demo run\n")?;
    Ok(())
}

/// Runs the demo.
pub async fn run(options: DemoOptions) -> Result<()> {
    let started = Instant::now();
    let dir = &options.dir;
    prepare_dir(dir)?;
    println!("Edgefleet demo in {} ({} simulated devices, seed {})\n", dir.display(), options.devices, options.seed);

    println!("1. signing key and models");
    let key = keys::generate(&dir.join("keys"), "demo-release")?;
    let small = dir.join("models/vibration_mlp_trained.onnx");
    let deep = dir.join("models/vibration_mlp_deep.onnx");
    std::fs::write(&small, SMALL_MODEL)?;
    std::fs::write(&deep, DEEP_MODEL)?;
    let v1 = build(dir, &small, 1, "1.0.0", options.seed)?;
    let v2 = build(dir, &deep, 2, "2.0.0-deep", options.seed)?;
    println!(
        "   key {}; v1 = 8→16→4 MLP trained on the simulator's data (cpu, gpu, accelerator variants); v2 = an untrained 8→512→(512→512)×32→4 MLP, same inputs/outputs",
        key.key_id
    );
    println!(
        "   each package carries a drift reference: {REFERENCE_BINS} quantile bins per input feature, score, predicted class and confidence over 4,000 training rows\n"
    );

    println!("2. fleet manager (embedded MQTT broker + storage)");
    let trust = dir.join("keys").join(keys::TRUST_STORE_FILE);
    let flags = Overrides::ephemeral(dir.join("fleet"), trust.clone());
    // Devices summarize ~80 rows per window here (20 Hz, 4 s), so the fleet tests windows from
    // 60 values on (its default of 100 suits minute-long windows).
    let env = [("EDGEFLEET_SERVE__DRIFT__MIN_ROWS".to_string(), "60".to_string())];
    let config = ServeConfig::load(None, env, &flags)?;
    let shutdown = CancellationToken::new();
    let server = edgefleet::server::start(config, shutdown.clone()).await?;
    let url = format!("http://{}", server.http_addr);
    let client = Client::new(&url, "demo");
    println!("   API {url}, MQTT {}\n", server.mqtt_url);

    println!(
        "3. simulated fleet: {} devices, mix cpu={} gpu={} accelerator={}",
        options.devices, options.mix.cpu, options.mix.gpu, options.mix.accelerator
    );
    let mut fleet = SimFleet::start(SimFleetConfig {
        mix: options.mix,
        seed: options.seed,
        rate_hz: RATE_HZ,
        health_interval_secs: 2,
        label_rate: 1.0,
        drift_window_ms: DRIFT_WINDOW_MS,
        ..SimFleetConfig::new(&server.mqtt_url, trust, dir.join("devices"), options.devices)
    })?;
    let registering = Instant::now();
    loop {
        // Registered means its birth arrived (hardware known): a rollout targets only those;
        // the retained online state can come first.
        let known: Vec<DeviceSummary> = api(&client, "/v1/devices", None).await?;
        let ready = |d: &DeviceSummary| d.online && d.hardware.is_some();
        let online = known.iter().filter(|d| ready(d)).count();
        if online >= options.devices {
            break;
        }
        if registering.elapsed() > Duration::from_secs(120) {
            let heard: Vec<&str> = known.iter().map(|d| d.id.as_str()).collect();
            let mut not_ready: Vec<String> = known
                .iter()
                .filter(|d| !ready(d))
                .map(|d| {
                    let state = if d.online { "online" } else { "offline" };
                    let birth = if d.hardware.is_none() { ", no birth" } else { "" };
                    format!("{} ({state}{birth})", d.id)
                })
                .collect();
            not_ready.extend(
                (0..options.devices)
                    .filter_map(|i| fleet.device_id(i))
                    .filter(|id| !heard.contains(id))
                    .map(|id| format!("{id} (never heard from)")),
            );
            bail!(
                "only {online} of {} devices came online in 120 s; not ready: {}",
                options.devices,
                not_ready.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let register_time = registering.elapsed();
    println!("   all {} devices online in {:.1}s", options.devices, register_time.as_secs_f64());
    // Two sites; plant-b gets the drifting sensors later (its devices are the seeded 20%).
    let plant_b: Vec<usize> = Affected::Fraction(0.2).resolve(options.devices, options.seed);
    for i in 0..options.devices {
        let Some(id) = fleet.device_id(i) else { continue };
        let site = if plant_b.contains(&i) { "plant-b" } else { "plant-a" };
        let labels = LabelRequest { set: [("site".to_string(), site.to_string())].into(), remove: Vec::new() };
        post::<LabelResponse>(&client, &format!("/v1/devices/{id}/labels"), &labels).await?;
    }
    println!(
        "   labelled site=plant-a ({} devices) and site=plant-b ({} devices)\n",
        options.devices - plant_b.len(),
        plant_b.len()
    );

    let plan = |seq: u64| {
        json!({
            "model": "vibration-mlp", "version_seq": seq, "stages": "10%,50%,100%", "bake": "3s",
            "max_failure_rate": "50%", "confidence": "80%", "min_sample": 5, "probation": "2s",
            "max_p99_ratio": 1.3, "max_error_rate_increase": "2%", "min_inferences": 100,
            "max_concurrent_downloads": 50,
        })
    };

    println!(
        "4. roll out v1 (stages 10%, 50%, 100%; gates: install failures, and p99 / error rate vs devices not yet updated)"
    );
    push(&client, &v1).await?;
    let id1 = api::<CreateRolloutResponse>(&client, "/v1/rollouts", Some(plan(1))).await?.id.unwrap_or(0);
    let (r1, d1) = follow(&client, id1, Duration::from_secs(300)).await?;
    println!("   rollout {id1}: {} in {:.1}s\n", word(r1.status), d1.as_secs_f64());

    println!("5. release v2: it installs and validates fine, but is much slower on the devices");
    push(&client, &v2).await?;
    let id2 = api::<CreateRolloutResponse>(&client, "/v1/rollouts", Some(plan(2))).await?.id.unwrap_or(0);
    let (r2, d2) = follow(&client, id2, Duration::from_secs(300)).await?;
    let mut caught = Vec::new();
    for t in &r2.tracks {
        let decision = t.last_decision.as_ref();
        let h = decision.and_then(|d| d.evidence.health.as_deref());
        let control = h.and_then(|h| h.control);
        caught.push(format!(
            "{}: {} at stage {} — p99 {}µs on {} canaries vs {}µs on {} devices still on v1 (ratio {:.1}, max 1.3); {} canaries rolled back",
            t.hardware,
            decision.map_or("?", |d| d.decision.as_str()),
            t.stage,
            j(&h.map(|h| h.new.p99_us)),
            j(&h.map(|h| h.new.devices)),
            j(&control.map(|c| c.p99_us)),
            j(&control.map(|c| c.devices)),
            h.and_then(|h| h.p99_ratio).unwrap_or(0.0),
            t.counts.get("rolled_back").copied().unwrap_or(0)
        ));
    }
    println!("   rollout {id2}: {} after {:.1}s", word(r2.status), d2.as_secs_f64());
    for c in &caught {
        println!("   {c}");
    }
    // Wait for the canaries to report v1 again.
    let back = Instant::now();
    let mut on_v1 = 0;
    while back.elapsed() < Duration::from_secs(60) {
        let devices: Vec<DeviceSummary> = api(&client, "/v1/devices", None).await?;
        on_v1 = devices.iter().filter(|d| self::on_v1(d)).count();
        if on_v1 == options.devices {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if on_v1 < options.devices {
        // Say who did not come back, and what they report, rather than only a count.
        let devices: Vec<DeviceSummary> = api(&client, "/v1/devices", None).await?;
        for d in devices.iter().filter(|d| !self::on_v1(d)) {
            println!("   not back on v1: {} models {} online {}", j(&d.id), j(&d.models), d.online);
        }
    }
    let card: Scorecard = api(&client, &format!("/v1/rollouts/{id2}/scorecard"), None).await?;
    println!("   scorecard (`edgefleet scorecard {id2}`), new v2 canaries vs control on v1, same track and period:");
    for t in &card.tracks {
        println!("     {}", scorecard_line(t));
    }
    println!();

    println!("6. drift: the vibration sensors at plant-b are re-mounted and read 1.8x too high");
    let drift = drift_act(&client, &mut fleet, &plant_b).await?;
    println!();

    println!("7. audit");
    let verify: AuditVerify = api(&client, "/v1/audit/verify", None).await?;
    println!("   {} audit entries, hash chain {}\n", j(&verify.entries), if verify.ok { "intact" } else { "BROKEN" });

    println!("Summary");
    println!(
        "  devices            {} simulated agents ({} cpu / {} gpu / {} accelerator), online in {:.1}s",
        options.devices,
        fleet.devices().filter(|d| d.1 == HardwareClass::Cpu).count(),
        fleet.devices().filter(|d| d.1 == HardwareClass::Gpu).count(),
        fleet.devices().filter(|d| d.1 == HardwareClass::Accelerator).count(),
        register_time.as_secs_f64()
    );
    println!("  v1 rollout         {} in {:.1}s, 3 stages per hardware track", word(r1.status), d1.as_secs_f64());
    println!(
        "  v2 rollout         {} by its health gate after {:.1}s; {} of {} devices back on / still on v1",
        word(r2.status),
        d2.as_secs_f64(),
        on_v1,
        options.devices
    );
    println!(
        "  audit              {} entries, chain {}",
        j(&verify.entries),
        if verify.ok { "verified" } else { "BROKEN" }
    );
    println!("  took               {:.1}s", started.elapsed().as_secs_f64());
    println!("  data               {} (fleet manager: fleet/, devices: devices/, keys: keys/)", dir.display());
    println!("  drift detection    {}", drift.summary);

    if options.keep_running {
        println!("\nStill running (Ctrl-C to stop). Explore:");
        println!("  edgefleet --server {url} devices list");
        println!("  edgefleet --server {url} rollout status {id2}");
        println!("  edgefleet --server {url} health");
        println!("  edgefleet --server {url} drift report --model vibration-mlp");
        println!("  edgefleet --server {url} scorecard {id2}");
        println!("  edgefleet --server {url} audit list");
        tokio::signal::ctrl_c().await?;
    } else {
        println!(
            "\nRe-run with --keep-running to explore with `edgefleet --server URL devices list | rollout status ID | health | drift report --model vibration-mlp | scorecard ID | audit list`."
        );
    }
    fleet.stop().await;
    shutdown.cancel();
    server.task.await??;
    if r1.status != RolloutStatus::Completed || r2.status != RolloutStatus::Stopped || !verify.ok || !drift.as_expected
    {
        bail!("the demo did not go as expected (see above)");
    }
    Ok(())
}

/// One scorecard track in a line.
fn scorecard_line(t: &ScorecardTrack) -> String {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.1}%", x * 100.0));
    let ci = |v: Option<(f64, f64)>| match v {
        Some((l, u)) => format!("[{:+.1}, {:+.1}] pts", l * 100.0, u * 100.0),
        None => "n/a".into(),
    };
    let d = &t.difference;
    // A statistic sent as null (not finite) reads back as NaN: shown as missing.
    let psi = d.prediction_shift.as_ref().map(|p| p.psi).filter(|p| !p.is_nan());
    format!(
        "{:<11} accuracy {} vs {} (difference {}, 95% CI {}); p99 ratio {}; prediction shift PSI {}",
        t.hardware,
        pct(t.new.accuracy.accuracy),
        pct(t.control.accuracy.accuracy),
        d.accuracy_delta.map_or("-".into(), |x| format!("{:+.1} pts", x * 100.0)),
        ci(d.accuracy_delta_ci95),
        d.p99_ratio.map_or("-".into(), |r| format!("{r:.1}")),
        psi.map_or("-".into(), |p| format!("{p:.2}")),
    )
}

struct DriftOutcome {
    summary: String,
    as_expected: bool,
}

/// Switches drift on for the plant-b devices and watches the fleet's drift report until every
/// one of them is flagged (or 120 s pass); prints detection times, false alarms and cohorts.
async fn drift_act(client: &Client, fleet: &mut SimFleet, plant_b: &[usize]) -> Result<DriftOutcome> {
    let affected: Vec<String> = fleet
        .start_drift(&DriftPlan {
            scenario: DriftScenario::Sudden { gain: 1.8, offset: 0.0 },
            onset: Onset::At(Instant::now()),
            affected: Affected::Devices(plant_b.to_vec()),
        })
        .into_iter()
        .collect();
    let onset = Instant::now();
    let mut detected: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    let mut false_alarms: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut report: Option<DriftReport> = None;
    let mut printed = 0;
    while onset.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now: DriftReport = api(client, "/v1/drift?model=vibration-mlp", None).await?;
        for d in &now.devices {
            let id = d.device.to_string();
            if d.state != DriftState::Drifting {
                continue;
            }
            if affected.contains(&id) {
                detected.entry(id).or_insert_with(|| onset.elapsed().as_secs_f64());
            } else {
                false_alarms.insert(id);
            }
        }
        report = Some(now);
        if detected.len() / 10 > printed / 10 || detected.len() == affected.len() {
            printed = detected.len();
            println!(
                "   [{:>5.1}s] {} of {} plant-b devices flagged drifting",
                onset.elapsed().as_secs_f64(),
                printed,
                affected.len()
            );
        }
        if detected.len() == affected.len() {
            break;
        }
    }
    let mut times: Vec<f64> = detected.values().copied().collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    let (devices, cohorts) = report.as_ref().map_or((&[][..], &[][..]), |r| (&r.devices[..], &r.cohorts[..]));
    if let Some(example) = devices.iter().find(|d| d.state == DriftState::Drifting) {
        println!("   why, for {} (`edgefleet health --device ...`):", example.device);
        for r in example.reasons.iter().take(4) {
            println!("     {r}");
        }
    }
    println!("   cohorts (`edgefleet drift report --model vibration-mlp`):");
    for c in cohorts.iter().filter(|c| c.cohort.contains("site=")) {
        let assessment: Option<&AssessmentView> = c.assessment.as_ref();
        let features: Vec<String> =
            assessment.map(|a| a.drifting.iter().map(|f| f.feature.clone()).collect()).unwrap_or_default();
        println!(
            "     {:<26} {:>3} devices, {:>3} drifting, max PSI {:.2}, drifting features: {}",
            c.cohort,
            c.devices,
            c.drifting_devices,
            assessment.and_then(|a| a.max_psi).unwrap_or(0.0),
            if features.is_empty() { "none".to_string() } else { features.join(", ") }
        );
    }
    // Closing the loop: collect raw data from the drifting site for retraining.
    let sampling = SamplingRequest {
        select: "site=plant-b".into(),
        model: Some("vibration-mlp".into()),
        sample_rate: 0.2,
        max_sample_bytes_per_hour: 4 << 20,
        drift_window_ms: DRIFT_WINDOW_MS,
    };
    post::<SamplingResponse>(client, "/v1/sampling", &sampling).await?;
    println!(
        "   operator: sample 20% of plant-b's inferences as raw records (`edgefleet devices sampling --select site=plant-b --sample-rate 0.2`)"
    );
    let collecting = Instant::now();
    let mut records: Vec<SampleRecord> = Vec::new();
    while collecting.elapsed() < Duration::from_millis(3 * DRIFT_WINDOW_MS) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        records = api(client, "/v1/samples?model=vibration-mlp", None).await?;
        if records.len() >= 100 && collecting.elapsed() > Duration::from_millis(DRIFT_WINDOW_MS + 1000) {
            break;
        }
    }
    let devices: std::collections::BTreeSet<&str> = records.iter().map(|r| r.device.as_str()).collect();
    let only_plant_b = devices.iter().all(|d| affected.iter().any(|a| a == d));
    println!(
        "   {} raw (input, output) records from {} plant-b devices in {:.1}s (`edgefleet samples export --model vibration-mlp --out FILE.csv`)",
        records.len(),
        devices.len(),
        collecting.elapsed().as_secs_f64()
    );
    let summary = format!(
        "{} of {} plant-b devices flagged (detection after {:.1}s median, {:.1}s max; {} ms windows, alert at 3 of 5), {} false alarm(s) among the other {} devices",
        detected.len(),
        affected.len(),
        at(0.5),
        at(1.0),
        DRIFT_WINDOW_MS,
        false_alarms.len(),
        fleet.len() - affected.len()
    );
    println!("   {summary}");
    fleet.stop_drift();
    Ok(DriftOutcome {
        as_expected: detected.len() == affected.len() && false_alarms.is_empty() && !records.is_empty() && only_plant_b,
        summary,
    })
}
