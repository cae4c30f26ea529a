//! Frames from the emulated sensor board (firmware/boards/mps2-an386 in qemu-system-arm) move
//! the fleet's drift detector when the simulated part's drift switch turns on: a reference
//! profiled from the board's healthy windows, then the fleet's own `assess` on summaries of
//! later windows (what a device's drift summaries carry): healthy windows are not flagged,
//! drifted ones are.
//!
//! Skipped (with a message) only where qemu-system-arm is missing; `.ci/run` installs it.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::board::{self, column};
use edgefleet::drift::profile::summarize;
use edgefleet::drift::{DetectorSettings, Merged, assess};
use edgefleet_protocol::drift::DriftReference;

fn merged(reference: &DriftReference, frames: &[Vec<f32>]) -> Merged {
    Merged {
        windows: 1,
        rows: frames.len() as u64,
        features: reference
            .features
            .iter()
            .enumerate()
            .map(|(i, r)| summarize(&r.binning, &column(frames, i)))
            .collect(),
        ..Merged::default()
    }
}

#[test]
fn the_board_s_drift_switch_moves_its_features_past_the_fleet_s_detector() {
    // 50 frames/s: 8 s healthy, 4 s drifted.
    let Some(elf) = board::elf() else { return };
    let frames = board::capture(&elf, 600, Some(400));
    let (reference_part, rest) = frames.split_at(200);
    let (healthy, drifted) = rest.split_at(200);
    let reference = board::reference(reference_part, 10);
    let settings = DetectorSettings::default();
    let calm = assess(&reference, &merged(&reference, healthy), &settings);
    let moved = assess(&reference, &merged(&reference, drifted), &settings);
    eprintln!("healthy: drifting={} max_psi={:?}", calm.is_drifting(), calm.max_psi());
    eprintln!("drifted: drifting={} max_psi={:?}", moved.is_drifting(), moved.max_psi());
    assert!(!calm.is_drifting(), "healthy board windows flagged: {calm:?}");
    assert!(moved.is_drifting(), "the drift switch did not move the features: {moved:?}");
    assert!(moved.drifting().count() >= 3);
}
