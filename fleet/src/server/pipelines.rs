//! Wires the pipeline service ([`crate::pipeline`]) into `edgefleet serve`: its audit entries
//! go to the core in order, its `package` step pushes through the same path as `model push`,
//! its artifacts live under the data directory, its executor is the configured one.

use super::config::{ExecutorChoice, PipelinesConfig};
use super::core::Input;
use super::models::Push;
use super::requests::{ApiRequest, ask_core};
use crate::dataset::DatasetStore;
use crate::pipeline::artifacts::DirStore;
use crate::pipeline::executor::AnyExecutor;
use crate::pipeline::package_step::{PackageStep, ensure_signing_key};
use crate::pipeline::record::DatasetRef;
use crate::pipeline::runner::{Backoff, BuiltinCall, BuiltinFuture, Builtins, Runner};
use crate::pipeline::service::{AuditSink, DatasetLookup, PipelineService};
use crate::pipeline::store::PipelineStore;
use crate::pipeline::{LocalExecutor, evaluate, train_tabular};
use edgefleet_protocol::Digest;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tracing::{info, warn};

/// The service as `serve` holds it.
pub type Pipelines = PipelineService<AnyExecutor>;

/// Audit entries forwarded to the core one at a time, in the order they were made.
struct CoreAudit {
    tx: mpsc::UnboundedSender<ApiRequest>,
}

impl AuditSink for CoreAudit {
    fn record(&self, actor: &str, action: &str, subject: String, detail: Value) {
        let _ =
            self.tx.send(ApiRequest::Record { actor: actor.to_string(), action: action.to_string(), subject, detail });
    }
}

/// The fleet manager's built-in steps.
struct FleetBuiltins {
    package: PackageStep,
}

impl Builtins for FleetBuiltins {
    fn run(&self, call: BuiltinCall) -> BuiltinFuture<'_> {
        Box::pin(async move {
            match call.uses.as_str() {
                "package" => self.package.run(call).await,
                "evaluate" => tokio::task::spawn_blocking(move || evaluate::run(&call))
                    .await
                    .map_err(|e| format!("the evaluation's thread failed: {e}"))?,
                "train-tabular" => tokio::task::spawn_blocking(move || train_tabular::run(&call))
                    .await
                    .map_err(|e| format!("the training's thread failed: {e}"))?,
                other => Err(format!("unknown built-in {other:?}")),
            }
        })
    }
}

/// Dataset inputs, from the fleet's dataset store. Every resolve re-reads the data and
/// re-computes the dataset digest from it, so a run (and lineage) never trusts a manifest whose
/// content has changed.
struct Datasets {
    data_dir: std::path::PathBuf,
}

impl DatasetLookup for Datasets {
    fn resolve(&self, name: &str, version: &str) -> Result<(DatasetRef, Digest), String> {
        let store = DatasetStore::open(&self.data_dir).map_err(|e| e.to_string())?;
        let found = store.resolve(name, version).map_err(|e| e.to_string())?;
        let bytes = store.read_data(&found).map_err(|e| e.to_string())?;
        let snap = crate::dataset::snapshot::snapshot(&bytes).map_err(|e| format!("{}: {e}", found.label()))?;
        let digest = snap.digest;
        if digest != found.digest {
            return Err(format!(
                "{}: its data re-hashes to dataset digest {digest}, not the {} its manifest records",
                found.label(),
                found.digest
            ));
        }
        Ok((DatasetRef { name: found.name, version: found.version, digest: found.digest }, found.data))
    }
}

/// Starts the pipeline service: makes the signing key if needed, resumes the runs a stopped
/// fleet manager left unfinished.
pub fn start(cfg: &PipelinesConfig, data_dir: &Path, push: Push) -> anyhow::Result<Arc<Pipelines>> {
    let public = ensure_signing_key(&cfg.signing_key).map_err(anyhow::Error::msg)?;
    info!(signing_key = %cfg.signing_key.display(), public_key = %public.display(), "pipeline signing key");
    let (tx, mut rx) = mpsc::unbounded_channel::<ApiRequest>();
    let inputs: mpsc::Sender<Input> = push.inputs.clone();
    tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            if let Err(e) = ask_core(&inputs, request).await {
                warn!(error = %e, "a pipeline audit entry was not recorded");
            }
        }
    });
    let executor = match &cfg.executor {
        ExecutorChoice::Local => AnyExecutor::Local(LocalExecutor),
        ExecutorChoice::Ray { address } => {
            info!(%address, "pipeline steps run as jobs on the Ray cluster (it must share this machine's filesystem)");
            AnyExecutor::Ray(crate::pipeline::RayExecutor::new(address))
        }
    };
    let runner = Runner {
        store: Arc::new(PipelineStore::open(data_dir)),
        artifacts: Arc::new(DirStore::new(data_dir.join("artifacts"))),
        executor: Arc::new(executor),
        builtins: Arc::new(FleetBuiltins { package: PackageStep { push, signing_key: cfg.signing_key.clone() } }),
        slots: Arc::new(Semaphore::new(cfg.concurrency)),
        backoff: Backoff::DEFAULT,
    };
    let service = PipelineService::new(
        runner,
        Arc::new(CoreAudit { tx }),
        Arc::new(Datasets { data_dir: data_dir.to_path_buf() }),
    );
    let resumed = service.recover()?;
    if !resumed.is_empty() {
        info!(runs = ?resumed, "resumed pipeline runs left unfinished by the last fleet manager");
    }
    Ok(service)
}
