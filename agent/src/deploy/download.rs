//! Resumable, content-addressed download over the chunk protocol (WIRE.md §5).
//!
//! Progress is the length of the partial file, fsynced after every chunk: after a SIGKILL or
//! power cut the download continues from there, re-fetching at most the chunk in flight.

use edgefleet_protocol::Digest;
use edgefleet_protocol::package::BlobVerifier;
use edgefleet_protocol::transfer::{ChunkBody, ChunkRequest, ChunkResponse, MAX_CHUNK_LEN};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// A download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The fleet does not have the object.
    #[error("object {0} not found at the fleet")]
    NotFound(Digest),
    /// The fleet answered out of range.
    #[error("object {digest}: offset {offset} out of range")]
    OutOfRange {
        /// Object.
        digest: Digest,
        /// Offset asked.
        offset: u64,
    },
    /// No answer after all retries.
    #[error("no chunk response for {digest} at offset {offset} after {attempts} attempts")]
    Timeout {
        /// Object.
        digest: Digest,
        /// Offset asked.
        offset: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// The link went away (agent shutting down).
    #[error("MQTT link closed")]
    LinkClosed,
    /// Writing the partial file failed (disk full, ...).
    #[error("writing {path}: {source}")]
    Io {
        /// The partial file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes do not verify.
    #[error(transparent)]
    Invalid(#[from] edgefleet_protocol::package::PackageError),
}

/// Fetches objects by digest through the link's chunk channels.
#[derive(Debug)]
pub struct Fetcher {
    request_tx: mpsc::Sender<ChunkRequest>,
    response_rx: mpsc::Receiver<ChunkResponse>,
    next_request_id: u64,
    /// How long to wait for one chunk before asking again.
    pub chunk_timeout: Duration,
    /// Attempts per chunk before giving up.
    pub max_attempts: u32,
}

impl Fetcher {
    /// Uses `request_tx` to ask and `response_rx` to hear back.
    pub fn new(request_tx: mpsc::Sender<ChunkRequest>, response_rx: mpsc::Receiver<ChunkResponse>) -> Self {
        let mut seed = [0u8; 4];
        let _ = getrandom::fill(&mut seed);
        Self {
            request_tx,
            response_rx,
            next_request_id: u64::from(u32::from_le_bytes(seed)) << 16,
            chunk_timeout: Duration::from_secs(5),
            max_attempts: 20,
        }
    }

    /// Downloads `[0, size)` of `digest` into `partial`, resuming from its current length.
    /// Every byte (old and new) goes through `verifier` when given. `progress(received, size)`
    /// is called after each chunk.
    pub async fn fetch(
        &mut self,
        digest: Digest,
        size: u64,
        partial: &Path,
        mut verifier: Option<&mut BlobVerifier>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), FetchError> {
        let io = |source| FetchError::Io { path: partial.display().to_string(), source };
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(partial).map_err(io)?;
        let mut received = file.metadata().map_err(io)?.len();
        if received > size {
            file.set_len(0).map_err(io)?;
            received = 0;
        }
        if let Some(v) = verifier.as_deref_mut() {
            rehash(partial, received, v).map_err(io)?;
        }
        while received < size {
            let want = (size - received).min(u64::from(MAX_CHUNK_LEN)) as u32;
            let data = self.chunk(digest, received, want).await?;
            if let Some(v) = verifier.as_deref_mut() {
                v.update(&data)?;
            }
            file.write_all(&data).map_err(io)?;
            file.sync_data().map_err(io)?;
            received += data.len() as u64;
            progress(received, size);
        }
        Ok(())
    }

    async fn chunk(&mut self, digest: Digest, offset: u64, max_len: u32) -> Result<Vec<u8>, FetchError> {
        let mut attempts = 0;
        while attempts < self.max_attempts {
            attempts += 1;
            self.next_request_id += 1;
            let request_id = self.next_request_id;
            let request = ChunkRequest { request_id, digest, offset, max_len };
            self.request_tx.send(request).await.map_err(|_| FetchError::LinkClosed)?;
            let deadline = tokio::time::Instant::now() + self.chunk_timeout;
            loop {
                let response = match tokio::time::timeout_at(deadline, self.response_rx.recv()).await {
                    Ok(Some(response)) => response,
                    Ok(None) => return Err(FetchError::LinkClosed),
                    Err(_) => break, // timed out: ask again
                };
                if response.request_id != request_id || response.digest != digest || response.offset != offset {
                    continue; // a late answer to an earlier request
                }
                match response.body {
                    ChunkBody::Data(data) if !data.is_empty() && data.len() <= max_len as usize => return Ok(data),
                    ChunkBody::Data(_) => break,
                    ChunkBody::NotFound => return Err(FetchError::NotFound(digest)),
                    ChunkBody::OutOfRange => return Err(FetchError::OutOfRange { digest, offset }),
                    ChunkBody::Busy { retry_after_ms } => {
                        attempts -= 1; // waiting our turn is not a failure
                        tokio::time::sleep(Duration::from_millis(u64::from(retry_after_ms.clamp(50, 30_000)))).await;
                        break;
                    }
                }
            }
        }
        Err(FetchError::Timeout { digest, offset, attempts })
    }
}

fn rehash(path: &Path, len: u64, verifier: &mut BlobVerifier) -> std::io::Result<()> {
    let mut file = File::open(path)?.take(len);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        verifier.update(&buf[..n]).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::hardware::{HardwareClass, Precision};
    use edgefleet_protocol::package::Variant;
    use edgefleet_protocol::tensor::Tolerance;

    /// Serves `object` from memory, dropping every `drop_every`-th request.
    fn serve(object: Vec<u8>, drop_every: u64) -> (mpsc::Sender<ChunkRequest>, mpsc::Receiver<ChunkResponse>) {
        let (req_tx, mut req_rx) = mpsc::channel::<ChunkRequest>(4);
        let (resp_tx, resp_rx) = mpsc::channel(4);
        let digest = Digest::sha256(&object);
        tokio::spawn(async move {
            let mut n = 0;
            while let Some(r) = req_rx.recv().await {
                n += 1;
                if drop_every > 0 && n % drop_every == 0 {
                    continue;
                }
                let start = r.offset as usize;
                let body = if r.digest != digest {
                    ChunkBody::NotFound
                } else if start >= object.len() {
                    ChunkBody::OutOfRange
                } else {
                    let end = (start + r.max_len as usize).min(object.len());
                    ChunkBody::Data(object[start..end].to_vec())
                };
                let response = ChunkResponse {
                    request_id: r.request_id,
                    digest: r.digest,
                    offset: r.offset,
                    total_size: object.len() as u64,
                    body,
                };
                if resp_tx.send(response).await.is_err() {
                    break;
                }
            }
        });
        (req_tx, resp_rx)
    }

    fn variant(object: &[u8]) -> Variant {
        Variant {
            hardware: HardwareClass::Cpu,
            precision: Precision::Fp32,
            accelerator_kind: None,
            digest: Digest::sha256(object),
            size: object.len() as u64,
            golden_tolerance: Tolerance { abs: 0.0, rel: 0.0 },
        }
    }

    #[tokio::test]
    async fn resumes_from_the_partial_file_and_survives_lost_chunks() {
        let object: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("blob.partial");
        // A previous run got the first 100 000 bytes.
        std::fs::write(&partial, &object[..100_000]).unwrap();
        let (tx, rx) = serve(object.clone(), 3);
        let mut fetcher = Fetcher::new(tx, rx);
        fetcher.chunk_timeout = Duration::from_millis(50);
        let mut verifier = BlobVerifier::new(&variant(&object));
        let mut calls = Vec::new();
        fetcher
            .fetch(Digest::sha256(&object), object.len() as u64, &partial, Some(&mut verifier), |r, _| calls.push(r))
            .await
            .unwrap();
        verifier.finish().unwrap();
        assert_eq!(std::fs::read(&partial).unwrap(), object);
        assert_eq!(calls.first().copied(), Some(100_000 + 65_536), "resumed at the partial length");
    }

    #[tokio::test]
    async fn missing_objects_fail_fast() {
        let (tx, rx) = serve(vec![1, 2, 3], 0);
        let mut fetcher = Fetcher::new(tx, rx);
        let dir = tempfile::tempdir().unwrap();
        let err = fetcher.fetch(Digest([9; 32]), 3, &dir.path().join("x"), None, |_, _| {}).await.unwrap_err();
        assert!(matches!(err, FetchError::NotFound(_)), "{err}");
    }
}
