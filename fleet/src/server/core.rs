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
use super::driver::{AuditNote, DriverSettings, Effects, FleetView, RolloutDriver};
use super::models::{ModelRecord, model_key};
use super::quarantine::{Change, Refusal, RefusalKind};
use super::rebirth::MissedBirths;
use super::registry::{Applied, DeviceRecord, Retention, Uplink};
use super::requests::{ApiRequest, ApiResult};
use super::store::{Batch, FleetStore, StoreError};
use crate::drift::device::{DeviceDrift, StoredWindow};
use edgefleet_protocol::command::{Command, CommandBody, ProbationBudget};
use edgefleet_protocol::topic::{Namespace, Topic, TopicKind};
use edgefleet_protocol::{DeviceId, encode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    pub info: crate::api::status::ServerInfo,
}

/// The state owner.
pub struct Core {
    pub(super) cfg: CoreConfig,
    store: Arc<dyn FleetStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) devices: BTreeMap<DeviceId, DeviceRecord>,
    pub(super) models: BTreeMap<String, ModelRecord>,
    pub(super) driver: RolloutDriver,
    pub(super) audit_tail: Option<AuditEntry>,
    pub(super) dirty_devices: BTreeSet<DeviceId>,
    pub(super) dirty_models: BTreeSet<String>,
    dirty_rollouts: BTreeSet<u32>,
    new_audit: Vec<AuditEntry>,
    outbound: Vec<Outbound>,
    pub(super) counters: Counters,
    pub(super) command_ids: CommandIds,
    decided_in_batch: u64,
    health_arrived: bool,
    pub(super) drift: BTreeMap<DeviceId, DeviceDrift>,
    new_drift: Vec<(DeviceId, StoredWindow)>,
    drift_keep_from: BTreeMap<DeviceId, u64>,
    sample_seqs: BTreeMap<DeviceId, VecDeque<u64>>,
    new_samples: Vec<(DeviceId, edgefleet_protocol::uplink::SampleBatch)>,
    samples_keep_from: BTreeMap<DeviceId, u64>,
    label_seqs: BTreeMap<DeviceId, VecDeque<u64>>,
    new_labels: Vec<(DeviceId, edgefleet_protocol::uplink::SampleLabels)>,
    labels_keep_from: BTreeMap<DeviceId, u64>,
    missed_births: MissedBirths,
    /// Devices flagged for refused messages (cleared on the tick after a quiet spell).
    flagged: BTreeSet<DeviceId>,
    /// Devices two agents share (cleared on the tick once the second went quiet).
    duplicates: BTreeSet<DeviceId>,
}

/// Sample batches kept per device (at most 32 KiB each: ≤ 2 MiB per device).
const SAMPLE_BATCHES_PER_DEVICE: usize = 64;

/// Label messages kept per device (a device's labels for the samples it still has stored).
const LABEL_MESSAGES_PER_DEVICE: usize = 256;

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
        let mut label_seqs: BTreeMap<DeviceId, VecDeque<u64>> = BTreeMap::new();
        for (device, seq) in snapshot.label_seqs {
            label_seqs.entry(device).or_default().push_back(seq);
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
            label_seqs,
            new_labels: Vec::new(),
            labels_keep_from: BTreeMap::new(),
            missed_births: MissedBirths::default(),
            flagged: BTreeSet::new(),
            duplicates: BTreeSet::new(),
        };
        core.flagged = core.devices.values().filter(|d| d.quarantine.flagged.is_some()).map(|d| d.id.clone()).collect();
        core.duplicates = core.devices.values().filter(|d| d.boots.duplicate.is_some()).map(|d| d.id.clone()).collect();
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
            labels: std::mem::take(&mut self.new_labels),
            labels_keep_from: std::mem::take(&mut self.labels_keep_from).into_iter().collect(),
        };
        self.dirty_devices.clear();
        self.dirty_models.clear();
        self.dirty_rollouts.clear();
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.store.write(&batch)?;
        batch.audit.iter().for_each(super::decision_log::log);
        let took = started.elapsed().as_micros() as u64;
        self.counters.commits += 1;
        self.counters.commit_us_total += took;
        self.counters.commit_us_max = self.counters.commit_us_max.max(took);
        Ok(())
    }

    pub(super) fn audit(&mut self, actor: &str, action: &str, subject: String, detail: Value) {
        let entry = audit::next_entry(self.audit_tail.as_ref(), self.clock.now_ms(), actor, action, &subject, detail);
        self.audit_tail = Some(entry.clone());
        self.new_audit.push(entry);
    }

    /// Carries out what the rollout driver asked for (after the commit, by `apply_batch`).
    pub(super) fn apply(&mut self, effects: Effects) {
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
        let duplicate_before = record.boots.duplicate.is_some();
        let fresh = record.apply(uplink, now, retention) == Applied::Fresh;
        if !duplicate_before && let Some(dup) = &record.boots.duplicate {
            let detail =
                json!({"kept_boot_id": format!("{:016x}", dup.kept), "other_boot_id": format!("{:016x}", dup.other)});
            tracing::warn!(%device, "{}", dup.describe());
            self.duplicates.insert(device.clone());
            self.dirty_devices.insert(device.clone());
            self.audit("edgefleet", "device.duplicate", format!("device/{device}"), detail);
        }
        let Some(record) = self.devices.get_mut(&device) else { return };
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
            Uplink::Health(_) | Uplink::Sensor(_) => {
                self.health_arrived = true;
                return;
            }
            Uplink::Drift(summary) => {
                let model = summary.model.as_str();
                let alert_of = |core: &Self| core.drift.get(&device).and_then(|d| d.models.get(model)).map(|m| m.alert);
                let before = alert_of(self).unwrap_or(false);
                self.record_drift(device.clone(), (**summary).clone(), now);
                if let Some(after) = alert_of(self)
                    && after != before
                {
                    let reasons: Vec<String> = self
                        .drift
                        .get(&device)
                        .and_then(|d| d.models.get(model))
                        .map(|m| m.reasons.iter().map(|(f, why)| format!("{f}: {why}")).collect())
                        .unwrap_or_default();
                    let action = if after { "drift.alert" } else { "drift.cleared" };
                    let detail = json!({"model": model, "version_seq": summary.version_seq, "reasons": reasons});
                    self.audit("edgefleet", action, format!("device/{device}"), detail);
                }
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
            Uplink::Labels(labels) => {
                // Joined to the stored samples when they are read (a label may arrive before
                // or after its sample batch: they travel on different topics).
                let seqs = self.label_seqs.entry(device.clone()).or_default();
                seqs.push_back(labels.seq);
                while seqs.len() > LABEL_MESSAGES_PER_DEVICE {
                    seqs.pop_front();
                }
                if let Some(oldest) = seqs.front() {
                    self.labels_keep_from.insert(device.clone(), *oldest);
                }
                self.new_labels.push((device, (**labels).clone()));
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
        for device in self.duplicates.clone() {
            let Some(record) = self.devices.get_mut(&device) else { continue };
            if record.boots.tick(now) {
                self.duplicates.remove(&device);
                self.dirty_devices.insert(device.clone());
                tracing::info!(%device, "duplicate device id cleared: the second agent has been quiet for 10 minutes");
                self.audit("edgefleet", "device.duplicate_cleared", format!("device/{device}"), json!({}));
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

    pub(super) fn send(&mut self, device: &DeviceId, command: &Command) {
        match encode(command) {
            Ok(payload) => {
                self.counters.commands_sent += 1;
                self.outbound.push(Outbound { topic: self.command_topic(device), payload });
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a command"),
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
