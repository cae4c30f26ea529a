//! The fleet manager's uplink path on arbitrary bytes: a topic leaf chosen by the first byte,
//! the rest as the payload, decoded exactly as the MQTT link decodes it and fed to one
//! long-lived core (in-memory store, manual clock) as the link would: applied, or refused
//! and acknowledged in order. Nothing may panic, every batch must commit, every QoS 1
//! message must be acknowledged, in arrival order.
#![no_main]

use edgefleet::api::status::ServerInfo;
use edgefleet::server::clock::ManualClock;
use edgefleet::server::command_ids::CommandIds;
use edgefleet::server::core::{Core, CoreConfig, Input, RefusedMessage};
use edgefleet::server::quarantine::RefusalKind;
use edgefleet::server::registry::{Retention, decode_uplink};
use edgefleet::server::store::MemoryStore;
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::topic::{Namespace, TopicKind};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex, OnceLock};

const KINDS: [TopicKind; 8] = [
    TopicKind::Birth,
    TopicKind::Presence,
    TopicKind::Health,
    TopicKind::Deployment,
    TopicKind::Ack,
    TopicKind::Drift,
    TopicKind::Samples,
    TopicKind::Command,
];

struct Fleet {
    core: Core,
    clock: ManualClock,
    next_pkid: u16,
}

fn fleet() -> &'static Mutex<Fleet> {
    static FLEET: OnceLock<Mutex<Fleet>> = OnceLock::new();
    FLEET.get_or_init(|| {
        let clock = ManualClock::at(1_700_000_000_000);
        let cfg = CoreConfig {
            namespace: Namespace::new("fz").expect("namespace"),
            unreachable_after_ms: 60_000,
            retention: Retention { health: 4, history: 4 },
            probation: ProbationBudget {
                duration_ms: 1_000,
                min_inferences: 0,
                max_error_rate_ppm: 0,
                max_p99_latency_us: 0,
            },
            drift: Default::default(),
            drift_retention: 4,
            info: ServerInfo {
                http: String::new(),
                mqtt: String::new(),
                embedded_broker: true,
                namespace: "fz".into(),
                data_dir: String::new(),
                pid: 0,
            },
        };
        let store = Arc::new(MemoryStore::default());
        let core = Core::open(cfg, store, Arc::new(clock.clone()), CommandIds::after(0)).expect("core");
        Mutex::new(Fleet { core, clock, next_pkid: 1 })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else { return };
    let kind = KINDS[usize::from(selector) % KINDS.len()];
    let device = format!("dev-{}", selector / 16).parse().expect("device id");
    let mut fleet = fleet().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let pkid = fleet.next_pkid;
    fleet.next_pkid = fleet.next_pkid.wrapping_add(1).max(1);
    let mut publish = rumqttc::Publish::new("fz/devices/x/y", rumqttc::QoS::AtLeastOnce, payload.to_vec());
    publish.pkid = pkid;
    let input = match decode_uplink(kind, payload) {
        Ok(Some(uplink)) => Input::Uplink { device, uplink, ack: Some(publish) },
        Ok(None) => {
            let refused = RefusedMessage::new(kind.leaf(), RefusalKind::NotAccepted, "not an uplink", payload);
            Input::Refused { device: Some(device), refused, ack: Some(publish) }
        }
        Err(e) => {
            let refused = RefusedMessage::new(kind.leaf(), RefusalKind::Malformed, e.to_string(), payload);
            Input::Refused { device: Some(device), refused, ack: Some(publish) }
        }
    };
    fleet.clock.advance(u64::from(selector) * 37);
    let settled = fleet.core.apply_batch(vec![input, Input::Tick]).expect("an in-memory commit never fails");
    let acked: Vec<u16> = settled.acks.iter().map(|p| p.pkid).collect();
    assert_eq!(acked, vec![pkid], "exactly the one message, acknowledged");
});
