use crate::codec::{MessageKind, WireMessage};
use serde::{Deserialize, Serialize};

/// Why a device went offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfflineReason {
    /// The agent shut down cleanly and said so.
    Shutdown,
    /// The broker published the last will: the connection dropped without a goodbye.
    ConnectionLost,
}

/// Online or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PresenceState {
    /// Connected.
    Online,
    /// Not connected.
    Offline(OfflineReason),
}

/// Retained presence on `…/presence`, QoS 1. The agent registers
/// `Presence { state: Offline(ConnectionLost), boot_id }` as its MQTT last will, publishes
/// `Online` after birth, and `Offline(Shutdown)` before a clean disconnect. The fleet ignores
/// a presence whose `boot_id` is older than the last birth's (a stale will).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The state.
    pub state: PresenceState,
    /// The agent run it belongs to (see [`crate::uplink::Birth::boot_id`]).
    pub boot_id: u64,
}

impl WireMessage for Presence {
    const KIND: MessageKind = MessageKind::Presence;
}
