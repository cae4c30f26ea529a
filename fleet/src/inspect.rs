//! `edgefleet package inspect`: what a package holds, checked as far as the caller can.

use edgefleet_protocol::Digest;
use edgefleet_protocol::package::{
    Manifest, PackageError, PackageReader, ReadError, SignatureBlock, TrustStore, check_newer,
};
use serde::Serialize;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// What inspection found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// SHA-256 of the package head.
    pub package_id: Digest,
    /// Signing key id.
    pub key_id: edgefleet_protocol::KeyId,
    /// `true` when a trust source was given and the signature verified under it; `false`
    /// when not checked.
    pub signature_checked: bool,
    /// Every blob's size and digest matched the manifest.
    pub blobs_checked: bool,
    /// The manifest.
    pub manifest: Manifest,
}

/// Inspection failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The package is invalid.
    #[error("{0}")]
    Invalid(PackageError),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

fn from_read(path: &Path) -> impl Fn(ReadError) -> InspectError + '_ {
    move |e| match e {
        ReadError::Invalid(e) => InspectError::Invalid(e),
        ReadError::Io(source) => InspectError::Io { path: path.display().to_string(), source },
    }
}

/// Reads `path` fully: head, manifest (signature checked when `trust` is given), blobs.
pub fn inspect(path: &Path, trust: Option<&TrustStore>) -> Result<Inspection, InspectError> {
    let file = File::open(path).map_err(|source| InspectError::Io { path: path.display().to_string(), source })?;
    let reader = PackageReader::open(BufReader::new(file)).map_err(from_read(path))?;
    let head = reader.head();
    let manifest = match trust {
        Some(trust) => head.verify(trust),
        None => head.manifest_unverified(),
    }
    .map_err(InspectError::Invalid)?;
    check_newer(None, manifest.version_seq).map_err(InspectError::Invalid)?;
    let package_id = head.package_id();
    let SignatureBlock { key_id, .. } = head.signature;
    reader.read_blobs(&manifest, |_, _| Ok(())).map_err(from_read(path))?;
    Ok(Inspection { package_id, key_id, signature_checked: trust.is_some(), blobs_checked: true, manifest })
}
