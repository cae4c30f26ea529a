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

/// Environment variable naming a crash point (fault injection for the crash tests).
pub const CRASH_AT_ENV: &str = "EDGEFLEET_AGENT_CRASH_AT";

/// Fault injection: when [`CRASH_AT_ENV`] names `point`, the process aborts right here — no
/// destructors, no flushes, exactly what a SIGKILL at this instruction leaves behind. Points:
/// `fetched-head`, `mid-blob`, `fetched-blob`, `installed`, `before-switch`, `after-switch`,
/// `activated`, `probation`.
pub(crate) fn crash_point(point: &str) {
    if std::env::var(CRASH_AT_ENV).is_ok_and(|v| v == point) {
        eprintln!("fault injection: aborting at {point}");
        std::process::abort();
    }
}
