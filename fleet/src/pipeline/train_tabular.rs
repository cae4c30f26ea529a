//! `uses: train-tabular`: trains a softmax (multinomial logistic) regression classifier on a
//! labelled CSV inside the fleet manager, with `smartcore` (L-BFGS), and writes it as ONNX
//! through the ONNX protobuf types tract already links (`tract_onnx::pb`, encoded by `prost`):
//! a pipeline that needs nothing but the `edgefleet` binary.
//!
//! The model is the interface devices run: input `features` float32[batch, M], output
//! `scores` float32[batch, K] (softmax over the classes 0..K-1, K = largest label + 1). The
//! features are standardized for the fit and the scaling is folded into the weights, so devices
//! feed raw values. A class absent from the data gets a bias of -1e9 (probability 0).

use super::evaluate::{Labelled, read_labelled};
use super::runner::{BuiltinCall, BuiltinOutcome};
use prost::Message;
use serde_json::json;
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use std::path::Path;
use tract_onnx::pb;

/// A fitted classifier: `scores = softmax(x · weights + bias)`, `weights` M×K row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Softmax {
    /// Features.
    pub inputs: usize,
    /// Classes.
    pub classes: usize,
    /// M×K, row-major.
    pub weights: Vec<f32>,
    /// K.
    pub bias: Vec<f32>,
}

/// Fits `data` with L2 penalty `alpha`.
pub fn fit(data: &Labelled, alpha: f64) -> Result<Softmax, String> {
    let m = data.rows.first().map_or(0, Vec::len);
    if m == 0 || data.rows.iter().any(|r| r.len() != m) {
        return Err("every row needs the same, non-zero number of features".into());
    }
    let n = data.rows.len() as f64;
    let mean: Vec<f64> = (0..m).map(|j| data.rows.iter().map(|r| r[j] as f64).sum::<f64>() / n).collect();
    let sd: Vec<f64> = (0..m)
        .map(|j| {
            let var = data.rows.iter().map(|r| (r[j] as f64 - mean[j]).powi(2)).sum::<f64>() / n;
            var.sqrt().max(1e-12)
        })
        .collect();
    let scaled: Vec<Vec<f64>> =
        data.rows.iter().map(|r| r.iter().enumerate().map(|(j, v)| (*v as f64 - mean[j]) / sd[j]).collect()).collect();
    let x = DenseMatrix::from_2d_vec(&scaled).map_err(|e| format!("the feature table: {e}"))?;
    let y: Vec<i64> = data.labels.iter().map(|l| *l as i64).collect();
    let present = {
        let mut p = y.clone();
        p.sort_unstable();
        p.dedup();
        p
    };
    if present.len() < 2 {
        return Err(format!("the labels hold {} class(es); a classifier needs at least 2", present.len()));
    }
    let classes = data.labels.iter().max().map_or(0, |l| l + 1);
    let model = LogisticRegression::fit(&x, &y, LogisticRegressionParameters::default().with_alpha(alpha))
        .map_err(|e| format!("fitting: {e}"))?;
    let (coef, intercept) = (model.coefficients(), model.intercept());
    // Logits per present class on standardized inputs; a binary fit has one row (class 1's
    // logit against class 0's zero).
    let logit = |k: usize, j: Option<usize>| -> f64 {
        let (row, scale) = if present.len() == 2 { (0, usize::from(k == 1) as f64) } else { (k, 1.0) };
        scale * j.map_or(*intercept.get((row, 0)), |j| *coef.get((row, j)))
    };
    let mut weights = vec![0f32; m * classes];
    let mut bias = vec![-1e9f32; classes];
    for (k, class) in present.iter().enumerate() {
        let c = *class as usize;
        let mut b = logit(k, None);
        for j in 0..m {
            let w = logit(k, Some(j));
            weights[j * classes + c] = (w / sd[j]) as f32;
            b -= w * mean[j] / sd[j];
        }
        bias[c] = b as f32;
    }
    Ok(Softmax { inputs: m, classes, weights, bias })
}

impl Softmax {
    /// Probabilities for one row.
    pub fn predict(&self, row: &[f32]) -> Vec<f64> {
        let logits: Vec<f64> = (0..self.classes)
            .map(|k| {
                self.bias[k] as f64
                    + row
                        .iter()
                        .enumerate()
                        .map(|(j, v)| *v as f64 * self.weights[j * self.classes + k] as f64)
                        .sum::<f64>()
            })
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        exp.into_iter().map(|e| e / sum).collect()
    }

    /// The ONNX model (opset 13, IR 8): Gemm → Softmax(axis=1).
    pub fn to_onnx(&self, doc: &str) -> Vec<u8> {
        let tensor = |name: &str, dims: Vec<i64>, data: &[f32]| pb::TensorProto {
            name: name.into(),
            dims,
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: data.to_vec(),
            ..Default::default()
        };
        let io = |name: &str, width: usize| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: pb::tensor_proto::DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![
                            pb::tensor_shape_proto::Dimension {
                                value: Some(pb::tensor_shape_proto::dimension::Value::DimParam("batch".into())),
                                ..Default::default()
                            },
                            pb::tensor_shape_proto::Dimension {
                                value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(width as i64)),
                                ..Default::default()
                            },
                        ],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let node = |op: &str, inputs: &[&str], output: &str| pb::NodeProto {
            op_type: op.into(),
            name: op.to_lowercase(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
        let mut softmax = node("Softmax", &["logits"], "scores");
        softmax.attribute.push(pb::AttributeProto {
            name: "axis".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        });
        let graph = pb::GraphProto {
            name: "softmax_regression".into(),
            node: vec![node("Gemm", &["features", "weights", "bias"], "logits"), softmax],
            initializer: vec![
                tensor("weights", vec![self.inputs as i64, self.classes as i64], &self.weights),
                tensor("bias", vec![self.classes as i64], &self.bias),
            ],
            input: vec![io("features", self.inputs)],
            output: vec![io("scores", self.classes)],
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
            producer_name: "edgefleet train-tabular".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec()
    }
}

/// Runs the step (blocking).
pub fn run(call: &BuiltinCall) -> Result<BuiltinOutcome, String> {
    let arg = |k: &str| call.with.get(k).map(String::as_str);
    let Some(out) = call.outputs.get("model") else {
        return Err("train-tabular writes its model to the output `model`: add `outputs: [model]`".into());
    };
    let data = read_labelled(Path::new(arg("data").unwrap_or_default()), arg("label_column"))?;
    let alpha = match arg("alpha") {
        Some(a) => {
            a.parse::<f64>().ok().filter(|a| *a >= 0.0).ok_or_else(|| format!("alpha {a:?}: expected a number ≥ 0"))?
        }
        None => 0.0,
    };
    let model = fit(&data, alpha)?;
    let correct = data
        .rows
        .iter()
        .zip(&data.labels)
        .filter(|(row, label)| {
            let p = model.predict(row);
            p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).is_some_and(|(i, _)| i == **label)
        })
        .count();
    let accuracy = correct as f64 / data.rows.len() as f64;
    let doc =
        format!("softmax regression on {} rows, {} features, {} classes", data.rows.len(), model.inputs, model.classes);
    std::fs::write(out, model.to_onnx(&doc)).map_err(|e| format!("writing the model: {e}"))?;
    let metrics = json!({"train_accuracy": accuracy, "rows": data.rows.len(), "classes": model.classes, "features": model.inputs});
    std::fs::write(call.work.join("metrics.json"), metrics.to_string())
        .map_err(|e| format!("writing metrics.json: {e}"))?;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&call.log) {
        use std::io::Write;
        let _ = writeln!(f, "{doc}: training accuracy {accuracy:.4}");
    }
    Ok(BuiltinOutcome::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::tensor::{Tensor, TensorData};
    use edgefleet_runtime::{Model, TractModel};

    /// Three separable blobs in 2-D, class 3 never seen.
    fn blobs() -> Labelled {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..90 {
            let c = i % 3;
            let jitter = ((i * 37) % 11) as f32 / 20.0;
            let (x, y) = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)][c];
            rows.push(vec![x + jitter, y - jitter]);
            labels.push(if c == 2 { 4 } else { c });
        }
        Labelled { rows, labels }
    }

    #[test]
    fn fits_separable_classes_and_the_onnx_file_runs_in_the_shared_runtime() {
        let data = blobs();
        let model = fit(&data, 0.0).expect("fit");
        assert_eq!((model.inputs, model.classes), (2, 5));
        let bytes = model.to_onnx("test");
        let mut onnx = TractModel::from_bytes(&bytes).expect("tract loads it");
        for (row, label) in data.rows.iter().zip(&data.labels) {
            let ours = model.predict(row);
            let out = onnx.run(&[Tensor { shape: vec![1, 2], data: TensorData::F32(row.clone()) }]).expect("run");
            let TensorData::F32(scores) = &out[0].data else { panic!("float scores") };
            let best = scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
            assert_eq!(best, Some(*label), "row {row:?}");
            for (a, b) in ours.iter().zip(scores) {
                assert!((a - *b as f64).abs() < 1e-4, "{ours:?} vs {scores:?}");
            }
            assert!(scores[3] < 1e-6, "an unseen class gets no probability");
        }
    }

    #[test]
    fn one_class_or_ragged_rows_are_refused() {
        let one = Labelled { rows: vec![vec![1.0], vec![2.0]], labels: vec![0, 0] };
        assert!(fit(&one, 0.0).unwrap_err().contains("at least 2"));
        let ragged = Labelled { rows: vec![vec![1.0], vec![2.0, 3.0]], labels: vec![0, 1] };
        assert!(fit(&ragged, 0.0).is_err());
    }
}
