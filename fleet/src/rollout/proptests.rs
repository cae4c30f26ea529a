//! Property tests for the rollout state machine (see `mod.rs` for the invariants).
