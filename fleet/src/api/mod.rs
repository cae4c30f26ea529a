//! The operator HTTP API's contract: every request body and every answer of
//! [`crate::server::http`], as serde types shared by the server's views, the CLI's
//! [`crate::client::Client`], the simulators' demo and any other client (a web console).
//!
//! The JSON of each answer is the serialized form of one of these structs; nothing reads an
//! answer by string index. `GET /v1/openapi.json` publishes an OpenAPI 3 document generated
//! from them ([`crate::server::http::ApiDoc`]).
//!
//! One file per resource: [`status`], [`devices`], [`models`], [`rollouts`], [`health`],
//! [`drift`], [`samples`], [`audit`], [`datasets`], [`errors`].

pub mod audit;
pub mod datasets;
pub mod devices;
pub mod drift;
pub mod errors;
pub mod health;
pub mod lineage;
pub mod models;
pub mod pipelines;
pub mod rollouts;
pub mod samples;
pub mod status;

use serde::Serialize;

/// Any answer of the API, as the server hands it to the HTTP layer. Serializes as the inner
/// answer (no tag): the JSON body is that answer's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ApiResponse {
    /// `GET /v1/status`.
    Status(Box<status::StatusResponse>),
    /// `GET /v1/devices`.
    Devices(Vec<devices::DeviceSummary>),
    /// `GET /v1/devices/{id}`.
    Device(Box<devices::DeviceDetail>),
    /// `POST /v1/devices/{id}/labels`.
    Labels(devices::LabelResponse),
    /// `POST /v1/sampling`.
    Sampling(devices::SamplingResponse),
    /// `POST /v1/models`.
    ModelPushed(Box<models::PushResponse>),
    /// `GET /v1/models`.
    Models(Vec<models::ModelSummary>),
    /// `GET /v1/models/{name}`.
    Model(models::ModelDetail),
    /// `POST /v1/rollouts`.
    RolloutCreated(Box<rollouts::CreateRolloutResponse>),
    /// `GET /v1/rollouts`.
    Rollouts(Vec<rollouts::RolloutSummary>),
    /// `GET /v1/rollouts/{id}` and the operations on it.
    Rollout(Box<rollouts::RolloutDetail>),
    /// `GET /v1/rollouts/{id}/scorecard`.
    Scorecard(Box<drift::Scorecard>),
    /// `GET /v1/health`.
    Health(Vec<health::HealthView>),
    /// `GET /v1/drift`.
    Drift(Box<drift::DriftReport>),
    /// `GET /v1/samples`.
    Samples(Vec<samples::SampleRecord>),
    /// `GET /v1/audit`.
    Audit(Vec<audit::AuditEntry>),
    /// `GET /v1/audit/verify`.
    AuditVerify(audit::AuditVerify),
}
