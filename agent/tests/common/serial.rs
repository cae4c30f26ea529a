//! The emulated sensor board for serial tests: QEMU running `firmware/boards/mps2-an386`, its
//! UART0 on a Unix socket (`server=on,wait=on`: the firmware waits for us, so no frame is lost
//! before the agent listens), and a relay that copies those bytes into a pseudo-terminal the
//! agent opens with tokio-serial, optionally corrupting frames on the way.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use edgefleet_protocol::serial::{SensorMessage, decode_frame};
use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The board's directory.
pub fn board_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/boards/mps2-an386")
}

/// The board ELF, built (release, locked) if it is not there yet. `None` when QEMU is not
/// installed: the caller skips with a message (`.ci/run` installs it, so CI runs these).
pub fn board_elf() -> Option<PathBuf> {
    if Command::new("qemu-system-arm").arg("--version").stdout(Stdio::null()).status().is_err() {
        eprintln!("SKIPPED: qemu-system-arm is not installed (apt-get install qemu-system-arm qemu-utils)");
        return None;
    }
    let elf = board_dir().join("target/thumbv7em-none-eabihf/release/edgefleet-board-mps2-an386");
    // cargo finds the board's .cargo/config.toml (target, link script) only from its directory.
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked"])
        .current_dir(board_dir())
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .unwrap();
    assert!(status.success(), "building the board binary failed");
    assert!(elf.exists(), "{} missing after the build", elf.display());
    Some(elf)
}

/// A pseudo-terminal whose slave the agent opens (through a symlink that can be re-pointed,
/// the way a USB adapter's /dev/serial/by-id link comes back).
pub struct Pty {
    pub master: std::fs::File,
    slave: OwnedFd,
    pub slave_path: PathBuf,
}

impl Pty {
    pub fn open() -> Self {
        let pty = openpty(None, None).unwrap();
        let slave_path = nix::unistd::ttyname(&pty.slave).unwrap();
        // Raw before any byte arrives: no line discipline may touch a frame.
        let mut termios = tcgetattr(&pty.slave).unwrap();
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).unwrap();
        Self { master: std::fs::File::from(pty.master), slave: pty.slave, slave_path }
    }

    /// Points `link` at this pty's slave.
    pub fn link_at(&self, link: &Path) {
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&self.slave_path, link).unwrap();
    }
}

/// What the relay did to the line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    /// Frames forwarded (whole, as sent).
    pub frames: u64,
    /// `Samples` frames with one byte changed (each must fail its CRC).
    pub flipped: u64,
    /// Noise bursts inserted between frames (each a short frame: one resync, no CRC error).
    pub noise: u64,
}

/// How the relay treats the `Samples` frame with sequence number `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    None,
    /// Flip one data byte (never a COBS code byte, never to zero).
    Flip,
    /// Insert a noise burst `02 11 00` before the frame.
    NoiseBefore,
}

/// QEMU running the board, its UART bridged into `pty`.
pub struct Board {
    child: Child,
    relay: Option<std::thread::JoinHandle<Injected>>,
    _dir: tempfile::TempDir,
}

impl Board {
    /// Boots the board for `frames` feature frames (drift after `drift_after` windows).
    pub fn start(
        elf: &Path,
        frames: u32,
        drift_after: Option<u32>,
        pty: &Pty,
        policy: impl Fn(u32) -> Corruption + Send + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("uart0.sock");
        let mut semihosting = format!("enable=on,target=native,arg=board,arg=frames={frames}");
        if let Some(w) = drift_after {
            semihosting.push_str(&format!(",arg=drift_after={w}"));
        }
        let child = Command::new("qemu-system-arm")
            .args(["-machine", "mps2-an386", "-display", "none", "-monitor", "none"])
            .arg("-chardev")
            .arg(format!("socket,id=uart0,path={},server=on,wait=on", socket.display()))
            .args(["-serial", "chardev:uart0", "-semihosting-config", &semihosting, "-kernel"])
            .arg(elf)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let stream = loop {
            match UnixStream::connect(&socket) {
                Ok(stream) => break stream,
                Err(_) if started.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("QEMU's UART socket did not appear: {e}"),
            }
        };
        let master = pty.master.try_clone().unwrap();
        let relay = std::thread::spawn(move || relay(stream, master, policy));
        Self { child, relay: Some(relay), _dir: dir }
    }

    /// Waits for the firmware to finish; returns its `(windows_sent, frames_sent)` and what
    /// the relay injected.
    pub fn finish(mut self, within: Duration) -> ((u32, u32), Injected) {
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < within, "the board did not finish within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let injected = self.relay.take().unwrap().join().unwrap();
        let field = |name: &str| -> u32 {
            let at = out.find(name).unwrap_or_else(|| panic!("no {name} in the board's output {out:?}"));
            out[at + name.len()..].split_whitespace().next().unwrap().parse().unwrap()
        };
        ((field("windows_sent="), field("frames_sent=")), injected)
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Positions of the COBS code bytes in an encoded frame (without its delimiter).
fn code_positions(frame: &[u8]) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut at = 0;
    while at < frame.len() {
        positions.push(at);
        at += usize::from(frame[at].max(1));
    }
    positions
}

fn relay(mut from: UnixStream, mut to: std::fs::File, policy: impl Fn(u32) -> Corruption) -> Injected {
    let mut injected = Injected::default();
    let mut frame = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return injected,
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            if byte != 0 {
                frame.push(byte);
                continue;
            }
            let mut out = frame.clone();
            let seq = match decode_frame(&mut frame.clone()) {
                Ok(SensorMessage::Samples { seq, .. }) => Some(seq),
                _ => None,
            };
            match seq.map(&policy) {
                Some(Corruption::Flip) => {
                    let codes = code_positions(&out);
                    let at = (1..out.len()).rev().find(|i| !codes.contains(i)).unwrap();
                    out[at] ^= if out[at] == 0x55 { 0xAA } else { 0x55 };
                    injected.flipped += 1;
                }
                Some(Corruption::NoiseBefore) => {
                    out.splice(0..0, [0x02, 0x11, 0x00]);
                    injected.noise += 1;
                }
                _ => {}
            }
            out.push(0);
            injected.frames += 1;
            if to.write_all(&out).is_err() {
                return injected;
            }
            frame.clear();
        }
    }
}
