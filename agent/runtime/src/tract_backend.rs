//! [`TractModel`]: an ONNX model run by tract, loaded and optimized once.
//!
//! Loading parses and types the graph once, keeping symbolic dimensions (`batch`) in the
//! declared interface, then builds the *default plan* with every symbol set to 1. A request
//! whose shapes bind a symbol to another value (a batch of 16) gets its own plan, built on
//! first use from the typed graph (no re-parsing) and kept in a small least-recently-used
//! cache, so steady traffic never re-optimizes. Each plan keeps one tract state that is reused
//! across runs.

use crate::model::{InferenceError, Model, check_inputs};
use edgefleet_protocol::tensor::{Dim, ElemType, Tensor, TensorData, TensorSpec};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceModelExt, Runtime, State, Symbol, TDim, TValue, TVec, Tensor as TractTensor,
    TypedModel, tvec,
};
use tract_onnx::tract_core::runtime::DefaultRuntime;

#[cfg(feature = "gpu")]
use tract_cuda as _; // registers tract's "cuda" runtime

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Backend {
    /// tract's CPU runtime (always available).
    #[default]
    Cpu,
    /// tract's CUDA runtime (cargo feature `gpu`; needs the CUDA libraries at run time).
    #[cfg(feature = "gpu")]
    Gpu,
}

impl Backend {
    /// The name used in logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            #[cfg(feature = "gpu")]
            Backend::Gpu => "cuda",
        }
    }

    fn runtime(self) -> Result<&'static dyn Runtime, LoadError> {
        static CPU: DefaultRuntime = DefaultRuntime;
        match self {
            Backend::Cpu => Ok(&CPU),
            #[cfg(feature = "gpu")]
            Backend::Gpu => match tract_onnx::prelude::runtime_for_name("cuda") {
                Ok(Some(runtime)) => Ok(runtime),
                Ok(None) => Err(LoadError::BackendUnavailable { backend: self, reason: "not registered".into() }),
                Err(e) => Err(LoadError::BackendUnavailable { backend: self, reason: format!("{e:#}") }),
            },
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where to read a model from.
#[derive(Debug, Clone, Copy)]
pub enum ModelSource<'a> {
    /// An ONNX file.
    Path(&'a Path),
    /// ONNX bytes already in memory (a verified package blob).
    Bytes(&'a [u8]),
}

impl fmt::Display for ModelSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Path(p) => write!(f, "{}", p.display()),
            ModelSource::Bytes(b) => write!(f, "<{} bytes of ONNX>", b.len()),
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Runtime to prepare plans for.
    pub backend: Backend,
    /// Plans kept besides the default one, for other concrete input shapes (at least 1).
    pub max_cached_plans: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { backend: Backend::Cpu, max_cached_plans: 4 }
    }
}

/// A model could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// tract could not parse, type or optimize the model.
    #[error("tract cannot load {source_name}: {reason}")]
    Tract {
        /// The file, or a description of the bytes.
        source_name: String,
        /// tract's explanation (full cause chain).
        reason: String,
    },
    /// The model uses an element type packages cannot describe.
    #[error("{source_name}: tensor {tensor:?} has unsupported element type {datum:?}")]
    UnsupportedType {
        /// The file, or a description of the bytes.
        source_name: String,
        /// Input or output name.
        tensor: String,
        /// tract's type.
        datum: DatumType,
    },
    /// The requested backend cannot run here.
    #[error("backend {backend} is not available: {reason}")]
    BackendUnavailable {
        /// The backend asked for.
        backend: Backend,
        /// Why.
        reason: String,
    },
}

/// One prepared plan: the concrete input shapes it serves and its reusable state.
struct Plan {
    shapes: Vec<Vec<u64>>,
    state: Box<dyn State>,
}

/// An ONNX model loaded by tract (see the module docs for the plan cache).
pub struct TractModel {
    name: String,
    backend: Backend,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    /// The typed, decluttered graph with its symbols, for plans of other shapes.
    typed: TypedModel,
    /// Symbols that appear as a whole dimension of some input: `(input, axis, symbol)`.
    input_symbols: Vec<(usize, usize, Symbol)>,
    default_plan: Plan,
    /// Most recently used first.
    cache: Vec<Plan>,
    max_cached_plans: usize,
}

impl fmt::Debug for TractModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TractModel")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("cached_plans", &self.cache.len())
            .finish_non_exhaustive()
    }
}

fn elem_type(datum: DatumType) -> Option<ElemType> {
    Some(match datum {
        DatumType::F32 => ElemType::F32,
        DatumType::F16 => ElemType::F16,
        DatumType::F64 => ElemType::F64,
        DatumType::I8 => ElemType::I8,
        DatumType::U8 => ElemType::U8,
        DatumType::I16 => ElemType::I16,
        DatumType::I32 => ElemType::I32,
        DatumType::I64 => ElemType::I64,
        DatumType::Bool => ElemType::Bool,
        _ => return None,
    })
}

fn dims(shape: &[TDim]) -> Vec<Dim> {
    shape
        .iter()
        .map(|d| match d.to_i64() {
            Ok(n) if n >= 0 => Dim::Fixed(n as u64),
            _ => Dim::Symbolic(d.to_string()),
        })
        .collect()
}

enum PlanError {
    Backend(LoadError),
    Tract(anyhow::Error),
}

/// Binds each input symbol to the size `shapes` give it, then optimizes and prepares a plan.
fn build_plan(
    typed: &TypedModel,
    input_symbols: &[(usize, usize, Symbol)],
    backend: Backend,
    shapes: Vec<Vec<u64>>,
) -> Result<Plan, PlanError> {
    let mut bindings: HashMap<Symbol, TDim> = HashMap::new();
    for (input, axis, symbol) in input_symbols {
        if let Some(&size) = shapes.get(*input).and_then(|s| s.get(*axis)) {
            bindings.insert(symbol.clone(), TDim::Val(size as i64));
        }
    }
    let graph =
        if bindings.is_empty() { typed.clone() } else { typed.set_symbols(&bindings).map_err(PlanError::Tract)? };
    let runtime = backend.runtime().map_err(PlanError::Backend)?;
    let runnable = runtime.prepare(graph).map_err(PlanError::Tract)?;
    let state = runnable.spawn().map_err(PlanError::Tract)?;
    Ok(Plan { shapes, state })
}

impl TractModel {
    /// Loads an ONNX file for the CPU.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        Self::load_with(ModelSource::Path(path), &LoadOptions::default())
    }

    /// Loads ONNX bytes (for example a verified package blob) for the CPU.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LoadError> {
        Self::load_with(ModelSource::Bytes(bytes), &LoadOptions::default())
    }

    /// Loads a model: parse, type, read the interface, build the default plan (symbols = 1).
    pub fn load_with(source: ModelSource<'_>, options: &LoadOptions) -> Result<Self, LoadError> {
        let name = source.to_string();
        let tract_error = |e: anyhow::Error| LoadError::Tract { source_name: name.clone(), reason: format!("{e:#}") };
        let onnx = tract_onnx::onnx();
        let inference = match source {
            ModelSource::Path(path) => onnx.model_for_path(path),
            ModelSource::Bytes(mut bytes) => onnx.model_for_read(&mut bytes),
        }
        .map_err(tract_error)?;
        let mut typed = inference.into_typed().map_err(tract_error)?;
        typed.declutter().map_err(tract_error)?;

        let spec = |outlet, tensor: String| -> Result<TensorSpec, LoadError> {
            let fact = typed.outlet_fact(outlet).map_err(tract_error)?;
            let elem = elem_type(fact.datum_type).ok_or_else(|| LoadError::UnsupportedType {
                source_name: name.clone(),
                tensor: tensor.clone(),
                datum: fact.datum_type,
            })?;
            Ok(TensorSpec { elem, shape: dims(&fact.shape.to_tvec()), name: tensor })
        };
        let mut inputs = Vec::new();
        let mut input_symbols = Vec::new();
        for (index, outlet) in typed.input_outlets().map_err(tract_error)?.iter().enumerate() {
            inputs.push(spec(*outlet, typed.node(outlet.node).name.clone())?);
            let fact = typed.outlet_fact(*outlet).map_err(tract_error)?;
            for (axis, dim) in fact.shape.iter().enumerate() {
                if let TDim::Sym(symbol) = dim {
                    input_symbols.push((index, axis, symbol.clone()));
                }
            }
        }
        let mut outputs = Vec::new();
        for outlet in typed.output_outlets().map_err(tract_error)? {
            let tensor =
                typed.outlet_label(*outlet).map(str::to_owned).unwrap_or_else(|| typed.node(outlet.node).name.clone());
            outputs.push(spec(*outlet, tensor)?);
        }

        let default_shapes: Vec<Vec<u64>> = inputs
            .iter()
            .map(|s| s.shape.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect())
            .collect();
        let default_plan =
            build_plan(&typed, &input_symbols, options.backend, default_shapes).map_err(|e| match e {
                PlanError::Backend(e) => e,
                PlanError::Tract(e) => tract_error(e),
            })?;
        Ok(Self {
            name,
            backend: options.backend,
            inputs,
            outputs,
            typed,
            input_symbols,
            default_plan,
            cache: Vec::new(),
            max_cached_plans: options.max_cached_plans.max(1),
        })
    }

    /// The backend this model's plans run on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Plans cached for non-default shapes (for tests and status).
    pub fn cached_plans(&self) -> usize {
        self.cache.len()
    }

    fn run_error(&self, e: impl fmt::Display) -> InferenceError {
        InferenceError::Run { model: self.name.clone(), reason: e.to_string() }
    }

    /// The plan for these input shapes: the default one, a cached one, or a new one.
    fn plan_for(&mut self, inputs: &[Tensor]) -> Result<&mut Plan, InferenceError> {
        let fits = |plan: &Plan| plan.shapes.iter().zip(inputs).all(|(s, t)| *s == t.shape);
        if fits(&self.default_plan) {
            return Ok(&mut self.default_plan);
        }
        if let Some(index) = self.cache.iter().position(fits) {
            self.cache[..=index].rotate_right(1);
        } else {
            let shapes = inputs.iter().map(|t| t.shape.clone()).collect();
            let plan = build_plan(&self.typed, &self.input_symbols, self.backend, shapes).map_err(|e| match e {
                PlanError::Backend(e) => self.run_error(e),
                PlanError::Tract(e) => self.run_error(format!("preparing a plan for these shapes: {e:#}")),
            })?;
            self.cache.truncate(self.max_cached_plans - 1);
            self.cache.insert(0, plan);
        }
        Ok(&mut self.cache[0])
    }
}

impl Model for TractModel {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferenceError> {
        check_inputs(&self.inputs, inputs)?;
        let mut values = tvec!();
        for (input, spec) in inputs.iter().zip(&self.inputs) {
            values.push(TValue::from(to_tract(input, spec.elem).map_err(|e| self.run_error(format!("{e:#}")))?));
        }
        let plan = self.plan_for(inputs)?;
        let result = plan.state.run(values);
        let outputs = result.map_err(|e| self.run_error(format!("{e:#}")))?;
        outputs.iter().map(|v| from_tract(v).map_err(|e| self.run_error(format!("{e:#}")))).collect()
    }
}

/// Converts a protocol tensor to a tract tensor of the declared element type (f16/f64 inputs
/// travel as f32, i16 as i32, and are cast here).
pub fn to_tract(tensor: &Tensor, elem: ElemType) -> anyhow::Result<TractTensor> {
    let shape: TVec<usize> = tensor.shape.iter().map(|d| *d as usize).collect();
    let t = match &tensor.data {
        TensorData::F32(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::I64(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::I32(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::U8(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::I8(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::Bool(v) => TractTensor::from_shape(&shape, v)?,
    };
    Ok(match elem {
        ElemType::F16 => t.cast_to_dt(DatumType::F16)?.into_owned(),
        ElemType::F64 => t.cast_to_dt(DatumType::F64)?.into_owned(),
        ElemType::I16 => t.cast_to_dt(DatumType::I16)?.into_owned(),
        _ => t,
    })
}

/// Converts a tract tensor to a protocol tensor (float types other than f32 are widened or
/// narrowed to f32, i16 widened to i32).
pub fn from_tract(tensor: &TractTensor) -> anyhow::Result<Tensor> {
    let shape = tensor.shape().iter().map(|d| *d as u64).collect();
    let data = match tensor.datum_type() {
        DatumType::F32 => TensorData::F32(tensor.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()),
        DatumType::I64 => TensorData::I64(tensor.try_as_plain_ram()?.as_slice::<i64>()?.to_vec()),
        DatumType::I32 => TensorData::I32(tensor.try_as_plain_ram()?.as_slice::<i32>()?.to_vec()),
        DatumType::I16 => TensorData::I32(tensor.cast_to::<i32>()?.try_as_plain_ram()?.as_slice::<i32>()?.to_vec()),
        DatumType::U8 => TensorData::U8(tensor.try_as_plain_ram()?.as_slice::<u8>()?.to_vec()),
        DatumType::I8 => TensorData::I8(tensor.try_as_plain_ram()?.as_slice::<i8>()?.to_vec()),
        DatumType::Bool => TensorData::Bool(tensor.try_as_plain_ram()?.as_slice::<bool>()?.to_vec()),
        _ => TensorData::F32(tensor.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()),
    };
    Ok(Tensor { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models").join(name)
    }

    fn features(batch: u64, seed: f32) -> Tensor {
        let data = (0..batch * 8).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
        Tensor { shape: vec![batch, 8], data: TensorData::F32(data) }
    }

    fn rows(t: &Tensor) -> Vec<f32> {
        match &t.data {
            TensorData::F32(v) => v.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn loads_interface_with_symbolic_batch_and_runs() {
        let mut model = TractModel::load(&fixture("vibration_mlp.onnx")).unwrap();
        assert_eq!(model.inputs()[0].to_string(), "features: f32[batch,8]");
        assert_eq!(model.outputs()[0].to_string(), "scores: f32[batch,4]");
        let out = model.run(&[features(1, 0.0)]).unwrap();
        assert_eq!(out[0].shape, vec![1, 4]);
        let sum: f32 = rows(&out[0]).iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        assert_eq!(model.cached_plans(), 0);
    }

    #[test]
    fn other_batch_sizes_get_cached_plans_with_the_same_results() {
        let mut model = TractModel::load_with(
            ModelSource::Path(&fixture("vibration_mlp.onnx")),
            &LoadOptions { max_cached_plans: 2, ..Default::default() },
        )
        .unwrap();
        let batch = features(3, 1.0);
        let out = rows(&model.run(std::slice::from_ref(&batch)).unwrap()[0]);
        assert_eq!(model.cached_plans(), 1);
        for row in 0..3 {
            let single = TensorData::F32(rows(&batch)[row * 8..row * 8 + 8].to_vec());
            let one = rows(&model.run(&[Tensor { shape: vec![1, 8], data: single }]).unwrap()[0]);
            for (a, b) in one.iter().zip(&out[row * 4..row * 4 + 4]) {
                assert!((a - b).abs() < 1e-6);
            }
        }
        model.run(&[features(3, 2.0)]).unwrap();
        assert_eq!(model.cached_plans(), 1, "same shape reuses its plan");
        model.run(&[features(5, 0.0)]).unwrap();
        model.run(&[features(7, 0.0)]).unwrap();
        assert_eq!(model.cached_plans(), 2, "cache is bounded");
    }

    #[test]
    fn loads_from_bytes_and_refuses_garbage() {
        let bytes = std::fs::read(fixture("vibration_mlp.onnx")).unwrap();
        let mut model = TractModel::from_bytes(&bytes).unwrap();
        assert_eq!(model.run(&[features(1, 0.0)]).unwrap()[0].shape, vec![1, 4]);
        let e = TractModel::load(&fixture("not_a_model.onnx")).unwrap_err().to_string();
        assert!(e.contains("not_a_model.onnx"), "{e}");
        let e = TractModel::from_bytes(b"garbage").unwrap_err().to_string();
        assert!(e.contains("<7 bytes of ONNX>"), "{e}");
    }

    #[test]
    fn refuses_bad_inputs_before_running() {
        let mut model = TractModel::load(&fixture("vibration_mlp.onnx")).unwrap();
        let e = model.run(&[Tensor { shape: vec![1, 7], data: TensorData::F32(vec![0.0; 7]) }]).unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains("\"features\""), "{e}");
    }

    /// Runs where CUDA is present (`cargo test -p edgefleet-runtime --features gpu`); elsewhere
    /// it checks that the backend reports itself unavailable instead of failing later.
    #[cfg(feature = "gpu")]
    #[test]
    fn gpu_backend_matches_cpu_or_says_it_is_unavailable() {
        let path = fixture("vibration_mlp.onnx");
        let options = LoadOptions { backend: Backend::Gpu, ..Default::default() };
        let mut gpu = match TractModel::load_with(ModelSource::Path(&path), &options) {
            Err(LoadError::BackendUnavailable { reason, .. }) => {
                eprintln!("CUDA not available here, GPU comparison skipped: {reason}");
                return;
            }
            other => other.unwrap(),
        };
        let mut cpu = TractModel::load(&path).unwrap();
        for batch in [1, 4] {
            let input = [features(batch, 0.5)];
            let (g, c) = (rows(&gpu.run(&input).unwrap()[0]), rows(&cpu.run(&input).unwrap()[0]));
            assert!(g.iter().zip(&c).all(|(a, b)| (a - b).abs() < 1e-4), "{g:?} vs {c:?}");
        }
    }
}
