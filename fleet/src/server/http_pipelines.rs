//! The pipeline routes of the operator API (`/v1/pipelines`, `/v1/runs`), answered by the
//! pipeline service ([`super::pipelines`]) off the core loop. Registered in [`super::http`]'s
//! route table and OpenAPI document like every other route.

use super::http::{HttpState, actor};
use super::pipelines::Pipelines;
use crate::api::errors::ErrorBody;
use crate::api::pipelines::{
    LogChunk, PipelineDetail, PipelineSummary, RegisterRequest, RegisterResponse, RunRecord, RunRequest,
};
use crate::pipeline::PipelineError;
use crate::pipeline::service::UploadedFile;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek};
use std::sync::Arc;

/// Largest log piece one request returns.
const MAX_LOG_CHUNK: u64 = 1 << 20;

/// An answer of a pipeline route.
pub struct PipelineAnswer(Result<serde_json::Value, (StatusCode, String)>);

impl IntoResponse for PipelineAnswer {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(value) => axum::Json(value).into_response(),
            Err((status, error)) => (status, axum::Json(ErrorBody { error })).into_response(),
        }
    }
}

fn status_of(e: &PipelineError) -> StatusCode {
    match e {
        PipelineError::Spec { .. } | PipelineError::Invalid(_) => StatusCode::BAD_REQUEST,
        PipelineError::UnknownPipeline { .. }
        | PipelineError::UnknownVersion { .. }
        | PipelineError::UnknownRun { .. } => StatusCode::NOT_FOUND,
        PipelineError::Ended { .. } => StatusCode::CONFLICT,
        PipelineError::Store(_) | PipelineError::Artifacts(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn answer<T: Serialize>(result: Result<T, PipelineError>) -> PipelineAnswer {
    PipelineAnswer(match result {
        Ok(v) => serde_json::to_value(v).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err((status_of(&e), e.to_string())),
    })
}

fn bad(message: String) -> PipelineAnswer {
    PipelineAnswer(Err((StatusCode::BAD_REQUEST, message)))
}

/// Runs `f` with the service on a blocking thread (records are files).
async fn with<T: Serialize + Send + 'static>(
    s: &HttpState,
    f: impl FnOnce(&Arc<Pipelines>) -> Result<T, PipelineError> + Send + 'static,
) -> PipelineAnswer {
    let Some(service) = s.pipelines.clone() else {
        return PipelineAnswer(Err((StatusCode::SERVICE_UNAVAILABLE, "this fleet manager runs no pipelines".into())));
    };
    // start_run spawns tasks: hand the blocking thread the runtime it was called from.
    let handle = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || {
        let _entered = handle.enter();
        f(&service)
    })
    .await
    {
        Ok(result) => answer(result),
        Err(e) => PipelineAnswer(Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))),
    }
}

#[utoipa::path(post, path = "/v1/pipelines", tag = "pipelines", request_body = RegisterRequest,
    responses((status = 200, body = RegisterResponse), (status = 400, body = ErrorBody)))]
pub(super) async fn register(State(s): State<HttpState>, headers: HeaderMap, bytes: Bytes) -> PipelineAnswer {
    let request: RegisterRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return bad(format!("pipeline registration: {e}")),
    };
    let mut files = Vec::with_capacity(request.files.len());
    for f in request.files {
        match hex::decode(&f.hex) {
            Ok(bytes) => files.push(UploadedFile { path: f.path, bytes, executable: f.executable }),
            Err(_) => return bad(format!("file {:?}: its content is not hex", f.path)),
        }
    }
    let who = actor(&headers);
    with(&s, move |p| {
        p.register(&request.spec_file, &request.spec, files, &who)
            .map(|(version, new)| RegisterResponse { version, new })
    })
    .await
}

#[utoipa::path(get, path = "/v1/pipelines", tag = "pipelines",
    responses((status = 200, body = [PipelineSummary])))]
pub(super) async fn list(State(s): State<HttpState>) -> PipelineAnswer {
    with(&s, |p| {
        let runs = p.runs(None)?;
        let mut out = Vec::new();
        for name in p.store().names()? {
            let Some(latest) = p.store().versions(&name)?.pop() else { continue };
            let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.pipeline == name).collect();
            out.push(PipelineSummary {
                name,
                latest: latest.version,
                spec_digest: latest.spec_digest.to_hex(),
                runs: mine.len(),
                last_run: mine.last().map(|r| r.id.clone()),
                last_status: mine.last().map(|r| r.status),
            });
        }
        Ok(out)
    })
    .await
}

#[utoipa::path(get, path = "/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = PipelineDetail), (status = 404, body = ErrorBody)))]
pub(super) async fn show(State(s): State<HttpState>, Path(name): Path<String>) -> PipelineAnswer {
    with(&s, move |p| {
        let versions = p.store().versions(&name)?;
        if versions.is_empty() {
            return Err(PipelineError::UnknownPipeline { name });
        }
        Ok(PipelineDetail { name, versions })
    })
    .await
}

#[utoipa::path(post, path = "/v1/pipelines/{name}/runs", tag = "pipelines", request_body = RunRequest,
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = RunRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn start_run(
    State(s): State<HttpState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> PipelineAnswer {
    let request: RunRequest = if bytes.is_empty() {
        RunRequest::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => return bad(format!("run request: {e}")),
        }
    };
    let who = actor(&headers);
    with(&s, move |p| p.start_run(&name, request.version, request.params, &who)).await
}

#[derive(Deserialize)]
pub(super) struct RunsQuery {
    #[serde(default)]
    pipeline: Option<String>,
}

#[utoipa::path(get, path = "/v1/runs", tag = "pipelines",
    params(("pipeline" = Option<String>, Query, description = "Only this pipeline's runs")),
    responses((status = 200, body = [RunRecord])))]
pub(super) async fn runs(State(s): State<HttpState>, Query(q): Query<RunsQuery>) -> PipelineAnswer {
    with(&s, move |p| p.runs(q.pipeline.as_deref())).await
}

#[utoipa::path(get, path = "/v1/runs/{id}", tag = "pipelines",
    params(("id" = String, Path, description = "Run id (NAME-NUMBER)")),
    responses((status = 200, body = RunRecord), (status = 404, body = ErrorBody)))]
pub(super) async fn show_run(State(s): State<HttpState>, Path(id): Path<String>) -> PipelineAnswer {
    with(&s, move |p| p.run(&id)).await
}

#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "pipelines",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RunRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn cancel_run(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> PipelineAnswer {
    let who = actor(&headers);
    with(&s, move |p| p.cancel(&id, &who)).await
}

#[derive(Deserialize)]
pub(super) struct LogQuery {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    stream: Option<String>,
}

#[utoipa::path(get, path = "/v1/runs/{id}/steps/{step}/logs", tag = "pipelines",
    params(("id" = String, Path, description = "Run id"), ("step" = String, Path, description = "Step name"),
        ("offset" = Option<u64>, Query, description = "Byte offset to read from"),
        ("stream" = Option<String>, Query, description = "stdout (default) or stderr")),
    responses((status = 200, body = LogChunk), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn step_logs(
    State(s): State<HttpState>,
    Path((id, step)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> PipelineAnswer {
    with(&s, move |p| {
        let stream = q.stream.unwrap_or_else(|| "stdout".into());
        let path = p.log_path(&id, &step, &stream)?;
        let complete = p.run(&id)?.steps.get(&step).is_some_and(|s| s.status.is_final());
        let mut text = Vec::new();
        if let Ok(mut file) = std::fs::File::open(&path) {
            file.seek(std::io::SeekFrom::Start(q.offset)).map_err(PipelineError::Artifacts)?;
            file.take(MAX_LOG_CHUNK).read_to_end(&mut text).map_err(PipelineError::Artifacts)?;
        }
        let next_offset = q.offset + text.len() as u64;
        let complete = complete && (text.len() as u64) < MAX_LOG_CHUNK;
        Ok(LogChunk { text: String::from_utf8_lossy(&text).into_owned(), next_offset, complete })
    })
    .await
}

#[utoipa::path(get, path = "/v1/lineage/models/{name}/{seq}", tag = "pipelines",
    params(("name" = String, Path, description = "Model name"), ("seq" = u64, Path, description = "Version sequence")),
    responses((status = 200, body = crate::api::lineage::ModelLineage), (status = 404, body = ErrorBody)))]
pub(super) async fn model_lineage(
    State(s): State<HttpState>,
    Path((name, seq)): Path<(String, u64)>,
) -> PipelineAnswer {
    use super::requests::{ApiRequest, ask_core};
    use crate::api::ApiResponse;
    let not_found = |m: String| PipelineAnswer(Err((StatusCode::NOT_FOUND, m)));
    let detail = match ask_core(&s.inputs, ApiRequest::ShowModel { name: name.clone() }).await {
        Ok(ApiResponse::Model(d)) => d,
        Ok(_) => return not_found(format!("unknown model {name:?}")),
        Err(e) => return PipelineAnswer(Err((super::http::status_of(&e), e.to_string()))),
    };
    let Some(version) = detail.versions.into_iter().find(|v| v.record.version_seq == seq) else {
        return not_found(format!("model {name} has no version {seq}; `edgefleet model show {name}` lists them"));
    };
    let rollouts = match ask_core(&s.inputs, ApiRequest::ListRollouts).await {
        Ok(ApiResponse::Rollouts(list)) => {
            list.into_iter().filter(|r| r.model == name && r.version_seq == seq).collect()
        }
        _ => Vec::new(),
    };
    let devices = version.devices.iter().map(|d| d.as_str().to_string()).collect();
    let (packages, trust) = (super::models::packages_dir(&s.data_dir), s.trust_store.clone());
    with(&s, move |p| {
        Ok(crate::pipeline::lineage::model_lineage(
            &version.record,
            &packages,
            &trust,
            p.store(),
            p.artifacts(),
            p.datasets(),
            rollouts,
            devices,
        ))
    })
    .await
}

#[utoipa::path(get, path = "/v1/lineage/datasets/{name}/{version}", tag = "pipelines",
    params(("name" = String, Path, description = "Dataset name"),
        ("version" = String, Path, description = "Version: a number, latest, or sha256:<hex>")),
    responses((status = 200, body = crate::api::lineage::DatasetLineage), (status = 404, body = ErrorBody)))]
pub(super) async fn dataset_lineage(
    State(s): State<HttpState>,
    Path((name, version)): Path<(String, String)>,
) -> PipelineAnswer {
    with(&s, move |p| {
        let (dataset, _) = p.datasets().resolve(&name, &version).map_err(PipelineError::Invalid)?;
        Ok(crate::pipeline::lineage::dataset_lineage(p.store(), &dataset.name, dataset.version, dataset.digest))
    })
    .await
}
