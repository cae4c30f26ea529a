//! The MQTT topic namespace. Every topic string in Edgefleet is built and parsed here.
//!
//! ```text
//! {namespace}/devices/{device_id}/{leaf}
//! ```
//! `namespace` separates fleets sharing a broker (default `edgefleet`); `device_id` is a
//! [`DeviceId`] (never a wildcard); `leaf` is one of [`TopicKind`]'s leaves.

use crate::codec::MessageKind;
use crate::ids::{DeviceId, IdError};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

/// The namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "edgefleet";

/// Who publishes on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The device publishes, the fleet subscribes.
    DeviceToFleet,
    /// The fleet publishes, the device subscribes.
    FleetToDevice,
}

/// The last level of a device topic. Each has one message kind, QoS and retain flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// `birth`: capabilities after every connect.
    Birth,
    /// `presence`: retained online/offline state; also the last will.
    Presence,
    /// `health`: periodic heartbeat.
    Health,
    /// `deployment`: deployment lifecycle transitions.
    Deployment,
    /// `drift`: drift summaries.
    Drift,
    /// `samples`: sampled (input, output) records.
    Samples,
    /// `ack`: command acknowledgements.
    Ack,
    /// `chunk/req`: package chunk requests.
    ChunkRequest,
    /// `sensor`: the serial sensor link's status (retained latest value).
    Sensor,
    /// `labels`: ground-truth labels of sampled records.
    Labels,
    /// `cmd`: commands to the device.
    Command,
    /// `chunk/resp`: package chunk responses.
    ChunkResponse,
}

impl TopicKind {
    /// Every kind.
    pub const ALL: [TopicKind; 12] = [
        TopicKind::Birth,
        TopicKind::Presence,
        TopicKind::Health,
        TopicKind::Deployment,
        TopicKind::Drift,
        TopicKind::Samples,
        TopicKind::Ack,
        TopicKind::ChunkRequest,
        TopicKind::Sensor,
        TopicKind::Labels,
        TopicKind::Command,
        TopicKind::ChunkResponse,
    ];

    /// The topic level(s) after the device id.
    pub fn leaf(self) -> &'static str {
        match self {
            TopicKind::Birth => "birth",
            TopicKind::Presence => "presence",
            TopicKind::Health => "health",
            TopicKind::Deployment => "deployment",
            TopicKind::Drift => "drift",
            TopicKind::Samples => "samples",
            TopicKind::Ack => "ack",
            TopicKind::ChunkRequest => "chunk/req",
            TopicKind::Sensor => "sensor",
            TopicKind::Labels => "labels",
            TopicKind::Command => "cmd",
            TopicKind::ChunkResponse => "chunk/resp",
        }
    }

    /// Who publishes it.
    pub fn direction(self) -> Direction {
        match self {
            TopicKind::Command | TopicKind::ChunkResponse => Direction::FleetToDevice,
            _ => Direction::DeviceToFleet,
        }
    }

    /// The only message kind allowed on it.
    pub fn message_kind(self) -> MessageKind {
        match self {
            TopicKind::Birth => MessageKind::Birth,
            TopicKind::Presence => MessageKind::Presence,
            TopicKind::Health => MessageKind::Health,
            TopicKind::Deployment => MessageKind::DeploymentStatus,
            TopicKind::Drift => MessageKind::DriftSummary,
            TopicKind::Samples => MessageKind::SampleBatch,
            TopicKind::Ack => MessageKind::CommandAck,
            TopicKind::ChunkRequest => MessageKind::ChunkRequest,
            TopicKind::Sensor => MessageKind::SensorStatus,
            TopicKind::Labels => MessageKind::SampleLabels,
            TopicKind::Command => MessageKind::Command,
            TopicKind::ChunkResponse => MessageKind::ChunkResponse,
        }
    }

    /// MQTT QoS to publish with. Chunk traffic is QoS 0: a lost chunk is re-requested after a
    /// timeout, which is cheaper than broker-side redelivery of large payloads.
    pub fn qos(self) -> u8 {
        match self {
            TopicKind::ChunkRequest | TopicKind::ChunkResponse => 0,
            _ => 1,
        }
    }

    /// Whether publishes carry the retain flag (presence and the sensor status: latest values
    /// a subscriber needs at once).
    pub fn retained(self) -> bool {
        matches!(self, TopicKind::Presence | TopicKind::Sensor)
    }
}

/// A fleet namespace: 1 to 32 bytes of `[a-z0-9_-]`, one topic level.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Validates and wraps `s`.
    pub fn new(s: impl Into<String>) -> Result<Self, TopicError> {
        let s = s.into();
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if s.is_empty() || s.len() > 32 || !s.chars().all(valid_char) {
            return Err(TopicError::BadNamespace(s));
        }
        Ok(Self(s))
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Filters the fleet manager subscribes to (one per device → fleet kind, `+` for devices).
    pub fn fleet_filters(&self) -> Vec<String> {
        TopicKind::ALL
            .iter()
            .filter(|k| k.direction() == Direction::DeviceToFleet)
            .map(|k| format!("{}/devices/+/{}", self.0, k.leaf()))
            .collect()
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self(DEFAULT_NAMESPACE.into())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fully resolved device topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    /// Fleet namespace.
    pub namespace: Namespace,
    /// The device the topic belongs to (publisher or recipient).
    pub device: DeviceId,
    /// Which topic of that device.
    pub kind: TopicKind,
}

impl Topic {
    /// Builds a topic.
    pub fn new(namespace: &Namespace, device: &DeviceId, kind: TopicKind) -> Self {
        Self { namespace: namespace.clone(), device: device.clone(), kind }
    }

    /// The filters a device subscribes to: its fleet → device topics.
    pub fn device_filters(namespace: &Namespace, device: &DeviceId) -> Vec<String> {
        TopicKind::ALL
            .iter()
            .filter(|k| k.direction() == Direction::FleetToDevice)
            .map(|k| Topic::new(namespace, device, *k).to_string())
            .collect()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/devices/{}/{}", self.namespace, self.device, self.kind.leaf())
    }
}

/// A topic string that is not an Edgefleet device topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The namespace level is not valid.
    BadNamespace(String),
    /// The second level is not `devices`, or levels are missing.
    NotADeviceTopic(String),
    /// The device level is not a valid device id.
    BadDeviceId(IdError),
    /// The leaf is not a known topic kind.
    UnknownLeaf(String),
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::BadNamespace(ns) => {
                write!(f, "namespace {ns:?} must be 1 to 32 bytes of [a-z0-9_-]")
            }
            TopicError::NotADeviceTopic(t) => {
                write!(f, "topic {t:?} is not of the form NAMESPACE/devices/DEVICE_ID/LEAF")
            }
            TopicError::BadDeviceId(e) => write!(f, "bad device id in topic: {e}"),
            TopicError::UnknownLeaf(leaf) => write!(f, "unknown topic leaf {leaf:?}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TopicError {}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(topic: &str) -> Result<Self, TopicError> {
        let mut levels = topic.splitn(4, '/');
        let (Some(ns), Some("devices"), Some(device), Some(leaf)) =
            (levels.next(), levels.next(), levels.next(), levels.next())
        else {
            return Err(TopicError::NotADeviceTopic(topic.into()));
        };
        let namespace = Namespace::new(ns)?;
        let device = DeviceId::new(device).map_err(TopicError::BadDeviceId)?;
        let kind = TopicKind::ALL
            .into_iter()
            .find(|k| k.leaf() == leaf)
            .ok_or_else(|| TopicError::UnknownLeaf(leaf.into()))?;
        Ok(Topic { namespace, device, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn builds_and_parses_every_kind() {
        let ns = Namespace::default();
        let dev = DeviceId::new("pump-07").unwrap();
        for kind in TopicKind::ALL {
            let topic = Topic::new(&ns, &dev, kind);
            let text = topic.to_string();
            assert_eq!(text.parse::<Topic>().unwrap(), topic, "{text}");
        }
        assert_eq!(Topic::new(&ns, &dev, TopicKind::ChunkRequest).to_string(), "edgefleet/devices/pump-07/chunk/req");
    }

    #[test]
    fn rejects_foreign_topics() {
        for bad in [
            "",
            "edgefleet",
            "edgefleet/devices/x",
            "edgefleet/other/x/birth",
            "Edge/devices/x/birth",
            "edgefleet/devices/+/birth",
            "edgefleet/devices/x/nope",
            "edgefleet/devices/x/birth/extra",
        ] {
            assert!(bad.parse::<Topic>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn filters() {
        let ns = Namespace::new("plant-3").unwrap();
        assert_eq!(ns.fleet_filters().len(), 10);
        assert!(ns.fleet_filters().contains(&"plant-3/devices/+/health".to_string()));
        assert!(ns.fleet_filters().contains(&"plant-3/devices/+/labels".to_string()));
        assert!(ns.fleet_filters().contains(&"plant-3/devices/+/sensor".to_string()));
        let dev = DeviceId::new("d1").unwrap();
        assert_eq!(Topic::device_filters(&ns, &dev), vec!["plant-3/devices/d1/cmd", "plant-3/devices/d1/chunk/resp"]);
    }
}
