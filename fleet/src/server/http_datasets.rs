//! The dataset routes of the operator API (fleet/DATASETS.md):
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/v1/datasets` | every dataset with its latest version |
//! | POST | `/v1/datasets/{name}?file=` | body: CSV; checked, snapshotted as the next version |
//! | POST | `/v1/datasets/{name}/from-samples` | `{"model", "select", "since", "labelled_only"}`: the stored device samples as the next version |
//! | GET | `/v1/datasets/{name}` | every version of one dataset |
//! | GET | `/v1/datasets/{name}/{version}` | one version (`latest`, `3`, `sha256:<hex>`) |
//! | GET | `/v1/datasets/{name}/{version}/data` | its CSV bytes, exactly as stored |
//! | GET | `/v1/datasets/{name}/{version}/diff?against=NAME@V` | schema and distribution differences |
//!
//! The manifests and data are files under the data dir ([`DatasetStore`]), written and read
//! on blocking threads. Every create and export is recorded in the audit chain through the
//! core (`dataset.create`, `dataset.export`), after the manifest is on disk.

use super::http::HttpState;
use super::requests::{ApiError, ApiRequest, ask_core};
use crate::api::ApiResponse;
use crate::api::datasets::{CreateDatasetResponse, DatasetDetail, DatasetSummary, FromSamplesRequest};
use crate::api::errors::ErrorBody;
use crate::dataset::diff::{DatasetDiff, diff};
use crate::dataset::samples::{SampleFilter, fill_provenance, to_csv};
use crate::dataset::snapshot::parse;
use crate::dataset::store::Created;
use crate::dataset::{DatasetError, DatasetStore, DatasetVersion, Provenance, split_ref};
use crate::drift::DetectorSettings;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Mutex;

/// One creation at a time in this process: the version check and the manifest write go
/// together (the store's exclusive link is the guard against any other writer).
static CREATE: Mutex<()> = Mutex::new(());

/// A refusal: the status and the message, as `{"error": "..."}`.
struct Refusal(StatusCode, String);

impl From<DatasetError> for Refusal {
    fn from(e: DatasetError) -> Self {
        let status = if e.is_not_found() {
            StatusCode::NOT_FOUND
        } else if e.is_invalid() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Refusal(status, e.to_string())
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal(super::http::status_of(&e), e.to_string())
    }
}

fn reply<T: Serialize>(result: Result<T, Refusal>) -> Response {
    match result {
        Ok(answer) => match serde_json::to_value(&answer) {
            Ok(value) => axum::Json(value).into_response(),
            Err(e) => refuse(Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the answer: {e}"))),
        },
        Err(r) => refuse(r),
    }
}

fn refuse(Refusal(status, error): Refusal) -> Response {
    (status, axum::Json(ErrorBody { error })).into_response()
}

/// Runs `work` against the data dir's dataset store on a blocking thread.
async fn blocking<T: Send + 'static>(
    s: &HttpState,
    work: impl FnOnce(&DatasetStore) -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    let dir = s.data_dir.clone();
    tokio::task::spawn_blocking(move || work(&DatasetStore::open(&dir)?))
        .await
        .unwrap_or_else(|e| Err(Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("dataset task failed: {e}"))))
}

/// Records `action` on `version` in the audit chain (through the core, committed before the
/// answer).
async fn audit(
    s: &HttpState,
    actor: String,
    action: &str,
    version: &DatasetVersion,
    detail: serde_json::Value,
) -> Result<(), Refusal> {
    let request =
        ApiRequest::Record { actor, action: action.into(), subject: format!("dataset/{}", version.label()), detail };
    ask_core(&s.inputs, request).await.map(|_| ()).map_err(Refusal::from)
}

fn create_detail(created: &Created) -> serde_json::Value {
    let v = &created.version;
    json!({
        "digest": v.digest.to_hex(),
        "data": v.data.to_hex(),
        "rows": v.rows,
        "columns": v.schema.len(),
        "source": v.provenance.source,
        "created": created.created,
    })
}

async fn create(s: &HttpState, name: String, csv: Vec<u8>, provenance: Provenance) -> Response {
    let actor = provenance.created_by.clone();
    let made = blocking(s, move |store| {
        let _one_at_a_time = CREATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(store.create(&name, &csv, provenance)?)
    })
    .await;
    let created = match made {
        Ok(c) => c,
        Err(r) => return refuse(r),
    };
    if let Err(r) = audit(s, actor, "dataset.create", &created.version, create_detail(&created)).await {
        return refuse(r);
    }
    reply(Ok::<_, Refusal>(CreateDatasetResponse { dataset: created.version, created: created.created }))
}

#[derive(Deserialize)]
pub(super) struct FileQuery {
    file: Option<String>,
}

#[utoipa::path(post, path = "/v1/datasets/{name}", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"),
        ("file" = Option<String>, Query, description = "The uploaded file's name, for the provenance")),
    request_body(content = String, content_type = "text/csv", description = "The CSV: a header row, then rows"),
    responses((status = 200, body = CreateDatasetResponse), (status = 400, body = ErrorBody)))]
pub(super) async fn create_dataset(
    State(s): State<HttpState>,
    Path(name): Path<String>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let provenance = Provenance {
        source: "csv".into(),
        file: q.file.map(|f| f.chars().take(256).collect()),
        created_by: super::http::actor(&headers),
        created_at_ms: s.clock.now_ms(),
        ..Provenance::default()
    };
    create(&s, name, body.to_vec(), provenance).await
}

#[utoipa::path(post, path = "/v1/datasets/{name}/from-samples", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name")),
    request_body = FromSamplesRequest,
    responses((status = 200, body = CreateDatasetResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn create_from_samples(
    State(s): State<HttpState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: FromSamplesRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(Refusal(StatusCode::BAD_REQUEST, format!("from-samples request: {e}"))),
    };
    let now = s.clock.now_ms();
    let since_ms = match request.since.as_deref().map(crate::rollout::plan::parse_duration_ms).transpose() {
        Ok(d) => d,
        Err(e) => return refuse(Refusal(StatusCode::BAD_REQUEST, format!("since: {e}"))),
    };
    // The model must be known, and the selector must parse: the core answers both.
    if let Err(e) = ask_core(&s.inputs, ApiRequest::ShowModel { name: request.model.clone() }).await {
        return refuse(e.into());
    }
    let devices = if request.select.trim().is_empty() {
        None
    } else {
        match ask_core(&s.inputs, ApiRequest::ListDevices { selector: request.select.clone() }).await {
            Ok(ApiResponse::Devices(list)) => Some(list.into_iter().map(|d| d.id.to_string()).collect()),
            Ok(_) => return refuse(Refusal(StatusCode::INTERNAL_SERVER_ERROR, "unexpected device list".into())),
            Err(e) => return refuse(e.into()),
        }
    };
    let filter = SampleFilter {
        devices,
        since_ms: since_ms.map(|d| now.saturating_sub(d)),
        labelled_only: request.labelled_only,
    };
    let store = s.store.clone();
    let model = request.model.clone();
    let read = tokio::task::spawn_blocking(move || super::reads::samples(&*store, &model, None, 100_000)).await;
    let records = match read {
        Ok(Ok(ApiResponse::Samples(records))) => records,
        Ok(Ok(_)) => return refuse(Refusal(StatusCode::INTERNAL_SERVER_ERROR, "unexpected samples answer".into())),
        Ok(Err(e)) => return refuse(e.into()),
        Err(e) => return refuse(Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("samples read failed: {e}"))),
    };
    let records: Vec<_> = records.into_iter().filter(|r| filter.keeps(r)).collect();
    if records.is_empty() {
        let what = [
            (!request.select.is_empty()).then(|| format!("select {:?}", request.select)),
            request.since.as_ref().map(|d| format!("since {d}")),
            request.labelled_only.then(|| "labelled only".to_string()),
        ];
        let what: Vec<String> = what.into_iter().flatten().collect();
        let message = format!(
            "no sampled records of {}{} are stored; devices sample with `edgefleet devices sampling` (and label through POST /v1/feedback)",
            request.model,
            if what.is_empty() { String::new() } else { format!(" match {}", what.join(", ")) }
        );
        return refuse(Refusal(StatusCode::BAD_REQUEST, message));
    }
    let mut provenance = Provenance {
        source: "samples".into(),
        model: Some(request.model.clone()),
        select: (!request.select.is_empty()).then(|| request.select.clone()),
        since_ms,
        labelled_only: request.labelled_only,
        created_by: super::http::actor(&headers),
        created_at_ms: now,
        ..Provenance::default()
    };
    fill_provenance(&records, &mut provenance);
    create(&s, name, to_csv(&records, true).into_bytes(), provenance).await
}

#[utoipa::path(get, path = "/v1/datasets", tag = "datasets",
    responses((status = 200, body = [DatasetSummary])))]
pub(super) async fn list_datasets(State(s): State<HttpState>) -> Response {
    reply(
        blocking(&s, |store| {
            let mut out = Vec::new();
            for name in store.names()? {
                let versions = store.versions(&name)?;
                if let Some(latest) = versions.last() {
                    out.push(DatasetSummary { name, versions: versions.len() as u64, latest: latest.clone() });
                }
            }
            Ok(out)
        })
        .await,
    )
}

#[utoipa::path(get, path = "/v1/datasets/{name}", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 200, body = DatasetDetail), (status = 404, body = ErrorBody)))]
pub(super) async fn show_dataset(State(s): State<HttpState>, Path(name): Path<String>) -> Response {
    reply(
        blocking(&s, move |store| {
            let versions = store.versions(&name)?;
            if versions.is_empty() {
                return Err(DatasetError::NoDataset { name }.into());
            }
            Ok(DatasetDetail { name, versions })
        })
        .await,
    )
}

#[utoipa::path(get, path = "/v1/datasets/{name}/{version}", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"),
        ("version" = String, Path, description = "latest, a version number, or sha256:<hex>")),
    responses((status = 200, body = DatasetVersion), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn show_dataset_version(
    State(s): State<HttpState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    reply(blocking(&s, move |store| Ok(store.resolve(&name, &version)?)).await)
}

#[utoipa::path(get, path = "/v1/datasets/{name}/{version}/data", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"),
        ("version" = String, Path, description = "latest, a version number, or sha256:<hex>")),
    responses((status = 200, description = "The CSV bytes, exactly as snapshotted", content_type = "text/csv"),
        (status = 404, body = ErrorBody)))]
pub(super) async fn dataset_data(
    State(s): State<HttpState>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let read = blocking(&s, move |store| {
        let v = store.resolve(&name, &version)?;
        let bytes = store.read_data(&v)?;
        Ok((v, bytes))
    })
    .await;
    let (version, bytes) = match read {
        Ok(r) => r,
        Err(r) => return refuse(r),
    };
    let detail = json!({"data": version.data.to_hex(), "bytes": bytes.len()});
    if let Err(r) = audit(&s, super::http::actor(&headers), "dataset.export", &version, detail).await {
        return refuse(r);
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::HeaderName::from_static("x-edgefleet-dataset"), version.label()),
            (header::HeaderName::from_static("x-edgefleet-data-digest"), version.data.to_hex()),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct DiffQuery {
    against: String,
    #[serde(default = "default_bins")]
    bins: usize,
    min_rows: Option<u64>,
    fdr: Option<f64>,
    min_psi: Option<f64>,
}

fn default_bins() -> usize {
    10
}

#[utoipa::path(get, path = "/v1/datasets/{name}/{version}/diff", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name (A)"),
        ("version" = String, Path, description = "A's version"),
        ("against" = String, Query, description = "B, as NAME or NAME@VERSION"),
        ("bins" = Option<usize>, Query, description = "Quantile bins for numeric columns (default 10)"),
        ("min_rows" = Option<u64>, Query, description = "Fewest values a column needs to be tested (default 100)"),
        ("fdr" = Option<f64>, Query, description = "Benjamini–Hochberg false discovery rate (default 0.01)"),
        ("min_psi" = Option<f64>, Query, description = "Smallest PSI that counts as drift (default 0.1)")),
    responses((status = 200, body = DatasetDiff), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn diff_datasets(
    State(s): State<HttpState>,
    Path((name, version)): Path<(String, String)>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let defaults = DetectorSettings::default();
    let settings = DetectorSettings {
        min_rows: q.min_rows.unwrap_or(defaults.min_rows),
        fdr: q.fdr.unwrap_or(defaults.fdr),
        min_psi: q.min_psi.unwrap_or(defaults.min_psi),
        ..defaults
    };
    if let Err((field, why)) = settings.validate() {
        return refuse(Refusal(StatusCode::BAD_REQUEST, format!("{}: {why}", field.trim_start_matches("drift."))));
    }
    if !(2..=1000).contains(&q.bins) {
        return refuse(Refusal(StatusCode::BAD_REQUEST, format!("bins must be between 2 and 1000, is {}", q.bins)));
    }
    reply(
        blocking(&s, move |store| {
            let a = store.resolve(&name, &version)?;
            let (b_name, b_version) = split_ref(&q.against);
            let b = store.resolve(b_name, b_version)?;
            let a_table = parse(&store.read_data(&a)?).map_err(DatasetError::from)?;
            let b_table = parse(&store.read_data(&b)?).map_err(DatasetError::from)?;
            Ok(diff(&a, &a_table, &b, &b_table, q.bins, &settings))
        })
        .await,
    )
}
