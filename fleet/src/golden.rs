//! Seeded inputs for golden validation vectors.
//!
//! `package build` runs the reference variant on these inputs with the agent's own inference
//! runtime (`edgefleet_runtime::TractModel`), so the expected outputs come from the exact code
//! that validates them on the device.

use edgefleet_protocol::tensor::{Dim, ElemType, Tensor, TensorData, TensorSpec};

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
