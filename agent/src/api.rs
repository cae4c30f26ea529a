//! The agent's local HTTP API, as a function: [`router`] builds an `axum::Router` from an
//! [`ApiState`]; the daemon serves it, tests call it with `tower::ServiceExt::oneshot`.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/infer` | body and response in the [`crate::inference::json`] format (with the `inference_id`) |
//! | `POST /v1/feedback` | `{"inference_id": u64, "label": i64}` → `{"inference_id", "correct", "predicted", "model": {…}, "counted"}` |
//! | `GET /v1/status` | `{"agent": …, "active_model": {…} \| null, "models": [counters, p50/p99 µs, throughput]}` |
//!
//! Feedback is ground truth for one of the latest 4096 inferences: `correct` when `label`
//! equals the predicted class (argmax of the first output's first row). It is counted in the
//! drift window of the version that served the inference while that version is still active
//! (once per inference), and dropped otherwise ([`crate::drift::FeedbackAnswer::counted`]).
//!
//! Every error is `{"error": KIND, "message": TEXT}` with one status code per kind, decided in
//! one place ([`ApiError::status`]): 400 `bad_request` (malformed JSON, wrong names, shapes or
//! types), 404 `unknown_inference` (feedback for an id not remembered), 503 `no_model`
//! (nothing active yet), 500 `internal` (the model or worker failed).

use crate::drift::{Drift, FeedbackAnswer, UnknownInference};
use crate::inference::json::{InferRequest, InferResponse};
use crate::inference::{InferenceError, InferenceHandle, InferenceStats, ModelInfo, VersionSnapshot};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// Produces the agent-level part of `/v1/status` (device id, connection, outbox…), supplied
/// by whoever owns that state.
pub type AgentStatusFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    inference: InferenceHandle,
    stats: Arc<InferenceStats>,
    agent_status: Option<AgentStatusFn>,
    drift: Option<Drift>,
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState").field("inference", &self.inference).finish_non_exhaustive()
    }
}

impl ApiState {
    /// State over a running inference worker and the statistics it writes.
    pub fn new(inference: InferenceHandle, stats: Arc<InferenceStats>) -> Self {
        Self { inference, stats, agent_status: None, drift: None }
    }

    /// Adds the drift state that `POST /v1/feedback` labels (without it every id is unknown).
    pub fn with_drift(mut self, drift: Drift) -> Self {
        self.drift = Some(drift);
        self
    }

    /// Adds the agent-level status snapshot provider.
    pub fn with_agent_status(mut self, provider: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        self.agent_status = Some(Arc::new(provider));
        self
    }
}

/// The API's routes over `state`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/infer", post(infer))
        .route("/v1/feedback", post(feedback))
        .route("/v1/status", get(status))
        .fallback(not_found)
        .with_state(state)
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request body is not a valid request.
    #[error("{0}")]
    BadRequest(String),
    /// The route does not exist.
    #[error("no such route: {0}")]
    NotFound(String),
    /// Feedback for an inference the agent does not remember.
    #[error(transparent)]
    UnknownInference(#[from] UnknownInference),
    /// Inference failed.
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

impl ApiError {
    /// The one mapping from errors to HTTP status codes.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::UnknownInference(_) => StatusCode::NOT_FOUND,
            ApiError::Inference(e) if e.is_bad_input() => StatusCode::BAD_REQUEST,
            ApiError::Inference(InferenceError::NoModel) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Inference(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        if let ApiError::UnknownInference(_) = self {
            return "unknown_inference";
        }
        match self.status() {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::SERVICE_UNAVAILABLE => "no_model",
            _ => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.kind(), "message": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

async fn infer(State(state): State<ApiState>, body: Bytes) -> Result<Json<InferResponse>, ApiError> {
    let request: InferRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
    let inputs = request.into_named().map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let outcome = state.inference.infer_named(inputs).await?;
    Ok(Json(outcome.into()))
}

/// `POST /v1/feedback` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    inference_id: u64,
    label: i64,
}

async fn feedback(State(state): State<ApiState>, body: Bytes) -> Result<Json<FeedbackAnswer>, ApiError> {
    let request: FeedbackRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid feedback body: {e}")))?;
    let drift = state.drift.as_ref().ok_or(UnknownInference(request.inference_id))?;
    Ok(Json(drift.feedback(request.inference_id, request.label)?))
}

/// `GET /v1/status`.
#[derive(Debug, Serialize)]
struct StatusResponse {
    agent: Value,
    active_model: Option<ModelInfo>,
    models: Vec<VersionSnapshot>,
}

async fn status(State(state): State<ApiState>) -> Json<StatusResponse> {
    let snapshot = state.stats.snapshot();
    let agent = state.agent_status.as_ref().map_or(Value::Null, |provider| provider());
    Json(StatusResponse { agent, active_model: snapshot.active, models: snapshot.models })
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}
