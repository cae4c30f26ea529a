//! What the API shows: the typed views ([`crate::api`]) of registry records, rollouts, health
//! and dry runs.

use super::models::ModelRecord;
use super::registry::DeviceRecord;
use super::rollouts::{Resolved, RolloutRecord};
use crate::api::devices::DeviceSummary;
use crate::api::health::{HealthState, HealthView, ModelFigures};
use crate::api::models::{ModelSummary, ModelVersion};
use crate::api::rollouts::{DryRunPlan, DryRunStage, DryRunTrack, PlanView, RolloutDetail, RolloutSummary, TrackView};
use crate::rollout::machine::{GateEvidence, HoldReason, TrackPhase};
use crate::rollout::plan::OnFail;
use crate::rollout::{Rollout, RolloutStatus};
use edgefleet_protocol::DeviceId;
use std::collections::BTreeMap;

/// A device in a list.
pub fn device_summary(d: &DeviceRecord) -> DeviceSummary {
    DeviceSummary {
        id: d.id.clone(),
        hardware: d.hardware,
        online: d.online,
        agent_version: d.agent_version.clone(),
        labels: d.labels.clone(),
        models: d.active_models.iter().map(|m| format!("{}@{}", m.name, m.version_seq)).collect(),
        last_seen_ms: d.last_seen_ms,
    }
}

fn running<'a>(m: &'a ModelRecord, devices: impl Iterator<Item = &'a DeviceRecord>) -> Vec<&'a DeviceId> {
    devices.filter(|d| d.served_version(&m.name) == Some(m.version_seq)).map(|d| &d.id).collect()
}

/// A model version in a list.
pub fn model_summary<'a>(m: &'a ModelRecord, devices: impl Iterator<Item = &'a DeviceRecord>) -> ModelSummary {
    ModelSummary {
        name: m.name.clone(),
        version_seq: m.version_seq,
        label: m.label.clone(),
        package_id: m.package_id.clone(),
        variants: m.variants.iter().map(|v| v.hardware.to_string()).collect(),
        devices: running(m, devices).len(),
    }
}

/// A model version with the devices that run it.
pub fn model_detail<'a>(m: &'a ModelRecord, devices: impl Iterator<Item = &'a DeviceRecord>) -> ModelVersion {
    ModelVersion { record: m.clone(), devices: running(m, devices).into_iter().cloned().collect() }
}

/// A rollout in a list.
pub fn rollout_summary(r: &RolloutRecord) -> RolloutSummary {
    RolloutSummary {
        id: r.id,
        model: r.request.model.clone(),
        version_seq: r.request.version_seq,
        status: r.machine.status(),
        targets: r.machine.targets().count(),
        created_by: r.created_by.clone(),
        created_at_ms: r.created_at_ms,
        finished_at_ms: r.finished_at_ms,
    }
}

/// Why a gate holds, in plain words with the numbers that block it, computed from the
/// evidence (the blocking condition itself, not only the reason's name).
pub fn hold_text(reason: HoldReason, e: &GateEvidence) -> String {
    let completed = u64::from(e.committed) + u64::from(e.failed);
    match reason {
        HoldReason::InsufficientSample => {
            format!("{completed} of {} devices needed have completed", e.required_sample)
        }
        HoldReason::Inconclusive => format!(
            "failure rate in [{:.1}%, {:.1}%] straddles the {:.1}% threshold; waiting for more devices",
            e.failure_lower * 100.0,
            e.failure_upper * 100.0,
            e.max_failure_rate * 100.0
        ),
        HoldReason::UnreachableBudget => format!(
            "{} unreachable of {} dispatched ({:.1}%) exceeds the {:.1}% budget",
            e.unreachable,
            e.dispatched,
            e.unreachable_rate * 100.0,
            e.max_unreachable_rate * 100.0
        ),
        HoldReason::InsufficientInferences => {
            let Some(h) = &e.health else { return "waiting for inferences".into() };
            let gate = &h.gate;
            let mut blocking = Vec::new();
            if h.new.inferences < gate.min_inferences {
                blocking.push(format!(
                    "the new version ran {} of {} inferences needed",
                    h.new.inferences, gate.min_inferences
                ));
            }
            if gate.min_accuracy_delta.is_some() {
                if h.new.labelled < gate.min_labelled {
                    blocking.push(format!(
                        "labelled {} of min_labelled {} on the new version",
                        h.new.labelled, gate.min_labelled
                    ));
                }
                match &h.control {
                    Some(c) if c.labelled < gate.min_labelled => blocking.push(format!(
                        "labelled {} of min_labelled {} on the old version",
                        c.labelled, gate.min_labelled
                    )),
                    None => blocking.push("no devices left on the old version to compare with".into()),
                    _ => {}
                }
            }
            if h.control.is_none() && blocking.is_empty() {
                blocking.push("no devices left on the old version to compare with".into());
            }
            if blocking.is_empty() { "waiting for enough inference evidence".into() } else { blocking.join("; ") }
        }
    }
}

/// A duration as an operator writes it: `45s`, `12m`, `1h30m`.
pub fn duration_words(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 if s.is_multiple_of(60) => format!("{}m", s / 60),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

fn on_fail_words(on_fail: OnFail) -> &'static str {
    match on_fail {
        OnFail::Pause => "pauses",
        OnFail::Rollback => "rolls back",
    }
}

/// A rollout in full at `now_ms`: per track stage, phase, device counts and the last gate
/// evidence.
pub fn rollout_detail(r: &RolloutRecord, now_ms: u64) -> RolloutDetail {
    let counts = r.counts();
    let plan = r.machine.plan();
    let tracks: Vec<TrackView> = r
        .machine
        .tracks()
        .iter()
        .map(|t| {
            let name = t.hardware.to_string();
            let stopped = match r.machine.status() {
                RolloutStatus::Aborted => Some("stopped: rollout aborted"),
                RolloutStatus::RolledBack => Some("stopped: rollout rolled back"),
                _ => None,
            };
            let phase = match (&t.phase, stopped) {
                // An aborted or rolled-back rollout's timers stopped with it.
                (TrackPhase::Dispatching | TrackPhase::Baking { .. } | TrackPhase::Gating { .. }, Some(words)) => {
                    words.to_string()
                }
                (TrackPhase::Dispatching, None) => "dispatching".to_string(),
                (TrackPhase::Baking { until_ms }, None) => {
                    format!("baking, {:.0}s left", until_ms.saturating_sub(now_ms) as f64 / 1000.0)
                }
                (TrackPhase::Gating { last: None, .. }, None) => "gating".to_string(),
                (TrackPhase::Gating { last: Some((reason, evidence)), since_ms }, None) => {
                    let held = now_ms.saturating_sub(*since_ms);
                    let deadline = match plan.max_hold_ms {
                        Some(max) => format!(
                            " (held {}, {} at {})",
                            duration_words(held),
                            on_fail_words(plan.on_hold_timeout.unwrap_or(plan.on_fail)),
                            duration_words(max)
                        ),
                        None => format!(" (held {}, no deadline)", duration_words(held)),
                    };
                    format!("held: {}{deadline}", hold_text(*reason, evidence))
                }
                (TrackPhase::Done, _) => "done".to_string(),
                (TrackPhase::Failed { on_fail, expired_hold }, _) => {
                    let why = match expired_hold {
                        Some(reason) => format!("hold expired ({})", reason.words()),
                        None => "gate failed".to_string(),
                    };
                    format!("{why}, {}", if *on_fail == OnFail::Pause { "paused" } else { "rolled back" })
                }
            };
            let held = match (&t.phase, stopped) {
                (TrackPhase::Gating { last: Some((reason, _)), .. }, None) => Some(*reason),
                _ => None,
            };
            TrackView {
                held,
                size: t.members.len(),
                stage: t.stage + 1,
                stages: plan.stages.len(),
                stage_percent: plan.stages.get(t.stage).copied().unwrap_or(100),
                quota: r.machine.stage_quota(t, t.stage),
                phase,
                counts: counts.get(&name).cloned().unwrap_or_default(),
                last_decision: r.decisions.get(&name).cloned(),
                hardware: name,
            }
        })
        .collect();
    let mut reasons: BTreeMap<String, u32> = BTreeMap::new();
    for reason in r.failures.values() {
        *reasons.entry(reason.clone()).or_insert(0) += 1;
    }
    RolloutDetail {
        id: r.id,
        model: r.request.model.clone(),
        version_seq: r.request.version_seq,
        package_id: r.package_id.to_string(),
        status: r.machine.status(),
        select: r.request.select.clone(),
        plan: PlanView {
            stages: plan.stages.clone(),
            bake_ms: plan.bake_ms,
            max_failure_rate: plan.max_failure_rate,
            min_sample: plan.min_sample,
            confidence: plan.confidence,
            max_unreachable_rate: plan.max_unreachable_rate,
            max_concurrent_downloads: plan.max_concurrent_downloads,
            on_fail: plan.on_fail,
            max_hold_ms: plan.max_hold_ms,
            on_hold_timeout: plan.on_hold_timeout.unwrap_or(plan.on_fail),
        },
        probation: r.probation,
        created_by: r.created_by.clone(),
        created_at_ms: r.created_at_ms,
        finished_at_ms: r.finished_at_ms,
        tracks,
        failure_reasons: reasons,
    }
}

/// Health of one device with a state and the reasons for it (without model drift: see
/// [`crate::drift::views::add_to_health`]).
pub fn health(d: &DeviceRecord, model: Option<&str>) -> HealthView {
    use HealthState::{Degraded, Failing, Healthy, Offline, Unknown};
    let mut reasons = Vec::new();
    let latest = d.health.back();
    let previous = if d.health.len() >= 2 { d.health.get(d.health.len() - 2) } else { None };
    let mut state = Healthy;
    let mut figures = Vec::new();
    if let Some(h) = latest {
        // The agent reports every version it served since it started; health is about what the
        // device runs now (a version rolled back an hour ago is history, not a failure).
        let serving = |m: &&edgefleet_protocol::uplink::ModelHealth| {
            d.active_models.is_empty()
                || d.active_models.iter().any(|a| a.name == m.name.as_str() && a.version_seq == m.version_seq)
        };
        for m in h.models.iter().filter(|m| model.is_none_or(|name| m.name.as_str() == name)).filter(serving) {
            // Rates over the last report interval when the counters allow, else since start.
            let (inferences, errors) = match previous
                .and_then(|p| p.models.iter().find(|pm| pm.name == m.name && pm.version_seq == m.version_seq))
            {
                Some(p) if m.inference_count >= p.inference_count && m.inference_count > p.inference_count => {
                    (m.inference_count - p.inference_count, m.error_count.saturating_sub(p.error_count))
                }
                _ => (m.inference_count, m.error_count),
            };
            let error_rate = if inferences > 0 { errors as f64 / inferences as f64 } else { 0.0 };
            if error_rate > 0.05 {
                state = Failing;
                reasons.push(format!("{}@{}: error rate {:.1}% > 5%", m.name, m.version_seq, error_rate * 100.0));
            } else if error_rate > 0.005 && state == Healthy {
                state = Degraded;
                reasons.push(format!("{}@{}: error rate {:.2}% > 0.5%", m.name, m.version_seq, error_rate * 100.0));
            }
            figures.push(ModelFigures {
                model: m.name.to_string(),
                version_seq: m.version_seq,
                inferences: m.inference_count,
                errors: m.error_count,
                error_rate_recent: error_rate,
                p50_us: m.latency_p50_us,
                p99_us: m.latency_p99_us,
            });
        }
        if h.outbox_evictions > 0 && state == Healthy {
            state = Degraded;
            reasons.push(format!(
                "outbox evicted {} records (offline too long or data rate too high)",
                h.outbox_evictions
            ));
        }
        if h.free_disk_bytes < 64 << 20 && state == Healthy {
            state = Degraded;
            reasons.push(format!("free disk {} MiB < 64 MiB", h.free_disk_bytes >> 20));
        }
    } else {
        state = Unknown;
        reasons.push("no health report yet".into());
    }
    if !d.online {
        state = Offline;
        reasons.insert(0, format!("offline ({})", d.offline_reason.as_deref().unwrap_or("never connected")));
    }
    // A device flooding the fleet with refused messages is failing whatever else it reports
    // (it may never have sent a birth or a presence at all).
    if let Some(flag) = &d.quarantine.flagged {
        state = Failing;
        reasons.insert(0, format!("flagged: {}", flag.reason));
    }
    if let Some(dup) = &d.boots.duplicate {
        state = Failing;
        reasons.insert(0, dup.describe());
    }
    super::sensor_health::judge(d, &mut state, &mut reasons);
    HealthView {
        device: d.id.clone(),
        hardware: d.hardware,
        state,
        reasons,
        models: figures,
        rss_bytes: latest.map(|h| h.rss_bytes),
        cpu_percent: latest.map(|h| h.cpu_percent),
        outbox_depth: latest.map(|h| h.outbox_depth),
        last_seen_ms: d.last_seen_ms,
        drift: BTreeMap::new(),
        sensor: d.sensor.as_ref().map(super::sensor_health::view),
    }
}

/// Assumed per-device download rate for the dry run's duration estimate.
const ASSUMED_DOWNLOAD_BYTES_PER_SEC: u64 = 1 << 20;

/// What a rollout would do: targets per track and stage, bytes to move, a duration estimate.
pub fn dry_run(
    machine: &Rollout,
    model: &ModelRecord,
    resolved: &Resolved,
    devices: &BTreeMap<DeviceId, DeviceRecord>,
    probation_ms: u64,
) -> DryRunPlan {
    let plan = machine.plan();
    let mut bytes = 0u64;
    let mut already = 0u32;
    let mut offline = 0u32;
    for t in &resolved.targets {
        let record = devices.get(&t.device);
        if record.is_some_and(|d| d.served_version(&model.name) == Some(model.version_seq)) {
            already += 1;
            continue;
        }
        if record.is_some_and(|d| !d.online) {
            offline += 1;
        }
        bytes += model.head_size + model.variant(t.hardware).map_or(0, |v| v.size);
    }
    let mut estimate_ms = 0u64;
    let tracks: Vec<DryRunTrack> = machine
        .tracks()
        .iter()
        .map(|t| {
            let variant = model.variant(t.hardware).map_or(0, |v| v.size) + model.head_size;
            let mut previous = 0usize;
            let mut track_ms = 0u64;
            let stages: Vec<DryRunStage> = (0..plan.stages.len())
                .map(|s| {
                    let quota = machine.stage_quota(t, s);
                    let new = quota - previous.min(quota);
                    previous = quota;
                    let waves = (new as u64).div_ceil(u64::from(plan.max_concurrent_downloads.max(1)));
                    let per_wave_ms = variant * 1000 / ASSUMED_DOWNLOAD_BYTES_PER_SEC + probation_ms;
                    track_ms += waves * per_wave_ms + plan.bake_ms;
                    DryRunStage { stage: s + 1, percent: plan.stages[s], devices: quota, new_devices: new }
                })
                .collect();
            estimate_ms = estimate_ms.max(track_ms);
            DryRunTrack { hardware: t.hardware, size: t.members.len(), variant_bytes: variant, stages }
        })
        .collect();
    DryRunPlan {
        model: model.name.clone(),
        version_seq: model.version_seq,
        package_id: model.package_id.clone(),
        targets: resolved.targets.len(),
        already_running: already,
        offline_now: offline,
        skipped_no_variant: resolved.skipped_no_variant.clone(),
        skipped_no_birth: resolved.skipped_no_birth,
        tracks,
        bytes_to_transfer: bytes,
        estimated_duration_ms: estimate_ms,
        estimate_assumes: format!(
            "{} MiB/s per device download, the probation time, every device online, bake {} ms per stage",
            ASSUMED_DOWNLOAD_BYTES_PER_SEC >> 20,
            plan.bake_ms
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::registry::{HealthPoint, ServedModel};
    use edgefleet_protocol::ModelName;
    use edgefleet_protocol::uplink::ModelHealth;

    fn figures(version_seq: u64, inference_count: u64, error_count: u64) -> ModelHealth {
        ModelHealth {
            name: ModelName::new("vibration-mlp").expect("name"),
            version_seq,
            inference_count,
            error_count,
            latency_p50_us: 10,
            latency_p99_us: 20,
        }
    }

    #[test]
    fn health_describes_the_version_the_device_runs_now_not_one_it_was_rolled_back_from() {
        let mut d = DeviceRecord::new("edge-1".parse().expect("id"), 0);
        d.online = true;
        d.active_models.push(ServedModel {
            name: "vibration-mlp".into(),
            version_seq: 1,
            label: String::new(),
            package_id: String::new(),
        });
        // Version 6 failed 10% of its inferences before it was rolled back to version 1.
        d.health.push_back(HealthPoint {
            timestamp_ms: 0,
            received_ms: 0,
            models: vec![figures(1, 5_000, 0), figures(6, 1_000, 100)],
            outbox_depth: 0,
            outbox_evictions: 0,
            rss_bytes: 0,
            cpu_percent: 0.0,
            free_disk_bytes: 1 << 30,
        });
        let view = health(&d, None);
        assert_eq!(view.state, HealthState::Healthy, "{:?}", view.reasons);
        assert_eq!(view.models.iter().map(|m| m.version_seq).collect::<Vec<_>>(), vec![1]);
    }
}
