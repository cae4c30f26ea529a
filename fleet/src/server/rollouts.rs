//! Rollouts as the fleet manager keeps them: the pure [`Rollout`] state machine plus what its
//! driver needs to talk to devices (which package, which probation, when each dispatched device
//! was last heard from, which command went to whom) and the latest gate evidence per track.
//! Also the operator's request (flags or a TOML plan file) and its checks.

use super::models::ModelRecord;
use super::registry::DeviceRecord;
use super::selector::Selector;
use crate::rollout::plan::{parse_duration_ms, parse_rate, parse_stages};
use crate::rollout::{
    Action, DeviceState, Event, GateEvidence, OnFail, Rollout, RolloutError, RolloutId, RolloutPlan, Target, TrackPhase,
};
use edgefleet_protocol::command::{CommandId, ProbationBudget};
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::{DeviceId, Digest, ModelName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an operator asks for: `rollout create` flags, or the same keys in a TOML plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// Model name.
    pub model: String,
    /// Version sequence to roll out.
    pub version_seq: u64,
    /// Device selector (`hw=gpu,site=plant-3`; empty: every device).
    #[serde(default)]
    pub select: String,
    /// Cumulative stages, e.g. `1%,10%,50%,100%`.
    #[serde(default = "default_stages")]
    pub stages: String,
    /// Bake time per stage, e.g. `10m`.
    #[serde(default = "default_bake")]
    pub bake: String,
    /// Largest tolerated install failure rate, e.g. `5%`.
    #[serde(default = "default_failure_rate")]
    pub max_failure_rate: String,
    /// Completed devices a gate needs (capped at what a stage can give).
    #[serde(default = "default_min_sample")]
    pub min_sample: u32,
    /// Confidence of the gate's Wilson bounds, e.g. `95%`.
    #[serde(default = "default_confidence")]
    pub confidence: String,
    /// Largest tolerated share of unreachable devices per stage, e.g. `20%`.
    #[serde(default = "default_unreachable")]
    pub max_unreachable_rate: String,
    /// Deployments in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_downloads: u32,
    /// `pause` or `rollback` when a gate fails.
    #[serde(default = "default_on_fail")]
    pub on_fail: OnFail,
    /// Longest a gate may hold undecided before its track fails by this deadline, e.g. `1h`
    /// (`never`: a hold waits for an operator).
    #[serde(default = "default_max_hold")]
    pub max_hold: String,
    /// `pause` or `rollback` when a hold expires (default: `on_fail`).
    #[serde(default)]
    pub on_hold_timeout: Option<OnFail>,
    /// Probation on each device after activation (default: the server's).
    #[serde(default)]
    pub probation: Option<String>,
    /// Inferences before probation checks apply (default: the server's).
    #[serde(default)]
    pub probation_min_inferences: Option<u32>,
    /// Probation error budget, e.g. `1%` (default: the server's).
    #[serde(default)]
    pub probation_max_error_rate: Option<String>,
    /// Probation p99 budget in µs, 0 = none (default: the server's).
    #[serde(default)]
    pub probation_max_p99_us: Option<u64>,
    /// Health gate: largest tolerated inference error-rate increase over the control cohort,
    /// e.g. `1%` (setting any health field turns the health gate on).
    #[serde(default)]
    pub max_error_rate_increase: Option<String>,
    /// Health gate: largest tolerated p99 ratio new/control, e.g. `1.5`.
    #[serde(default)]
    pub max_p99_ratio: Option<f64>,
    /// Health gate: inferences the new cohort must run before it decides (default 200).
    #[serde(default)]
    pub min_inferences: Option<u64>,
    /// Gate expressions, e.g. `ab:accuracy>=-1%`, `ab:error_rate<=+1%`, `ab:p99_ratio<=1.5`,
    /// `ab:min_labelled=200` (each sets the matching health-gate field and turns it on).
    #[serde(default)]
    pub gates: Vec<String>,
}

fn default_stages() -> String {
    "1%,10%,50%,100%".into()
}
fn default_bake() -> String {
    "10m".into()
}
fn default_failure_rate() -> String {
    "5%".into()
}
fn default_min_sample() -> u32 {
    20
}
fn default_confidence() -> String {
    "95%".into()
}
fn default_unreachable() -> String {
    "20%".into()
}
fn default_concurrency() -> u32 {
    100
}
fn default_max_hold() -> String {
    "1h".into()
}
fn default_on_fail() -> OnFail {
    OnFail::Rollback
}

/// A request that cannot become a rollout; nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// No such model version in the registry.
    #[error(
        "unknown model {name} version {version_seq}; push it first (`edgefleet model push FILE.efpkg`); known: {known}"
    )]
    UnknownModel {
        /// Name.
        name: String,
        /// Version.
        version_seq: u64,
        /// Known versions.
        known: String,
    },
    /// A field does not parse.
    #[error("{0}")]
    Invalid(String),
    /// The plan or targets are invalid.
    #[error("{0}")]
    Rollout(#[from] RolloutError),
}

impl RolloutRequest {
    /// The checked plan and probation budget (`defaults` fill what the request leaves out).
    pub fn plan(&self, defaults: &ProbationBudget) -> Result<(RolloutPlan, ProbationBudget), RequestError> {
        let invalid = |e: crate::rollout::PlanError| RequestError::Invalid(e.to_string());
        let model = ModelName::new(&self.model).map_err(|e| RequestError::Invalid(format!("model: {e:?}")))?;
        let plan = RolloutPlan {
            model,
            version_seq: self.version_seq,
            stages: parse_stages(&self.stages).map_err(invalid)?,
            bake_ms: parse_duration_ms(&self.bake).map_err(invalid)?,
            max_failure_rate: parse_rate("max_failure_rate", &self.max_failure_rate).map_err(invalid)?,
            min_sample: self.min_sample,
            confidence: parse_rate("confidence", &self.confidence).map_err(invalid)?,
            max_unreachable_rate: parse_rate("max_unreachable_rate", &self.max_unreachable_rate).map_err(invalid)?,
            max_concurrent_downloads: self.max_concurrent_downloads,
            on_fail: self.on_fail,
            max_hold_ms: match self.max_hold.trim() {
                "never" | "none" => None,
                text => Some(parse_duration_ms(text).map_err(invalid)?),
            },
            on_hold_timeout: self.on_hold_timeout,
            health: self.health_gate()?,
        };
        plan.validate().map_err(invalid)?;
        let mut probation = *defaults;
        if let Some(d) = &self.probation {
            probation.duration_ms = parse_duration_ms(d).map_err(invalid)?;
        }
        if let Some(n) = self.probation_min_inferences {
            probation.min_inferences = n;
        }
        if let Some(r) = &self.probation_max_error_rate {
            probation.max_error_rate_ppm =
                (parse_rate("probation_max_error_rate", r).map_err(invalid)? * 1e6).round() as u32;
        }
        if let Some(us) = self.probation_max_p99_us {
            probation.max_p99_latency_us = us;
        }
        Ok((plan, probation))
    }
}

impl RolloutRequest {
    fn health_gate(&self) -> Result<Option<crate::rollout::HealthGate>, RequestError> {
        if self.max_error_rate_increase.is_none()
            && self.max_p99_ratio.is_none()
            && self.min_inferences.is_none()
            && self.gates.is_empty()
        {
            return Ok(None);
        }
        let increase = match &self.max_error_rate_increase {
            Some(text) => {
                parse_rate("max_error_rate_increase", text).map_err(|e| RequestError::Invalid(e.to_string()))?
            }
            None => 0.01,
        };
        let mut gate = crate::rollout::HealthGate {
            max_error_rate_increase: increase,
            max_p99_ratio: self.max_p99_ratio.unwrap_or(1.5),
            min_inferences: self.min_inferences.unwrap_or(200),
            min_accuracy_delta: None,
            min_labelled: 100,
        };
        for expression in &self.gates {
            apply_gate_expression(&mut gate, expression).map_err(RequestError::Invalid)?;
        }
        Ok(Some(gate))
    }
}

/// Applies one `--gate` expression to `gate`.
fn apply_gate_expression(gate: &mut crate::rollout::HealthGate, expression: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!(
            "gate {expression:?}: {why}; expected ab:accuracy>=-1%, ab:error_rate<=+1%, ab:p99_ratio<=1.5 or ab:min_labelled=200"
        )
    };
    let body = expression.trim().strip_prefix("ab:").ok_or_else(|| bad("must start with ab:"))?;
    let (metric, op, value) = ["<=", ">=", "="]
        .iter()
        .find_map(|op| body.split_once(op).map(|(m, v)| (m.trim(), *op, v.trim())))
        .ok_or_else(|| bad("no comparison"))?;
    let rate = |v: &str| -> Result<f64, String> {
        let v = v.trim_start_matches('+');
        let (number, scale) = match v.strip_suffix('%') {
            Some(n) => (n, 0.01),
            None => (v, 1.0),
        };
        number
            .trim()
            .parse::<f64>()
            .map(|x| x * scale)
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| bad("not a number"))
    };
    match (metric, op) {
        ("accuracy", ">=") => gate.min_accuracy_delta = Some(rate(value)?),
        ("error_rate", "<=") => gate.max_error_rate_increase = rate(value)?.max(0.0),
        ("p99_ratio", "<=") => {
            gate.max_p99_ratio = rate(value)?;
            if gate.max_p99_ratio <= 0.0 {
                return Err(bad("the ratio must be positive"));
            }
        }
        ("min_labelled", "=") => gate.min_labelled = value.parse().map_err(|_| bad("not a count"))?,
        _ => return Err(bad("unknown metric or comparison")),
    }
    Ok(())
}

#[cfg(test)]
mod gate_expression_tests {
    use super::*;

    #[test]
    fn gate_expressions_set_their_field_and_refuse_nonsense() {
        let mut g = crate::rollout::HealthGate {
            max_error_rate_increase: 0.01,
            max_p99_ratio: 1.5,
            min_inferences: 200,
            min_accuracy_delta: None,
            min_labelled: 100,
        };
        apply_gate_expression(&mut g, "ab:accuracy>=-1%").unwrap_or_else(|e| panic!("{e}"));
        apply_gate_expression(&mut g, "ab:error_rate<=+2%").unwrap_or_else(|e| panic!("{e}"));
        apply_gate_expression(&mut g, "ab:p99_ratio<=1.3").unwrap_or_else(|e| panic!("{e}"));
        apply_gate_expression(&mut g, "ab:min_labelled=50").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.min_accuracy_delta, Some(-0.01));
        assert!((g.max_error_rate_increase - 0.02).abs() < 1e-12);
        assert_eq!((g.max_p99_ratio, g.min_labelled), (1.3, 50));
        for bad in ["accuracy>=1%", "ab:accuracy<=1%", "ab:speed>=2", "ab:accuracy>=x", "ab:p99_ratio<=0"] {
            assert!(apply_gate_expression(&mut g, bad).is_err(), "{bad}");
        }
    }
}

/// Targets resolved against the inventory.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Devices to deploy to, in dispatch order.
    pub targets: Vec<Target>,
    /// Matching devices skipped because the package has no variant for their class.
    pub skipped_no_variant: BTreeMap<HardwareClass, u32>,
    /// Known devices without a birth yet (hardware class unknown): no selector can place
    /// them; the fleet has asked them for their birth (`server/rebirth.rs`).
    pub skipped_no_birth: u32,
}

/// The devices `selector` picks that the package can serve, in a spread-out but deterministic
/// order (by a hash of rollout id and device id, so early stages sample across sites instead of
/// taking the alphabetically first devices).
pub fn resolve_targets<'a>(
    rollout_id: u32,
    selector: &Selector,
    model: &ModelRecord,
    devices: impl IntoIterator<Item = &'a DeviceRecord>,
) -> Resolved {
    let mut targets = Vec::new();
    let mut skipped_no_variant = BTreeMap::new();
    let mut skipped_no_birth = 0;
    for device in devices {
        if device.hardware.is_none() {
            skipped_no_birth += 1;
            continue;
        }
        if !selector.matches(device) {
            continue;
        }
        let Some(hardware) = device.hardware else { continue };
        if model.variant(hardware).is_none() {
            *skipped_no_variant.entry(hardware).or_insert(0) += 1;
            continue;
        }
        targets.push(Target { device: device.id.clone(), hardware });
    }
    targets.sort_by_cached_key(|t| {
        let mut seed = rollout_id.to_le_bytes().to_vec();
        seed.extend_from_slice(t.device.as_str().as_bytes());
        Digest::sha256(&seed).0
    });
    Resolved { targets, skipped_no_variant, skipped_no_birth }
}

/// The last gate decision of a track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackDecision {
    /// `promoted`, `held: ...`, `gate failed`, `completed`, ...
    pub decision: String,
    /// Fleet clock.
    pub at_ms: u64,
    /// The numbers.
    pub evidence: GateEvidence,
}

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// Id.
    pub id: u32,
    /// What the operator asked for.
    pub request: RolloutRequest,
    /// Who.
    pub created_by: String,
    /// When.
    pub created_at_ms: u64,
    /// When it reached a terminal state.
    pub finished_at_ms: Option<u64>,
    /// The package's id (its head's SHA-256; hex in JSON).
    pub package_id: Digest,
    /// Head size.
    pub head_size: u64,
    /// Probation sent with each deploy.
    pub probation: ProbationBudget,
    /// The state machine.
    pub machine: Rollout,
    /// Per dispatched device still in flight: when it was last heard from about this rollout.
    pub last_heard_ms: BTreeMap<DeviceId, u64>,
    /// The live command of each device this rollout sent one to (its latest deploy or
    /// rollback; earlier ones are superseded), for matching acks.
    #[serde(default)]
    pub latest_commands: BTreeMap<DeviceId, CommandId>,
    /// Last gate decision per track.
    pub decisions: BTreeMap<String, TrackDecision>,
    /// Last failure reason per failed device (bounded by the target count).
    pub failures: BTreeMap<DeviceId, String>,
    /// Devices a rollback of this rollout left alone, and why (they run another version now).
    #[serde(default)]
    pub rollback_skipped: BTreeMap<DeviceId, String>,
    /// Per track, the hold being repeated: its reason and how many times it was decided again
    /// since it was audited (a hold is audited once; the count goes into the next decision).
    #[serde(default)]
    pub holds: BTreeMap<String, HoldTally>,
}

/// A hold decided again and again with the same reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldTally {
    /// The hold's reason.
    pub reason: String,
    /// Decisions of it after the audited one.
    pub repeats: u64,
}

impl RolloutRecord {
    /// The machine's id.
    pub fn rollout_id(&self) -> RolloutId {
        RolloutId(self.id)
    }

    /// Device counts by state, per track.
    pub fn counts(&self) -> BTreeMap<String, BTreeMap<String, u32>> {
        let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        for track in self.machine.tracks() {
            let counts = out.entry(track.hardware.to_string()).or_default();
            for state in self.machine.track_states(track) {
                *counts.entry(state.key().to_string()).or_insert(0) += 1;
            }
        }
        out
    }

    /// Devices whose deployment is still in flight (dispatched or installing).
    pub fn in_flight(&self) -> Vec<DeviceId> {
        self.machine
            .targets()
            .filter(|(_, state)| matches!(state, DeviceState::Dispatched | DeviceState::Installing))
            .map(|(t, _)| t.device.clone())
            .collect()
    }

    /// Records what a gate-related action says, for `rollout status`.
    pub fn note_decision(&mut self, action: &Action, now_ms: u64) {
        let (track, decision, evidence) = match action {
            Action::Promoted { track, stage, evidence } => {
                (track, format!("promoted to stage {}", stage + 1), evidence)
            }
            Action::TrackCompleted { track, evidence } => (track, "completed".to_string(), evidence),
            Action::Held { track, reason, evidence } => {
                (track, format!("held: {}", super::views::hold_text(*reason, evidence)), evidence)
            }
            Action::Paused { track: Some(track), evidence: Some(evidence), reason } => {
                (track, format!("{}: paused", reason.words()), evidence)
            }
            Action::TrackRolledBack { track, evidence } => {
                let expired = self.machine.tracks().iter().any(|t| {
                    t.hardware == *track && matches!(t.phase, TrackPhase::Failed { expired_hold: Some(_), .. })
                });
                let why = if expired { "hold expired" } else { "gate failed" };
                (track, format!("{why}: rolled back"), evidence)
            }
            _ => return,
        };
        self.decisions.insert(track.to_string(), TrackDecision { decision, at_ms: now_ms, evidence: evidence.clone() });
    }
}

/// Events that a deployment status or ack means for a rollout's device.
pub fn event_for_state(
    device: &DeviceId,
    state: &edgefleet_protocol::uplink::DeploymentState,
    current: Option<DeviceState>,
) -> Option<Event> {
    use edgefleet_protocol::uplink::DeploymentState as S;
    let device = device.clone();
    Some(match state {
        S::Accepted => Event::DeviceAccepted { device },
        S::Downloading { .. } | S::Verified | S::Installed | S::Activated => Event::DeviceInstalling { device },
        S::Committed => Event::DeviceCommitted { device },
        S::Failed(reason) => Event::DeviceFailed { device, reason: reason.to_string() },
        // The rollout asked for it: nothing new. Otherwise probation failed on the device.
        S::RolledBack { .. } if current == Some(DeviceState::RolledBack) => return None,
        S::RolledBack { reason, .. } => Event::DeviceFailed { device, reason: format!("rolled back: {reason}") },
        S::Cancelled => Event::DeviceFailed { device, reason: "cancelled".into() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::models::VariantInfo;

    fn device(id: &str, hardware: Option<HardwareClass>) -> DeviceRecord {
        let mut d = DeviceRecord::new(id.parse().unwrap(), 0);
        d.hardware = hardware;
        d
    }

    #[test]
    fn targets_are_the_matching_devices_with_a_variant_and_the_rest_is_counted() {
        let model = ModelRecord {
            name: "m".into(),
            version_seq: 2,
            label: String::new(),
            package_id: String::new(),
            head_size: 0,
            package_size: 0,
            variants: vec![VariantInfo {
                hardware: HardwareClass::Cpu,
                precision: "fp32".into(),
                size: 1,
                digest: String::new(),
            }],
            key_id: String::new(),
            pushed_at_ms: 0,
            pushed_by: String::new(),
            drift_reference: Default::default(),
        };
        let devices = [
            device("cpu-1", Some(HardwareClass::Cpu)),
            device("cpu-2", Some(HardwareClass::Cpu)),
            device("gpu-1", Some(HardwareClass::Gpu)),
            device("unborn-1", None),
        ];
        let resolved = resolve_targets(1, &"".parse().unwrap(), &model, &devices);
        let mut ids: Vec<&str> = resolved.targets.iter().map(|t| t.device.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["cpu-1", "cpu-2"]);
        assert_eq!(resolved.skipped_no_variant, BTreeMap::from([(HardwareClass::Gpu, 1)]));
        assert_eq!(resolved.skipped_no_birth, 1);
    }
}
