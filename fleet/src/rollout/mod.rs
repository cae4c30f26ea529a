//! The rollout controller as pure code: a staged rollout of one model version to a set of
//! devices, gated by health evidence, written as `handle(event) -> actions` with no I/O, clocks
//! or sockets.
//!
//! - [`plan`]: the operator's plan (stages, bake, gate thresholds) and its text forms.
//! - [`stats`]: Wilson score bounds the gates decide on.
//! - [`machine`]: the [`Rollout`] state machine, one track per hardware class.
//!
//! Invariants (each held by a property test in `proptests.rs`): a track never has more
//! devices dispatched than its current stage's share; a track whose gate failed never promotes
//! again; every event is idempotent; replaying the event log rebuilds the same state.

pub mod machine;
pub mod plan;
pub mod stats;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use machine::{
    Action, CohortFigures, Cohorts, DeviceState, Event, GateEvidence, HealthEvidence, HealthVerdict, HoldReason,
    PauseReason, Rollout, RolloutError, RolloutId, RolloutStatus, Target, TrackPhase,
};
pub use plan::{HealthGate, OnFail, PlanError, RolloutPlan};
