//! The signed model package (normative spec: `protocol/PACKAGE.md`).
//!
//! ```text
//! head  = header (16 bytes) ‖ manifest (postcard) ‖ key id (8) ‖ ed25519 signature (64)
//! file  = head ‖ blob of variant 0 ‖ blob of variant 1 ‖ …   (nothing after)
//! ```
//! The signature covers [`SIGNING_CONTEXT`] ‖ manifest bytes; the manifest binds each blob by
//! SHA-256 digest and size, so one signature covers everything. The package id is the SHA-256
//! of the head. Verification order (and so which reason a damaged package gets): header →
//! key trusted and not revoked → signature → manifest decodes and validates → anti-rollback →
//! each blob's size and digest → nothing trailing.

mod blob;
mod downgrade;
mod error;
mod head;
mod manifest;
mod summary;
mod trust;

#[cfg(feature = "std")]
mod reader;
#[cfg(feature = "std")]
mod trust_file;
#[cfg(feature = "std")]
mod writer;

pub use crate::drift::{Binning, DriftReference, FeatureReference};
pub use blob::BlobVerifier;
pub use downgrade::{DOWNGRADE_CONTEXT, Downgrade, SignedDowngrade};
pub use error::{PackageError, Section};
pub use head::{
    FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_MANIFEST_LEN, PackageHead, SIGNATURE_BLOCK_LEN, SIGNING_CONTEXT,
    SignatureBlock, parse_header,
};
pub use manifest::{GoldenVector, Lineage, MAX_VARIANTS, Manifest, Variant};
pub use summary::ManifestSummary;
pub use trust::{TrustStore, TrustedKey, check_newer, sign_manifest};

#[cfg(feature = "std")]
pub use reader::{PackageReader, ReadError, VerifiedPackage, verify_package};
#[cfg(feature = "std")]
pub use trust_file::TrustFileError;
#[cfg(feature = "std")]
pub use writer::{WriteError, hash_reader, write_package};
