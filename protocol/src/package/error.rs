use crate::hardware::HardwareClass;
use crate::ids::{Digest, KeyId};
use crate::version::SemVer;
use alloc::string::String;
use core::fmt;
use serde::{Deserialize, Serialize};

/// A part of the package file, for truncation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Section {
    /// The fixed 16-byte header.
    Header,
    /// The manifest.
    Manifest,
    /// Key id and signature.
    Signature,
    /// The blob of the variant for this hardware class.
    Blob(HardwareClass),
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::Header => f.write_str("header"),
            Section::Manifest => f.write_str("manifest"),
            Section::Signature => f.write_str("signature block"),
            Section::Blob(class) => write!(f, "{class} variant blob"),
        }
    }
}

/// Why a package was refused. Also travels to the fleet inside
/// [`crate::uplink::FailureReason::Package`], so variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PackageError {
    /// The file does not start with the package magic.
    NotAPackage,
    /// Written in a package format version this build does not read.
    UnsupportedFormat {
        /// Version found.
        found: u16,
        /// Version supported.
        supported: u16,
    },
    /// Reserved header flags are set (written by a newer tool).
    UnsupportedFlags(u16),
    /// The manifest length field is zero or above [`super::MAX_MANIFEST_LEN`].
    BadManifestLength(u32),
    /// The file ends inside a section.
    Truncated(Section),
    /// Bytes follow the last blob.
    TrailingData,
    /// The signing key id is not in the trust store.
    UnknownKey(KeyId),
    /// The signing key id has been revoked.
    RevokedKey(KeyId),
    /// The signature does not verify under the named key (manifest or signature altered).
    BadSignature(KeyId),
    /// The manifest is signed but cannot be decoded (a signing tool bug).
    MalformedManifest(String),
    /// The manifest decodes but breaks a rule of the format.
    InvalidManifest(String),
    /// A blob's SHA-256 differs from the manifest's.
    DigestMismatch {
        /// Variant's hardware class.
        variant: HardwareClass,
        /// Digest in the manifest.
        expected: Digest,
        /// Digest of the bytes received.
        found: Digest,
    },
    /// A blob is longer than the manifest says.
    OversizedBlob(HardwareClass),
    /// Version sequence not above the installed one (anti-rollback).
    NotNewer {
        /// Installed version sequence.
        installed: u64,
        /// Package version sequence.
        offered: u64,
    },
    /// No variant for this hardware class and no CPU fallback.
    NoVariant(HardwareClass),
    /// The package needs a newer agent.
    AgentTooOld {
        /// Minimum agent version in the manifest.
        required: SemVer,
        /// This agent's version.
        running: SemVer,
    },
    /// The public key bytes in the trust store are not a valid ed25519 point.
    InvalidPublicKey(KeyId),
}

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageError::NotAPackage => f.write_str("not an Edgefleet package (bad magic bytes)"),
            PackageError::UnsupportedFormat { found, supported } => {
                write!(f, "unsupported package format version {found} (this build reads version {supported})")
            }
            PackageError::UnsupportedFlags(flags) => {
                write!(f, "unsupported header flags 0x{flags:04x} (reserved, must be zero)")
            }
            PackageError::BadManifestLength(len) => {
                write!(f, "manifest length {len} is out of range (1..={})", super::MAX_MANIFEST_LEN)
            }
            PackageError::Truncated(section) => write!(f, "truncated file: ends inside the {section}"),
            PackageError::TrailingData => f.write_str("unexpected bytes after the last blob"),
            PackageError::UnknownKey(id) => write!(f, "signed by unknown key {id} (not in the trust store)"),
            PackageError::RevokedKey(id) => write!(f, "signed by revoked key {id}"),
            PackageError::BadSignature(id) => {
                write!(f, "bad signature: manifest or signature altered (key {id})")
            }
            PackageError::MalformedManifest(d) => write!(f, "malformed manifest: {d}"),
            PackageError::InvalidManifest(d) => write!(f, "invalid manifest: {d}"),
            PackageError::DigestMismatch { variant, expected, found } => {
                write!(f, "digest mismatch for variant {variant}: manifest says {expected}, blob is {found}")
            }
            PackageError::OversizedBlob(variant) => {
                write!(f, "blob for variant {variant} is longer than the manifest says")
            }
            PackageError::NotNewer { installed, offered } => {
                write!(f, "version sequence {offered} is not newer than installed {installed} (anti-rollback)")
            }
            PackageError::NoVariant(class) => {
                write!(f, "package has no variant for {class} and no cpu fallback")
            }
            PackageError::AgentTooOld { required, running } => {
                write!(f, "package needs agent {required} or newer, this agent is {running}")
            }
            PackageError::InvalidPublicKey(id) => {
                write!(f, "trust store key {id} is not a valid ed25519 public key")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PackageError {}
