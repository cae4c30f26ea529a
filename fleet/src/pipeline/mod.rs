//! Training pipelines (fleet/PIPELINES.md): the declarative spec and its checks, the `${...}`
//! references, the content-addressed artifact store, the step executors behind [`Executor`]
//! (the local one runs a subprocess per attempt in its own process group). The runner that
//! schedules a run's steps as a DAG (step cache, retries, persisted run records) comes next and
//! builds on these; it lives here, behind the core, never inside it.

pub mod artifacts;
pub mod executor;
pub mod refs;
pub mod spec;
mod yaml;

#[cfg(test)]
mod spec_tests;

pub use executor::{Attempt, Executor, Job, LocalExecutor};
pub use spec::{PipelineSpec, SpecError, ValidPipeline};
