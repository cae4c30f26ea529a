//! The emulated sensor board (`firmware/boards/mps2-an386` in `qemu-system-arm`) for fleet
//! tests: built once, run either with its UART0 in a file (frames captured, then decoded here)
//! or on a pty (`-serial pty`) that a real agent reads, as README's walkthrough does.

use edgefleet::drift::profile::numeric_reference;
use edgefleet_protocol::drift::DriftReference;
use edgefleet_protocol::serial::{FrameDecoder, MAX_ENCODED_FRAME_LEN, SensorMessage};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The 8 values of a feature frame, in the order the firmware sends them.
pub const FEATURES: [&str; 8] = ["mean", "mean_square", "variance", "peak", "peak_to_peak", "crest2", "zcr", "mad"];

/// The board's sensor id, from its hello.
pub const SENSOR_ID: &str = "0x03860001";

/// The board ELF, built (release, locked) if it is not there yet. `None` when QEMU is not
/// installed: the caller skips with a message (`.ci/run` installs it, so CI runs these).
pub fn elf() -> Option<PathBuf> {
    if Command::new("qemu-system-arm").arg("--version").stdout(Stdio::null()).status().is_err() {
        eprintln!("SKIPPED: qemu-system-arm is not installed (apt-get install qemu-system-arm qemu-utils)");
        return None;
    }
    let board = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/boards/mps2-an386");
    // cargo finds the board's .cargo/config.toml (target, link script) only from its directory.
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked"])
        .current_dir(&board)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .unwrap();
    assert!(status.success(), "building the board binary failed");
    let elf = board.join("target/thumbv7em-none-eabihf/release/edgefleet-board-mps2-an386");
    assert!(elf.exists(), "{} missing after the build", elf.display());
    Some(elf)
}

fn semihosting(frames: Option<u32>, drift_after: Option<u32>) -> String {
    let mut args = "enable=on,target=native,arg=board".to_string();
    if let Some(n) = frames {
        args.push_str(&format!(",arg=frames={n}"));
    }
    if let Some(w) = drift_after {
        args.push_str(&format!(",arg=drift_after={w}"));
    }
    args
}

fn qemu(elf: &Path, serial: &str, frames: Option<u32>, drift_after: Option<u32>) -> Command {
    let mut command = Command::new("qemu-system-arm");
    command
        .args(["-machine", "mps2-an386", "-display", "none", "-monitor", "none", "-serial", serial])
        .arg("-semihosting-config")
        .arg(semihosting(frames, drift_after))
        .arg("-kernel")
        .arg(elf);
    command
}

/// The board's feature frames (8 values each), `frames` of them, drifted from window
/// `drift_after` on: UART0 into a file, decoded after QEMU exits.
pub fn capture(elf: &Path, frames: u32, drift_after: Option<u32>) -> Vec<Vec<f32>> {
    let dir = tempfile::tempdir().unwrap();
    let line = dir.path().join("uart0.bin");
    let output = qemu(elf, &format!("file:{}", line.display()), Some(frames), drift_after).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let bytes = std::fs::read(line).unwrap();
    let mut decoder = FrameDecoder::<MAX_ENCODED_FRAME_LEN>::new();
    let samples: Vec<Vec<f32>> = decoder
        .feed(&bytes)
        .filter_map(|frame| match frame.unwrap() {
            SensorMessage::Samples { values, .. } => Some(values.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(samples.len(), frames as usize);
    samples
}

/// Feature `i` of every frame.
pub fn column(frames: &[Vec<f32>], i: usize) -> Vec<f64> {
    frames.iter().map(|f| f64::from(f[i])).collect()
}

/// A drift reference profiled from `frames` (what `edgefleet drift profile` makes of them):
/// one numeric feature per frame value, `bins` quantile bins each.
pub fn reference(frames: &[Vec<f32>], bins: usize) -> DriftReference {
    DriftReference {
        features: FEATURES.iter().enumerate().map(|(i, n)| numeric_reference(n, &column(frames, i), bins)).collect(),
        outputs: Vec::new(),
        prediction: None,
        confidence: None,
    }
}

/// The board running with UART0 on a pty (`-serial pty`), the way README runs it; QEMU is
/// killed on drop.
pub struct PtyBoard {
    child: Child,
    /// The pty's slave, from QEMU's "char device redirected to /dev/pts/N".
    pub pty: PathBuf,
}

impl PtyBoard {
    /// Boots the board (endless without `frames`), drifted from window `drift_after` on.
    pub fn start(elf: &Path, frames: Option<u32>, drift_after: Option<u32>) -> Self {
        let mut child =
            qemu(elf, "pty", frames, drift_after).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // QEMU names the pty on stdout (7.2; read stderr too, in case a version moves it), and
        // both keep being drained so the board never blocks on a full pipe.
        let (found_tx, found_rx) = std::sync::mpsc::channel::<PathBuf>();
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [stdout, stderr] {
            let found_tx = found_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("qemu: {line}");
                    if let Some(rest) = line.split("char device redirected to ").nth(1) {
                        let path = rest.split_whitespace().next().unwrap_or_default();
                        let _ = found_tx.send(PathBuf::from(path));
                    }
                }
            });
        }
        let pty = found_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("QEMU did not say which pty it redirected UART0 to");
        Self { child, pty }
    }

    /// Stops QEMU (the board goes silent and its pty disappears).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PtyBoard {
    fn drop(&mut self) {
        self.stop();
    }
}
