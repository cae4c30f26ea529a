//! The rollout state machine: `Rollout::handle(event) -> Vec<Action>`.
//!
//! Targets are split into one **track per hardware class**; each track walks the stages on its
//! own: dispatch its share (rate-limited across the rollout) → wait until every dispatched
//! device resolved (committed, failed or unreachable) → bake `bake_ms` (driven by `Tick`) →
//! gate → promote, hold, or fail (pause or roll back, per the plan).
//!
//! The state is plain data (serde), changes only through [`Rollout::handle`], and depends only
//! on the events seen, so [`Rollout::replay`] over a persisted event log rebuilds it exactly.
//! Events are idempotent: the same event twice changes nothing the second time, and events
//! about unknown devices are ignored.

use super::plan::{HealthGate, OnFail, PlanError, RolloutPlan};
use super::stats::{wilson, z_for_confidence};
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::command::DeploymentId;
use edgefleet_protocol::hardware::HardwareClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Identifies a rollout; deployment ids are derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RolloutId(pub u32);

/// A device the rollout targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The device.
    pub device: DeviceId,
    /// Its hardware class (selects its track).
    pub hardware: HardwareClass,
}

/// What the rollout is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// Begin dispatching.
    Start,
    /// Time passed; `now_ms` only moves forward (an older tick is ignored).
    Tick {
        /// Current time in milliseconds (any epoch, as long as it is the same for the whole log).
        now_ms: u64,
    },
    /// The device acknowledged the deploy command.
    DeviceAccepted {
        /// The device.
        device: DeviceId,
    },
    /// The device is downloading or installing.
    DeviceInstalling {
        /// The device.
        device: DeviceId,
    },
    /// The device activated the new version and passed probation.
    DeviceCommitted {
        /// The device.
        device: DeviceId,
    },
    /// The install failed, or probation rolled the device back.
    DeviceFailed {
        /// The device.
        device: DeviceId,
        /// What the device said.
        reason: String,
    },
    /// The device did not answer (offline, timed out); never counted as a failure.
    DeviceUnreachable {
        /// The device.
        device: DeviceId,
    },
    /// Operator: stop dispatching and promoting until `Resume`.
    Pause,
    /// Operator: undo `Pause`.
    Resume,
    /// Operator: stop the rollout for good, leaving devices as they are.
    Abort,
    /// Operator: stop the rollout and roll every committed device back.
    Rollback,
    /// Inference figures of a track's cohorts, computed by the driver from health reports:
    /// `new` = its devices that committed the new version, `control` = its devices still on
    /// the old one. Replaces the previous figures (an empty control keeps the last non-empty
    /// one, so the last stage still has a baseline).
    CohortHealth {
        /// The track.
        track: HardwareClass,
        /// Devices on the new version.
        new: CohortFigures,
        /// Devices on the old version.
        control: CohortFigures,
    },
    /// Operator: promote a track whose gate holds (inconclusive or short of samples) at
    /// `stage`, overriding the hold. Ignored unless that track is gating at that stage and its
    /// gate has not failed: an operator can break a tie, never overrule a failed gate.
    Promote {
        /// The track.
        track: HardwareClass,
        /// The stage the operator saw holding (makes the event idempotent).
        stage: usize,
    },
}

/// What the rollout asks its driver to do or report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Send the deploy command.
    Dispatch {
        /// The device.
        device: DeviceId,
        /// Its deployment id (deterministic from rollout id and target index).
        deployment_id: DeploymentId,
    },
    /// Roll the device back to its last-known-good model.
    RollBackDevice {
        /// The device.
        device: DeviceId,
    },
    /// A track's gate passed and it entered the next stage.
    Promoted {
        /// The track.
        track: HardwareClass,
        /// Index of the stage now entered.
        stage: usize,
        /// The evidence of the gate that passed.
        evidence: GateEvidence,
    },
    /// A track's gate passed on its last stage: every device of the track was reached.
    TrackCompleted {
        /// The track.
        track: HardwareClass,
        /// The evidence of the last gate.
        evidence: GateEvidence,
    },
    /// A track's gate could not decide or a budget is exceeded; it waits for more evidence.
    Held {
        /// The track.
        track: HardwareClass,
        /// Why.
        reason: HoldReason,
        /// The numbers.
        evidence: GateEvidence,
    },
    /// Dispatching stopped: the operator paused the rollout (`track` None), or a track's gate
    /// failed under `on_fail = pause` (that track stops for good).
    Paused {
        /// The failed track, or None for the whole rollout.
        track: Option<HardwareClass>,
        /// Why.
        reason: PauseReason,
        /// The gate evidence, for gate failures.
        evidence: Option<GateEvidence>,
    },
    /// A track held longer than the plan's `max_hold_ms`: it fails by its deadline, and the
    /// `Paused` or `TrackRolledBack` of its `on_hold_timeout` follows.
    HoldExpired {
        /// The track.
        track: HardwareClass,
        /// The hold that expired.
        reason: HoldReason,
        /// How long the gate had been deciding, in milliseconds.
        held_ms: u64,
    },
    /// A track's gate failed under `on_fail = rollback`: its committed devices were told to roll
    /// back (the `RollBackDevice` actions before this one) and the track stopped for good.
    TrackRolledBack {
        /// The track.
        track: HardwareClass,
        /// The failing gate's numbers.
        evidence: GateEvidence,
    },
    /// Every track completed every stage.
    Completed,
    /// The operator aborted (or rolled back) the rollout.
    Aborted,
}

/// Inference counters of one cohort (sums over its devices' latest health reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortFigures {
    /// Devices in the cohort, with or without figures yet.
    #[serde(default)]
    pub members: u32,
    /// Devices that reported figures.
    pub devices: u32,
    /// Inferences run.
    pub inferences: u64,
    /// Inferences that failed.
    pub errors: u64,
    /// Median over devices of each device's p99 latency, microseconds.
    pub p99_us: Option<u32>,
    /// Inferences that received a ground-truth label (from drift windows).
    #[serde(default)]
    pub labelled: u64,
    /// Of those, predicted correctly.
    #[serde(default)]
    pub correct: u64,
}

/// A track's latest cohort figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohorts {
    /// Devices on the new version.
    pub new: CohortFigures,
    /// The last non-empty control cohort.
    pub control: Option<CohortFigures>,
    /// Members of the control cohort in the latest report (0: nobody runs an older version).
    #[serde(default)]
    pub control_members: u32,
    /// True once the driver reported figures for this track.
    #[serde(default)]
    pub reported: bool,
}

/// What the health gate concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthVerdict {
    /// The new version is not worse beyond the tolerances.
    #[serde(alias = "Fine")]
    Fine,
    /// The new cohort's error rate or p99 is worse beyond the tolerance.
    #[serde(alias = "Regressed")]
    Regressed,
    /// The new cohort has run too few inferences.
    #[serde(alias = "InsufficientInferences")]
    InsufficientInferences,
    /// The error-rate bounds straddle the tolerance.
    #[serde(alias = "Inconclusive")]
    Inconclusive,
    /// Nobody in the track runs an older version (a first install, or a single 100% stage
    /// with no earlier figures): nothing to compare against.
    #[serde(alias = "NoControl")]
    NoControl,
}

/// The numbers the health gate decided on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEvidence {
    /// The gate's settings.
    pub gate: HealthGate,
    /// Devices on the new version.
    pub new: CohortFigures,
    /// Devices on the old version.
    pub control: Option<CohortFigures>,
    /// Wilson bounds of the new cohort's error rate.
    pub new_error_rate: (f64, f64),
    /// Wilson bounds of the control cohort's error rate.
    pub control_error_rate: Option<(f64, f64)>,
    /// New p99 over control p99.
    pub p99_ratio: Option<f64>,
    /// Newcombe interval of the labelled-accuracy difference new − control (when both
    /// cohorts have labels).
    #[serde(default)]
    pub accuracy_delta: Option<(f64, f64)>,
    /// The conclusion.
    pub verdict: HealthVerdict,
}

/// The health verdict from the error/latency part and the optional accuracy part: a
/// regression in either fails, then missing evidence holds, then doubt holds.
fn combine(base: HealthVerdict, accuracy: Option<HealthVerdict>, reported: bool) -> HealthVerdict {
    use HealthVerdict::*;
    let Some(accuracy) = accuracy else { return base };
    match (base, accuracy) {
        _ if !reported => InsufficientInferences,
        (Regressed, _) | (_, Regressed) => Regressed,
        (InsufficientInferences, _) | (_, InsufficientInferences) => InsufficientInferences,
        (Inconclusive, _) | (_, Inconclusive) => Inconclusive,
        (b, _) => b,
    }
}

/// Why a track holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Fewer completed devices than the gate needs.
    #[serde(alias = "InsufficientSample")]
    InsufficientSample,
    /// The new version's cohort has run fewer inferences than the health gate needs.
    #[serde(alias = "InsufficientInferences")]
    InsufficientInferences,
    /// The failure-rate bounds straddle the threshold.
    #[serde(alias = "Inconclusive")]
    Inconclusive,
    /// Too many dispatched devices never answered.
    #[serde(alias = "UnreachableBudget")]
    UnreachableBudget,
}

/// Why dispatching paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The operator asked.
    #[serde(alias = "Operator")]
    Operator,
    /// The failure rate's lower bound exceeds the threshold.
    #[serde(alias = "GateFailed")]
    GateFailed,
    /// A hold outlived the plan's `max_hold_ms`.
    #[serde(alias = "HoldExpired")]
    HoldExpired,
}

impl PauseReason {
    /// The reason in words, for people and the audit log.
    pub fn words(self) -> &'static str {
        match self {
            PauseReason::Operator => "paused by the operator",
            PauseReason::GateFailed => "gate failed",
            PauseReason::HoldExpired => "hold expired",
        }
    }
}

impl HoldReason {
    /// The reason in words, for people and the audit log (the blocking numbers are in the
    /// evidence; see the fleet's `hold_text`).
    pub fn words(self) -> &'static str {
        match self {
            HoldReason::InsufficientSample => "too few completed devices",
            HoldReason::InsufficientInferences => "too little inference evidence",
            HoldReason::Inconclusive => "inconclusive",
            HoldReason::UnreachableBudget => "too many unreachable devices",
        }
    }
}

/// The numbers a gate decided on (cumulative over the track's dispatched devices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateEvidence {
    /// Index of the stage evaluated.
    pub stage: usize,
    /// Its share, in percent.
    pub stage_percent: u8,
    /// Devices in the track.
    pub track_size: u32,
    /// Devices dispatched so far.
    pub dispatched: u32,
    /// Committed (installed and through probation).
    pub committed: u32,
    /// Failed (install or probation).
    pub failed: u32,
    /// Never answered.
    pub unreachable: u32,
    /// Completed devices the gate needed: `min_sample`, or every reachable device of the
    /// stage's share when the share is smaller.
    pub required_sample: u32,
    /// True when every device of the track was dispatched and every reachable one completed:
    /// the failure rate is then observed, not estimated, and both bounds equal it.
    pub census: bool,
    /// Wilson lower bound of the failure rate over completed devices.
    pub failure_lower: f64,
    /// Wilson upper bound of the failure rate over completed devices.
    pub failure_upper: f64,
    /// The plan's threshold.
    pub max_failure_rate: f64,
    /// Unreachable over dispatched.
    pub unreachable_rate: f64,
    /// The plan's unreachable budget.
    pub max_unreachable_rate: f64,
    /// Confidence of the bounds.
    pub confidence: f64,
    /// The inference-health comparison, when the plan has a health gate.
    #[serde(default)]
    pub health: Option<Box<HealthEvidence>>,
}

/// Where one device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Not dispatched yet.
    #[serde(alias = "Pending")]
    Pending,
    /// Deploy command sent, no answer yet.
    #[serde(alias = "Dispatched")]
    Dispatched,
    /// Accepted or installing (still in flight).
    #[serde(alias = "Installing")]
    Installing,
    /// Running the new version after probation.
    #[serde(alias = "Committed")]
    Committed,
    /// Install or probation failed.
    #[serde(alias = "Failed")]
    Failed,
    /// No answer; may still answer later.
    #[serde(alias = "Unreachable")]
    Unreachable,
    /// Committed, then rolled back by the rollout.
    #[serde(alias = "RolledBack")]
    RolledBack,
}

impl DeviceState {
    /// The state's JSON name (`rolled_back`), also the key of per-state counts.
    pub fn key(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Dispatched => "dispatched",
            DeviceState::Installing => "installing",
            DeviceState::Committed => "committed",
            DeviceState::Failed => "failed",
            DeviceState::Unreachable => "unreachable",
            DeviceState::RolledBack => "rolled_back",
        }
    }
    fn in_flight(self) -> bool {
        matches!(self, DeviceState::Dispatched | DeviceState::Installing)
    }
    fn dispatched(self) -> bool {
        self != DeviceState::Pending
    }
}

/// The rollout as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// Created, waiting for `Start`.
    #[serde(alias = "Created")]
    Created,
    /// Dispatching and gating.
    #[serde(alias = "Running")]
    Running,
    /// Paused by the operator.
    #[serde(alias = "Paused")]
    Paused,
    /// Every track completed.
    #[serde(alias = "Completed")]
    Completed,
    /// Every track finished, at least one by a failed gate.
    #[serde(alias = "Stopped")]
    Stopped,
    /// Aborted by the operator.
    #[serde(alias = "Aborted")]
    Aborted,
    /// Rolled back by the operator.
    #[serde(alias = "RolledBack")]
    RolledBack,
}

impl RolloutStatus {
    /// The status in words, for people (`rolled back`, not `RolledBack`; `Stopped` is a
    /// rollout whose gate failed: `failed`).
    pub fn words(self) -> &'static str {
        match self {
            RolloutStatus::Created => "created",
            RolloutStatus::Running => "running",
            RolloutStatus::Paused => "paused",
            RolloutStatus::Completed => "completed",
            RolloutStatus::Stopped => "failed",
            RolloutStatus::Aborted => "aborted",
            RolloutStatus::RolledBack => "rolled back",
        }
    }

    fn terminal(self) -> bool {
        matches!(
            self,
            RolloutStatus::Completed | RolloutStatus::Stopped | RolloutStatus::Aborted | RolloutStatus::RolledBack
        )
    }
}

/// Where one track stands in its current stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrackPhase {
    /// Dispatching the stage's share and waiting for every device to resolve.
    Dispatching,
    /// Every device resolved; the gate runs at `until_ms`.
    Baking {
        /// When the bake ends.
        until_ms: u64,
    },
    /// The gate is being evaluated; `last` is the hold last reported (re-evaluated on every event).
    Gating {
        /// The last hold reported, so an unchanged hold is not reported again.
        last: Option<(HoldReason, GateEvidence)>,
        /// When the gate started deciding (the bake's end): a hold expires `max_hold_ms` later.
        #[serde(default)]
        since_ms: u64,
    },
    /// Every stage passed.
    Done,
    /// The gate failed (or its hold outlived the plan's `max_hold_ms`); the track never
    /// promotes again.
    Failed {
        /// What was done about it.
        on_fail: OnFail,
        /// The hold that expired, when the track failed by its deadline rather than its gate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expired_hold: Option<HoldReason>,
    },
}

/// One hardware class's progress through the stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// The class.
    pub hardware: HardwareClass,
    /// Indexes into the rollout's targets, in target order.
    pub members: Vec<u32>,
    /// Index of the current stage.
    pub stage: usize,
    /// Where the current stage stands.
    pub phase: TrackPhase,
    /// Latest inference figures of its cohorts.
    #[serde(default)]
    pub cohorts: Cohorts,
}

/// A rollout that cannot be created.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RolloutError {
    /// The plan is invalid.
    #[error("invalid plan: {0}")]
    Plan(#[from] PlanError),
    /// No devices to roll out to.
    #[error("no target devices; check the selector")]
    NoTargets,
    /// A device is listed twice.
    #[error("device {0} is listed twice in the targets")]
    DuplicateTarget(DeviceId),
    /// More targets than deployment ids can name.
    #[error("{0} targets is more than one rollout can address (at most 2^32)")]
    TooManyTargets(usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Slot {
    target: Target,
    state: DeviceState,
}

/// The rollout state machine. Serialize it to persist it; or persist the events and
/// [`Rollout::replay`] them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    id: RolloutId,
    plan: RolloutPlan,
    devices: Vec<Slot>,
    index: BTreeMap<DeviceId, u32>,
    tracks: Vec<Track>,
    status: RolloutStatus,
    now_ms: u64,
    /// Status before an operator pause (to restore on resume).
    paused_from: Option<RolloutStatus>,
}

impl Rollout {
    /// A rollout of `plan` to `targets` (their order fixes deployment ids and dispatch order).
    pub fn new(id: RolloutId, plan: RolloutPlan, targets: Vec<Target>) -> Result<Self, RolloutError> {
        plan.validate()?;
        if targets.is_empty() {
            return Err(RolloutError::NoTargets);
        }
        if u32::try_from(targets.len()).is_err() {
            return Err(RolloutError::TooManyTargets(targets.len()));
        }
        let mut index = BTreeMap::new();
        let mut tracks: Vec<Track> = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let i = i as u32; // checked above
            if index.insert(target.device.clone(), i).is_some() {
                return Err(RolloutError::DuplicateTarget(target.device.clone()));
            }
            match tracks.iter_mut().find(|t| t.hardware == target.hardware) {
                Some(track) => track.members.push(i),
                None => tracks.push(Track {
                    hardware: target.hardware,
                    members: vec![i],
                    stage: 0,
                    phase: TrackPhase::Dispatching,
                    cohorts: Cohorts::default(),
                }),
            }
        }
        tracks.sort_by_key(|t| t.hardware);
        let devices = targets.into_iter().map(|target| Slot { target, state: DeviceState::Pending }).collect();
        Ok(Rollout { id, plan, devices, index, tracks, status: RolloutStatus::Created, now_ms: 0, paused_from: None })
    }

    /// Rebuilds a rollout by applying `events` in order from creation (actions are discarded).
    pub fn replay(
        id: RolloutId,
        plan: RolloutPlan,
        targets: Vec<Target>,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<Self, RolloutError> {
        let mut rollout = Rollout::new(id, plan, targets)?;
        for event in events {
            rollout.handle(event);
        }
        Ok(rollout)
    }

    /// The rollout's id.
    pub fn id(&self) -> RolloutId {
        self.id
    }

    /// The plan.
    pub fn plan(&self) -> &RolloutPlan {
        &self.plan
    }

    /// The overall status.
    pub fn status(&self) -> RolloutStatus {
        self.status
    }

    /// The tracks, one per hardware class present, in class order.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Where `device` stands, if it is a target.
    pub fn device_state(&self, device: &DeviceId) -> Option<DeviceState> {
        self.index.get(device).map(|&i| self.devices[i as usize].state)
    }

    /// Every target with its state, in target order.
    pub fn targets(&self) -> impl Iterator<Item = (&Target, DeviceState)> {
        self.devices.iter().map(|s| (&s.target, s.state))
    }

    /// The states of `track`'s members.
    pub fn track_states<'a>(&'a self, track: &'a Track) -> impl Iterator<Item = DeviceState> + 'a {
        track.members.iter().map(|&i| self.devices[i as usize].state)
    }

    /// The deployment id the rollout gave `device`, if it is a target.
    pub fn deployment_id_of(&self, device: &DeviceId) -> Option<DeploymentId> {
        self.index.get(device).map(|&i| self.deployment_id(i))
    }

    /// The latest time seen in a `Tick`.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The deployment id of target `index`: `rollout id << 32 | index`, so replay gives the same ids.
    pub fn deployment_id(&self, index: u32) -> DeploymentId {
        DeploymentId((u64::from(self.id.0) << 32) | u64::from(index))
    }

    /// How many devices track `t` may have dispatched in stage `stage`: `ceil(percent × size)`.
    pub fn stage_quota(&self, track: &Track, stage: usize) -> usize {
        let percent = self.plan.stages.get(stage).copied().unwrap_or(100) as usize;
        (percent * track.members.len()).div_ceil(100)
    }

    /// Applies one event and returns what the driver must do.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Start => {
                if self.status == RolloutStatus::Created {
                    self.status = RolloutStatus::Running;
                } else if self.status == RolloutStatus::Paused && self.paused_from == Some(RolloutStatus::Created) {
                    // Started while paused: runs once resumed.
                    self.paused_from = Some(RolloutStatus::Running);
                }
            }
            Event::Tick { now_ms } => self.now_ms = self.now_ms.max(now_ms),
            Event::DeviceAccepted { device } | Event::DeviceInstalling { device } => {
                self.device_event(&device, |s| (s == DeviceState::Dispatched).then_some(DeviceState::Installing));
            }
            Event::DeviceCommitted { device } => {
                let changed = self.device_event(&device, |s| {
                    matches!(s, DeviceState::Dispatched | DeviceState::Installing | DeviceState::Unreachable)
                        .then_some(DeviceState::Committed)
                });
                // A device that commits after its track (or the rollout) was rolled back goes back too.
                if let Some(i) = changed
                    && self.must_roll_back(i)
                {
                    self.devices[i as usize].state = DeviceState::RolledBack;
                    actions.push(Action::RollBackDevice { device });
                }
            }
            Event::DeviceFailed { device, reason: _ } => {
                self.device_event(&device, |s| {
                    matches!(
                        s,
                        DeviceState::Dispatched
                            | DeviceState::Installing
                            | DeviceState::Unreachable
                            | DeviceState::Committed
                    )
                    .then_some(DeviceState::Failed)
                });
            }
            Event::DeviceUnreachable { device } => {
                self.device_event(&device, |s| s.in_flight().then_some(DeviceState::Unreachable));
            }
            Event::Pause => {
                if matches!(self.status, RolloutStatus::Created | RolloutStatus::Running) {
                    self.paused_from = Some(self.status);
                    self.status = RolloutStatus::Paused;
                    actions.push(Action::Paused { track: None, reason: PauseReason::Operator, evidence: None });
                }
            }
            Event::Resume => {
                if self.status == RolloutStatus::Paused {
                    self.status = self.paused_from.take().unwrap_or(RolloutStatus::Running);
                }
            }
            Event::Abort => {
                if !self.status.terminal() {
                    self.status = RolloutStatus::Aborted;
                    actions.push(Action::Aborted);
                }
            }
            Event::CohortHealth { track, new, control } => {
                if let Some(t) = self.tracks.iter_mut().find(|t| t.hardware == track) {
                    let members = control.members;
                    let control =
                        if control.devices > 0 && control.inferences > 0 { Some(control) } else { t.cohorts.control };
                    t.cohorts = Cohorts { new, control, control_members: members, reported: true };
                }
            }
            Event::Promote { track, stage } => {
                if self.status == RolloutStatus::Running
                    && let Some(t) = self.tracks.iter().position(|t| {
                        t.hardware == track
                            && t.stage == stage
                            && matches!(t.phase, TrackPhase::Gating { last: Some(_), .. })
                    })
                {
                    let evidence = self.evidence(&self.tracks[t]);
                    self.promote(t, evidence, &mut actions);
                }
            }
            Event::Rollback => {
                // An aborted rollout left its devices where they were: it can still be undone.
                if self.status != RolloutStatus::RolledBack {
                    let was_aborted = self.status == RolloutStatus::Aborted;
                    self.status = RolloutStatus::RolledBack;
                    for slot in &mut self.devices {
                        if slot.state == DeviceState::Committed {
                            slot.state = DeviceState::RolledBack;
                            actions.push(Action::RollBackDevice { device: slot.target.device.clone() });
                        }
                    }
                    if !was_aborted {
                        actions.push(Action::Aborted);
                    }
                }
            }
        }
        if self.status == RolloutStatus::Running {
            self.advance(&mut actions);
        }
        actions
    }

    /// Applies `next` to a known, dispatched device; returns its index if its state changed.
    fn device_event(&mut self, device: &DeviceId, next: impl Fn(DeviceState) -> Option<DeviceState>) -> Option<u32> {
        let &i = self.index.get(device)?;
        let slot = &mut self.devices[i as usize];
        let new = next(slot.state)?;
        slot.state = new;
        Some(i)
    }

    fn must_roll_back(&self, i: u32) -> bool {
        if self.status == RolloutStatus::RolledBack {
            return true;
        }
        let hw = self.devices[i as usize].target.hardware;
        self.tracks
            .iter()
            .any(|t| t.hardware == hw && matches!(t.phase, TrackPhase::Failed { on_fail: OnFail::Rollback, .. }))
    }

    /// Runs dispatch and the per-track lifecycle until nothing changes, so that the state after
    /// an event is a fixed point (which makes every event idempotent).
    fn advance(&mut self, actions: &mut Vec<Action>) {
        // Each pass moves some track one phase on (at most 4 phases per stage) or dispatches;
        // the bound only guards against a bug turning into a hang.
        let max_passes = 4 * (self.plan.stages.len() + 1) * self.tracks.len() + 8;
        for _ in 0..max_passes {
            let before = actions.len();
            let mut changed = false;
            for t in 0..self.tracks.len() {
                changed |= self.step_track(t, actions);
            }
            changed |= self.dispatch(actions);
            if !self.tracks.is_empty()
                && self.tracks.iter().all(|t| matches!(t.phase, TrackPhase::Done | TrackPhase::Failed { .. }))
            {
                let all_done = self.tracks.iter().all(|t| t.phase == TrackPhase::Done);
                self.status = if all_done { RolloutStatus::Completed } else { RolloutStatus::Stopped };
                if all_done {
                    actions.push(Action::Completed);
                }
                return;
            }
            if !changed && actions.len() == before {
                return;
            }
        }
    }

    /// Hands out free download slots round-robin across tracks still dispatching.
    fn dispatch(&mut self, actions: &mut Vec<Action>) -> bool {
        let in_flight = self.devices.iter().filter(|s| s.state.in_flight()).count();
        let mut free = (self.plan.max_concurrent_downloads as usize).saturating_sub(in_flight);
        let mut any = false;
        while free > 0 {
            let mut progressed = false;
            for t in 0..self.tracks.len() {
                if free == 0 {
                    break;
                }
                let track = &self.tracks[t];
                if track.phase != TrackPhase::Dispatching {
                    continue;
                }
                let quota = self.stage_quota(track, track.stage);
                let dispatched = track.members.iter().filter(|&&i| self.devices[i as usize].state.dispatched()).count();
                if dispatched >= quota {
                    continue;
                }
                let next =
                    track.members.iter().copied().find(|&i| self.devices[i as usize].state == DeviceState::Pending);
                if let Some(i) = next {
                    self.devices[i as usize].state = DeviceState::Dispatched;
                    actions.push(Action::Dispatch {
                        device: self.devices[i as usize].target.device.clone(),
                        deployment_id: self.deployment_id(i),
                    });
                    free -= 1;
                    progressed = true;
                    any = true;
                }
            }
            if !progressed {
                break;
            }
        }
        any
    }

    /// Moves track `t` through its stage lifecycle; true if its state changed.
    fn step_track(&mut self, t: usize, actions: &mut Vec<Action>) -> bool {
        let track = &self.tracks[t];
        match &track.phase {
            TrackPhase::Dispatching => {
                let quota = self.stage_quota(track, track.stage);
                let states = track.members.iter().map(|&i| self.devices[i as usize].state);
                let (dispatched, unresolved) =
                    states.fold((0, 0), |(d, u), s| (d + usize::from(s.dispatched()), u + usize::from(s.in_flight())));
                if dispatched >= quota && unresolved == 0 {
                    let until_ms = self.now_ms.saturating_add(self.plan.bake_ms);
                    self.tracks[t].phase = TrackPhase::Baking { until_ms };
                    return true;
                }
                false
            }
            TrackPhase::Baking { until_ms } => {
                if self.now_ms >= *until_ms {
                    self.tracks[t].phase = TrackPhase::Gating { last: None, since_ms: self.now_ms };
                    return true;
                }
                false
            }
            TrackPhase::Gating { last, since_ms } => {
                let evidence = self.evidence(track);
                let hw = track.hardware;
                let since_ms = *since_ms;
                match self.decide(&evidence) {
                    Verdict::Pass => {
                        self.promote(t, evidence, actions);
                        true
                    }
                    Verdict::Fail => {
                        self.fail_track(t, self.plan.on_fail, None, evidence, actions);
                        true
                    }
                    Verdict::Hold(reason) => {
                        let held_ms = self.now_ms.saturating_sub(since_ms);
                        if let Some(max) = self.plan.max_hold_ms
                            && held_ms >= max
                        {
                            actions.push(Action::HoldExpired { track: hw, reason, held_ms });
                            let on_timeout = self.plan.on_hold_timeout.unwrap_or(self.plan.on_fail);
                            self.fail_track(t, on_timeout, Some(reason), evidence, actions);
                            return true;
                        }
                        let current = Some((reason, evidence.clone()));
                        if *last == current {
                            return false;
                        }
                        self.tracks[t].phase = TrackPhase::Gating { last: current, since_ms };
                        actions.push(Action::Held { track: hw, reason, evidence });
                        true
                    }
                }
            }
            TrackPhase::Done | TrackPhase::Failed { .. } => false,
        }
    }

    /// Stops track `t` for good: pause it, or roll its committed devices back.
    fn fail_track(
        &mut self,
        t: usize,
        on_fail: OnFail,
        expired_hold: Option<HoldReason>,
        evidence: GateEvidence,
        actions: &mut Vec<Action>,
    ) {
        let hw = self.tracks[t].hardware;
        self.tracks[t].phase = TrackPhase::Failed { on_fail, expired_hold };
        match on_fail {
            OnFail::Pause => {
                let reason = if expired_hold.is_some() { PauseReason::HoldExpired } else { PauseReason::GateFailed };
                actions.push(Action::Paused { track: Some(hw), reason, evidence: Some(evidence) });
            }
            OnFail::Rollback => {
                for &i in &self.tracks[t].members {
                    let slot = &mut self.devices[i as usize];
                    if slot.state == DeviceState::Committed {
                        slot.state = DeviceState::RolledBack;
                        actions.push(Action::RollBackDevice { device: slot.target.device.clone() });
                    }
                }
                actions.push(Action::TrackRolledBack { track: hw, evidence });
            }
        }
    }

    fn promote(&mut self, t: usize, evidence: GateEvidence, actions: &mut Vec<Action>) {
        let hw = self.tracks[t].hardware;
        let next = self.tracks[t].stage + 1;
        if next >= self.plan.stages.len() {
            self.tracks[t].phase = TrackPhase::Done;
            actions.push(Action::TrackCompleted { track: hw, evidence });
        } else {
            self.tracks[t].stage = next;
            self.tracks[t].phase = TrackPhase::Dispatching;
            actions.push(Action::Promoted { track: hw, stage: next, evidence });
        }
    }

    fn evidence(&self, track: &Track) -> GateEvidence {
        let mut e = GateEvidence {
            stage: track.stage,
            stage_percent: self.plan.stages.get(track.stage).copied().unwrap_or(100),
            track_size: track.members.len() as u32,
            dispatched: 0,
            committed: 0,
            failed: 0,
            unreachable: 0,
            required_sample: 0,
            census: false,
            failure_lower: 0.0,
            failure_upper: 1.0,
            max_failure_rate: self.plan.max_failure_rate,
            unreachable_rate: 0.0,
            max_unreachable_rate: self.plan.max_unreachable_rate,
            confidence: self.plan.confidence,
            health: None,
        };
        for &i in &track.members {
            let state = self.devices[i as usize].state;
            e.dispatched += u32::from(state.dispatched());
            match state {
                // A device the rollout rolled back had committed.
                DeviceState::Committed | DeviceState::RolledBack => e.committed += 1,
                DeviceState::Failed => e.failed += 1,
                DeviceState::Unreachable => e.unreachable += 1,
                _ => {}
            }
        }
        let reachable = e.dispatched - e.unreachable;
        // A gate never needs more completions than its stage can produce: the stage's share is a
        // hard cap (dispatch never exceeds it), so demanding more would hold forever. Small
        // samples stay honest through the width of the confidence bounds instead.
        let stage_reachable = (self.stage_quota(track, track.stage) as u32).saturating_sub(e.unreachable);
        e.required_sample = self.plan.min_sample.min(stage_reachable.max(1));
        let completed = u64::from(e.committed + e.failed);
        e.census = e.dispatched == e.track_size && completed == u64::from(reachable) && completed > 0;
        if e.census {
            // The whole (reachable) track is observed: there is nothing left to estimate.
            let rate = f64::from(e.failed) / completed as f64;
            e.failure_lower = rate;
            e.failure_upper = rate;
        } else {
            let bounds = wilson(u64::from(e.failed), completed, z_for_confidence(self.plan.confidence));
            e.failure_lower = bounds.lower;
            e.failure_upper = bounds.upper;
        }
        if e.dispatched > 0 {
            e.unreachable_rate = f64::from(e.unreachable) / f64::from(e.dispatched);
        }
        e.health = self.plan.health.as_ref().map(|gate| Box::new(self.health_evidence(gate, &track.cohorts)));
        e
    }

    fn health_evidence(&self, gate: &HealthGate, cohorts: &Cohorts) -> HealthEvidence {
        let z = z_for_confidence(self.plan.confidence);
        let new = cohorts.new;
        let new_bounds = wilson(new.errors, new.inferences, z);
        let control = cohorts.control;
        let control_bounds = control.map(|c| wilson(c.errors, c.inferences, z));
        let p99_ratio = match (new.p99_us, control.and_then(|c| c.p99_us)) {
            (Some(n), Some(c)) => Some(f64::from(n) / f64::from(c.max(1))),
            _ => None,
        };
        // A control p99 with no new p99 yet (the new cohort's reports had empty windows): the
        // latency comparison cannot be made, so wait rather than pass on errors alone.
        let new_p99_missing = new.p99_us.is_none() && control.is_some_and(|c| c.p99_us.is_some());
        let base = match control_bounds {
            // Nothing reported yet, or control devices exist whose figures have not arrived.
            _ if !cohorts.reported => HealthVerdict::InsufficientInferences,
            None if cohorts.control_members > 0 => HealthVerdict::InsufficientInferences,
            None => HealthVerdict::NoControl,
            _ if new.inferences < gate.min_inferences || new_p99_missing => HealthVerdict::InsufficientInferences,
            Some(c) => {
                let latency_regressed = p99_ratio.is_some_and(|r| r > gate.max_p99_ratio);
                if latency_regressed || new_bounds.lower - c.upper > gate.max_error_rate_increase {
                    HealthVerdict::Regressed
                } else if new_bounds.upper - c.lower <= gate.max_error_rate_increase {
                    HealthVerdict::Fine
                } else {
                    HealthVerdict::Inconclusive
                }
            }
        };
        let accuracy_delta = control.and_then(|c| {
            crate::drift::stats::newcombe_difference((new.correct, new.labelled), (c.correct, c.labelled), z)
        });
        let accuracy = match (gate.min_accuracy_delta, control) {
            (Some(threshold), Some(c)) => Some(if new.labelled < gate.min_labelled || c.labelled < gate.min_labelled {
                HealthVerdict::InsufficientInferences
            } else {
                match accuracy_delta {
                    Some((_, upper)) if upper < threshold => HealthVerdict::Regressed,
                    Some((lower, _)) if lower >= threshold => HealthVerdict::Fine,
                    _ => HealthVerdict::Inconclusive,
                }
            }),
            _ => None,
        };
        let verdict = combine(base, accuracy, cohorts.reported);
        HealthEvidence {
            gate: gate.clone(),
            new,
            control,
            new_error_rate: (new_bounds.lower, new_bounds.upper),
            control_error_rate: control_bounds.map(|b| (b.lower, b.upper)),
            p99_ratio,
            accuracy_delta,
            verdict,
        }
    }

    fn decide(&self, e: &GateEvidence) -> Verdict {
        let completed = e.committed + e.failed;
        if completed == 0 || completed < e.required_sample {
            return Verdict::Hold(HoldReason::InsufficientSample);
        }
        if e.failure_lower > e.max_failure_rate {
            return Verdict::Fail;
        }
        let health = e.health.as_ref().map(|h| h.verdict);
        if health == Some(HealthVerdict::Regressed) {
            return Verdict::Fail;
        }
        if e.unreachable_rate > e.max_unreachable_rate {
            return Verdict::Hold(HoldReason::UnreachableBudget);
        }
        // Wait for inference evidence before calling anything merely inconclusive, so a hold an
        // operator might override never hides a health check that has not run yet.
        if health == Some(HealthVerdict::InsufficientInferences) {
            return Verdict::Hold(HoldReason::InsufficientInferences);
        }
        if e.failure_upper > e.max_failure_rate || health == Some(HealthVerdict::Inconclusive) {
            return Verdict::Hold(HoldReason::Inconclusive);
        }
        Verdict::Pass
    }
}

enum Verdict {
    Pass,
    Fail,
    Hold(HoldReason),
}
