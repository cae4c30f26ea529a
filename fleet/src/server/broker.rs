//! The embedded MQTT broker: rumqttd 0.20, one MQTT 3.1.1 listener, in this process.
//!
//! Why in-process and not a supervised child: the hostile-client test (`fleet/tests/serve_process.rs`,
//! `hostile_mqtt_clients_leave_the_broker_and_the_fleet_serving_every_other_device`) showed that
//! every malformed, truncated, oversized, wrong-version or MQTT 5 connection costs only its own
//! connection task (the workspace keeps `panic = "unwind"`, so a panic in a connection task is
//! contained by tokio). Only the v4
//! listener is configured: the v5-publish-to-v4-subscriber panic PITFALLS reports needs a v5
//! listener. If the router thread itself ever dies, the fleet manager's own MQTT client stops
//! reconnecting and `serve` exits with an error, so a service manager restarts it (the broker
//! keeps no state the fleet manager needs: it re-sends desired state after a restart).
//!
//! rumqttd keeps a bounded in-memory log per subscription filter. Per-device filters (commands,
//! chunk responses) get small segments so 10,000 devices do not each pin megabytes.

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, SegmentConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No free port could be found for port 0.
    #[error("cannot pick a free port on {addr}: {source}")]
    PickPort {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The listener did not come up.
    #[error("the embedded MQTT broker did not start listening on {0} (address in use?)")]
    NotListening(SocketAddr),
    /// The broker thread could not be spawned.
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
}

/// A running embedded broker.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Starts the broker on `listen` (port 0: a free port, chosen by binding and releasing it just
/// before rumqttd binds; rumqttd cannot report the port it got) and waits until it accepts.
pub fn start(listen: SocketAddr, namespace: &str, max_packet_bytes: usize) -> Result<EmbeddedBroker, BrokerError> {
    let addr = if listen.port() == 0 {
        let probe = TcpListener::bind(listen).map_err(|source| BrokerError::PickPort { addr: listen, source })?;
        probe.local_addr().map_err(|source| BrokerError::PickPort { addr: listen, source })?
    } else {
        listen
    };
    let config = broker_config(addr, namespace, max_packet_bytes);
    let thread = std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let connect_to = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    loop {
        if mqtt_handshake(connect_to) {
            return Ok(EmbeddedBroker { addr: connect_to });
        }
        if thread.is_finished() || Instant::now() > deadline {
            return Err(BrokerError::NotListening(addr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A full MQTT 3.1.1 CONNECT → CONNACK → DISCONNECT, so the readiness probe proves the broker
/// answers (and does not leave an "aborted connection" error in its log).
fn mqtt_handshake(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    const CONNECT: [u8; 19] =
        [0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 5, b'p', b'r', b'o', b'b', b'e'];
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut connack = [0u8; 4];
    let ok =
        stream.write_all(&CONNECT).is_ok() && stream.read_exact(&mut connack).is_ok() && connack == [0x20, 2, 0, 0];
    let _ = stream.write_all(&[0xE0, 0]);
    ok
}

fn broker_config(addr: SocketAddr, namespace: &str, max_packet_bytes: usize) -> Config {
    let small = |size: usize| SegmentConfig { max_segment_size: size, max_segment_count: 2 };
    let mut custom_segment = HashMap::new();
    custom_segment.insert(format!("{namespace}/devices/+/chunk/resp"), small(max_packet_bytes));
    custom_segment.insert(format!("{namespace}/devices/+/cmd"), small(64 * 1024));
    let router = RouterConfig {
        max_connections: 20_010,
        max_outgoing_packet_count: 200,
        // Uplink filters (one per stream, shared by every device): up to 64 MiB of backlog each.
        max_segment_size: 16 * 1024 * 1024,
        max_segment_count: 4,
        custom_segment: Some(custom_segment),
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: max_packet_bytes,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server =
        ServerSettings { name: "v4".into(), listen: addr, tls: None, next_connection_delay_ms: 0, connections };
    Config { id: 0, router, v4: Some(HashMap::from([("1".to_string(), server)])), ..Config::default() }
}
