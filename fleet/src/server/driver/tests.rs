//! The rollout driver without sockets, disks or a wall clock: time is a number passed in.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::drift::device::DeviceDrift;
use crate::rollout::{Rollout, RolloutId, Target};
use crate::server::registry::DeviceRecord;
use crate::server::rollouts::RolloutRequest;
use crate::server::store::contract;
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::uplink::DeploymentState;
use edgefleet_protocol::{Digest, ModelName};

const SETTINGS: DriverSettings = DriverSettings { unreachable_after_ms: 60_000 };
const T0: u64 = 1_000_000;

fn dev(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

/// Rollout 1 of `detector@2` to `n` CPU devices with the given plan keys, not started.
fn record(n: usize, plan: serde_json::Value) -> RolloutRecord {
    // A lenient failure budget: the Wilson bound of a handful of devices decides at once.
    let mut request =
        serde_json::json!({"model": "detector", "version_seq": 2, "min_sample": 1, "max_failure_rate": "95%"});
    request.as_object_mut().unwrap().extend(plan.as_object().unwrap().clone());
    let request: RolloutRequest = serde_json::from_value(request).unwrap();
    let defaults =
        ProbationBudget { duration_ms: 1_000, min_inferences: 0, max_error_rate_ppm: 0, max_p99_latency_us: 0 };
    let (plan, probation) = request.plan(&defaults).unwrap();
    let targets = (0..n).map(|i| Target { device: dev(&format!("edge-{i}")), hardware: HardwareClass::Cpu }).collect();
    RolloutRecord {
        id: 1,
        request,
        created_by: "ops".into(),
        created_at_ms: T0,
        finished_at_ms: None,
        package_id: Digest::sha256(b"package head"),
        head_size: 321,
        probation,
        machine: Rollout::new(RolloutId(1), plan, targets).unwrap(),
        last_heard_ms: BTreeMap::new(),
        latest_commands: BTreeMap::new(),
        decisions: BTreeMap::new(),
        failures: BTreeMap::new(),
        rollback_skipped: BTreeMap::new(),
        holds: BTreeMap::new(),
    }
}

/// The fleet's devices: `names` serve `detector@version`.
fn fleet_of(names: &[&str], version: u64) -> &'static BTreeMap<DeviceId, DeviceRecord> {
    let mut devices = BTreeMap::new();
    for name in names {
        let mut d = DeviceRecord::new(dev(name), T0);
        d.active_models.push(crate::server::registry::ServedModel {
            name: "detector".into(),
            version_seq: version,
            label: String::new(),
            package_id: String::new(),
        });
        devices.insert(dev(name), d);
    }
    Box::leak(Box::new(devices))
}

fn running(names: &[&str], version: u64) -> FleetView<'static> {
    let drift: &'static BTreeMap<DeviceId, DeviceDrift> = Box::leak(Box::default());
    FleetView { devices: fleet_of(names, version), drift }
}

fn nobody() -> FleetView<'static> {
    running(&[], 0)
}

fn rollbacks(fx: &Effects) -> Vec<String> {
    fx.commands.iter().filter(|(_, c)| matches!(c.body, CommandBody::Rollback(_))).map(|(d, _)| d.to_string()).collect()
}

fn deploys(fx: &Effects) -> Vec<(String, CommandId)> {
    fx.commands
        .iter()
        .filter(|(_, c)| matches!(c.body, CommandBody::Deploy(_)))
        .map(|(d, c)| (d.to_string(), c.command_id))
        .collect()
}

fn actions(fx: &Effects) -> Vec<&'static str> {
    fx.audit.iter().map(|a| a.action).collect()
}

fn status(driver: &RolloutDriver, device: &str, seq: u64, state: DeploymentState) -> DeploymentStatus {
    let deployment_id = driver.get(1).unwrap().machine.deployment_id_of(&dev(device)).unwrap();
    DeploymentStatus {
        seq,
        timestamp_ms: 0,
        deployment_id,
        model: ModelName::new("detector").unwrap(),
        version_seq: 2,
        state,
    }
}

fn commit(driver: &mut RolloutDriver, device: &str, now: u64, ids: &mut CommandIds) -> Effects {
    let s = status(driver, device, now, DeploymentState::Committed);
    driver.on_deployment(&dev(device), &s, now, ids)
}

#[test]
fn a_started_rollout_dispatches_its_first_stage_with_the_typed_package_id() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    assert_eq!(driver.next_id(), 1);
    let fx = driver.start(record(4, serde_json::json!({"stages": "50%,100%", "bake": "0s"})), T0, &mut ids);
    let sent = deploys(&fx);
    assert_eq!(sent.len(), 2, "stage 1 is half of 4 devices: {sent:?}");
    for (_, command) in &fx.commands {
        let (CommandBody::Deploy(d), at) = (&command.body, command.issued_at_ms) else { panic!("a deploy") };
        assert_eq!((d.package_id, d.head_size, d.version_seq, at), (Digest::sha256(b"package head"), 321, 2, T0));
    }
    assert!(fx.writes.contains(&1));
    let r = driver.get(1).unwrap();
    assert_eq!(r.last_heard_ms.len(), 2, "every dispatched device gets a silence budget");
    assert_eq!(r.latest_commands.len(), 2);
    assert_eq!(driver.active_for_model("detector").map(|r| r.id), Some(1));
    assert_eq!(driver.next_id(), 2);
}

#[test]
fn a_stage_advances_only_after_its_commits_and_bake() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    let fx = driver.start(record(4, serde_json::json!({"stages": "50%,100%", "bake": "10s"})), T0, &mut ids);
    let first: Vec<String> = deploys(&fx).into_iter().map(|(d, _)| d).collect();
    for d in &first {
        commit(&mut driver, d, T0 + 1_000, &mut ids);
    }
    let early = driver.tick(T0 + 5_000, None, &mut ids);
    assert!(deploys(&early).is_empty() && !actions(&early).contains(&"rollout.promote"), "still baking: {early:?}");
    let baked = driver.tick(T0 + 11_001, None, &mut ids);
    assert_eq!(actions(&baked), vec!["rollout.promote"], "{baked:?}");
    assert_eq!(baked.gate_decisions, 1);
    let second: Vec<String> = deploys(&baked).into_iter().map(|(d, _)| d).collect();
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|d| !first.contains(d)), "stage 2 takes the other devices");
    for d in &second {
        commit(&mut driver, d, T0 + 12_000, &mut ids);
    }
    let done = driver.tick(T0 + 30_000, None, &mut ids);
    assert_eq!(actions(&done), vec!["rollout.track_completed", "rollout.completed"]);
    let r = driver.get(1).unwrap();
    assert_eq!(r.finished_at_ms, Some(T0 + 30_000));
    assert!(r.last_heard_ms.is_empty());
    assert!(driver.active_for_model("detector").is_none());
}

#[test]
fn after_a_restart_in_flight_devices_get_their_deploy_again_and_only_the_latest_command_counts() {
    let mut ids = CommandIds::after(100);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    let fx = driver.start(record(2, serde_json::json!({"stages": "100%", "bake": "0s"})), T0, &mut ids);
    let before = deploys(&fx);
    assert_eq!(before.len(), 2);
    // The fleet manager restarts: a new driver from the stored records.
    let stored: Vec<RolloutRecord> = driver.records().cloned().collect();
    let mut driver = RolloutDriver::new(SETTINGS, stored);
    let later = T0 + 50_000;
    let fx = driver.reconnected(later, &mut ids);
    let after = deploys(&fx);
    assert_eq!(after.iter().map(|(d, _)| d).collect::<Vec<_>>(), before.iter().map(|(d, _)| d).collect::<Vec<_>>());
    assert!(after.iter().zip(&before).all(|(a, b)| a.1 != b.1), "new command ids");
    assert!(driver.get(1).unwrap().last_heard_ms.values().all(|&t| t == later), "a fresh silence budget");
    assert_eq!(driver.get(1).unwrap().latest_commands.len(), 2, "superseded commands are pruned");

    let (device, old) = (&before[0].0, before[0].1);
    let rejected = |command_id| CommandAck { seq: 1, command_id, result: AckResult::Rejected("disk full".into()) };
    let fx = driver.on_ack(&dev(device), &rejected(old), later, &mut ids);
    assert_eq!(fx, Effects::default(), "an ack of a superseded command changes nothing");
    let fx = driver.on_ack(&dev("edge-intruder"), &rejected(after[0].1), later, &mut ids);
    assert_eq!(fx, Effects::default(), "an ack from another device than the addressee changes nothing");
    let fx = driver.on_ack(&dev(device), &rejected(after[0].1), later, &mut ids);
    assert!(fx.writes.contains(&1));
    let r = driver.get(1).unwrap();
    assert_eq!(r.machine.device_state(&dev(device)), Some(DeviceState::Failed));
    assert_eq!(r.failures.get(&dev(device)).map(String::as_str), Some("command rejected: disk full"));
}

#[test]
fn a_birth_mid_deployment_resends_the_deploy_and_silence_makes_a_device_unreachable() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    driver.start(record(1, serde_json::json!({"stages": "100%", "bake": "0s"})), T0, &mut ids);
    let fx = driver.on_birth(&dev("edge-0"), T0 + 1_000, &mut ids);
    assert_eq!(deploys(&fx).len(), 1);
    assert!(deploys(&driver.on_birth(&dev("edge-9"), T0, &mut ids)).is_empty(), "not a target");
    // An accepted ack refreshes the silence budget.
    let live = *driver.get(1).unwrap().latest_commands.get(&dev("edge-0")).unwrap();
    let accepted = CommandAck { seq: 2, command_id: live, result: AckResult::Accepted };
    driver.on_ack(&dev("edge-0"), &accepted, T0 + 30_000, &mut ids);
    driver.tick(T0 + 60_000, None, &mut ids);
    assert_eq!(driver.get(1).unwrap().machine.device_state(&dev("edge-0")), Some(DeviceState::Dispatched));
    driver.tick(T0 + 90_001, None, &mut ids);
    assert_eq!(driver.get(1).unwrap().machine.device_state(&dev("edge-0")), Some(DeviceState::Unreachable));
}

#[test]
fn a_rollback_tells_committed_devices_to_roll_back_and_is_audited_first() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    driver.start(record(2, serde_json::json!({"stages": "100%", "bake": "1h"})), T0, &mut ids);
    commit(&mut driver, "edge-0", T0 + 1_000, &mut ids);
    let fx = driver
        .operate(1, RolloutOp::Rollback, "alice", "bad outputs", running(&["edge-0"], 2), T0 + 2_000, &mut ids)
        .unwrap();
    assert_eq!(fx.audit[0].action, "rollout.rollback");
    assert_eq!(fx.audit[0].actor, "alice");
    assert_eq!(fx.audit[0].detail["reason"], "bad outputs");
    let rollbacks: Vec<String> = fx
        .commands
        .iter()
        .filter(|(_, c)| matches!(c.body, CommandBody::Rollback(_)))
        .map(|(d, _)| d.to_string())
        .collect();
    assert_eq!(rollbacks, vec!["edge-0"]);
    let r = driver.get(1).unwrap();
    assert_eq!(r.machine.status(), RolloutStatus::RolledBack);
    assert_eq!(r.finished_at_ms, Some(T0 + 2_000));
    let again = driver.operate(1, RolloutOp::Rollback, "alice", "", nobody(), T0 + 3_000, &mut ids).unwrap_err();
    assert_eq!(again.to_string(), "rollout 1 is rolled back: cannot roll back it");
    assert_eq!(
        driver.operate(9, RolloutOp::Pause, "alice", "", nobody(), T0, &mut ids).unwrap_err(),
        DriverError::UnknownRollout(9)
    );
}

#[test]
fn a_paused_rollout_dispatches_nothing_until_resumed() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    let fx = driver.start(record(4, serde_json::json!({"stages": "25%,100%", "bake": "0s"})), T0, &mut ids);
    let first = deploys(&fx)[0].0.clone();
    let fx = driver.operate(1, RolloutOp::Pause, "bob", "night", nobody(), T0 + 1, &mut ids).unwrap();
    assert_eq!(actions(&fx)[0], "rollout.pause");
    commit(&mut driver, &first, T0 + 1_000, &mut ids);
    let fx = driver.tick(T0 + 10_000, None, &mut ids);
    assert!(deploys(&fx).is_empty(), "paused: {fx:?}");
    let err = driver.operate(1, RolloutOp::Pause, "bob", "", nobody(), T0 + 10_001, &mut ids).unwrap_err();
    assert!(matches!(err, DriverError::NotAllowed { op: RolloutOp::Pause, .. }));
    let fx = driver.operate(1, RolloutOp::Resume, "bob", "morning", nobody(), T0 + 20_000, &mut ids).unwrap();
    assert_eq!(actions(&fx)[..2], ["rollout.resume", "rollout.promote"], "resume re-evaluates at once: {fx:?}");
    assert_eq!(deploys(&fx).len(), 3);
}

#[test]
fn promote_overrides_only_a_holding_gate() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    driver.start(record(2, serde_json::json!({"stages": "50%,100%", "bake": "0s"})), T0, &mut ids);
    let err = driver.promote(1, None, "carol", "", T0, &mut ids).unwrap_err();
    assert_eq!(err, DriverError::NothingHeld { id: 1, track: None });
    assert!(err.to_string().contains("promote only overrides a holding gate"));
}

#[test]
fn a_deployment_status_for_another_rollouts_deployment_is_ignored() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    driver.start(record(2, serde_json::json!({"stages": "100%"})), T0, &mut ids);
    let mut forged = status(&driver, "edge-0", 1, DeploymentState::Committed);
    // edge-1 claims edge-0's deployment: not its own, so nothing changes.
    let fx = driver.on_deployment(&dev("edge-1"), &forged, T0, &mut ids);
    assert_eq!(fx, Effects::default());
    forged.deployment_id = DeploymentId(7 << 32);
    assert_eq!(driver.on_deployment(&dev("edge-0"), &forged, T0, &mut ids), Effects::default());
}

#[test]
fn the_contract_fixture_rollout_round_trips_through_the_driver() {
    let m = contract::model("vibration", 3);
    let r = contract::rollout(4, &m, &["edge-1", "edge-2"]);
    let live = *r.latest_commands.values().next().unwrap();
    let driver = RolloutDriver::new(SETTINGS, [r.clone()]);
    assert_eq!(driver.get(4), Some(&r));
    assert_eq!(driver.commands.get(&live).map(|(id, _)| *id), Some(4), "the ack index is rebuilt at load");
}

#[test]
fn a_rollback_undoes_only_what_this_rollout_installed_where_the_device_still_runs_it() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    driver.start(record(3, serde_json::json!({"stages": "100%", "bake": "0s"})), T0, &mut ids);
    for d in ["edge-0", "edge-1", "edge-2"] {
        commit(&mut driver, d, T0 + 1_000, &mut ids);
    }
    driver.tick(T0 + 2_000, None, &mut ids);
    assert_eq!(driver.get(1).unwrap().machine.status(), RolloutStatus::Completed);
    // Later, edge-1 runs version 3 (another rollout) and edge-2 no longer serves the model.
    let mut now = running(&["edge-0"], 2);
    let mut devices = now.devices.clone();
    devices.extend(fleet_of(&["edge-1"], 3).clone());
    now.devices = Box::leak(Box::new(devices));
    let fx = driver.operate(1, RolloutOp::Rollback, "alice", "", now, T0 + 60_000, &mut ids).unwrap();
    assert_eq!(rollbacks(&fx), vec!["edge-0"]);
    let r = driver.get(1).unwrap();
    assert_eq!(
        r.rollback_skipped.get(&dev("edge-1")).map(String::as_str),
        Some("skipped: runs detector version 3 now, not this rollout's 2")
    );
    assert_eq!(r.rollback_skipped.get(&dev("edge-2")).map(String::as_str), Some("skipped: no longer serves detector"));
}

#[test]
fn an_aborted_rollout_can_still_be_rolled_back() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    driver.start(record(2, serde_json::json!({"stages": "50%,100%", "bake": "1h"})), T0, &mut ids);
    let first = driver.get(1).unwrap().in_flight()[0].to_string();
    commit(&mut driver, &first, T0 + 1_000, &mut ids);
    let fx = driver.operate(1, RolloutOp::Abort, "bob", "wrong model", nobody(), T0 + 2_000, &mut ids).unwrap();
    assert_eq!(actions(&fx), vec!["rollout.abort", "rollout.stopped"]);
    assert_eq!(driver.get(1).unwrap().machine.status(), RolloutStatus::Aborted);
    let fx =
        driver.operate(1, RolloutOp::Rollback, "bob", "undo it", running(&[&first], 2), T0 + 3_000, &mut ids).unwrap();
    assert_eq!(actions(&fx), vec!["rollout.rollback"], "no second 'stopped'");
    assert_eq!(rollbacks(&fx), vec![first]);
    assert_eq!(driver.get(1).unwrap().machine.status(), RolloutStatus::RolledBack);
}

/// Devices with one health report each: `new` serve version 2, `old` version 1, each with
/// `inferences` so far.
fn reporting(new: &[String], old: &[String], inferences: u64) -> FleetView<'static> {
    use crate::server::registry::{HealthPoint, ServedModel};
    use edgefleet_protocol::uplink::ModelHealth;
    let mut devices = BTreeMap::new();
    for (names, version) in [(new, 2), (old, 1)] {
        for name in names {
            let mut d = DeviceRecord::new(dev(name), T0);
            d.active_models.push(ServedModel {
                name: "detector".into(),
                version_seq: version,
                label: String::new(),
                package_id: String::new(),
            });
            d.health.push_back(HealthPoint {
                timestamp_ms: T0,
                received_ms: T0,
                models: vec![ModelHealth {
                    name: ModelName::new("detector").unwrap(),
                    version_seq: version,
                    inference_count: inferences,
                    error_count: 0,
                    latency_p50_us: 100,
                    latency_p99_us: 200,
                }],
                outbox_depth: 0,
                outbox_evictions: 0,
                rss_bytes: 0,
                cpu_percent: 0.0,
                free_disk_bytes: 1 << 30,
            });
            devices.insert(dev(name), d);
        }
    }
    let drift: &'static BTreeMap<DeviceId, DeviceDrift> = Box::leak(Box::default());
    FleetView { devices: Box::leak(Box::new(devices)), drift }
}

#[test]
fn a_hold_repeated_with_moving_evidence_is_audited_once_and_counted() {
    let mut ids = CommandIds::after(0);
    let mut driver = RolloutDriver::new(SETTINGS, []);
    // A health gate that wants 10,000 inferences: it holds while the counts grow.
    let plan = serde_json::json!({"stages": "50%,100%", "bake": "0s", "max_error_rate_increase": "1%",
        "min_inferences": 10_000});
    let fx = driver.start(record(4, plan), T0, &mut ids);
    let first: Vec<String> = deploys(&fx).into_iter().map(|(d, _)| d).collect();
    let rest: Vec<String> = (0..4).map(|i| format!("edge-{i}")).filter(|d| !first.contains(d)).collect();
    let mut audited = Vec::new();
    for d in &first {
        audited.extend(actions(&commit(&mut driver, d, T0 + 1_000, &mut ids)));
    }
    for k in 1..=5u64 {
        let fx = driver.tick(T0 + 2_000 * k, Some(reporting(&first, &rest, 100 * k)), &mut ids);
        audited.extend(actions(&fx));
    }
    let holds = audited.iter().filter(|a| **a == "rollout.hold").count();
    assert_eq!(holds, 1, "one audit entry for the same hold: {audited:?}");
    let tally = driver.get(1).unwrap().holds.get("cpu").cloned().unwrap();
    assert_eq!(tally.reason, "too little inference evidence");
    assert!(tally.repeats >= 4, "every tick moved the evidence: {tally:?}");
    let fx = driver.promote(1, None, "carol", "enough", T0 + 20_000, &mut ids).unwrap();
    let promoted = fx.audit.iter().find(|a| a.action == "rollout.promote").unwrap();
    assert_eq!(promoted.detail["held_before"]["repeats"], tally.repeats, "{:?}", promoted.detail);
    assert!(driver.get(1).unwrap().holds.is_empty());
}
