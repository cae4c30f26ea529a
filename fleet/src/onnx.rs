//! Reads an ONNX model's interface and runs it, with tract (CPU), to build packages.
//!
//! Used by `edgefleet package build`: a model tract cannot load is refused with tract's reason,
//! the manifest's input/output schema comes from the model itself, and golden validation
//! vectors are produced by running the model.

use edgefleet_protocol::tensor::{Dim, ElemType, Tensor, TensorData, TensorSpec};
use std::path::{Path, PathBuf};
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TDim, TValue, Tensor as TractTensor,
    TypedModel, tvec,
};

/// A model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// tract could not parse or type the model.
    #[error("tract cannot load {path}: {reason}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// tract's explanation (full cause chain).
        reason: String,
    },
    /// The model uses an element type packages cannot describe.
    #[error("{path}: tensor {tensor:?} has unsupported element type {datum:?}")]
    UnsupportedType {
        /// The model file.
        path: PathBuf,
        /// Input or output name.
        tensor: String,
        /// tract's type.
        datum: DatumType,
    },
    /// Running the model failed.
    #[error("running {path} failed: {reason}")]
    Run {
        /// The model file.
        path: PathBuf,
        /// tract's explanation.
        reason: String,
    },
}

/// A loaded model and its interface.
#[derive(Debug)]
pub struct OnnxModel {
    path: PathBuf,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

fn chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

fn elem_type(path: &Path, tensor: &str, datum: DatumType) -> Result<ElemType, OnnxError> {
    Ok(match datum {
        DatumType::F32 => ElemType::F32,
        DatumType::F16 => ElemType::F16,
        DatumType::F64 => ElemType::F64,
        DatumType::I8 => ElemType::I8,
        DatumType::U8 => ElemType::U8,
        DatumType::I16 => ElemType::I16,
        DatumType::I32 => ElemType::I32,
        DatumType::I64 => ElemType::I64,
        DatumType::Bool => ElemType::Bool,
        other => {
            return Err(OnnxError::UnsupportedType { path: path.to_path_buf(), tensor: tensor.into(), datum: other });
        }
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

impl OnnxModel {
    /// Loads `path` and reads its interface. Fails with tract's reason when tract cannot
    /// parse the file or infer its types.
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let load_error = |e: anyhow::Error| OnnxError::Load { path: path.to_path_buf(), reason: chain(&e) };
        let typed: TypedModel =
            tract_onnx::onnx().model_for_path(path).map_err(load_error)?.into_typed().map_err(load_error)?;
        let spec = |outlet, name: String| -> Result<TensorSpec, OnnxError> {
            let fact = typed.outlet_fact(outlet).map_err(load_error)?;
            let elem = elem_type(path, &name, fact.datum_type)?;
            Ok(TensorSpec { elem, shape: dims(&fact.shape.to_tvec()), name })
        };
        let mut inputs = Vec::new();
        for outlet in typed.input_outlets().map_err(load_error)? {
            inputs.push(spec(*outlet, typed.node(outlet.node).name.clone())?);
        }
        let mut outputs = Vec::new();
        for outlet in typed.output_outlets().map_err(load_error)? {
            let name =
                typed.outlet_label(*outlet).map(str::to_owned).unwrap_or_else(|| typed.node(outlet.node).name.clone());
            outputs.push(spec(*outlet, name)?);
        }
        Ok(Self { path: path.to_path_buf(), inputs, outputs })
    }

    /// Declared inputs.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// Declared outputs.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// Runs the model once on `inputs` (concrete shapes fix any symbolic dimension).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, OnnxError> {
        let run_error = |e: anyhow::Error| OnnxError::Run { path: self.path.clone(), reason: chain(&e) };
        let mut model = tract_onnx::onnx().model_for_path(&self.path).map_err(run_error)?;
        let mut values = tvec!();
        for (index, (input, spec)) in inputs.iter().zip(&self.inputs).enumerate() {
            let tensor = to_tract(input, spec.elem).map_err(run_error)?;
            model = model
                .with_input_fact(index, InferenceFact::dt_shape(tensor.datum_type(), tensor.shape()))
                .map_err(run_error)?;
            values.push(TValue::from(tensor));
        }
        let plan = model.into_optimized().map_err(run_error)?.into_runnable().map_err(run_error)?;
        let outputs = plan.run(values).map_err(run_error)?;
        outputs.iter().map(|value| from_tract(value).map_err(run_error)).collect()
    }
}

fn to_tract(tensor: &Tensor, elem: ElemType) -> anyhow::Result<TractTensor> {
    let shape: Vec<usize> = tensor.shape.iter().map(|d| *d as usize).collect();
    let t = match &tensor.data {
        TensorData::F32(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::I64(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::I32(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::U8(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::I8(v) => TractTensor::from_shape(&shape, v)?,
        TensorData::Bool(v) => TractTensor::from_shape(&shape, v)?,
    };
    // f16 inputs travel as f32 in packages; cast to what the graph declares.
    Ok(match elem {
        ElemType::F16 => t.cast_to_dt(DatumType::F16)?.into_owned(),
        ElemType::F64 => t.cast_to_dt(DatumType::F64)?.into_owned(),
        ElemType::I16 => t.cast_to_dt(DatumType::I16)?.into_owned(),
        _ => t,
    })
}

fn from_tract(tensor: &TractTensor) -> anyhow::Result<Tensor> {
    let shape = tensor.shape().iter().map(|d| *d as u64).collect();
    let data = match tensor.datum_type() {
        DatumType::I64 => TensorData::I64(tensor.try_as_plain_ram()?.as_slice::<i64>()?.to_vec()),
        DatumType::I32 => TensorData::I32(tensor.try_as_plain_ram()?.as_slice::<i32>()?.to_vec()),
        DatumType::U8 => TensorData::U8(tensor.try_as_plain_ram()?.as_slice::<u8>()?.to_vec()),
        DatumType::I8 => TensorData::I8(tensor.try_as_plain_ram()?.as_slice::<i8>()?.to_vec()),
        DatumType::Bool => TensorData::Bool(tensor.try_as_plain_ram()?.as_slice::<bool>()?.to_vec()),
        _ => {
            let widened = tensor.cast_to::<f32>()?;
            TensorData::F32(widened.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
        }
    };
    Ok(Tensor { shape, data })
}

/// Deterministic inputs for golden vectors: uniform in [-1, 1) for floats, 0..10 for
/// integers, symbolic dimensions set to 1. Same seed, same vectors.
pub fn synthetic_inputs(specs: &[TensorSpec], seed: u64) -> Vec<Tensor> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    specs
        .iter()
        .map(|spec| {
            let shape: Vec<u64> = spec.shape.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect();
            let count = shape.iter().product::<u64>() as usize;
            let data = match spec.elem {
                ElemType::I64 => TensorData::I64((0..count).map(|_| (next() % 10) as i64).collect()),
                ElemType::I32 | ElemType::I16 => TensorData::I32((0..count).map(|_| (next() % 10) as i32).collect()),
                ElemType::U8 => TensorData::U8((0..count).map(|_| (next() % 10) as u8).collect()),
                ElemType::I8 => TensorData::I8((0..count).map(|_| (next() % 10) as i8).collect()),
                ElemType::Bool => TensorData::Bool((0..count).map(|_| next() % 2 == 0).collect()),
                ElemType::F32 | ElemType::F16 | ElemType::F64 => TensorData::F32(
                    (0..count).map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0).collect(),
                ),
            };
            Tensor { shape, data }
        })
        .collect()
}
