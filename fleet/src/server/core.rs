//! The fleet manager's single owner of state: registry, models, rollouts (through the
//! [`RolloutDriver`]) and the audit chain. Everything that changes state arrives as an
//! [`Input`] (device messages, operator requests, clock ticks) and is handled in batches
//! ([`Core::apply_batch`]): apply every input, commit one storage transaction, and only then
//! acknowledge the device messages (MQTT PUBACK, in the order they arrived), answer the
//! operators and send the commands. So nothing is acknowledged or acted on before it is
//! durable. [`Core::run`] is the thin async loop around it.
//!
//! Time comes from the [`Clock`] passed in, read once per input; storage is the
//! [`FleetStore`] passed in (redb in `serve`, memory in tests).

use super::audit::{self, AuditEntry};
use super::clock::Clock;
use super::command_ids::CommandIds;
use super::drift::{DeviceDrift, StoredWindow};
use super::drift_views;
pub use super::driver::RolloutOp;
use super::driver::{AuditNote, DriverError, DriverSettings, Effects, FleetView, RolloutDriver};
use super::models::{ModelRecord, model_key};
use super::quarantine::{Change, Refusal, RefusalKind};
use super::rebirth::MissedBirths;
use super::registry::{Applied, DeviceRecord, Retention, Uplink};
use super::rollouts::{RequestError, RolloutRecord, RolloutRequest, resolve_targets};
use super::selector::{Selector, valid_label_key};
use super::store::{Batch, FleetStore, StoreError};
use super::views;
use crate::rollout::{Rollout, RolloutId};
use edgefleet_protocol::command::{Command, CommandBody, ProbationBudget};
use edgefleet_protocol::topic::{Namespace, Topic, TopicKind};
use edgefleet_protocol::{DeviceId, encode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// An operator request's failure: an HTTP status and a message that says what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// 400: the request is wrong.
    pub fn bad_request(message: impl ToString) -> Self {
        ApiError { status: 400, message: message.to_string() }
    }
    /// 404: no such thing.
    pub fn not_found(message: impl ToString) -> Self {
        ApiError { status: 404, message: message.to_string() }
    }
    /// 409: conflicts with the current state.
    pub fn conflict(message: impl ToString) -> Self {
        ApiError { status: 409, message: message.to_string() }
    }
}

/// An operator request's answer.
pub type ApiResult = Result<Value, ApiError>;

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
    /// Sampled raw records of a model.
    Samples {
        /// Model name.
        model: String,
        /// Only this device.
        device: Option<String>,
        /// At most this many batches.
        limit: usize,
    },
    /// A rollout's A/B scorecard.
    Scorecard {
        /// Rollout id.
        id: u32,
    },
    /// Audit entries.
    Audit {
        /// From this sequence number.
        from: u64,
        /// At most this many.
        limit: usize,
    },
    /// Verify the whole audit chain.
    AuditVerify,
}

/// Something for the core to handle.
#[derive(Debug)]
pub enum Input {
    /// A decoded device message; `ack` is released after the batch commits.
    Uplink {
        /// Sender (from the topic).
        device: DeviceId,
        /// The message.
        uplink: Uplink,
        /// The MQTT publish to acknowledge once durable.
        ack: Option<rumqttc::Publish>,
    },
    /// A device message the fleet does not take (malformed, on a foreign topic, of a kind it
    /// does not keep). It still passes through the core so its acknowledgement goes out in
    /// its place in the order (brokers such as rumqttd drop a client that acknowledges out of
    /// order).
    Refused {
        /// The sender, when the topic names one.
        device: Option<DeviceId>,
        /// What was refused (without the time: the core stamps it).
        refused: RefusedMessage,
        /// The MQTT publish to acknowledge in order.
        ack: Option<rumqttc::Publish>,
    },
    /// An operator request.
    Api {
        /// The request.
        request: ApiRequest,
        /// Where the answer goes (after the commit).
        reply: oneshot::Sender<ApiResult>,
    },
    /// Time passed.
    Tick,
    /// The MQTT link (re)connected: re-send what devices may have missed.
    Connected,
}

/// A refused device message, as the link saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedMessage {
    /// The topic's stream (`health`, ...), or the topic itself when it is not a device topic.
    pub stream: String,
    /// Why, in a word.
    pub kind: RefusalKind,
    /// The decoder's or the rule's words.
    pub reason: String,
    /// The payload's first bytes (at most 16) and its size.
    pub head: Vec<u8>,
    /// Payload size.
    pub bytes: usize,
}

impl RefusedMessage {
    /// A refusal of `payload` on `stream`.
    pub fn new(stream: impl Into<String>, kind: RefusalKind, reason: impl Into<String>, payload: &[u8]) -> Self {
        let head = payload[..payload.len().min(16)].to_vec();
        RefusedMessage { stream: stream.into(), kind, reason: reason.into(), head, bytes: payload.len() }
    }
}

/// A command for a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// MQTT topic.
    pub topic: String,
    /// Encoded command.
    pub payload: Vec<u8>,
}

/// What a batch leaves to do once it is committed, in this order.
#[derive(Debug, Default)]
pub struct Settled {
    /// Device messages to acknowledge, in arrival order.
    pub acks: Vec<rumqttc::Publish>,
    /// Operator answers.
    pub replies: Vec<(oneshot::Sender<ApiResult>, ApiResult)>,
    /// Commands to publish.
    pub outbound: Vec<Outbound>,
}

/// Counters for `/v1/status` and benchmarks.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Counters {
    /// Device messages applied.
    pub uplinks_applied: u64,
    /// Duplicates and stale messages ignored.
    pub uplinks_ignored: u64,
    /// Device messages refused (malformed, foreign topic, unknown kind), acknowledged in order.
    pub uplinks_refused: u64,
    /// Commands sent.
    pub commands_sent: u64,
    /// Commands dropped because the publisher's queue was full (the broker away or slow).
    pub commands_dropped: u64,
    /// `Rebirth` commands sent (births the fleet manager missed).
    pub rebirths_requested: u64,
    /// Storage commits.
    pub commits: u64,
    /// Time spent in storage commits, microseconds.
    pub commit_us_total: u64,
    /// Longest storage commit, microseconds.
    pub commit_us_max: u64,
    /// Gate decisions taken (promote, complete, fail).
    pub gate_decisions: u64,
    /// Total time from the start of the batch holding the deciding input to the decision's
    /// commands being handed to the publisher (commit included), microseconds.
    pub gate_decision_us_total: u64,
    /// Longest such time, microseconds.
    pub gate_decision_us_max: u64,
}

/// Settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Topic namespace.
    pub namespace: Namespace,
    /// Silence that makes a dispatched device unreachable.
    pub unreachable_after_ms: u64,
    /// Per-device retention.
    pub retention: Retention,
    /// Default probation.
    pub probation: ProbationBudget,
    /// Drift detector thresholds.
    pub drift: crate::drift::DetectorSettings,
    /// Drift windows kept per device.
    pub drift_retention: usize,
    /// Shown in `/v1/status`.
    pub info: Value,
}

/// The state owner.
pub struct Core {
    cfg: CoreConfig,
    store: Arc<dyn FleetStore>,
    clock: Arc<dyn Clock>,
    devices: BTreeMap<DeviceId, DeviceRecord>,
    models: BTreeMap<String, ModelRecord>,
    driver: RolloutDriver,
    audit_tail: Option<AuditEntry>,
    dirty_devices: BTreeSet<DeviceId>,
    dirty_models: BTreeSet<String>,
    dirty_rollouts: BTreeSet<u32>,
    new_audit: Vec<AuditEntry>,
    outbound: Vec<Outbound>,
    counters: Counters,
    command_ids: CommandIds,
    decided_in_batch: u64,
    health_arrived: bool,
    drift: BTreeMap<DeviceId, DeviceDrift>,
    new_drift: Vec<(DeviceId, StoredWindow)>,
    drift_keep_from: BTreeMap<DeviceId, u64>,
    sample_seqs: BTreeMap<DeviceId, VecDeque<u64>>,
    new_samples: Vec<(DeviceId, edgefleet_protocol::uplink::SampleBatch)>,
    samples_keep_from: BTreeMap<DeviceId, u64>,
    missed_births: MissedBirths,
    /// Devices flagged for refused messages (cleared on the tick after a quiet spell).
    flagged: BTreeSet<DeviceId>,
}

/// Sample batches kept per device (at most 32 KiB each: ≤ 2 MiB per device).
const SAMPLE_BATCHES_PER_DEVICE: usize = 64;

/// Inputs handled in one batch at most (one commit each).
const MAX_BATCH: usize = 1024;

impl Core {
    /// Loads the stored state.
    pub fn open(
        cfg: CoreConfig,
        store: Arc<dyn FleetStore>,
        clock: Arc<dyn Clock>,
        command_ids: CommandIds,
    ) -> Result<Self, StoreError> {
        let snapshot = store.load()?;
        let mut sample_seqs: BTreeMap<DeviceId, VecDeque<u64>> = BTreeMap::new();
        for (device, seq) in snapshot.sample_seqs {
            sample_seqs.entry(device).or_default().push_back(seq);
        }
        let settings = DriverSettings { unreachable_after_ms: cfg.unreachable_after_ms };
        let mut core = Core {
            devices: snapshot.devices.into_iter().map(|d| (d.id.clone(), d)).collect(),
            models: snapshot.models.into_iter().map(|m| (m.key(), m)).collect(),
            driver: RolloutDriver::new(settings, snapshot.rollouts),
            audit_tail: snapshot.audit_tail,
            cfg,
            store,
            clock,
            dirty_devices: BTreeSet::new(),
            dirty_models: BTreeSet::new(),
            dirty_rollouts: BTreeSet::new(),
            new_audit: Vec::new(),
            outbound: Vec::new(),
            counters: Counters::default(),
            command_ids,
            decided_in_batch: 0,
            health_arrived: false,
            drift: BTreeMap::new(),
            new_drift: Vec::new(),
            drift_keep_from: BTreeMap::new(),
            sample_seqs,
            new_samples: Vec::new(),
            samples_keep_from: BTreeMap::new(),
            missed_births: MissedBirths::default(),
            flagged: BTreeSet::new(),
        };
        core.flagged = core.devices.values().filter(|d| d.quarantine.flagged.is_some()).map(|d| d.id.clone()).collect();
        // Replaying the stored windows rebuilds each device's persistence state exactly.
        for (device, window) in snapshot.drift {
            core.record_drift(device, window.summary, window.received_ms);
        }
        core.new_drift.clear();
        core.drift_keep_from.clear();
        Ok(core)
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Assesses and keeps one drift window of `device`.
    fn record_drift(&mut self, device: DeviceId, summary: edgefleet_protocol::uplink::DriftSummary, received_ms: u64) {
        let reference = self
            .models
            .get(&model_key(summary.model.as_str(), summary.version_seq))
            .map(|m| &m.drift_reference)
            .filter(|r| !r.is_empty());
        let state = self.drift.entry(device.clone()).or_default();
        let stored = state.record(summary, reference, &self.cfg.drift, received_ms, self.cfg.drift_retention).clone();
        if let Some(oldest) = state.windows.front() {
            self.drift_keep_from.insert(device.clone(), oldest.summary.seq);
        }
        self.new_drift.push((device, stored));
    }

    /// Runs until `inputs` closes; `ack` releases a device message, `send` hands a command to
    /// the publisher without waiting (false: its queue is full and the command was dropped).
    /// Stops at the first storage failure, acknowledging and answering nothing of that batch.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        ack: impl Fn(rumqttc::Publish),
        send: impl Fn(Outbound) -> bool,
    ) -> Result<(), StoreError> {
        while let Some(first) = inputs.recv().await {
            let started = std::time::Instant::now();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match inputs.try_recv() {
                    Ok(input) => batch.push(input),
                    Err(_) => break,
                }
            }
            let settled = self.apply_batch(batch)?;
            for publish in settled.acks {
                ack(publish);
            }
            for (reply, answer) in settled.replies {
                let _ = reply.send(answer);
            }
            for out in settled.outbound {
                if !send(out) {
                    self.counters.commands_dropped += 1;
                }
            }
            if self.decided_in_batch > 0 {
                let took = started.elapsed().as_micros() as u64;
                self.counters.gate_decisions += self.decided_in_batch;
                self.counters.gate_decision_us_total += took * self.decided_in_batch;
                self.counters.gate_decision_us_max = self.counters.gate_decision_us_max.max(took);
                self.decided_in_batch = 0;
            }
        }
        Ok(())
    }

    /// Applies a batch of inputs and commits it; returns what to release, in order. On a
    /// storage failure nothing of the batch may be released (the caller stops).
    pub fn apply_batch(&mut self, batch: Vec<Input>) -> Result<Settled, StoreError> {
        let mut settled = Settled::default();
        for input in batch {
            match input {
                Input::Uplink { device, uplink, ack } => {
                    self.ingest(device, &uplink);
                    settled.acks.extend(ack);
                }
                Input::Refused { device, refused, ack } => {
                    self.refuse(device, refused);
                    settled.acks.extend(ack);
                }
                Input::Api { request, reply } => {
                    let answer = self.api(request);
                    settled.replies.push((reply, answer));
                }
                Input::Tick => self.tick(),
                Input::Connected => {
                    let effects = self.driver.reconnected(self.clock.now_ms(), &mut self.command_ids);
                    self.apply(effects);
                }
            }
        }
        self.commit()?;
        settled.outbound = std::mem::take(&mut self.outbound);
        Ok(settled)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let batch = Batch {
            devices: self.dirty_devices.iter().filter_map(|id| self.devices.get(id).cloned()).collect(),
            models: self.dirty_models.iter().filter_map(|k| self.models.get(k).cloned()).collect(),
            rollouts: self.dirty_rollouts.iter().filter_map(|id| self.driver.get(*id).cloned()).collect(),
            audit: std::mem::take(&mut self.new_audit),
            drift: std::mem::take(&mut self.new_drift),
            drift_keep_from: std::mem::take(&mut self.drift_keep_from).into_iter().collect(),
            samples: std::mem::take(&mut self.new_samples),
            samples_keep_from: std::mem::take(&mut self.samples_keep_from).into_iter().collect(),
        };
        self.dirty_devices.clear();
        self.dirty_models.clear();
        self.dirty_rollouts.clear();
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.store.write(&batch)?;
        let took = started.elapsed().as_micros() as u64;
        self.counters.commits += 1;
        self.counters.commit_us_total += took;
        self.counters.commit_us_max = self.counters.commit_us_max.max(took);
        Ok(())
    }

    fn audit(&mut self, actor: &str, action: &str, subject: String, detail: Value) {
        let entry = audit::next_entry(self.audit_tail.as_ref(), self.clock.now_ms(), actor, action, &subject, detail);
        self.audit_tail = Some(entry.clone());
        self.new_audit.push(entry);
    }

    /// Carries out what the rollout driver asked for (after the commit, by `apply_batch`).
    fn apply(&mut self, effects: Effects) {
        for AuditNote { actor, action, subject, detail } in effects.audit {
            self.audit(&actor, action, subject, detail);
        }
        for (device, command) in &effects.commands {
            self.send(device, command);
        }
        self.dirty_rollouts.extend(effects.writes);
        self.decided_in_batch += effects.gate_decisions;
    }

    // ---- device messages -------------------------------------------------------------------

    fn ingest(&mut self, device: DeviceId, uplink: &Uplink) {
        let now = self.clock.now_ms();
        let retention = self.cfg.retention;
        let record = self.devices.entry(device.clone()).or_insert_with(|| DeviceRecord::new(device.clone(), now));
        let fresh = record.apply(uplink, now, retention) == Applied::Fresh;
        self.missed_births.observe(record, uplink, fresh, now);
        if !fresh {
            self.counters.uplinks_ignored += 1;
            return;
        }
        self.counters.uplinks_applied += 1;
        self.dirty_devices.insert(device.clone());
        let ids = &mut self.command_ids;
        let effects = match uplink {
            // A device that (re)connected mid-deployment may have missed its command.
            Uplink::Birth(_) => self.driver.on_birth(&device, now, ids),
            Uplink::Deployment(status) => self.driver.on_deployment(&device, status, now, ids),
            Uplink::Ack(ack) => self.driver.on_ack(&device, ack, now, ids),
            Uplink::Health(_) => {
                self.health_arrived = true;
                return;
            }
            Uplink::Drift(summary) => {
                self.record_drift(device, (**summary).clone(), now);
                // Feedback counts feed the scorecards' accuracy and the accuracy gate.
                self.health_arrived = true;
                return;
            }
            Uplink::Samples(batch) => {
                // Kept for retraining datasets (`edgefleet samples export`), newest 64 per device.
                let seqs = self.sample_seqs.entry(device.clone()).or_default();
                seqs.push_back(batch.seq);
                while seqs.len() > SAMPLE_BATCHES_PER_DEVICE {
                    seqs.pop_front();
                }
                if let Some(oldest) = seqs.front() {
                    self.samples_keep_from.insert(device.clone(), *oldest);
                }
                self.new_samples.push((device, (**batch).clone()));
                return;
            }
            Uplink::Presence(_) => return,
        };
        self.apply(effects);
    }

    /// Counts a refused message; a device that keeps sending them is flagged (once, audited).
    fn refuse(&mut self, device: Option<DeviceId>, refused: RefusedMessage) {
        self.counters.uplinks_refused += 1;
        let Some(device) = device else {
            tracing::debug!(stream = %refused.stream, reason = %refused.reason, "message on a foreign topic refused");
            return;
        };
        let now = self.clock.now_ms();
        let record = self.devices.entry(device.clone()).or_insert_with(|| DeviceRecord::new(device.clone(), now));
        let mut refusal = Refusal::new(now, &refused.stream, refused.kind, refused.reason, &refused.head);
        refusal.bytes = refused.bytes;
        tracing::debug!(%device, refusal = %refusal.describe(), "device message refused");
        let change = record.quarantine.refuse(refusal);
        self.dirty_devices.insert(device.clone());
        if let Some(Change::Flagged(flag)) = change {
            tracing::warn!(%device, reason = %flag.reason, "device flagged: its messages are refused and only counted from now on");
            let detail = json!({"reason": flag.reason, "counts": record.quarantine.counts});
            self.flagged.insert(device.clone());
            self.audit("edgefleet", "device.flagged", format!("device/{device}"), detail);
        }
    }

    fn tick(&mut self) {
        let now = self.clock.now_ms();
        for device in self.flagged.clone() {
            let Some(record) = self.devices.get_mut(&device) else { continue };
            if let Some(Change::Cleared) = record.quarantine.tick(now) {
                self.flagged.remove(&device);
                self.dirty_devices.insert(device.clone());
                let detail = json!({"refused_total": record.quarantine.total()});
                tracing::info!(%device, "device flag cleared: no refused message for 10 minutes");
                self.audit("edgefleet", "device.flag_cleared", format!("device/{device}"), detail);
            }
        }
        for device in self.missed_births.due(now) {
            let command =
                Command { command_id: self.command_ids.next_id(), issued_at_ms: now, body: CommandBody::Rebirth };
            self.counters.rebirths_requested += 1;
            self.send(&device, &command);
        }
        let fleet = std::mem::take(&mut self.health_arrived)
            .then_some(FleetView { devices: &self.devices, drift: &self.drift });
        let effects = self.driver.tick(now, fleet, &mut self.command_ids);
        self.apply(effects);
    }

    fn command_topic(&self, device: &DeviceId) -> String {
        Topic::new(&self.cfg.namespace, device, TopicKind::Command).to_string()
    }

    fn send(&mut self, device: &DeviceId, command: &Command) {
        match encode(command) {
            Ok(payload) => {
                self.counters.commands_sent += 1;
                self.outbound.push(Outbound { topic: self.command_topic(device), payload });
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a command"),
        }
    }

    // ---- operator requests ----------------------------------------------------------------

    fn api(&mut self, request: ApiRequest) -> ApiResult {
        match request {
            ApiRequest::Status => Ok(json!({
                "info": self.cfg.info,
                "devices": self.devices.len(),
                "online": self.devices.values().filter(|d| d.online).count(),
                // Heard from, but their birth (hardware class) has not arrived (asked again).
                "without_birth": self.devices.values().filter(|d| d.hardware.is_none()).count(),
                "models": self.models.len(),
                "rollouts": self.driver.records().count(),
                "active_rollouts": self.driver.records().filter(|r| r.finished_at_ms.is_none()).map(|r| r.id).collect::<Vec<_>>(),
                "audit_entries": self.audit_tail.as_ref().map_or(0, |e| e.seq + 1),
                "counters": self.counters,
            })),
            ApiRequest::ListDevices { selector } => {
                let selector: Selector = selector.parse().map_err(ApiError::bad_request)?;
                let list: Vec<Value> =
                    self.devices.values().filter(|d| selector.matches(d)).map(views::device_summary).collect();
                Ok(json!(list))
            }
            ApiRequest::ShowDevice { id } => {
                let device = self.device(&id)?;
                Ok(json!(device))
            }
            ApiRequest::Label { id, set, remove, actor } => self.label(&id, set, remove, &actor),
            ApiRequest::RegisterModel { record } => self.register_model(record),
            ApiRequest::ListModels => Ok(json!(
                self.models.values().map(|m| views::model_summary(m, self.devices.values())).collect::<Vec<_>>()
            )),
            ApiRequest::ShowModel { name } => {
                let versions: Vec<Value> = self
                    .models
                    .values()
                    .filter(|m| m.name == name)
                    .map(|m| views::model_detail(m, self.devices.values()))
                    .collect();
                if versions.is_empty() {
                    return Err(ApiError::not_found(format!(
                        "unknown model {name:?}; `edgefleet model list` shows the known ones"
                    )));
                }
                Ok(json!({"name": name, "versions": versions}))
            }
            ApiRequest::CreateRollout { request, dry_run, actor } => self.create_rollout(request, dry_run, &actor),
            ApiRequest::ListRollouts => {
                Ok(json!(self.driver.records().map(views::rollout_summary).collect::<Vec<_>>()))
            }
            ApiRequest::ShowRollout { id } => {
                let r = self.driver.get(id).ok_or_else(|| ApiError::not_found(format!("no rollout {id}")))?;
                Ok(views::rollout_detail(r))
            }
            ApiRequest::OperateRollout { id, op: RolloutOp::Promote, actor, reason, track } => {
                self.promote(id, track, &actor, &reason)
            }
            ApiRequest::OperateRollout { id, op, actor, reason, track: _ } => self.operate(id, op, &actor, &reason),
            ApiRequest::Health { device, model } => {
                if let Some(id) = &device {
                    self.device(id)?;
                }
                let list: Vec<Value> = self
                    .devices
                    .values()
                    .filter(|d| device.as_ref().is_none_or(|id| d.id.as_str() == id))
                    .filter(|d| model.as_ref().is_none_or(|m| d.active_models.iter().any(|a| &a.name == m)))
                    .map(|d| {
                        let mut view = views::health(d, model.as_deref());
                        drift_views::add_to_health(&self.drift_data(), d, model.as_deref(), &mut view);
                        view
                    })
                    .collect();
                Ok(json!(list))
            }
            ApiRequest::DriftReport { model, device } => {
                let device = match &device {
                    Some(id) => Some(self.device(id)?.id.clone()),
                    None => None,
                };
                let known = self.models.values().any(|m| m.name == model)
                    || self.drift.values().any(|d| d.models.contains_key(&model));
                if !known {
                    return Err(ApiError::not_found(format!(
                        "unknown model {model:?}; `edgefleet model list` shows the known ones"
                    )));
                }
                Ok(drift_views::report(&self.drift_data(), &model, device.as_ref()))
            }
            ApiRequest::SetSampling { selector, policy, actor } => {
                let selector: Selector = selector.parse().map_err(ApiError::bad_request)?;
                if !(0.0..=1.0).contains(&policy.sample_rate) {
                    return Err(ApiError::bad_request(format!("sample rate {} is not in [0, 1]", policy.sample_rate)));
                }
                if !(100..=86_400_000).contains(&policy.drift_window_ms) {
                    return Err(ApiError::bad_request("the drift window must be between 100 ms and 1 day"));
                }
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
                let detail = json!({
                    "select": selector.to_string(), "devices": targets.len(), "model": policy.model,
                    "sample_rate": policy.sample_rate, "max_sample_bytes_per_hour": policy.max_sample_bytes_per_hour,
                    "drift_window_ms": policy.drift_window_ms,
                });
                self.audit(&actor, "device.sampling", format!("select/{selector}"), detail.clone());
                Ok(detail)
            }
            ApiRequest::Samples { model, device, limit } => {
                let batches = self
                    .store
                    .samples(&model, device.and_then(|d| d.parse().ok()).as_ref(), limit.min(100_000))
                    .map_err(|e| ApiError { status: 500, message: e.to_string() })?;
                let records: Vec<Value> = batches
                    .iter()
                    .flat_map(|(device, b)| {
                        b.records.iter().map(move |r| {
                            json!({
                                "device": device, "model": b.model, "version_seq": b.version_seq,
                                "inference_id": r.inference_id, "timestamp_ms": r.timestamp_ms,
                                "inputs": r.inputs, "outputs": r.outputs,
                            })
                        })
                    })
                    .collect();
                Ok(json!(records))
            }
            ApiRequest::Scorecard { id } => {
                let r = self.driver.get(id).ok_or_else(|| ApiError::not_found(format!("no rollout {id}")))?;
                Ok(drift_views::scorecard(&self.drift_data(), r))
            }
            ApiRequest::Audit { from, limit } => {
                let entries = self
                    .store
                    .audit(from, limit.min(10_000))
                    .map_err(|e| ApiError { status: 500, message: e.to_string() })?;
                Ok(json!(entries))
            }
            ApiRequest::AuditVerify => self.verify_audit(),
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
        id.parse::<DeviceId>().ok().and_then(|d| self.devices.get(&d)).ok_or_else(|| {
            ApiError::not_found(format!("unknown device {id:?}; `edgefleet devices list` shows the known ones"))
        })
    }

    fn label(&mut self, id: &str, set: BTreeMap<String, String>, remove: Vec<String>, actor: &str) -> ApiResult {
        let device_id = self.device(id)?.id.clone();
        for (k, v) in &set {
            if !valid_label_key(k) || matches!(k.as_str(), "hw" | "hardware" | "device" | "model") {
                return Err(ApiError::bad_request(format!(
                    "label {k:?}: not a valid label name (hw, hardware, device and model are reserved)"
                )));
            }
            if v.is_empty() || v.len() > 128 || v.contains(',') || v.contains('=') {
                return Err(ApiError::bad_request(format!(
                    "label {k}={v:?}: values are 1-128 characters without ',' or '='"
                )));
            }
        }
        let Some(device) = self.devices.get_mut(&device_id) else { return Err(ApiError::not_found(id)) };
        for k in &remove {
            device.labels.remove(k);
        }
        device.labels.extend(set.clone());
        let labels = device.labels.clone();
        self.dirty_devices.insert(device_id.clone());
        self.audit(actor, "device.label", format!("device/{device_id}"), json!({"set": set, "removed": remove}));
        Ok(json!({"device": device_id, "labels": labels}))
    }

    fn register_model(&mut self, record: ModelRecord) -> ApiResult {
        let key = record.key();
        if let Some(existing) = self.models.get(&key) {
            if existing.package_id == record.package_id {
                return Ok(json!({"model": existing, "already_registered": true}));
            }
            return Err(ApiError::conflict(format!(
                "{} version {} already exists with a different package ({}); versions are immutable, bump version_seq",
                record.name, record.version_seq, existing.package_id
            )));
        }
        let detail = json!({"package_id": record.package_id, "label": record.label, "key_id": record.key_id, "size": record.package_size});
        self.audit(&record.pushed_by.clone(), "model.push", format!("model/{key}"), detail);
        self.models.insert(key.clone(), record.clone());
        self.dirty_models.insert(key);
        Ok(json!({"model": record, "already_registered": false}))
    }

    fn create_rollout(&mut self, request: RolloutRequest, dry_run: bool, actor: &str) -> ApiResult {
        let (plan, probation) = request.plan(&self.cfg.probation).map_err(ApiError::bad_request)?;
        let key = model_key(&request.model, request.version_seq);
        let model = self.models.get(&key).ok_or_else(|| {
            let known: Vec<&String> = self.models.keys().collect();
            ApiError::bad_request(RequestError::UnknownModel {
                name: request.model.clone(),
                version_seq: request.version_seq,
                known: if known.is_empty() { "none".into() } else { format!("{known:?}") },
            })
        })?;
        let selector: Selector = request.select.parse().map_err(ApiError::bad_request)?;
        if let Some(running) = self.driver.active_for_model(&request.model) {
            return Err(ApiError::conflict(format!(
                "rollout {} of {} is still active; wait for it, or `edgefleet rollout abort {}`",
                running.id, request.model, running.id
            )));
        }
        let id = self.driver.next_id();
        let resolved = resolve_targets(id, &selector, model, self.devices.values());
        let machine = Rollout::new(RolloutId(id), plan, resolved.targets.clone())
            .map_err(|e| ApiError::bad_request(RequestError::from(e)))?;
        let summary = views::dry_run(&machine, model, &resolved, &self.devices, probation.duration_ms);
        if dry_run {
            return Ok(json!({"dry_run": true, "plan": summary}));
        }
        let package_id = model.package_id.parse().map_err(|e| {
            ApiError::conflict(format!("model {key} has an unreadable package id {:?}: {e}", model.package_id))
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
        };
        self.audit(actor, "rollout.create", format!("rollout/{id}"), json!({"request": request, "plan": summary}));
        let effects = self.driver.start(record, self.clock.now_ms(), &mut self.command_ids);
        self.apply(effects);
        Ok(json!({"id": id, "dry_run": false, "plan": summary}))
    }

    fn operate(&mut self, id: u32, op: RolloutOp, actor: &str, reason: &str) -> ApiResult {
        let effects = self.driver.operate(id, op, actor, reason, self.clock.now_ms(), &mut self.command_ids);
        self.operated(id, effects)
    }

    fn promote(
        &mut self,
        id: u32,
        track: Option<edgefleet_protocol::hardware::HardwareClass>,
        actor: &str,
        reason: &str,
    ) -> ApiResult {
        let effects = self.driver.promote(id, track, actor, reason, self.clock.now_ms(), &mut self.command_ids);
        self.operated(id, effects)
    }

    fn operated(&mut self, id: u32, effects: Result<Effects, DriverError>) -> ApiResult {
        match effects {
            Ok(effects) => self.apply(effects),
            Err(e @ DriverError::UnknownRollout(_)) => return Err(ApiError::not_found(e)),
            Err(e) => return Err(ApiError::conflict(e)),
        }
        let r = self.driver.get(id).ok_or_else(|| ApiError::not_found(format!("no rollout {id}")))?;
        Ok(views::rollout_detail(r))
    }

    fn verify_audit(&self) -> ApiResult {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let page = self.store.audit(from, 10_000).map_err(|e| ApiError { status: 500, message: e.to_string() })?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            all.extend(page);
        }
        all.extend(self.new_audit.iter().cloned());
        match audit::verify_chain(all) {
            Ok(count) => Ok(json!({"ok": true, "entries": count})),
            Err(broken) => Ok(json!({"ok": false, "first_broken": broken.seq, "reason": broken.reason})),
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
