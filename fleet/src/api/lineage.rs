//! `/v1/lineage`: where a model version came from (datasets, run, spec, code, package,
//! signature) and where it went (rollouts, devices), each digest re-verified.

use crate::api::rollouts::RolloutSummary;
use crate::pipeline::record::{RunRecord, RunStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One re-verified link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// The digest it carries (hex).
    pub digest: String,
    /// Whether the stored content still has it.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `GET /v1/lineage/models/{name}/{seq}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelLineage {
    /// Model name.
    pub model: String,
    /// Version.
    pub version_seq: u64,
    /// Label.
    pub label: String,
    /// Package id (hex).
    pub package_id: String,
    /// Signing key id (hex).
    pub key_id: String,
    /// Who pushed it (`pipeline:RUN` for a pipeline's package step).
    pub pushed_by: String,
    /// The version it was derived from.
    pub parent_version_seq: Option<u64>,
    /// The run that built it (none: pushed by hand).
    #[schema(value_type = Option<Object>)]
    pub run: Option<RunRecord>,
    /// Its rollouts.
    #[schema(value_type = Vec<Object>)]
    pub rollouts: Vec<RolloutSummary>,
    /// Devices running it now.
    pub devices: Vec<String>,
    /// Every link, re-verified.
    pub checks: Vec<Check>,
    /// All checks passed.
    pub verified: bool,
}

/// A run that read a dataset version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatasetUse {
    /// Run id.
    pub run: String,
    /// Its pipeline.
    pub pipeline: String,
    /// How it ended.
    pub status: RunStatus,
    /// The model version it packaged.
    pub package: Option<String>,
}

/// `GET /v1/lineage/datasets/{name}/{version}`: what was trained from a dataset version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatasetLineage {
    /// Dataset name.
    pub dataset: String,
    /// Version.
    pub version: u64,
    /// Dataset digest (hex).
    pub digest: String,
    /// Runs that read it.
    pub runs: Vec<DatasetUse>,
}
