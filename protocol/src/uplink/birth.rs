use crate::codec::{MessageKind, WireMessage};
use crate::hardware::HardwareInfo;
use crate::ids::{DeviceId, Digest, ModelName};
use crate::version::SemVer;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A model the device serves right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveModel {
    /// Model name.
    pub name: ModelName,
    /// Installed version sequence.
    pub version_seq: u64,
    /// Human label of that version.
    pub label: String,
    /// Package id (SHA-256 of the package head) it was installed from.
    pub package_id: Digest,
}

/// Published after every (re)connect, before anything else: who the device is and what it
/// can run. Topic `…/birth`, QoS 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Birth {
    /// The publishing device (must equal the topic's device level).
    pub device_id: DeviceId,
    /// Random id chosen at agent start; health counters reset when it changes.
    pub boot_id: u64,
    /// Agent version.
    pub agent_version: SemVer,
    /// Compute the device offers.
    pub hardware: HardwareInfo,
    /// Free bytes on the agent's data partition.
    pub free_disk_bytes: u64,
    /// Available memory in bytes.
    pub free_memory_bytes: u64,
    /// Models being served.
    pub active_models: Vec<ActiveModel>,
    /// Birth sequence number (increments per connect, persisted).
    pub seq: u64,
}

impl WireMessage for Birth {
    const KIND: MessageKind = MessageKind::Birth;
}
