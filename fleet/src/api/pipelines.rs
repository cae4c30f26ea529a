//! `/v1/pipelines` and `/v1/runs`: training pipelines, their runs and logs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub use crate::pipeline::record::{
    CodeFile, DatasetRef, PipelineVersion, RunInput, RunRecord, RunStatus, StepRun, StepStatus,
};

/// One file of the spec's directory, uploaded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadFile {
    /// Path relative to the spec's directory (`/`-separated).
    pub path: String,
    /// Content, hex.
    pub hex: String,
    /// Executable bit.
    #[serde(default)]
    pub executable: bool,
}

/// `POST /v1/pipelines`: a spec and the files of its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// The spec's file name inside its directory.
    pub spec_file: String,
    /// The spec text (YAML).
    pub spec: String,
    /// The directory's files (the spec's own included).
    pub files: Vec<UploadFile>,
}

/// What `POST /v1/pipelines` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    /// The version the spec and code are registered as.
    pub version: PipelineVersion,
    /// False when an identical spec and code were registered before (that version is returned).
    pub new: bool,
}

/// A pipeline in `GET /v1/pipelines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineSummary {
    /// Name.
    pub name: String,
    /// Newest version.
    pub latest: u64,
    /// Its spec digest (hex).
    pub spec_digest: String,
    /// Runs of any version.
    pub runs: usize,
    /// The newest run's id.
    pub last_run: Option<String>,
    /// Its status.
    pub last_status: Option<RunStatus>,
}

/// `GET /v1/pipelines/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineDetail {
    /// Name.
    pub name: String,
    /// Every version, oldest first.
    pub versions: Vec<PipelineVersion>,
}

/// `POST /v1/pipelines/{name}/runs`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct RunRequest {
    /// The version to run (default: the newest).
    #[serde(default)]
    pub version: Option<u64>,
    /// Param overrides.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// `GET /v1/runs/{id}/steps/{step}/logs`: a piece of a step's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogChunk {
    /// The text from `offset` (at most 1 MiB; lossy UTF-8).
    pub text: String,
    /// Where the next read starts.
    pub next_offset: u64,
    /// The step has ended: nothing more will be written.
    pub complete: bool,
}
