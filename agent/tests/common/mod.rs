//! Helpers shared by the agent's integration tests: settings, a killable TCP proxy in front of
//! a real broker, and a subscriber that records what the fleet side would see.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use edgefleet_agent::config::{Overrides, Settings, load};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub mod fleet;
pub mod process;
pub mod serial;

/// The real broker every project machine runs.
pub const MOSQUITTO: &str = "127.0.0.1:1883";

/// A namespace no other test (or earlier run) uses.
pub fn unique_namespace() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    format!("t{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Agent settings for a test device talking to `broker` (host:port).
pub fn settings(device: &str, namespace: &str, broker: &str, data_dir: &std::path::Path) -> Settings {
    let env = vec![
        ("EDGEFLEET_AGENT__NAMESPACE".to_string(), namespace.to_string()),
        ("EDGEFLEET_AGENT__MQTT__RECONNECT_MIN_MS".to_string(), "50".to_string()),
        ("EDGEFLEET_AGENT__MQTT__RECONNECT_MAX_MS".to_string(), "400".to_string()),
        ("EDGEFLEET_AGENT__MQTT__KEEP_ALIVE_SECS".to_string(), "5".to_string()),
    ];
    let flags = Overrides {
        device_id: Some(device.into()),
        broker_url: Some(format!("mqtt://{broker}")),
        data_dir: Some(data_dir.to_path_buf()),
        api_listen: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    load(None, env, &flags).unwrap()
}

/// A TCP proxy to a broker whose connections can be cut at will (a network partition).
pub struct Proxy {
    pub addr: String,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tracked = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(task);
            }
        });
        Self { addr, connections, accept }
    }

    /// Cuts every open connection (clients see a reset and must reconnect).
    pub fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A received message: topic, payload, retain flag.
pub type Received = (String, Vec<u8>, bool);

/// Subscribes to everything under a namespace and records `(topic, payload, retain)`.
pub struct Recorder {
    pub messages: Arc<Mutex<Vec<Received>>>,
    pub client: AsyncClient,
    task: JoinHandle<()>,
}

impl Recorder {
    pub async fn start(namespace: &str) -> Self {
        let mut id = [0u8; 4];
        getrandom::fill(&mut id).unwrap();
        let (host, port) = MOSQUITTO.split_once(':').unwrap();
        let mut options =
            MqttOptions::new(format!("rec-{id:?}").replace(['[', ']', ',', ' '], ""), host, port.parse().unwrap());
        options.set_max_packet_size(256 * 1024, 256 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        client.subscribe(format!("{namespace}/#"), QoS::AtLeastOnce).await.unwrap();
        let messages: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = messages.clone();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        sink.lock().unwrap().push((p.topic.clone(), p.payload.to_vec(), p.retain));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), subscribed_rx).await.unwrap().unwrap();
        Self { messages, client, task }
    }

    /// Payloads received on topics ending with `leaf`.
    pub fn on(&self, leaf: &str) -> Vec<Vec<u8>> {
        self.messages.lock().unwrap().iter().filter(|(t, _, _)| t.ends_with(leaf)).map(|(_, p, _)| p.clone()).collect()
    }

    /// Waits until `check` holds (or panics after `secs`).
    pub async fn wait_for(&self, secs: u64, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !check(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
