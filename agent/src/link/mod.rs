//! The MQTT link: one task owning the rumqttc event loop.
//!
//! - On every connect: subscribe to this device's command and chunk topics, publish the birth
//!   message, then retained `Presence::Online` (the last will is `Offline(ConnectionLost)`).
//!   The same two again when the fleet asks for them (`Rebirth`, via [`LinkParts::rebirth`]).
//! - Drains the outbox in per-stream sequence order with a bounded in-flight window and
//!   acknowledges each record to the outbox only on the broker's PUBACK.
//! - After a disconnect it drops rumqttc's own retransmission queue and resends from the
//!   outbox instead (the outbox is the single source of truth; the fleet drops duplicates by
//!   `(device, stream, seq)`), waiting a jittered exponential backoff between attempts.
//! - Routes inbound commands and chunk responses to the agent over bounded channels.

mod options;
mod uplink;

pub use edgefleet_protocol::backoff::Backoff;
pub use options::mqtt_options;
pub use uplink::{MemoryUplink, UplinkQueue};

use edgefleet_protocol::command::Command;
use edgefleet_protocol::topic::{Topic, TopicKind};
use edgefleet_protocol::transfer::{ChunkRequest, ChunkResponse};
use edgefleet_protocol::uplink::{Birth, OfflineReason, Presence, PresenceState, SensorStatus};
use edgefleet_protocol::{decode, encode};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, Outgoing, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Settings;

/// Outbox records in flight (published, not yet acknowledged) at most. Below rumqttc's
/// in-flight limit so packet ids never collide.
const WINDOW: usize = 64;

/// Streams in the order the window is filled: control traffic before bulk data.
pub const UPLINK_STREAMS: [TopicKind; 6] =
    [TopicKind::Deployment, TopicKind::Ack, TopicKind::Health, TopicKind::Drift, TopicKind::Samples, TopicKind::Labels];

/// Something that arrived for the agent.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A command from the fleet.
    Command(Command),
    /// A package chunk.
    Chunk(ChunkResponse),
}

/// Connection state, for status reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    /// Not connected (never was, or lost).
    #[default]
    Disconnected,
    /// Connected and subscribed.
    Connected,
}

/// Channels and callbacks the link needs from the agent.
pub struct LinkParts {
    /// The outbox to drain.
    pub uplink: Arc<dyn UplinkQueue>,
    /// Signalled when new records are queued.
    pub wake: Arc<Notify>,
    /// Builds a fresh birth message at each connect.
    pub birth: Box<dyn Fn() -> Birth + Send + Sync>,
    /// Signalled when the fleet asks for the birth again (`CommandBody::Rebirth`).
    pub rebirth: Arc<Notify>,
    /// Where commands and chunks go.
    pub inbound_tx: mpsc::Sender<Inbound>,
    /// Chunk requests to publish (QoS 0, not through the outbox).
    pub chunk_rx: mpsc::Receiver<ChunkRequest>,
    /// Connection state updates.
    pub state_tx: watch::Sender<LinkState>,
    /// The serial sensor's status, when the input is a serial sensor: published (retained)
    /// after every birth and whenever it changes.
    pub sensor_rx: Option<watch::Receiver<SensorStatus>>,
}

struct Link {
    settings: Settings,
    boot_id: u64,
    client: AsyncClient,
    parts: LinkParts,
    /// One entry per publish handed to rumqttc, in order: the outbox record it carries, if any.
    submitted: VecDeque<Option<(TopicKind, u64)>>,
    /// Packet id → outbox record, awaiting PUBACK.
    inflight: HashMap<u16, (TopicKind, u64)>,
    /// Highest seq handed to rumqttc per stream during this connection.
    sent_upto: HashMap<TopicKind, u64>,
    connected: bool,
}

impl Link {
    fn topic(&self, kind: TopicKind) -> String {
        Topic::new(&self.settings.namespace, &self.settings.device_id, kind).to_string()
    }

    fn publish(&mut self, kind: TopicKind, payload: Vec<u8>, record: Option<(TopicKind, u64)>) -> bool {
        let qos = if kind.qos() == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
        match self.client.try_publish(self.topic(kind), qos, kind.retained(), payload) {
            Ok(()) => {
                self.submitted.push_back(record);
                true
            }
            Err(e) => {
                debug!(error = %e, "request channel full; retrying later");
                false
            }
        }
    }

    fn on_connected(&mut self) {
        self.connected = true;
        self.submitted.clear();
        self.inflight.clear();
        self.sent_upto.clear();
        for filter in Topic::device_filters(&self.settings.namespace, &self.settings.device_id) {
            if let Err(e) = self.client.try_subscribe(filter, QoS::AtLeastOnce) {
                warn!(error = %e, "subscribe request failed");
            }
        }
        self.announce();
        let _ = self.parts.state_tx.send(LinkState::Connected);
        info!(broker = %self.settings.broker.host, "connected");
        self.fill_window();
    }

    /// Birth, then retained `Presence::Online`.
    fn announce(&mut self) {
        let birth = (self.parts.birth)();
        match encode(&birth) {
            Ok(bytes) => {
                self.publish(TopicKind::Birth, bytes, None);
            }
            Err(e) => warn!(error = %e, "cannot encode birth"),
        }
        let online = Presence { state: PresenceState::Online, boot_id: self.boot_id };
        if let Ok(bytes) = encode(&online) {
            self.publish(TopicKind::Presence, bytes, None);
        }
        self.publish_sensor();
    }

    /// The latest sensor status, if the agent reads a sensor (a snapshot: when the request
    /// channel is full, the next change or birth carries a newer one).
    fn publish_sensor(&mut self) {
        let Some(status) = self.parts.sensor_rx.as_mut().map(|rx| rx.borrow_and_update().clone()) else { return };
        if let Ok(bytes) = encode(&status) {
            self.publish(TopicKind::Sensor, bytes, None);
        }
    }

    fn on_disconnected(&mut self) {
        if self.connected {
            let _ = self.parts.state_tx.send(LinkState::Disconnected);
        }
        self.connected = false;
        self.submitted.clear();
        self.inflight.clear();
        self.sent_upto.clear();
    }

    fn fill_window(&mut self) {
        if !self.connected {
            return;
        }
        for kind in UPLINK_STREAMS {
            let budget = WINDOW.saturating_sub(self.submitted.len() + self.inflight.len());
            if budget == 0 {
                return;
            }
            let after = self.sent_upto.get(&kind).copied().unwrap_or(0);
            for (seq, payload) in self.parts.uplink.pending(kind, after, budget) {
                if !self.publish(kind, payload, Some((kind, seq))) {
                    return;
                }
                self.sent_upto.insert(kind, seq);
            }
        }
    }

    async fn on_publish(&mut self, topic: &str, payload: &[u8]) {
        let kind = match topic.parse::<Topic>() {
            Ok(t) if t.device == self.settings.device_id => t.kind,
            Ok(_) | Err(_) => {
                warn!(topic, "message on a topic not addressed to this device; dropped");
                return;
            }
        };
        let inbound = match kind {
            TopicKind::Command => decode::<Command>(payload).map(Inbound::Command),
            TopicKind::ChunkResponse => decode::<ChunkResponse>(payload).map(Inbound::Chunk),
            other => {
                debug!(?other, "ignoring message on non-device topic");
                return;
            }
        };
        match inbound {
            Ok(inbound) => {
                if self.parts.inbound_tx.send(inbound).await.is_err() {
                    debug!("agent stopped listening; dropping inbound message");
                }
            }
            Err(e) => warn!(topic, error = %e, "undecodable message dropped"),
        }
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::ConnAck(_)) => self.on_connected(),
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some((kind, seq)) = self.inflight.remove(&ack.pkid) {
                    self.parts.uplink.ack(kind, seq);
                }
                self.fill_window();
            }
            Event::Incoming(Incoming::Publish(publish)) => self.on_publish(&publish.topic, &publish.payload).await,
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(record)) = self.submitted.pop_front() {
                    self.inflight.insert(pkid, record);
                }
            }
            Event::Incoming(Incoming::Disconnect) => self.on_disconnected(),
            _ => {}
        }
    }
}

/// What the polling task tells the link.
enum Polled {
    /// An event from the event loop.
    Event(Event),
    /// The connection failed; the link must stop submitting and confirm before the event loop
    /// drops what is queued and reconnects.
    Disconnected(oneshot::Sender<()>),
}

/// Owns the event loop and polls it without ever cancelling a poll in progress
/// (`EventLoop::poll` is not cancellation-safe in the middle of a connect or a write).
async fn drive(
    mut eventloop: EventLoop,
    events_tx: mpsc::Sender<Polled>,
    mut backoff: Backoff,
    cancel: CancellationToken,
) {
    let mut connected = false;
    loop {
        let polled = if connected {
            eventloop.poll().await
        } else {
            // Not connected: abandoning a connect attempt at shutdown is harmless.
            tokio::select! {
                () = cancel.cancelled() => return,
                polled = eventloop.poll() => polled,
            }
        };
        match polled {
            Ok(event) => {
                let done = matches!(event, Event::Outgoing(Outgoing::Disconnect));
                if matches!(event, Event::Incoming(Incoming::ConnAck(_))) {
                    connected = true;
                    backoff.reset();
                }
                if events_tx.send(Polled::Event(event)).await.is_err() || done {
                    return;
                }
            }
            Err(e) => {
                connected = false;
                let (confirm_tx, confirm_rx) = oneshot::channel();
                if events_tx.send(Polled::Disconnected(confirm_tx)).await.is_err() {
                    return;
                }
                let _ = confirm_rx.await;
                if cancel.is_cancelled() {
                    return;
                }
                let delay = backoff.next_delay();
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT connection failed");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                // rumqttc would retransmit its unacknowledged publishes (and anything queued
                // meanwhile) after reconnecting; the outbox resends them instead, in order.
                eventloop.clean();
                eventloop.pending.clear();
            }
        }
    }
}

/// Resolves when the sensor status changed; never without a sensor (or once it is gone).
async fn sensor_changed(rx: &mut Option<watch::Receiver<SensorStatus>>) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => Ok(()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Runs the link until `cancel` fires, then says goodbye (retained `Offline(Shutdown)`).
pub async fn run(settings: Settings, boot_id: u64, mut parts: LinkParts, cancel: CancellationToken) {
    let (client, mut eventloop) = match mqtt_options(&settings, boot_id) {
        Ok(options) => AsyncClient::new(options, 2 * WINDOW + 16),
        Err(e) => {
            warn!(error = %e, "cannot build MQTT options; link not started");
            return;
        }
    };
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(10);
    eventloop.set_network_options(network);
    let backoff = Backoff::new(settings.mqtt.reconnect_min, settings.mqtt.reconnect_max);
    let (events_tx, mut events_rx) = mpsc::channel(256);
    let poller = tokio::spawn(drive(eventloop, events_tx, backoff, cancel.clone()));
    let mut chunk_rx = std::mem::replace(&mut parts.chunk_rx, mpsc::channel(1).1);
    let wake = parts.wake.clone();
    let rebirth = parts.rebirth.clone();
    let mut link = Link {
        settings: settings.clone(),
        boot_id,
        client,
        parts,
        submitted: VecDeque::new(),
        inflight: HashMap::new(),
        sent_upto: HashMap::new(),
        connected: false,
    };
    let mut sensor_rx = link.parts.sensor_rx.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            polled = events_rx.recv() => match polled {
                Some(Polled::Event(event)) => link.handle(event).await,
                Some(Polled::Disconnected(confirm)) => {
                    link.on_disconnected();
                    let _ = confirm.send(());
                }
                None => break,
            },
            Some(request) = chunk_rx.recv(), if link.connected => {
                if let Ok(bytes) = encode(&request) {
                    link.publish(TopicKind::ChunkRequest, bytes, None);
                }
            }
            // While disconnected the permit waits: the next connect announces anyway, and the
            // left-over permit announces once more (a repeated birth is harmless).
            () = rebirth.notified(), if link.connected => {
                info!("birth requested by the fleet");
                link.announce();
            }
            Ok(()) = sensor_changed(&mut sensor_rx), if link.connected => link.publish_sensor(),
            () = wake.notified() => link.fill_window(),
            _ = tick.tick() => link.fill_window(),
        }
    }
    if link.connected {
        let goodbye = Presence { state: PresenceState::Offline(OfflineReason::Shutdown), boot_id };
        if let Ok(bytes) = encode(&goodbye) {
            link.publish(TopicKind::Presence, bytes, None);
        }
        let _ = link.client.try_disconnect();
        // Let the goodbye and the DISCONNECT reach the broker (the poller stops after sending it).
        let drain = async {
            while let Some(polled) = events_rx.recv().await {
                if let Polled::Disconnected(confirm) = polled {
                    let _ = confirm.send(());
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
    poller.abort();
    let _ = link.parts.state_tx.send(LinkState::Disconnected);
    info!("MQTT link stopped");
}
