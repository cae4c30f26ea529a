use super::error::{PackageError, Section};
use super::manifest::Variant;
use crate::hardware::HardwareClass;
use crate::ids::Digest;
use sha2::{Digest as _, Sha256};

/// Checks a blob against its variant while it streams by: size never exceeded, digest equal at
/// the end. Used by the file reader and by the agent's chunked download.
#[derive(Debug, Clone)]
pub struct BlobVerifier {
    hardware: HardwareClass,
    expected: Digest,
    size: u64,
    seen: u64,
    hasher: Sha256,
}

impl BlobVerifier {
    /// Starts checking a blob for `variant`.
    pub fn new(variant: &Variant) -> Self {
        Self {
            hardware: variant.hardware,
            expected: variant.digest,
            size: variant.size,
            seen: 0,
            hasher: Sha256::new(),
        }
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.size - self.seen
    }

    /// Bytes seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), PackageError> {
        if bytes.len() as u64 > self.remaining() {
            return Err(PackageError::OversizedBlob(self.hardware));
        }
        self.seen += bytes.len() as u64;
        self.hasher.update(bytes);
        Ok(())
    }

    /// Checks that every byte arrived and the digest matches.
    pub fn finish(self) -> Result<(), PackageError> {
        if self.seen < self.size {
            return Err(PackageError::Truncated(Section::Blob(self.hardware)));
        }
        let found = Digest(self.hasher.finalize().into());
        if found != self.expected {
            return Err(PackageError::DigestMismatch { variant: self.hardware, expected: self.expected, found });
        }
        Ok(())
    }
}
