//! The MQTT link against the real Mosquitto broker (127.0.0.1:1883): birth, retained presence
//! and last will, commands in, outbox records out in order and acknowledged only on PUBACK,
//! and reconnection with resend after the network drops mid-stream.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{MOSQUITTO, Proxy, Recorder, settings, unique_namespace};
use edgefleet_agent::link::{Inbound, LinkParts, LinkState, MemoryUplink, run};
use edgefleet_protocol::command::{Command, CommandBody, CommandId};
use edgefleet_protocol::hardware::{HardwareClass, HardwareInfo};
use edgefleet_protocol::topic::TopicKind;
use edgefleet_protocol::uplink::{Birth, Health, OfflineReason, Presence, PresenceState};
use edgefleet_protocol::{DeviceId, SemVer, decode, encode};
use rumqttc::QoS;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

fn birth(device: &str) -> Birth {
    Birth {
        device_id: DeviceId::new(device).unwrap(),
        boot_id: 77,
        agent_version: SemVer::new(0, 1, 0),
        hardware: HardwareInfo {
            class: HardwareClass::Cpu,
            cpu_arch: "x86_64".into(),
            cpu_cores: 2,
            memory_bytes: 1 << 30,
            gpu: None,
            accelerator: None,
        },
        free_disk_bytes: 1,
        free_memory_bytes: 1,
        active_models: vec![],
        seq: 1,
    }
}

fn health(seq: u64) -> Vec<u8> {
    encode(&Health {
        seq,
        boot_id: 77,
        timestamp_ms: seq,
        uptime_ms: seq,
        models: vec![],
        outbox_depth: 0,
        outbox_bytes: 0,
        outbox_evictions: 0,
        rss_bytes: 0,
        cpu_percent: 0.0,
        free_disk_bytes: 0,
    })
    .unwrap()
}

struct Running {
    uplink: Arc<MemoryUplink>,
    wake: Arc<Notify>,
    rebirth: Arc<Notify>,
    inbound_rx: mpsc::Receiver<Inbound>,
    state_rx: watch::Receiver<LinkState>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(device: &str, namespace: &str, broker: &str, dir: &std::path::Path) -> Running {
    let uplink = Arc::new(MemoryUplink::default());
    let wake = Arc::new(Notify::new());
    let (inbound_tx, inbound_rx) = mpsc::channel(16);
    let (_chunk_tx, chunk_rx) = mpsc::channel(16);
    let (state_tx, state_rx) = watch::channel(LinkState::Disconnected);
    let device_name = device.to_string();
    let rebirth = Arc::new(Notify::new());
    let parts = LinkParts {
        uplink: uplink.clone(),
        wake: wake.clone(),
        rebirth: rebirth.clone(),
        birth: Box::new(move || birth(&device_name)),
        inbound_tx,
        chunk_rx,
        state_tx,
        sensor_rx: None,
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run(settings(device, namespace, broker, dir), 77, parts, cancel.clone()));
    Running { uplink, wake, rebirth, inbound_rx, state_rx, cancel, task }
}

fn seqs(recorder: &Recorder) -> Vec<u64> {
    recorder.on("/health").iter().map(|p| decode::<Health>(p).unwrap().seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birth_presence_commands_and_ordered_acknowledged_uplink() {
    let namespace = unique_namespace();
    let recorder = Recorder::start(&namespace).await;
    let dir = tempfile::tempdir().unwrap();
    let mut agent = start("dev-1", &namespace, MOSQUITTO, dir.path());
    for seq in 1..=200 {
        agent.uplink.push(TopicKind::Health, seq, health(seq));
    }
    agent.wake.notify_one();

    recorder.wait_for(10, "200 health records", |r| seqs(r).len() >= 200).await;
    assert_eq!(seqs(&recorder), (1..=200).collect::<Vec<_>>(), "in order, each once");
    recorder.wait_for(5, "outbox drained by PUBACKs", |_| agent.uplink.is_empty()).await;

    let births = recorder.on("/devices/dev-1/birth");
    assert_eq!(decode::<Birth>(&births[0]).unwrap().device_id.as_str(), "dev-1");
    // The retained state is Online. (A will can precede it: under load a first connection may be
    // superseded by a reconnect, and the broker then publishes the superseded session's will.)
    let presence: Vec<PresenceState> =
        recorder.on("/devices/dev-1/presence").iter().map(|p| decode::<Presence>(p).unwrap().state).collect();
    assert_eq!(presence.last(), Some(&PresenceState::Online), "{presence:?}");
    assert_eq!(*agent.state_rx.borrow(), LinkState::Connected);

    // A command published by the fleet side reaches the agent.
    let ping = Command { command_id: CommandId(5), issued_at_ms: 0, body: CommandBody::Ping { nonce: 9 } };
    recorder
        .client
        .publish(format!("{namespace}/devices/dev-1/cmd"), QoS::AtLeastOnce, false, encode(&ping).unwrap())
        .await
        .unwrap();
    let inbound = tokio::time::timeout(Duration::from_secs(5), agent.inbound_rx.recv()).await.unwrap().unwrap();
    assert!(matches!(inbound, Inbound::Command(c) if c == ping));

    // Asked again (the fleet missed it), the link publishes the birth and Online once more.
    let (births_before, onlines_before) = (births.len(), presence.len());
    agent.rebirth.notify_one();
    recorder
        .wait_for(5, "a second birth and Online", |r| {
            r.on("/devices/dev-1/birth").len() > births_before && r.on("/devices/dev-1/presence").len() > onlines_before
        })
        .await;
    let presence = recorder.on("/devices/dev-1/presence");
    assert_eq!(decode::<Presence>(presence.last().unwrap()).unwrap().state, PresenceState::Online);

    // Clean shutdown says goodbye with a retained Offline(Shutdown).
    agent.cancel.cancel();
    agent.task.await.unwrap();
    recorder
        .wait_for(5, "goodbye", |r| {
            r.on("/devices/dev-1/presence")
                .iter()
                .any(|p| decode::<Presence>(p).unwrap().state == PresenceState::Offline(OfflineReason::Shutdown))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_in_order_after_the_network_drops_and_the_will_fires() {
    let namespace = unique_namespace();
    let recorder = Recorder::start(&namespace).await;
    let proxy = Proxy::start(MOSQUITTO).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start("dev-2", &namespace, &proxy.addr, dir.path());
    let total = 3000;
    let producer = {
        let uplink = agent.uplink.clone();
        let wake = agent.wake.clone();
        tokio::spawn(async move {
            for seq in 1..=total {
                uplink.push(TopicKind::Health, seq, health(seq));
                wake.notify_one();
                if seq % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    // Cut the connection three times while records flow.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        proxy.cut();
    }
    producer.await.unwrap();
    recorder.wait_for(20, "every record", |r| seqs(r).iter().max().copied() == Some(total)).await;
    recorder.wait_for(10, "outbox drained", |_| agent.uplink.is_empty()).await;

    // After dropping duplicates by seq, exactly 1..=total in order.
    let mut deduped = Vec::new();
    for seq in seqs(&recorder) {
        if deduped.last().is_none_or(|last| seq > *last) {
            deduped.push(seq);
        }
    }
    assert_eq!(deduped, (1..=total).collect::<Vec<_>>());

    // Each cut made the broker publish the last will (Offline(ConnectionLost)).
    recorder
        .wait_for(5, "last will", |r| {
            r.on("/devices/dev-2/presence")
                .iter()
                .any(|p| decode::<Presence>(p).unwrap().state == PresenceState::Offline(OfflineReason::ConnectionLost))
        })
        .await;
    agent.cancel.cancel();
    agent.task.await.unwrap();
}
