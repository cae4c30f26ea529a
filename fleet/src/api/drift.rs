//! `GET /v1/drift` and `GET /v1/rollouts/{id}/scorecard`: drift per device and cohort, and a
//! rollout's A/B scorecard.

use crate::drift::{DetectorSettings, Part};
use crate::rollout::machine::HealthEvidence;
use crate::rollout::{HealthGate, RolloutStatus};
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::hardware::HardwareClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A device's model-drift state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriftState {
    /// A persistent alert (k of the last n windows drifted).
    Drifting,
    /// A recent window drifted; not yet persistent.
    Watch,
    /// No drifting window among the recent ones.
    Ok,
    /// Nothing to tell yet (no summary, no reference, too few values).
    Unknown,
}

impl DriftState {
    /// The JSON form (`drifting`, `watch`, `ok`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftState::Drifting => "drifting",
            DriftState::Watch => "watch",
            DriftState::Ok => "ok",
            DriftState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for DriftState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A statistic the server could not compute (NaN, infinite) is `null` in JSON: read it back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// A drifting feature and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DriftingFeature {
    /// Feature name.
    pub feature: String,
    /// `input`, `output`, `prediction` or `confidence`.
    #[schema(value_type = String)]
    pub part: Part,
    /// Why, in words.
    pub reason: String,
}

/// One feature's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeatureView {
    /// Feature name.
    pub feature: String,
    /// Which part of the profile.
    #[schema(value_type = String)]
    pub part: Part,
    /// Values.
    pub count: u64,
    /// NaN values.
    pub missing: u64,
    /// Mean.
    pub mean: Option<f64>,
    /// Standard deviation.
    pub std: Option<f64>,
    /// Population stability index.
    #[serde(deserialize_with = "nan_if_null")]
    pub psi: f64,
    /// Jensen–Shannon divergence (base 2).
    #[serde(deserialize_with = "nan_if_null")]
    pub js: f64,
    /// Chi-square statistic.
    #[serde(deserialize_with = "nan_if_null")]
    pub chi2: f64,
    /// Its degrees of freedom.
    pub chi2_dof: u32,
    /// Its p-value.
    #[serde(deserialize_with = "nan_if_null")]
    pub chi2_p: f64,
    /// KS statistic from bins (a lower bound).
    #[serde(deserialize_with = "nan_if_null")]
    pub ks: f64,
    /// Its p-value.
    #[serde(deserialize_with = "nan_if_null")]
    pub ks_p: f64,
    /// Enough values to test.
    pub tested: bool,
    /// Rejected by Benjamini–Hochberg.
    pub rejected: bool,
    /// Counts as drifting.
    pub drifting: bool,
}

/// Compact view of an assessment: the drifting features first, then the rest by PSI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssessmentView {
    /// Rows assessed.
    pub rows: u64,
    /// Whether any feature had enough values to be tested.
    pub evaluated: bool,
    /// The drifting features.
    pub drifting: Vec<DriftingFeature>,
    /// Largest PSI among tested features.
    pub max_psi: Option<f64>,
    /// Every feature.
    pub features: Vec<FeatureView>,
}

/// One device's drift for a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceDriftView {
    /// Device id.
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// Hardware class.
    #[schema(value_type = Option<String>)]
    pub hardware: Option<HardwareClass>,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
    /// Version its windows are of.
    pub version_seq: Option<u64>,
    /// The state.
    pub state: DriftState,
    /// Why.
    pub reasons: Vec<String>,
    /// Fleet time the alert started.
    pub alert_since_ms: Option<u64>,
    /// Fleet time of the first drifting window of the current run.
    pub first_drifting_ms: Option<u64>,
    /// The recent evaluated windows, newest last: true = drifted.
    pub recent_windows: Option<Vec<bool>>,
    /// The latest window's assessment.
    pub latest_window: Option<AssessmentView>,
}

/// A cohort (version × hardware class, or version × label value) with its merged windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CohortView {
    /// `version=V hardware=H` or `version=V KEY=VALUE`.
    pub cohort: String,
    /// Version.
    pub version_seq: u64,
    /// Devices in it.
    pub devices: usize,
    /// Of those, drifting.
    pub drifting_devices: usize,
    /// Windows merged.
    pub windows: u32,
    /// The merged windows' assessment (null without a reference).
    pub assessment: Option<AssessmentView>,
}

/// `GET /v1/drift?model=M[&device=D]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DriftReport {
    /// Model name.
    pub model: String,
    /// Detector settings.
    #[schema(value_type = Object)]
    pub settings: DetectorSettings,
    /// Per device.
    pub devices: Vec<DeviceDriftView>,
    /// Per cohort.
    pub cohorts: Vec<CohortView>,
}

/// Labelled accuracy of a cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccuracyView {
    /// Inferences with a ground-truth label.
    pub labelled: u64,
    /// Of those, correct.
    pub correct: u64,
    /// correct / labelled.
    pub accuracy: Option<f64>,
    /// Wilson 95% interval `[lower, upper]`.
    #[schema(value_type = Option<Vec<f64>>)]
    pub ci95: Option<(f64, f64)>,
}

/// Errors and latency of a cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorView {
    /// Devices that reported figures.
    pub devices: u32,
    /// Inferences.
    pub inferences: u64,
    /// Failed inferences.
    pub errors: u64,
    /// errors / inferences.
    pub error_rate: Option<f64>,
    /// Wilson 95% interval of the error rate.
    #[schema(value_type = Option<Vec<f64>>)]
    pub ci95: Option<(f64, f64)>,
    /// Median over devices of each device's p99 latency, µs.
    pub p99_us: Option<u32>,
}

/// One cohort of a scorecard track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CohortCard {
    /// Version (the control's: the most common other version; null when none yet).
    pub version_seq: Option<u64>,
    /// Devices with windows in the period.
    pub devices_with_windows: u32,
    /// Windows.
    pub windows: u32,
    /// Rows summarized.
    pub rows: u64,
    /// Labelled accuracy.
    pub accuracy: AccuracyView,
    /// Errors and latency (null for a control without figures).
    pub latency_errors: Option<ErrorView>,
    /// Drift against the version's reference.
    pub drift_vs_reference: Option<AssessmentView>,
}

/// The new version's shift in predicted classes against the control's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PredictionShift {
    /// Population stability index.
    #[serde(deserialize_with = "nan_if_null")]
    pub psi: f64,
    /// Jensen–Shannon divergence.
    #[serde(deserialize_with = "nan_if_null")]
    pub js: f64,
    /// Chi-square statistic.
    #[serde(deserialize_with = "nan_if_null")]
    pub chi2: f64,
    /// Its p-value.
    #[serde(deserialize_with = "nan_if_null")]
    pub chi2_p: f64,
    /// Predicted classes of the new cohort.
    pub new_counts: Vec<u64>,
    /// Predicted classes of the control cohort.
    pub control_counts: Vec<u64>,
}

/// New against control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Difference {
    /// Accuracy new − control.
    pub accuracy_delta: Option<f64>,
    /// Its Newcombe 95% interval.
    #[schema(value_type = Option<Vec<f64>>)]
    pub accuracy_delta_ci95: Option<(f64, f64)>,
    /// p99 new / control.
    pub p99_ratio: Option<f64>,
    /// `current cohorts`, or `gate decision` when no device runs the new version now.
    pub latency_errors_from: String,
    /// Prediction shift.
    pub prediction_shift: Option<PredictionShift>,
}

/// The track's last gate decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GateView {
    /// In words.
    pub decision: String,
    /// The health evidence.
    #[schema(value_type = Option<Object>)]
    pub health: Option<Box<HealthEvidence>>,
}

/// One hardware track of a scorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScorecardTrack {
    /// Hardware class (`cpu`, `gpu`, `accelerator`).
    pub hardware: String,
    /// The new version's cohort.
    pub new: CohortCard,
    /// The control cohort.
    pub control: CohortCard,
    /// New against control.
    pub difference: Difference,
    /// The last gate decision.
    pub gate: Option<GateView>,
}

/// `GET /v1/rollouts/{id}/scorecard`: per hardware track, the new version's cohort against the
/// control cohort (the same track's windows of other versions, same period).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Scorecard {
    /// Rollout id.
    pub rollout: u32,
    /// Model name.
    pub model: String,
    /// The new version.
    pub version_seq: u64,
    /// Rollout status.
    #[schema(value_type = String)]
    pub status: RolloutStatus,
    /// The rollout's creation, fleet clock.
    pub since_ms: u64,
    /// The plan's health gate.
    #[schema(value_type = Option<Object>)]
    pub gate: Option<HealthGate>,
    /// Per hardware track.
    pub tracks: Vec<ScorecardTrack>,
}
