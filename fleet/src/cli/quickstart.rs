//! `edgefleet quickstart`: the shortest path from nothing to a verified signed package, using
//! the example vibration model bundled in the binary.

use anyhow::{Context, Result};
use edgefleet::build::{BuildRequest, ModelArg, build_package};
use edgefleet::keys;
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::{Lineage, ManifestSummary, ReadError, TrustStore, verify_package};
use edgefleet_protocol::{ModelName, SemVer};
use std::fs;
use std::path::Path;

const MODEL_FP32: &[u8] = include_bytes!("../../../fixtures/models/vibration_mlp.onnx");
const MODEL_FP16: &[u8] = include_bytes!("../../../fixtures/models/vibration_mlp_fp16.onnx");

fn verify_bytes(bytes: &[u8], trust: &TrustStore, installed: Option<u64>) -> String {
    match verify_package(bytes, trust, installed) {
        Ok(_) => "accepted".into(),
        Err(ReadError::Invalid(e)) => format!("refused: {e}"),
        Err(ReadError::Io(e)) => format!("I/O error: {e}"),
    }
}

pub(crate) fn run(dir: &Path) -> Result<()> {
    let key_dir = dir.join("keys");
    let model_dir = dir.join("models");
    fs::create_dir_all(&model_dir).with_context(|| format!("creating {}", model_dir.display()))?;

    println!("1. signing key");
    if key_dir.join(keys::SIGNING_KEY_FILE).exists() {
        println!("   reusing {}", key_dir.display());
    } else {
        let key = keys::generate(&key_dir, "quickstart")?;
        println!("   generated key {} in {}", key.key_id, key_dir.display());
    }

    println!("2. models (vibration classifier: 8 features -> 4 machine states)");
    let fp32 = model_dir.join("vibration_mlp.onnx");
    let fp16 = model_dir.join("vibration_mlp_fp16.onnx");
    fs::write(&fp32, MODEL_FP32).with_context(|| format!("writing {}", fp32.display()))?;
    fs::write(&fp16, MODEL_FP16).with_context(|| format!("writing {}", fp16.display()))?;
    println!("   {} (cpu, fp32) and {} (gpu, fp16)", fp32.display(), fp16.display());

    println!("3. build and sign");
    let package = dir.join("vibration-mlp.efpkg");
    let request = BuildRequest {
        name: ModelName::new("vibration-mlp")?,
        version_seq: 1,
        label: "1.0.0".into(),
        models: vec![
            ModelArg { class: HardwareClass::Cpu, precision: Precision::Fp32, path: fp32 },
            ModelArg { class: HardwareClass::Gpu, precision: Precision::Fp16, path: fp16 },
        ],
        key: key_dir.join(keys::SIGNING_KEY_FILE),
        out: package.clone(),
        min_agent_version: SemVer::new(0, 1, 0),
        golden_count: 4,
        tolerance: None,
        accelerator_kind: None,
        drift_reference: None,
        lineage: Lineage { training_run_id: Some("quickstart".into()), ..Lineage::default() },
    };
    let report = build_package(&request)?;
    println!("   {} ({} bytes), package id {}", package.display(), report.size, report.package_id);
    print!("{}", ManifestSummary(&report.manifest));

    println!("4. verify as a device would (trust store {})", key_dir.join(keys::TRUST_STORE_FILE).display());
    let trust = TrustStore::load(&key_dir.join(keys::TRUST_STORE_FILE))?;
    let bytes = fs::read(&package).with_context(|| format!("reading {}", package.display()))?;
    println!("   original package:             {}", verify_bytes(&bytes, &trust, None));
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    println!("   one bit flipped in gpu blob:  {}", verify_bytes(&tampered, &trust, None));
    println!("   device already runs seq 1:    {}", verify_bytes(&bytes, &trust, Some(1)));
    let stranger = TrustStore::default();
    println!("   device trusting another key:  {}", verify_bytes(&bytes, &stranger, None));

    println!();
    println!("Explore further:");
    println!(
        "  cargo run --release --bin edgefleet -- package inspect {} --trust {}",
        package.display(),
        key_dir.join(keys::PUBLIC_KEY_FILE).display()
    );
    println!(
        "  cargo run --release --bin edgefleet-agent -- verify {} --trust {}",
        package.display(),
        key_dir.join(keys::TRUST_STORE_FILE).display()
    );
    println!("  cargo run --release --bin edgefleet -- package build --help");
    println!(
        "  cargo run --release --bin edgefleet -- serve --mqtt-listen 127.0.0.1:1884 --trust-store {}   # then README: \"Run a fleet manager\"",
        key_dir.join(keys::TRUST_STORE_FILE).display()
    );
    Ok(())
}
