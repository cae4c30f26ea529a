//! `edgefleet-cross`: how Edgefleet agents are built for device targets.
//!
//! Prints, for each supported device target, the commands that produce the device build of the
//! agent on a machine without Docker (the recipes measured in `shared/PITFALLS.md`): the `dist`
//! profile without default features; on musl targets a static, non-PIE executable
//! (`.cargo/config.toml`). Bundles and provisioning build on this.

use std::process::ExitCode;

/// A device target and how to build for it.
struct Target {
    triple: &'static str,
    devices: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const TARGETS: &[Target] = &[
    Target {
        triple: "aarch64-unknown-linux-musl",
        devices: "Raspberry Pi 4/5 (64-bit), Jetson, i.MX8, RK3588",
        env: &[
            ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld"),
            ("CC_aarch64_unknown_linux_musl", "clang"),
        ],
    },
    Target {
        triple: "armv7-unknown-linux-gnueabihf",
        devices: "Raspberry Pi 2/3 (32-bit), BeagleBone, i.MX6/7",
        env: &[("CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER", "arm-linux-gnueabihf-gcc")],
    },
    Target {
        triple: "x86_64-unknown-linux-musl",
        devices: "industrial PCs, gateways (needs Debian's musl-tools for ring's C code)",
        env: &[],
    },
];

fn main() -> ExitCode {
    let wanted = std::env::args().nth(1);
    if matches!(wanted.as_deref(), Some("-h" | "--help")) {
        println!("usage: edgefleet-cross [TARGET]   print the build recipe for one or every device target");
        return ExitCode::SUCCESS;
    }
    let selected: Vec<&Target> = TARGETS.iter().filter(|t| wanted.as_deref().is_none_or(|w| w == t.triple)).collect();
    if selected.is_empty() {
        eprintln!(
            "unknown target {:?}; supported: {}",
            wanted.unwrap_or_default(),
            TARGETS.iter().map(|t| t.triple).collect::<Vec<_>>().join(", ")
        );
        return ExitCode::from(2);
    }
    for target in selected {
        println!("# {} ({})", target.triple, target.devices);
        println!("rustup target add {}", target.triple);
        let env: String = target.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        // The device build (BENCHMARKS.md, "Agent footprint"): size-optimized profile, no sled.
        println!(
            "{env}cargo build --profile dist --no-default-features --locked -p edgefleet-agent --target {}",
            target.triple
        );
        println!();
    }
    ExitCode::SUCCESS
}
