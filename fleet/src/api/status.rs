//! `GET /v1/status`: the server summary.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::server::core::Counters;

/// Where the fleet manager listens (also written to `server.json` in the data dir).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerInfo {
    /// The HTTP API, `http://host:port`.
    pub http: String,
    /// The broker devices connect to, `mqtt://host:port`.
    pub mqtt: String,
    /// True when the broker is the embedded one.
    pub embedded_broker: bool,
    /// Topic namespace.
    pub namespace: String,
    /// Data directory.
    pub data_dir: String,
    /// Process id.
    pub pid: u32,
}

/// The server summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    /// Where it listens.
    pub info: ServerInfo,
    /// Devices known.
    pub devices: usize,
    /// Devices online.
    pub online: usize,
    /// Heard from, but their birth (hardware class) has not arrived (asked again).
    pub without_birth: usize,
    /// Model versions registered.
    pub models: usize,
    /// Rollouts, finished or not.
    pub rollouts: usize,
    /// Ids of the rollouts still running.
    pub active_rollouts: Vec<u32>,
    /// Entries in the audit chain.
    pub audit_entries: u64,
    /// Counters for benchmarks.
    #[schema(value_type = Object)]
    pub counters: Counters,
}
