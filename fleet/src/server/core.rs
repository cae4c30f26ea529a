//! The fleet manager's single owner of state: registry, models, rollouts and the audit chain.
//! Everything that changes state arrives as an [`Input`] (device messages, operator requests,
//! clock ticks) and is handled in batches: apply every input, commit one storage transaction,
//! then acknowledge the device messages (MQTT PUBACK), answer the operators and send the
//! commands the rollouts asked for. So nothing is acknowledged or acted on before it is durable.

use super::audit::{self, AuditEntry};
use super::models::{ModelRecord, model_key};
use super::rebirth::MissedBirths;
use super::registry::{Applied, DeviceRecord, Retention, Uplink, describe_ack};
use super::requests::{ApiRequest, ApiResult};
use super::rollouts::{RolloutRecord, event_for_state};
use super::store::{Batch, FleetDb, StoreError};
use crate::drift::device::{DeviceDrift, StoredWindow};
use crate::rollout::{Action, DeviceState, Event, RolloutStatus};
use edgefleet_protocol::command::{
    Command, CommandBody, CommandId, DeployCommand, DeploymentId, ProbationBudget, RollbackCommand,
};
use edgefleet_protocol::topic::{Namespace, Topic, TopicKind};
use edgefleet_protocol::uplink::AckResult;
use edgefleet_protocol::{DeviceId, Digest, encode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::{mpsc, oneshot};

/// Sums a cohort's figures from its devices' latest health reports.
#[derive(Default)]
struct CohortSum {
    members: u32,
    devices: u32,
    inferences: u64,
    errors: u64,
    p99s: Vec<u32>,
    labelled: u64,
    correct: u64,
}

impl CohortSum {
    fn add(&mut self, m: &edgefleet_protocol::uplink::ModelHealth) {
        self.devices += 1;
        self.inferences += m.inference_count;
        self.errors += m.error_count;
        // p99 is over the device's last report window; 0 means the window was empty.
        if m.latency_p99_us > 0 {
            self.p99s.push(m.latency_p99_us);
        }
    }

    fn figures(mut self) -> crate::rollout::CohortFigures {
        self.p99s.sort_unstable();
        crate::rollout::CohortFigures {
            members: self.members,
            devices: self.devices,
            inferences: self.inferences,
            errors: self.errors,
            p99_us: self.p99s.get(self.p99s.len() / 2).copied(),
            labelled: self.labelled,
            correct: self.correct,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
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

/// A command for a device.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// MQTT topic.
    pub topic: String,
    /// Encoded command.
    pub payload: Vec<u8>,
}

/// Counters for `/v1/status` and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Device messages applied.
    pub uplinks_applied: u64,
    /// Duplicates and stale messages ignored.
    pub uplinks_ignored: u64,
    /// Commands sent.
    pub commands_sent: u64,
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
    pub info: crate::api::status::ServerInfo,
}

/// The state owner.
pub struct Core {
    pub(super) cfg: CoreConfig,
    pub(super) db: FleetDb,
    pub(super) devices: BTreeMap<DeviceId, DeviceRecord>,
    pub(super) models: BTreeMap<String, ModelRecord>,
    pub(super) rollouts: BTreeMap<u32, RolloutRecord>,
    pub(super) audit_tail: Option<AuditEntry>,
    pub(super) dirty_devices: BTreeSet<DeviceId>,
    pub(super) dirty_models: BTreeSet<String>,
    pub(super) dirty_rollouts: BTreeSet<u32>,
    pub(super) new_audit: Vec<AuditEntry>,
    outbound: Vec<Outbound>,
    pub(super) counters: Counters,
    next_command_id: u64,
    decided_in_batch: u64,
    health_arrived: bool,
    pub(super) drift: BTreeMap<DeviceId, DeviceDrift>,
    new_drift: Vec<(String, StoredWindow)>,
    drift_keep_from: BTreeMap<String, u64>,
    sample_seqs: BTreeMap<String, std::collections::VecDeque<u64>>,
    new_samples: Vec<(String, edgefleet_protocol::uplink::SampleBatch)>,
    samples_keep_from: BTreeMap<String, u64>,
    missed_births: MissedBirths,
}

/// Sample batches kept per device (at most 32 KiB each: ≤ 2 MiB per device).
const SAMPLE_BATCHES_PER_DEVICE: usize = 64;

impl Core {
    /// Loads the stored state.
    pub fn open(cfg: CoreConfig, db: FleetDb) -> Result<Self, StoreError> {
        let snapshot = db.load()?;
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let stored_drift = snapshot.drift;
        let mut sample_seqs: BTreeMap<String, std::collections::VecDeque<u64>> = BTreeMap::new();
        for (device, seq) in snapshot.sample_seqs {
            sample_seqs.entry(device).or_default().push_back(seq);
        }
        let mut core = Core {
            devices: snapshot.devices.into_iter().map(|d| (d.id.clone(), d)).collect(),
            models: snapshot.models.into_iter().map(|m| (m.key(), m)).collect(),
            rollouts: snapshot.rollouts.into_iter().map(|r| (r.id, r)).collect(),
            audit_tail: snapshot.audit_tail,
            cfg,
            db,
            dirty_devices: BTreeSet::new(),
            dirty_models: BTreeSet::new(),
            dirty_rollouts: BTreeSet::new(),
            new_audit: Vec::new(),
            outbound: Vec::new(),
            counters: Counters::default(),
            // Random start (63 bits), then sequential: unique across restarts in practice.
            next_command_id: u64::from_le_bytes(seed) >> 2,
            decided_in_batch: 0,
            health_arrived: false,
            drift: BTreeMap::new(),
            new_drift: Vec::new(),
            drift_keep_from: BTreeMap::new(),
            sample_seqs,
            new_samples: Vec::new(),
            samples_keep_from: BTreeMap::new(),
            missed_births: MissedBirths::default(),
        };
        // Replaying the stored windows rebuilds each device's persistence state exactly.
        for (device, window) in stored_drift {
            let Ok(id) = device.parse::<DeviceId>() else { continue };
            core.record_drift(id, window.summary, window.received_ms);
        }
        core.new_drift.clear();
        core.drift_keep_from.clear();
        Ok(core)
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
            self.drift_keep_from.insert(device.to_string(), oldest.summary.seq);
        }
        self.new_drift.push((device.to_string(), stored));
    }

    /// Runs until `inputs` closes; `ack` releases a device message, `send` publishes a command.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        ack: impl Fn(rumqttc::Publish),
        send: impl Fn(Outbound),
    ) -> Result<(), StoreError> {
        while let Some(first) = inputs.recv().await {
            let started = std::time::Instant::now();
            let mut batch = vec![first];
            while batch.len() < 1024 {
                match inputs.try_recv() {
                    Ok(input) => batch.push(input),
                    Err(_) => break,
                }
            }
            let mut acks = Vec::new();
            let mut replies = Vec::new();
            for input in batch {
                match input {
                    Input::Uplink { device, uplink, ack } => {
                        self.ingest(device, &uplink);
                        acks.extend(ack);
                    }
                    Input::Api { request, reply } => {
                        let answer = self.api(request);
                        replies.push((reply, answer));
                    }
                    Input::Tick => self.tick(),
                    Input::Connected => self.resend_in_flight(),
                }
            }
            self.commit()?;
            for publish in acks {
                ack(publish);
            }
            for (reply, answer) in replies {
                let _ = reply.send(answer);
            }
            for out in self.outbound.drain(..) {
                send(out);
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

    fn commit(&mut self) -> Result<(), StoreError> {
        let batch = Batch {
            devices: self.dirty_devices.iter().filter_map(|id| self.devices.get(id).cloned()).collect(),
            models: self.dirty_models.iter().filter_map(|k| self.models.get(k).cloned()).collect(),
            rollouts: self.dirty_rollouts.iter().filter_map(|id| self.rollouts.get(id).cloned()).collect(),
            audit: std::mem::take(&mut self.new_audit),
            drift: std::mem::take(&mut self.new_drift),
            drift_keep_from: std::mem::take(&mut self.drift_keep_from).into_iter().collect(),
            samples: std::mem::take(&mut self.new_samples),
            samples_keep_from: std::mem::take(&mut self.samples_keep_from).into_iter().collect(),
        };
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.db.write(&batch)?;
        let took = started.elapsed().as_micros() as u64;
        self.counters.commits += 1;
        self.counters.commit_us_total += took;
        self.counters.commit_us_max = self.counters.commit_us_max.max(took);
        self.dirty_devices.clear();
        self.dirty_models.clear();
        self.dirty_rollouts.clear();
        Ok(())
    }

    pub(super) fn audit(&mut self, actor: &str, action: &str, subject: String, detail: Value) {
        let entry = audit::next_entry(self.audit_tail.as_ref(), now_ms(), actor, action, &subject, detail);
        self.audit_tail = Some(entry.clone());
        self.new_audit.push(entry);
    }

    // ---- device messages -------------------------------------------------------------------

    fn ingest(&mut self, device: DeviceId, uplink: &Uplink) {
        let now = now_ms();
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
        match uplink {
            Uplink::Birth(_) => {
                // A device that (re)connected mid-deployment may have missed its command.
                let ids: Vec<u32> = self.active_rollout_ids();
                for id in ids {
                    let in_flight = self.rollouts.get(&id).and_then(|r| r.machine.device_state(&device));
                    if matches!(in_flight, Some(DeviceState::Dispatched | DeviceState::Installing)) {
                        self.send_deploy(id, &device);
                    }
                }
            }
            Uplink::Deployment(status) => {
                let id = (status.deployment_id.0 >> 32) as u32;
                let Some(r) = self.rollouts.get_mut(&id) else { return };
                if r.machine.deployment_id_of(&device) != Some(status.deployment_id) {
                    return;
                }
                let current = r.machine.device_state(&device);
                r.last_heard_ms.insert(device.to_string(), now);
                if let Some(event) = event_for_state(&device, &status.state, current) {
                    if let Event::DeviceFailed { reason, .. } = &event {
                        r.failures.insert(device.to_string(), reason.clone());
                    }
                    if matches!(event, Event::DeviceCommitted { .. } | Event::DeviceFailed { .. }) {
                        r.last_heard_ms.remove(device.as_str());
                    }
                    self.handle_rollout(id, event);
                }
                self.dirty_rollouts.insert(id);
            }
            Uplink::Ack(ack) => {
                let found = self.rollouts.iter().find(|(_, r)| r.commands.contains_key(&ack.command_id.0));
                let Some((&id, _)) = found else { return };
                if let AckResult::Rejected(reason) = &ack.result {
                    let reason = format!("command {}", describe_ack(&AckResult::Rejected(reason.clone())));
                    if let Some(r) = self.rollouts.get_mut(&id) {
                        r.failures.insert(device.to_string(), reason.clone());
                        r.last_heard_ms.remove(device.as_str());
                    }
                    self.handle_rollout(id, Event::DeviceFailed { device, reason });
                } else if let Some(r) = self.rollouts.get_mut(&id)
                    && r.last_heard_ms.contains_key(device.as_str())
                {
                    r.last_heard_ms.insert(device.to_string(), now);
                    self.dirty_rollouts.insert(id);
                }
            }
            Uplink::Health(_) => self.health_arrived = true,
            Uplink::Drift(summary) => {
                self.record_drift(device, (**summary).clone(), now);
                // Feedback counts feed the scorecards' accuracy and the accuracy gate.
                self.health_arrived = true;
            }
            Uplink::Samples(batch) => {
                // Kept for retraining datasets (`edgefleet samples export`), newest 64 per device.
                let seqs = self.sample_seqs.entry(device.to_string()).or_default();
                seqs.push_back(batch.seq);
                while seqs.len() > SAMPLE_BATCHES_PER_DEVICE {
                    seqs.pop_front();
                }
                if let Some(oldest) = seqs.front() {
                    self.samples_keep_from.insert(device.to_string(), *oldest);
                }
                self.new_samples.push((device.to_string(), (**batch).clone()));
            }
            Uplink::Presence(_) => {}
        }
    }

    pub(super) fn active_rollout_ids(&self) -> Vec<u32> {
        self.rollouts.iter().filter(|(_, r)| r.finished_at_ms.is_none()).map(|(&id, _)| id).collect()
    }

    fn tick(&mut self) {
        if std::mem::take(&mut self.health_arrived) {
            self.update_cohorts();
        }
        let now = now_ms();
        for device in self.missed_births.due(now) {
            let command = Command { command_id: self.new_command_id(), issued_at_ms: now, body: CommandBody::Rebirth };
            self.counters.rebirths_requested += 1;
            self.send(&device, &command);
        }
        for id in self.active_rollout_ids() {
            let Some(r) = self.rollouts.get(&id) else { continue };
            let silent: Vec<DeviceId> = r
                .last_heard_ms
                .iter()
                .filter(|(_, heard)| now.saturating_sub(**heard) >= self.cfg.unreachable_after_ms)
                .filter_map(|(d, _)| d.parse::<DeviceId>().ok())
                .filter(|d| {
                    matches!(r.machine.device_state(d), Some(DeviceState::Dispatched | DeviceState::Installing))
                })
                .collect();
            for device in silent {
                if let Some(r) = self.rollouts.get_mut(&id) {
                    r.last_heard_ms.remove(device.as_str());
                }
                self.handle_rollout(id, Event::DeviceUnreachable { device });
            }
            self.handle_rollout(id, Event::Tick { now_ms: now });
        }
    }

    /// Recomputes the cohort figures of every running rollout with a health gate from the
    /// devices' latest health reports, and tells the machine when they changed.
    fn update_cohorts(&mut self) {
        for id in self.active_rollout_ids() {
            let Some(r) = self.rollouts.get(&id) else { continue };
            if r.machine.plan().health.is_none() || r.machine.status() != RolloutStatus::Running {
                continue;
            }
            let model = r.machine.plan().model.to_string();
            let version = r.machine.plan().version_seq;
            let mut events = Vec::new();
            for track in r.machine.tracks() {
                let (mut new, mut control) = (CohortSum::default(), CohortSum::default());
                for (target, state) in r.machine.targets().filter(|(t, _)| t.hardware == track.hardware) {
                    let Some(device) = self.devices.get(&target.device) else { continue };
                    // The agent reports every version it served since it started; pick the
                    // one that matters: the new version for the new cohort, the served one for
                    // the control cohort.
                    let (cohort, wanted) = match state {
                        DeviceState::Committed => (&mut new, version),
                        DeviceState::Pending => match device.served_version(&model) {
                            Some(v) if v != version => (&mut control, v),
                            _ => continue,
                        },
                        _ => continue,
                    };
                    cohort.members += 1;
                    if let Some(drift) = self.drift.get(&target.device) {
                        let feedback = drift.feedback(&model, wanted, r.created_at_ms);
                        cohort.labelled += feedback.labelled;
                        cohort.correct += feedback.correct;
                    }
                    if let Some(figures) = device
                        .health
                        .back()
                        .and_then(|h| h.models.iter().find(|m| m.name.as_str() == model && m.version_seq == wanted))
                    {
                        cohort.add(figures);
                    }
                }
                let (new, control) = (new.figures(), control.figures());
                let unchanged =
                    track.cohorts.new == new && (control.devices == 0 || track.cohorts.control == Some(control));
                if !unchanged {
                    events.push(Event::CohortHealth { track: track.hardware, new, control });
                }
            }
            for event in events {
                self.handle_rollout(id, event);
            }
        }
    }

    fn resend_in_flight(&mut self) {
        let now = now_ms();
        for id in self.active_rollout_ids() {
            let Some(r) = self.rollouts.get_mut(&id) else { continue };
            if r.machine.status() != RolloutStatus::Running {
                continue;
            }
            let devices = r.in_flight();
            // The fleet manager was away: give every in-flight device a fresh silence budget.
            for d in &devices {
                r.last_heard_ms.insert(d.to_string(), now);
            }
            for device in devices {
                self.send_deploy(id, &device);
            }
            self.dirty_rollouts.insert(id);
        }
    }

    // ---- rollouts -------------------------------------------------------------------------

    /// Feeds `event` to rollout `id` and carries out the actions.
    pub(super) fn handle_rollout(&mut self, id: u32, event: Event) {
        let Some(r) = self.rollouts.get_mut(&id) else { return };
        let is_tick = matches!(event, Event::Tick { .. });
        let actions = r.machine.handle(event);
        if actions.is_empty() && is_tick {
            return; // a tick that changed nothing but the clock: not worth a write
        }
        self.dirty_rollouts.insert(id);
        let now = now_ms();
        for action in actions {
            if let Some(r) = self.rollouts.get_mut(&id) {
                r.note_decision(&action, now);
            }
            self.perform(id, action);
        }
        if let Some(r) = self.rollouts.get_mut(&id)
            && r.finished_at_ms.is_none()
            && matches!(
                r.machine.status(),
                RolloutStatus::Completed | RolloutStatus::Stopped | RolloutStatus::Aborted | RolloutStatus::RolledBack
            )
        {
            r.finished_at_ms = Some(now);
            r.last_heard_ms.clear();
        }
    }

    fn perform(&mut self, id: u32, action: Action) {
        let subject = format!("rollout/{id}");
        if matches!(
            action,
            Action::Promoted { .. }
                | Action::TrackCompleted { .. }
                | Action::TrackRolledBack { .. }
                | Action::Paused { track: Some(_), .. }
        ) {
            self.decided_in_batch += 1;
        }
        match action {
            Action::Dispatch { device, deployment_id: _ } => {
                if let Some(r) = self.rollouts.get_mut(&id) {
                    r.last_heard_ms.insert(device.to_string(), now_ms());
                }
                self.send_deploy(id, &device);
            }
            Action::RollBackDevice { device } => self.send_rollback(id, &device),
            Action::Promoted { track, stage, evidence } => {
                let detail = json!({"track": track, "stage": stage + 1, "evidence": evidence});
                self.audit("edgefleet", "rollout.promote", subject, detail);
            }
            Action::TrackCompleted { track, evidence } => {
                self.audit(
                    "edgefleet",
                    "rollout.track_completed",
                    subject,
                    json!({"track": track, "evidence": evidence}),
                );
            }
            Action::Held { track, reason, evidence } => {
                let detail = json!({"track": track, "reason": format!("{reason:?}"), "evidence": evidence});
                self.audit("edgefleet", "rollout.hold", subject, detail);
            }
            Action::Paused { track, reason, evidence } => {
                let detail = json!({"track": track, "reason": format!("{reason:?}"), "evidence": evidence});
                let action = if track.is_some() { "rollout.gate_failed" } else { "rollout.paused" };
                self.audit("edgefleet", action, subject, detail);
            }
            Action::TrackRolledBack { track, evidence } => {
                let detail = json!({"track": track, "reason": "gate failed; committed devices told to roll back", "evidence": evidence});
                self.audit("edgefleet", "rollout.gate_failed_rollback", subject, detail);
            }
            Action::Completed => self.audit("edgefleet", "rollout.completed", subject, json!({})),
            Action::Aborted => self.audit("edgefleet", "rollout.stopped", subject, json!({})),
        }
    }

    fn command_topic(&self, device: &DeviceId) -> String {
        Topic::new(&self.cfg.namespace, device, TopicKind::Command).to_string()
    }

    pub(super) fn new_command_id(&mut self) -> CommandId {
        self.next_command_id = self.next_command_id.wrapping_add(1) & (u64::MAX >> 1);
        CommandId(self.next_command_id)
    }

    pub(super) fn send(&mut self, device: &DeviceId, command: &Command) {
        match encode(command) {
            Ok(payload) => {
                self.counters.commands_sent += 1;
                self.outbound.push(Outbound { topic: self.command_topic(device), payload });
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a command"),
        }
    }

    fn send_deploy(&mut self, id: u32, device: &DeviceId) {
        let command_id = self.new_command_id();
        let Some(r) = self.rollouts.get_mut(&id) else { return };
        let Some(deployment_id) = r.machine.deployment_id_of(device) else { return };
        let Ok(package_id) = r.package_id.parse::<Digest>() else { return };
        r.commands.insert(command_id.0, device.to_string());
        let plan = r.machine.plan();
        let command = Command {
            command_id,
            issued_at_ms: now_ms(),
            body: CommandBody::Deploy(DeployCommand {
                deployment_id,
                model: plan.model.clone(),
                version_seq: plan.version_seq,
                package_id,
                head_size: r.head_size,
                probation: r.probation,
                downgrade: None,
            }),
        };
        self.dirty_rollouts.insert(id);
        self.send(device, &command);
    }

    fn send_rollback(&mut self, id: u32, device: &DeviceId) {
        let command_id = self.new_command_id();
        let Some(r) = self.rollouts.get_mut(&id) else { return };
        let deployment_id = r.machine.deployment_id_of(device).unwrap_or(DeploymentId(0));
        r.commands.insert(command_id.0, device.to_string());
        let command = Command {
            command_id,
            issued_at_ms: now_ms(),
            body: CommandBody::Rollback(RollbackCommand {
                deployment_id,
                model: r.machine.plan().model.clone(),
                to_version_seq: None,
                reason: format!("rollout {id} rolled back"),
            }),
        };
        self.send(device, &command);
    }
}
