//! What the fleet manager keeps about pipelines: registered versions (spec text and code
//! snapshot), runs and their steps. JSON records (`fleet::pipeline::store`), also the answers
//! of the `/v1/pipelines` and `/v1/runs` routes.

use edgefleet_protocol::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// One file of a pipeline's code snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CodeFile {
    /// Path relative to the spec's directory (`/`-separated).
    pub path: String,
    /// SHA-256 of its content (the artifact holding it).
    #[schema(value_type = String)]
    pub digest: Digest,
    /// Whether it is executable (kept when the snapshot is laid out for a step).
    #[serde(default)]
    pub executable: bool,
}

/// A registered pipeline version: the spec as written and its directory, content-addressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineVersion {
    /// Pipeline name (from the spec).
    pub name: String,
    /// Version, from 1, per name; registering unchanged spec and code returns the same one.
    pub version: u64,
    /// SHA-256 of the spec text.
    #[schema(value_type = String)]
    pub spec_digest: Digest,
    /// Digest of the code snapshot (`artifacts::code_digest`: paths and file digests).
    #[schema(value_type = String)]
    pub code_digest: Digest,
    /// The spec file's name inside the snapshot.
    pub spec_file: String,
    /// The spec text.
    pub spec: String,
    /// The files of the spec's directory.
    pub code: Vec<CodeFile>,
    /// When registered (ms since the epoch).
    pub registered_at_ms: u64,
    /// By whom.
    pub registered_by: String,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, waiting for the scheduler.
    Queued,
    /// Steps are running.
    Running,
    /// Every step succeeded (or was served from the cache).
    Succeeded,
    /// A step failed or timed out, or the run could not go on (the reason says which).
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled)
    }

    /// As written in records and tables.
    pub fn word(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Waiting for the steps it depends on.
    Pending,
    /// An attempt is running.
    Running,
    /// Exited 0 and wrote its outputs (or reused them: see `cached`).
    Succeeded,
    /// Exited non-zero on its last attempt, could not start, or missed an output.
    Failed,
    /// Ran past its timeout; its process group was killed.
    TimedOut,
    /// The run was cancelled while it ran.
    Cancelled,
    /// Never ran: a step it depends on (or another step of the run) failed first.
    Skipped,
}

impl StepStatus {
    /// Whether the step has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Running)
    }

    /// As written in records and tables.
    pub fn word(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::TimedOut => "timed_out",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// One resolved input of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunInput {
    /// As the spec writes it (`dataset:vibration-train@latest`, `file:data.csv`).
    pub source: String,
    /// SHA-256 of the file the steps read.
    #[schema(value_type = String)]
    pub digest: Digest,
    /// For a dataset input: its name, version and dataset digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetRef>,
}

/// A dataset version a run read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatasetRef {
    /// Dataset name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// The dataset digest.
    #[schema(value_type = String)]
    pub digest: Digest,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepRun {
    /// Where it is.
    pub status: StepStatus,
    /// Attempts started (0 when cached or skipped).
    pub attempts: u32,
    /// Its outputs were reused from an identical earlier step.
    pub cached: bool,
    /// The run whose step produced the reused outputs (when cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<String>,
    /// Output name → digest of the file it wrote.
    #[schema(value_type = BTreeMap<String, String>)]
    pub outputs: BTreeMap<String, Digest>,
    /// Numbers the step wrote to `metrics.json`.
    pub metrics: BTreeMap<String, f64>,
    /// The step's cache key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub cache_key: Option<Digest>,
    /// Exit code of the last attempt, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed, timed out or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When its first attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
}

impl StepRun {
    /// A step that has not started.
    pub fn pending() -> Self {
        StepRun {
            status: StepStatus::Pending,
            attempts: 0,
            cached: false,
            cached_from: None,
            outputs: BTreeMap::new(),
            metrics: BTreeMap::new(),
            cache_key: None,
            exit_code: None,
            reason: None,
            started_at_ms: None,
            finished_at_ms: None,
        }
    }

    /// Milliseconds it ran (so far, given `now`).
    pub fn duration_ms(&self, now_ms: u64) -> Option<u64> {
        let start = self.started_at_ms?;
        Some(self.finished_at_ms.unwrap_or(now_ms).saturating_sub(start))
    }
}

/// One run of a pipeline version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunRecord {
    /// `NAME-NUMBER`.
    pub id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// The registered version it runs.
    pub version: u64,
    /// Its number among the pipeline's runs, from 1 (`${run.number}`).
    pub number: u64,
    /// SHA-256 of the spec.
    #[schema(value_type = String)]
    pub spec_digest: Digest,
    /// Digest of the code snapshot.
    #[schema(value_type = String)]
    pub code_digest: Digest,
    /// Every param's value for this run (defaults with the overrides applied).
    pub params: BTreeMap<String, String>,
    /// Inputs, resolved to content when the run started.
    pub inputs: BTreeMap<String, RunInput>,
    /// Executor kind (`local`, `ray`).
    pub executor: String,
    /// Where it is.
    pub status: RunStatus,
    /// Why it failed or was cancelled, or what happened to it (resumed after a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its steps, by name.
    pub steps: BTreeMap<String, StepRun>,
    /// The model version its `package` step registered (`name@seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// When created.
    pub created_at_ms: u64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// Who started it.
    pub started_by: String,
    /// Times a restarted fleet manager picked it up again.
    #[serde(default)]
    pub resumed: u32,
}

impl RunRecord {
    /// The step that ended the run, when one failed.
    pub fn failed_step(&self) -> Option<(&String, &StepRun)> {
        self.steps.iter().find(|(_, s)| matches!(s.status, StepStatus::Failed | StepStatus::TimedOut))
    }
}

/// A reusable step result: what an identical step produced earlier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Output name → digest.
    pub outputs: BTreeMap<String, Digest>,
    /// Its metrics.
    pub metrics: BTreeMap<String, f64>,
    /// The run that produced it.
    pub run: String,
    /// For a `package` step: the model version it registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}
