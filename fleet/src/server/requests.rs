//! Operator requests: what operators can ask ([`ApiRequest`]), how the core answers each one
//! (`Core::api`, a typed [`ApiResponse`] or an [`ApiError`]), and the request handlers. Runs
//! inside the core's batch like every other input; the HTTP layer ([`super::http`]) maps errors
//! to status codes.

use super::core::Core;
use super::driver::{DriverError, Effects, FleetView};
use super::models::{ModelRecord, model_key};
use super::registry::DeviceRecord;
use super::rollouts::{RequestError, RolloutRecord, RolloutRequest, resolve_targets};
use super::selector::{Selector, valid_label_key};
use super::views;
use crate::api::ApiResponse;
use crate::api::devices::{DeviceDetail, LabelResponse, SamplingResponse};
use crate::api::health::{HealthState, HealthView};
use crate::api::models::{ModelDetail, ModelVersion, PushResponse};
use crate::api::rollouts::CreateRolloutResponse;
use crate::api::status::StatusResponse;
use crate::drift::views as drift_views;
use crate::rollout::{Rollout, RolloutId, RolloutStatus};
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::command::{Command, CommandBody, SamplingPolicyError};
use edgefleet_protocol::hardware::HardwareClass;
use serde_json::json;
use std::collections::BTreeMap;

/// Why an operator request was refused. Each message says what happened and what to do; the
/// HTTP status of each kind is chosen in [`super::http`] only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// No device with this id.
    #[error("unknown device {id:?}; `edgefleet devices list` shows the known ones")]
    UnknownDevice {
        /// The id asked for.
        id: String,
    },
    /// No model with this name.
    #[error("unknown model {name:?}; `edgefleet model list` shows the known ones")]
    UnknownModel {
        /// The name asked for.
        name: String,
    },
    /// No rollout with this id.
    #[error("no rollout {id}")]
    UnknownRollout {
        /// The id asked for.
        id: u32,
    },
    /// No such operation on a rollout.
    #[error("unknown rollout operation {op:?} (pause, resume, abort, rollback)")]
    UnknownOperation {
        /// The operation asked for.
        op: String,
    },
    /// The request is malformed or its values are out of range.
    #[error("{message}")]
    Invalid {
        /// What is wrong, and what would be right.
        message: String,
    },
    /// A model version exists with another package: versions are immutable.
    #[error(
        "{name} version {version_seq} already exists with a different package ({package_id}); versions are immutable, bump version_seq"
    )]
    VersionExists {
        /// Model name.
        name: String,
        /// Version.
        version_seq: u64,
        /// The package registered under it.
        package_id: String,
    },
    /// Another rollout of the model is still running.
    #[error("rollout {id} of {model} is still active; wait for it, or `edgefleet rollout abort {id}`")]
    RolloutActive {
        /// The running rollout.
        id: u32,
        /// Its model.
        model: String,
    },
    /// The package is signed by a key the trust store revokes.
    #[error(
        "{model} is signed by key {key_id}, which the trust store revokes: devices would refuse it; sign a new version with a trusted key"
    )]
    KeyRevoked {
        /// `name@version`.
        model: String,
        /// The signing key id (hex).
        key_id: String,
    },
    /// The rollout's status does not allow the operation.
    #[error("rollout {id} is {}: cannot {} it", .status.words(), .op.word())]
    CannotOperate {
        /// Rollout id.
        id: u32,
        /// Its status.
        status: RolloutStatus,
        /// The operation refused.
        op: RolloutOp,
    },
    /// Promote found no track held at a gate.
    #[error(
        "rollout {id}: no running track is held at a gate{}; promote only overrides a holding gate, never a failed one",
        .track.map(|t| format!(" on {t}")).unwrap_or_default()
    )]
    NothingHeld {
        /// Rollout id.
        id: u32,
        /// The track asked for, if one.
        track: Option<HardwareClass>,
    },
    /// Storage failed to read.
    #[error("{message}")]
    Storage {
        /// The storage error.
        message: String,
    },
    /// The batch holding the request failed to commit; the core stopped.
    #[error("the fleet manager failed to store the change; see its log")]
    NotStored,
    /// The core is gone.
    #[error("the fleet manager is shutting down")]
    ShuttingDown,
}

impl ApiError {
    /// [`ApiError::Invalid`] with `message`.
    pub fn invalid(message: impl ToString) -> Self {
        ApiError::Invalid { message: message.to_string() }
    }
}

/// An operator request's answer.
pub type ApiResult = Result<ApiResponse, ApiError>;

pub use super::driver::RolloutOp;

/// What operators can ask.
#[derive(Debug)]
pub enum ApiRequest {
    /// Server summary.
    Status,
    /// Devices matching a selector.
    ListDevices {
        /// Selector text.
        selector: String,
    },
    /// One device in full.
    ShowDevice {
        /// Device id.
        id: String,
    },
    /// Set or remove labels.
    Label {
        /// Device id.
        id: String,
        /// Labels to set.
        set: BTreeMap<String, String>,
        /// Labels to remove.
        remove: Vec<String>,
        /// Operator.
        actor: String,
    },
    /// Register a package already verified and stored.
    RegisterModel {
        /// Its record.
        record: ModelRecord,
    },
    /// Every model version.
    ListModels,
    /// One model's versions and who runs them.
    ShowModel {
        /// Model name.
        name: String,
    },
    /// Create (or dry-run) a rollout.
    CreateRollout {
        /// The plan.
        request: RolloutRequest,
        /// Resolve and estimate only.
        dry_run: bool,
        /// Operator.
        actor: String,
        /// Signing key ids (hex) the trust store revokes now: a package signed by one is not
        /// rolled out (devices would refuse it).
        revoked: Vec<String>,
    },
    /// Every rollout, briefly.
    ListRollouts,
    /// One rollout in full.
    ShowRollout {
        /// Id.
        id: u32,
    },
    /// Pause, resume, abort, roll back.
    OperateRollout {
        /// Id.
        id: u32,
        /// What.
        op: RolloutOp,
        /// Operator.
        actor: String,
        /// Why.
        reason: String,
        /// For `Promote`: only this track.
        track: Option<edgefleet_protocol::hardware::HardwareClass>,
    },
    /// Health per device.
    Health {
        /// Only this device.
        device: Option<String>,
        /// Only devices serving this model.
        model: Option<String>,
        /// Revoked signing key ids (hex), from the trust store: a device serving a version
        /// signed by one is failing.
        revoked: Vec<String>,
    },
    /// Drift per device and cohort for a model.
    DriftReport {
        /// Model name.
        model: String,
        /// Only this device.
        device: Option<String>,
    },
    /// Send a sampling policy to the devices a selector picks.
    SetSampling {
        /// Selector (`hw=gpu,site=plant-3`; empty: every device).
        selector: String,
        /// The policy.
        policy: edgefleet_protocol::command::SamplingPolicy,
        /// Operator.
        actor: String,
    },
    /// A rollout's A/B scorecard.
    Scorecard {
        /// Rollout id.
        id: u32,
    },
    /// An entry for the audit chain from a part of the fleet manager outside the core (training
    /// pipelines, datasets): the core owns the chain, so every entry passes through it.
    Record {
        /// Who.
        actor: String,
        /// What, e.g. `pipeline.register`, `dataset.create`.
        action: String,
        /// On what, e.g. `pipeline/vibration-retrain`.
        subject: String,
        /// The evidence.
        detail: serde_json::Value,
    },
}

/// Asks the core (through its input queue) and waits for the answer, given after the commit.
pub async fn ask_core(inputs: &tokio::sync::mpsc::Sender<super::core::Input>, request: ApiRequest) -> ApiResult {
    let (reply, answer) = tokio::sync::oneshot::channel();
    if inputs.send(super::core::Input::Api { request, reply }).await.is_err() {
        return Err(ApiError::ShuttingDown);
    }
    answer.await.unwrap_or(Err(ApiError::NotStored))
}

impl Core {
    /// Answers an operator request (inside the core's batch: changes commit with it).
    pub(super) fn api(&mut self, request: ApiRequest) -> ApiResult {
        match request {
            ApiRequest::Status => Ok(ApiResponse::Status(Box::new(StatusResponse {
                info: self.cfg.info.clone(),
                devices: self.devices.len(),
                online: self.devices.values().filter(|d| d.online).count(),
                // Heard from, but their birth (hardware class) has not arrived (asked again).
                without_birth: self.devices.values().filter(|d| d.hardware.is_none()).count(),
                models: self.models.len(),
                rollouts: self.driver.records().count(),
                active_rollouts: self.driver.records().filter(|r| r.finished_at_ms.is_none()).map(|r| r.id).collect(),
                audit_entries: self.audit_tail.as_ref().map_or(0, |e| e.seq + 1),
                counters: self.counters,
            }))),
            ApiRequest::ListDevices { selector } => {
                let selector: Selector = selector.parse().map_err(ApiError::invalid)?;
                let list = self.devices.values().filter(|d| selector.matches(d)).map(views::device_summary).collect();
                Ok(ApiResponse::Devices(list))
            }
            ApiRequest::ShowDevice { id } => {
                let device = self.device(&id)?;
                Ok(ApiResponse::Device(Box::new(DeviceDetail(device.clone()))))
            }
            ApiRequest::Label { id, set, remove, actor } => self.label(&id, set, remove, &actor),
            ApiRequest::RegisterModel { record } => self.register_model(record),
            ApiRequest::ListModels => Ok(ApiResponse::Models(
                self.models.values().map(|m| views::model_summary(m, self.devices.values())).collect(),
            )),
            ApiRequest::ShowModel { name } => {
                let versions: Vec<ModelVersion> = self
                    .models
                    .values()
                    .filter(|m| m.name == name)
                    .map(|m| views::model_detail(m, self.devices.values()))
                    .collect();
                if versions.is_empty() {
                    return Err(ApiError::UnknownModel { name });
                }
                Ok(ApiResponse::Model(ModelDetail { name, versions }))
            }
            ApiRequest::CreateRollout { request, dry_run, actor, revoked } => {
                self.create_rollout(request, dry_run, &actor, &revoked)
            }
            ApiRequest::ListRollouts => {
                Ok(ApiResponse::Rollouts(self.driver.records().map(views::rollout_summary).collect()))
            }
            ApiRequest::ShowRollout { id } => {
                let r = self.driver.get(id).ok_or(ApiError::UnknownRollout { id })?;
                Ok(ApiResponse::Rollout(Box::new(views::rollout_detail(r, self.clock.now_ms()))))
            }
            ApiRequest::OperateRollout { id, op: RolloutOp::Promote, actor, reason, track } => {
                self.promote(id, track, &actor, &reason)
            }
            ApiRequest::OperateRollout { id, op, actor, reason, track: _ } => self.operate(id, op, &actor, &reason),
            ApiRequest::Health { device, model, revoked } => {
                if let Some(id) = &device {
                    self.device(id)?;
                }
                let list: Vec<HealthView> = self
                    .devices
                    .values()
                    .filter(|d| device.as_ref().is_none_or(|id| d.id.as_str() == id))
                    .filter(|d| model.as_ref().is_none_or(|m| d.active_models.iter().any(|a| &a.name == m)))
                    .map(|d| {
                        let mut view = views::health(d, model.as_deref());
                        drift_views::add_to_health(&self.drift_data(), d, model.as_deref(), &mut view);
                        self.flag_revoked(d, &revoked, &mut view);
                        view
                    })
                    .collect();
                Ok(ApiResponse::Health(list))
            }
            ApiRequest::DriftReport { model, device } => {
                let device = match &device {
                    Some(id) => Some(self.device(id)?.id.clone()),
                    None => None,
                };
                let known = self.models.values().any(|m| m.name == model)
                    || self.drift.values().any(|d| d.models.contains_key(&model));
                if !known {
                    return Err(ApiError::UnknownModel { name: model });
                }
                Ok(ApiResponse::Drift(Box::new(drift_views::report(&self.drift_data(), &model, device.as_ref()))))
            }
            ApiRequest::SetSampling { selector, policy, actor } => {
                let selector: Selector = selector.parse().map_err(ApiError::invalid)?;
                // The wire rule (protocol), with the messages operators have always seen.
                policy.validate().map_err(|e| match e {
                    SamplingPolicyError::SampleRate(rate) => {
                        ApiError::invalid(format!("sample rate {rate} is not in [0, 1]"))
                    }
                    _ => ApiError::invalid("the drift window must be between 100 ms and 1 day"),
                })?;
                let targets: Vec<DeviceId> =
                    self.devices.values().filter(|d| selector.matches(d)).map(|d| d.id.clone()).collect();
                for device in &targets {
                    let command = Command {
                        command_id: self.command_ids.next_id(),
                        issued_at_ms: self.clock.now_ms(),
                        body: CommandBody::SetSamplingPolicy(policy.clone()),
                    };
                    self.send(device, &command);
                }
                let detail = SamplingResponse {
                    select: selector.to_string(),
                    devices: targets.len(),
                    model: policy.model.as_ref().map(|m| m.to_string()),
                    sample_rate: policy.sample_rate,
                    max_sample_bytes_per_hour: policy.max_sample_bytes_per_hour,
                    drift_window_ms: policy.drift_window_ms,
                };
                self.audit(&actor, "device.sampling", format!("select/{selector}"), json!(detail));
                Ok(ApiResponse::Sampling(detail))
            }
            ApiRequest::Scorecard { id } => {
                let r = self.driver.get(id).ok_or(ApiError::UnknownRollout { id })?;
                Ok(ApiResponse::Scorecard(Box::new(drift_views::scorecard(&self.drift_data(), r))))
            }
            ApiRequest::Record { actor, action, subject, detail } => {
                self.audit(&actor, &action, subject, detail);
                Ok(ApiResponse::Audit(self.audit_tail.iter().cloned().collect()))
            }
        }
    }

    fn drift_data(&self) -> drift_views::DriftData<'_> {
        drift_views::DriftData {
            devices: &self.devices,
            drift: &self.drift,
            models: &self.models,
            settings: &self.cfg.drift,
        }
    }

    fn device(&self, id: &str) -> Result<&DeviceRecord, ApiError> {
        id.parse::<DeviceId>()
            .ok()
            .and_then(|d| self.devices.get(&d))
            .ok_or_else(|| ApiError::UnknownDevice { id: id.to_string() })
    }

    fn label(&mut self, id: &str, set: BTreeMap<String, String>, remove: Vec<String>, actor: &str) -> ApiResult {
        let device_id = self.device(id)?.id.clone();
        for (k, v) in &set {
            if !valid_label_key(k) || matches!(k.as_str(), "hw" | "hardware" | "device" | "model") {
                return Err(ApiError::invalid(format!(
                    "label {k:?}: not a valid label name (hw, hardware, device and model are reserved)"
                )));
            }
            if v.is_empty() || v.len() > 128 || v.contains(',') || v.contains('=') {
                return Err(ApiError::invalid(format!(
                    "label {k}={v:?}: values are 1-128 characters without ',' or '='"
                )));
            }
        }
        let Some(device) = self.devices.get_mut(&device_id) else {
            return Err(ApiError::UnknownDevice { id: id.to_string() });
        };
        for k in &remove {
            device.labels.remove(k);
        }
        device.labels.extend(set.clone());
        let labels = device.labels.clone();
        self.dirty_devices.insert(device_id.clone());
        self.audit(actor, "device.label", format!("device/{device_id}"), json!({"set": set, "removed": remove}));
        Ok(ApiResponse::Labels(LabelResponse { device: device_id, labels }))
    }

    fn register_model(&mut self, record: ModelRecord) -> ApiResult {
        let key = record.key();
        if let Some(existing) = self.models.get(&key) {
            if existing.package_id == record.package_id {
                let model = existing.clone();
                return Ok(ApiResponse::ModelPushed(Box::new(PushResponse { model, already_registered: true })));
            }
            return Err(ApiError::VersionExists {
                name: record.name,
                version_seq: record.version_seq,
                package_id: existing.package_id.clone(),
            });
        }
        let detail = json!({"package_id": record.package_id, "label": record.label, "key_id": record.key_id, "size": record.package_size});
        self.audit(&record.pushed_by.clone(), "model.push", format!("model/{key}"), detail);
        self.models.insert(key.clone(), record.clone());
        self.dirty_models.insert(key);
        Ok(ApiResponse::ModelPushed(Box::new(PushResponse { model: record, already_registered: false })))
    }

    /// A device serving a version signed by a revoked key is failing, whatever its figures.
    fn flag_revoked(&self, d: &DeviceRecord, revoked: &[String], view: &mut HealthView) {
        for active in &d.active_models {
            let Some(m) = self.models.get(&model_key(&active.name, active.version_seq)) else { continue };
            if revoked.iter().any(|k| k.eq_ignore_ascii_case(&m.key_id)) {
                view.state = HealthState::Failing;
                view.reasons.insert(
                    0,
                    format!(
                        "runs {}@{} signed by revoked key {}; roll out a version signed by a trusted key",
                        active.name, active.version_seq, m.key_id
                    ),
                );
            }
        }
    }

    fn create_rollout(&mut self, request: RolloutRequest, dry_run: bool, actor: &str, revoked: &[String]) -> ApiResult {
        let (plan, probation) = request.plan(&self.cfg.probation).map_err(ApiError::invalid)?;
        let key = model_key(&request.model, request.version_seq);
        let model = self.models.get(&key).ok_or_else(|| {
            let known: Vec<&String> = self.models.keys().collect();
            ApiError::invalid(RequestError::UnknownModel {
                name: request.model.clone(),
                version_seq: request.version_seq,
                known: if known.is_empty() { "none".into() } else { format!("{known:?}") },
            })
        })?;
        if revoked.iter().any(|k| k.eq_ignore_ascii_case(&model.key_id)) {
            return Err(ApiError::KeyRevoked { model: key, key_id: model.key_id.clone() });
        }
        let selector: Selector = request.select.parse().map_err(ApiError::invalid)?;
        if let Some(running) = self.driver.active_for_model(&request.model) {
            return Err(ApiError::RolloutActive { id: running.id, model: request.model.clone() });
        }
        let id = self.driver.next_id();
        let resolved = resolve_targets(id, &selector, model, self.devices.values());
        let machine = Rollout::new(RolloutId(id), plan, resolved.targets.clone())
            .map_err(|e| ApiError::invalid(RequestError::from(e)))?;
        let summary = views::dry_run(&machine, model, &resolved, &self.devices, probation.duration_ms);
        if dry_run {
            let created = CreateRolloutResponse { id: None, dry_run: true, plan: summary };
            return Ok(ApiResponse::RolloutCreated(Box::new(created)));
        }
        let package_id = model.package_id.parse().map_err(|e| ApiError::Storage {
            message: format!("model {key} has an unreadable package id {:?}: {e}", model.package_id),
        })?;
        let head_size = model.head_size;
        let record = RolloutRecord {
            id,
            request: request.clone(),
            created_by: actor.to_string(),
            created_at_ms: self.clock.now_ms(),
            finished_at_ms: None,
            package_id,
            head_size,
            probation,
            machine,
            last_heard_ms: BTreeMap::new(),
            latest_commands: BTreeMap::new(),
            decisions: BTreeMap::new(),
            failures: BTreeMap::new(),
            rollback_skipped: BTreeMap::new(),
            holds: BTreeMap::new(),
        };
        self.audit(actor, "rollout.create", format!("rollout/{id}"), json!({"request": request, "plan": summary}));
        let effects = self.driver.start(record, self.clock.now_ms(), &mut self.command_ids);
        self.apply(effects);
        let created = CreateRolloutResponse { id: Some(id), dry_run: false, plan: summary };
        Ok(ApiResponse::RolloutCreated(Box::new(created)))
    }

    fn operate(&mut self, id: u32, op: RolloutOp, actor: &str, reason: &str) -> ApiResult {
        let fleet = FleetView { devices: &self.devices, drift: &self.drift };
        let effects = self.driver.operate(id, op, actor, reason, fleet, self.clock.now_ms(), &mut self.command_ids);
        self.operated(id, effects)
    }

    fn promote(&mut self, id: u32, track: Option<HardwareClass>, actor: &str, reason: &str) -> ApiResult {
        let effects = self.driver.promote(id, track, actor, reason, self.clock.now_ms(), &mut self.command_ids);
        self.operated(id, effects)
    }

    /// Applies what the driver decided for an operator, or says why it refused.
    fn operated(&mut self, id: u32, effects: Result<Effects, DriverError>) -> ApiResult {
        match effects {
            Ok(effects) => self.apply(effects),
            Err(DriverError::UnknownRollout(id)) => return Err(ApiError::UnknownRollout { id }),
            Err(DriverError::NotAllowed { id, status, op }) => return Err(ApiError::CannotOperate { id, status, op }),
            Err(DriverError::NothingHeld { id, track }) => return Err(ApiError::NothingHeld { id, track }),
        }
        let r = self.driver.get(id).ok_or(ApiError::UnknownRollout { id })?;
        Ok(ApiResponse::Rollout(Box::new(views::rollout_detail(r, self.clock.now_ms()))))
    }
}
