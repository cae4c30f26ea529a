//! Package format: build, verify, and refuse every tampering class with its specific reason.
#![allow(clippy::unwrap_used, missing_docs)]

use ed25519_dalek::SigningKey;
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::*;
use edgefleet_protocol::tensor::{Dim, ElemType, Tensor, TensorData, TensorSpec, Tolerance};
use edgefleet_protocol::{Digest, ModelName, PublicKey, SemVer};

const CPU_BLOB: &[u8] = b"pretend this is an fp32 onnx model, long enough to be interesting";
const GPU_BLOB: &[u8] = b"and this the fp16 one";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn trust_for(key: &SigningKey) -> TrustStore {
    TrustStore::single("test", PublicKey(key.verifying_key().to_bytes()))
}

fn variant(hardware: HardwareClass, precision: Precision, blob: &[u8]) -> Variant {
    Variant {
        hardware,
        precision,
        accelerator_kind: None,
        digest: Digest::sha256(blob),
        size: blob.len() as u64,
        golden_tolerance: Tolerance { abs: 1e-5, rel: 0.0 },
    }
}

fn manifest(version_seq: u64) -> Manifest {
    let spec = |name: &str, n| TensorSpec {
        name: name.into(),
        elem: ElemType::F32,
        shape: vec![Dim::Symbolic("batch".into()), Dim::Fixed(n)],
    };
    Manifest {
        format_version: FORMAT_VERSION,
        name: ModelName::new("vibration").unwrap(),
        version_seq,
        label: "1.2.0".into(),
        min_agent_version: SemVer::new(0, 1, 0),
        inputs: vec![spec("features", 2)],
        outputs: vec![spec("scores", 1)],
        variants: vec![
            variant(HardwareClass::Cpu, Precision::Fp32, CPU_BLOB),
            variant(HardwareClass::Gpu, Precision::Fp16, GPU_BLOB),
        ],
        golden: vec![GoldenVector {
            inputs: vec![Tensor { shape: vec![1, 2], data: TensorData::F32(vec![0.5, 1.5]) }],
            expected: vec![Tensor { shape: vec![1, 1], data: TensorData::F32(vec![0.25]) }],
        }],
        drift_reference: DriftReference {
            features: vec![FeatureReference {
                name: "rms".into(),
                binning: Binning::Numeric { edges: vec![0.0, 1.0] },
                counts: vec![1, 5, 2],
            }],
            prediction: Some(FeatureReference {
                name: "class".into(),
                binning: Binning::Categorical { codes: vec![0, 1] },
                counts: vec![4, 4, 0],
            }),
            ..DriftReference::default()
        },
        lineage: Lineage {
            training_run_id: Some("run-1".into()),
            created_at_ms: 1_700_000_000_000,
            ..Lineage::default()
        },
    }
}

fn build_with(manifest: &Manifest, key: &SigningKey, blobs: [&[u8]; 2]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut readers = blobs;
    write_package(&mut out, manifest, key, &mut readers).unwrap();
    out
}

fn build(version_seq: u64) -> Vec<u8> {
    build_with(&manifest(version_seq), &key(1), [CPU_BLOB, GPU_BLOB])
}

fn verify(bytes: &[u8], trust: &TrustStore, installed: Option<u64>) -> Result<VerifiedPackage, PackageError> {
    verify_package(bytes, trust, installed).map_err(|e| match e {
        ReadError::Invalid(e) => e,
        ReadError::Io(e) => panic!("unexpected I/O error {e}"),
    })
}

/// Where each section starts in a built package.
fn layout(bytes: &[u8]) -> (usize, usize, usize) {
    let manifest_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let manifest_start = HEADER_LEN;
    let signature_start = manifest_start + manifest_len;
    let blobs_start = signature_start + SIGNATURE_BLOCK_LEN;
    (manifest_start, signature_start, blobs_start)
}

#[test]
fn valid_package_verifies_and_streams_blobs() {
    let bytes = build(3);
    let trusted = trust_for(&key(1));
    let verified = verify(&bytes, &trusted, Some(2)).unwrap();
    assert_eq!(verified.manifest, manifest(3));
    assert_eq!(verified.signature.key_id, PublicKey(key(1).verifying_key().to_bytes()).key_id());
    let (_, _, blobs_start) = layout(&bytes);
    assert_eq!(verified.package_id, Digest::sha256(&bytes[..blobs_start]));
    assert_eq!(&bytes[blobs_start..], [CPU_BLOB, GPU_BLOB].concat());

    // The reader hands out exactly the blob bytes, per variant.
    let reader = PackageReader::open(&bytes[..]).unwrap();
    let manifest = reader.head().verify(&trusted).unwrap();
    let mut blobs = [Vec::new(), Vec::new()];
    reader
        .read_blobs(&manifest, |i, chunk| {
            blobs[i].extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
    assert_eq!(blobs, [CPU_BLOB.to_vec(), GPU_BLOB.to_vec()]);

    // The head alone (as fetched over MQTT) parses to the same thing.
    let head = PackageHead::from_bytes(&bytes[..blobs_start]).unwrap();
    assert_eq!(head.package_id(), verified.package_id);
    assert_eq!(
        head.verify(&trusted).unwrap().select_variant(HardwareClass::Accelerator).unwrap().1.hardware,
        HardwareClass::Cpu
    );
}

#[test]
fn flipped_manifest_byte_is_a_bad_signature() {
    let trusted = trust_for(&key(1));
    let clean = build(3);
    let (manifest_start, signature_start, _) = layout(&clean);
    for at in manifest_start..signature_start {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x01;
        let key_id = PublicKey(key(1).verifying_key().to_bytes()).key_id();
        assert_eq!(verify(&bytes, &trusted, None).unwrap_err(), PackageError::BadSignature(key_id), "byte {at}");
    }
}

#[test]
fn flipped_signature_byte_is_a_bad_signature_and_flipped_key_id_unknown() {
    let trusted = trust_for(&key(1));
    let clean = build(3);
    let (_, signature_start, blobs_start) = layout(&clean);
    let key_id = PublicKey(key(1).verifying_key().to_bytes()).key_id();
    for at in signature_start..blobs_start {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x80;
        let err = verify(&bytes, &trusted, None).unwrap_err();
        if at < signature_start + 8 {
            assert!(matches!(err, PackageError::UnknownKey(_)), "byte {at}: {err}");
        } else {
            assert_eq!(err, PackageError::BadSignature(key_id), "byte {at}");
        }
    }
}

#[test]
fn flipped_blob_byte_names_the_variant() {
    let trusted = trust_for(&key(1));
    let clean = build(3);
    let (_, _, blobs_start) = layout(&clean);
    for (at, variant) in [
        (blobs_start, HardwareClass::Cpu),
        (blobs_start + CPU_BLOB.len() + 3, HardwareClass::Gpu),
        (clean.len() - 1, HardwareClass::Gpu),
    ] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x01;
        match verify(&bytes, &trusted, None).unwrap_err() {
            PackageError::DigestMismatch { variant: v, .. } => assert_eq!(v, variant),
            other => panic!("byte {at}: {other}"),
        }
    }
}

#[test]
fn blobs_swapped_between_variants_fail_the_digest() {
    let trusted = trust_for(&key(1));
    let clean = build(3);
    let (_, _, blobs_start) = layout(&clean);
    let mut bytes = clean[..blobs_start].to_vec();
    bytes.extend_from_slice(GPU_BLOB);
    bytes.extend_from_slice(CPU_BLOB);
    assert_eq!(bytes.len(), clean.len());
    assert!(matches!(
        verify(&bytes, &trusted, None).unwrap_err(),
        PackageError::DigestMismatch { variant: HardwareClass::Cpu, .. }
    ));
}

#[test]
fn every_truncation_names_its_section() {
    let trusted = trust_for(&key(1));
    let clean = build(3);
    let (manifest_start, signature_start, blobs_start) = layout(&clean);
    for len in 0..clean.len() {
        let err = verify(&clean[..len], &trusted, None).unwrap_err();
        let section = match len {
            l if l < manifest_start => Section::Header,
            l if l < signature_start => Section::Manifest,
            l if l < blobs_start => Section::Signature,
            l if l < blobs_start + CPU_BLOB.len() => Section::Blob(HardwareClass::Cpu),
            _ => Section::Blob(HardwareClass::Gpu),
        };
        assert_eq!(err, PackageError::Truncated(section), "truncated to {len} bytes");
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = build(3);
    bytes.push(0);
    assert_eq!(verify(&bytes, &trust_for(&key(1)), None).unwrap_err(), PackageError::TrailingData);
}

#[test]
fn unknown_and_revoked_keys() {
    let resigned = build_with(&manifest(3), &key(2), [CPU_BLOB, GPU_BLOB]);
    let unknown_id = PublicKey(key(2).verifying_key().to_bytes()).key_id();
    assert_eq!(verify(&resigned, &trust_for(&key(1)), None).unwrap_err(), PackageError::UnknownKey(unknown_id));

    let mut trust = trust_for(&key(1));
    let id = PublicKey(key(1).verifying_key().to_bytes()).key_id();
    trust.revoke(id);
    assert_eq!(verify(&build(3), &trust, None).unwrap_err(), PackageError::RevokedKey(id));

    // Several keys: either verifies.
    let mut both = trust_for(&key(1));
    both.keys.extend(trust_for(&key(2)).keys);
    assert!(verify(&resigned, &both, None).is_ok());
    assert!(verify(&build(3), &both, None).is_ok());
}

#[test]
fn anti_rollback() {
    let trusted = trust_for(&key(1));
    assert_eq!(verify(&build(3), &trusted, Some(3)).unwrap_err(), PackageError::NotNewer { installed: 3, offered: 3 });
    assert_eq!(verify(&build(2), &trusted, Some(3)).unwrap_err(), PackageError::NotNewer { installed: 3, offered: 2 });
    assert!(verify(&build(4), &trusted, Some(3)).is_ok());
}

#[test]
fn header_problems() {
    let trusted = trust_for(&key(1));
    let clean = build(3);
    let mut bad_magic = clean.clone();
    bad_magic[0] = b'X';
    assert_eq!(verify(&bad_magic, &trusted, None).unwrap_err(), PackageError::NotAPackage);
    let mut newer = clean.clone();
    newer[8] = 2;
    assert_eq!(verify(&newer, &trusted, None).unwrap_err(), PackageError::UnsupportedFormat { found: 2, supported: 1 });
    let mut flags = clean.clone();
    flags[10] = 1;
    assert_eq!(verify(&flags, &trusted, None).unwrap_err(), PackageError::UnsupportedFlags(1));
    let mut huge = clean;
    huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(verify(&huge, &trusted, None).unwrap_err(), PackageError::BadManifestLength(u32::MAX));
}

#[test]
fn writer_refuses_invalid_manifests_and_changed_blobs() {
    let mut two_cpu = manifest(1);
    two_cpu.variants[1].hardware = HardwareClass::Cpu;
    let mut out = Vec::new();
    assert!(matches!(
        write_package(&mut out, &two_cpu, &key(1), &mut [CPU_BLOB, GPU_BLOB]),
        Err(WriteError::Invalid(PackageError::InvalidManifest(_)))
    ));
    assert!(matches!(
        write_package(&mut out, &manifest(1), &key(1), &mut [CPU_BLOB, CPU_BLOB]),
        Err(WriteError::BlobChanged { variant: 1 })
    ));
}

#[test]
fn trust_store_toml_round_trip() {
    let mut store = trust_for(&key(1));
    store.revoke(PublicKey(key(2).verifying_key().to_bytes()).key_id());
    let text = toml::to_string(&store).unwrap();
    assert_eq!(toml::from_str::<TrustStore>(&text).unwrap(), store);
    assert!(toml::from_str::<TrustStore>("[[keys]]\nname='x'\npublic_key='zz'\n").is_err());
    assert!(toml::from_str::<TrustStore>("unexpected = 1\n").is_err());
}

#[test]
fn small_order_key_and_signature_are_refused() {
    // The identity point as public key with R = identity, S = 0 "verifies" any message under
    // non-strict rules; verify_strict must refuse it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = PublicKey(identity);
    let trust = TrustStore::single("weak", weak);
    let mut signature = [0u8; 64];
    signature[0] = 1;
    let block = SignatureBlock { key_id: weak.key_id(), signature };
    let err = trust.verify_signature(&block, b"any manifest").unwrap_err();
    assert!(matches!(err, PackageError::BadSignature(_) | PackageError::InvalidPublicKey(_)), "{err}");
}
