//! Per-inference latency on the fixture models, three ways, measured in one run:
//! (a) raw tract `SimplePlan::run` (the baseline), (b) edgefleet-runtime's `Model` trait on a
//! `TractModel`, (c) the worker's `InferenceHandle::infer` awaited from async code. Two more
//! raw-tract rows show where the differences come from: a prebuilt input (no copies) and one
//! reused `SimpleState` (what `TractModel` does; `plan.run` spawns a state per call).
//!
//! `cargo bench -p edgefleet-agent --bench inference` (release profile). Variants run in
//! interleaved rounds so clock-frequency drift hits them equally; every call is timed alone
//! and the median and p99 of all calls are reported, with each path's ratio to (a).
#![allow(clippy::unwrap_used)]

use edgefleet_agent::inference::{InferenceStats, InferenceWorker, Model, ModelInfo, TractModel, WorkerConfig};
use edgefleet_protocol::ModelName;
use edgefleet_protocol::tensor::{Tensor, TensorData};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tract_onnx::prelude::{
    Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, Tensor as TractTensor, TypedRunnableModel, tvec,
};

const ROUNDS: usize = 20;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models").join(name)
}

struct Samples {
    name: &'static str,
    nanos: Vec<u64>,
}

impl Samples {
    fn new(name: &'static str) -> Self {
        Self { name, nanos: Vec::new() }
    }

    fn time<T>(&mut self, f: impl FnOnce() -> T) {
        let start = Instant::now();
        black_box(f());
        self.nanos.push(start.elapsed().as_nanos() as u64);
    }

    fn quantile(&mut self, q: f64) -> f64 {
        self.nanos.sort_unstable();
        let index = ((self.nanos.len() - 1) as f64 * q).round() as usize;
        self.nanos[index] as f64 / 1000.0
    }
}

fn raw_plan(path: &Path) -> std::sync::Arc<TypedRunnableModel> {
    tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), [1usize, 8]))
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap()
}

fn bench_model(file: &str, per_round: usize, runtime: &tokio::runtime::Runtime) {
    let path = fixture(file);
    let input: Vec<f32> = (0..8).map(|i| (i as f32 * 0.37).sin()).collect();
    let tensor = Tensor { shape: vec![1, 8], data: TensorData::F32(input.clone()) };

    let plan = raw_plan(&path);
    let mut model = TractModel::load(&path).unwrap();
    let stats = InferenceStats::new();
    let (handle, _worker) = InferenceWorker::spawn(WorkerConfig::default(), stats).unwrap();
    let info = ModelInfo { name: ModelName::new("bench").unwrap(), version_seq: 1, label: "bench".into() };
    runtime.block_on(handle.swap(Box::new(TractModel::load(&path).unwrap()), info)).unwrap();

    // Same numbers on every path.
    let raw_out = plan.run(tvec![TractTensor::from_shape(&[1, 8], &input).unwrap().into()]).unwrap();
    let raw_out = raw_out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
    assert_eq!(model.run(std::slice::from_ref(&tensor)).unwrap()[0].data, TensorData::F32(raw_out.clone()));
    let worker_out = runtime.block_on(handle.infer(vec![tensor.clone()])).unwrap();
    assert_eq!(worker_out.outputs[0].data, TensorData::F32(raw_out));

    let prebuilt: TractTensor = TractTensor::from_shape(&[1, 8], &input).unwrap();
    let mut raw_pure = Samples::new("raw tract: plan.run, prebuilt input tensor");
    let mut raw = Samples::new("(a) raw tract: Vec in -> plan.run -> Vec out");
    let mut raw_state = Samples::new("raw tract: Vec in -> state.run (one state, reused) -> Vec out");
    let mut state = plan.spawn().unwrap();
    let mut trait_path = Samples::new("(b) Model trait: TractModel::run");
    let mut worker = Samples::new("(c) worker: InferenceHandle::infer (async)");
    for _ in 0..ROUNDS {
        for _ in 0..per_round {
            raw_pure.time(|| plan.run(tvec![prebuilt.clone().into()]).unwrap());
        }
        for _ in 0..per_round {
            raw.time(|| {
                let t = TractTensor::from_shape(&[1, 8], &input).unwrap();
                let out = plan.run(tvec![t.into()]).unwrap();
                out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
            });
        }
        for _ in 0..per_round {
            raw_state.time(|| {
                let t = TractTensor::from_shape(&[1, 8], &input).unwrap();
                let out = state.run(tvec![t.into()]).unwrap();
                out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
            });
        }
        for _ in 0..per_round {
            trait_path.time(|| model.run(std::slice::from_ref(&tensor)).unwrap());
        }
        runtime.block_on(async {
            for _ in 0..per_round {
                let start = Instant::now();
                black_box(handle.infer(vec![tensor.clone()]).await.unwrap());
                worker.nanos.push(start.elapsed().as_nanos() as u64);
            }
        });
    }

    let (base_p50, base_p99) = (raw.quantile(0.5), raw.quantile(0.99));
    println!("\n{file}: {} calls per path, single thread", ROUNDS * per_round);
    println!("| path | median µs | p99 µs | median vs (a) | p99 vs (a) |");
    println!("|---|---|---|---|---|");
    for s in [&mut raw_pure, &mut raw, &mut raw_state, &mut trait_path, &mut worker] {
        let (p50, p99) = (s.quantile(0.5), s.quantile(0.99));
        println!("| {} | {p50:.2} | {p99:.2} | {:.3} | {:.3} |", s.name, p50 / base_p50, p99 / base_p99);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    bench_model("vibration_mlp.onnx", 10_000, &runtime);
    bench_model("vibration_mlp_wide.onnx", 1_000, &runtime);
}
