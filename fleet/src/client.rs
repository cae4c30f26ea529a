//! The operator CLI's client for the fleet manager's HTTP API (see [`crate::server::http`]):
//! answers come back as the typed structs of [`crate::api`].

use crate::api::audit::{AuditEntry, AuditVerify};
use crate::api::datasets::{
    CreateDatasetResponse, DatasetDetail, DatasetDiff, DatasetSummary, DatasetVersion, FromSamplesRequest,
};
use crate::api::devices::{
    DeviceDetail, DeviceSummary, LabelRequest, LabelResponse, SamplingRequest, SamplingResponse,
};
use crate::api::drift::{DriftReport, Scorecard};
use crate::api::errors::ErrorBody;
use crate::api::health::HealthView;
use crate::api::models::{ModelDetail, ModelSummary, PushResponse};
use crate::api::rollouts::{CreateRolloutResponse, OperateRequest, RolloutDetail, RolloutRequest, RolloutSummary};
use crate::api::samples::SampleRecord;
use crate::api::status::StatusResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// A request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error(
        "cannot reach the fleet manager at {server}: {detail} (is `edgefleet serve` running? set --server or EDGEFLEET_SERVER)"
    )]
    Unreachable {
        /// Base URL.
        server: String,
        /// Why.
        detail: String,
    },
    /// The server refused the request.
    #[error("{message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// The answer was not JSON, or not the JSON expected.
    #[error("unexpected answer from the fleet manager: {0}")]
    Protocol(String),
}

/// A client for one fleet manager, acting as one operator.
#[derive(Clone)]
pub struct Client {
    base: String,
    actor: String,
    agent: ureq::Agent,
}

impl Client {
    /// `server` like `http://127.0.0.1:8080`; `actor` is recorded in the audit log.
    pub fn new(server: &str, actor: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Client { base: server.trim_end_matches('/').to_string(), actor: actor.to_string(), agent }
    }

    fn finish<T: DeserializeOwned>(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut response =
            result.map_err(|e| ClientError::Unreachable { server: self.base.clone(), detail: e.to_string() })?;
        let status = response.status().as_u16();
        let value: Value = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_json()
            .map_err(|e| ClientError::Protocol(format!("HTTP {status}: {e}")))?;
        if status >= 400 {
            let message = serde_json::from_value::<ErrorBody>(value)
                .map_or_else(|_| "request refused".to_string(), |body| body.error);
            return Err(ClientError::Refused { status, message });
        }
        serde_json::from_value(value).map_err(|e| ClientError::Protocol(format!("HTTP {status}: {e}")))
    }

    /// GET `path` (with its query string), as `T` (a [`crate::api`] type, or a
    /// [`serde_json::Value`]).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        self.finish(self.agent.get(&url).header("x-edgefleet-actor", &self.actor).call())
    }

    /// POST `body` as JSON to `path`; the answer as `T`.
    pub fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let body = serde_json::to_value(body).map_err(|e| ClientError::Protocol(format!("request body: {e}")))?;
        self.finish(self.agent.post(&url).header("x-edgefleet-actor", &self.actor).send_json(&body))
    }

    /// GET `path`, the answer's raw bytes (a refusal is still read as `{"error": ...}`).
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .get(&url)
            .header("x-edgefleet-actor", &self.actor)
            .call()
            .map_err(|e| ClientError::Unreachable { server: self.base.clone(), detail: e.to_string() })?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .map_err(|e| ClientError::Protocol(format!("HTTP {status}: {e}")))?;
        if status >= 400 {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map_or_else(|_| "request refused".to_string(), |body| body.error);
            return Err(ClientError::Refused { status, message });
        }
        Ok(bytes)
    }

    /// POST raw bytes to `path`; the answer as `T`.
    pub fn post_bytes<T: DeserializeOwned>(&self, path: &str, bytes: &[u8]) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        self.finish(
            self.agent
                .post(&url)
                .header("x-edgefleet-actor", &self.actor)
                .header("content-type", "application/octet-stream")
                .send(bytes),
        )
    }
}

impl Client {
    /// `GET /v1/status`.
    pub fn status(&self) -> Result<StatusResponse, ClientError> {
        self.get("/v1/status")
    }

    /// `GET /v1/devices?select=`.
    pub fn devices(&self, select: &str) -> Result<Vec<DeviceSummary>, ClientError> {
        self.get(&format!("/v1/devices?select={}", query_escape(select)))
    }

    /// `GET /v1/devices/{id}`.
    pub fn device(&self, id: &str) -> Result<DeviceDetail, ClientError> {
        self.get(&format!("/v1/devices/{}", query_escape(id)))
    }

    /// `POST /v1/devices/{id}/labels`.
    pub fn label(&self, id: &str, request: &LabelRequest) -> Result<LabelResponse, ClientError> {
        self.post_json(&format!("/v1/devices/{}/labels", query_escape(id)), request)
    }

    /// `POST /v1/sampling`.
    pub fn set_sampling(&self, request: &SamplingRequest) -> Result<SamplingResponse, ClientError> {
        self.post_json("/v1/sampling", request)
    }

    /// `POST /v1/models` with a signed package.
    pub fn push_model(&self, package: &[u8]) -> Result<PushResponse, ClientError> {
        self.post_bytes("/v1/models", package)
    }

    /// `GET /v1/models`.
    pub fn models(&self) -> Result<Vec<ModelSummary>, ClientError> {
        self.get("/v1/models")
    }

    /// `GET /v1/models/{name}`.
    pub fn model(&self, name: &str) -> Result<ModelDetail, ClientError> {
        self.get(&format!("/v1/models/{}", query_escape(name)))
    }

    /// `POST /v1/rollouts[?dry_run=true]`.
    pub fn create_rollout(
        &self,
        request: &RolloutRequest,
        dry_run: bool,
    ) -> Result<CreateRolloutResponse, ClientError> {
        self.post_json(if dry_run { "/v1/rollouts?dry_run=true" } else { "/v1/rollouts" }, request)
    }

    /// `GET /v1/rollouts`.
    pub fn rollouts(&self) -> Result<Vec<RolloutSummary>, ClientError> {
        self.get("/v1/rollouts")
    }

    /// `GET /v1/rollouts/{id}`.
    pub fn rollout(&self, id: u32) -> Result<RolloutDetail, ClientError> {
        self.get(&format!("/v1/rollouts/{id}"))
    }

    /// `POST /v1/rollouts/{id}/{op}` (`pause`, `resume`, `abort`, `rollback`, `promote`).
    pub fn operate_rollout(&self, id: u32, op: &str, request: &OperateRequest) -> Result<RolloutDetail, ClientError> {
        self.post_json(&format!("/v1/rollouts/{id}/{}", query_escape(op)), request)
    }

    /// `GET /v1/rollouts/{id}/scorecard` (`id` as typed by the operator).
    pub fn scorecard(&self, id: &str) -> Result<Scorecard, ClientError> {
        self.get(&format!("/v1/rollouts/{}/scorecard", query_escape(id)))
    }

    /// `GET /v1/health?device=&model=`.
    pub fn health(&self, device: Option<&str>, model: Option<&str>) -> Result<Vec<HealthView>, ClientError> {
        let mut query = Vec::new();
        if let Some(d) = device {
            query.push(format!("device={}", query_escape(d)));
        }
        if let Some(m) = model {
            query.push(format!("model={}", query_escape(m)));
        }
        self.get(&format!("/v1/health?{}", query.join("&")))
    }

    /// `GET /v1/drift?model=&device=`.
    pub fn drift(&self, model: &str, device: Option<&str>) -> Result<DriftReport, ClientError> {
        let mut path = format!("/v1/drift?model={}", query_escape(model));
        if let Some(d) = device {
            path.push_str(&format!("&device={}", query_escape(d)));
        }
        self.get(&path)
    }

    /// `GET /v1/samples?model=&limit=&device=`.
    pub fn samples(&self, model: &str, device: Option<&str>, limit: usize) -> Result<Vec<SampleRecord>, ClientError> {
        let mut path = format!("/v1/samples?model={}&limit={limit}", query_escape(model));
        if let Some(d) = device {
            path.push_str(&format!("&device={}", query_escape(d)));
        }
        self.get(&path)
    }

    /// `GET /v1/audit?from=&limit=`.
    pub fn audit(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, ClientError> {
        self.get(&format!("/v1/audit?from={from}&limit={limit}"))
    }

    /// `GET /v1/audit/verify`.
    pub fn verify_audit(&self) -> Result<AuditVerify, ClientError> {
        self.get("/v1/audit/verify")
    }

    /// `POST /v1/datasets/{name}?file=` with CSV bytes.
    pub fn create_dataset(&self, name: &str, file: &str, csv: &[u8]) -> Result<CreateDatasetResponse, ClientError> {
        self.post_bytes(&format!("/v1/datasets/{}?file={}", query_escape(name), query_escape(file)), csv)
    }

    /// `POST /v1/datasets/{name}/from-samples`.
    pub fn create_dataset_from_samples(
        &self,
        name: &str,
        request: &FromSamplesRequest,
    ) -> Result<CreateDatasetResponse, ClientError> {
        self.post_json(&format!("/v1/datasets/{}/from-samples", query_escape(name)), request)
    }

    /// `GET /v1/datasets`.
    pub fn datasets(&self) -> Result<Vec<DatasetSummary>, ClientError> {
        self.get("/v1/datasets")
    }

    /// `GET /v1/datasets/{name}`.
    pub fn dataset(&self, name: &str) -> Result<DatasetDetail, ClientError> {
        self.get(&format!("/v1/datasets/{}", query_escape(name)))
    }

    /// `GET /v1/datasets/{name}/{version}` (`latest`, `3`, `sha256:<hex>`).
    pub fn dataset_version(&self, name: &str, version: &str) -> Result<DatasetVersion, ClientError> {
        self.get(&format!("/v1/datasets/{}/{}", query_escape(name), query_escape(version)))
    }

    /// `GET /v1/datasets/{name}/{version}/data`: the CSV bytes.
    pub fn dataset_data(&self, name: &str, version: &str) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&format!("/v1/datasets/{}/{}/data", query_escape(name), query_escape(version)))
    }

    /// `GET /v1/datasets/{name}/{version}/diff?against=&...`; `query` holds extra
    /// `key=value` pairs (`bins`, `min_rows`, `fdr`, `min_psi`).
    pub fn diff_datasets(
        &self,
        name: &str,
        version: &str,
        against: &str,
        query: &[(&str, String)],
    ) -> Result<DatasetDiff, ClientError> {
        let mut path = format!(
            "/v1/datasets/{}/{}/diff?against={}",
            query_escape(name),
            query_escape(version),
            query_escape(against)
        );
        for (key, value) in query {
            path.push_str(&format!("&{key}={}", query_escape(value)));
        }
        self.get(&path)
    }
}

/// Percent-encodes a query value.
pub fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
