//! The rollout driver: owns every rollout record and turns what happens in the fleet (device
//! messages, operator requests, time) into events for each rollout's pure state machine
//! ([`crate::rollout::Rollout`]), then turns the machine's actions into [`Effects`]: commands to
//! send, audit entries to append, records to write. It does no I/O, reads no clock (`now_ms`
//! is passed in) and never calls back into the core, which applies the effects after the
//! batch's commit.
//!
//! Invariants:
//! - A rollout record is changed only here; every change names the record in
//!   [`Effects::writes`], so the core persists it in the same transaction as the audit entries
//!   that explain it.
//! - Each target device has at most one live command id per rollout (the latest deploy or
//!   rollback sent to it); an ack of a superseded command, or from another device than the one
//!   the command went to, changes nothing. So the ack index is bounded by the targets and
//!   looked up by id, never scanned.

use super::command_ids::CommandIds;
use super::registry::{DeviceRecord, describe_ack};
use super::rollouts::{HoldTally, RolloutRecord, event_for_state};
use crate::drift::device::DeviceDrift;
use crate::rollout::machine::TrackPhase;
use crate::rollout::{Action, CohortFigures, DeviceState, Event, RolloutStatus};
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::command::{Command, CommandBody, CommandId, DeployCommand, DeploymentId, RollbackCommand};
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::uplink::{AckResult, CommandAck, DeploymentStatus, ModelHealth};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Operator commands on a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutOp {
    /// Stop dispatching and promoting.
    Pause,
    /// Undo pause.
    Resume,
    /// Stop for good, leaving devices as they are.
    Abort,
    /// Stop and roll every committed device back.
    Rollback,
    /// Promote held tracks (all, or the one named), overriding an inconclusive gate.
    Promote,
}

impl RolloutOp {
    /// The operation as an operator says it (`pause`, `roll back`).
    pub fn word(self) -> &'static str {
        match self {
            RolloutOp::Pause => "pause",
            RolloutOp::Resume => "resume",
            RolloutOp::Abort => "abort",
            RolloutOp::Rollback => "roll back",
            RolloutOp::Promote => "promote",
        }
    }
}

/// An audit entry the driver asks for (the core chains and stores it).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditNote {
    /// Who: an operator, or `edgefleet` for automatic decisions.
    pub actor: String,
    /// What, e.g. `rollout.promote`.
    pub action: &'static str,
    /// On what, e.g. `rollout/3`.
    pub subject: String,
    /// The evidence.
    pub detail: Value,
}

/// What the core must do after a driver call.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Commands to publish, in order.
    pub commands: Vec<(DeviceId, Command)>,
    /// Audit entries to append, in order.
    pub audit: Vec<AuditNote>,
    /// Rollout records that changed (persist them).
    pub writes: BTreeSet<u32>,
    /// Gate decisions taken (promote, track completed or rolled back, gate failed).
    pub gate_decisions: u64,
}

impl Effects {
    /// Appends `other`.
    pub fn extend(&mut self, other: Effects) {
        self.commands.extend(other.commands);
        self.audit.extend(other.audit);
        self.writes.extend(other.writes);
        self.gate_decisions += other.gate_decisions;
    }
}

/// Why an operator request on a rollout was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    /// No such rollout.
    #[error("no rollout {0}")]
    UnknownRollout(u32),
    /// The rollout's state does not allow it.
    #[error("rollout {id} is {}: cannot {} it", status.words(), op.word())]
    NotAllowed {
        /// The rollout.
        id: u32,
        /// Its state.
        status: RolloutStatus,
        /// What was asked.
        op: RolloutOp,
    },
    /// `promote` found no track held at a gate.
    #[error(
        "rollout {id}: no running track is held at a gate{}; promote only overrides a holding gate, never a failed one",
        track.map(|t| format!(" on {t}")).unwrap_or_default()
    )]
    NothingHeld {
        /// The rollout.
        id: u32,
        /// The track asked for, if one was.
        track: Option<HardwareClass>,
    },
}

/// The driver's settings.
#[derive(Debug, Clone, Copy)]
pub struct DriverSettings {
    /// Silence after which a dispatched device counts as unreachable.
    pub unreachable_after_ms: u64,
}

/// The device-side data cohort figures are computed from (borrowed from the core).
#[derive(Debug, Clone, Copy)]
pub struct FleetView<'a> {
    /// Every device.
    pub devices: &'a BTreeMap<DeviceId, DeviceRecord>,
    /// Drift (and ground-truth feedback) per device.
    pub drift: &'a BTreeMap<DeviceId, DeviceDrift>,
}

/// Time, command ids and the effects gathered during one driver call.
struct Step<'a> {
    now: u64,
    ids: &'a mut CommandIds,
    fx: Effects,
    /// For an operator's rollback: the devices as they are now, so a device that moved on to
    /// another version since is left alone.
    fleet: Option<FleetView<'a>>,
}

/// Owns the rollout records.
#[derive(Debug)]
pub struct RolloutDriver {
    settings: DriverSettings,
    records: BTreeMap<u32, RolloutRecord>,
    /// Live command id → (rollout, device), rebuilt from the records at load.
    commands: BTreeMap<CommandId, (u32, DeviceId)>,
}

impl RolloutDriver {
    /// A driver over the stored records.
    pub fn new(settings: DriverSettings, records: impl IntoIterator<Item = RolloutRecord>) -> Self {
        let records: BTreeMap<u32, RolloutRecord> = records.into_iter().map(|r| (r.id, r)).collect();
        let commands = records
            .values()
            .flat_map(|r| r.latest_commands.iter().map(|(device, c)| (*c, (r.id, device.clone()))))
            .collect();
        RolloutDriver { settings, records, commands }
    }

    /// One rollout.
    pub fn get(&self, id: u32) -> Option<&RolloutRecord> {
        self.records.get(&id)
    }

    /// Every rollout, by id.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &RolloutRecord> {
        self.records.values()
    }

    /// The id the next rollout gets.
    pub fn next_id(&self) -> u32 {
        self.records.keys().next_back().map_or(1, |last| last + 1)
    }

    /// The unfinished rollout of `model`, if any (one at a time per model).
    pub fn active_for_model(&self, model: &str) -> Option<&RolloutRecord> {
        self.records.values().find(|r| r.finished_at_ms.is_none() && r.request.model == model)
    }

    fn active_ids(&self) -> Vec<u32> {
        self.records.values().filter(|r| r.finished_at_ms.is_none()).map(|r| r.id).collect()
    }

    /// Adds a new rollout and starts it.
    pub fn start(&mut self, record: RolloutRecord, now_ms: u64, ids: &mut CommandIds) -> Effects {
        let id = record.id;
        self.records.insert(id, record);
        let mut step = Step { now: now_ms, ids, fx: Effects::default(), fleet: None };
        step.fx.writes.insert(id);
        self.handle(id, Event::Tick { now_ms }, &mut step);
        self.handle(id, Event::Start, &mut step);
        step.fx
    }

    /// A device (re)announced itself: it may have missed its deploy command.
    pub fn on_birth(&mut self, device: &DeviceId, now_ms: u64, ids: &mut CommandIds) -> Effects {
        let mut step = Step { now: now_ms, ids, fx: Effects::default(), fleet: None };
        for id in self.active_ids() {
            let in_flight = self.records.get(&id).and_then(|r| r.machine.device_state(device));
            if matches!(in_flight, Some(DeviceState::Dispatched | DeviceState::Installing)) {
                self.send_deploy(id, device, &mut step);
            }
        }
        step.fx
    }

    /// A device reported a deployment's progress.
    pub fn on_deployment(
        &mut self,
        device: &DeviceId,
        status: &DeploymentStatus,
        now_ms: u64,
        ids: &mut CommandIds,
    ) -> Effects {
        let mut step = Step { now: now_ms, ids, fx: Effects::default(), fleet: None };
        // A deployment id carries its rollout id in its upper half (`Rollout::deployment_id`).
        let id = (status.deployment_id.0 >> 32) as u32;
        let Some(r) = self.records.get_mut(&id) else { return step.fx };
        if r.machine.deployment_id_of(device) != Some(status.deployment_id) {
            return step.fx;
        }
        let current = r.machine.device_state(device);
        r.last_heard_ms.insert(device.clone(), now_ms);
        if let Some(event) = event_for_state(device, &status.state, current) {
            if let Event::DeviceFailed { reason, .. } = &event {
                r.failures.insert(device.clone(), reason.clone());
            }
            if matches!(event, Event::DeviceCommitted { .. } | Event::DeviceFailed { .. }) {
                r.last_heard_ms.remove(device);
            }
            self.handle(id, event, &mut step);
        }
        step.fx.writes.insert(id);
        step.fx
    }

    /// A device acknowledged a command.
    pub fn on_ack(&mut self, device: &DeviceId, ack: &CommandAck, now_ms: u64, ids: &mut CommandIds) -> Effects {
        let mut step = Step { now: now_ms, ids, fx: Effects::default(), fleet: None };
        let Some((id, addressee)) = self.commands.get(&ack.command_id).cloned() else { return step.fx };
        if &addressee != device {
            return step.fx; // not the device the command went to
        }
        let Some(r) = self.records.get_mut(&id) else { return step.fx };
        if let AckResult::Rejected(reason) = &ack.result {
            let reason = format!("command {}", describe_ack(&AckResult::Rejected(reason.clone())));
            r.failures.insert(device.clone(), reason.clone());
            r.last_heard_ms.remove(device);
            step.fx.writes.insert(id);
            self.handle(id, Event::DeviceFailed { device: device.clone(), reason }, &mut step);
        } else if let Some(heard) = r.last_heard_ms.get_mut(device) {
            *heard = now_ms;
            step.fx.writes.insert(id);
        }
        step.fx
    }

    /// The broker connection came back: every in-flight device gets its deploy again, and a
    /// fresh silence budget (the fleet manager was away, not the devices).
    pub fn reconnected(&mut self, now_ms: u64, ids: &mut CommandIds) -> Effects {
        let mut step = Step { now: now_ms, ids, fx: Effects::default(), fleet: None };
        for id in self.active_ids() {
            let Some(r) = self.records.get_mut(&id) else { continue };
            if r.machine.status() != RolloutStatus::Running {
                continue;
            }
            let devices = r.in_flight();
            for d in &devices {
                r.last_heard_ms.insert(d.clone(), now_ms);
            }
            for device in devices {
                self.send_deploy(id, &device, &mut step);
            }
            step.fx.writes.insert(id);
        }
        step.fx
    }

    /// Time passed: silent devices become unreachable, bakes and gates are evaluated. With
    /// `health_changed`, cohort figures are recomputed from `fleet` first.
    pub fn tick(&mut self, now_ms: u64, health_changed: Option<FleetView<'_>>, ids: &mut CommandIds) -> Effects {
        let mut step = Step { now: now_ms, ids, fx: Effects::default(), fleet: None };
        if let Some(fleet) = health_changed {
            self.update_cohorts(fleet, &mut step);
        }
        for id in self.active_ids() {
            let Some(r) = self.records.get(&id) else { continue };
            let silent: Vec<DeviceId> = r
                .last_heard_ms
                .iter()
                .filter(|(_, heard)| now_ms.saturating_sub(**heard) >= self.settings.unreachable_after_ms)
                .filter(|(d, _)| {
                    matches!(r.machine.device_state(d), Some(DeviceState::Dispatched | DeviceState::Installing))
                })
                .map(|(d, _)| d.clone())
                .collect();
            for device in silent {
                if let Some(r) = self.records.get_mut(&id) {
                    r.last_heard_ms.remove(&device);
                }
                self.handle(id, Event::DeviceUnreachable { device }, &mut step);
            }
            self.handle(id, Event::Tick { now_ms }, &mut step);
        }
        step.fx
    }

    /// An operator pauses, resumes, aborts or rolls back rollout `id` (not `Promote`: see
    /// [`Self::promote`]). A rollback undoes only what this rollout installed, and only where
    /// the device still runs it (by `fleet`); every other device is skipped with the reason.
    /// An aborted rollout can still be rolled back.
    #[allow(clippy::too_many_arguments)]
    pub fn operate(
        &mut self,
        id: u32,
        op: RolloutOp,
        actor: &str,
        reason: &str,
        fleet: FleetView<'_>,
        now_ms: u64,
        ids: &mut CommandIds,
    ) -> Result<Effects, DriverError> {
        let r = self.records.get(&id).ok_or(DriverError::UnknownRollout(id))?;
        let status = r.machine.status();
        let (event, name) = match op {
            RolloutOp::Pause if matches!(status, RolloutStatus::Created | RolloutStatus::Running) => {
                (Event::Pause, "rollout.pause")
            }
            RolloutOp::Resume if status == RolloutStatus::Paused => (Event::Resume, "rollout.resume"),
            RolloutOp::Abort if r.finished_at_ms.is_none() => (Event::Abort, "rollout.abort"),
            RolloutOp::Rollback if status != RolloutStatus::RolledBack => (Event::Rollback, "rollout.rollback"),
            _ => return Err(DriverError::NotAllowed { id, status, op }),
        };
        let mut step = Step { now: now_ms, ids, fx: Effects::default(), fleet: Some(fleet) };
        step.fx.audit.push(AuditNote {
            actor: actor.to_string(),
            action: name,
            subject: format!("rollout/{id}"),
            detail: json!({"reason": reason, "status_before": status}),
        });
        step.fx.writes.insert(id);
        self.handle(id, event, &mut step);
        if op == RolloutOp::Resume {
            // Devices may have answered while paused: re-evaluate right away.
            self.handle(id, Event::Tick { now_ms }, &mut step);
        }
        Ok(step.fx)
    }

    /// An operator promotes the tracks of rollout `id` held at a gate (all, or `track`).
    pub fn promote(
        &mut self,
        id: u32,
        track: Option<HardwareClass>,
        actor: &str,
        reason: &str,
        now_ms: u64,
        ids: &mut CommandIds,
    ) -> Result<Effects, DriverError> {
        let r = self.records.get(&id).ok_or(DriverError::UnknownRollout(id))?;
        let held: Vec<_> = r
            .machine
            .tracks()
            .iter()
            .filter(|t| track.is_none_or(|hw| hw == t.hardware))
            .filter(|t| matches!(t.phase, TrackPhase::Gating { last: Some(_), .. }))
            .map(|t| (t.hardware, t.stage, r.decisions.get(&t.hardware.to_string()).cloned()))
            .collect();
        if held.is_empty() || r.machine.status() != RolloutStatus::Running {
            return Err(DriverError::NothingHeld { id, track });
        }
        let mut step = Step { now: now_ms, ids, fx: Effects::default(), fleet: None };
        step.fx.writes.insert(id);
        for (hw, stage, decision) in held {
            step.fx.audit.push(AuditNote {
                actor: actor.to_string(),
                action: "rollout.promote_override",
                subject: format!("rollout/{id}"),
                detail: json!({"track": hw, "stage": stage + 1, "reason": reason, "overridden": decision}),
            });
            self.handle(id, Event::Promote { track: hw, stage }, &mut step);
        }
        Ok(step.fx)
    }

    /// Recomputes the cohort figures of every running rollout with a health gate from the
    /// devices' latest health reports, and tells the machine when they changed.
    fn update_cohorts(&mut self, fleet: FleetView<'_>, step: &mut Step<'_>) {
        for id in self.active_ids() {
            let Some(r) = self.records.get(&id) else { continue };
            if r.machine.plan().health.is_none() || r.machine.status() != RolloutStatus::Running {
                continue;
            }
            let model = r.machine.plan().model.to_string();
            let version = r.machine.plan().version_seq;
            let mut events = Vec::new();
            for track in r.machine.tracks() {
                let (mut new, mut control) = (CohortSum::default(), CohortSum::default());
                for (target, state) in r.machine.targets().filter(|(t, _)| t.hardware == track.hardware) {
                    let Some(device) = fleet.devices.get(&target.device) else { continue };
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
                    if let Some(drift) = fleet.drift.get(&target.device) {
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
                self.handle(id, event, step);
            }
        }
    }

    /// Feeds `event` to rollout `id` and carries out the actions.
    fn handle(&mut self, id: u32, event: Event, step: &mut Step<'_>) {
        let Some(r) = self.records.get_mut(&id) else { return };
        let is_tick = matches!(event, Event::Tick { .. });
        let actions = r.machine.handle(event);
        if actions.is_empty() && is_tick {
            return; // a tick that changed nothing but the clock: not worth a write
        }
        step.fx.writes.insert(id);
        for action in actions {
            if let Some(r) = self.records.get_mut(&id) {
                r.note_decision(&action, step.now);
            }
            self.perform(id, action, step);
        }
        if let Some(r) = self.records.get_mut(&id)
            && r.finished_at_ms.is_none()
            && matches!(
                r.machine.status(),
                RolloutStatus::Completed | RolloutStatus::Stopped | RolloutStatus::Aborted | RolloutStatus::RolledBack
            )
        {
            r.finished_at_ms = Some(step.now);
            r.last_heard_ms.clear();
        }
    }

    fn perform(&mut self, id: u32, action: Action, step: &mut Step<'_>) {
        if matches!(
            action,
            Action::Promoted { .. }
                | Action::TrackCompleted { .. }
                | Action::TrackRolledBack { .. }
                | Action::Paused { track: Some(_), .. }
        ) {
            step.fx.gate_decisions += 1;
        }
        let (action, detail) = match action {
            Action::Dispatch { device, deployment_id: _ } => {
                if let Some(r) = self.records.get_mut(&id) {
                    r.last_heard_ms.insert(device.clone(), step.now);
                }
                self.send_deploy(id, &device, step);
                return;
            }
            Action::RollBackDevice { device } => {
                if let Some(skipped) = self.moved_on(id, &device, step)
                    && let Some(r) = self.records.get_mut(&id)
                {
                    r.rollback_skipped.insert(device, skipped);
                    return;
                }
                self.send_rollback(id, &device, step);
                return;
            }
            Action::Promoted { track, stage, evidence } => {
                ("rollout.promote", json!({"track": track, "stage": stage + 1, "evidence": evidence}))
            }
            Action::TrackCompleted { track, evidence } => {
                ("rollout.track_completed", json!({"track": track, "evidence": evidence}))
            }
            Action::Held { track, reason, evidence } => {
                // The same hold decided again (its evidence moving) is counted, not re-audited.
                let reason = reason.words().to_string();
                if let Some(r) = self.records.get_mut(&id) {
                    match r.holds.get_mut(&track.to_string()) {
                        Some(tally) if tally.reason == reason => {
                            tally.repeats += 1;
                            return;
                        }
                        _ => {
                            r.holds.insert(track.to_string(), HoldTally { reason: reason.clone(), repeats: 0 });
                        }
                    }
                }
                ("rollout.hold", json!({"track": track, "reason": reason, "evidence": evidence}))
            }
            Action::HoldExpired { track, reason, held_ms } => {
                ("rollout.hold_expired", json!({"track": track, "reason": reason.words(), "held_ms": held_ms}))
            }
            Action::Paused { track, reason, evidence } => {
                let detail = json!({"track": track, "reason": reason.words(), "evidence": evidence});
                (if track.is_some() { "rollout.gate_failed" } else { "rollout.paused" }, detail)
            }
            Action::TrackRolledBack { track, evidence } => (
                "rollout.gate_failed_rollback",
                json!({"track": track, "reason": "gate failed; committed devices told to roll back", "evidence": evidence}),
            ),
            Action::Completed => ("rollout.completed", json!({})),
            Action::Aborted => ("rollout.stopped", json!({})),
        };
        let detail = self.with_hold_tally(id, action, detail);
        step.fx.audit.push(AuditNote { actor: "edgefleet".into(), action, subject: format!("rollout/{id}"), detail });
    }

    /// A decision that ends a track's hold carries how often the hold was decided again.
    fn with_hold_tally(&mut self, id: u32, action: &str, mut detail: Value) -> Value {
        if action == "rollout.hold" {
            return detail;
        }
        let Some(r) = self.records.get_mut(&id) else { return detail };
        let Some(track) = detail.get("track").and_then(|t| serde_json::from_value::<HardwareClass>(t.clone()).ok())
        else {
            return detail;
        };
        if let Some(tally) = r.holds.remove(&track.to_string())
            && let Some(map) = detail.as_object_mut()
        {
            map.insert("held_before".into(), json!({"reason": tally.reason, "repeats": tally.repeats}));
        }
        detail
    }

    /// Why an operator's rollback leaves `device` alone: it no longer runs this rollout's
    /// version (a later rollout moved it on, or it went back by itself). None: roll it back.
    fn moved_on(&self, id: u32, device: &DeviceId, step: &Step<'_>) -> Option<String> {
        let fleet = step.fleet?;
        let plan = self.records.get(&id)?.machine.plan();
        let model = plan.model.as_str();
        match fleet.devices.get(device).and_then(|d| d.served_version(model)) {
            Some(v) if v == plan.version_seq => None,
            Some(v) => Some(format!("skipped: runs {model} version {v} now, not this rollout's {}", plan.version_seq)),
            None => Some(format!("skipped: no longer serves {model}")),
        }
    }

    /// Sends `body` to `device` as rollout `id`'s live command for it (superseding the last).
    fn send(&mut self, id: u32, device: &DeviceId, body: CommandBody, step: &mut Step<'_>) {
        let command_id = step.ids.next_id();
        let Some(r) = self.records.get_mut(&id) else { return };
        if let Some(superseded) = r.latest_commands.insert(device.clone(), command_id) {
            self.commands.remove(&superseded);
        }
        self.commands.insert(command_id, (id, device.clone()));
        step.fx.writes.insert(id);
        step.fx.commands.push((device.clone(), Command { command_id, issued_at_ms: step.now, body }));
    }

    fn send_deploy(&mut self, id: u32, device: &DeviceId, step: &mut Step<'_>) {
        let Some(r) = self.records.get(&id) else { return };
        let Some(deployment_id) = r.machine.deployment_id_of(device) else { return };
        let plan = r.machine.plan();
        let body = CommandBody::Deploy(DeployCommand {
            deployment_id,
            model: plan.model.clone(),
            version_seq: plan.version_seq,
            package_id: r.package_id,
            head_size: r.head_size,
            probation: r.probation,
            downgrade: None,
        });
        self.send(id, device, body, step);
    }

    fn send_rollback(&mut self, id: u32, device: &DeviceId, step: &mut Step<'_>) {
        let Some(r) = self.records.get(&id) else { return };
        let body = CommandBody::Rollback(RollbackCommand {
            deployment_id: r.machine.deployment_id_of(device).unwrap_or(DeploymentId(0)),
            model: r.machine.plan().model.clone(),
            to_version_seq: None,
            reason: format!("rollout {id} rolled back"),
        });
        self.send(id, device, body, step);
    }
}

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
    fn add(&mut self, m: &ModelHealth) {
        self.devices += 1;
        self.inferences += m.inference_count;
        self.errors += m.error_count;
        // p99 is over the device's last report window; 0 means the window was empty.
        if m.latency_p99_us > 0 {
            self.p99s.push(m.latency_p99_us);
        }
    }

    fn figures(mut self) -> CohortFigures {
        self.p99s.sort_unstable();
        CohortFigures {
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

#[cfg(test)]
mod tests;
