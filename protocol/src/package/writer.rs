use super::error::PackageError;
use super::head::{FORMAT_VERSION, MAX_MANIFEST_LEN, PackageHead};
use super::manifest::Manifest;
use super::trust::sign_manifest;
use crate::ids::Digest;
use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// Writing a package failed.
#[derive(Debug)]
pub enum WriteError {
    /// The manifest breaks a format rule.
    Invalid(PackageError),
    /// A blob's bytes changed between hashing and writing.
    BlobChanged {
        /// Index of the variant.
        variant: usize,
    },
    /// The output or a blob source failed.
    Io(io::Error),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Invalid(e) => e.fmt(f),
            WriteError::BlobChanged { variant } => {
                write!(f, "model file of variant {variant} changed while the package was written")
            }
            WriteError::Io(e) => write!(f, "I/O error while writing package: {e}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// SHA-256 and length of everything `reader` yields.
pub fn hash_reader<R: Read>(mut reader: R) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok((Digest(hasher.finalize().into()), len)),
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes a signed package: head, then each blob (one reader per variant, in manifest order).
/// The manifest's digests and sizes must already describe the blobs; the bytes are re-hashed
/// as they are copied and a difference fails the write. Returns the package id.
pub fn write_package<W: Write, B: Read>(
    mut out: W,
    manifest: &Manifest,
    key: &SigningKey,
    blobs: &mut [B],
) -> Result<Digest, WriteError> {
    if manifest.format_version != FORMAT_VERSION {
        return Err(WriteError::Invalid(PackageError::UnsupportedFormat {
            found: manifest.format_version,
            supported: FORMAT_VERSION,
        }));
    }
    manifest.validate().map_err(WriteError::Invalid)?;
    if blobs.len() != manifest.variants.len() {
        return Err(WriteError::Invalid(PackageError::InvalidManifest(format!(
            "{} variants but {} model files",
            manifest.variants.len(),
            blobs.len()
        ))));
    }
    let manifest_bytes = postcard::to_allocvec(manifest)
        .map_err(|e| WriteError::Invalid(PackageError::MalformedManifest(e.to_string())))?;
    if manifest_bytes.len() > MAX_MANIFEST_LEN as usize {
        return Err(WriteError::Invalid(PackageError::BadManifestLength(manifest_bytes.len() as u32)));
    }
    let signature = sign_manifest(key, &manifest_bytes);
    let head = PackageHead { manifest_bytes, signature };
    out.write_all(&head.to_bytes()).map_err(WriteError::Io)?;
    for (variant, (blob, spec)) in blobs.iter_mut().zip(&manifest.variants).enumerate() {
        let mut hashing = HashingWriter { inner: &mut out, hasher: Sha256::new(), len: 0 };
        io::copy(blob, &mut hashing).map_err(WriteError::Io)?;
        let (digest, len) = (Digest(hashing.hasher.finalize().into()), hashing.len);
        if digest != spec.digest || len != spec.size {
            return Err(WriteError::BlobChanged { variant });
        }
    }
    out.flush().map_err(WriteError::Io)?;
    Ok(head.package_id())
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
