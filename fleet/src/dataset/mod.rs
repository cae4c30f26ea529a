//! Versioned datasets (fleet/DATASETS.md): immutable, content-addressed snapshots of CSV data,
//! numbered per name (`NAME@N`) and addressable by digest.
//!
//! - [`snapshot`]: CSV bytes → schema, row count, data digest, dataset digest (pure; the
//!   canonical form the digest is taken over is documented there).
//! - [`store`]: [`DatasetStore`], the on-disk index (`<data-dir>/datasets/<name>/<N>.json`,
//!   one immutable manifest per version) over the artifact store that holds the CSV bytes
//!   (`<data-dir>/artifacts`, [`crate::pipeline::artifacts::DirStore`]).
//! - [`diff`]: schema and distribution differences between two versions, on the drift
//!   statistics of [`crate::drift`].
//! - [`samples`]: the fleet's stored device samples as dataset CSV (`--from-samples`).
//!
//! The fleet manager is the only writer (`POST /v1/datasets/...`, audited as
//! `dataset.create`); the pipeline runner reads through [`DatasetStore::resolve`].

pub mod diff;
pub mod samples;
pub mod snapshot;
pub mod store;

pub use snapshot::{Column, ColumnKind, SnapshotError};
pub use store::DatasetStore;

use edgefleet_protocol::Digest;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use utoipa::ToSchema;

/// One version of a dataset: its manifest, immutable once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatasetVersion {
    /// The dataset's name.
    pub name: String,
    /// Its version number under that name, from 1.
    pub version: u64,
    /// The dataset digest: SHA-256 of the canonical form of its content
    /// ([`snapshot`] module docs); never covers provenance or time.
    #[schema(value_type = String)]
    pub digest: Digest,
    /// The CSV file's digest (its artifact in `<data-dir>/artifacts`).
    #[schema(value_type = String)]
    pub data: Digest,
    /// The CSV file's size in bytes.
    pub bytes: u64,
    /// Data rows (the header not counted).
    pub rows: u64,
    /// Column names and kinds, in file order.
    pub schema: Vec<Column>,
    /// Where the rows came from and who made it (not part of the digest).
    pub provenance: Provenance,
}

impl DatasetVersion {
    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// Where a dataset version came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Provenance {
    /// `csv` (uploaded) or `samples` (the fleet's stored device samples).
    pub source: String,
    /// The uploaded file's name, as the operator gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `samples`: the model whose samples were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `samples`: the device selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
    /// `samples`: only records this recent (ms before creation, device clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// `samples`: only records with a ground-truth label.
    #[serde(default)]
    pub labelled_only: bool,
    /// Devices the rows came from, sorted.
    #[serde(default)]
    pub devices: Vec<String>,
    /// The rows' time range (device clock, ms since the epoch), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<TimeRange>,
    /// Model versions that served the rows, sorted.
    #[serde(default)]
    pub model_versions: Vec<ModelVersionRef>,
    /// Who made it (the operator, `x-edgefleet-actor`).
    pub created_by: String,
    /// When (fleet clock, ms since the epoch).
    pub created_at_ms: u64,
}

/// A closed time range, ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimeRange {
    /// The earliest row.
    pub from_ms: u64,
    /// The latest row.
    pub to_ms: u64,
}

/// A model version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct ModelVersionRef {
    /// Model name.
    pub model: String,
    /// Version sequence.
    pub version_seq: u64,
}

/// Why a dataset request failed. Each message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// No dataset with this name.
    #[error("no dataset {name:?}; `edgefleet dataset list` shows the known ones")]
    NoDataset {
        /// The name asked for.
        name: String,
    },
    /// The name exists, the version does not.
    #[error("{name} has versions 1..{latest}, not {asked}")]
    NoVersion {
        /// Dataset name.
        name: String,
        /// Its newest version.
        latest: u64,
        /// The version asked for.
        asked: u64,
    },
    /// No version of the name has this digest.
    #[error("no version of {name} has digest sha256:{digest}; `edgefleet dataset show {name}` lists its versions")]
    NoDigest {
        /// Dataset name.
        name: String,
        /// The digest asked for.
        digest: Digest,
    },
    /// The version text is neither `latest`, a number nor `sha256:<hex>`.
    #[error("{0:?} is not a dataset version (latest, a number such as 3, or sha256:<64 hex digits>)")]
    BadVersion(String),
    /// The name breaks the naming rule.
    #[error(
        "{0:?} is not a dataset name (1-64 characters of letters, digits, '.', '_', '-', starting with a letter or digit)"
    )]
    BadName(String),
    /// The CSV is not a valid dataset.
    #[error("{0}")]
    Invalid(#[from] SnapshotError),
    /// A stored manifest does not parse, or says something else than its file name.
    #[error("dataset manifest {path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The data file is missing or its bytes do not match its digest.
    #[error("dataset {label}: data file sha256:{data} is missing or damaged in the artifact store")]
    DataMissing {
        /// `name@N`.
        label: String,
        /// Its digest.
        data: Digest,
    },
    /// Reading or writing files failed.
    #[error("dataset store: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
}

impl DatasetError {
    /// Whether this is the caller's mistake (a 4xx), as opposed to a storage failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DatasetError::NoDataset { .. } | DatasetError::NoVersion { .. } | DatasetError::NoDigest { .. })
    }

    /// Whether the request itself is malformed.
    pub fn is_invalid(&self) -> bool {
        matches!(self, DatasetError::BadVersion(_) | DatasetError::BadName(_) | DatasetError::Invalid(_))
    }
}

/// Splits `NAME[@VERSION]` (the CLI's and the pipeline spec's way to name a dataset) into the
/// name and the version text (`latest` when there is none).
pub fn split_ref(text: &str) -> (&str, &str) {
    match text.split_once('@') {
        Some((name, version)) => (name, version),
        None => (text, "latest"),
    }
}
