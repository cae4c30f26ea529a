//! `edgefleet-agent verify` as an operator runs it: the committed fixture package (built by
//! `edgefleet package build` from the committed ONNX models), and every tampering class
//! refused with its own reason and exit code 1.
#![allow(clippy::unwrap_used, missing_docs)]

use ed25519_dalek::SigningKey;
use edgefleet_protocol::PublicKey;
use edgefleet_protocol::package::{HEADER_LEN, PackageHead, SIGNATURE_BLOCK_LEN, TrustStore, sign_manifest};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/packages").join(name)
}

fn package_bytes() -> Vec<u8> {
    std::fs::read(fixture("vibration-mlp-1.efpkg")).unwrap()
}

fn manifest_len(bytes: &[u8]) -> usize {
    u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize
}

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgefleet-agent")).args(args).output().unwrap()
}

fn verify(bytes: &[u8], trust: &Path, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.efpkg");
    std::fs::write(&file, bytes).unwrap();
    let mut args = vec!["verify", file.to_str().unwrap(), "--trust", trust.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = agent(&args);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

fn rejected(bytes: &[u8], trust: &Path, extra: &[&str], reason: &str) {
    let (code, output) = verify(bytes, trust, extra);
    assert_eq!(code, 1, "expected rejection ({reason}), got:\n{output}");
    assert!(output.contains(reason), "expected {reason:?} in:\n{output}");
}

fn flipped(at: usize) -> Vec<u8> {
    let mut bytes = package_bytes();
    bytes[at] ^= 0x01;
    bytes
}

#[test]
fn fixture_package_verifies() {
    let (code, output) = verify(&package_bytes(), &fixture("fixture.pub"), &[]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("OK"), "{output}");
    assert!(output.contains("vibration-mlp 1.0.0 (version seq 1)"), "{output}");
    assert!(output.contains("features: f32[batch,8]"), "{output}");

    let (code, json) = verify(&package_bytes(), &fixture("fixture.pub"), &["--json"]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["valid"], true);
    assert_eq!(value["manifest"]["variants"].as_array().unwrap().len(), 2);
}

#[test]
fn each_tampering_class_has_its_reason() {
    let trust = fixture("fixture.pub");
    let bytes = package_bytes();
    let m = manifest_len(&bytes);
    let blobs_start = HEADER_LEN + m + SIGNATURE_BLOCK_LEN;
    rejected(&flipped(HEADER_LEN + m / 2), &trust, &[], "bad signature");
    rejected(&flipped(HEADER_LEN + m + 8 + 5), &trust, &[], "bad signature");
    rejected(&flipped(HEADER_LEN + m + 2), &trust, &[], "unknown key");
    rejected(&flipped(blobs_start), &trust, &[], "digest mismatch for variant cpu");
    rejected(&flipped(bytes.len() - 1), &trust, &[], "digest mismatch for variant gpu");
    rejected(&bytes[..bytes.len() - 10], &trust, &[], "truncated file: ends inside the gpu variant blob");
    rejected(&bytes[..HEADER_LEN + 3], &trust, &[], "truncated file: ends inside the manifest");
    let mut trailing = bytes.clone();
    trailing.push(0);
    rejected(&trailing, &trust, &[], "unexpected bytes after the last blob");
    let mut newer_format = bytes.clone();
    newer_format[8] = 2;
    rejected(&newer_format, &trust, &[], "unsupported package format version 2");
    rejected(&bytes, &trust, &["--installed-seq", "1"], "not newer than installed 1");
}

#[test]
fn blobs_swapped_between_variants() {
    let bytes = package_bytes();
    let m = manifest_len(&bytes);
    let blobs_start = HEADER_LEN + m + SIGNATURE_BLOCK_LEN;
    let head = PackageHead::from_bytes(&bytes[..blobs_start]).unwrap();
    let manifest = head.manifest_unverified().unwrap();
    let cpu_len = manifest.variants[0].size as usize;
    let mut swapped = bytes[..blobs_start].to_vec();
    swapped.extend_from_slice(&bytes[blobs_start + cpu_len..]);
    swapped.extend_from_slice(&bytes[blobs_start..blobs_start + cpu_len]);
    rejected(&swapped, &fixture("fixture.pub"), &[], "digest mismatch for variant cpu");
}

#[test]
fn unknown_and_revoked_keys() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = package_bytes();
    let blobs_start = HEADER_LEN + manifest_len(&bytes) + SIGNATURE_BLOCK_LEN;

    // Re-signed by a key the device does not trust.
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let mut head = PackageHead::from_bytes(&bytes[..blobs_start]).unwrap();
    head.signature = sign_manifest(&stranger, &head.manifest_bytes);
    let mut resigned = head.to_bytes();
    resigned.extend_from_slice(&bytes[blobs_start..]);
    rejected(&resigned, &fixture("fixture.pub"), &[], "unknown key");

    // The same package is fine for a device that trusts both keys (a TOML trust store).
    let mut both = TrustStore::load(&fixture("fixture.pub")).unwrap();
    both.keys.extend(TrustStore::single("stranger", PublicKey(stranger.verifying_key().to_bytes())).keys);
    let both_path = dir.path().join("both.toml");
    std::fs::write(&both_path, both.to_toml()).unwrap();
    assert_eq!(verify(&resigned, &both_path, &[]).0, 0);

    // Revoking the fixture key refuses the original.
    let mut revoked = TrustStore::load(&fixture("fixture.pub")).unwrap();
    revoked.revoke(revoked.keys[0].public_key.key_id());
    let revoked_path = dir.path().join("revoked.toml");
    std::fs::write(&revoked_path, revoked.to_toml()).unwrap();
    rejected(&bytes, &revoked_path, &[], "revoked key");
}

#[test]
fn unreadable_trust_source_is_a_usage_error() {
    let (code, output) = verify(&package_bytes(), Path::new("/nonexistent/trust.toml"), &[]);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("cannot read trust source"), "{output}");
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.toml");
    std::fs::write(&garbage, "this is [not toml").unwrap();
    let (code, output) = verify(&package_bytes(), &garbage, &[]);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("neither a public key file"), "{output}");
}
