//! The deployment orchestrator: thin I/O around the persisted steps.

use super::crash_point;
use super::download::{FetchError, Fetcher};
use super::fsutil::DiskSpace;
use super::generations::{Generation, Generations};
use super::state::{DeployDir, Pending, Step};
use crate::AGENT_VERSION;
use edgefleet_protocol::command::{CommandId, DeployCommand, DeploymentId, RollbackCommand};
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::package::{
    BlobVerifier, Manifest, PackageError, PackageHead, TrustStore, Variant, check_newer,
};
use edgefleet_protocol::uplink::{DeploymentState, FailureReason};
use edgefleet_protocol::{Digest, ModelName};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Free space kept beyond what a download needs.
const DISK_HEADROOM: u64 = 4 * 1024 * 1024;

/// What a model being served is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedModel {
    /// Name.
    pub name: ModelName,
    /// Version.
    pub version_seq: u64,
    /// Label.
    pub label: String,
    /// Package id.
    pub package_id: Digest,
}

/// Inference counters of one version since it was activated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbationStats {
    /// Inferences run.
    pub inferences: u64,
    /// Inferences that failed.
    pub errors: u64,
    /// p99 latency in microseconds.
    pub p99_us: u64,
}

/// The inference side, as the deployer needs it.
pub trait Runtime: Send + Sync + 'static {
    /// Loads `model_file` and runs the manifest's golden vectors with `variant`'s tolerance.
    fn validate(
        &self,
        model_file: &Path,
        manifest: &Manifest,
        variant: &Variant,
    ) -> impl Future<Output = Result<(), FailureReason>> + Send;
    /// Serves `model_file` from now on (atomically replacing what was served).
    fn serve(&self, model_file: &Path, info: ServedModel) -> impl Future<Output = Result<(), FailureReason>> + Send;
    /// Counters of `model` at `version_seq` since it started being served.
    fn probation_stats(&self, model: &ModelName, version_seq: u64) -> ProbationStats;
}

/// Where deployment status transitions go (the outbox, in the agent).
pub trait StatusSink: Send + Sync + 'static {
    /// Records a transition.
    fn report(&self, deployment_id: DeploymentId, model: &ModelName, version_seq: u64, state: DeploymentState);
}

/// Static inputs of the deployer.
#[derive(Debug, Clone)]
pub struct DeployerConfig {
    /// Agent data directory.
    pub data_dir: PathBuf,
    /// Trust store (re-read at each deployment, so key rotation needs no restart).
    pub trust_store: PathBuf,
    /// This device's hardware class.
    pub hardware: HardwareClass,
    /// Where free space is checked before a download.
    pub disk: std::sync::Arc<dyn DiskSpace>,
    /// The device clock (signed downgrade authorizations have validity windows).
    pub clock: crate::clock::Clock,
}

/// Runs deployments one at a time.
pub struct Deployer<R: Runtime, S: StatusSink> {
    config: DeployerConfig,
    generations: Generations,
    dir: DeployDir,
    fetcher: Fetcher,
    runtime: R,
    sink: S,
}

fn io_reason(e: std::io::Error) -> FailureReason {
    FailureReason::Io(e.to_string())
}

fn fetch_reason(e: FetchError) -> FailureReason {
    match e {
        FetchError::Invalid(e) => FailureReason::Package(e),
        FetchError::Io { source, path } => FailureReason::Io(format!("{path}: {source}")),
        other => FailureReason::Download(other.to_string()),
    }
}

/// How a deployment ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Committed after probation.
    Committed,
    /// Refused or failed before activation; the previous version serves.
    Failed(FailureReason),
    /// Activated, then rolled back.
    RolledBack(FailureReason),
    /// Cancelled before activation.
    Cancelled,
}

impl<R: Runtime, S: StatusSink> Deployer<R, S> {
    /// Opens the data directory.
    pub fn new(config: DeployerConfig, fetcher: Fetcher, runtime: R, sink: S) -> std::io::Result<Self> {
        let generations = Generations::open(&config.data_dir)?;
        let dir = DeployDir::open(&config.data_dir)?;
        Ok(Self { config, generations, dir, fetcher, runtime, sink })
    }

    /// The installed generations.
    pub fn generations(&self) -> &Generations {
        &self.generations
    }

    /// At start-up: serves every model's active generation. Returns what is served.
    pub async fn serve_active(&self) -> Vec<ServedModel> {
        let mut served = Vec::new();
        for model in self.generations.models().unwrap_or_default() {
            let Ok(active) = self.generations.active(&model) else { continue };
            let Some(current) = active.current else { continue };
            let info = served_model(&current);
            match self.runtime.serve(&self.generations.model_file(&current), info.clone()).await {
                Ok(()) => served.push(info),
                Err(e) => warn!(model = %model, error = %e, "cannot serve the active generation"),
            }
        }
        served
    }

    fn report(&self, deploy: &DeployCommand, state: DeploymentState) {
        self.sink.report(deploy.deployment_id, &deploy.model, deploy.version_seq, state);
    }

    fn installed_seq(&self, model: &ModelName) -> Option<u64> {
        self.generations.active(model).ok().and_then(|a| a.current).map(|g| g.version_seq)
    }

    /// Continues a deployment interrupted by a restart, if there is one.
    pub async fn resume(&mut self, cancel: &CancellationToken) -> Option<Outcome> {
        let pending = self.dir.load().ok().flatten()?;
        info!(deployment = pending.deploy.deployment_id.0, step = ?pending.step, "resuming deployment after restart");
        if let Step::Probation { dir, .. } = &pending.step {
            // The agent died while the new version was on probation (or switching to it): count
            // it against the version. Roll back only if the switch had happened.
            let reason = FailureReason::Crashed(format!("probation of {dir}"));
            let switched = self
                .generations
                .active(&pending.deploy.model)
                .ok()
                .and_then(|a| a.current)
                .is_some_and(|g| &g.dir == dir);
            if !switched {
                let _ = std::fs::remove_dir_all(self.generations.model_dir_path(&pending.deploy.model).join(dir));
                return Some(self.fail(&pending.deploy, reason));
            }
            return Some(self.roll_back(&pending.deploy, reason).await);
        }
        Some(self.run(pending, cancel).await)
    }

    /// Runs a new deployment.
    pub async fn deploy(
        &mut self,
        command_id: CommandId,
        deploy: DeployCommand,
        cancel: &CancellationToken,
    ) -> Outcome {
        let active = self.generations.active(&deploy.model).ok().and_then(|a| a.current);
        if active.as_ref().is_some_and(|g| g.package_id == deploy.package_id) {
            // A redelivered command for what is already installed (e.g. after a crash): done.
            self.report(&deploy, DeploymentState::Committed);
            return Outcome::Committed;
        }
        self.report(&deploy, DeploymentState::Accepted);
        if let Err(reason) = self.check_version(&deploy, deploy.version_seq) {
            return self.fail(&deploy, reason);
        }
        let _ = self.dir.clear();
        let pending = Pending { command_id, deploy, step: Step::FetchHead };
        if let Err(e) = self.dir.save(&pending) {
            return self.fail(&pending.deploy, io_reason(e));
        }
        self.run(pending, cancel).await
    }

    /// Anti-rollback: `offered` must be above the installed version, unless the command
    /// carries a downgrade authorization for exactly this package, signed by a trusted key.
    fn check_version(&self, deploy: &DeployCommand, offered: u64) -> Result<(), FailureReason> {
        let Err(refusal) = check_newer(self.installed_seq(&deploy.model), offered) else { return Ok(()) };
        let Some(authorization) = &deploy.downgrade else { return Err(FailureReason::Package(refusal)) };
        let trust = TrustStore::load(&self.config.trust_store).map_err(|e| FailureReason::Io(e.to_string()))?;
        authorization
            .authorizes(&trust, &deploy.model, offered, &deploy.package_id, self.config.clock.now_ms())
            .map_err(FailureReason::Package)?;
        info!(model = %deploy.model, version = offered, key = %authorization.key_id, "downgrade authorized");
        Ok(())
    }

    fn fail(&self, deploy: &DeployCommand, reason: FailureReason) -> Outcome {
        warn!(deployment = deploy.deployment_id.0, model = %deploy.model, reason = %reason, "deployment failed");
        self.report(deploy, DeploymentState::Failed(reason.clone()));
        let _ = self.dir.clear();
        Outcome::Failed(reason)
    }

    fn check_disk(&self, needed: u64) -> Result<(), FailureReason> {
        let free = self.config.disk.available(&self.config.data_dir).map_err(io_reason)?;
        if free < needed + DISK_HEADROOM {
            return Err(FailureReason::InsufficientDisk { needed: needed + DISK_HEADROOM, free });
        }
        Ok(())
    }

    /// Reads and verifies the downloaded head.
    fn verified_head(&self, deploy: &DeployCommand) -> Result<(Vec<u8>, Manifest), FailureReason> {
        let bytes = std::fs::read(self.dir.partial("head")).map_err(io_reason)?;
        if Digest::sha256(&bytes) != deploy.package_id {
            return Err(FailureReason::Download(format!("package head does not hash to {}", deploy.package_id)));
        }
        let head = PackageHead::from_bytes(&bytes).map_err(FailureReason::Package)?;
        let trust = TrustStore::load(&self.config.trust_store).map_err(|e| FailureReason::Io(e.to_string()))?;
        let manifest = head.verify(&trust).map_err(FailureReason::Package)?;
        if manifest.name != deploy.model || manifest.version_seq != deploy.version_seq {
            return Err(FailureReason::Package(PackageError::InvalidManifest(format!(
                "package is {} seq {}, command names {} seq {}",
                manifest.name, manifest.version_seq, deploy.model, deploy.version_seq
            ))));
        }
        self.check_version(deploy, manifest.version_seq)?;
        if manifest.min_agent_version > AGENT_VERSION {
            return Err(FailureReason::Package(PackageError::AgentTooOld {
                required: manifest.min_agent_version,
                running: AGENT_VERSION,
            }));
        }
        Ok((bytes, manifest))
    }

    async fn run(&mut self, mut pending: Pending, cancel: &CancellationToken) -> Outcome {
        let deploy = pending.deploy.clone();
        loop {
            if cancel.is_cancelled() && !matches!(pending.step, Step::Probation { .. }) {
                self.report(&deploy, DeploymentState::Cancelled);
                let _ = self.dir.clear();
                return Outcome::Cancelled;
            }
            let next = match self.step(&mut pending, cancel).await {
                Ok(Some(next)) => next,
                Ok(None) => return Outcome::Committed,
                Err(Outcome::RolledBack(reason)) => return Outcome::RolledBack(reason),
                Err(Outcome::Failed(reason)) => return self.fail(&deploy, reason),
                Err(other) => return other,
            };
            pending.step = next;
            if let Err(e) = self.dir.save(&pending) {
                return self.fail(&deploy, io_reason(e));
            }
            crash_point(match pending.step {
                Step::FetchHead => "",
                Step::FetchBlob { .. } => "fetched-head",
                Step::Install => "fetched-blob",
                Step::Validate { .. } => "installed",
                Step::Probation { .. } => "activated",
            });
        }
    }

    /// Performs one step; returns the next one (already durable when it matters).
    async fn step(&mut self, pending: &mut Pending, cancel: &CancellationToken) -> Result<Option<Step>, Outcome> {
        let deploy = pending.deploy.clone();
        let failed = Outcome::Failed;
        match pending.step.clone() {
            Step::FetchHead => {
                self.check_disk(deploy.head_size).map_err(failed)?;
                let partial = self.dir.partial("head");
                self.fetcher
                    .fetch(deploy.package_id, deploy.head_size, &partial, None, |_, _| {})
                    .await
                    .map_err(|e| failed(fetch_reason(e)))?;
                let (_, manifest) = self.verified_head(&deploy).map_err(failed)?;
                let (index, variant) =
                    manifest.select_variant(self.config.hardware).map_err(|e| failed(FailureReason::Package(e)))?;
                self.report(&deploy, DeploymentState::Downloading { received: 0, total: variant.size });
                Ok(Some(Step::FetchBlob { index }))
            }
            Step::FetchBlob { index } => {
                let (_, manifest) = self.verified_head(&deploy).map_err(failed)?;
                let variant = manifest.variants.get(index).cloned().ok_or_else(|| {
                    failed(FailureReason::Package(PackageError::InvalidManifest(format!("no variant {index}"))))
                })?;
                self.check_disk(variant.size).map_err(failed)?;
                let partial = self.dir.partial("blob");
                let mut verifier = BlobVerifier::new(&variant);
                let mut last_report = 0u64;
                let sink = &self.sink;
                let fetch = self.fetcher.fetch(
                    variant.digest,
                    variant.size,
                    &partial,
                    Some(&mut verifier),
                    |received, total| {
                        // A progress report per MiB is plenty.
                        if received < total {
                            crash_point("mid-blob");
                        }
                        if received - last_report >= 1 << 20 || received == total {
                            last_report = received;
                            sink.report(
                                deploy.deployment_id,
                                &deploy.model,
                                deploy.version_seq,
                                DeploymentState::Downloading { received, total },
                            );
                        }
                    },
                );
                tokio::select! {
                    result = fetch => result.map_err(|e| failed(fetch_reason(e)))?,
                    () = cancel.cancelled() => return Ok(Some(Step::FetchBlob { index })),
                }
                if let Err(e) = verifier.finish() {
                    // Start over next time rather than trusting these bytes again.
                    let _ = std::fs::remove_file(&partial);
                    return Err(failed(FailureReason::Package(e)));
                }
                self.report(&deploy, DeploymentState::Verified);
                Ok(Some(Step::Install))
            }
            Step::Install => {
                let (head, manifest) = self.verified_head(&deploy).map_err(failed)?;
                let generation = self
                    .generations
                    .install(
                        &deploy.model,
                        deploy.version_seq,
                        &manifest.label,
                        deploy.package_id,
                        &head,
                        &self.dir.partial("blob"),
                    )
                    .map_err(|e| failed(io_reason(e)))?;
                self.report(&deploy, DeploymentState::Installed);
                Ok(Some(Step::Validate { dir: generation.dir }))
            }
            Step::Validate { dir } => {
                let (_, manifest) = self.verified_head(&deploy).map_err(failed)?;
                let (_, variant) =
                    manifest.select_variant(self.config.hardware).map_err(|e| failed(FailureReason::Package(e)))?;
                let generation = Generation {
                    model: deploy.model.clone(),
                    version_seq: deploy.version_seq,
                    label: manifest.label.clone(),
                    package_id: deploy.package_id,
                    dir: dir.clone(),
                };
                let model_file = self.generations.model_file(&generation);
                if let Err(reason) = self.runtime.validate(&model_file, &manifest, variant).await {
                    let _ = std::fs::remove_dir_all(self.generations.path(&generation));
                    return Err(failed(reason));
                }
                // Persist "on probation" before the switch: a crash right after it rolls back.
                let since_ms = self.config.clock.now_ms();
                pending.step = Step::Probation { dir: dir.clone(), since_ms };
                self.dir.save(pending).map_err(|e| failed(io_reason(e)))?;
                crash_point("before-switch");
                self.generations.activate(&generation).map_err(|e| failed(io_reason(e)))?;
                crash_point("after-switch");
                if let Err(reason) = self.runtime.serve(&model_file, served_model(&generation)).await {
                    return Err(Outcome::RolledBack(self.roll_back_reason(&deploy, reason).await));
                }
                info!(model = %deploy.model, version = deploy.version_seq, "activated; on probation");
                self.report(&deploy, DeploymentState::Activated);
                Ok(Some(Step::Probation { dir, since_ms }))
            }
            Step::Probation { dir, since_ms } => {
                let budget = deploy.probation;
                let end = since_ms + budget.duration_ms;
                crash_point("probation");
                loop {
                    let stats = self.runtime.probation_stats(&deploy.model, deploy.version_seq);
                    if stats.inferences >= u64::from(budget.min_inferences) && stats.inferences > 0 {
                        let rate_ppm = stats.errors.saturating_mul(1_000_000) / stats.inferences;
                        if rate_ppm > u64::from(budget.max_error_rate_ppm) {
                            let reason =
                                FailureReason::ProbationErrors { errors: stats.errors, total: stats.inferences };
                            return Err(Outcome::RolledBack(self.roll_back_reason(&deploy, reason).await));
                        }
                        if budget.max_p99_latency_us > 0 && stats.p99_us > budget.max_p99_latency_us {
                            let reason = FailureReason::ProbationLatency {
                                p99_us: stats.p99_us,
                                budget_us: budget.max_p99_latency_us,
                            };
                            return Err(Outcome::RolledBack(self.roll_back_reason(&deploy, reason).await));
                        }
                    }
                    let now = self.config.clock.now_ms();
                    if now >= end {
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis((end - now).min(250))) => {}
                        () = cancel.cancelled() => return Ok(Some(Step::Probation { dir, since_ms })),
                    }
                }
                self.report(&deploy, DeploymentState::Committed);
                let _ = self.generations.prune(&deploy.model);
                let _ = self.dir.clear();
                info!(model = %deploy.model, version = deploy.version_seq, "committed");
                Ok(None)
            }
        }
    }

    async fn roll_back_reason(&self, deploy: &DeployCommand, reason: FailureReason) -> FailureReason {
        match self.roll_back(deploy, reason.clone()).await {
            Outcome::RolledBack(r) | Outcome::Failed(r) => r,
            _ => reason,
        }
    }

    /// Switches `deploy.model` back to its last-known-good generation and reports why.
    async fn roll_back(&self, deploy: &DeployCommand, reason: FailureReason) -> Outcome {
        let _ = self.dir.clear();
        match self.generations.rollback(&deploy.model, None) {
            Ok(Some(active)) => {
                if let Some(current) = active.current {
                    if let Err(e) =
                        self.runtime.serve(&self.generations.model_file(&current), served_model(&current)).await
                    {
                        warn!(error = %e, "cannot serve the last-known-good generation");
                    }
                    warn!(model = %deploy.model, to = current.version_seq, reason = %reason, "rolled back");
                    self.report(
                        deploy,
                        DeploymentState::RolledBack { to_version_seq: current.version_seq, reason: reason.clone() },
                    );
                    let _ = self.generations.prune(&deploy.model);
                    return Outcome::RolledBack(reason);
                }
                self.fail(deploy, reason)
            }
            // Nothing to go back to (first install): keep serving the verified new version.
            Ok(None) => self.fail(deploy, reason),
            Err(e) => self.fail(deploy, io_reason(e)),
        }
    }

    /// Executes an operator's rollback command.
    pub async fn rollback(&self, command: &RollbackCommand) -> Result<u64, FailureReason> {
        let active =
            self.generations.rollback(&command.model, command.to_version_seq).map_err(io_reason)?.ok_or_else(|| {
                FailureReason::Operator(format!("no installed version of {} to roll back to", command.model))
            })?;
        let current = active.current.ok_or_else(|| FailureReason::Operator("nothing to serve".into()))?;
        self.runtime.serve(&self.generations.model_file(&current), served_model(&current)).await?;
        self.sink.report(
            command.deployment_id,
            &command.model,
            current.version_seq,
            DeploymentState::RolledBack {
                to_version_seq: current.version_seq,
                reason: FailureReason::Operator(command.reason.clone()),
            },
        );
        Ok(current.version_seq)
    }
}

fn served_model(generation: &Generation) -> ServedModel {
    ServedModel {
        name: generation.model.clone(),
        version_seq: generation.version_seq,
        label: generation.label.clone(),
        package_id: generation.package_id,
    }
}
