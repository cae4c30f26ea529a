//! The JSON tensor format shared by the local API (`POST /v1/infer`) and `edgefleet-agent
//! infer`:
//!
//! ```json
//! {"inputs": [{"name": "features", "shape": [1, 8], "dtype": "f32", "data": [0.1, 0.2, ...]}]}
//! ```
//! `name` is optional (inputs are then taken by position), `dtype` defaults to `f32`, and
//! `data` is flat (C order) or nested arrays. Responses carry
//! `{"outputs": [{"name", "shape", "dtype", "data"}], "model": {...}, "latency_us", "inference_id"}`.

use crate::model::{ModelInfo, NamedTensor, data_type_name};
use edgefleet_protocol::tensor::{Tensor, TensorData};
use serde::ser::{Serialize, Serializer};
use serde::{Deserialize, Serialize as DeriveSerialize};
use serde_json::Value;

/// A request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// One entry per model input.
    pub inputs: Vec<JsonTensor>,
}

/// One input tensor as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonTensor {
    /// Input name (optional: by position when every input omits it).
    #[serde(default)]
    pub name: Option<String>,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// `f32` (default), `f16`, `f64`, `i64`, `i32`, `i16`, `u8`, `i8` or `bool`.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Values: a flat array in C order, or nested arrays.
    pub data: Value,
}

/// A JSON tensor could not be turned into a tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input {input}: {reason}")]
pub struct JsonTensorError {
    /// The input's name, or its position.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl JsonTensor {
    /// Converts to a tensor, checking value types and that `shape` matches the value count.
    pub fn into_named(self, position: usize) -> Result<NamedTensor, JsonTensorError> {
        let input = self.name.as_ref().map_or_else(|| format!("#{position}"), |n| format!("{n:?}"));
        let error = |reason: String| JsonTensorError { input: input.clone(), reason };
        let mut values = Vec::new();
        flatten(self.data, &mut values).map_err(error)?;
        let dtype = self.dtype.as_deref().unwrap_or("f32");
        let data = parse_values(dtype, &values).map_err(error)?;
        let tensor = Tensor { shape: self.shape, data };
        if !tensor.is_consistent() {
            return Err(error(format!("shape {:?} does not hold {} values", tensor.shape, tensor.data.len())));
        }
        Ok(NamedTensor { name: self.name, tensor })
    }
}

impl InferRequest {
    /// Converts every input.
    pub fn into_named(self) -> Result<Vec<NamedTensor>, JsonTensorError> {
        self.inputs.into_iter().enumerate().map(|(i, t)| t.into_named(i)).collect()
    }
}

fn flatten(value: Value, out: &mut Vec<Value>) -> Result<(), String> {
    match value {
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Array(_) => flatten(item, out)?,
                    scalar => out.push(scalar),
                }
            }
            Ok(())
        }
        _ => Err("\"data\" must be an array (flat or nested)".into()),
    }
}

fn parse_values(dtype: &str, values: &[Value]) -> Result<TensorData, String> {
    let float = |i: usize, v: &Value| v.as_f64().ok_or_else(|| format!("data[{i}] = {v} is not a number"));
    let int = |i: usize, v: &Value| v.as_i64().ok_or_else(|| format!("data[{i}] = {v} is not an integer"));
    fn narrow<T: TryFrom<i64>>(i: usize, x: i64, dtype: &str) -> Result<T, String> {
        T::try_from(x).map_err(|_| format!("data[{i}] = {x} does not fit {dtype}"))
    }
    Ok(match dtype {
        "f32" | "f16" | "f64" => TensorData::F32(
            values.iter().enumerate().map(|(i, v)| float(i, v).map(|x| x as f32)).collect::<Result<_, _>>()?,
        ),
        "i64" => TensorData::I64(values.iter().enumerate().map(|(i, v)| int(i, v)).collect::<Result<_, _>>()?),
        "i32" | "i16" => TensorData::I32(
            values.iter().enumerate().map(|(i, v)| narrow(i, int(i, v)?, dtype)).collect::<Result<_, _>>()?,
        ),
        "u8" => TensorData::U8(
            values.iter().enumerate().map(|(i, v)| narrow(i, int(i, v)?, dtype)).collect::<Result<_, _>>()?,
        ),
        "i8" => TensorData::I8(
            values.iter().enumerate().map(|(i, v)| narrow(i, int(i, v)?, dtype)).collect::<Result<_, _>>()?,
        ),
        "bool" => TensorData::Bool(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Bool(b) => Ok(*b),
                    _ => match v.as_i64() {
                        Some(0) => Ok(false),
                        Some(1) => Ok(true),
                        _ => Err(format!("data[{i}] = {v} is not a boolean")),
                    },
                })
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("unknown dtype {other:?} (f32, f16, f64, i64, i32, i16, u8, i8, bool)")),
    })
}

/// One output tensor as JSON.
#[derive(Debug, Clone, DeriveSerialize)]
pub struct JsonOutput {
    /// Output name.
    pub name: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Element type of `data`.
    pub dtype: &'static str,
    /// Values, flat, C order.
    #[serde(serialize_with = "serialize_data")]
    pub data: TensorData,
}

fn serialize_data<S: Serializer>(data: &TensorData, serializer: S) -> Result<S::Ok, S::Error> {
    match data {
        TensorData::F32(v) => v.serialize(serializer),
        TensorData::I64(v) => v.serialize(serializer),
        TensorData::I32(v) => v.serialize(serializer),
        TensorData::U8(v) => v.serialize(serializer),
        TensorData::I8(v) => v.serialize(serializer),
        TensorData::Bool(v) => v.serialize(serializer),
    }
}

/// Names outputs (`output{i}` where the model returned more than it declared).
pub fn json_outputs(outputs: Vec<Tensor>, names: &[String]) -> Vec<JsonOutput> {
    outputs
        .into_iter()
        .enumerate()
        .map(|(i, t)| JsonOutput {
            name: names.get(i).cloned().unwrap_or_else(|| format!("output{i}")),
            shape: t.shape,
            dtype: data_type_name(&t.data),
            data: t.data,
        })
        .collect()
}

/// A response body (the agent fills it from one served inference).
#[derive(Debug, Clone, DeriveSerialize)]
pub struct InferResponse {
    /// One entry per model output.
    pub outputs: Vec<JsonOutput>,
    /// The version that answered.
    pub model: ModelInfo,
    /// Time in the model, µs.
    pub latency_us: u64,
    /// Unique per agent run.
    pub inference_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<NamedTensor>, String> {
        let request: InferRequest = serde_json::from_str(json).map_err(|e| e.to_string())?;
        request.into_named().map_err(|e| e.to_string())
    }

    #[test]
    fn parses_flat_nested_and_typed_inputs() {
        let t = parse(r#"{"inputs":[{"name":"features","shape":[2,2],"data":[[1,2],[3,4.5]]}]}"#).unwrap();
        assert_eq!(t[0].name.as_deref(), Some("features"));
        assert_eq!(t[0].tensor, Tensor { shape: vec![2, 2], data: TensorData::F32(vec![1.0, 2.0, 3.0, 4.5]) });
        let t = parse(
            r#"{"inputs":[{"shape":[3],"dtype":"u8","data":[0,1,255]},{"shape":[],"dtype":"bool","data":[true]}]}"#,
        )
        .unwrap();
        assert_eq!(t[0].tensor.data, TensorData::U8(vec![0, 1, 255]));
        assert_eq!(t[1].tensor.data, TensorData::Bool(vec![true]));
    }

    #[test]
    fn explains_bad_inputs() {
        for (json, reason) in [
            (r#"{"inputs":[{"shape":[2],"data":[1]}]}"#, "does not hold 1 values"),
            (r#"{"inputs":[{"shape":[1],"data":["x"]}]}"#, "not a number"),
            (r#"{"inputs":[{"shape":[1],"dtype":"u8","data":[300]}]}"#, "does not fit u8"),
            (r#"{"inputs":[{"shape":[1],"dtype":"i64","data":[1.5]}]}"#, "not an integer"),
            (r#"{"inputs":[{"shape":[1],"dtype":"c64","data":[1]}]}"#, "unknown dtype"),
            (r#"{"inputs":[{"shape":[1],"data":1}]}"#, "must be an array"),
            (r#"{"inputs":[{"shape":[1],"data":[1],"extra":0}]}"#, "unknown field"),
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.contains(reason), "{json}: {e}");
        }
    }

    #[test]
    fn serializes_outputs() {
        let out = json_outputs(vec![Tensor { shape: vec![1, 2], data: TensorData::F32(vec![0.25, 0.75]) }], &[]);
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json, serde_json::json!([{"name":"output0","shape":[1,2],"dtype":"f32","data":[0.25,0.75]}]));
    }
}
