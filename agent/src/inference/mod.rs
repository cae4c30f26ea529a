//! Local inference: a dedicated worker thread behind a cloneable [`InferenceHandle`],
//! per-version statistics, and package-to-model loading. The [`Model`] trait, its tract
//! backend ([`TractModel`]) and the tensor file formats the API and CLI speak (JSON, `.npy`)
//! live in `edgefleet-runtime` and are re-exported here.
//!
//! ```text
//! async callers ── InferenceHandle::infer ──► bounded channel ──► worker thread (owns Box<dyn Model>)
//!                ◄────────── oneshot reply (outputs, latency, id, model version) ─┘   │
//! installer ── InferenceHandle::swap(model, info) ─► same channel: atomic activation/rollback
//!                                                   InferenceStats ◄── counters, latency histogram
//! ```
//!
//! ```no_run
//! use edgefleet_agent::inference::{InferenceStats, InferenceWorker, ModelInfo, TractModel, WorkerConfig};
//! use edgefleet_protocol::{ModelName, tensor::{Tensor, TensorData}};
//! use std::path::Path;
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let model = TractModel::load(Path::new("fixtures/models/vibration_mlp.onnx"))?;
//! let (handle, _worker) = InferenceWorker::spawn(WorkerConfig::default(), InferenceStats::new())?;
//! let info = ModelInfo { name: ModelName::new("vibration-mlp")?, version_seq: 1, label: "1.0.0".into() };
//! handle.swap(Box::new(model), info).await?;
//! let input = Tensor { shape: vec![1, 8], data: TensorData::F32(vec![0.0; 8]) };
//! let outcome = handle.infer(vec![input]).await?;
//! println!("{:?} in {} µs", outcome.outputs[0].data, outcome.latency_us);
//! # Ok(()) }
//! ```

pub mod package;
pub mod stats;
pub mod worker;

pub use edgefleet_runtime::{json, model, npy, tract_backend};

pub use edgefleet_runtime::{
    Backend, FnModel, InferenceError, LoadError, LoadOptions, Model, ModelInfo, ModelLayer, ModelSource, NamedTensor,
    TractModel, check_inputs,
};
pub use stats::{InferenceStats, StatsSnapshot, VersionSnapshot};
pub use worker::{InferenceHandle, InferenceOutcome, InferenceWorker, LoadedModel, WorkerConfig};
