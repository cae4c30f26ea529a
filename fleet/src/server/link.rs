//! The fleet manager's MQTT side: one rumqttc client (manual acks, persistent session)
//! subscribed to every device's uplink topics. Device messages are decoded here and handed to
//! the core, which acknowledges them only once they are stored. Chunk requests are answered
//! here directly from the package objects (they change no state). Commands from the core are
//! published by a separate task so the core never waits on the network.

use super::core::{Input, Outbound, RefusedMessage};
use super::quarantine::RefusalKind;
use super::registry::decode_uplink;
use crate::transfer::ObjectStore;
use edgefleet_protocol::backoff::Backoff;
use edgefleet_protocol::topic::{Namespace, Topic, TopicKind};
use edgefleet_protocol::transfer::ChunkRequest;
use edgefleet_protocol::{decode, encode};
use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, Publish, QoS, SubscribeFilter, SubscribeReasonCode,
};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The client and its event loop.
pub fn client(host: &str, port: u16, namespace: &Namespace, max_packet_bytes: usize) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(format!("edgefleet-manager-{namespace}"), host, port);
    options.set_max_packet_size(max_packet_bytes, max_packet_bytes);
    options.set_keep_alive(Duration::from_secs(30));
    // Messages that arrived while the fleet manager was away are kept by the broker.
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 16_384);
    // Nagle + delayed ACKs add ~40 ms per small message (PITFALLS); commands must not wait.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(10);
    eventloop.set_network_options(network);
    (client, eventloop)
}

fn subscriptions(namespace: &Namespace) -> Vec<SubscribeFilter> {
    let leaf = |kind: TopicKind, qos: QoS| SubscribeFilter::new(format!("{namespace}/devices/+/{}", kind.leaf()), qos);
    vec![
        leaf(TopicKind::Birth, QoS::AtLeastOnce),
        leaf(TopicKind::Presence, QoS::AtLeastOnce),
        leaf(TopicKind::Health, QoS::AtLeastOnce),
        leaf(TopicKind::Deployment, QoS::AtLeastOnce),
        leaf(TopicKind::Ack, QoS::AtLeastOnce),
        leaf(TopicKind::Drift, QoS::AtLeastOnce),
        leaf(TopicKind::Samples, QoS::AtLeastOnce),
        leaf(TopicKind::Labels, QoS::AtLeastOnce),
        leaf(TopicKind::Sensor, QoS::AtLeastOnce),
        // Chunk requests are retried by devices: at most once is enough, and needs no ack.
        leaf(TopicKind::ChunkRequest, QoS::AtMostOnce),
    ]
}

/// Reconnect delays after a lost broker connection (jittered, so the fleet manager and its
/// devices do not hammer a broker that comes back in lockstep).
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// How long a clean disconnect at shutdown may take before the link gives up on it.
const DISCONNECT_WAIT: Duration = Duration::from_secs(2);

/// Polls the event loop until shutdown. Gives up (error) when the broker stays unreachable
/// for `give_up_after` (used with the embedded broker, whose death means the process is sick).
/// `subscribed` turns true once the broker has granted the uplink subscriptions (births are not
/// retained: a device that connects before that is only learned of later, see `Rebirth`).
///
/// `EventLoop::poll` is not cancellation-safe in the middle of a connect or a write, so a
/// poll in progress is never dropped while connected: shutdown asks for a clean DISCONNECT
/// and keeps polling until it has gone out.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    namespace: Namespace,
    objects: Arc<RwLock<ObjectStore>>,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
    give_up_after: Option<Duration>,
    subscribed: watch::Sender<bool>,
) -> Result<(), String> {
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Backoff::new(RECONNECT_MIN, RECONNECT_MAX);
    let mut connected = false;
    let mut disconnect_deadline: Option<tokio::time::Instant> = None;
    loop {
        let polled = {
            let poll = eventloop.poll();
            tokio::pin!(poll);
            loop {
                let deadline = disconnect_deadline.unwrap_or_else(|| tokio::time::Instant::now() + DISCONNECT_WAIT);
                tokio::select! {
                    biased;
                    polled = &mut poll => break polled,
                    () = shutdown.cancelled(), if disconnect_deadline.is_none() => {
                        if !connected {
                            return Ok(()); // abandoning a connect attempt is harmless
                        }
                        disconnect_deadline = Some(tokio::time::Instant::now() + DISCONNECT_WAIT);
                        let _ = client.try_disconnect();
                    }
                    () = tokio::time::sleep_until(deadline), if disconnect_deadline.is_some() => return Ok(()),
                }
            }
        };
        let event = match polled {
            Ok(event) => {
                failing_since = None;
                event
            }
            Err(e) => {
                connected = false;
                if disconnect_deadline.is_some() {
                    return Ok(());
                }
                let since = *failing_since.get_or_insert_with(Instant::now);
                if let Some(limit) = give_up_after
                    && since.elapsed() > limit
                {
                    return Err(format!("the MQTT broker has been unreachable for {}s: {e}", limit.as_secs()));
                }
                let delay = backoff.next_delay();
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT connection lost; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        match event {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                connected = true;
                backoff.reset();
                info!(session_present = ack.session_present, "connected to the MQTT broker");
                // One SUBSCRIBE for all filters: its SUBACK says the fleet hears every stream.
                if let Err(e) = client.try_subscribe_many(subscriptions(&namespace)) {
                    warn!(error = %e, "cannot subscribe");
                }
                let _ = inputs.send(Input::Connected).await;
            }
            Event::Incoming(Incoming::SubAck(ack)) => {
                let refused = ack.return_codes.iter().filter(|c| matches!(c, SubscribeReasonCode::Failure)).count();
                if refused == 0 {
                    subscribed.send_replace(true);
                } else {
                    warn!(refused, "the MQTT broker refused uplink subscriptions; device messages will be missed");
                }
            }
            Event::Incoming(Incoming::Publish(publish)) => {
                handle_publish(publish, &client, &objects, &inputs).await;
            }
            Event::Outgoing(Outgoing::Disconnect) => return Ok(()),
            _ => {}
        }
    }
}

/// Decodes one device message and hands it to the core. Every QoS 1 message goes through the
/// core, the refused ones too, so acknowledgements leave in arrival order.
async fn handle_publish(
    publish: Publish,
    client: &AsyncClient,
    objects: &Arc<RwLock<ObjectStore>>,
    inputs: &mpsc::Sender<Input>,
) {
    let ack = |p: Publish| (p.qos != QoS::AtMostOnce).then_some(p);
    let Ok(topic) = publish.topic.parse::<Topic>() else {
        let refused = RefusedMessage::new(
            publish.topic.clone(),
            RefusalKind::NotAccepted,
            "not an Edgefleet device topic",
            &publish.payload,
        );
        let _ = inputs.send(Input::Refused { device: None, refused, ack: ack(publish) }).await;
        return;
    };
    if topic.kind == TopicKind::ChunkRequest {
        // Subscribed at QoS 0, so delivered at QoS 0: nothing to acknowledge, no state to
        // change, answered right here.
        let Ok(request) = decode::<ChunkRequest>(&publish.payload) else {
            debug!(device = %topic.device, "malformed chunk request ignored");
            return;
        };
        let answer = match objects.read() {
            Ok(store) => store.answer(&request),
            Err(_) => return,
        };
        if let Ok(bytes) = encode(&answer) {
            let reply = Topic::new(&topic.namespace, &topic.device, TopicKind::ChunkResponse).to_string();
            // A full queue drops the answer; the device asks again after its timeout.
            let _ = client.try_publish(reply, QoS::AtMostOnce, false, bytes);
        }
        return;
    }
    let device = topic.device.clone();
    let stream = topic.kind.leaf();
    // Refusals are logged by the core (debug each, a warning when it flags the device): a
    // flood of garbage must not become a flood of log lines.
    let input = match decode_uplink(topic.kind, &publish.payload) {
        Ok(Some(uplink)) => Input::Uplink { device, uplink, ack: Some(publish) },
        Ok(None) => {
            let reason = "devices do not publish on this topic";
            let refused = RefusedMessage::new(stream, RefusalKind::NotAccepted, reason, &publish.payload);
            Input::Refused { device: Some(device), refused, ack: ack(publish) }
        }
        Err(e) => {
            let refused = RefusedMessage::new(stream, RefusalKind::Malformed, e.to_string(), &publish.payload);
            Input::Refused { device: Some(device), refused, ack: ack(publish) }
        }
    };
    let _ = inputs.send(input).await;
}

/// Commands queued for the publisher at most. The core never waits for the network: when the
/// queue is full (the broker is away or slow) a command is dropped and counted; deploys are
/// sent again on reconnect and on a device's birth, and silence makes a device unreachable.
pub const OUTBOUND_QUEUE: usize = 16_384;

/// Publishes commands from the core, in order, waiting for queue space.
pub async fn publisher(client: AsyncClient, mut commands: mpsc::Receiver<Outbound>) {
    while let Some(out) = commands.recv().await {
        if let Err(e) = client.publish(out.topic, QoS::AtLeastOnce, false, out.payload).await {
            warn!(error = %e, "cannot queue a command");
            return;
        }
    }
}
