//! The device registry as pure code: what the fleet knows about each device, and how each
//! uplink message changes it. Duplicates (a sequence number already seen on that stream) and
//! stale last wills (a presence from an earlier agent run) change nothing.

use super::duplicates::{BirthVerdict, BootIds};
use super::quarantine::Quarantine;
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::topic::TopicKind;
use edgefleet_protocol::uplink::{
    AckResult, Birth, CommandAck, DeploymentState, DeploymentStatus, DriftSummary, Health, ModelHealth, OfflineReason,
    Presence, PresenceState, SampleBatch, SampleLabels, SensorStatus,
};
use edgefleet_protocol::{DeviceId, WireError, decode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// A decoded uplink message the fleet acts on.
#[derive(Debug, Clone)]
pub enum Uplink {
    /// Capabilities and installed models, on every connect.
    Birth(Birth),
    /// Online / offline (retained; the offline one is the last will).
    Presence(Presence),
    /// Periodic health.
    Health(Health),
    /// A deployment transition.
    Deployment(DeploymentStatus),
    /// A command acknowledgement.
    Ack(CommandAck),
    /// A drift summary window.
    Drift(Box<DriftSummary>),
    /// Sampled raw records.
    Samples(Box<SampleBatch>),
    /// Ground-truth labels of sampled records.
    Labels(Box<SampleLabels>),
    /// The serial sensor link of a device that reads one (latest value, retained).
    Sensor(Box<SensorStatus>),
}

/// Decodes the payload of an uplink topic (`None` for streams the registry does not keep).
pub fn decode_uplink(kind: TopicKind, payload: &[u8]) -> Result<Option<Uplink>, WireError> {
    Ok(Some(match kind {
        TopicKind::Birth => Uplink::Birth(decode(payload)?),
        TopicKind::Presence => Uplink::Presence(decode(payload)?),
        TopicKind::Health => Uplink::Health(decode(payload)?),
        TopicKind::Deployment => Uplink::Deployment(decode(payload)?),
        TopicKind::Ack => Uplink::Ack(decode(payload)?),
        TopicKind::Drift => Uplink::Drift(Box::new(decode(payload)?)),
        TopicKind::Samples => Uplink::Samples(Box::new(decode(payload)?)),
        TopicKind::Labels => Uplink::Labels(Box::new(decode(payload)?)),
        TopicKind::Sensor => Uplink::Sensor(Box::new(decode(payload)?)),
        _ => return Ok(None),
    }))
}

/// A model a device serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedModel {
    /// Model name.
    pub name: String,
    /// Version sequence.
    pub version_seq: u64,
    /// Human version label.
    pub label: String,
    /// Package id (hex), when known.
    pub package_id: String,
}

/// One health report, as kept (per model figures flattened to the served model's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthPoint {
    /// Device clock, ms since the epoch.
    pub timestamp_ms: u64,
    /// Fleet clock when received.
    pub received_ms: u64,
    /// Per model version served since the agent started: cumulative counters, last-window
    /// latency quantiles (the wire type, kept as received).
    pub models: Vec<ModelHealth>,
    /// Outbox depth (records).
    pub outbox_depth: u64,
    /// Records the outbox evicted so far.
    pub outbox_evictions: u64,
    /// Resident memory.
    pub rss_bytes: u64,
    /// CPU use.
    pub cpu_percent: f32,
    /// Free disk.
    pub free_disk_bytes: u64,
}

/// One step in a device's deployment history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Fleet clock when received.
    pub received_ms: u64,
    /// Deployment id.
    pub deployment_id: u64,
    /// Model.
    pub model: String,
    /// Version being deployed.
    pub version_seq: u64,
    /// The state, in words (failure reasons included).
    pub state: String,
}

/// Everything the fleet knows about one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The device.
    pub id: DeviceId,
    /// Hardware class from the last birth (None until a birth arrived).
    pub hardware: Option<HardwareClass>,
    /// CPU architecture and cores, GPU or accelerator, from the birth.
    pub hardware_detail: String,
    /// Agent version.
    pub agent_version: String,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
    /// First message, fleet clock.
    pub first_seen_ms: u64,
    /// Last message, fleet clock.
    pub last_seen_ms: u64,
    /// Connected, as far as the broker told us.
    pub online: bool,
    /// Why it went offline, when offline.
    pub offline_reason: Option<String>,
    /// The agent run of the last birth.
    pub boot_id: u64,
    /// Models it serves.
    pub active_models: Vec<ServedModel>,
    /// Free disk at the last report.
    pub free_disk_bytes: u64,
    /// Recent health, oldest first.
    pub health: VecDeque<HealthPoint>,
    /// Recent deployment transitions, oldest first.
    pub history: VecDeque<HistoryEntry>,
    /// Highest sequence number seen per uplink stream (duplicates are dropped).
    pub last_seq: BTreeMap<String, u64>,
    /// Messages applied per sequenced stream (`health`, `deployment`, ...). With the device's
    /// sequence numbers starting at 1, `received == last_seq` means none was lost on the way.
    #[serde(default)]
    pub received: BTreeMap<String, u64>,
    /// Messages the fleet refused from this device, and whether it is flagged for them.
    #[serde(default)]
    pub quarantine: Quarantine,
    /// The latest sensor link status of the current agent run, for devices that read a serial
    /// sensor (WIRE.md §4.7a).
    #[serde(default)]
    pub sensor: Option<SensorStatus>,
    /// The boot ids this device id was heard with, and a second agent using it.
    #[serde(default)]
    pub boots: BootIds,
}

/// What an uplink message did to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// New information, now recorded.
    Fresh,
    /// Already seen (same or older sequence number), or a stale will: ignored.
    Ignored,
}

/// How much per-device history to keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Health reports.
    pub health: usize,
    /// Deployment transitions.
    pub history: usize,
}

impl DeviceRecord {
    /// A device first heard of at `now_ms`.
    pub fn new(id: DeviceId, now_ms: u64) -> Self {
        DeviceRecord {
            id,
            hardware: None,
            hardware_detail: String::new(),
            agent_version: String::new(),
            labels: BTreeMap::new(),
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            online: false,
            offline_reason: None,
            boot_id: 0,
            active_models: Vec::new(),
            free_disk_bytes: 0,
            health: VecDeque::new(),
            history: VecDeque::new(),
            last_seq: BTreeMap::new(),
            received: BTreeMap::new(),
            quarantine: Quarantine::default(),
            sensor: None,
            boots: BootIds::default(),
        }
    }

    /// The version of `model` the device serves.
    pub fn served_version(&self, model: &str) -> Option<u64> {
        self.active_models.iter().find(|m| m.name == model).map(|m| m.version_seq)
    }

    /// True the first time `seq` is seen on `stream` (and records it).
    fn fresh(&mut self, stream: &str, seq: u64) -> bool {
        match self.last_seq.get(stream) {
            Some(&last) if seq <= last => false,
            _ => {
                self.last_seq.insert(stream.to_string(), seq);
                *self.received.entry(stream.to_string()).or_insert(0) += 1;
                true
            }
        }
    }

    /// Applies one uplink message received at `now_ms`.
    pub fn apply(&mut self, uplink: &Uplink, now_ms: u64, retention: Retention) -> Applied {
        let fresh = match uplink {
            Uplink::Birth(b) => {
                if self.boots.on_birth(self.boot_id, b.boot_id, now_ms) == BirthVerdict::Refuse {
                    return Applied::Ignored; // a second agent with this device id
                }
                // A new agent run restarts no counters (they are persisted), but a device whose
                // data was wiped starts again at 1: accept a birth with a new boot id.
                if b.boot_id != self.boot_id {
                    self.last_seq.remove("birth");
                }
                self.fresh("birth", b.seq)
            }
            Uplink::Presence(p) => self.boot_id == 0 || p.boot_id == self.boot_id,
            Uplink::Health(h) => self.fresh("health", h.seq),
            Uplink::Deployment(d) => self.fresh("deployment", d.seq),
            Uplink::Ack(a) => self.fresh("ack", a.seq),
            Uplink::Drift(d) => self.fresh("drift", d.seq),
            Uplink::Samples(b) => self.fresh("samples", b.seq),
            Uplink::Labels(l) => self.fresh("labels", l.seq),
            // A latest value per agent run: only the current run's, and only newer ones.
            Uplink::Sensor(s) => {
                s.boot_id == self.boot_id
                    && self.sensor.as_ref().is_none_or(|c| c.boot_id != s.boot_id || s.seq > c.seq)
            }
        };
        if !fresh {
            return Applied::Ignored;
        }
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
        match uplink {
            Uplink::Birth(b) => {
                if b.boot_id != self.boot_id {
                    self.sensor = None;
                }
                self.boot_id = b.boot_id;
                self.hardware = Some(b.hardware.class);
                self.hardware_detail = hardware_detail(b);
                self.agent_version = b.agent_version.to_string();
                self.free_disk_bytes = b.free_disk_bytes;
                self.online = true;
                self.offline_reason = None;
                self.active_models = b
                    .active_models
                    .iter()
                    .map(|m| ServedModel {
                        name: m.name.to_string(),
                        version_seq: m.version_seq,
                        label: m.label.clone(),
                        package_id: m.package_id.to_string(),
                    })
                    .collect();
            }
            Uplink::Presence(p) => match p.state {
                PresenceState::Online => {
                    self.online = true;
                    self.offline_reason = None;
                }
                PresenceState::Offline(reason) => {
                    self.online = false;
                    self.offline_reason = Some(
                        match reason {
                            OfflineReason::Shutdown => "shut down",
                            OfflineReason::ConnectionLost => "connection lost",
                        }
                        .to_string(),
                    );
                }
            },
            Uplink::Health(h) => {
                self.free_disk_bytes = h.free_disk_bytes;
                push_bounded(
                    &mut self.health,
                    HealthPoint {
                        timestamp_ms: h.timestamp_ms,
                        received_ms: now_ms,
                        models: h.models.clone(),
                        outbox_depth: h.outbox_depth,
                        outbox_evictions: h.outbox_evictions,
                        rss_bytes: h.rss_bytes,
                        cpu_percent: h.cpu_percent,
                        free_disk_bytes: h.free_disk_bytes,
                    },
                    retention.health,
                );
            }
            Uplink::Deployment(d) => {
                self.apply_served(d);
                push_bounded(
                    &mut self.history,
                    HistoryEntry {
                        received_ms: now_ms,
                        deployment_id: d.deployment_id.0,
                        model: d.model.to_string(),
                        version_seq: d.version_seq,
                        state: describe_state(&d.state),
                    },
                    retention.history,
                );
            }
            Uplink::Sensor(s) => self.sensor = Some((**s).clone()),
            Uplink::Ack(_) | Uplink::Drift(_) | Uplink::Samples(_) | Uplink::Labels(_) => {}
        }
        Applied::Fresh
    }

    /// Keeps `active_models` current between births.
    fn apply_served(&mut self, d: &DeploymentStatus) {
        let version = match &d.state {
            DeploymentState::Activated | DeploymentState::Committed => d.version_seq,
            DeploymentState::RolledBack { to_version_seq, .. } => *to_version_seq,
            _ => return,
        };
        let name = d.model.to_string();
        match self.active_models.iter_mut().find(|m| m.name == name) {
            Some(m) if m.version_seq != version => {
                m.version_seq = version;
                m.label.clear();
                m.package_id.clear();
            }
            Some(_) => {}
            None => self.active_models.push(ServedModel {
                name,
                version_seq: version,
                label: String::new(),
                package_id: String::new(),
            }),
        }
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, limit: usize) {
    queue.push_back(item);
    while queue.len() > limit {
        queue.pop_front();
    }
}

fn hardware_detail(b: &Birth) -> String {
    let hw = &b.hardware;
    let mut text = format!("{} {} cores, {} MiB", hw.cpu_arch, hw.cpu_cores, hw.memory_bytes >> 20);
    if let Some(gpu) = &hw.gpu {
        text.push_str(&format!(", GPU {gpu:?}"));
    }
    if let Some(acc) = &hw.accelerator {
        text.push_str(&format!(", accelerator {acc:?}"));
    }
    text
}

/// A deployment state in words, with the failure reason.
pub fn describe_state(state: &DeploymentState) -> String {
    match state {
        DeploymentState::Accepted => "accepted".into(),
        DeploymentState::Downloading { received, total } => format!("downloading {received}/{total} bytes"),
        DeploymentState::Verified => "verified".into(),
        DeploymentState::Installed => "installed".into(),
        DeploymentState::Activated => "activated (probation)".into(),
        DeploymentState::Committed => "committed".into(),
        DeploymentState::Failed(reason) => format!("failed: {reason}"),
        DeploymentState::RolledBack { to_version_seq, reason } => {
            format!("rolled back to version {to_version_seq}: {reason}")
        }
        DeploymentState::Cancelled => "cancelled".into(),
    }
}

/// An ack in words.
pub fn describe_ack(result: &AckResult) -> String {
    match result {
        AckResult::Accepted => "accepted".into(),
        AckResult::Rejected(reason) => format!("rejected: {reason}"),
        AckResult::Duplicate => "duplicate".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use edgefleet_protocol::command::CommandId;
    use edgefleet_protocol::hardware::HardwareInfo;
    use edgefleet_protocol::uplink::OfflineReason;
    use edgefleet_protocol::{ModelName, SemVer};

    const KEEP: Retention = Retention { health: 2, history: 2 };

    /// A GPU device's birth (also used by `rebirth.rs` tests).
    pub(crate) fn birth(seq: u64, boot_id: u64) -> Uplink {
        Uplink::Birth(Birth {
            device_id: "d1".parse().unwrap(),
            boot_id,
            agent_version: SemVer { major: 0, minor: 1, patch: 0 },
            hardware: HardwareInfo {
                class: HardwareClass::Gpu,
                cpu_arch: "aarch64".into(),
                cpu_cores: 4,
                memory_bytes: 4 << 30,
                gpu: None,
                accelerator: None,
            },
            free_disk_bytes: 1 << 30,
            free_memory_bytes: 1 << 29,
            active_models: vec![],
            seq,
        })
    }

    fn deployment(seq: u64, state: DeploymentState) -> Uplink {
        Uplink::Deployment(DeploymentStatus {
            seq,
            timestamp_ms: 0,
            deployment_id: edgefleet_protocol::command::DeploymentId(7),
            model: ModelName::new("m").unwrap(),
            version_seq: 3,
            state,
        })
    }

    #[test]
    fn duplicates_and_stale_wills_change_nothing() {
        let mut d = DeviceRecord::new("d1".parse().unwrap(), 10);
        assert_eq!(d.apply(&birth(1, 42), 10, KEEP), Applied::Fresh);
        assert_eq!(d.hardware, Some(HardwareClass::Gpu));
        assert_eq!(d.apply(&birth(1, 42), 11, KEEP), Applied::Ignored);
        let stale_will =
            Uplink::Presence(Presence { state: PresenceState::Offline(OfflineReason::ConnectionLost), boot_id: 41 });
        assert_eq!(d.apply(&stale_will, 12, KEEP), Applied::Ignored);
        assert!(d.online);
        let will =
            Uplink::Presence(Presence { state: PresenceState::Offline(OfflineReason::ConnectionLost), boot_id: 42 });
        assert_eq!(d.apply(&will, 13, KEEP), Applied::Fresh);
        assert!(!d.online);

        assert_eq!(d.apply(&deployment(5, DeploymentState::Committed), 14, KEEP), Applied::Fresh);
        assert_eq!(d.served_version("m"), Some(3));
        assert_eq!(d.apply(&deployment(5, DeploymentState::Committed), 15, KEEP), Applied::Ignored);
        assert_eq!(d.apply(&deployment(4, DeploymentState::Accepted), 15, KEEP), Applied::Ignored);
        let ack = Uplink::Ack(CommandAck { seq: 1, command_id: CommandId(1), result: AckResult::Accepted });
        assert_eq!(d.apply(&ack, 16, KEEP), Applied::Fresh);
        assert_eq!(d.apply(&ack, 16, KEEP), Applied::Ignored);
        for seq in 6..10 {
            d.apply(&deployment(seq, DeploymentState::Verified), 17, KEEP);
        }
        assert_eq!(d.history.len(), 2, "bounded");
        // A wiped device (new boot id, birth counter restarted) is accepted again.
        assert_eq!(d.apply(&birth(1, 99), 18, KEEP), Applied::Fresh);
    }
}
