//! Drift: statistics on binned summaries, the detector, merging, reference profiles and the
//! offline CSV comparison. Pure code; the fleet manager's server feeds it device summaries.

pub mod compare;
pub mod detector;
pub mod merge;
pub mod profile;
pub mod stats;

pub use detector::{Assessment, DetectorSettings, FeatureStats, Part, Persistence, assess};
pub use merge::Merged;
