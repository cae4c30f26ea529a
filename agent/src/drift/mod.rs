//! Drift summaries, ground-truth feedback and raw-record sampling for the served model
//! (WIRE.md §4.5, §4.6, §4.6a; SamplingPolicy §4.8). The label of a sampled inference goes
//! to the fleet: with its sample batch while the batch waits here, on its own afterwards.
//!
//! ```text
//! inference worker thread ── activate / observe ──► DriftHub (behind Drift, a mutex) ◄── feedback ── POST /v1/feedback
//!                                                       │ poll every ¼ window                        feed_inputs (ground truth)
//!                                   drift task ◄────────┘ closed windows, sample batches ──► outbox Drift / Samples streams
//! ```
//!
//! The per-value work runs on the inference worker thread, right after `Model::run`: the
//! inputs and outputs are still borrowed there (no copy), the thread is already off the
//! reactor, and activations pass through the same thread, so every inference is counted in
//! the window of the version that really served it. [`DriftHub`] is a pure state type; the
//! mutex around it is held for one inference's values at a time.
//!
//! Invariants: one open window per served version, starting at its activation (or the end of
//! the previous window) on the device clock; a window closes when `drift_window_ms` has
//! passed, or early when the served version changes, or at shutdown; a window with no rows
//! and no feedback sends nothing. Packages without a drift reference get no summaries, but
//! their inferences still take feedback and are sampled.

mod feedback;
mod hub;
pub mod policy;
pub mod rows;
mod sampler;
mod task;
pub mod tracker;

pub use feedback::{FEEDBACK_CAPACITY, FeedbackLog, Served};
pub use hub::{
    DriftHub, DriftStatus, FeedbackAnswer, LABELS_PER_MESSAGE, LATE_LABELS_CAPACITY, Report, UnknownInference,
};
pub use policy::{Overrides, OverridesFile, Policy, PolicyError};
pub use sampler::{BATCH_BYTES, PendingBatch, Sampler, record_cost};
pub use task::run;
pub use tracker::DriftTracker;

use crate::clock::Clock;
use crate::inference::ModelInfo;
use edgefleet_protocol::drift::DriftReference;
use edgefleet_protocol::tensor::Tensor;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A cheap, cloneable handle on the shared [`DriftHub`].
#[derive(Debug, Clone)]
pub struct Drift {
    hub: Arc<Mutex<DriftHub>>,
    clock: Clock,
}

impl Drift {
    /// Shares `hub`.
    pub fn new(hub: DriftHub) -> Self {
        Self { hub: Arc::new(Mutex::new(hub)), clock: Clock::SYSTEM }
    }

    /// Windows are timed on `clock` instead of the system clock.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// Now, on the clock windows are timed with.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The hub, locked. A panic while it was held leaves plain counters behind, so a
    /// poisoned lock is still used.
    pub fn lock(&self) -> MutexGuard<'_, DriftHub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// See [`DriftHub::activate`].
    pub fn activate(&self, now_ms: u64, info: Option<ModelInfo>, reference: Arc<DriftReference>) {
        self.lock().activate(now_ms, info, reference);
    }

    /// See [`DriftHub::observe`].
    pub fn observe(&self, now_ms: u64, inference_id: u64, inputs: &[Tensor], outputs: &[Tensor]) {
        self.lock().observe(now_ms, inference_id, inputs, outputs);
    }

    /// See [`DriftHub::feedback`].
    pub fn feedback(&self, inference_id: u64, label: i64) -> Result<FeedbackAnswer, UnknownInference> {
        self.lock().feedback(inference_id, label)
    }

    /// See [`DriftHub::status`].
    pub fn status(&self) -> DriftStatus {
        self.lock().status()
    }
}
