//! The [`Model`] trait every inference backend implements, its errors, and the input checks
//! that run before any backend sees a request.

use edgefleet_protocol::ModelName;
use edgefleet_protocol::tensor::{Dim, ElemType, Tensor, TensorData, TensorSpec};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A loaded model that runs on the calling thread.
///
/// Implementations own whatever the backend needs (an optimized plan, device buffers) and
/// may keep mutable scratch state between runs, hence `&mut self`. The inference worker
/// checks inputs with [`check_inputs`] before calling [`Model::run`], so a backend may assume
/// count, shapes and element types match [`Model::inputs`].
pub trait Model: Send {
    /// Declared inputs, in call order (symbolic dimensions stay [`Dim::Symbolic`]).
    fn inputs(&self) -> &[TensorSpec];
    /// Declared outputs, in result order.
    fn outputs(&self) -> &[TensorSpec];
    /// Runs the model once.
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferenceError>;
}

/// Which model version served (or will serve) an inference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model name.
    pub name: ModelName,
    /// Version sequence from the package manifest.
    pub version_seq: u64,
    /// Human label, e.g. `1.4.0`.
    pub label: String,
}

/// Wraps the models an agent loads, for validation and serving alike.
///
/// The seam for an agent embedded in a simulator: simulated hardware classes wrap the real
/// tract model to add their latency profile, or to inject a slow or failing model. A device
/// has none (the agent's `daemon::Embedding::model_layer` is `None`).
pub trait ModelLayer: Send + Sync + fmt::Debug {
    /// The model to use in place of `model`, which is version `info`.
    fn wrap(&self, model: Box<dyn Model>, info: &ModelInfo) -> Box<dyn Model>;
}

/// Why an inference did not produce outputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferenceError {
    /// No model is active (nothing installed yet, or it was unloaded).
    #[error("no model is loaded: install and activate a model first")]
    NoModel,
    /// Wrong number of inputs.
    #[error("the model takes {expected} input(s) ({names}), got {got}")]
    InputCount {
        /// Declared count.
        expected: usize,
        /// Names of the declared inputs, comma-separated.
        names: String,
        /// Count received.
        got: usize,
    },
    /// An input's values cannot be used as the declared element type.
    #[error("input {name:?} must be {expected}, got {got} values")]
    InputType {
        /// Input name.
        name: String,
        /// Declared element type.
        expected: ElemType,
        /// What was sent.
        got: &'static str,
    },
    /// An input's shape does not fit the declared one.
    #[error("input {name:?} has shape {got:?}, the model expects {expected}: {reason}")]
    InputShape {
        /// Input name.
        name: String,
        /// Declared shape, e.g. `[batch,8]`.
        expected: String,
        /// Shape received.
        got: Vec<u64>,
        /// Which dimension disagrees and how.
        reason: String,
    },
    /// An input's shape and data length disagree.
    #[error("input {name:?}: shape {shape:?} holds {expected} values, but {got} were sent")]
    InputLength {
        /// Input name (or position when unnamed).
        name: String,
        /// Shape sent.
        shape: Vec<u64>,
        /// Values the shape implies (`u64::MAX` on overflow).
        expected: u64,
        /// Values sent.
        got: usize,
    },
    /// Named inputs that do not line up with the model's inputs.
    #[error("{0}")]
    InputNames(String),
    /// The backend failed while running a valid request.
    #[error("running model {model} failed: {reason}")]
    Run {
        /// Which model (name or file).
        model: String,
        /// The backend's explanation.
        reason: String,
    },
    /// The inference thread is gone (it stopped or panicked); restart the agent.
    #[error("the inference worker has stopped")]
    WorkerStopped,
}

impl InferenceError {
    /// True when the request itself was at fault (a client error, HTTP 400), as opposed to
    /// the model or the runtime.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            InferenceError::InputCount { .. }
                | InferenceError::InputType { .. }
                | InferenceError::InputShape { .. }
                | InferenceError::InputLength { .. }
                | InferenceError::InputNames(_)
        )
    }
}

/// An input tensor with an optional name, as the local API and `infer` CLI receive them.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Input name; `None` means "by position".
    pub name: Option<String>,
    /// Values.
    pub tensor: Tensor,
}

/// Puts `inputs` in the model's order: all unnamed (taken by position) or all named (matched
/// by name, each declared input exactly once).
pub fn arrange_inputs(specs: &[TensorSpec], inputs: Vec<NamedTensor>) -> Result<Vec<Tensor>, InferenceError> {
    let named = inputs.iter().filter(|i| i.name.is_some()).count();
    if named == 0 {
        return Ok(inputs.into_iter().map(|i| i.tensor).collect());
    }
    if named != inputs.len() {
        return Err(InferenceError::InputNames("name every input or none of them".into()));
    }
    let mut slots: Vec<Option<Tensor>> = vec![None; specs.len()];
    for input in inputs {
        let name = input.name.unwrap_or_default();
        let Some(index) = specs.iter().position(|s| s.name == name) else {
            return Err(InferenceError::InputNames(format!(
                "the model has no input {name:?}; its inputs are {}",
                spec_names(specs)
            )));
        };
        if slots[index].replace(input.tensor).is_some() {
            return Err(InferenceError::InputNames(format!("input {name:?} was given twice")));
        }
    }
    let missing: Vec<&str> =
        specs.iter().zip(&slots).filter(|(_, slot)| slot.is_none()).map(|(s, _)| s.name.as_str()).collect();
    if !missing.is_empty() {
        return Err(InferenceError::InputNames(format!("missing input(s): {}", missing.join(", "))));
    }
    Ok(slots.into_iter().flatten().collect())
}

fn spec_names(specs: &[TensorSpec]) -> String {
    specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// The element type a tensor's values travel as (f16 and f64 travel as f32, i16 as i32).
pub fn data_type_name(data: &TensorData) -> &'static str {
    match data {
        TensorData::F32(_) => "f32",
        TensorData::I64(_) => "i64",
        TensorData::I32(_) => "i32",
        TensorData::U8(_) => "u8",
        TensorData::I8(_) => "i8",
        TensorData::Bool(_) => "bool",
    }
}

fn carries(elem: ElemType, data: &TensorData) -> bool {
    matches!(
        (elem, data),
        (ElemType::F32 | ElemType::F16 | ElemType::F64, TensorData::F32(_))
            | (ElemType::I64, TensorData::I64(_))
            | (ElemType::I32 | ElemType::I16, TensorData::I32(_))
            | (ElemType::U8, TensorData::U8(_))
            | (ElemType::I8, TensorData::I8(_))
            | (ElemType::Bool, TensorData::Bool(_))
    )
}

struct ShapeText<'a>(&'a [Dim]);

impl fmt::Display for ShapeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Checks `inputs` against `specs`: count, element type, rank, fixed dimensions, data length,
/// and that a symbolic dimension (e.g. `batch`) has one positive value across all inputs.
pub fn check_inputs(specs: &[TensorSpec], inputs: &[Tensor]) -> Result<(), InferenceError> {
    if specs.len() != inputs.len() {
        return Err(InferenceError::InputCount { expected: specs.len(), names: spec_names(specs), got: inputs.len() });
    }
    for (spec, input) in specs.iter().zip(inputs) {
        if !carries(spec.elem, &input.data) {
            return Err(InferenceError::InputType {
                name: spec.name.clone(),
                expected: spec.elem,
                got: data_type_name(&input.data),
            });
        }
        let shape_error = |reason: String| InferenceError::InputShape {
            name: spec.name.clone(),
            expected: ShapeText(&spec.shape).to_string(),
            got: input.shape.clone(),
            reason,
        };
        if spec.shape.len() != input.shape.len() {
            return Err(shape_error(format!("rank {} instead of {}", input.shape.len(), spec.shape.len())));
        }
        for (axis, (dim, &got)) in spec.shape.iter().zip(&input.shape).enumerate() {
            match dim {
                Dim::Fixed(n) if *n != got => {
                    return Err(shape_error(format!("dimension {axis} is {got}, must be {n}")));
                }
                Dim::Fixed(_) => {}
                Dim::Symbolic(symbol) => {
                    if got == 0 {
                        return Err(shape_error(format!("dimension {axis} ({symbol}) must be at least 1")));
                    }
                    // The symbol's first occurrence sets its value (a linear scan: models have a
                    // handful of dims, and this allocates nothing on the hot path).
                    if let Some((by, value)) = first_binding(specs, inputs, symbol)
                        && value != got
                    {
                        return Err(shape_error(format!(
                            "dimension {axis} ({symbol}) is {got}, but input {by:?} set {symbol} = {value}"
                        )));
                    }
                }
            }
        }
        check_length(&spec.name, input)?;
    }
    Ok(())
}

/// Where `symbol` first appears among the inputs: that input's name and its size there.
fn first_binding<'a>(specs: &'a [TensorSpec], inputs: &[Tensor], symbol: &str) -> Option<(&'a str, u64)> {
    specs.iter().zip(inputs).find_map(|(spec, input)| {
        let axis = spec.shape.iter().position(|d| matches!(d, Dim::Symbolic(s) if s == symbol))?;
        Some((spec.name.as_str(), *input.shape.get(axis)?))
    })
}

/// Checks that a tensor's shape and data length agree.
pub fn check_length(name: &str, tensor: &Tensor) -> Result<(), InferenceError> {
    if tensor.is_consistent() {
        return Ok(());
    }
    let expected = tensor.shape.iter().try_fold(1u64, |acc, d| acc.checked_mul(*d)).unwrap_or(u64::MAX);
    Err(InferenceError::InputLength {
        name: name.to_owned(),
        shape: tensor.shape.clone(),
        expected,
        got: tensor.data.len(),
    })
}

/// A [`Model`] made of a closure: the easy way to inject a fake model in tests, or to serve a
/// hand-written function behind the same worker and API.
pub struct FnModel<F> {
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    run: F,
}

impl<F> FnModel<F>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>, InferenceError> + Send,
{
    /// A model with this interface that computes outputs with `run`.
    pub fn new(inputs: Vec<TensorSpec>, outputs: Vec<TensorSpec>, run: F) -> Self {
        Self { inputs, outputs, run }
    }
}

impl<F> fmt::Debug for FnModel<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnModel").field("inputs", &self.inputs).field("outputs", &self.outputs).finish_non_exhaustive()
    }
}

impl<F> Model for FnModel<F>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>, InferenceError> + Send,
{
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferenceError> {
        (self.run)(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, shape: Vec<Dim>) -> TensorSpec {
        TensorSpec { name: name.into(), elem: ElemType::F32, shape }
    }

    fn f32s(shape: Vec<u64>) -> Tensor {
        let n = shape.iter().product::<u64>() as usize;
        Tensor { shape, data: TensorData::F32(vec![0.0; n]) }
    }

    #[test]
    fn accepts_any_batch_and_rejects_bad_shapes_naming_the_input() {
        let specs = [spec("features", vec![Dim::Symbolic("batch".into()), Dim::Fixed(8)])];
        assert!(check_inputs(&specs, &[f32s(vec![1, 8])]).is_ok());
        assert!(check_inputs(&specs, &[f32s(vec![5, 8])]).is_ok());
        let e = check_inputs(&specs, &[f32s(vec![1, 7])]).unwrap_err();
        assert!(e.is_bad_input());
        let text = e.to_string();
        assert!(text.contains("\"features\"") && text.contains("[batch,8]") && text.contains("dimension 1"), "{text}");
        assert!(check_inputs(&specs, &[f32s(vec![8])]).unwrap_err().to_string().contains("rank 1 instead of 2"));
        assert!(check_inputs(&specs, &[f32s(vec![0, 8])]).is_err());
        assert!(matches!(check_inputs(&specs, &[]), Err(InferenceError::InputCount { expected: 1, got: 0, .. })));
    }

    #[test]
    fn rejects_wrong_types_and_lengths() {
        let specs = [spec("features", vec![Dim::Fixed(2)])];
        let ints = Tensor { shape: vec![2], data: TensorData::I64(vec![1, 2]) };
        assert!(matches!(check_inputs(&specs, &[ints]), Err(InferenceError::InputType { got: "i64", .. })));
        let short = Tensor { shape: vec![2], data: TensorData::F32(vec![1.0]) };
        assert!(matches!(check_inputs(&specs, &[short]), Err(InferenceError::InputLength { expected: 2, got: 1, .. })));
    }

    #[test]
    fn a_symbol_has_one_value_across_inputs() {
        let b = || Dim::Symbolic("batch".into());
        let specs = [spec("a", vec![b(), Dim::Fixed(1)]), spec("b", vec![b(), Dim::Fixed(1)])];
        assert!(check_inputs(&specs, &[f32s(vec![3, 1]), f32s(vec![3, 1])]).is_ok());
        let e = check_inputs(&specs, &[f32s(vec![3, 1]), f32s(vec![2, 1])]).unwrap_err().to_string();
        assert!(e.contains("input \"a\" set batch = 3"), "{e}");
    }

    #[test]
    fn arranges_named_inputs() {
        let specs = [spec("a", vec![]), spec("b", vec![])];
        let t = |v: f32| Tensor { shape: vec![], data: TensorData::F32(vec![v]) };
        let named = |n: &str, v| NamedTensor { name: Some(n.into()), tensor: t(v) };
        let unnamed = |v| NamedTensor { name: None, tensor: t(v) };
        assert_eq!(arrange_inputs(&specs, vec![named("b", 2.0), named("a", 1.0)]).unwrap(), vec![t(1.0), t(2.0)]);
        assert_eq!(arrange_inputs(&specs, vec![unnamed(1.0), unnamed(2.0)]).unwrap(), vec![t(1.0), t(2.0)]);
        for bad in [
            vec![named("a", 1.0), unnamed(2.0)],
            vec![named("a", 1.0), named("a", 2.0)],
            vec![named("a", 1.0), named("c", 2.0)],
            vec![named("a", 1.0)],
        ] {
            let e = arrange_inputs(&specs, bad).unwrap_err();
            assert!(matches!(e, InferenceError::InputNames(_)), "{e}");
        }
    }
}
