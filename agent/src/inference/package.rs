//! From a signed package to a runnable model: verify the package fully (the same checks as
//! [`crate::verify::verify_file`]) and keep the one blob this device runs; [`check_golden`]
//! (from `edgefleet-runtime`) then replays the manifest's golden vectors through a model.

pub use edgefleet_runtime::golden::{GoldenError, check_golden};

use crate::AGENT_VERSION;
use crate::verify::{VerifyError, VerifyRequest};
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::package::{PackageError, PackageReader, ReadError, TrustStore, VerifiedPackage, check_newer};
use edgefleet_protocol::tensor::Tolerance;
use std::fs::File;
use std::io::BufReader;

/// A verified package and the model file selected for this device.
#[derive(Debug, Clone)]
pub struct PackageVariant {
    /// Manifest, package id and signer.
    pub verified: VerifiedPackage,
    /// Index of the selected variant in `verified.manifest.variants`.
    pub variant_index: usize,
    /// The variant's ONNX bytes (size and SHA-256 checked against the signed manifest).
    pub blob: Vec<u8>,
}

impl PackageVariant {
    /// The golden tolerance of the selected variant.
    pub fn tolerance(&self) -> Tolerance {
        self.verified.manifest.variants[self.variant_index].golden_tolerance
    }
}

/// Verifies `request.package` in one pass, as `verify_file` does, and keeps the blob of the
/// variant a device of `class` installs (its own class, else CPU). Only that blob is held in
/// memory; it is returned only once every blob and the trailing-bytes check passed.
pub fn read_package_variant(request: &VerifyRequest<'_>, class: HardwareClass) -> Result<PackageVariant, VerifyError> {
    let trust = TrustStore::load(request.trust)?;
    let io_error = |source| VerifyError::Io { path: request.package.display().to_string(), source };
    let read_error = |e| match e {
        ReadError::Invalid(e) => VerifyError::Rejected(e),
        ReadError::Io(e) => io_error(e),
    };
    let file = File::open(request.package).map_err(io_error)?;
    let package = PackageReader::open(BufReader::new(file)).map_err(read_error)?;
    let manifest = package.head().verify(&trust).map_err(VerifyError::Rejected)?;
    check_newer(request.installed_seq, manifest.version_seq).map_err(VerifyError::Rejected)?;
    let required = manifest.min_agent_version;
    if required > AGENT_VERSION {
        return Err(VerifyError::Rejected(PackageError::AgentTooOld { required, running: AGENT_VERSION }));
    }
    let (variant_index, variant) = manifest.select_variant(class).map_err(VerifyError::Rejected)?;
    let package_id = package.head().package_id();
    let signature = package.head().signature;
    // The size is signed, but cap the up-front reservation anyway.
    let mut blob = Vec::with_capacity(variant.size.min(64 << 20) as usize);
    package
        .read_blobs(&manifest, |index, bytes| {
            if index == variant_index {
                blob.extend_from_slice(bytes);
            }
            Ok(())
        })
        .map_err(read_error)?;
    Ok(PackageVariant { verified: VerifiedPackage { manifest, package_id, signature }, variant_index, blob })
}
