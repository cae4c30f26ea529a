//! `edgefleet direct deploy`: install a package on one device straight over the broker,
//! without a fleet manager — for bench testing a device, or a fleet of one. It serves the
//! package's chunks, sends the deploy command, and follows the device's status reports until
//! the deployment ends. (The fleet manager does the same for staged rollouts.)

use crate::transfer::ObjectStore;
use edgefleet_protocol::BrokerUrl;
use edgefleet_protocol::command::{Command, CommandBody, CommandId, DeployCommand, DeploymentId, ProbationBudget};
use edgefleet_protocol::package::{Downgrade, SignedDowngrade};
use edgefleet_protocol::topic::{Namespace, Topic, TopicKind};
use edgefleet_protocol::transfer::ChunkRequest;
use edgefleet_protocol::uplink::{AckResult, CommandAck, DeploymentState, DeploymentStatus};
use edgefleet_protocol::{DeviceId, decode, encode};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use std::path::PathBuf;
use std::time::Duration;

/// What to deploy where.
#[derive(Debug, Clone)]
pub struct DirectDeploy {
    /// Broker the device is connected to.
    pub broker: BrokerUrl,
    /// Topic namespace.
    pub namespace: Namespace,
    /// Target device.
    pub device: DeviceId,
    /// Package file.
    pub package: PathBuf,
    /// Probation limits sent with the command.
    pub probation: ProbationBudget,
    /// Give up after this long without a terminal status.
    pub timeout: Duration,
    /// Sign a downgrade authorization with this key (to install a version older than the
    /// device's), valid for `downgrade_valid`.
    pub downgrade_key: Option<PathBuf>,
    /// How long a downgrade authorization stays valid.
    pub downgrade_valid: Duration,
}

/// The deployment could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The package file is unreadable or invalid.
    #[error("package {path}: {detail}")]
    Package {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The downgrade authorization could not be made.
    #[error("downgrade authorization: {0}")]
    Downgrade(String),
    /// TLS brokers are not supported by this command yet.
    #[error("mqtts:// is not supported by `direct deploy` yet; use a plain mqtt:// listener")]
    Tls,
    /// The broker connection failed.
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// The device refused the command.
    #[error("device refused the command: {0}")]
    Rejected(String),
    /// Nothing conclusive arrived in time.
    #[error("no final status from {device} within {seconds}s (is the agent running and connected?)")]
    Timeout {
        /// The device.
        device: DeviceId,
        /// The timeout.
        seconds: u64,
    },
}

fn terminal(state: &DeploymentState) -> bool {
    matches!(
        state,
        DeploymentState::Committed
            | DeploymentState::Failed(_)
            | DeploymentState::RolledBack { .. }
            | DeploymentState::Cancelled
    )
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// Runs the deployment; `progress` sees every status of it. Returns the final state.
pub async fn deploy(
    request: &DirectDeploy,
    mut progress: impl FnMut(&DeploymentState),
) -> Result<DeploymentState, DirectError> {
    if request.broker.tls {
        return Err(DirectError::Tls);
    }
    let file = std::fs::File::open(&request.package)
        .map_err(|e| DirectError::Package { path: request.package.clone(), detail: e.to_string() })?;
    let mut objects = ObjectStore::default();
    let offered = objects
        .add_package(std::io::BufReader::new(file))
        .map_err(|e| DirectError::Package { path: request.package.clone(), detail: e.to_string() })?;

    let downgrade = match &request.downgrade_key {
        None => None,
        Some(path) => {
            let key = crate::keys::load_signing_key(path).map_err(|e| DirectError::Downgrade(e.to_string()))?;
            let now_ms = edgefleet_protocol::time::unix_now_ms();
            let body = Downgrade {
                model: offered.manifest.name.clone(),
                version_seq: offered.manifest.version_seq,
                package_id: offered.package_id,
                expires_at_ms: now_ms + request.downgrade_valid.as_millis() as u64,
            };
            Some(SignedDowngrade::sign(body, &key).map_err(|e| DirectError::Downgrade(e.to_string()))?)
        }
    };
    let mut options =
        MqttOptions::new(format!("edgefleet-cli-{:x}", random_u64()), request.broker.host.clone(), request.broker.port);
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    options.set_keep_alive(Duration::from_secs(15));
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let topic = |kind| Topic::new(&request.namespace, &request.device, kind).to_string();
    for kind in [TopicKind::ChunkRequest, TopicKind::Deployment, TopicKind::Ack] {
        client.subscribe(topic(kind), QoS::AtLeastOnce).await.map_err(|e| DirectError::Mqtt(e.to_string()))?;
    }
    let command_id = CommandId(random_u64() >> 1);
    let deployment_id = DeploymentId(random_u64() >> 1);
    let command = Command {
        command_id,
        issued_at_ms: 0,
        body: CommandBody::Deploy(DeployCommand {
            deployment_id,
            model: offered.manifest.name.clone(),
            version_seq: offered.manifest.version_seq,
            package_id: offered.package_id,
            head_size: offered.head_size,
            probation: request.probation,
            downgrade,
        }),
    };
    let payload = encode(&command).map_err(|e| DirectError::Mqtt(e.to_string()))?;
    let mut subscribed = 0;
    let mut answered = false;
    let deadline = tokio::time::Instant::now() + request.timeout;
    // Until the device answers, send the command again every few seconds: a device that was
    // (re)connecting may have missed it, and devices drop duplicates by command id.
    let mut resend = tokio::time::interval(Duration::from_secs(3));
    resend.tick().await;
    loop {
        let polled = tokio::select! {
            polled = tokio::time::timeout_at(deadline, eventloop.poll()) => polled,
            _ = resend.tick() => {
                if subscribed >= 3 && !answered {
                    let _ = client.try_publish(topic(TopicKind::Command), QoS::AtLeastOnce, false, payload.clone());
                }
                continue;
            }
        };
        let event = match polled {
            Err(_) => {
                return Err(DirectError::Timeout {
                    device: request.device.clone(),
                    seconds: request.timeout.as_secs(),
                });
            }
            Ok(Err(e)) => return Err(DirectError::Mqtt(e.to_string())),
            Ok(Ok(event)) => event,
        };
        let publish = match event {
            Event::Incoming(Incoming::SubAck(_)) => {
                subscribed += 1;
                if subscribed == 3 {
                    client
                        .try_publish(topic(TopicKind::Command), QoS::AtLeastOnce, false, payload.clone())
                        .map_err(|e| DirectError::Mqtt(e.to_string()))?;
                }
                continue;
            }
            Event::Incoming(Incoming::Publish(publish)) => publish,
            _ => continue,
        };
        let Ok(parsed) = publish.topic.parse::<Topic>() else { continue };
        match parsed.kind {
            TopicKind::ChunkRequest => {
                if let Ok(request) = decode::<ChunkRequest>(&publish.payload)
                    && let Ok(bytes) = encode(&objects.answer(&request))
                {
                    // A full request queue drops the answer; the device asks again after its timeout.
                    let _ = client.try_publish(topic(TopicKind::ChunkResponse), QoS::AtMostOnce, false, bytes);
                }
            }
            TopicKind::Deployment => {
                if let Ok(status) = decode::<DeploymentStatus>(&publish.payload)
                    && status.deployment_id == deployment_id
                {
                    answered = true;
                    progress(&status.state);
                    if terminal(&status.state) {
                        let _ = client.disconnect().await;
                        return Ok(status.state);
                    }
                }
            }
            TopicKind::Ack => {
                if let Ok(CommandAck { command_id: id, result, .. }) = decode::<CommandAck>(&publish.payload)
                    && id == command_id
                {
                    answered = true;
                    if let AckResult::Rejected(reason) = result {
                        return Err(DirectError::Rejected(reason));
                    }
                }
            }
            _ => {}
        }
    }
}
