//! How a tensor splits into batch rows (WIRE.md §4.5), and its values widened into reusable
//! buffers so the per-value work neither matches on the element type nor allocates.

use edgefleet_protocol::tensor::{Tensor, TensorData};

/// `(rows, elements per row)` of `tensor`: the first dimension is the batch when the rank is
/// at least 2; a scalar or a vector is one row.
pub fn row_layout(tensor: &Tensor) -> (usize, usize) {
    let total = tensor.data.len();
    match tensor.shape.split_first() {
        Some((batch, rest)) if !rest.is_empty() => {
            let rows = usize::try_from(*batch).unwrap_or(0);
            if rows == 0 { (0, 0) } else { (rows, total / rows) }
        }
        _ => (1, total),
    }
}

/// Replaces `out` with `data` widened to f64.
pub fn fill_f64(data: &TensorData, out: &mut Vec<f64>) {
    out.clear();
    match data {
        TensorData::F32(v) => out.extend(v.iter().map(|x| f64::from(*x))),
        TensorData::I64(v) => out.extend(v.iter().map(|x| *x as f64)),
        TensorData::I32(v) => out.extend(v.iter().map(|x| f64::from(*x))),
        TensorData::U8(v) => out.extend(v.iter().map(|x| f64::from(*x))),
        TensorData::I8(v) => out.extend(v.iter().map(|x| f64::from(*x))),
        TensorData::Bool(v) => out.extend(v.iter().map(|x| f64::from(u8::from(*x)))),
    }
}

/// `data` as f32 (the sample record format; integers are rounded to the nearest f32).
pub fn to_f32(data: &TensorData) -> Vec<f32> {
    match data {
        TensorData::F32(v) => v.clone(),
        TensorData::I64(v) => v.iter().map(|x| *x as f32).collect(),
        TensorData::I32(v) => v.iter().map(|x| *x as f32).collect(),
        TensorData::U8(v) => v.iter().map(|x| f32::from(*x)).collect(),
        TensorData::I8(v) => v.iter().map(|x| f32::from(*x)).collect(),
        TensorData::Bool(v) => v.iter().map(|x| f32::from(u8::from(*x))).collect(),
    }
}

/// Index and value of the largest non-NaN value of `row` (the first on ties), `None` when
/// the row is empty or all NaN.
pub fn argmax(row: &[f64]) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in row.iter().enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| *v > b) {
            best = Some((i, *v));
        }
    }
    best
}

/// The predicted class of `outputs`' first row: the argmax of the first output's first row.
pub fn predicted_class(outputs: &[Tensor]) -> Option<i64> {
    let first = outputs.first()?;
    let (rows, len) = row_layout(first);
    if rows == 0 {
        return None;
    }
    let mut row = Vec::with_capacity(len);
    fill_f64(&first.data, &mut row);
    row.truncate(len);
    argmax(&row).and_then(|(i, _)| i64::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: Vec<u64>, v: Vec<f32>) -> Tensor {
        Tensor { shape, data: TensorData::F32(v) }
    }

    #[test]
    fn batch_is_the_first_dimension_of_rank_two_and_up() {
        assert_eq!(row_layout(&t(vec![2, 3], vec![0.0; 6])), (2, 3));
        assert_eq!(row_layout(&t(vec![2, 2, 2], vec![0.0; 8])), (2, 4));
        assert_eq!(row_layout(&t(vec![5], vec![0.0; 5])), (1, 5));
        assert_eq!(row_layout(&t(vec![], vec![0.0])), (1, 1));
        assert_eq!(row_layout(&t(vec![0, 3], vec![])), (0, 0));
    }

    #[test]
    fn argmax_takes_the_first_of_equals_and_skips_nan() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), Some((1, 0.7)));
        assert_eq!(argmax(&[f64::NAN, 0.3, f64::NAN, 0.9]), Some((3, 0.9)));
        assert_eq!(argmax(&[f64::NAN]), None);
        assert_eq!(argmax(&[]), None);
        assert_eq!(predicted_class(&[t(vec![2, 3], vec![0.0, 5.0, 1.0, 9.0, 0.0, 0.0])]), Some(1));
    }
}
