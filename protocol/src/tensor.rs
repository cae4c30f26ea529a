//! Tensor schemas and small tensors (golden validation vectors, local API payloads).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Element type of a tensor. Wire form: varint variant index in declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElemType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 64-bit float.
    F64,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Boolean.
    Bool,
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ElemType::F32 => "f32",
            ElemType::F16 => "f16",
            ElemType::F64 => "f64",
            ElemType::I8 => "i8",
            ElemType::U8 => "u8",
            ElemType::I16 => "i16",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
            ElemType::Bool => "bool",
        };
        f.write_str(name)
    }
}

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    /// A fixed size.
    Fixed(u64),
    /// A named size chosen at run time (for example `batch`).
    Symbolic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

/// A named model input or output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The graph's name for it.
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Shape, outermost first.
    pub shape: Vec<Dim>,
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}[", self.name, self.elem)?;
        for (i, dim) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{dim}")?;
        }
        f.write_str("]")
    }
}

/// Tensor values, row-major. Wire form: varint variant index, then a postcard sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TensorData {
    /// 32-bit floats (also carries f16 model I/O, widened).
    F32(Vec<f32>),
    /// 64-bit signed integers.
    I64(Vec<i64>),
    /// 32-bit signed integers.
    I32(Vec<i32>),
    /// Unsigned bytes.
    U8(Vec<u8>),
    /// Signed bytes.
    I8(Vec<i8>),
    /// Booleans.
    Bool(Vec<bool>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values widened to f64, for comparisons.
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            TensorData::F32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::I64(v) => v.iter().map(|x| *x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::U8(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::I8(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::Bool(v) => v.iter().map(|x| f64::from(u8::from(*x))).collect(),
        }
    }
}

/// A concrete tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Concrete shape, outermost first. The product equals the number of values.
    pub shape: Vec<u64>,
    /// Values, row-major.
    pub data: TensorData,
}

impl Tensor {
    /// True when the shape's element count matches the data length.
    pub fn is_consistent(&self) -> bool {
        let mut count: u64 = 1;
        for dim in &self.shape {
            match count.checked_mul(*dim) {
                Some(c) => count = c,
                None => return false,
            }
        }
        count == self.data.len() as u64
    }
}

/// How close an actual output must be to the expected one: element-wise
/// `|actual - expected| <= abs + rel * |expected|`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub abs: f32,
    /// Relative tolerance.
    pub rel: f32,
}

/// How far an output is from its expected value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Comparison {
    /// Every element within tolerance; the largest absolute difference.
    Within {
        /// Largest absolute difference.
        max_abs_diff: f64,
    },
    /// Some element outside tolerance (or shapes differ, or a NaN appeared).
    Outside {
        /// Largest absolute difference (infinite for a shape mismatch or NaN).
        max_abs_diff: f64,
    },
}

impl Tolerance {
    /// Compares `actual` with `expected`.
    pub fn compare(&self, expected: &Tensor, actual: &Tensor) -> Comparison {
        let (e, a) = (expected.data.to_f64(), actual.data.to_f64());
        if expected.shape != actual.shape || e.len() != a.len() {
            return Comparison::Outside { max_abs_diff: f64::INFINITY };
        }
        let mut max_abs_diff = 0.0f64;
        let mut within = true;
        for (e, a) in e.iter().zip(&a) {
            let diff = (a - e).abs();
            if diff.is_nan() {
                return Comparison::Outside { max_abs_diff: f64::INFINITY };
            }
            max_abs_diff = max_abs_diff.max(diff);
            if diff > f64::from(self.abs) + f64::from(self.rel) * e.abs() {
                within = false;
            }
        }
        if within { Comparison::Within { max_abs_diff } } else { Comparison::Outside { max_abs_diff } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn tolerance_compares_elementwise() {
        let t = |v: Vec<f32>| Tensor { shape: vec![1, v.len() as u64], data: TensorData::F32(v) };
        let tol = Tolerance { abs: 1e-3, rel: 0.0 };
        assert!(matches!(tol.compare(&t(vec![1.0, 2.0]), &t(vec![1.0005, 2.0])), Comparison::Within { .. }));
        assert!(matches!(tol.compare(&t(vec![1.0, 2.0]), &t(vec![1.01, 2.0])), Comparison::Outside { .. }));
        assert!(matches!(tol.compare(&t(vec![1.0]), &t(vec![f32::NAN])), Comparison::Outside { .. }));
        assert!(matches!(tol.compare(&t(vec![1.0]), &t(vec![1.0, 2.0])), Comparison::Outside { .. }));
    }
}
