//! Drift, the fleet's one home for it: statistics on binned summaries, the detector, merging,
//! reference profiles and the offline CSV comparison; each device's drift state as the fleet
//! manager keeps it ([`device`]) and the API's views over it ([`views`]). Pure code; the fleet
//! manager's core feeds it device summaries. The CLI's drift commands are in the binary's
//! `cli/drift.rs`.

pub mod compare;
pub mod detector;
pub mod device;
pub mod merge;
pub mod profile;
pub mod stats;
pub mod views;

pub use detector::{Assessment, DetectorSettings, FeatureStats, Part, Persistence, assess};
pub use merge::Merged;
