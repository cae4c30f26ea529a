//! Model deployment on the device: download → verify → install → validate → activate →
//! probation → commit, or roll back.
//!
//! The lifecycle is persisted before each step ([`state::Pending`]), installed versions live in
//! immutable generation directories, and the active version is one atomically replaced pointer
//! ([`generations`]). A SIGKILL at any point therefore leaves the device serving a verified
//! model — the old one, or the new one once its pointer was written — and a restart resumes
//! the deployment where it stopped (downloads continue from their offset). A crash while on
//! probation counts against the new version: the restarted agent rolls it back.

pub mod download;
pub mod fsutil;
pub mod generations;
mod manager;
pub mod state;

pub use manager::{Deployer, DeployerConfig, Outcome, ProbationStats, Runtime, ServedModel, StatusSink};

#[cfg(test)]
mod tests;
