//! Simulated Edgefleet devices and their sensors, for tests, benchmarks and the demo.
//!
//! So far: [`vibration`], a seeded generator of accelerometer windows for rotating machines in
//! known states (ground truth for scoring models), reduced to feature vectors by the same
//! [`edgefleet_firmware::features::FeatureWindow`] code the sensor firmware runs. Simulated
//! fleets (`SimFleet`) build on it.
//!
//! ```
//! use edgefleet_sim::vibration::{MachineState, VibrationSource};
//!
//! let mut source = VibrationSource::new(42, MachineState::Imbalance);
//! let (features, truth) = source.next_window();
//! assert_eq!(truth, MachineState::Imbalance);
//! assert_eq!(features.len(), 8);
//! ```

pub mod vibration;
