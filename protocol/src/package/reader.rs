use super::blob::BlobVerifier;
use super::error::{PackageError, Section};
use super::head::{HEADER_LEN, PackageHead, SIGNATURE_BLOCK_LEN, SignatureBlock, parse_header};
use super::manifest::Manifest;
use super::trust::{TrustStore, check_newer};
use crate::ids::Digest;
use std::fmt;
use std::io::{self, Read};

/// Buffer size for streaming blobs: memory use stays at this, whatever the package size.
const STREAM_BUF_LEN: usize = 64 * 1024;

/// Reading a package failed: the bytes are bad, or the reader is.
#[derive(Debug)]
pub enum ReadError {
    /// The package is invalid (the reason a user needs).
    Invalid(PackageError),
    /// The underlying reader or sink failed.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Invalid(e) => e.fmt(f),
            ReadError::Io(e) => write!(f, "I/O error while reading package: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Invalid(e) => Some(e),
            ReadError::Io(e) => Some(e),
        }
    }
}

impl From<PackageError> for ReadError {
    fn from(e: PackageError) -> Self {
        ReadError::Invalid(e)
    }
}

fn read_section<R: Read>(reader: &mut R, buf: &mut [u8], section: Section) -> Result<(), ReadError> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ReadError::Invalid(PackageError::Truncated(section)),
        _ => ReadError::Io(e),
    })
}

/// A package file being read front to back, holding only the head in memory.
#[derive(Debug)]
pub struct PackageReader<R> {
    reader: R,
    head: PackageHead,
}

impl<R: Read> PackageReader<R> {
    /// Reads and parses the head (header, manifest bytes, signature block).
    pub fn open(mut reader: R) -> Result<Self, ReadError> {
        let mut header = [0u8; HEADER_LEN];
        read_section(&mut reader, &mut header, Section::Header)?;
        let manifest_len = parse_header(&header)?;
        let mut manifest_bytes = vec![0u8; manifest_len as usize];
        read_section(&mut reader, &mut manifest_bytes, Section::Manifest)?;
        let mut block = [0u8; SIGNATURE_BLOCK_LEN];
        read_section(&mut reader, &mut block, Section::Signature)?;
        let head = PackageHead { manifest_bytes, signature: SignatureBlock::from_bytes(&block) };
        Ok(Self { reader, head })
    }

    /// The head.
    pub fn head(&self) -> &PackageHead {
        &self.head
    }

    /// Streams every blob through its [`BlobVerifier`], handing each buffer to
    /// `sink(variant_index, bytes)` (only after it was hashed; a sink that writes must still
    /// treat the blob as untrusted until this returns `Ok`). Then checks nothing follows.
    pub fn read_blobs(
        mut self,
        manifest: &Manifest,
        mut sink: impl FnMut(usize, &[u8]) -> io::Result<()>,
    ) -> Result<(), ReadError> {
        let mut buf = vec![0u8; STREAM_BUF_LEN];
        for (index, variant) in manifest.variants.iter().enumerate() {
            let mut verifier = BlobVerifier::new(variant);
            while verifier.remaining() > 0 {
                let want = verifier.remaining().min(buf.len() as u64) as usize;
                let got = match self.reader.read(&mut buf[..want]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ReadError::Io(e)),
                };
                verifier.update(&buf[..got])?;
                sink(index, &buf[..got]).map_err(ReadError::Io)?;
            }
            verifier.finish()?;
        }
        match self.reader.read(&mut buf[..1]) {
            Ok(0) => Ok(()),
            Ok(_) => Err(PackageError::TrailingData.into()),
            Err(e) => Err(ReadError::Io(e)),
        }
    }
}

/// A package whose signature, manifest and every blob checked out.
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    /// The decoded manifest.
    pub manifest: Manifest,
    /// SHA-256 of the head.
    pub package_id: Digest,
    /// Signature block (who signed it).
    pub signature: SignatureBlock,
}

/// Verifies a whole package from `reader` in one pass: signature against `trust`, manifest,
/// anti-rollback against `installed_seq`, every blob's size and digest, no trailing bytes.
pub fn verify_package<R: Read>(
    reader: R,
    trust: &TrustStore,
    installed_seq: Option<u64>,
) -> Result<VerifiedPackage, ReadError> {
    let package = PackageReader::open(reader)?;
    let manifest = package.head().verify(trust)?;
    check_newer(installed_seq, manifest.version_seq)?;
    let package_id = package.head().package_id();
    let signature = package.head().signature;
    package.read_blobs(&manifest, |_, _| Ok(()))?;
    Ok(VerifiedPackage { manifest, package_id, signature })
}
