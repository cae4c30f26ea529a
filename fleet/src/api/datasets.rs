//! `/v1/datasets`: versioned, content-addressed datasets (fleet/DATASETS.md).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::dataset::diff::{ColumnDiff, DatasetDiff, KindChange};
pub use crate::dataset::{Column, ColumnKind, DatasetVersion, ModelVersionRef, Provenance, TimeRange};

/// `POST /v1/datasets/{name}` (a CSV body) and `POST /v1/datasets/{name}/from-samples`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateDatasetResponse {
    /// The version: a new one, or the latest one when its content is the same.
    pub dataset: DatasetVersion,
    /// False when the content equals the latest version's, which is returned instead of a
    /// new version.
    pub created: bool,
}

/// `POST /v1/datasets/{name}/from-samples` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromSamplesRequest {
    /// The model whose sampled records become the rows.
    pub model: String,
    /// Only devices this selector picks (`hw=gpu,site=plant-3`; empty: every device).
    #[serde(default)]
    pub select: String,
    /// Only records this recent (`1h`, `30m`; device clock against the fleet's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only records with a ground-truth label.
    #[serde(default)]
    pub labelled_only: bool,
}

/// A dataset in `GET /v1/datasets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatasetSummary {
    /// Name.
    pub name: String,
    /// How many versions it has.
    pub versions: u64,
    /// The newest.
    pub latest: DatasetVersion,
}

/// `GET /v1/datasets/{name}`: every version, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatasetDetail {
    /// Name.
    pub name: String,
    /// Its versions.
    pub versions: Vec<DatasetVersion>,
}
