//! The operator HTTP API (JSON over plain HTTP on loopback; the CLI is its client).
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/v1/status` | server summary and counters |
//! | GET | `/v1/devices?select=` | devices matching a selector |
//! | GET | `/v1/devices/{id}` | one device in full |
//! | POST | `/v1/devices/{id}/labels` | `{"set": {..}, "remove": [..]}` |
//! | POST | `/v1/models` | body: an `.efpkg`; verified, stored, registered |
//! | GET | `/v1/models`, `/v1/models/{name}` | versions and who runs them |
//! | POST | `/v1/rollouts?dry_run=true` | body: a rollout request (JSON) |
//! | GET | `/v1/rollouts`, `/v1/rollouts/{id}` | status, counts, gate evidence |
//! | POST | `/v1/rollouts/{id}/{pause,resume,abort,rollback,promote}` | `{"reason": "..", "track": "gpu"}` |
//! | GET | `/v1/rollouts/{id}/scorecard` | A/B scorecard: new version vs control, per track |
//! | GET | `/v1/health?device=&model=` | health state with reasons (drift included) |
//! | GET | `/v1/drift?model=&device=` | drift per device and per cohort, with statistics |
//! | GET | `/v1/samples?model=&device=&limit=` | sampled raw (input, output) records, for retraining |
//! | POST | `/v1/sampling` | `{"select", "model", "sample_rate", "max_sample_bytes_per_hour", "drift_window_ms"}`: SetSamplingPolicy to the selected devices |
//! | GET | `/v1/audit?from=&limit=`, `/v1/audit/verify` | the hash-chained audit log |
//! | GET, POST | `/v1/datasets/...` | versioned datasets ([`super::http_datasets`]) |
//! | GET | `/v1/openapi.json` | this API as an OpenAPI 3 document ([`ApiDoc`]) |
//!
//! The operator's name comes from the `x-edgefleet-actor` header (the CLI sends `$USER` or
//! `--as`). Errors are `{"error": "..."}` with a 4xx/5xx status ([`status_of`]). Request and
//! answer bodies are the types of [`crate::api`]; [`ROUTES`] lists every route once, for the
//! router and for the test that holds the OpenAPI document to it.

use super::clock::Clock;
use super::core::Input;
use super::http_datasets::{
    create_dataset, create_from_samples, dataset_data, diff_datasets, list_datasets, show_dataset, show_dataset_version,
};
use super::reads;
use super::requests::{ApiError, ApiRequest, ApiResult, RolloutOp};
use super::rollouts::RolloutRequest;
use super::store::FleetStore;
use crate::api::errors::ErrorBody;
use crate::api::{audit, datasets, devices, drift, health, models, pipelines, rollouts, samples, status};
use crate::transfer::ObjectStore;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use edgefleet_protocol::package::TrustStore;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;
use utoipa::OpenApi;

/// Largest package accepted by `POST /v1/models`.
pub const MAX_PACKAGE_BYTES: usize = 1 << 30;

/// What handlers need.
#[derive(Clone)]
pub struct HttpState {
    /// The core's input.
    pub inputs: mpsc::Sender<Input>,
    /// Trusted keys for pushes.
    pub trust_store: PathBuf,
    /// Where packages are stored.
    pub data_dir: PathBuf,
    /// What devices can download.
    pub objects: Arc<RwLock<ObjectStore>>,
    /// The fleet's storage, for the large reads that run off the core loop ([`super::reads`]).
    pub store: Arc<dyn FleetStore>,
    /// The fleet's clock.
    pub clock: Arc<dyn Clock>,
    /// Training pipelines (None: this process runs none; their routes answer 503).
    pub pipelines: Option<Arc<super::pipelines::Pipelines>>,
}

/// The HTTP status of each refusal: the one place where errors meet status codes.
pub fn status_of(error: &ApiError) -> StatusCode {
    match error {
        ApiError::UnknownDevice { .. }
        | ApiError::UnknownModel { .. }
        | ApiError::UnknownRollout { .. }
        | ApiError::UnknownOperation { .. } => StatusCode::NOT_FOUND,
        ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
        ApiError::VersionExists { .. }
        | ApiError::RolloutActive { .. }
        | ApiError::CannotOperate { .. }
        | ApiError::KeyRevoked { .. }
        | ApiError::NothingHeld { .. } => StatusCode::CONFLICT,
        ApiError::Storage { .. } | ApiError::NotStored => StatusCode::INTERNAL_SERVER_ERROR,
        ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    }
}

struct Answer(ApiResult);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self.0 {
            // Through a JSON value, as the answers were built before they had types: the same
            // bytes (keys sorted, f32 figures widened to f64) for every existing client.
            Ok(answer) => match serde_json::to_value(&answer) {
                Ok(value) => axum::Json(value).into_response(),
                Err(e) => {
                    let error = ErrorBody { error: format!("cannot encode the answer: {e}") };
                    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(error)).into_response()
                }
            },
            Err(e) => (status_of(&e), axum::Json(ErrorBody { error: e.to_string() })).into_response(),
        }
    }
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Answer(Err(e))
    }
}

async fn ask(state: &HttpState, request: ApiRequest) -> Answer {
    Answer(super::requests::ask_core(&state.inputs, request).await)
}

/// Runs a large read on a blocking thread against the store (never through the core).
async fn read(state: &HttpState, read: impl FnOnce(&dyn FleetStore) -> ApiResult + Send + 'static) -> Answer {
    let store = state.store.clone();
    Answer(tokio::task::spawn_blocking(move || read(&*store)).await.unwrap_or(Err(ApiError::NotStored)))
}

/// Parses a JSON body; `what` names it in the error.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("{what}: {e}")))
}

pub(super) fn actor(headers: &HeaderMap) -> String {
    headers
        .get("x-edgefleet-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.trim().is_empty())
        .map_or_else(|| "anonymous".to_string(), |s| s.trim().chars().take(64).collect())
}

/// Declares every route once: [`ROUTES`] (method, path) and the router's table are both made
/// from this list, so the OpenAPI test compares the document with what the router serves.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:ident,)*) => {
        /// Every route the API serves, as (method, path), in the router's order.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn routes() -> Router<HttpState> {
            Router::new()$(.route($path, $method($handler)))*
        }
    };
}

routes! {
    get "/v1/status" => status,
    get "/v1/devices" => list_devices,
    get "/v1/devices/{id}" => show_device,
    post "/v1/devices/{id}/labels" => label_device,
    get "/v1/models" => list_models,
    post "/v1/models" => push_model,
    get "/v1/models/{name}" => show_model,
    get "/v1/rollouts" => list_rollouts,
    post "/v1/rollouts" => create_rollout,
    get "/v1/rollouts/{id}" => show_rollout,
    post "/v1/rollouts/{id}/{op}" => operate_rollout,
    get "/v1/rollouts/{id}/scorecard" => scorecard,
    get "/v1/health" => health,
    get "/v1/drift" => drift_report,
    get "/v1/samples" => samples,
    post "/v1/sampling" => set_sampling,
    get "/v1/audit" => audit,
    get "/v1/audit/verify" => audit_verify,
    post "/v1/pipelines" => pipeline_register,
    get "/v1/pipelines" => pipeline_list,
    get "/v1/pipelines/{name}" => pipeline_show,
    post "/v1/pipelines/{name}/runs" => pipeline_run,
    get "/v1/runs" => pipeline_runs,
    get "/v1/runs/{id}" => pipeline_show_run,
    post "/v1/runs/{id}/cancel" => pipeline_cancel_run,
    get "/v1/runs/{id}/steps/{step}/logs" => pipeline_step_logs,
    get "/v1/lineage/models/{name}/{seq}" => lineage_model,
    get "/v1/lineage/datasets/{name}/{version}" => lineage_dataset,
    get "/v1/datasets" => list_datasets,
    post "/v1/datasets/{name}" => create_dataset,
    get "/v1/datasets/{name}" => show_dataset,
    post "/v1/datasets/{name}/from-samples" => create_from_samples,
    get "/v1/datasets/{name}/{version}" => show_dataset_version,
    get "/v1/datasets/{name}/{version}/data" => dataset_data,
    get "/v1/datasets/{name}/{version}/diff" => diff_datasets,
    get "/v1/openapi.json" => openapi,
}

use super::http_pipelines as hp;
use hp::{
    cancel_run as pipeline_cancel_run, list as pipeline_list, register as pipeline_register, runs as pipeline_runs,
    show as pipeline_show, show_run as pipeline_show_run, start_run as pipeline_run, step_logs as pipeline_step_logs,
};
use hp::{dataset_lineage as lineage_dataset, model_lineage as lineage_model};

/// The API router.
pub fn router(state: HttpState) -> Router {
    routes().layer(DefaultBodyLimit::max(MAX_PACKAGE_BYTES)).with_state(state)
}

/// The OpenAPI 3 document of this API, generated from the handlers and the [`crate::api`] types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Edgefleet fleet manager API", description = "The operator API of `edgefleet serve`."),
    paths(
        status,
        list_devices,
        show_device,
        label_device,
        list_models,
        push_model,
        show_model,
        list_rollouts,
        create_rollout,
        show_rollout,
        operate_rollout,
        scorecard,
        health,
        drift_report,
        samples,
        set_sampling,
        audit,
        audit_verify,
        hp::register,
        hp::list,
        hp::show,
        hp::start_run,
        hp::runs,
        hp::show_run,
        hp::cancel_run,
        hp::step_logs,
        hp::model_lineage,
        hp::dataset_lineage,
        super::http_datasets::list_datasets,
        super::http_datasets::create_dataset,
        super::http_datasets::show_dataset,
        super::http_datasets::create_from_samples,
        super::http_datasets::show_dataset_version,
        super::http_datasets::dataset_data,
        super::http_datasets::diff_datasets,
        openapi
    ),
    components(schemas(
        ErrorBody,
        status::StatusResponse,
        status::ServerInfo,
        devices::DeviceSummary,
        devices::DeviceDetail,
        devices::LabelRequest,
        devices::LabelResponse,
        devices::SamplingRequest,
        devices::SamplingResponse,
        models::ModelSummary,
        models::ModelVersion,
        models::ModelDetail,
        models::PushResponse,
        rollouts::RolloutSummary,
        rollouts::PlanView,
        rollouts::TrackView,
        rollouts::RolloutDetail,
        rollouts::DryRunStage,
        rollouts::DryRunTrack,
        rollouts::DryRunPlan,
        rollouts::CreateRolloutResponse,
        rollouts::OperateRequest,
        health::HealthState,
        health::ModelFigures,
        health::ModelDriftState,
        health::SensorLink,
        health::HealthView,
        drift::DriftState,
        drift::DriftingFeature,
        drift::FeatureView,
        drift::AssessmentView,
        drift::DeviceDriftView,
        drift::CohortView,
        drift::DriftReport,
        drift::AccuracyView,
        drift::ErrorView,
        drift::CohortCard,
        drift::PredictionShift,
        drift::Difference,
        drift::GateView,
        drift::ScorecardTrack,
        drift::Scorecard,
        samples::SampleRecord,
        audit::AuditVerify,
        pipelines::UploadFile,
        pipelines::RegisterRequest,
        pipelines::RegisterResponse,
        pipelines::PipelineSummary,
        pipelines::PipelineDetail,
        pipelines::RunRequest,
        pipelines::LogChunk,
        pipelines::CodeFile,
        pipelines::PipelineVersion,
        pipelines::RunStatus,
        pipelines::StepStatus,
        pipelines::RunInput,
        pipelines::DatasetRef,
        pipelines::StepRun,
        pipelines::RunRecord,
        crate::api::lineage::Check,
        crate::api::lineage::ModelLineage,
        crate::api::lineage::DatasetUse,
        crate::api::lineage::DatasetLineage,
        datasets::CreateDatasetResponse,
        datasets::FromSamplesRequest,
        datasets::DatasetSummary,
        datasets::DatasetDetail,
        datasets::DatasetVersion,
        datasets::Provenance,
        datasets::TimeRange,
        datasets::ModelVersionRef,
        datasets::Column,
        datasets::ColumnKind,
        datasets::DatasetDiff,
        datasets::ColumnDiff,
        datasets::KindChange
    ))
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json")))]
async fn openapi() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}

#[utoipa::path(get, path = "/v1/status", tag = "status",
    responses((status = 200, body = status::StatusResponse)))]
async fn status(State(s): State<HttpState>) -> Answer {
    ask(&s, ApiRequest::Status).await
}

#[derive(Deserialize)]
struct SelectQuery {
    #[serde(default)]
    select: String,
}

#[utoipa::path(get, path = "/v1/devices", tag = "devices",
    params(("select" = Option<String>, Query, description = "Selector, e.g. hw=gpu,site=plant-3")),
    responses((status = 200, body = [devices::DeviceSummary]), (status = 400, body = ErrorBody)))]
async fn list_devices(State(s): State<HttpState>, Query(q): Query<SelectQuery>) -> Answer {
    ask(&s, ApiRequest::ListDevices { selector: q.select }).await
}

#[utoipa::path(get, path = "/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    responses((status = 200, body = devices::DeviceDetail), (status = 404, body = ErrorBody)))]
async fn show_device(State(s): State<HttpState>, Path(id): Path<String>) -> Answer {
    ask(&s, ApiRequest::ShowDevice { id }).await
}

#[utoipa::path(post, path = "/v1/devices/{id}/labels", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body = devices::LabelRequest,
    responses((status = 200, body = devices::LabelResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn label_device(State(s): State<HttpState>, Path(id): Path<String>, headers: HeaderMap, bytes: Bytes) -> Answer {
    let body: devices::LabelRequest = match body(&bytes, "labels") {
        Ok(b) => b,
        Err(e) => return e.into(),
    };
    ask(&s, ApiRequest::Label { id, set: body.set, remove: body.remove, actor: actor(&headers) }).await
}

#[utoipa::path(post, path = "/v1/models", tag = "models",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A signed .efpkg"),
    responses((status = 200, body = models::PushResponse), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn push_model(State(s): State<HttpState>, headers: HeaderMap, body: Bytes) -> Answer {
    let push = super::models::Push {
        trust_store: s.trust_store.clone(),
        data_dir: s.data_dir.clone(),
        objects: s.objects.clone(),
        inputs: s.inputs.clone(),
    };
    Answer(push.push(body.to_vec(), s.clock.now_ms(), &actor(&headers)).await)
}

#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = [models::ModelSummary])))]
async fn list_models(State(s): State<HttpState>) -> Answer {
    ask(&s, ApiRequest::ListModels).await
}

#[utoipa::path(get, path = "/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 200, body = models::ModelDetail), (status = 404, body = ErrorBody)))]
async fn show_model(State(s): State<HttpState>, Path(name): Path<String>) -> Answer {
    ask(&s, ApiRequest::ShowModel { name }).await
}

#[derive(Deserialize)]
struct DryRunQuery {
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(post, path = "/v1/rollouts", tag = "rollouts",
    params(("dry_run" = Option<bool>, Query, description = "Resolve and estimate only; send nothing")),
    request_body(content = Object, description = "A rollout request (the keys of `edgefleet rollout create`)"),
    responses((status = 200, body = rollouts::CreateRolloutResponse), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_rollout(
    State(s): State<HttpState>,
    Query(q): Query<DryRunQuery>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let request: RolloutRequest = match body(&bytes, "rollout request") {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let revoked = revoked_keys(&s).await;
    ask(&s, ApiRequest::CreateRollout { request, dry_run: q.dry_run, actor: actor(&headers), revoked }).await
}

/// The trust store's revoked key ids (hex), read now, not at start: an operator revokes a key
/// by editing the trust store. No readable trust store: nothing was pushed through it either.
async fn revoked_keys(s: &HttpState) -> Vec<String> {
    let path = s.trust_store.clone();
    tokio::task::spawn_blocking(move || TrustStore::load(&path).map(|t| t.revoked).unwrap_or_default())
        .await
        .unwrap_or_default()
        .iter()
        .map(|k| hex::encode(k.0))
        .collect()
}

#[utoipa::path(get, path = "/v1/rollouts", tag = "rollouts",
    responses((status = 200, body = [rollouts::RolloutSummary])))]
async fn list_rollouts(State(s): State<HttpState>) -> Answer {
    ask(&s, ApiRequest::ListRollouts).await
}

fn rollout_id(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| ApiError::invalid(format!("{text:?} is not a rollout id (a number)")))
}

#[utoipa::path(get, path = "/v1/rollouts/{id}", tag = "rollouts",
    params(("id" = u32, Path, description = "Rollout id")),
    responses((status = 200, body = rollouts::RolloutDetail), (status = 404, body = ErrorBody)))]
async fn show_rollout(State(s): State<HttpState>, Path(id): Path<String>) -> Answer {
    match rollout_id(&id) {
        Ok(id) => ask(&s, ApiRequest::ShowRollout { id }).await,
        Err(e) => e.into(),
    }
}

#[utoipa::path(post, path = "/v1/rollouts/{id}/{op}", tag = "rollouts",
    params(("id" = u32, Path, description = "Rollout id"),
        ("op" = String, Path, description = "pause, resume, abort, rollback or promote")),
    request_body(content = Option<rollouts::OperateRequest>, description = "Optional: the reason, and for promote the track"),
    responses((status = 200, body = rollouts::RolloutDetail), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn operate_rollout(
    State(s): State<HttpState>,
    Path((id, op)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let id = match rollout_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into(),
    };
    let op = match op.as_str() {
        "pause" => RolloutOp::Pause,
        "resume" => RolloutOp::Resume,
        "abort" => RolloutOp::Abort,
        "rollback" => RolloutOp::Rollback,
        "promote" => RolloutOp::Promote,
        other => return ApiError::UnknownOperation { op: other.to_string() }.into(),
    };
    let body: rollouts::OperateRequest = if bytes.is_empty() {
        rollouts::OperateRequest::default()
    } else {
        match body(&bytes, "body") {
            Ok(b) => b,
            Err(e) => return e.into(),
        }
    };
    let track = match body.track.as_deref().map(str::parse).transpose() {
        Ok(t) => t,
        Err(e) => return ApiError::invalid(e).into(),
    };
    ask(&s, ApiRequest::OperateRollout { id, op, actor: actor(&headers), reason: body.reason, track }).await
}

#[derive(Deserialize)]
struct HealthQuery {
    device: Option<String>,
    model: Option<String>,
}

#[utoipa::path(get, path = "/v1/health", tag = "health",
    params(("device" = Option<String>, Query, description = "Only this device"),
        ("model" = Option<String>, Query, description = "Only devices serving this model")),
    responses((status = 200, body = [health::HealthView]), (status = 404, body = ErrorBody)))]
async fn health(State(s): State<HttpState>, Query(q): Query<HealthQuery>) -> Answer {
    let revoked = revoked_keys(&s).await;
    ask(&s, ApiRequest::Health { device: q.device, model: q.model, revoked }).await
}

#[derive(Deserialize)]
struct DriftQuery {
    model: String,
    device: Option<String>,
}

#[utoipa::path(get, path = "/v1/drift", tag = "drift",
    params(("model" = String, Query, description = "Model name"),
        ("device" = Option<String>, Query, description = "Only this device")),
    responses((status = 200, body = drift::DriftReport), (status = 404, body = ErrorBody)))]
async fn drift_report(State(s): State<HttpState>, Query(q): Query<DriftQuery>) -> Answer {
    ask(&s, ApiRequest::DriftReport { model: q.model, device: q.device }).await
}

#[utoipa::path(post, path = "/v1/sampling", tag = "devices",
    request_body = devices::SamplingRequest,
    responses((status = 200, body = devices::SamplingResponse), (status = 400, body = ErrorBody)))]
async fn set_sampling(State(s): State<HttpState>, headers: HeaderMap, bytes: Bytes) -> Answer {
    let body: devices::SamplingRequest = match body(&bytes, "sampling") {
        Ok(b) => b,
        Err(e) => return e.into(),
    };
    let model = match body.model.map(|m| edgefleet_protocol::ModelName::new(&m).map_err(|e| (m, e))).transpose() {
        Ok(m) => m,
        Err((m, e)) => return ApiError::invalid(format!("model {m:?}: {e:?}")).into(),
    };
    let policy = edgefleet_protocol::command::SamplingPolicy {
        model,
        sample_rate: body.sample_rate,
        max_sample_bytes_per_hour: body.max_sample_bytes_per_hour,
        drift_window_ms: body.drift_window_ms,
    };
    ask(&s, ApiRequest::SetSampling { selector: body.select, policy, actor: actor(&headers) }).await
}

#[derive(Deserialize)]
struct SamplesQuery {
    model: String,
    device: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
}

#[utoipa::path(get, path = "/v1/samples", tag = "samples",
    params(("model" = String, Query, description = "Model name"),
        ("device" = Option<String>, Query, description = "Only this device"),
        ("limit" = Option<usize>, Query, description = "At most this many batches (default 1000)")),
    responses((status = 200, body = [samples::SampleRecord])))]
async fn samples(State(s): State<HttpState>, Query(q): Query<SamplesQuery>) -> Answer {
    read(&s, move |store| reads::samples(store, &q.model, q.device.as_deref(), q.limit)).await
}

#[utoipa::path(get, path = "/v1/rollouts/{id}/scorecard", tag = "rollouts",
    params(("id" = u32, Path, description = "Rollout id")),
    responses((status = 200, body = drift::Scorecard), (status = 404, body = ErrorBody)))]
async fn scorecard(State(s): State<HttpState>, Path(id): Path<String>) -> Answer {
    match rollout_id(&id) {
        Ok(id) => ask(&s, ApiRequest::Scorecard { id }).await,
        Err(e) => e.into(),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    1000
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(("from" = Option<u64>, Query, description = "From this entry"),
        ("limit" = Option<usize>, Query, description = "At most this many (default 1000)")),
    responses((status = 200, description = "Audit entries, oldest first", body = [Object])))]
async fn audit(State(s): State<HttpState>, Query(q): Query<AuditQuery>) -> Answer {
    read(&s, move |store| reads::audit_page(store, q.from, q.limit)).await
}

#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, body = audit::AuditVerify)))]
async fn audit_verify(State(s): State<HttpState>) -> Answer {
    read(&s, reads::verify_audit).await
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
