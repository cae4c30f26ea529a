//! The core without sockets: inputs in, [`Settled`] out, over the in-memory store and a
//! manual clock.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::api::health::{HealthState, HealthView};
use crate::server::clock::ManualClock;
use crate::server::driver::RolloutOp;
use crate::server::requests::ApiError;
use crate::server::rollouts::RolloutRequest;
use crate::server::store::{MemoryStore, contract};
use edgefleet_protocol::hardware::{HardwareClass, HardwareInfo};
use edgefleet_protocol::uplink::{Birth, DeploymentState, DeploymentStatus};
use edgefleet_protocol::{ModelName, SemVer, decode};
use rumqttc::{Publish, QoS};

const T0: u64 = 1_700_000_000_000;

struct Harness {
    core: Core,
    store: Arc<MemoryStore>,
    clock: ManualClock,
}

fn harness() -> Harness {
    let store = Arc::new(MemoryStore::default());
    let clock = ManualClock::at(T0);
    let cfg = CoreConfig {
        namespace: Namespace::new("ef").unwrap(),
        unreachable_after_ms: 60_000,
        retention: Retention { health: 4, history: 4 },
        probation: ProbationBudget {
            duration_ms: 1_000,
            min_inferences: 0,
            max_error_rate_ppm: 0,
            max_p99_latency_us: 0,
        },
        drift: crate::drift::DetectorSettings::default(),
        drift_retention: 8,
        info: crate::api::status::ServerInfo {
            http: "http://test".into(),
            mqtt: "mqtt://test".into(),
            embedded_broker: true,
            namespace: "ef".into(),
            data_dir: "/nonexistent".into(),
            pid: 1,
        },
    };
    let core = Core::open(cfg, store.clone(), Arc::new(clock.clone()), CommandIds::after(0)).unwrap();
    Harness { core, store, clock }
}

fn dev(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

fn publish(pkid: u16) -> Publish {
    let mut p = Publish::new(format!("ef/devices/d/{pkid}"), QoS::AtLeastOnce, vec![pkid as u8]);
    p.pkid = pkid;
    p
}

fn birth(device: &str, seq: u64) -> Uplink {
    Uplink::Birth(Birth {
        device_id: dev(device),
        boot_id: 7,
        agent_version: SemVer { major: 0, minor: 1, patch: 0 },
        hardware: HardwareInfo {
            class: HardwareClass::Cpu,
            cpu_arch: "x86_64".into(),
            cpu_cores: 2,
            memory_bytes: 1 << 30,
            gpu: None,
            accelerator: None,
        },
        free_disk_bytes: 1 << 30,
        free_memory_bytes: 1 << 29,
        active_models: vec![],
        seq,
    })
}

fn garbage() -> RefusedMessage {
    RefusedMessage::new("health", RefusalKind::Malformed, "unexpected end of input", b"\x01\x03garbage")
}

fn uplink(device: &str, uplink: Uplink, pkid: u16) -> Input {
    Input::Uplink { device: dev(device), uplink, ack: Some(publish(pkid)) }
}

/// Sends `request` through a batch; returns the answer and what the batch settled.
fn ask(core: &mut Core, request: ApiRequest) -> (ApiResult, Vec<Outbound>) {
    let (reply, mut answer) = oneshot::channel();
    let mut settled = core.apply_batch(vec![Input::Api { request, reply }]).unwrap();
    assert!(answer.try_recv().is_err(), "answers wait for the caller to release them after the commit");
    let (reply, answer) = settled.replies.pop().unwrap();
    let _ = reply;
    (answer, settled.outbound)
}

fn rollout_request(plan: serde_json::Value) -> RolloutRequest {
    let mut request = json!({"model": "vibration", "version_seq": 1, "min_sample": 1, "max_failure_rate": "95%"});
    request.as_object_mut().unwrap().extend(plan.as_object().unwrap().clone());
    serde_json::from_value(request).unwrap()
}

fn deploy_targets(outbound: &[Outbound]) -> Vec<String> {
    outbound
        .iter()
        .filter_map(|o| {
            let command: Command = decode(&o.payload).ok()?;
            matches!(command.body, CommandBody::Deploy(_)).then(|| o.topic.clone())
        })
        .collect()
}

#[test]
fn acks_leave_after_the_commit_in_arrival_order_refused_messages_included() {
    let mut h = harness();
    let batch = vec![
        uplink("edge-1", birth("edge-1", 1), 1),
        Input::Refused { device: Some(dev("edge-2")), refused: garbage(), ack: Some(publish(2)) },
        uplink("edge-1", birth("edge-1", 1), 3), // a duplicate: ignored, still acknowledged
        Input::Refused { device: None, refused: garbage(), ack: Some(publish(4)) },
    ];
    let settled = h.core.apply_batch(batch).unwrap();
    assert_eq!(settled.acks.iter().map(|p| p.pkid).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    let stored = h.store.load().unwrap();
    let born = stored.devices.iter().find(|d| d.id.as_str() == "edge-1").unwrap();
    assert_eq!(born.first_seen_ms, T0, "committed before its ack left; time from the clock passed in");
    let refused = stored.devices.iter().find(|d| d.id.as_str() == "edge-2").unwrap();
    assert_eq!(refused.quarantine.counts.get("malformed health"), Some(&1), "the refusal is kept for operators");
    let c = h.core.counters();
    assert_eq!((c.uplinks_applied, c.uplinks_ignored, c.uplinks_refused, c.commits), (1, 1, 2, 1));
}

#[test]
fn a_device_sending_garbage_is_flagged_once_audited_and_cleared_when_quiet() {
    let mut h = harness();
    let flood: Vec<Input> = (0..500u16)
        .map(|i| Input::Refused { device: Some(dev("edge-bad")), refused: garbage(), ack: Some(publish(i)) })
        .chain(std::iter::once(uplink("edge-good", birth("edge-good", 1), 999)))
        .collect();
    let settled = h.core.apply_batch(flood).unwrap();
    assert_eq!(settled.acks.len(), 501, "every message acknowledged, in order");
    let device = h.core.devices.get(&dev("edge-bad")).unwrap();
    assert_eq!(device.quarantine.total(), 500);
    assert_eq!(device.quarantine.recent.len(), super::super::quarantine::RECENT);
    let flag = device.quarantine.flagged.clone().unwrap();
    assert!(flag.reason.contains("malformed health: unexpected end of input"), "{}", flag.reason);
    assert!(h.core.devices.contains_key(&dev("edge-good")), "the others are ingested in the same batch");
    let audit = h.store.audit(0, 100).unwrap();
    assert_eq!(audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), vec!["device.flagged"]);
    // Stored with the device, so a restarted core still knows.
    let stored = h.store.load().unwrap();
    assert!(stored.devices.iter().any(|d| d.id.as_str() == "edge-bad" && d.quarantine.flagged.is_some()));

    h.clock.advance(super::super::quarantine::QUIET_MS);
    h.core.apply_batch(vec![Input::Tick]).unwrap();
    assert!(h.core.devices.get(&dev("edge-bad")).unwrap().quarantine.flagged.is_none());
    let audit = h.store.audit(0, 100).unwrap();
    assert_eq!(audit.last().map(|e| e.action.as_str()), Some("device.flag_cleared"));
}

#[test]
fn a_failed_commit_releases_nothing() {
    let mut h = harness();
    h.store.fail_writes(Some("disk full"));
    let err = h.core.apply_batch(vec![uplink("edge-1", birth("edge-1", 1), 1)]).err().unwrap();
    assert!(err.to_string().contains("disk full"), "{err}");
    h.store.fail_writes(None);
    assert!(h.store.load().unwrap().devices.is_empty());
}

#[test]
fn a_rollout_created_by_request_is_stored_audited_and_dispatched_after_the_commit() {
    let mut h = harness();
    let births = (0..4).map(|i| uplink(&format!("edge-{i}"), birth(&format!("edge-{i}"), 1), i as u16 + 1)).collect();
    h.core.apply_batch(births).unwrap();
    let (answer, _) = ask(&mut h.core, ApiRequest::RegisterModel { record: contract::model("vibration", 1) });
    answer.unwrap();

    let request = rollout_request(json!({"stages": "50%,100%", "bake": "10s"}));
    let (dry, outbound) = ask(
        &mut h.core,
        ApiRequest::CreateRollout { request: request.clone(), dry_run: true, actor: "ops".into(), revoked: vec![] },
    );
    dry.unwrap();
    assert!(outbound.is_empty() && h.store.load().unwrap().rollouts.is_empty(), "a dry run changes nothing");

    h.clock.advance(5);
    let (created, outbound) = ask(
        &mut h.core,
        ApiRequest::CreateRollout { request: request.clone(), dry_run: false, actor: "ops".into(), revoked: vec![] },
    );
    created.unwrap();
    let first = deploy_targets(&outbound);
    assert_eq!(first.len(), 2, "stage 1 of 4 devices at 50%");
    let stored = h.store.load().unwrap();
    assert_eq!(stored.rollouts.len(), 1);
    assert_eq!(stored.rollouts[0].created_at_ms, T0 + 5);
    let audit = h.store.audit(0, 100).unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["model.push", "rollout.create"]);
    assert!(audit.iter().all(|e| e.at_ms >= T0), "audit times come from the clock");

    let (again, _) =
        ask(&mut h.core, ApiRequest::CreateRollout { request, dry_run: false, actor: "ops".into(), revoked: vec![] });
    assert!(matches!(again, Err(ApiError::RolloutActive { id: 1, .. })), "one active rollout per model");

    // Commit the first stage; the bake runs on the manual clock.
    let commits: Vec<Input> = first
        .iter()
        .enumerate()
        .map(|(i, topic)| {
            let device = topic.split('/').nth(2).unwrap();
            let r = h.core.driver.get(1).unwrap();
            let status = DeploymentStatus {
                seq: 1,
                timestamp_ms: 0,
                deployment_id: r.machine.deployment_id_of(&dev(device)).unwrap(),
                model: ModelName::new("vibration").unwrap(),
                version_seq: 1,
                state: DeploymentState::Committed,
            };
            uplink(device, Uplink::Deployment(status), 100 + i as u16)
        })
        .collect();
    h.core.apply_batch(commits).unwrap();
    h.clock.advance(5_000);
    assert!(deploy_targets(&h.core.apply_batch(vec![Input::Tick]).unwrap().outbound).is_empty(), "still baking");
    h.clock.advance(6_000);
    let settled = h.core.apply_batch(vec![Input::Tick]).unwrap();
    assert_eq!(deploy_targets(&settled.outbound).len(), 2, "stage 2 after the bake");
    let audit = h.store.audit(0, 100).unwrap();
    assert_eq!(audit.last().map(|e| e.action.as_str()), Some("rollout.promote"));
    assert_eq!(h.core.counters().commands_sent, 4);
}

#[test]
fn operator_requests_on_rollouts_name_unknown_and_refused_ones() {
    let mut h = harness();
    let op = |op| ApiRequest::OperateRollout { id: 3, op, actor: "ops".into(), reason: String::new(), track: None };
    let (answer, _) = ask(&mut h.core, op(RolloutOp::Pause));
    assert_eq!(answer.unwrap_err(), ApiError::UnknownRollout { id: 3 });
    let (answer, _) = ask(&mut h.core, ApiRequest::ShowDevice { id: "nope".into() });
    assert!(matches!(answer, Err(ApiError::UnknownDevice { .. })));
    let (answer, _) = ask(&mut h.core, ApiRequest::ListDevices { selector: "hw=".into() });
    assert!(matches!(answer, Err(ApiError::Invalid { .. })));
}

#[test]
fn a_reconnect_resends_in_flight_deploys() {
    let mut h = harness();
    h.core.apply_batch(vec![uplink("edge-0", birth("edge-0", 1), 1)]).unwrap();
    ask(&mut h.core, ApiRequest::RegisterModel { record: contract::model("vibration", 1) }).0.unwrap();
    let request = rollout_request(json!({"stages": "100%"}));
    let (_, outbound) =
        ask(&mut h.core, ApiRequest::CreateRollout { request, dry_run: false, actor: "ops".into(), revoked: vec![] });
    assert_eq!(deploy_targets(&outbound), vec!["ef/devices/edge-0/cmd".to_string()]);
    let settled = h.core.apply_batch(vec![Input::Connected]).unwrap();
    assert_eq!(deploy_targets(&settled.outbound), vec!["ef/devices/edge-0/cmd".to_string()]);
}

#[test]
fn a_rollout_of_a_package_signed_by_a_revoked_key_is_refused_with_the_reason() {
    let mut h = harness();
    h.core.apply_batch(vec![uplink("edge-0", birth("edge-0", 1), 1)]).unwrap();
    let record = contract::model("vibration", 1);
    let key_id = record.key_id.clone();
    ask(&mut h.core, ApiRequest::RegisterModel { record }).0.unwrap();
    let request = rollout_request(json!({"stages": "100%"}));
    let revoked = vec![key_id.to_uppercase()];
    let (answer, outbound) =
        ask(&mut h.core, ApiRequest::CreateRollout { request, dry_run: false, actor: "ops".into(), revoked });
    let err = answer.unwrap_err();
    assert!(matches!(err, ApiError::KeyRevoked { .. }), "{err:?}");
    assert!(err.to_string().contains("which the trust store revokes: devices would refuse it"), "{err}");
    assert!(outbound.is_empty() && h.store.load().unwrap().rollouts.is_empty());
}

fn birth_of(device: &str, seq: u64, boot_id: u64, active: &[(&str, u64)]) -> Uplink {
    let Uplink::Birth(mut b) = birth(device, seq) else { unreachable!() };
    b.boot_id = boot_id;
    b.active_models = active
        .iter()
        .map(|&(name, version_seq)| edgefleet_protocol::uplink::ActiveModel {
            name: ModelName::new(name).unwrap(),
            version_seq,
            label: format!("v{version_seq}"),
            package_id: edgefleet_protocol::Digest::sha256(name.as_bytes()),
        })
        .collect();
    Uplink::Birth(b)
}

fn health_of(core: &mut Core, revoked: Vec<String>) -> Vec<HealthView> {
    match ask(core, ApiRequest::Health { device: None, model: None, revoked }).0.unwrap() {
        crate::api::ApiResponse::Health(list) => list,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_device_running_a_version_signed_by_a_revoked_key_is_failing_with_the_reason() {
    let mut h = harness();
    let record = contract::model("vibration", 1);
    let key_id = record.key_id.clone();
    ask(&mut h.core, ApiRequest::RegisterModel { record }).0.unwrap();
    h.core.apply_batch(vec![uplink("edge-0", birth_of("edge-0", 1, 7, &[("vibration", 1)]), 1)]).unwrap();
    h.core.apply_batch(vec![uplink("edge-1", birth_of("edge-1", 1, 8, &[]), 2)]).unwrap();
    let trusted = health_of(&mut h.core, vec![]);
    assert!(trusted.iter().all(|v| !v.reasons.iter().any(|r| r.contains("revoked"))), "{trusted:?}");
    let revoked = health_of(&mut h.core, vec![key_id.to_uppercase()]);
    let edge0 = revoked.iter().find(|v| v.device.as_str() == "edge-0").unwrap();
    assert_eq!(edge0.state, HealthState::Failing, "{edge0:?}");
    assert!(edge0.reasons[0].contains("runs vibration@1 signed by revoked key"), "{edge0:?}");
    let edge1 = revoked.iter().find(|v| v.device.as_str() == "edge-1").unwrap();
    assert!(!edge1.reasons.iter().any(|r| r.contains("revoked")), "edge-1 serves nothing: {edge1:?}");
}

#[test]
fn two_agents_alternating_on_one_device_id_are_a_duplicate_the_first_is_kept_and_it_clears() {
    let mut h = harness();
    let mut pkid = 0;
    for i in 0..6u64 {
        // Agent A (boot 0xA, serving v1) and agent B (boot 0xB, serving nothing) take turns.
        let (boot, active): (u64, &[(&str, u64)]) = if i % 2 == 0 { (0xA, &[("vibration", 1)]) } else { (0xB, &[]) };
        pkid += 1;
        h.clock.advance(500);
        h.core.apply_batch(vec![uplink("edge-0", birth_of("edge-0", i / 2 + 1, boot, active), pkid)]).unwrap();
    }
    let snapshot = h.store.load().unwrap();
    let record = snapshot.devices.iter().find(|d| d.id.as_str() == "edge-0").unwrap();
    let dup = record.boots.duplicate.clone().expect("duplicate found");
    assert_eq!((dup.kept, dup.other), (0xA, 0xB));
    assert_eq!(record.boot_id, 0xA, "the registry keeps the first agent");
    assert_eq!(record.active_models.len(), 1, "the second agent's birth did not overwrite the first's models");
    let audited: Vec<String> = h.store.audit(0, 100).unwrap().iter().map(|e| e.action.clone()).collect();
    assert_eq!(audited.iter().filter(|a| *a == "device.duplicate").count(), 1, "{audited:?}");
    let view = health_of(&mut h.core, vec![]);
    assert_eq!(view[0].state, HealthState::Failing);
    assert!(view[0].reasons[0].starts_with("duplicate device id: two agents"), "{view:?}");

    // The second agent goes away: ten quiet minutes clear it (audited).
    h.clock.advance(super::super::duplicates::CLEAR_AFTER_MS);
    h.core.apply_batch(vec![Input::Tick]).unwrap();
    let snapshot = h.store.load().unwrap();
    assert!(snapshot.devices.iter().all(|d| d.boots.duplicate.is_none()));
    assert!(h.store.audit(0, 100).unwrap().iter().any(|e| e.action == "device.duplicate_cleared"));
}
