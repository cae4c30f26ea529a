use crate::codec::{MessageKind, WireMessage};
use crate::command::CommandId;
use alloc::string::String;
use serde::{Deserialize, Serialize};

/// What the device did with a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckResult {
    /// Accepted and persisted; progress follows on its own topic.
    Accepted,
    /// Refused; nothing changed on the device.
    Rejected(String),
    /// Already seen (duplicate delivery); nothing done again.
    Duplicate,
}

/// Acknowledges a command on `…/ack`, QoS 1, through the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandAck {
    /// Ack stream sequence number.
    pub seq: u64,
    /// The command acknowledged.
    pub command_id: CommandId,
    /// Outcome.
    pub result: AckResult,
}

impl WireMessage for CommandAck {
    const KIND: MessageKind = MessageKind::CommandAck;
}
