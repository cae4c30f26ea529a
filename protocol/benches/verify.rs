//! Package verification throughput against `sha256sum` on the same file, same run.
//!
//! `cargo bench -p edgefleet-protocol --bench verify` (set `EDGEFLEET_BENCH_MIB` to change the
//! blob size, default 256). Prints MiB/s for both and the ratio (target: ≥ 0.8).
#![allow(clippy::unwrap_used, missing_docs)]

use ed25519_dalek::SigningKey;
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::{
    DriftReference, FORMAT_VERSION, Lineage, Manifest, TrustStore, Variant, hash_reader, verify_package, write_package,
};
use edgefleet_protocol::tensor::{Dim, ElemType, TensorSpec, Tolerance};
use edgefleet_protocol::{ModelName, PublicKey, SemVer};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::process::Command;
use std::time::Instant;

fn main() {
    let mib: usize = std::env::var("EDGEFLEET_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("blob.onnx");
    {
        let mut out = BufWriter::new(File::create(&blob_path).unwrap());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            out.write_all(&chunk).unwrap();
        }
    }
    let (digest, size) = hash_reader(File::open(&blob_path).unwrap()).unwrap();
    let spec = |name: &str| TensorSpec { name: name.into(), elem: ElemType::F32, shape: vec![Dim::Fixed(1)] };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        name: ModelName::new("bench").unwrap(),
        version_seq: 1,
        label: "1.0.0".into(),
        min_agent_version: SemVer::new(0, 1, 0),
        inputs: vec![spec("x")],
        outputs: vec![spec("y")],
        variants: vec![Variant {
            hardware: HardwareClass::Cpu,
            precision: Precision::Fp32,
            accelerator_kind: None,
            digest,
            size,
            golden_tolerance: Tolerance { abs: 0.0, rel: 0.0 },
        }],
        golden: vec![],
        drift_reference: DriftReference::default(),
        lineage: Lineage::default(),
    };
    let key = SigningKey::from_bytes(&[1; 32]);
    let package_path = dir.path().join("bench.efpkg");
    write_package(
        BufWriter::new(File::create(&package_path).unwrap()),
        &manifest,
        &key,
        &mut [BufReader::new(File::open(&blob_path).unwrap())],
    )
    .unwrap();
    let trust = TrustStore::single("bench", PublicKey(key.verifying_key().to_bytes()));

    // Warm the page cache so both sides read from memory.
    let _ = std::fs::read(&package_path).unwrap();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        verify_package(BufReader::with_capacity(1 << 16, File::open(&package_path).unwrap()), &trust, None).unwrap();
        ours.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let status = Command::new("sha256sum").arg(&package_path).output().unwrap();
        assert!(status.status.success());
        theirs.push(start.elapsed().as_secs_f64());
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let mb = size as f64 / (1024.0 * 1024.0);
    let (ours, theirs) = (mb / best(&ours), mb / best(&theirs));
    println!(
        "package of {mib} MiB: verify_package {ours:.0} MiB/s, sha256sum {theirs:.0} MiB/s, ratio {:.2}",
        ours / theirs
    );
}
