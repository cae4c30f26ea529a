//! Property tests for the rollout state machine (see `mod.rs` for the invariants).
//!
//! Random fleets (1–200 devices, mixed classes), random plans and random event sequences.
//! Device events are drawn mostly from devices already dispatched (so gates get decided),
//! sometimes from pending or unknown devices (which must be ignored).
#![allow(clippy::unwrap_used)]

use super::machine::TrackPhase;
use super::tests::plan;
use super::*;
use edgefleet_protocol::{DeviceId, HardwareClass};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn arb_fleet() -> impl Strategy<Value = Vec<Target>> {
    prop::collection::vec(0usize..3, 1..=200).prop_map(|classes| {
        classes
            .into_iter()
            .enumerate()
            .map(|(i, c)| Target { device: DeviceId::new(format!("d{i}")).unwrap(), hardware: HardwareClass::ALL[c] })
            .collect()
    })
}

fn arb_plan() -> impl Strategy<Value = RolloutPlan> {
    let stages = prop::sample::select(vec![
        vec![100u8],
        vec![1, 10, 50, 100],
        vec![5, 25, 100],
        vec![50, 100],
        vec![1, 2, 3, 100],
    ]);
    (stages, 0u64..3_000, 0.0f64..0.6, 1u32..30, 0.0f64..0.5, 1u32..40, any::<bool>(), 0.5f64..0.999).prop_map(
        |(stages, bake_ms, max_failure_rate, min_sample, max_unreachable_rate, conc, rollback, confidence)| {
            let mut p =
                plan(&stages, max_failure_rate, min_sample, if rollback { OnFail::Rollback } else { OnFail::Pause });
            p.bake_ms = bake_ms;
            p.max_unreachable_rate = max_unreachable_rate;
            p.max_concurrent_downloads = conc;
            p.confidence = confidence;
            if conc % 3 == 0 {
                p.health = Some(HealthGate {
                    max_error_rate_increase: 0.02,
                    max_p99_ratio: 1.5,
                    min_inferences: 500,
                    min_accuracy_delta: Some(-0.02),
                    min_labelled: 50,
                });
            }
            p
        },
    )
}

/// Raw steps: (kind roll, device selector, time step). Turned into events against the live state.
type Step = (u8, u32, u16);

/// Weights of the device outcomes for one case: (commit, fail, unreachable).
fn concrete(r: &Rollout, targets: &[Target], (kind, sel, dt): Step, fail_weight: u8) -> Event {
    let dispatched: Vec<&DeviceId> = targets
        .iter()
        .map(|t| &t.device)
        .filter(|d| r.device_state(d).is_some_and(|s| s != DeviceState::Pending))
        .collect();
    let in_flight: Vec<&DeviceId> = dispatched
        .iter()
        .copied()
        .filter(|d| r.device_state(d).is_some_and(|s| matches!(s, DeviceState::Dispatched | DeviceState::Installing)))
        .collect();
    let pick = || -> DeviceId {
        let n = dispatched.len() as u32;
        if sel % 10 < 6 && !in_flight.is_empty() {
            in_flight[(sel / 10) as usize % in_flight.len()].clone()
        } else if sel % 10 < 8 && n > 0 {
            dispatched[(sel / 10 % n) as usize].clone()
        } else if sel % 10 == 8 {
            targets[(sel / 10) as usize % targets.len()].device.clone()
        } else {
            DeviceId::new("ghost").unwrap()
        }
    };
    match kind % 100 {
        0..=3 => Event::Start,
        4..=17 => Event::Tick { now_ms: r.now_ms() + u64::from(dt) },
        18 if !r.tracks().is_empty() => {
            // Cohort figures: anything from clean to clearly regressed, sometimes no control.
            let track = r.tracks()[sel as usize % r.tracks().len()].hardware;
            let inferences = u64::from(dt) * 10;
            let new = CohortFigures {
                members: 1 + sel % 7,
                devices: 1 + sel % 7,
                inferences,
                errors: inferences * u64::from(sel % 5) / 40,
                p99_us: Some(100 + (sel % 300)),
                labelled: inferences / 2,
                correct: inferences / 2 * u64::from(10 - sel % 4) / 10,
            };
            let control = CohortFigures {
                members: sel % 3,
                devices: sel % 3,
                inferences: u64::from(sel % 3) * 5_000,
                errors: u64::from(sel % 3) * 20,
                p99_us: (sel % 3 > 0).then_some(150),
                labelled: u64::from(sel % 3) * 400,
                correct: u64::from(sel % 3) * 360,
            };
            Event::CohortHealth { track, new, control }
        }
        19 if !r.tracks().is_empty() => {
            // An operator override, usually for the stage the track is at.
            let track = &r.tracks()[sel as usize % r.tracks().len()];
            let stage = if sel % 4 == 0 { track.stage + 1 } else { track.stage };
            Event::Promote { track: track.hardware, stage }
        }
        20..=24 => Event::DeviceAccepted { device: pick() },
        25..=27 => Event::DeviceInstalling { device: pick() },
        k if k < 28 + fail_weight / 3 => Event::DeviceFailed { device: pick(), reason: "probation".into() },
        k if k < 88 => Event::DeviceCommitted { device: pick() },
        88..=93 => Event::DeviceUnreachable { device: pick() },
        94..=95 => Event::Pause,
        96..=97 => Event::Resume,
        // Rare, or most cases would end early.
        98 if sel % 16 == 0 => Event::Abort,
        99 if sel % 16 == 0 => Event::Rollback,
        _ => Event::Tick { now_ms: r.now_ms() + u64::from(dt) },
    }
}

fn json(r: &Rollout) -> String {
    serde_json::to_string(r).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_on_any_event_sequence(
        targets in arb_fleet(),
        p in arb_plan(),
        steps in prop::collection::vec((any::<u8>(), any::<u32>(), any::<u16>()), 1..300),
        fail_weight in 0u8..90,
    ) {
        let mut r = Rollout::new(RolloutId(9), p.clone(), targets.clone()).unwrap();
        let mut log = Vec::new();
        let mut failed_tracks: BTreeSet<HardwareClass> = BTreeSet::new();
        let mut stages: BTreeMap<HardwareClass, usize> = BTreeMap::new();
        for step in steps {
            let event = concrete(&r, &targets, step, fail_weight);
            log.push(event.clone());
            // (e) no panic; (c) the same event twice changes nothing the second time.
            let actions = r.handle(event.clone());
            let once = json(&r);
            let again = r.handle(event.clone());
            prop_assert!(again.is_empty(), "{event:?} repeated gave {again:?}");
            prop_assert_eq!(&json(&r), &once, "{:?} repeated changed the state", event);
            log.push(event); // applied twice, so logged twice

            // (b) a track whose gate failed never promotes again.
            for a in &actions {
                match a {
                    Action::Promoted { track, .. } | Action::TrackCompleted { track, .. } => {
                        prop_assert!(!failed_tracks.contains(track), "failed track {track} promoted");
                    }
                    Action::Paused { track: Some(track), .. } | Action::TrackRolledBack { track, .. } => {
                        failed_tracks.insert(*track);
                    }
                    _ => {}
                }
            }
            // (a) a track never has more dispatched than its current stage's share.
            let mut in_flight = 0;
            for track in r.tracks() {
                let states: Vec<DeviceState> =
                    track.members.iter().map(|&i| r.device_state(&targets[i as usize].device).unwrap()).collect();
                let dispatched = states.iter().filter(|&&s| s != DeviceState::Pending).count();
                // The share is computed here, independently of the machine: ceil(percent × size).
                let quota = (usize::from(p.stages[track.stage]) * track.members.len()).div_ceil(100);
                prop_assert!(dispatched <= quota,
                    "{} has {dispatched} dispatched at stage {}", track.hardware, track.stage);
                prop_assert!(track.members.iter().all(|&i| targets[i as usize].hardware == track.hardware));
                // The stage only moves by a promotion reported in this step.
                let before = stages.insert(track.hardware, track.stage).unwrap_or(0);
                let promoted = actions.iter().any(|a| matches!(a, Action::Promoted { track: t, .. } if *t == track.hardware));
                prop_assert!(track.stage == before || (promoted && track.stage > before),
                    "{} moved from stage {before} to {} without a promotion", track.hardware, track.stage);
                in_flight += states.iter().filter(|&&s| matches!(s, DeviceState::Dispatched | DeviceState::Installing)).count();
                if failed_tracks.contains(&track.hardware) {
                    prop_assert!(matches!(track.phase, TrackPhase::Failed { .. }), "failed track {} left Failed", track.hardware);
                }
            }
            // Downloads in flight stay within the plan's limit.
            prop_assert!(in_flight <= p.max_concurrent_downloads as usize);
        }
        // (d) replaying the log rebuilds the same state.
        let rebuilt = Rollout::replay(RolloutId(9), p, targets, log).unwrap();
        prop_assert_eq!(json(&rebuilt), json(&r));
    }

    #[test]
    fn a_well_behaved_fleet_always_progresses(targets in arb_fleet(), p in arb_plan()) {
        // Every device commits at once: a track may hold for lack of evidence but never fails.
        let mut r = Rollout::new(RolloutId(3), p, targets).unwrap();
        let mut pending = r.handle(Event::Start);
        let mut now = 0;
        for _ in 0..100_000 {
            let Some(action) = pending.pop() else {
                now += 1_000;
                let out = r.handle(Event::Tick { now_ms: now });
                if out.is_empty() { break; }
                pending.extend(out);
                continue;
            };
            let stopped = matches!(action, Action::Paused { .. } | Action::TrackRolledBack { .. } | Action::RollBackDevice { .. });
            prop_assert!(!stopped, "{:?}", action);
            if let Action::Dispatch { device, .. } = action {
                pending.extend(r.handle(Event::DeviceCommitted { device }));
            }
        }
        prop_assert!(matches!(r.status(), RolloutStatus::Completed | RolloutStatus::Running));
    }
}
