//! A stand-in for the fleet manager's device-facing side, over the real broker: serves package
//! chunks by digest, sends commands, records what devices report. (The real fleet manager
//! arrives with its own issue; this is the minimum its protocol requires.)
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use super::MOSQUITTO;
use edgefleet_protocol::command::{Command, CommandBody, CommandId, DeployCommand, DeploymentId, ProbationBudget};
use edgefleet_protocol::package::{HEADER_LEN, SIGNATURE_BLOCK_LEN};
use edgefleet_protocol::topic::Topic;
use edgefleet_protocol::transfer::{ChunkBody, ChunkRequest, ChunkResponse};
use edgefleet_protocol::uplink::{CommandAck, DeploymentState, DeploymentStatus};
use edgefleet_protocol::{Digest, ModelName, decode, encode};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Seen {
    pub statuses: Vec<DeploymentStatus>,
    pub acks: Vec<CommandAck>,
    pub births: usize,
}

pub struct FakeFleet {
    pub namespace: String,
    client: AsyncClient,
    objects: Arc<Mutex<HashMap<Digest, Vec<u8>>>>,
    pub seen: Arc<Mutex<Seen>>,
    next_command: Mutex<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeFleet {
    pub async fn start(namespace: &str) -> Self {
        let mut id = [0u8; 4];
        getrandom::fill(&mut id).unwrap();
        let (host, port) = MOSQUITTO.split_once(':').unwrap();
        let mut options = MqttOptions::new(format!("fleet-{}", u32::from_le_bytes(id)), host, port.parse().unwrap());
        options.set_max_packet_size(256 * 1024, 256 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        for leaf in ["chunk/req", "deployment", "ack", "birth"] {
            client.subscribe(format!("{namespace}/devices/+/{leaf}"), QoS::AtLeastOnce).await.unwrap();
        }
        let objects: Arc<Mutex<HashMap<Digest, Vec<u8>>>> = Arc::default();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let mut subacks = 0;
        let responder = client.clone();
        let serve = objects.clone();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let publish = match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        subacks += 1;
                        if subacks == 4
                            && let Some(tx) = ready_tx.take()
                        {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => p,
                    Ok(_) => continue,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(topic) = publish.topic.parse::<Topic>() else { continue };
                match topic.kind.leaf() {
                    "chunk/req" => {
                        let Ok(request) = decode::<ChunkRequest>(&publish.payload) else { continue };
                        let object = serve.lock().unwrap().get(&request.digest).cloned();
                        let (body, total_size) = match object {
                            None => (ChunkBody::NotFound, 0),
                            Some(o) if request.offset >= o.len() as u64 => (ChunkBody::OutOfRange, o.len() as u64),
                            Some(o) => {
                                let start = request.offset as usize;
                                let end = (start + request.max_len as usize).min(o.len());
                                (ChunkBody::Data(o[start..end].to_vec()), o.len() as u64)
                            }
                        };
                        let response = ChunkResponse {
                            request_id: request.request_id,
                            digest: request.digest,
                            offset: request.offset,
                            total_size,
                            body,
                        };
                        let reply = Topic { kind: edgefleet_protocol::topic::TopicKind::ChunkResponse, ..topic };
                        let _ = responder.try_publish(
                            reply.to_string(),
                            QoS::AtMostOnce,
                            false,
                            encode(&response).unwrap(),
                        );
                    }
                    "deployment" => {
                        if let Ok(status) = decode::<DeploymentStatus>(&publish.payload) {
                            record.lock().unwrap().statuses.push(status);
                        }
                    }
                    "ack" => {
                        if let Ok(ack) = decode::<CommandAck>(&publish.payload) {
                            record.lock().unwrap().acks.push(ack);
                        }
                    }
                    "birth" => record.lock().unwrap().births += 1,
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), ready_rx).await.unwrap().unwrap();
        Self { namespace: namespace.into(), client, objects, seen, next_command: Mutex::new(0), task }
    }

    /// Makes a package's head and blobs downloadable; returns (package id, head size).
    pub fn offer(&self, package: &[u8]) -> (Digest, u64) {
        let manifest_len = u32::from_le_bytes(package[12..16].try_into().unwrap()) as usize;
        let head_len = HEADER_LEN + manifest_len + SIGNATURE_BLOCK_LEN;
        let head = edgefleet_protocol::package::PackageHead::from_bytes(&package[..head_len]).unwrap();
        let manifest = head.manifest_unverified().unwrap();
        let mut objects = self.objects.lock().unwrap();
        let mut at = head_len;
        for variant in &manifest.variants {
            let end = at + variant.size as usize;
            objects.insert(variant.digest, package[at..end].to_vec());
            at = end;
        }
        let id = Digest::sha256(&package[..head_len]);
        objects.insert(id, package[..head_len].to_vec());
        (id, head_len as u64)
    }

    pub async fn command(&self, device: &str, body: CommandBody) -> CommandId {
        let id = {
            let mut next = self.next_command.lock().unwrap();
            *next += 1;
            CommandId(*next)
        };
        let command = Command { command_id: id, issued_at_ms: 0, body };
        let topic = format!("{}/devices/{device}/cmd", self.namespace);
        self.client.publish(topic, QoS::AtLeastOnce, false, encode(&command).unwrap()).await.unwrap();
        id
    }

    /// Sends a deploy command for `package` (offered first).
    pub async fn deploy(
        &self,
        device: &str,
        deployment: u64,
        model: &str,
        version_seq: u64,
        package: &[u8],
        probation: ProbationBudget,
    ) {
        let (package_id, head_size) = self.offer(package);
        let deploy = DeployCommand {
            deployment_id: DeploymentId(deployment),
            model: ModelName::new(model).unwrap(),
            version_seq,
            package_id,
            head_size,
            probation,
            downgrade: None,
        };
        self.command(device, CommandBody::Deploy(deploy)).await;
    }

    /// The terminal state of `deployment`, waiting up to `secs`.
    pub async fn outcome(&self, deployment: u64, secs: u64) -> DeploymentState {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let terminal = self.seen.lock().unwrap().statuses.iter().rev().find_map(|s| {
                let terminal = matches!(
                    s.state,
                    DeploymentState::Committed
                        | DeploymentState::Failed(_)
                        | DeploymentState::RolledBack { .. }
                        | DeploymentState::Cancelled
                );
                (s.deployment_id.0 == deployment && terminal).then(|| s.state.clone())
            });
            if let Some(state) = terminal {
                return state;
            }
            if tokio::time::Instant::now() > deadline {
                let states: Vec<String> = self
                    .seen
                    .lock()
                    .unwrap()
                    .statuses
                    .iter()
                    .map(|s| format!("{}:{:?}", s.deployment_id.0, s.state))
                    .collect();
                panic!("deployment {deployment} did not finish within {secs}s; saw {states:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until some device has published a birth since the last `clear` (it is connected
    /// and subscribed, so commands reach it).
    pub async fn wait_birth(&self, births_before: usize) {
        for _ in 0..400 {
            if self.seen.lock().unwrap().births > births_before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no birth message within 10 s");
    }

    /// Births seen so far.
    pub fn births(&self) -> usize {
        self.seen.lock().unwrap().births
    }

    /// Forgets recorded statuses (between phases of a test).
    pub fn clear(&self) {
        let mut seen = self.seen.lock().unwrap();
        seen.statuses.clear();
        seen.acks.clear();
    }
}

impl Drop for FakeFleet {
    fn drop(&mut self) {
        self.task.abort();
    }
}
