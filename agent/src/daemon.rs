//! `edgefleet-agent run`: wires the pieces together and runs until shutdown.
//!
//! ```text
//!  MQTT link ──inbound──► dispatcher ──jobs──► deployer ──swap──► inference worker ◄── local API
//!      ▲                     │ acks              │ status                 │ stats   │ drift (feedback)
//!      └──────── outbox ◄────┴───────────────────┴──── health ticker ◄────┘         │
//!                  ▲ summaries, samples                                              │
//!                  └──────────── drift task ◄──────── DriftHub ◄── observe ──────────┘
//! ```
//! Everything starts without a network: the API serves the active model and reports queue in
//! the outbox until the broker is reachable.

use crate::api::{ApiState, router};
use crate::clock::Clock;
use crate::commands::CommandLog;
use crate::config::{InputSetting, Settings};
use crate::deploy::download::Fetcher;
use crate::deploy::fsutil::{DiskSpace, FileSystem};
use crate::deploy::generations::Generations;
use crate::deploy::{Deployer, DeployerConfig, Outcome};
use crate::drift::{Drift, DriftHub, OverridesFile, Policy};
use crate::health::{CpuMeter, available_memory_bytes, rss_bytes, total_memory_bytes};
use crate::inference::{InferenceHandle, InferenceStats, InferenceWorker, ModelInfo, ModelLayer, WorkerConfig};
use crate::input::{InputSource, SyntheticSource};
use crate::link::{self, Inbound, LinkParts, LinkState};
use crate::outbox::{Outbox, OutboxLimits, RedbStore};
use crate::reporting::Reports;
use crate::runtime::AgentRuntime;
use crate::{AGENT_VERSION, deploy::fsutil::write_atomic};
use anyhow::Context;
use edgefleet_protocol::command::{CommandBody, CommandId, DeployCommand, RollbackCommand, SamplingPolicy};
use edgefleet_protocol::hardware::{AcceleratorInfo, GpuInfo, HardwareClass, HardwareInfo};
use edgefleet_protocol::package::PackageHead;
use edgefleet_protocol::tensor::TensorSpec;
use edgefleet_protocol::uplink::{AckResult, ActiveModel, Birth, Health};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A job for the deployer task (one deployment at a time).
enum Job {
    Deploy(CommandId, DeployCommand),
    Rollback(CommandId, RollbackCommand),
}

fn hardware_info(settings: &Settings) -> HardwareInfo {
    let class = settings.hardware.class;
    let gpu = (class == HardwareClass::Gpu).then(|| GpuInfo {
        name: nvidia_gpu_name().unwrap_or_else(|| "NVIDIA GPU".into()),
        compute_capability_major: 0,
        compute_capability_minor: 0,
        memory_bytes: 0,
    });
    let accelerator = (class == HardwareClass::Accelerator)
        .then(|| AcceleratorInfo { kind: settings.hardware.accelerator_kind.clone().unwrap_or_default(), tops: None });
    HardwareInfo {
        class,
        cpu_arch: std::env::consts::ARCH.into(),
        cpu_cores: std::thread::available_parallelism().map(|n| n.get() as u16).unwrap_or(1),
        memory_bytes: total_memory_bytes(),
        gpu,
        accelerator,
    }
}

/// The GPU model name the NVIDIA driver reports, if any.
fn nvidia_gpu_name() -> Option<String> {
    let dir = std::fs::read_dir("/proc/driver/nvidia/gpus").ok()?.next()?.ok()?.path();
    let info = std::fs::read_to_string(dir.join("information")).ok()?;
    info.lines().find_map(|l| l.strip_prefix("Model:")).map(|m| m.trim().to_string())
}

/// A counter persisted in a small file (birth sequence numbers survive restarts).
fn bump_counter(path: &std::path::Path) -> u64 {
    let next = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0) + 1;
    if let Err(e) = write_atomic(path, next.to_string().as_bytes()) {
        warn!(error = %e, "cannot persist counter {}", path.display());
    }
    next
}

fn active_models(generations: &Generations) -> Vec<ActiveModel> {
    let mut out = Vec::new();
    for model in generations.models().unwrap_or_default() {
        if let Ok(active) = generations.active(&model)
            && let Some(g) = active.current
        {
            out.push(ActiveModel {
                name: g.model,
                version_seq: g.version_seq,
                label: g.label,
                package_id: g.package_id,
            });
        }
    }
    out
}

/// The input specs of the generation serving `info`, read from its signed head.
fn input_specs(generations: &Generations, info: &ModelInfo) -> Option<Vec<TensorSpec>> {
    let current = generations.active(&info.name).ok()?.current?;
    let head = std::fs::read(generations.path(&current).join("head.bin")).ok()?;
    let manifest = PackageHead::from_bytes(&head).ok()?.manifest_unverified().ok()?;
    Some(manifest.inputs)
}

/// Applies a `SetSamplingPolicy` command: validated, persisted, then in force.
fn set_sampling_policy(drift: &Drift, file: &OverridesFile, command: &SamplingPolicy) -> AckResult {
    let mut overrides = drift.lock().overrides().clone();
    if let Err(e) = overrides.apply(command) {
        return AckResult::Rejected(e.to_string());
    }
    if let Err(e) = file.store(&overrides) {
        return AckResult::Rejected(format!("cannot persist the sampling policy: {e}"));
    }
    info!(model = ?command.model, rate = command.sample_rate, window_ms = command.drift_window_ms, "sampling policy set");
    drift.lock().set_overrides(overrides);
    AckResult::Accepted
}

/// Feeds `source` to the active model `rate_hz` times a second until shutdown.
async fn feed_inputs(
    mut source: impl InputSource,
    rate_hz: f64,
    inference: InferenceHandle,
    generations: Generations,
    drift: Drift,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / rate_hz));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut specs: Option<(ModelInfo, Vec<TensorSpec>)> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let Some(active) = inference.active() else { continue };
        if specs.as_ref().is_none_or(|(info, _)| *info != active) {
            specs = input_specs(&generations, &active).map(|s| (active.clone(), s));
        }
        let Some((_, model_inputs)) = &specs else { continue };
        let Some(tensors) = source.next(model_inputs) else { continue };
        match inference.infer(tensors).await {
            Ok(outcome) => {
                // Exactly what `POST /v1/feedback` does with a label.
                if let Some(label) = source.ground_truth()
                    && let Err(e) = drift.feedback(outcome.inference_id, label)
                {
                    tracing::debug!(error = %e, "ground truth not recorded");
                }
            }
            Err(e) => tracing::debug!(error = %e, "synthetic inference failed"),
        }
    }
}

/// Feeds samples the serial reader pushed to the active model, one inference each, as fast as
/// they come (the queue in between drops the oldest when inference falls behind).
async fn feed_pushed(
    input: crate::sensor::SerialInput,
    inference: InferenceHandle,
    generations: Generations,
    shutdown: CancellationToken,
) {
    let crate::sensor::SerialInput { shared, status_rx: _, tasks } = input;
    let mut specs: Option<(ModelInfo, Vec<TensorSpec>)> = None;
    loop {
        let values = tokio::select! {
            () = shutdown.cancelled() => break,
            values = shared.queue.pop() => values,
        };
        let Some(active) = inference.active() else { continue };
        if specs.as_ref().is_none_or(|(info, _)| *info != active) {
            specs = input_specs(&generations, &active).map(|s| (active.clone(), s));
        }
        let Some((_, model_inputs)) = &specs else { continue };
        let Some(tensors) = crate::input::tensors_from_values(model_inputs, values) else {
            tracing::debug!("sensor frame does not fit the model's input shape; skipped");
            continue;
        };
        if let Err(e) = inference.infer(tensors).await {
            tracing::debug!(error = %e, "sensor inference failed");
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// What a process that embeds agents (the simulator) plugs into one; a device uses the default.
#[derive(Default)]
pub struct Embedding {
    /// Feeds the active model from this source, this many times a second, instead of the
    /// configured input source (simulated devices plug their sensor models in here).
    pub input: Option<(Box<dyn InputSource>, f64)>,
    /// Wraps every model the agent loads (simulated hardware: latency profiles, faults).
    pub model_layer: Option<Arc<dyn ModelLayer>>,
    /// Where free disk space is read (default: the file system holding the data dir).
    pub disk: Option<Arc<dyn DiskSpace>>,
    /// The device clock (default: the system clock; a simulator skews it).
    pub clock: Clock,
}

/// Runs the agent until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_embedded(settings, shutdown, Embedding::default()).await
}

/// Like [`run`], with what an embedding process plugs in.
pub async fn run_embedded(settings: Settings, shutdown: CancellationToken, embedding: Embedding) -> anyhow::Result<()> {
    let Embedding { input: source, model_layer, disk, clock } = embedding;
    let disk: Arc<dyn DiskSpace> = disk.unwrap_or_else(|| Arc::new(FileSystem));
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    let mut boot = [0u8; 8];
    getrandom::fill(&mut boot).map_err(|e| anyhow::anyhow!("reading randomness for the boot id: {e}"))?;
    let boot_id = u64::from_le_bytes(boot);
    let started = std::time::Instant::now();

    let store = RedbStore::open(settings.data_dir.join("outbox.redb")).context("opening the outbox")?;
    let limits =
        OutboxLimits { max_bytes: settings.outbox.max_bytes, max_age_ms: settings.outbox.max_age.as_millis() as u64 };
    let outbox = Arc::new(Outbox::open(store, limits).context("opening the outbox")?);
    let wake = Arc::new(Notify::new());
    let reports = Reports::new(outbox, wake.clone()).with_clock(clock);

    let overrides_file = OverridesFile::in_dir(&settings.data_dir);
    let drift =
        Drift::new(DriftHub::new(Policy::from(settings.sampling), overrides_file.load(), boot_id)).with_clock(clock);
    let stats = InferenceStats::new();
    let (inference, worker) =
        InferenceWorker::spawn_with_drift(WorkerConfig::default(), stats.clone(), Some(drift.clone()))?;
    let runtime = AgentRuntime { inference: inference.clone(), stats: stats.clone(), layer: model_layer };

    let (inbound_tx, mut inbound_rx) = mpsc::channel::<Inbound>(64);
    let (chunk_req_tx, chunk_req_rx) = mpsc::channel(16);
    let (chunk_resp_tx, chunk_resp_rx) = mpsc::channel(16);
    let (state_tx, state_rx) = watch::channel(LinkState::Disconnected);

    let deployer_config = DeployerConfig {
        data_dir: settings.data_dir.clone(),
        trust_store: settings.trust_store.clone(),
        hardware: settings.hardware.class,
        disk: disk.clone(),
        clock,
    };
    let mut deployer =
        Deployer::new(deployer_config, Fetcher::new(chunk_req_tx, chunk_resp_rx), runtime, reports.clone())
            .context("opening installed models")?;
    let generations = deployer.generations().clone();
    for served in deployer.serve_active().await {
        info!(model = %served.name, version = served.version_seq, "serving installed model");
    }

    // Local API.
    // Serial sensor input: started before the API and the link, which show its status.
    let serial = match (&source, &settings.input) {
        (None, InputSetting::Serial(serial)) => Some(crate::sensor::start(
            crate::sensor::TokioSerial,
            serial,
            boot_id,
            settings.health_interval,
            clock,
            shutdown.clone(),
        )),
        _ => None,
    };

    let api = match settings.api_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("binding the local API on {address}"))?;
            let api_addr = listener.local_addr()?;
            write_atomic(&settings.data_dir.join("api.addr"), api_addr.to_string().as_bytes())?;
            info!(%api_addr, device = %settings.device_id, "local API listening");
            let status_reports = reports.clone();
            let status_state = state_rx.clone();
            let status_device = settings.device_id.clone();
            let status_drift = drift.clone();
            let status_sensor = serial.as_ref().map(|input| input.live());
            let api_state = ApiState::new(inference.clone(), stats.clone()).with_drift(drift.clone()).with_agent_status(
                move || {
                    let outbox = status_reports.outbox().stats();
                    serde_json::json!({
                        "device_id": status_device.as_str(),
                        "agent_version": AGENT_VERSION.to_string(),
                        "boot_id": boot_id,
                        "mqtt": if *status_state.borrow() == LinkState::Connected { "connected" } else { "disconnected" },
                        "outbox": { "depth": outbox.depth, "bytes": outbox.bytes },
                        "drift": status_drift.status(),
                        "sensor": status_sensor.as_ref().and_then(|live| serde_json::to_value(live(boot_id, clock.now_ms())).ok()),
                    })
                },
            );
            let api_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let serve =
                    axum::serve(listener, router(api_state)).with_graceful_shutdown(api_shutdown.cancelled_owned());
                if let Err(e) = serve.await {
                    warn!(error = %e, "local API stopped");
                }
            })
        }
        None => {
            info!(device = %settings.device_id, "local API off");
            tokio::spawn(async {})
        }
    };

    // MQTT link.
    let birth_settings = settings.clone();
    let birth_disk = disk.clone();
    let birth_generations = generations.clone();
    let birth_counter = settings.data_dir.join("birth.seq");
    let rebirth = Arc::new(Notify::new());
    let parts = LinkParts {
        uplink: Arc::new(reports.clone()),
        wake,
        rebirth: rebirth.clone(),
        birth: Box::new(move || Birth {
            device_id: birth_settings.device_id.clone(),
            boot_id,
            agent_version: AGENT_VERSION,
            hardware: hardware_info(&birth_settings),
            free_disk_bytes: birth_disk.available(&birth_settings.data_dir).unwrap_or(0),
            free_memory_bytes: available_memory_bytes(),
            active_models: active_models(&birth_generations),
            seq: bump_counter(&birth_counter),
        }),
        inbound_tx,
        chunk_rx: chunk_req_rx,
        state_tx,
        sensor_rx: serial.as_ref().map(|input| input.status_rx.clone()),
    };
    let link = tokio::spawn(link::run(settings.clone(), boot_id, parts, shutdown.clone()));

    // Deployer: resumes an interrupted deployment first, then takes jobs one at a time.
    let (job_tx, mut job_rx) = mpsc::channel::<Job>(4);
    let current_cancel = Arc::new(Mutex::new(CancellationToken::new()));
    let deploy_cancel = current_cancel.clone();
    let deploy_shutdown = shutdown.clone();
    let deploy_reports = reports.clone();
    let deployments = tokio::spawn(async move {
        let token = deploy_shutdown.child_token();
        if let Ok(mut slot) = deploy_cancel.lock() {
            *slot = token.clone();
        }
        if let Some(outcome) = deployer.resume(&token).await {
            info!(?outcome, "interrupted deployment finished");
        }
        loop {
            let job = tokio::select! {
                () = deploy_shutdown.cancelled() => break,
                job = job_rx.recv() => match job { Some(job) => job, None => break },
            };
            let token = deploy_shutdown.child_token();
            if let Ok(mut slot) = deploy_cancel.lock() {
                *slot = token.clone();
            }
            match job {
                Job::Deploy(command_id, deploy) => {
                    let outcome = deployer.deploy(command_id, deploy, &token).await;
                    if !matches!(outcome, Outcome::Committed) {
                        info!(?outcome, "deployment ended");
                    }
                }
                Job::Rollback(command_id, rollback) => {
                    let result = match deployer.rollback(&rollback).await {
                        Ok(version) => {
                            info!(model = %rollback.model, version, "rolled back on command");
                            AckResult::Accepted
                        }
                        Err(reason) => AckResult::Rejected(reason.to_string()),
                    };
                    if let AckResult::Rejected(_) = result {
                        deploy_reports.ack(command_id, result);
                    }
                }
            }
        }
    });

    // Command dispatcher.
    let dispatch_reports = reports.clone();
    let dispatch_shutdown = shutdown.clone();
    let mut command_log = CommandLog::open(&settings.data_dir);
    let policy_drift = drift.clone();
    let dispatcher = tokio::spawn(async move {
        loop {
            let inbound = tokio::select! {
                () = dispatch_shutdown.cancelled() => break,
                inbound = inbound_rx.recv() => match inbound { Some(i) => i, None => break },
            };
            let command = match inbound {
                Inbound::Chunk(chunk) => {
                    let _ = chunk_resp_tx.try_send(chunk);
                    continue;
                }
                Inbound::Command(command) => command,
            };
            if command_log.seen(command.command_id) {
                dispatch_reports.ack(command.command_id, AckResult::Duplicate);
                continue;
            }
            let result = match command.body {
                CommandBody::Deploy(deploy) => match job_tx.try_send(Job::Deploy(command.command_id, deploy)) {
                    Ok(()) => AckResult::Accepted,
                    Err(_) => AckResult::Rejected("busy: a deployment is in progress and the queue is full".into()),
                },
                CommandBody::Rollback(rollback) => match job_tx.try_send(Job::Rollback(command.command_id, rollback)) {
                    Ok(()) => AckResult::Accepted,
                    Err(_) => AckResult::Rejected("busy: deployment queue full".into()),
                },
                CommandBody::Cancel { .. } => {
                    if let Ok(token) = current_cancel.lock() {
                        token.cancel();
                    }
                    AckResult::Accepted
                }
                CommandBody::SetSamplingPolicy(policy) => set_sampling_policy(&policy_drift, &overrides_file, &policy),
                CommandBody::Ping { .. } => AckResult::Accepted,
                CommandBody::Rebirth => {
                    rebirth.notify_one();
                    AckResult::Accepted
                }
            };
            if let Err(e) = command_log.record(command.command_id) {
                warn!(error = %e, "cannot persist the command log");
            }
            dispatch_reports.ack(command.command_id, result);
        }
    });

    // Heartbeats.
    let health_reports = reports.clone();
    let health_shutdown = shutdown.clone();
    let interval = settings.health_interval;
    let data_dir = settings.data_dir.clone();
    let health_disk = disk.clone();
    let health_stats = stats.clone();
    let heartbeat = tokio::spawn(async move {
        let mut cpu = CpuMeter::new();
        let mut previous = None;
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = health_shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let snapshot = health_stats.snapshot();
            let models = snapshot.to_health(previous.as_ref());
            previous = Some(snapshot);
            let outbox = health_reports.outbox().stats();
            let evictions: u64 = outbox.evictions.iter().map(|(_, n)| *n).sum();
            let cpu_percent = cpu.sample();
            health_reports.health(|seq| Health {
                seq,
                boot_id,
                timestamp_ms: clock.now_ms(),
                uptime_ms: started.elapsed().as_millis() as u64,
                models,
                outbox_depth: outbox.depth,
                outbox_bytes: outbox.bytes,
                outbox_evictions: evictions,
                rss_bytes: rss_bytes(),
                cpu_percent,
                free_disk_bytes: health_disk.available(&data_dir).unwrap_or(0),
            });
        }
    });

    // Drift summaries and samples.
    let drift_task = tokio::spawn(crate::drift::run(drift.clone(), reports.clone(), shutdown.clone()));

    // Optional input source (besides the API).
    let inputs = match (source, settings.input) {
        (Some((source, rate_hz)), _) => tokio::spawn(feed_inputs(
            source,
            rate_hz,
            inference.clone(),
            generations.clone(),
            drift.clone(),
            shutdown.clone(),
        )),
        (None, InputSetting::Synthetic { rate_hz, seed }) => tokio::spawn(feed_inputs(
            Box::new(SyntheticSource::new(seed)) as Box<dyn InputSource>,
            rate_hz,
            inference.clone(),
            generations.clone(),
            drift.clone(),
            shutdown.clone(),
        )),
        (None, InputSetting::None) => tokio::spawn(async {}),
        (None, InputSetting::Serial(_)) => match serial {
            Some(input) => tokio::spawn(feed_pushed(input, inference.clone(), generations.clone(), shutdown.clone())),
            None => tokio::spawn(async {}),
        },
    };

    shutdown.cancelled().await;
    info!("shutting down");
    // The drift task queues the last window on its way out; the outbox keeps it for the next run.
    let _ = tokio::join!(link, api, deployments, dispatcher, heartbeat, inputs, drift_task);
    drop(inference);
    tokio::task::spawn_blocking(move || worker.join()).await.ok();
    info!("stopped");
    Ok(())
}
