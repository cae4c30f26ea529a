//! Typed views ([`crate::api::drift`]) over the fleet's drift state: the per-device and
//! per-cohort drift report, the model-health part of `edgefleet health`, and a rollout's A/B
//! scorecard. Read-only over the core's state.

use super::device::DeviceDrift;
use super::stats::{self, newcombe_difference, wilson};
use super::{Assessment, DetectorSettings, Merged, assess};
use crate::api::drift::{
    AccuracyView, AssessmentView, CohortCard, CohortView, DeviceDriftView, Difference, DriftReport, DriftState,
    DriftingFeature, ErrorView, FeatureView, GateView, PredictionShift, Scorecard, ScorecardTrack,
};
use crate::api::health::{HealthState, HealthView, ModelDriftState};
use crate::server::models::{ModelRecord, model_key};
use crate::server::registry::DeviceRecord;
use crate::server::rollouts::RolloutRecord;
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::drift::DriftReference;
use std::collections::BTreeMap;

/// z for the 95% intervals the scorecard shows.
const Z95: f64 = 1.959_963_984_540_054;

/// What the views read.
pub struct DriftData<'a> {
    /// Devices.
    pub devices: &'a BTreeMap<DeviceId, DeviceRecord>,
    /// Drift per device.
    pub drift: &'a BTreeMap<DeviceId, DeviceDrift>,
    /// Models by `name@version`.
    pub models: &'a BTreeMap<String, ModelRecord>,
    /// Detector settings.
    pub settings: &'a DetectorSettings,
}

impl DriftData<'_> {
    fn reference(&self, model: &str, version: u64) -> Option<&DriftReference> {
        self.models.get(&model_key(model, version)).map(|m| &m.drift_reference).filter(|r| !r.is_empty())
    }
}

/// Compact view of an assessment: the drifting features first, then the rest by PSI.
fn assessment_view(a: &Assessment) -> AssessmentView {
    let mut features: Vec<&super::FeatureStats> = a.features.iter().collect();
    features.sort_by(|x, y| y.drifting.cmp(&x.drifting).then(y.psi.total_cmp(&x.psi)));
    AssessmentView {
        rows: a.rows,
        evaluated: a.evaluated,
        drifting: a
            .drifting()
            .map(|f| DriftingFeature { feature: f.name.clone(), part: f.part, reason: f.reason.clone() })
            .collect(),
        max_psi: a.max_psi(),
        features: features
            .iter()
            .map(|f| FeatureView {
                feature: f.name.clone(),
                part: f.part,
                count: f.count,
                missing: f.missing,
                mean: f.mean,
                std: f.std,
                psi: f.psi,
                js: f.js,
                chi2: f.chi_square.statistic,
                chi2_dof: f.chi_square.dof,
                chi2_p: f.chi_square.p_value,
                ks: f.ks.statistic,
                ks_p: f.ks.p_value,
                tested: f.tested,
                rejected: f.rejected,
                drifting: f.drifting,
            })
            .collect(),
    }
}

/// The model-drift state of one device for `model`: `(state, reasons)` where state is
/// `drifting`, `watch` (a recent window drifted, not yet persistent), `ok`, or `unknown`.
pub fn device_state(data: &DriftData<'_>, device: &DeviceId, model: &str) -> (DriftState, Vec<String>) {
    let Some(m) = data.drift.get(device).and_then(|d| d.models.get(model)) else {
        return (DriftState::Unknown, vec!["no drift summary yet".into()]);
    };
    let s = data.settings;
    let recent = m.persistence.recent.iter().filter(|d| **d).count();
    let reasons: Vec<String> =
        m.reasons.iter().map(|(f, why)| format!("{model}@{}: {f}: {why}", m.version_seq)).collect();
    let summary = |bound: String| {
        let mut out = vec![format!(
            "{model}@{}: drift in {recent} of the last {} windows ({bound})",
            m.version_seq,
            m.persistence.recent.len()
        )];
        out.extend(reasons.iter().cloned());
        out
    };
    if m.alert {
        (DriftState::Drifting, summary(format!("alert at {} of {}", s.persist_k, s.persist_n)))
    } else if recent > 0 {
        (DriftState::Watch, summary(format!("below the alert's {} of {}", s.persist_k, s.persist_n)))
    } else if m.persistence.recent.is_empty() {
        let why = if data.reference(model, m.version_seq).is_none() {
            "the package has no drift reference"
        } else {
            "too few values per window to test"
        };
        (DriftState::Unknown, vec![format!("{model}@{}: {why}", m.version_seq)])
    } else {
        (DriftState::Ok, Vec::new())
    }
}

fn device_view(data: &DriftData<'_>, d: &DeviceRecord, model: &str) -> DeviceDriftView {
    let drift = data.drift.get(&d.id);
    let m = drift.and_then(|x| x.models.get(model));
    let (state, reasons) = device_state(data, &d.id, model);
    let latest = m.and_then(|m| {
        let reference = data.reference(model, m.version_seq)?;
        let merged = drift?.merged(model, m.version_seq, 0, 1);
        Some(assessment_view(&assess(reference, &merged, data.settings)))
    });
    DeviceDriftView {
        device: d.id.clone(),
        hardware: d.hardware,
        labels: d.labels.clone(),
        version_seq: m.map(|m| m.version_seq),
        state,
        reasons,
        alert_since_ms: m.and_then(|m| m.alert_since_ms),
        first_drifting_ms: m.and_then(|m| m.first_drifting_ms),
        recent_windows: m.map(|m| m.persistence.recent.iter().copied().collect()),
        latest_window: latest,
    }
}

/// `GET /v1/drift?model=M[&device=D]`.
pub fn report(data: &DriftData<'_>, model: &str, device: Option<&DeviceId>) -> DriftReport {
    let serving: Vec<&DeviceRecord> = data
        .devices
        .values()
        .filter(|d| device.is_none_or(|id| &d.id == id))
        .filter(|d| {
            d.served_version(model).is_some() || data.drift.get(&d.id).is_some_and(|x| x.models.contains_key(model))
        })
        .collect();
    let devices: Vec<DeviceDriftView> = serving.iter().map(|d| device_view(data, d, model)).collect();
    // Cohorts: per version × hardware class, and per version × label value. Each device adds
    // its last persist_n windows of that version.
    let mut cohorts: BTreeMap<String, (u64, Vec<&DeviceRecord>)> = BTreeMap::new();
    for d in &serving {
        let Some(m) = data.drift.get(&d.id).and_then(|x| x.models.get(model)) else { continue };
        let v = m.version_seq;
        let class = d.hardware.map_or("unknown".to_string(), |h| h.to_string());
        cohorts.entry(format!("version={v} hardware={class}")).or_insert((v, Vec::new())).1.push(d);
        for (k, val) in &d.labels {
            cohorts.entry(format!("version={v} {k}={val}")).or_insert((v, Vec::new())).1.push(d);
        }
    }
    let cohorts: Vec<CohortView> = cohorts
        .into_iter()
        .map(|(name, (version, members))| {
            let mut merged = Merged::default();
            for d in &members {
                if let Some(x) = data.drift.get(&d.id) {
                    let _ = merged.add_merged(&x.merged(model, version, 0, data.settings.persist_n));
                }
            }
            let drifting_devices =
                members.iter().filter(|d| device_state(data, &d.id, model).0 == DriftState::Drifting).count();
            let assessment =
                data.reference(model, version).map(|r| assessment_view(&assess(r, &merged, data.settings)));
            CohortView {
                cohort: name,
                version_seq: version,
                devices: members.len(),
                drifting_devices,
                windows: merged.windows,
                assessment,
            }
        })
        .collect();
    DriftReport { model: model.to_string(), settings: *data.settings, devices, cohorts }
}

/// Sums a cohort's windows of `model` at `version` (or every version but it when `other`)
/// since `since_ms`, over `members`.
fn cohort_windows(
    data: &DriftData<'_>,
    members: &[&DeviceId],
    model: &str,
    version: u64,
    other: bool,
    since_ms: u64,
) -> (Merged, BTreeMap<u64, u32>) {
    let mut merged = Merged::default();
    let mut versions: BTreeMap<u64, u32> = BTreeMap::new();
    for id in members {
        let Some(x) = data.drift.get(*id) else { continue };
        let mut counted = false;
        for w in x.windows.iter().filter(|w| w.summary.model.as_str() == model && w.received_ms >= since_ms) {
            if (w.summary.version_seq == version) != other && merged.add(&w.summary).is_ok() && !counted {
                *versions.entry(w.summary.version_seq).or_insert(0) += 1;
                counted = true;
            }
        }
    }
    (merged, versions)
}

/// Accuracy `(correct, labelled)` of a merged cohort.
fn accuracy_view(m: &Merged) -> AccuracyView {
    let (c, n) = (m.feedback.correct, m.feedback.labelled);
    AccuracyView { labelled: n, correct: c, accuracy: (n > 0).then(|| c as f64 / n as f64), ci95: wilson(c, n, Z95) }
}

/// Errors and latency of a cohort's figures.
fn error_view(f: &crate::rollout::CohortFigures) -> ErrorView {
    ErrorView {
        devices: f.devices,
        inferences: f.inferences,
        errors: f.errors,
        error_rate: (f.inferences > 0).then(|| f.errors as f64 / f.inferences as f64),
        ci95: wilson(f.errors, f.inferences, Z95),
        p99_us: f.p99_us,
    }
}

/// `GET /v1/rollouts/{id}/scorecard`: per hardware track, the new version's cohort against the
/// control cohort (the same track's windows of other versions of the model, same period).
pub fn scorecard(data: &DriftData<'_>, r: &RolloutRecord) -> Scorecard {
    let plan = r.machine.plan();
    let (model, version) = (plan.model.to_string(), plan.version_seq);
    let reference_new = data.reference(&model, version);
    let tracks: Vec<ScorecardTrack> = r
        .machine
        .tracks()
        .iter()
        .map(|track| {
            let members: Vec<&DeviceId> =
                r.machine.targets().filter(|(t, _)| t.hardware == track.hardware).map(|(t, _)| &t.device).collect();
            let since = r.created_at_ms;
            let (new, new_devices) = cohort_windows(data, &members, &model, version, false, since);
            let (control, control_versions) = cohort_windows(data, &members, &model, version, true, since);
            let control_version = control_versions.iter().max_by_key(|(_, n)| **n).map(|(v, _)| *v);
            let reference_control = control_version.and_then(|v| data.reference(&model, v));
            let drift_new = reference_new.map(|rf| assessment_view(&assess(rf, &new, data.settings)));
            let drift_control = reference_control.map(|rf| assessment_view(&assess(rf, &control, data.settings)));
            let prediction_shift = match (&new.prediction, &control.prediction) {
                (Some(a), Some(b)) if a.bin_counts.len() == b.bin_counts.len() && a.count > 0 && b.count > 0 => {
                    let chi = stats::chi_square(&b.bin_counts, &a.bin_counts);
                    Some(PredictionShift {
                        psi: stats::psi(&b.bin_counts, &a.bin_counts),
                        js: stats::js_divergence(&b.bin_counts, &a.bin_counts),
                        chi2: chi.statistic,
                        chi2_p: chi.p_value,
                        new_counts: a.bin_counts.clone(),
                        control_counts: b.bin_counts.clone(),
                    })
                }
                _ => None,
            };
            let accuracy_delta = newcombe_difference(
                (new.feedback.correct, new.feedback.labelled),
                (control.feedback.correct, control.feedback.labelled),
                Z95,
            );
            let decision = r.decisions.get(&track.hardware.to_string());
            // A track rolled back at its gate has no devices left on the new version, so its
            // current figures are empty: show the figures the gate decided on instead.
            let decided = decision.and_then(|d| d.evidence.health.as_deref());
            let (new_figures, control_figures, latency_from) = match decided {
                Some(h) if track.cohorts.new.p99_us.is_none() => (h.new, h.control, "gate decision"),
                _ => (track.cohorts.new, track.cohorts.control, "current cohorts"),
            };
            let p99_ratio = match (new_figures.p99_us, control_figures.and_then(|c| c.p99_us)) {
                (Some(n), Some(c)) => Some(f64::from(n) / f64::from(c.max(1))),
                _ => None,
            };
            ScorecardTrack {
                hardware: track.hardware.to_string(),
                new: CohortCard {
                    version_seq: Some(version),
                    devices_with_windows: new_devices.values().sum::<u32>(),
                    windows: new.windows,
                    rows: new.rows,
                    accuracy: accuracy_view(&new),
                    latency_errors: Some(error_view(&new_figures)),
                    drift_vs_reference: drift_new,
                },
                control: CohortCard {
                    version_seq: control_version,
                    devices_with_windows: control_versions.values().sum::<u32>(),
                    windows: control.windows,
                    rows: control.rows,
                    accuracy: accuracy_view(&control),
                    latency_errors: control_figures.as_ref().map(error_view),
                    drift_vs_reference: drift_control,
                },
                difference: Difference {
                    accuracy_delta: (new.feedback.labelled > 0 && control.feedback.labelled > 0).then(|| {
                        new.feedback.correct as f64 / new.feedback.labelled as f64
                            - control.feedback.correct as f64 / control.feedback.labelled as f64
                    }),
                    accuracy_delta_ci95: accuracy_delta,
                    p99_ratio,
                    latency_errors_from: latency_from.to_string(),
                    prediction_shift,
                },
                gate: decision.map(|d| GateView { decision: d.decision.clone(), health: d.evidence.health.clone() }),
            }
        })
        .collect();
    Scorecard {
        rollout: r.id,
        model,
        version_seq: version,
        status: r.machine.status(),
        since_ms: r.created_at_ms,
        gate: plan.health.clone(),
        tracks,
    }
}

/// Adds model drift to a device's health view (`views::health`): a persistent drift alert
/// makes a healthy or degraded device `drifting`, a recent drifting window makes a healthy one
/// `degraded`; failing and offline stay as they are. Reasons are appended either way.
pub fn add_to_health(data: &DriftData<'_>, d: &DeviceRecord, model: Option<&str>, view: &mut HealthView) {
    let models: Vec<String> = match model {
        Some(m) => vec![m.to_string()],
        None => d.active_models.iter().map(|m| m.name.clone()).collect(),
    };
    let mut drift = BTreeMap::new();
    for m in &models {
        let (state, reasons) = device_state(data, &d.id, m);
        view.state = match (state, view.state) {
            (DriftState::Drifting, HealthState::Healthy | HealthState::Degraded) => HealthState::Drifting,
            (DriftState::Watch, HealthState::Healthy) => HealthState::Degraded,
            (_, other) => other,
        };
        if matches!(state, DriftState::Drifting | DriftState::Watch) {
            view.reasons.extend(reasons.iter().cloned());
        }
        drift.insert(m.clone(), ModelDriftState { state, reasons });
    }
    view.drift = drift;
}
