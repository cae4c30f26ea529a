//! Training pipelines (fleet/PIPELINES.md): the declarative spec and its checks, the `${...}`
//! references, the content-addressed artifact store, the step executors behind [`Executor`]
//! (the local one runs a subprocess per attempt in its own process group; the Ray one submits
//! each attempt as a job to a Ray cluster that shares the fleet manager's filesystem), the
//! scheduler that runs a run's steps as a DAG ([`runner`]: step cache, retries, timeouts,
//! cancel, a record written at every change) and the service `edgefleet serve` holds
//! ([`service`]: register, run, cancel, resume after a restart). It lives beside the core,
//! never inside it.

pub mod artifacts;
pub mod cache;
pub mod evaluate;
pub mod executor;
pub mod lineage;
pub mod package_step;
pub mod ray;
pub mod record;
pub mod refs;
pub mod runner;
pub mod service;
pub mod spec;
pub mod store;
pub mod train_tabular;
mod yaml;

#[cfg(test)]
mod runner_tests;
#[cfg(test)]
mod spec_tests;

pub use executor::{Attempt, Executor, Job, LocalExecutor};
pub use ray::{RayError, RayExecutor};
pub use record::{PipelineVersion, RunRecord, RunStatus, StepRun, StepStatus};
pub use service::{PipelineError, PipelineService};
pub use spec::{PipelineSpec, SpecError, ValidPipeline};
