//! Simulated Edgefleet devices and their sensors, for tests, benchmarks and the demo.
//!
//! - [`vibration`]: a seeded generator of accelerometer windows for rotating machines in known
//!   states (ground truth for scoring models), reduced to feature vectors by the same
//!   [`edgefleet_firmware::features::FeatureWindow`] code the sensor firmware runs.
//! - [`input`]: that sensor as an agent input source.
//! - [`fleet`]: [`fleet::SimFleet`], N real agents in one process with a seeded hardware mix.
//! - [`demo`]: the story `edgefleet-sim demo` tells.
//!
//! ```
//! use edgefleet_sim::vibration::{MachineState, VibrationSource};
//!
//! let mut source = VibrationSource::new(42, MachineState::Imbalance);
//! let (features, truth) = source.next_window();
//! assert_eq!(truth, MachineState::Imbalance);
//! assert_eq!(features.len(), 8);
//! ```

pub mod demo;
pub mod fleet;
pub mod input;
pub mod vibration;
