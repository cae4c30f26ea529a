//! The inference worker: one dedicated thread owns the active [`Model`] and runs requests in
//! arrival order, so CPU-bound work never blocks the async reactor.
//!
//! Async code holds a cloneable [`InferenceHandle`]; each request travels over a bounded
//! channel (senders wait when it is full: backpressure, not an unbounded queue) and its result
//! comes back on a oneshot. Activation and rollback go through the same channel
//! ([`InferenceHandle::swap`]): every request queued before the swap runs on the old model,
//! every later one on the new, and the previous model is handed back so a rollback can
//! reinstate it without reloading. The thread ends when the last handle is dropped.

use super::stats::{InferenceStats, VersionStats};
use crate::drift::Drift;
use edgefleet_protocol::drift::DriftReference;
use edgefleet_protocol::tensor::Tensor;
use edgefleet_runtime::json::{InferResponse, json_outputs};
use edgefleet_runtime::model::{InferenceError, Model, ModelInfo, NamedTensor, arrange_inputs, check_inputs};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

/// A model together with the version it is.
pub struct LoadedModel {
    /// The runnable model.
    pub model: Box<dyn Model>,
    /// Its identity.
    pub info: ModelInfo,
    /// The package's drift reference (empty: no drift summaries).
    pub drift_reference: Arc<DriftReference>,
}

impl fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModel").field("info", &self.info).finish_non_exhaustive()
    }
}

/// The result of one inference.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceOutcome {
    /// One tensor per model output, in the model's order.
    pub outputs: Vec<Tensor>,
    /// The model's output names, in the same order.
    pub output_names: Arc<[String]>,
    /// Time spent in [`Model::run`], in microseconds.
    pub latency_us: u64,
    /// Unique per agent run, increasing.
    pub inference_id: u64,
    /// The version that produced the outputs.
    pub model: ModelInfo,
}

impl From<InferenceOutcome> for InferResponse {
    fn from(o: InferenceOutcome) -> Self {
        Self {
            outputs: json_outputs(o.outputs, &o.output_names),
            model: o.model,
            latency_us: o.latency_us,
            inference_id: o.inference_id,
        }
    }
}

/// Worker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Requests that may wait for the worker before senders wait too.
    pub queue_capacity: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { queue_capacity: 64 }
    }
}

enum Inputs {
    Ordered(Vec<Tensor>),
    Named(Vec<NamedTensor>),
}

type Reply<T> = oneshot::Sender<T>;

enum Request {
    Infer { inputs: Inputs, reply: Reply<Result<InferenceOutcome, InferenceError>> },
    Swap { next: Option<LoadedModel>, reply: Reply<Option<LoadedModel>> },
}

/// A cheap, cloneable way to reach the inference worker from async code.
#[derive(Debug, Clone)]
pub struct InferenceHandle {
    request_tx: mpsc::Sender<Request>,
    active_rx: watch::Receiver<Option<ModelInfo>>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Infer { .. } => f.write_str("Infer"),
            Request::Swap { next, .. } => f.debug_struct("Swap").field("next", next).finish_non_exhaustive(),
        }
    }
}

impl InferenceHandle {
    /// Runs `inputs` (in the model's input order) on the active model.
    pub async fn infer(&self, inputs: Vec<Tensor>) -> Result<InferenceOutcome, InferenceError> {
        self.request(Inputs::Ordered(inputs)).await
    }

    /// Runs inputs matched to the model's inputs by name (all named) or position (none named).
    pub async fn infer_named(&self, inputs: Vec<NamedTensor>) -> Result<InferenceOutcome, InferenceError> {
        self.request(Inputs::Named(inputs)).await
    }

    async fn request(&self, inputs: Inputs) -> Result<InferenceOutcome, InferenceError> {
        let (reply, reply_rx) = oneshot::channel();
        self.request_tx.send(Request::Infer { inputs, reply }).await.map_err(|_| InferenceError::WorkerStopped)?;
        reply_rx.await.map_err(|_| InferenceError::WorkerStopped)?
    }

    /// Makes `model` the active one after every request already queued, and returns the
    /// previous model (keep it to roll back without reloading).
    pub async fn swap(&self, model: Box<dyn Model>, info: ModelInfo) -> Result<Option<LoadedModel>, InferenceError> {
        self.swap_loaded(LoadedModel { model, info, drift_reference: Arc::default() }).await
    }

    /// Like [`Self::swap`], with the package's drift reference (its inferences are then
    /// summarized when the worker was spawned with a [`Drift`]).
    pub async fn swap_loaded(&self, loaded: LoadedModel) -> Result<Option<LoadedModel>, InferenceError> {
        self.replace(Some(loaded)).await
    }

    /// Stops serving: later requests fail with [`InferenceError::NoModel`]. Returns the model.
    pub async fn unload(&self) -> Result<Option<LoadedModel>, InferenceError> {
        self.replace(None).await
    }

    async fn replace(&self, next: Option<LoadedModel>) -> Result<Option<LoadedModel>, InferenceError> {
        let (reply, reply_rx) = oneshot::channel();
        self.request_tx.send(Request::Swap { next, reply }).await.map_err(|_| InferenceError::WorkerStopped)?;
        reply_rx.await.map_err(|_| InferenceError::WorkerStopped)
    }

    /// The version being served now.
    pub fn active(&self) -> Option<ModelInfo> {
        self.active_rx.borrow().clone()
    }

    /// Watches activations (for example to report them upstream).
    pub fn subscribe(&self) -> watch::Receiver<Option<ModelInfo>> {
        self.active_rx.clone()
    }
}

/// The worker thread. Dropping this detaches the thread; it still ends when the last
/// [`InferenceHandle`] is dropped.
#[derive(Debug)]
pub struct InferenceWorker {
    thread: JoinHandle<()>,
}

impl InferenceWorker {
    /// Starts the worker with no model loaded; counters go to `stats`.
    pub fn spawn(config: WorkerConfig, stats: Arc<InferenceStats>) -> std::io::Result<(InferenceHandle, Self)> {
        Self::spawn_with_drift(config, stats, None)
    }

    /// Like [`Self::spawn`]; every activation and successful inference also goes to `drift`
    /// (on this thread, right after `Model::run`: see [`crate::drift`]).
    pub fn spawn_with_drift(
        config: WorkerConfig,
        stats: Arc<InferenceStats>,
        drift: Option<Drift>,
    ) -> std::io::Result<(InferenceHandle, Self)> {
        let (request_tx, request_rx) = mpsc::channel(config.queue_capacity.max(1));
        let (active_tx, active_rx) = watch::channel(None);
        let state = WorkerState { current: None, stats, active_tx, last_id: 0, drift };
        let thread =
            std::thread::Builder::new().name("edgefleet-inference".into()).spawn(move || state.run(request_rx))?;
        Ok((InferenceHandle { request_tx, active_rx }, Self { thread }))
    }

    /// Waits for the thread to end (after every handle was dropped).
    pub fn join(self) {
        // A panic inside a model is caught per request, so the thread itself does not panic.
        let _ = self.thread.join();
    }
}

struct Current {
    loaded: LoadedModel,
    output_names: Arc<[String]>,
    stats: Arc<VersionStats>,
}

struct WorkerState {
    current: Option<Current>,
    stats: Arc<InferenceStats>,
    active_tx: watch::Sender<Option<ModelInfo>>,
    last_id: u64,
    drift: Option<Drift>,
}

impl WorkerState {
    fn run(mut self, mut request_rx: mpsc::Receiver<Request>) {
        while let Some(request) = request_rx.blocking_recv() {
            match request {
                Request::Infer { inputs, reply } => {
                    if reply.is_closed() {
                        continue; // the caller gave up: do not spend the CPU
                    }
                    let _ = reply.send(self.infer(inputs));
                }
                Request::Swap { next, reply } => {
                    let _ = reply.send(self.swap(next));
                }
            }
        }
        tracing::debug!("inference worker stopped: every handle was dropped");
    }

    fn swap(&mut self, next: Option<LoadedModel>) -> Option<LoadedModel> {
        let info = next.as_ref().map(|n| n.info.clone());
        if let Some(drift) = &self.drift {
            let reference = next.as_ref().map(|n| n.drift_reference.clone()).unwrap_or_default();
            drift.activate(drift.now_ms(), info.clone(), reference);
        }
        let version_stats = self.stats.activate(info.as_ref());
        let previous = self.current.take().map(|c| c.loaded);
        self.current = next.zip(version_stats).map(|(loaded, stats)| Current {
            output_names: loaded.model.outputs().iter().map(|s| s.name.clone()).collect(),
            loaded,
            stats,
        });
        match &info {
            Some(i) => {
                tracing::info!(model = %i.name, version_seq = i.version_seq, label = %i.label, "model activated")
            }
            None => tracing::info!("model unloaded"),
        }
        self.active_tx.send_replace(info);
        previous
    }

    fn infer(&mut self, inputs: Inputs) -> Result<InferenceOutcome, InferenceError> {
        let current = self.current.as_mut().ok_or(InferenceError::NoModel)?;
        let checked = match inputs {
            Inputs::Ordered(v) => Ok(v),
            Inputs::Named(v) => arrange_inputs(current.loaded.model.inputs(), v),
        }
        .and_then(|v| check_inputs(current.loaded.model.inputs(), &v).map(|()| v));
        let inputs = checked.inspect_err(|_| current.stats.record_rejected())?;

        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| current.loaded.model.run(&inputs)));
        let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let result = result.unwrap_or_else(|panic| {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(InferenceError::Run {
                model: current.loaded.info.name.to_string(),
                reason: format!("panicked: {reason}"),
            })
        });
        match result {
            Ok(outputs) => {
                current.stats.record_success(latency_us);
                self.last_id += 1;
                if let Some(drift) = &self.drift {
                    drift.observe(drift.now_ms(), self.last_id, &inputs, &outputs);
                }
                Ok(InferenceOutcome {
                    outputs,
                    output_names: current.output_names.clone(),
                    latency_us,
                    inference_id: self.last_id,
                    model: current.loaded.info.clone(),
                })
            }
            Err(e) => {
                if e.is_bad_input() {
                    current.stats.record_rejected();
                } else {
                    current.stats.record_error();
                    tracing::warn!(model = %current.loaded.info.name, error = %e, "inference failed");
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::model::FnModel;
    use edgefleet_protocol::ModelName;
    use edgefleet_protocol::tensor::{Dim, ElemType, TensorData, TensorSpec};

    fn info(seq: u64) -> ModelInfo {
        ModelInfo { name: ModelName::new("fake").unwrap(), version_seq: seq, label: format!("{seq}.0") }
    }

    /// Multiplies its one f32 input by `factor`.
    fn scale(factor: f32) -> Box<dyn Model> {
        let spec = |n: &str| TensorSpec { name: n.into(), elem: ElemType::F32, shape: vec![Dim::Fixed(2)] };
        Box::new(FnModel::new(vec![spec("x")], vec![spec("y")], move |inputs: &[Tensor]| {
            let TensorData::F32(v) = &inputs[0].data else { unreachable!("checked by the worker") };
            if v[0].is_nan() {
                return Err(InferenceError::Run { model: "fake".into(), reason: "NaN".into() });
            }
            if v[0] < 0.0 {
                panic!("negative input");
            }
            Ok(vec![Tensor { shape: vec![2], data: TensorData::F32(v.iter().map(|x| x * factor).collect()) }])
        }))
    }

    fn x(a: f32) -> Vec<Tensor> {
        vec![Tensor { shape: vec![2], data: TensorData::F32(vec![a, 1.0]) }]
    }

    #[tokio::test]
    async fn serves_swaps_and_rolls_back() {
        let stats = InferenceStats::new();
        let (handle, worker) = InferenceWorker::spawn(WorkerConfig::default(), stats.clone()).unwrap();
        assert!(matches!(handle.infer(x(1.0)).await, Err(InferenceError::NoModel)));
        assert!(handle.swap(scale(2.0), info(1)).await.unwrap().is_none());
        let out = handle.infer(x(3.0)).await.unwrap();
        assert_eq!(out.outputs[0].data, TensorData::F32(vec![6.0, 2.0]));
        assert_eq!((out.model.version_seq, out.inference_id, &*out.output_names), (1, 1, &["y".to_string()][..]));

        let previous = handle.swap(scale(10.0), info(2)).await.unwrap().unwrap();
        assert_eq!(handle.active(), Some(info(2)));
        let out = handle.infer(x(3.0)).await.unwrap();
        assert_eq!((out.outputs[0].data.to_f64()[0], out.inference_id), (30.0, 2));

        // Rollback: reinstate the old model object, no reload.
        handle.swap(previous.model, previous.info).await.unwrap();
        assert_eq!(handle.infer(x(3.0)).await.unwrap().model.version_seq, 1);

        let snap = stats.snapshot();
        let v1 = snap.models.iter().find(|m| m.model.version_seq == 1).unwrap();
        assert_eq!((v1.inference_count, v1.active), (2, true));
        handle.unload().await.unwrap();
        assert!(matches!(handle.infer(x(3.0)).await, Err(InferenceError::NoModel)));
        drop(handle);
        worker.join();
    }

    #[tokio::test]
    async fn errors_and_panics_are_counted_and_the_worker_survives() {
        let stats = InferenceStats::new();
        let (handle, _worker) = InferenceWorker::spawn(WorkerConfig::default(), stats.clone()).unwrap();
        handle.swap(scale(1.0), info(1)).await.unwrap();
        assert!(matches!(handle.infer(x(f32::NAN)).await, Err(InferenceError::Run { .. })));
        let e = handle.infer(x(-1.0)).await.unwrap_err();
        assert!(e.to_string().contains("panicked: negative input"), "{e}");
        let bad = vec![Tensor { shape: vec![3], data: TensorData::F32(vec![0.0; 3]) }];
        assert!(handle.infer(bad).await.unwrap_err().is_bad_input());
        let named = vec![NamedTensor { name: Some("nope".into()), tensor: x(1.0).remove(0) }];
        assert!(handle.infer_named(named).await.unwrap_err().is_bad_input());
        assert!(handle.infer(x(1.0)).await.is_ok());
        let v = &stats.snapshot().models[0];
        assert_eq!((v.inference_count, v.error_count, v.rejected_count), (3, 2, 2));
    }

    #[tokio::test]
    async fn many_concurrent_callers_through_a_small_queue() {
        let (handle, _worker) =
            InferenceWorker::spawn(WorkerConfig { queue_capacity: 2 }, InferenceStats::new()).unwrap();
        handle.swap(scale(1.0), info(1)).await.unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let h = handle.clone();
                tokio::spawn(async move { h.infer(x(i as f32)).await.map(|o| o.outputs[0].data.to_f64()[0]) })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), i as f64);
        }
    }
}
