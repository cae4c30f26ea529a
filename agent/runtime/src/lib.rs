//! `edgefleet-runtime`: the Edgefleet inference runtime, shared by the device daemon
//! (`edgefleet-agent`) and the fleet manager's `package build` (golden vectors).
//!
//! - [`model`]: the [`Model`] trait every backend implements, [`ModelInfo`] (which version
//!   serves), the [`ModelLayer`] seam for simulated hardware, [`FnModel`] for fakes, and the
//!   input checks that run before a backend sees a request.
//! - [`tract_backend`]: [`TractModel`], an ONNX model run by tract (CPU; CUDA with the `gpu`
//!   feature), loaded and optimized once with a small cache of per-shape plans.
//! - [`json`] and [`npy`]: the tensor formats the agent's local API and `infer` CLI speak.
//! - [`golden`]: replaying a package's golden vectors through a model.
//!
//! The inference worker thread, its statistics and the daemon wiring live in the agent
//! (`edgefleet_agent::inference`), which re-exports this crate's items there too.
//!
//! # Features
//! - `gpu`: tract's CUDA runtime as `Backend::Gpu` (compiles without CUDA; loads it at run time).
//!
//! # Quick start
//! ```no_run
//! use edgefleet_protocol::tensor::{Tensor, TensorData};
//! use edgefleet_runtime::{Model, TractModel};
//! use std::path::Path;
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut model = TractModel::load(Path::new("fixtures/models/vibration_mlp.onnx"))?;
//! println!("{} -> {}", model.inputs()[0], model.outputs()[0]);
//! let input = Tensor { shape: vec![1, 8], data: TensorData::F32(vec![0.0; 8]) };
//! let outputs = model.run(&[input])?;
//! println!("{:?}", outputs[0].data);
//! # Ok(()) }
//! ```

pub mod golden;
pub mod json;
pub mod model;
pub mod npy;
pub mod tract_backend;

pub use golden::{GoldenError, check_golden};
pub use model::{FnModel, InferenceError, Model, ModelInfo, ModelLayer, NamedTensor, arrange_inputs, check_inputs};
pub use tract_backend::{Backend, LoadError, LoadOptions, ModelSource, TractModel};
