//! `/v1/rollouts`: staged rollouts, their dry runs and the operations on them.

use crate::rollout::{HoldReason, OnFail, RolloutStatus};
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::hardware::HardwareClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub use crate::server::rollouts::{RolloutRequest, TrackDecision};

/// A rollout in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RolloutSummary {
    /// Id.
    pub id: u32,
    /// Model name.
    pub model: String,
    /// Version rolled out.
    pub version_seq: u64,
    /// Status (`Created`, `Running`, `Paused`, `Completed`, `Stopped`, `Aborted`, `RolledBack`).
    #[schema(value_type = String)]
    pub status: RolloutStatus,
    /// Devices targeted.
    pub targets: usize,
    /// Operator who created it.
    pub created_by: String,
    /// When, fleet clock (ms since the epoch).
    pub created_at_ms: u64,
    /// When it reached a terminal state.
    pub finished_at_ms: Option<u64>,
}

/// The gate settings of a rollout's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    /// Cumulative stages, percent.
    pub stages: Vec<u8>,
    /// Bake time per stage, ms.
    pub bake_ms: u64,
    /// Largest tolerated install failure rate.
    pub max_failure_rate: f64,
    /// Completed devices a gate needs.
    pub min_sample: u32,
    /// Confidence of the gate's bounds.
    pub confidence: f64,
    /// Largest tolerated unreachable share per stage.
    pub max_unreachable_rate: f64,
    /// Deployments in flight at once.
    pub max_concurrent_downloads: u32,
    /// What a failing gate does (`pause`, `rollback`).
    #[schema(value_type = String)]
    pub on_fail: OnFail,
    /// Longest a gate may hold before its track fails by this deadline, ms (None: never).
    #[serde(default)]
    pub max_hold_ms: Option<u64>,
    /// What an expired hold does (`pause`, `rollback`).
    #[schema(value_type = String)]
    pub on_hold_timeout: OnFail,
}

/// One hardware track of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackView {
    /// Hardware class (`cpu`, `gpu`, `accelerator`).
    pub hardware: String,
    /// Devices in the track.
    pub size: usize,
    /// Current stage, from 1.
    pub stage: usize,
    /// Stages in the plan.
    pub stages: usize,
    /// The current stage's share, percent.
    pub stage_percent: u8,
    /// Devices the current stage covers.
    pub quota: usize,
    /// In words: `dispatching`, `baking, Ns left`, `gating`, `held: WHAT BLOCKS (held T, rolls
    /// back at DEADLINE)`, `done`, `gate failed, rolled back`, `hold expired (...), paused`,
    /// `stopped: rollout aborted`.
    pub phase: String,
    /// Why the track's gate holds, while it holds (`inconclusive`, `insufficient_sample`,
    /// `insufficient_inferences`, `unreachable_budget`): the phase for programs.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub held: Option<HoldReason>,
    /// Devices per deployment state (`pending`, `dispatched`, `committed`, `failed`, ...).
    pub counts: BTreeMap<String, u32>,
    /// The last gate decision and its evidence.
    #[schema(value_type = Option<Object>)]
    pub last_decision: Option<TrackDecision>,
}

/// A rollout in full: per track stage, phase, device counts and the last gate evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolloutDetail {
    /// Id.
    pub id: u32,
    /// Model name.
    pub model: String,
    /// Version rolled out.
    pub version_seq: u64,
    /// Package id (hex).
    pub package_id: String,
    /// Status.
    #[schema(value_type = String)]
    pub status: RolloutStatus,
    /// Device selector.
    pub select: String,
    /// Gate settings.
    pub plan: PlanView,
    /// Probation sent with each deploy.
    #[schema(value_type = Object)]
    pub probation: ProbationBudget,
    /// Operator who created it.
    pub created_by: String,
    /// When.
    pub created_at_ms: u64,
    /// When it reached a terminal state.
    pub finished_at_ms: Option<u64>,
    /// Per hardware track.
    pub tracks: Vec<TrackView>,
    /// Failure reasons and how many devices gave each.
    pub failure_reasons: BTreeMap<String, u32>,
}

/// One stage of a dry run's track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DryRunStage {
    /// Stage, from 1.
    pub stage: usize,
    /// Cumulative share, percent.
    pub percent: u8,
    /// Devices covered after it.
    pub devices: usize,
    /// Devices it adds.
    pub new_devices: usize,
}

/// One hardware track of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DryRunTrack {
    /// Hardware class (`Cpu`, `Gpu`, `Accelerator`).
    #[schema(value_type = String)]
    pub hardware: HardwareClass,
    /// Devices in the track.
    pub size: usize,
    /// Bytes each device downloads (head and variant).
    pub variant_bytes: u64,
    /// Per stage.
    pub stages: Vec<DryRunStage>,
}

/// What a rollout would do: targets per track and stage, bytes to move, a duration estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DryRunPlan {
    /// Model name.
    pub model: String,
    /// Version.
    pub version_seq: u64,
    /// Package id (hex).
    pub package_id: String,
    /// Devices targeted.
    pub targets: usize,
    /// Targets already serving this version.
    pub already_running: u32,
    /// Targets offline now.
    pub offline_now: u32,
    /// Matching devices skipped because the package has no variant for their class.
    #[schema(value_type = Object)]
    pub skipped_no_variant: BTreeMap<HardwareClass, u32>,
    /// Known devices without a birth yet (hardware unknown).
    pub skipped_no_birth: u32,
    /// Per hardware track.
    pub tracks: Vec<DryRunTrack>,
    /// Bytes all targets download.
    pub bytes_to_transfer: u64,
    /// Estimated duration, ms.
    pub estimated_duration_ms: u64,
    /// What the estimate assumes, in words.
    pub estimate_assumes: String,
}

/// `POST /v1/rollouts[?dry_run=true]`: the created rollout (no `id` for a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateRolloutResponse {
    /// The new rollout's id (absent for a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// True for a dry run (nothing sent).
    pub dry_run: bool,
    /// What it does.
    pub plan: DryRunPlan,
}

/// `POST /v1/rollouts/{id}/{op}` body (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperateRequest {
    /// Why (recorded in the audit log).
    #[serde(default)]
    pub reason: String,
    /// For `promote`: only this hardware track.
    #[serde(default)]
    pub track: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_reads_back_with_hardware_classes_as_keys() {
        let plan = DryRunPlan {
            model: "m".into(),
            version_seq: 2,
            package_id: "ab".into(),
            targets: 3,
            already_running: 0,
            offline_now: 1,
            skipped_no_variant: [(HardwareClass::Gpu, 2)].into(),
            skipped_no_birth: 0,
            tracks: vec![],
            bytes_to_transfer: 10,
            estimated_duration_ms: 5,
            estimate_assumes: "x".into(),
        };
        let text = serde_json::to_string(&serde_json::to_value(&plan).expect("value")).expect("text");
        assert!(text.contains(r#""skipped_no_variant":{"gpu":2}"#), "{text}");
        assert_eq!(serde_json::from_str::<DryRunPlan>(&text).expect("parses back"), plan);
    }
}
