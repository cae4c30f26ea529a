use super::error::{PackageError, Section};
use super::manifest::Manifest;
use super::trust::TrustStore;
use crate::ids::{Digest, KeyId};
use alloc::string::ToString;
use alloc::vec::Vec;

/// First 8 bytes of every package: `"EFPKG\r\n\x1a"`.
pub const MAGIC: [u8; 8] = *b"EFPKG\r\n\x1a";
/// The package format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the fixed header (magic, version, flags, manifest length).
pub const HEADER_LEN: usize = 16;
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_LEN: u32 = 1024 * 1024;
/// Key id (8 bytes) plus signature (64 bytes).
pub const SIGNATURE_BLOCK_LEN: usize = 72;
/// Prepended to the manifest bytes to form the signed message (domain separation: a package
/// signature can never be replayed as a signature over anything else).
pub const SIGNING_CONTEXT: &[u8] = b"edgefleet/package-manifest/v1\0";

/// Parses the fixed 16-byte header; returns the manifest length.
pub fn parse_header(header: &[u8; HEADER_LEN]) -> Result<u32, PackageError> {
    if header[..8] != MAGIC {
        return Err(PackageError::NotAPackage);
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != FORMAT_VERSION {
        return Err(PackageError::UnsupportedFormat { found: version, supported: FORMAT_VERSION });
    }
    let flags = u16::from_le_bytes([header[10], header[11]]);
    if flags != 0 {
        return Err(PackageError::UnsupportedFlags(flags));
    }
    let manifest_len = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if manifest_len == 0 || manifest_len > MAX_MANIFEST_LEN {
        return Err(PackageError::BadManifestLength(manifest_len));
    }
    Ok(manifest_len)
}

/// Who signed and the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureBlock {
    /// Id of the signing key.
    pub key_id: KeyId,
    /// ed25519 signature over [`SIGNING_CONTEXT`] ‖ manifest bytes.
    pub signature: [u8; 64],
}

impl SignatureBlock {
    /// Parses the 72-byte block.
    pub fn from_bytes(bytes: &[u8; SIGNATURE_BLOCK_LEN]) -> Self {
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[..8]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[8..]);
        Self { key_id: KeyId(key_id), signature }
    }

    /// The 72-byte block.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BLOCK_LEN] {
        let mut out = [0u8; SIGNATURE_BLOCK_LEN];
        out[..8].copy_from_slice(&self.key_id.0);
        out[8..].copy_from_slice(&self.signature);
        out
    }
}

/// The signed part of a package: manifest bytes exactly as signed, plus the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageHead {
    /// Canonical manifest bytes (what was signed, after the context string).
    pub manifest_bytes: Vec<u8>,
    /// Signature block.
    pub signature: SignatureBlock,
}

impl PackageHead {
    /// Parses a complete head (as downloaded by digest over MQTT). `bytes` must hold exactly
    /// the head: header, manifest and signature block, nothing more.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PackageError> {
        let header: &[u8; HEADER_LEN] =
            bytes.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(PackageError::Truncated(Section::Header))?;
        let manifest_len = parse_header(header)? as usize;
        let manifest_end = HEADER_LEN + manifest_len;
        let manifest_bytes =
            bytes.get(HEADER_LEN..manifest_end).ok_or(PackageError::Truncated(Section::Manifest))?.to_vec();
        let block: &[u8; SIGNATURE_BLOCK_LEN] = bytes
            .get(manifest_end..manifest_end + SIGNATURE_BLOCK_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(PackageError::Truncated(Section::Signature))?;
        if bytes.len() > manifest_end + SIGNATURE_BLOCK_LEN {
            return Err(PackageError::TrailingData);
        }
        Ok(Self { manifest_bytes, signature: SignatureBlock::from_bytes(block) })
    }

    /// The head's bytes, exactly as they appear at the start of the package file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.manifest_bytes.len() + SIGNATURE_BLOCK_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.manifest_bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.manifest_bytes);
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// The package id: SHA-256 of [`Self::to_bytes`].
    pub fn package_id(&self) -> Digest {
        Digest::sha256(&self.to_bytes())
    }

    /// Checks the signature against `trust`, then decodes and validates the manifest.
    pub fn verify(&self, trust: &TrustStore) -> Result<Manifest, PackageError> {
        trust.verify_signature(&self.signature, &self.manifest_bytes)?;
        self.manifest_unverified()
    }

    /// Decodes and validates the manifest without checking the signature (for `inspect`).
    pub fn manifest_unverified(&self) -> Result<Manifest, PackageError> {
        let manifest = match postcard::take_from_bytes::<Manifest>(&self.manifest_bytes) {
            Ok((manifest, [])) => manifest,
            Ok((_, rest)) => {
                return Err(PackageError::MalformedManifest(alloc::format!("{} trailing bytes", rest.len())));
            }
            Err(e) => return Err(PackageError::MalformedManifest(e.to_string())),
        };
        manifest.validate()?;
        Ok(manifest)
    }
}
