//! Simulated Edgefleet devices and their sensors, for tests, benchmarks and the demo.
//!
//! - [`vibration`]: a seeded generator of accelerometer windows for rotating machines in known
//!   states (ground truth for scoring models), reduced to feature vectors by the same
//!   [`edgefleet_firmware::features::FeatureWindow`] code the sensor firmware runs, plus one
//!   state the example model never saw (looseness, label 4).
//! - [`drift`]: drift scenarios (gradual, sudden, new state, stuck sensor, noisy sensor), which
//!   devices they affect and from when; pure and seeded, driven by an injected elapsed time.
//! - [`training`]: the reference "training data" rows the baseline model's drift reference is
//!   built from (the undrifted fleet's distribution).
//! - [`reference`](mod@reference): the baseline model's drift reference from those rows (inputs, scores,
//!   predicted class, confidence), as a training pipeline would build it.
//! - [`input`]: that sensor as an agent input source, with ground-truth labels for a seeded
//!   fraction of windows; a fleet's devices are monitoring stations that see machines drawn
//!   from the training population, one per window.
//! - [`hardware`]: per-class latency profiles and model faults (slow, failing), applied
//!   through the agent's model seam so its own measurements see them.
//! - [`network`]: a per-device TCP relay that cuts a device's network for a while, or
//!   corrupts and drops the package chunks sent to it.
//! - [`fleet`]: [`fleet::SimFleet`], N real agents in one process with a seeded hardware mix
//!   and an optional drift plan.
//! - [`api`]: the fleet manager's HTTP API from async code.
//! - [`demo`]: the story `edgefleet-sim demo` tells.
//!
//! ```
//! use edgefleet_sim::drift::{DriftScenario, DriftingSource};
//! use edgefleet_sim::vibration::{MachineState, VibrationSource};
//! use std::time::Duration;
//!
//! let mut source = VibrationSource::new(42, MachineState::Imbalance);
//! let (features, truth) = source.next_window();
//! assert_eq!(truth, MachineState::Imbalance);
//! assert_eq!(features.len(), 8);
//!
//! // The same machine developing a fault the model never saw, 30 s in.
//! let mut drifting = DriftingSource::new(42, MachineState::Imbalance)
//!     .with_drift(DriftScenario::NewState, Duration::from_secs(30));
//! assert_eq!(drifting.next_window_at(Duration::from_secs(29)).1, MachineState::Imbalance);
//! assert_eq!(drifting.next_window_at(Duration::from_secs(30)).1.class_index(), 4);
//! ```

pub mod api;
pub mod demo;
pub mod drift;
pub mod fleet;
pub mod hardware;
pub mod input;
pub mod network;
pub mod reference;
pub mod training;
pub mod vibration;
