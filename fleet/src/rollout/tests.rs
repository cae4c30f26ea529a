//! Scenario tests for the rollout state machine.
#![allow(clippy::unwrap_used)]

use super::machine::TrackPhase;
use super::*;
use edgefleet_protocol::{DeviceId, HardwareClass, ModelName};
use std::collections::VecDeque;

pub(super) fn plan(stages: &[u8], max_failure_rate: f64, min_sample: u32, on_fail: OnFail) -> RolloutPlan {
    RolloutPlan {
        model: ModelName::new("detector").unwrap(),
        version_seq: 7,
        stages: stages.to_vec(),
        bake_ms: 0,
        max_failure_rate,
        min_sample,
        confidence: 0.95,
        max_unreachable_rate: 0.2,
        max_concurrent_downloads: 16,
        on_fail,
        max_hold_ms: None,
        on_hold_timeout: None,
        health: None,
    }
}

pub(super) fn fleet(classes: &[(HardwareClass, usize)]) -> Vec<Target> {
    let mut out = Vec::new();
    for &(hardware, n) in classes {
        for i in 0..n {
            out.push(Target { device: DeviceId::new(format!("{hardware}-{i}")).unwrap(), hardware });
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Outcome {
    Commit,
    Fail,
    Unreachable,
    Silent,
}

/// Starts the rollout and answers every dispatch with `outcome(device)`, ticking the clock
/// 1 s per round; returns every action and the event log.
fn drive(rollout: &mut Rollout, outcome: impl Fn(&DeviceId) -> Outcome) -> (Vec<Action>, Vec<Event>) {
    let mut log = vec![Event::Start];
    let mut all = rollout.handle(Event::Start);
    let mut queue: VecDeque<Action> = all.clone().into();
    let mut now = 0;
    for _ in 0..10_000 {
        let Some(action) = queue.pop_front() else {
            now += 1_000;
            let ev = Event::Tick { now_ms: now };
            log.push(ev.clone());
            let out = rollout.handle(ev);
            if out.is_empty() {
                break;
            }
            all.extend(out.clone());
            queue.extend(out);
            continue;
        };
        if let Action::Dispatch { device, .. } = action {
            let ev = match outcome(&device) {
                Outcome::Commit => Event::DeviceCommitted { device },
                Outcome::Fail => Event::DeviceFailed { device, reason: "probation: error rate".into() },
                Outcome::Unreachable => Event::DeviceUnreachable { device },
                Outcome::Silent => continue,
            };
            log.push(ev.clone());
            let out = rollout.handle(ev);
            all.extend(out.clone());
            queue.extend(out);
        }
    }
    (all, log)
}

fn promotions(actions: &[Action], hw: HardwareClass) -> Vec<usize> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Promoted { track, stage, .. } if *track == hw => Some(*stage),
            _ => None,
        })
        .collect()
}

fn count(actions: &[Action], f: impl Fn(&Action) -> bool) -> usize {
    actions.iter().filter(|a| f(a)).count()
}

#[test]
fn a_good_rollout_completes_every_stage_on_every_track() {
    // 4 stages, bake 0; gates need 20 completed devices at 10% failures (Wilson upper on 0/20 is 0.16).
    let targets = fleet(&[(HardwareClass::Cpu, 300), (HardwareClass::Gpu, 250), (HardwareClass::Accelerator, 200)]);
    let mut r = Rollout::new(RolloutId(1), plan(&[10, 25, 50, 100], 0.2, 20, OnFail::Pause), targets).unwrap();
    let (actions, _) = drive(&mut r, |_| Outcome::Commit);
    assert_eq!(r.status(), RolloutStatus::Completed);
    for hw in [HardwareClass::Cpu, HardwareClass::Gpu, HardwareClass::Accelerator] {
        assert_eq!(promotions(&actions, hw), vec![1, 2, 3], "{hw}");
    }
    assert_eq!(count(&actions, |a| matches!(a, Action::Dispatch { .. })), 750);
    assert_eq!(count(&actions, |a| matches!(a, Action::TrackCompleted { .. })), 3);
    assert_eq!(actions.last(), Some(&Action::Completed));
    assert!(r.tracks().iter().all(|t| t.phase == TrackPhase::Done));
    // Deployment ids are rollout id << 32 | target index.
    let ids: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Dispatch { deployment_id, .. } => Some(deployment_id.0),
            _ => None,
        })
        .collect();
    assert!(ids.iter().all(|&id| id >> 32 == 1 && (id & 0xffff_ffff) < 750));
}

#[test]
fn stages_never_exceed_their_share_and_downloads_are_rate_limited() {
    let mut p = plan(&[1, 10, 50, 100], 0.5, 1, OnFail::Pause);
    p.max_concurrent_downloads = 3;
    let mut r = Rollout::new(RolloutId(2), p.clone(), fleet(&[(HardwareClass::Cpu, 200)])).unwrap();
    // 1% of 200 = 2 devices, fewer than the 3 slots.
    assert_eq!(count(&r.handle(Event::Start), |a| matches!(a, Action::Dispatch { .. })), 2);
    p.stages = vec![50, 100];
    let mut r = Rollout::new(RolloutId(2), p, fleet(&[(HardwareClass::Cpu, 200)])).unwrap();
    assert_eq!(count(&r.handle(Event::Start), |a| matches!(a, Action::Dispatch { .. })), 3);
    // One resolution frees exactly one slot.
    let out = r.handle(Event::DeviceCommitted { device: DeviceId::new("cpu-0").unwrap() });
    assert_eq!(count(&out, |a| matches!(a, Action::Dispatch { .. })), 1);
}

#[test]
fn a_bad_release_trips_the_gate_and_pauses() {
    let targets = fleet(&[(HardwareClass::Cpu, 200)]);
    let mut r = Rollout::new(RolloutId(3), plan(&[10, 50, 100], 0.05, 20, OnFail::Pause), targets).unwrap();
    // Every other device fails: 10 of 20 completed, Wilson lower bound 0.30 > 0.05.
    let (actions, _) =
        drive(
            &mut r,
            |d| if d.as_str().ends_with(['1', '3', '5', '7', '9']) { Outcome::Fail } else { Outcome::Commit },
        );
    assert!(promotions(&actions, HardwareClass::Cpu).is_empty());
    let paused = actions.iter().find_map(|a| match a {
        Action::Paused { track: Some(HardwareClass::Cpu), reason: PauseReason::GateFailed, evidence: Some(e) } => {
            Some(e)
        }
        _ => None,
    });
    let e = paused.unwrap();
    assert_eq!((e.committed, e.failed, e.dispatched), (10, 10, 20));
    assert!(e.failure_lower > 0.05);
    assert_eq!(r.status(), RolloutStatus::Stopped);
    assert_eq!(count(&actions, |a| matches!(a, Action::RollBackDevice { .. })), 0);
    assert_eq!(count(&actions, |a| matches!(a, Action::Dispatch { .. })), 20);
}

#[test]
fn a_bad_release_under_on_fail_rollback_rolls_committed_devices_back() {
    let targets = fleet(&[(HardwareClass::Cpu, 200)]);
    let mut r = Rollout::new(RolloutId(4), plan(&[10, 50, 100], 0.05, 20, OnFail::Rollback), targets).unwrap();
    let (actions, _) =
        drive(
            &mut r,
            |d| if d.as_str().ends_with(['1', '3', '5', '7', '9']) { Outcome::Fail } else { Outcome::Commit },
        );
    assert_eq!(count(&actions, |a| matches!(a, Action::RollBackDevice { .. })), 10);
    assert_eq!(count(&actions, |a| matches!(a, Action::TrackRolledBack { track: HardwareClass::Cpu, .. })), 1);
    assert_eq!(r.device_state(&DeviceId::new("cpu-0").unwrap()), Some(DeviceState::RolledBack));
    assert_eq!(r.tracks()[0].phase, TrackPhase::Failed { on_fail: OnFail::Rollback, expired_hold: None });
}

#[test]
fn a_gpu_only_regression_stops_the_gpu_track_and_not_the_cpu_one() {
    let targets = fleet(&[(HardwareClass::Cpu, 200), (HardwareClass::Gpu, 200)]);
    let mut r = Rollout::new(RolloutId(5), plan(&[10, 50, 100], 0.2, 20, OnFail::Rollback), targets).unwrap();
    let (actions, _) = drive(&mut r, |d| if d.as_str().starts_with("gpu") { Outcome::Fail } else { Outcome::Commit });
    assert_eq!(promotions(&actions, HardwareClass::Cpu), vec![1, 2]);
    assert!(promotions(&actions, HardwareClass::Gpu).is_empty());
    assert_eq!(count(&actions, |a| matches!(a, Action::TrackCompleted { track: HardwareClass::Cpu, .. })), 1);
    assert_eq!(count(&actions, |a| matches!(a, Action::TrackRolledBack { track: HardwareClass::Gpu, .. })), 1);
    let gpu_dispatched =
        count(&actions, |a| matches!(a, Action::Dispatch { device, .. } if device.as_str().starts_with("gpu")));
    assert_eq!(gpu_dispatched, 20);
    assert_eq!(r.status(), RolloutStatus::Stopped);
    assert!(!actions.contains(&Action::Completed));
}

#[test]
fn a_canary_smaller_than_min_sample_decides_on_its_share_and_holds_when_inconclusive() {
    // 1% of 1000 = 10 devices, fewer than min_sample 20: the gate needs the 10 the stage can
    // give (never more: it would hold forever). 0 failures of 10 has a 95% Wilson upper bound of
    // 0.278: under a 50% threshold that passes, under 5% it is inconclusive and holds.
    let targets = fleet(&[(HardwareClass::Cpu, 1000)]);
    let mut r = Rollout::new(RolloutId(6), plan(&[1, 100], 0.5, 20, OnFail::Pause), targets.clone()).unwrap();
    let (actions, _) = drive(&mut r, |_| Outcome::Commit);
    assert_eq!(promotions(&actions, HardwareClass::Cpu), vec![1]);

    let mut r = Rollout::new(RolloutId(6), plan(&[1, 100], 0.05, 20, OnFail::Pause), targets).unwrap();
    let (actions, _) = drive(&mut r, |_| Outcome::Commit);
    let held: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Held { reason, evidence, .. } => Some((*reason, evidence.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(held.len(), 1, "an unchanged hold is reported once: {held:?}");
    assert_eq!(held[0].0, HoldReason::Inconclusive);
    assert_eq!((held[0].1.committed, held[0].1.required_sample), (10, 10));
    assert!(promotions(&actions, HardwareClass::Cpu).is_empty());
    assert_eq!(r.status(), RolloutStatus::Running);

    // The operator breaks the tie; a stale or repeated override does nothing.
    assert!(r.handle(Event::Promote { track: HardwareClass::Cpu, stage: 1 }).is_empty(), "wrong stage");
    let promoted = r.handle(Event::Promote { track: HardwareClass::Cpu, stage: 0 });
    assert!(promoted.iter().any(|a| matches!(a, Action::Promoted { stage: 1, .. })), "{promoted:?}");
    assert!(promoted.iter().any(|a| matches!(a, Action::Dispatch { .. })));
    assert!(r.handle(Event::Promote { track: HardwareClass::Cpu, stage: 0 }).is_empty());
}

#[test]
fn straddling_bounds_hold_until_more_evidence_arrives() {
    // 1 failure of 20 at a 10% threshold: point estimate 5%, Wilson [0.009, 0.236] straddles 0.1.
    let targets = fleet(&[(HardwareClass::Cpu, 100)]);
    let mut r = Rollout::new(RolloutId(7), plan(&[20, 100], 0.1, 20, OnFail::Pause), targets).unwrap();
    let (actions, _) = drive(&mut r, |d| if d.as_str() == "cpu-3" { Outcome::Fail } else { Outcome::Commit });
    assert!(actions.iter().any(|a| matches!(a, Action::Held { reason: HoldReason::Inconclusive, .. })));
    assert_eq!(r.status(), RolloutStatus::Running);
}

#[test]
fn unreachable_devices_are_never_failures() {
    // 30 of 100 unreachable: the gate holds on the unreachable budget, not as a failure.
    let targets = fleet(&[(HardwareClass::Cpu, 100)]);
    let mut p = plan(&[100], 0.05, 20, OnFail::Rollback);
    p.max_unreachable_rate = 0.2;
    let mut r = Rollout::new(RolloutId(8), p, targets).unwrap();
    let (actions, log) = drive(&mut r, |d| {
        let n: u32 = d.as_str()[4..].parse().unwrap();
        if n % 10 < 3 { Outcome::Unreachable } else { Outcome::Commit }
    });
    let e = actions
        .iter()
        .find_map(|a| match a {
            Action::Held { reason: HoldReason::UnreachableBudget, evidence, .. } => Some(evidence.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((e.failed, e.unreachable, e.committed), (0, 30, 70));
    assert_eq!(e.failure_lower, 0.0);
    assert_eq!(count(&actions, |a| matches!(a, Action::RollBackDevice { .. } | Action::TrackRolledBack { .. })), 0);
    // The unreachable devices answer late: the budget clears and the track completes.
    let mut r2 = Rollout::replay(r.id(), r.plan().clone(), fleet(&[(HardwareClass::Cpu, 100)]), log).unwrap();
    assert_eq!(r2, r);
    let mut late = Vec::new();
    for n in 0..100 {
        if n % 10 < 3 {
            late.extend(r2.handle(Event::DeviceCommitted { device: DeviceId::new(format!("cpu-{n}")).unwrap() }));
        }
    }
    assert!(late.contains(&Action::Completed), "{late:?}");
}

#[test]
fn pause_resume_and_abort() {
    let targets = fleet(&[(HardwareClass::Cpu, 100)]);
    let mut p = plan(&[10, 100], 0.5, 5, OnFail::Pause);
    p.max_concurrent_downloads = 5;
    let mut r = Rollout::new(RolloutId(9), p, targets).unwrap();
    assert_eq!(count(&r.handle(Event::Start), |a| matches!(a, Action::Dispatch { .. })), 5);
    let paused = r.handle(Event::Pause);
    assert_eq!(paused, vec![Action::Paused { track: None, reason: PauseReason::Operator, evidence: None }]);
    assert!(r.handle(Event::Pause).is_empty());
    // While paused, resolutions free slots but nothing is dispatched.
    let out = r.handle(Event::DeviceCommitted { device: DeviceId::new("cpu-0").unwrap() });
    assert!(out.is_empty());
    let out = r.handle(Event::Resume);
    assert_eq!(count(&out, |a| matches!(a, Action::Dispatch { .. })), 1);
    assert_eq!(r.status(), RolloutStatus::Running);
    assert_eq!(r.handle(Event::Abort), vec![Action::Aborted]);
    assert!(r.handle(Event::Abort).is_empty());
    assert!(r.handle(Event::Resume).is_empty());
    assert!(r.handle(Event::DeviceCommitted { device: DeviceId::new("cpu-1").unwrap() }).is_empty());
    assert_eq!(r.status(), RolloutStatus::Aborted);
}

#[test]
fn a_start_while_paused_runs_once_resumed() {
    let mut r =
        Rollout::new(RolloutId(14), plan(&[100], 0.5, 1, OnFail::Pause), fleet(&[(HardwareClass::Cpu, 3)])).unwrap();
    r.handle(Event::Pause);
    assert!(r.handle(Event::Start).is_empty());
    assert_eq!(r.status(), RolloutStatus::Paused);
    let out = r.handle(Event::Resume);
    assert_eq!(count(&out, |a| matches!(a, Action::Dispatch { .. })), 3);
}

#[test]
fn operator_rollback_rolls_back_committed_devices_and_late_committers() {
    let targets = fleet(&[(HardwareClass::Cpu, 10)]);
    let mut p = plan(&[100], 0.5, 5, OnFail::Pause);
    p.max_concurrent_downloads = 10;
    let mut r = Rollout::new(RolloutId(10), p, targets).unwrap();
    r.handle(Event::Start);
    for n in 0..3 {
        r.handle(Event::DeviceCommitted { device: DeviceId::new(format!("cpu-{n}")).unwrap() });
    }
    let out = r.handle(Event::Rollback);
    assert_eq!(count(&out, |a| matches!(a, Action::RollBackDevice { .. })), 3);
    assert_eq!(out.last(), Some(&Action::Aborted));
    let late = r.handle(Event::DeviceCommitted { device: DeviceId::new("cpu-5").unwrap() });
    assert_eq!(late, vec![Action::RollBackDevice { device: DeviceId::new("cpu-5").unwrap() }]);
    assert!(r.handle(Event::Rollback).is_empty());
}

#[test]
fn bake_waits_for_ticks_after_the_last_resolution() {
    let targets = fleet(&[(HardwareClass::Cpu, 10)]);
    let mut p = plan(&[50, 100], 0.9, 1, OnFail::Pause);
    p.bake_ms = 60_000;
    let mut r = Rollout::new(RolloutId(11), p, targets).unwrap();
    r.handle(Event::Tick { now_ms: 1_000 });
    r.handle(Event::Start);
    for n in 0..5 {
        r.handle(Event::DeviceCommitted { device: DeviceId::new(format!("cpu-{n}")).unwrap() });
    }
    assert_eq!(r.tracks()[0].phase, TrackPhase::Baking { until_ms: 61_000 });
    assert!(r.handle(Event::Tick { now_ms: 60_999 }).is_empty());
    // An older tick does not move time back.
    assert!(r.handle(Event::Tick { now_ms: 5 }).is_empty());
    let out = r.handle(Event::Tick { now_ms: 61_000 });
    assert!(matches!(out.first(), Some(Action::Promoted { stage: 1, .. })), "{out:?}");
}

#[test]
fn bad_targets_and_unknown_devices() {
    let p = plan(&[100], 0.1, 1, OnFail::Pause);
    assert_eq!(Rollout::new(RolloutId(1), p.clone(), vec![]).unwrap_err(), RolloutError::NoTargets);
    let mut dup = fleet(&[(HardwareClass::Cpu, 2)]);
    dup.push(dup[0].clone());
    assert!(matches!(Rollout::new(RolloutId(1), p.clone(), dup), Err(RolloutError::DuplicateTarget(_))));
    let mut bad = p.clone();
    bad.stages = vec![10, 50];
    assert!(matches!(Rollout::new(RolloutId(1), bad, fleet(&[(HardwareClass::Cpu, 2)])), Err(RolloutError::Plan(_))));
    let mut r = Rollout::new(RolloutId(1), p, fleet(&[(HardwareClass::Cpu, 2)])).unwrap();
    let before = r.clone();
    assert!(r.handle(Event::DeviceCommitted { device: DeviceId::new("stranger").unwrap() }).is_empty());
    // Not dispatched yet (not started): ignored.
    assert!(
        r.handle(Event::DeviceFailed { device: DeviceId::new("cpu-0").unwrap(), reason: String::new() }).is_empty()
    );
    assert_eq!(r, before);
}

#[test]
fn a_small_track_decides_on_the_census_at_its_last_stage() {
    // 5 GPU devices cannot give a Wilson bound under 10% (a partial stage of them holds), but
    // once all of them answered the failure rate is observed, not estimated.
    let good = fleet(&[(HardwareClass::Gpu, 5)]);
    let mut r = Rollout::new(RolloutId(13), plan(&[100], 0.1, 20, OnFail::Pause), good.clone()).unwrap();
    let (actions, _) = drive(&mut r, |_| Outcome::Commit);
    assert_eq!(r.status(), RolloutStatus::Completed, "{actions:?}");
    let mut r = Rollout::new(RolloutId(13), plan(&[100], 0.1, 20, OnFail::Pause), good).unwrap();
    let (actions, _) = drive(&mut r, |d| if d.as_str() == "gpu-4" { Outcome::Fail } else { Outcome::Commit });
    assert!(actions.iter().any(|a| matches!(a, Action::Paused { evidence: Some(e), .. } if e.census)), "{actions:?}");
}

#[test]
fn state_round_trips_through_json() {
    let targets = fleet(&[(HardwareClass::Cpu, 30), (HardwareClass::Gpu, 5)]);
    let mut r = Rollout::new(RolloutId(12), plan(&[10, 100], 0.5, 3, OnFail::Pause), targets).unwrap();
    drive(&mut r, |d| if d.as_str().ends_with('7') { Outcome::Silent } else { Outcome::Commit });
    let json = serde_json::to_string(&r).unwrap();
    let back: Rollout = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

fn health_plan() -> RolloutPlan {
    let mut p = plan(&[20, 100], 0.5, 5, OnFail::Rollback);
    p.health = Some(HealthGate {
        max_error_rate_increase: 0.01,
        max_p99_ratio: 1.5,
        min_inferences: 1_000,
        min_accuracy_delta: None,
        min_labelled: 100,
    });
    p
}

fn figures(devices: u32, inferences: u64, errors: u64, p99_us: u32) -> CohortFigures {
    CohortFigures { members: devices, devices, inferences, errors, p99_us: Some(p99_us), labelled: 0, correct: 0 }
}

fn gated(r: &mut Rollout) -> Vec<Action> {
    // 20% of 50 = 10 devices commit; the install gate alone would pass.
    let (actions, _) = drive(r, |_| Outcome::Commit);
    actions
}

#[test]
fn an_error_rate_regression_against_the_control_cohort_fails_the_gate() {
    let mut r = Rollout::new(RolloutId(20), health_plan(), fleet(&[(HardwareClass::Cpu, 50)])).unwrap();
    let before = gated(&mut r);
    // No figures yet: the install gate passes but the health gate needs inferences.
    assert!(
        before.iter().any(|a| matches!(a, Action::Held { reason: HoldReason::InsufficientInferences, .. })),
        "{before:?}"
    );
    // 5% errors on the new version vs 0.1% on the old one, with plenty of inferences.
    let out = r.handle(Event::CohortHealth {
        track: HardwareClass::Cpu,
        new: figures(10, 20_000, 1_000, 120),
        control: figures(40, 80_000, 80, 110),
    });
    let evidence = out
        .iter()
        .find_map(|a| match a {
            Action::TrackRolledBack { evidence, .. } => Some(evidence.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{out:?}"));
    let health = evidence.health.unwrap();
    assert_eq!(health.verdict, HealthVerdict::Regressed);
    assert!(health.new_error_rate.0 > health.control_error_rate.unwrap().1 + 0.01);
    assert_eq!(out.iter().filter(|a| matches!(a, Action::RollBackDevice { .. })).count(), 10);
}

#[test]
fn a_latency_regression_fails_and_a_healthy_cohort_passes() {
    let targets = fleet(&[(HardwareClass::Gpu, 50)]);
    let mut slow = Rollout::new(RolloutId(21), health_plan(), targets.clone()).unwrap();
    gated(&mut slow);
    let out = slow.handle(Event::CohortHealth {
        track: HardwareClass::Gpu,
        new: figures(10, 5_000, 0, 400),
        control: figures(40, 20_000, 0, 100),
    });
    assert!(out.iter().any(|a| matches!(a, Action::TrackRolledBack { .. })), "4x p99 must fail: {out:?}");

    let mut fine = Rollout::new(RolloutId(22), health_plan(), targets).unwrap();
    gated(&mut fine);
    let out = fine.handle(Event::CohortHealth {
        track: HardwareClass::Gpu,
        new: figures(10, 5_000, 1, 105),
        control: figures(40, 20_000, 3, 100),
    });
    assert!(out.iter().any(|a| matches!(a, Action::Promoted { stage: 1, .. })), "{out:?}");
    // The last stage has no control cohort left; the last one seen stays the baseline.
    let mut queue: VecDeque<Action> = out.into();
    while let Some(action) = queue.pop_front() {
        if let Action::Dispatch { device, .. } = action {
            queue.extend(fine.handle(Event::DeviceCommitted { device }));
        }
    }
    fine.handle(Event::CohortHealth {
        track: HardwareClass::Gpu,
        new: figures(50, 30_000, 2, 100),
        control: CohortFigures::default(),
    });
    fine.handle(Event::Tick { now_ms: 1_000_000 });
    assert_eq!(fine.status(), RolloutStatus::Completed);
    assert_eq!(fine.tracks()[0].cohorts.control, Some(figures(40, 20_000, 3, 100)));
}

#[test]
fn the_accuracy_gate_fails_a_less_accurate_version_waits_for_labels_and_passes_an_equal_one() {
    let mut p = health_plan();
    if let Some(g) = p.health.as_mut() {
        g.min_accuracy_delta = Some(-0.01);
    }
    let labelled = |f: CohortFigures, labelled: u64, correct: u64| CohortFigures { labelled, correct, ..f };
    let targets = fleet(&[(HardwareClass::Cpu, 50)]);

    let mut worse = Rollout::new(RolloutId(23), p.clone(), targets.clone()).unwrap();
    gated(&mut worse);
    // Same errors and latency, but 80% accurate against 92%: clearly more than 1 point worse.
    let out = worse.handle(Event::CohortHealth {
        track: HardwareClass::Cpu,
        new: labelled(figures(10, 5_000, 0, 100), 1_000, 800),
        control: labelled(figures(40, 20_000, 0, 100), 4_000, 3_680),
    });
    let evidence = out
        .iter()
        .find_map(|a| match a {
            Action::TrackRolledBack { evidence, .. } => evidence.health.clone(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(evidence.verdict, HealthVerdict::Regressed);
    assert!(evidence.accuracy_delta.unwrap().1 < -0.01);

    let mut equal = Rollout::new(RolloutId(24), p, targets).unwrap();
    gated(&mut equal);
    let out = equal.handle(Event::CohortHealth {
        track: HardwareClass::Cpu,
        new: labelled(figures(10, 5_000, 0, 100), 20, 18),
        control: labelled(figures(40, 20_000, 0, 100), 4_000, 3_680),
    });
    assert!(
        out.iter().any(|a| matches!(a, Action::Held { reason: HoldReason::InsufficientInferences, .. })),
        "20 labels are too few: {out:?}"
    );
    let out = equal.handle(Event::CohortHealth {
        track: HardwareClass::Cpu,
        new: labelled(figures(10, 5_000, 0, 100), 5_000, 4_650),
        control: labelled(figures(40, 20_000, 0, 100), 20_000, 18_400),
    });
    assert!(out.iter().any(|a| matches!(a, Action::Promoted { stage: 1, .. })), "93% vs 92% passes: {out:?}");
}

#[test]
fn a_hold_expires_at_the_plans_deadline_and_its_track_fails_by_on_hold_timeout() {
    // The inconclusive canary above (10 of 1000 committed, 5% threshold) holds for ever
    // without a deadline; with one, the track fails when it passes.
    let targets = fleet(&[(HardwareClass::Cpu, 1000)]);
    let mut forever = Rollout::new(RolloutId(7), plan(&[1, 100], 0.05, 20, OnFail::Pause), targets.clone()).unwrap();
    drive(&mut forever, |_| Outcome::Commit);
    assert!(forever.handle(Event::Tick { now_ms: 365 * 86_400_000 }).is_empty());
    assert_eq!(forever.status(), RolloutStatus::Running);

    let mut p = plan(&[1, 100], 0.05, 20, OnFail::Pause);
    p.max_hold_ms = Some(3_600_000);
    let mut paused = Rollout::new(RolloutId(8), p.clone(), targets.clone()).unwrap();
    drive(&mut paused, |_| Outcome::Commit);
    let TrackPhase::Gating { since_ms, last: Some(_) } = paused.tracks()[0].phase else { panic!("held") };
    assert!(paused.handle(Event::Tick { now_ms: since_ms + 3_599_999 }).is_empty(), "not yet");
    let expired = paused.handle(Event::Tick { now_ms: since_ms + 3_600_000 });
    assert!(
        matches!(
            &expired[..],
            [
                Action::HoldExpired { track: HardwareClass::Cpu, reason: HoldReason::Inconclusive, held_ms: 3_600_000 },
                Action::Paused { track: Some(HardwareClass::Cpu), reason: PauseReason::HoldExpired, evidence: Some(_) }
            ]
        ),
        "{expired:?}"
    );
    assert_eq!(
        paused.tracks()[0].phase,
        TrackPhase::Failed { on_fail: OnFail::Pause, expired_hold: Some(HoldReason::Inconclusive) }
    );
    assert_eq!(paused.status(), RolloutStatus::Stopped);

    // `on_hold_timeout` overrides `on_fail` for expired holds: the canary's 10 roll back.
    p.on_hold_timeout = Some(OnFail::Rollback);
    let mut rolled = Rollout::new(RolloutId(9), p, targets).unwrap();
    drive(&mut rolled, |_| Outcome::Commit);
    let expired = rolled.handle(Event::Tick { now_ms: 1 << 40 });
    assert_eq!(count(&expired, |a| matches!(a, Action::RollBackDevice { .. })), 10);
    assert!(matches!(expired.last(), Some(Action::TrackRolledBack { track: HardwareClass::Cpu, .. })), "{expired:?}");
}
