//! `/v1/models`: the registry of model versions.

use edgefleet_protocol::DeviceId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::server::models::{ModelRecord, VariantInfo};

/// A model version in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// Version sequence.
    pub version_seq: u64,
    /// Human label.
    pub label: String,
    /// Package id (hex).
    pub package_id: String,
    /// Hardware classes with a variant (`cpu`, `gpu`, `accelerator`).
    pub variants: Vec<String>,
    /// Devices serving this version.
    pub devices: usize,
}

/// A model version with the devices that run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelVersion {
    /// The registered version.
    #[schema(value_type = Object)]
    pub record: ModelRecord,
    /// Devices serving it.
    #[schema(value_type = Vec<String>)]
    pub devices: Vec<DeviceId>,
}

/// `GET /v1/models/{name}`: one model's versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelDetail {
    /// Model name.
    pub name: String,
    /// Its versions.
    pub versions: Vec<ModelVersion>,
}

/// `POST /v1/models`: the registered version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PushResponse {
    /// The record.
    #[schema(value_type = Object)]
    pub model: ModelRecord,
    /// True when this very package was registered before (nothing changed).
    pub already_registered: bool,
}
