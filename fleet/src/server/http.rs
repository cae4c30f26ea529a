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
//!
//! The operator's name comes from the `x-edgefleet-actor` header (the CLI sends `$USER` or
//! `--as`). Errors are `{"error": "..."}` with a 4xx/5xx status.

use super::core::{ApiError, ApiRequest, ApiResult, Input, RolloutOp};
use super::models::{PushError, verify_and_store};
use super::rollouts::RolloutRequest;
use crate::transfer::ObjectStore;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot};

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
}

struct Answer(ApiResult);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(value) => axum::Json(value).into_response(),
            Err(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, axum::Json(serde_json::json!({"error": e.message}))).into_response()
            }
        }
    }
}

async fn ask(state: &HttpState, request: ApiRequest) -> Answer {
    let (reply, answer) = oneshot::channel();
    if state.inputs.send(Input::Api { request, reply }).await.is_err() {
        return Answer(Err(ApiError { status: 503, message: "the fleet manager is shutting down".into() }));
    }
    Answer(answer.await.unwrap_or_else(|_| {
        Err(ApiError { status: 500, message: "the fleet manager failed to store the change; see its log".into() })
    }))
}

fn actor(headers: &HeaderMap) -> String {
    headers
        .get("x-edgefleet-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.trim().is_empty())
        .map_or_else(|| "anonymous".to_string(), |s| s.trim().chars().take(64).collect())
}

/// The API router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/devices", get(list_devices))
        .route("/v1/devices/{id}", get(show_device))
        .route("/v1/devices/{id}/labels", post(label_device))
        .route("/v1/models", get(list_models).post(push_model))
        .route("/v1/models/{name}", get(show_model))
        .route("/v1/rollouts", get(list_rollouts).post(create_rollout))
        .route("/v1/rollouts/{id}", get(show_rollout))
        .route("/v1/rollouts/{id}/{op}", post(operate_rollout))
        .route("/v1/rollouts/{id}/scorecard", get(scorecard))
        .route("/v1/health", get(health))
        .route("/v1/drift", get(drift_report))
        .route("/v1/samples", get(samples))
        .route("/v1/sampling", post(set_sampling))
        .route("/v1/audit", get(audit))
        .route("/v1/audit/verify", get(audit_verify))
        .layer(DefaultBodyLimit::max(MAX_PACKAGE_BYTES))
        .with_state(state)
}

async fn status(State(s): State<HttpState>) -> Answer {
    ask(&s, ApiRequest::Status).await
}

#[derive(Deserialize)]
struct SelectQuery {
    #[serde(default)]
    select: String,
}

async fn list_devices(State(s): State<HttpState>, Query(q): Query<SelectQuery>) -> Answer {
    ask(&s, ApiRequest::ListDevices { selector: q.select }).await
}

async fn show_device(State(s): State<HttpState>, Path(id): Path<String>) -> Answer {
    ask(&s, ApiRequest::ShowDevice { id }).await
}

#[derive(Deserialize)]
struct LabelBody {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
}

async fn label_device(State(s): State<HttpState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Answer {
    let body: LabelBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return Answer(Err(ApiError::bad_request(format!("labels: {e}")))),
    };
    ask(&s, ApiRequest::Label { id, set: body.set, remove: body.remove, actor: actor(&headers) }).await
}

async fn push_model(State(s): State<HttpState>, headers: HeaderMap, body: Bytes) -> Answer {
    let who = actor(&headers);
    let (trust, dir, objects) = (s.trust_store.clone(), s.data_dir.clone(), s.objects.clone());
    let now = edgefleet_protocol::time::unix_now_ms();
    let stored = tokio::task::spawn_blocking(move || {
        let record = verify_and_store(&body, &trust, &dir, now, &who)?;
        // On disk and downloadable before any device can be told about it.
        if let Ok(mut store) = objects.write() {
            store.add_package(&body[..]).map_err(PushError::Invalid)?;
        }
        Ok::<_, PushError>(record)
    })
    .await;
    let record = match stored {
        Ok(Ok(record)) => record,
        Ok(Err(e @ PushError::Io(_))) => return Answer(Err(ApiError { status: 500, message: e.to_string() })),
        Ok(Err(e)) => return Answer(Err(ApiError::bad_request(e))),
        Err(e) => return Answer(Err(ApiError { status: 500, message: e.to_string() })),
    };
    ask(&s, ApiRequest::RegisterModel { record }).await
}

async fn list_models(State(s): State<HttpState>) -> Answer {
    ask(&s, ApiRequest::ListModels).await
}

async fn show_model(State(s): State<HttpState>, Path(name): Path<String>) -> Answer {
    ask(&s, ApiRequest::ShowModel { name }).await
}

#[derive(Deserialize)]
struct DryRunQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn create_rollout(
    State(s): State<HttpState>,
    Query(q): Query<DryRunQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let request: RolloutRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return Answer(Err(ApiError::bad_request(format!("rollout request: {e}")))),
    };
    ask(&s, ApiRequest::CreateRollout { request, dry_run: q.dry_run, actor: actor(&headers) }).await
}

async fn list_rollouts(State(s): State<HttpState>) -> Answer {
    ask(&s, ApiRequest::ListRollouts).await
}

fn rollout_id(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| ApiError::bad_request(format!("{text:?} is not a rollout id (a number)")))
}

async fn show_rollout(State(s): State<HttpState>, Path(id): Path<String>) -> Answer {
    match rollout_id(&id) {
        Ok(id) => ask(&s, ApiRequest::ShowRollout { id }).await,
        Err(e) => Answer(Err(e)),
    }
}

#[derive(Deserialize, Default)]
struct ReasonBody {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    track: Option<String>,
}

async fn operate_rollout(
    State(s): State<HttpState>,
    Path((id, op)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let id = match rollout_id(&id) {
        Ok(id) => id,
        Err(e) => return Answer(Err(e)),
    };
    let op = match op.as_str() {
        "pause" => RolloutOp::Pause,
        "resume" => RolloutOp::Resume,
        "abort" => RolloutOp::Abort,
        "rollback" => RolloutOp::Rollback,
        "promote" => RolloutOp::Promote,
        other => {
            return Answer(Err(ApiError::not_found(format!(
                "unknown rollout operation {other:?} (pause, resume, abort, rollback)"
            ))));
        }
    };
    let body: ReasonBody = if body.is_empty() {
        ReasonBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return Answer(Err(ApiError::bad_request(format!("body: {e}")))),
        }
    };
    let track = match body.track.as_deref().map(str::parse).transpose() {
        Ok(t) => t,
        Err(e) => return Answer(Err(ApiError::bad_request(e))),
    };
    ask(&s, ApiRequest::OperateRollout { id, op, actor: actor(&headers), reason: body.reason, track }).await
}

#[derive(Deserialize)]
struct HealthQuery {
    device: Option<String>,
    model: Option<String>,
}

async fn health(State(s): State<HttpState>, Query(q): Query<HealthQuery>) -> Answer {
    ask(&s, ApiRequest::Health { device: q.device, model: q.model }).await
}

#[derive(Deserialize)]
struct DriftQuery {
    model: String,
    device: Option<String>,
}

async fn drift_report(State(s): State<HttpState>, Query(q): Query<DriftQuery>) -> Answer {
    ask(&s, ApiRequest::DriftReport { model: q.model, device: q.device }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SamplingBody {
    #[serde(default)]
    select: String,
    #[serde(default)]
    model: Option<String>,
    sample_rate: f32,
    #[serde(default = "default_sample_bytes")]
    max_sample_bytes_per_hour: u64,
    #[serde(default = "default_drift_window_ms")]
    drift_window_ms: u64,
}

fn default_sample_bytes() -> u64 {
    1 << 20
}

fn default_drift_window_ms() -> u64 {
    60_000
}

async fn set_sampling(State(s): State<HttpState>, headers: HeaderMap, body: Bytes) -> Answer {
    let body: SamplingBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return Answer(Err(ApiError::bad_request(format!("sampling: {e}")))),
    };
    let model = match body.model.map(|m| edgefleet_protocol::ModelName::new(&m).map_err(|e| (m, e))).transpose() {
        Ok(m) => m,
        Err((m, e)) => return Answer(Err(ApiError::bad_request(format!("model {m:?}: {e:?}")))),
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

async fn samples(State(s): State<HttpState>, Query(q): Query<SamplesQuery>) -> Answer {
    ask(&s, ApiRequest::Samples { model: q.model, device: q.device, limit: q.limit }).await
}

async fn scorecard(State(s): State<HttpState>, Path(id): Path<String>) -> Answer {
    match rollout_id(&id) {
        Ok(id) => ask(&s, ApiRequest::Scorecard { id }).await,
        Err(e) => Answer(Err(e)),
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

async fn audit(State(s): State<HttpState>, Query(q): Query<AuditQuery>) -> Answer {
    ask(&s, ApiRequest::Audit { from: q.from, limit: q.limit }).await
}

async fn audit_verify(State(s): State<HttpState>) -> Answer {
    ask(&s, ApiRequest::AuditVerify).await
}
