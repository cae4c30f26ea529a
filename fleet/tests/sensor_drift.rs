//! Frames from the emulated sensor board (firmware/boards/mps2-an386 in qemu-system-arm) move
//! the fleet's drift detector when the simulated part's drift switch turns on: a reference
//! profiled from the board's healthy windows, then the fleet's own `assess` on summaries of
//! later windows (what a device's drift summaries carry): healthy windows are not flagged,
//! drifted ones are.
//!
//! Skipped (with a message) only where qemu-system-arm is missing; `.ci/run` installs it.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet::drift::profile::{numeric_reference, summarize};
use edgefleet::drift::{DetectorSettings, Merged, assess};
use edgefleet_protocol::drift::DriftReference;
use edgefleet_protocol::serial::{FrameDecoder, SensorMessage};
use std::path::Path;
use std::process::{Command, Stdio};

/// Feature frames (8 values each) the board sends: `frames` in all, drifted from `drift_after`.
fn board_frames(frames: u32, drift_after: u32) -> Option<Vec<Vec<f32>>> {
    if Command::new("qemu-system-arm").arg("--version").stdout(Stdio::null()).status().is_err() {
        eprintln!("SKIPPED: qemu-system-arm is not installed (apt-get install qemu-system-arm qemu-utils)");
        return None;
    }
    let board = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/boards/mps2-an386");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked"])
        .current_dir(&board)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .unwrap();
    assert!(status.success());
    let dir = tempfile::tempdir().unwrap();
    let line = dir.path().join("uart0.bin");
    let output = Command::new("qemu-system-arm")
        .args(["-machine", "mps2-an386", "-display", "none", "-monitor", "none", "-serial"])
        .arg(format!("file:{}", line.display()))
        .arg("-semihosting-config")
        .arg(format!("enable=on,target=native,arg=board,arg=frames={frames},arg=drift_after={drift_after}"))
        .arg("-kernel")
        .arg(board.join("target/thumbv7em-none-eabihf/release/edgefleet-board-mps2-an386"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let bytes = std::fs::read(line).unwrap();
    let mut decoder = FrameDecoder::<{ edgefleet_protocol::serial::MAX_ENCODED_FRAME_LEN }>::new();
    let samples: Vec<Vec<f32>> = decoder
        .feed(&bytes)
        .filter_map(|frame| match frame.unwrap() {
            SensorMessage::Samples { values, .. } => Some(values.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(samples.len(), frames as usize);
    Some(samples)
}

fn column(frames: &[Vec<f32>], i: usize) -> Vec<f64> {
    frames.iter().map(|f| f64::from(f[i])).collect()
}

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
    let Some(frames) = board_frames(600, 400) else { return };
    let (reference_part, rest) = frames.split_at(200);
    let (healthy, drifted) = rest.split_at(200);
    let names = ["mean", "mean_square", "variance", "peak", "peak_to_peak", "crest2", "zcr", "mad"];
    let reference = DriftReference {
        features: names.iter().enumerate().map(|(i, n)| numeric_reference(n, &column(reference_part, i), 10)).collect(),
        outputs: Vec::new(),
        prediction: None,
        confidence: None,
    };
    let settings = DetectorSettings::default();
    let calm = assess(&reference, &merged(&reference, healthy), &settings);
    let moved = assess(&reference, &merged(&reference, drifted), &settings);
    eprintln!("healthy: drifting={} max_psi={:?}", calm.is_drifting(), calm.max_psi());
    eprintln!("drifted: drifting={} max_psi={:?}", moved.is_drifting(), moved.max_psi());
    assert!(!calm.is_drifting(), "healthy board windows flagged: {calm:?}");
    assert!(moved.is_drifting(), "the drift switch did not move the features: {moved:?}");
    assert!(moved.drifting().count() >= 3);
}
