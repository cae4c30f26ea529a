//! Serving package chunks to devices (WIRE.md §5): objects addressed by SHA-256 digest.

use edgefleet_protocol::Digest;
use edgefleet_protocol::package::{HEADER_LEN, Manifest, PackageHead, PackageReader, ReadError, SIGNATURE_BLOCK_LEN};
use edgefleet_protocol::transfer::{ChunkBody, ChunkRequest, ChunkResponse, MAX_CHUNK_LEN};
use std::collections::HashMap;
use std::io::Read;

/// Objects a device may fetch: package heads (by package id) and variant blobs (by digest).
#[derive(Debug, Default, Clone)]
pub struct ObjectStore {
    objects: HashMap<Digest, Vec<u8>>,
}

/// A package split into what devices download.
#[derive(Debug, Clone)]
pub struct Offered {
    /// SHA-256 of the head.
    pub package_id: Digest,
    /// Head length.
    pub head_size: u64,
    /// The manifest (not signature-checked here; devices check it).
    pub manifest: Manifest,
}

impl ObjectStore {
    /// Adds a package's head and every blob (each blob's digest is checked while reading).
    pub fn add_package(&mut self, reader: impl Read) -> Result<Offered, ReadError> {
        let package = PackageReader::open(reader)?;
        let head = package.head().clone();
        let manifest = head.manifest_unverified()?;
        let mut blobs: Vec<Vec<u8>> = manifest.variants.iter().map(|v| Vec::with_capacity(v.size as usize)).collect();
        package.read_blobs(&manifest, |index, bytes| {
            blobs[index].extend_from_slice(bytes);
            Ok(())
        })?;
        for (variant, blob) in manifest.variants.iter().zip(blobs) {
            self.objects.insert(variant.digest, blob);
        }
        let head_bytes = head.to_bytes();
        debug_assert_eq!(head_bytes.len(), HEADER_LEN + head.manifest_bytes.len() + SIGNATURE_BLOCK_LEN);
        let package_id = Digest::sha256(&head_bytes);
        let head_size = head_bytes.len() as u64;
        self.objects.insert(package_id, head_bytes);
        Ok(Offered { package_id, head_size, manifest })
    }

    /// Parses `head` bytes back (for tests and tools).
    pub fn head(&self, package_id: &Digest) -> Option<PackageHead> {
        self.objects.get(package_id).and_then(|b| PackageHead::from_bytes(b).ok())
    }

    /// Answers one chunk request.
    pub fn answer(&self, request: &ChunkRequest) -> ChunkResponse {
        let (body, total_size) = match self.objects.get(&request.digest) {
            None => (ChunkBody::NotFound, 0),
            Some(object) if request.offset >= object.len() as u64 => (ChunkBody::OutOfRange, object.len() as u64),
            Some(object) => {
                let start = request.offset as usize;
                let len = request.max_len.min(MAX_CHUNK_LEN) as usize;
                let end = (start + len).min(object.len());
                (ChunkBody::Data(object[start..end].to_vec()), object.len() as u64)
            }
        };
        ChunkResponse {
            request_id: request.request_id,
            digest: request.digest,
            offset: request.offset,
            total_size,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_fixture_package_by_digest_and_bounds_requests() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/packages/vibration-mlp-1.efpkg");
        let mut store = ObjectStore::default();
        let offered = store.add_package(std::fs::File::open(path).unwrap()).unwrap();
        let head = store.head(&offered.package_id).unwrap();
        assert_eq!(head.package_id(), offered.package_id);
        let blob = offered.manifest.variants[0].digest;
        let request = |offset, max_len| ChunkRequest { request_id: 1, digest: blob, offset, max_len };
        match store.answer(&request(0, u32::MAX)).body {
            ChunkBody::Data(d) => assert_eq!(d.len() as u64, offered.manifest.variants[0].size),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.answer(&request(1 << 40, 10)).body, ChunkBody::OutOfRange);
        let missing = ChunkRequest { request_id: 2, digest: Digest([0; 32]), offset: 0, max_len: 10 };
        assert_eq!(store.answer(&missing).body, ChunkBody::NotFound);
    }
}
