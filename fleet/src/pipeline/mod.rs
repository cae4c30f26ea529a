//! Training pipelines (fleet/PIPELINES.md): the declarative spec and its checks, the `${...}`
//! references, the content-addressed artifact store, the step executors behind [`Executor`]
//! (the local one runs a subprocess per attempt in its own process group; the Ray one submits
//! each attempt as a job to a Ray cluster that shares the fleet manager's filesystem). The runner that
//! schedules a run's steps as a DAG (step cache, retries, persisted run records) comes next and
//! builds on these; it lives here, behind the core, never inside it.

pub mod artifacts;
pub mod executor;
pub mod ray;
pub mod refs;
pub mod spec;
mod yaml;

#[cfg(test)]
mod spec_tests;

pub use executor::{Attempt, Executor, Job, LocalExecutor};
pub use ray::{RayError, RayExecutor};
pub use spec::{PipelineSpec, SpecError, ValidPipeline};
