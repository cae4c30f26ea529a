//! The model registry: signed packages, verified against the fleet's trusted keys on push and
//! stored content-addressed (`<data_dir>/packages/<package id>.efpkg`).

use crate::transfer::ObjectStore;
use edgefleet_protocol::drift::DriftReference;
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::package::{ReadError, TrustStore, verify_package};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One variant of a pushed package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantInfo {
    /// Hardware class.
    pub hardware: HardwareClass,
    /// Numeric precision (e.g. `Fp32`).
    pub precision: String,
    /// Blob size.
    pub size: u64,
    /// Blob digest (hex).
    pub digest: String,
}

/// A model version the fleet can roll out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Model name.
    pub name: String,
    /// Version sequence (anti-rollback order).
    pub version_seq: u64,
    /// Human label.
    pub label: String,
    /// Package id (hex SHA-256 of the head).
    pub package_id: String,
    /// Head length (devices fetch it first).
    pub head_size: u64,
    /// Whole package size.
    pub package_size: u64,
    /// Variants.
    pub variants: Vec<VariantInfo>,
    /// Signing key id (hex).
    pub key_id: String,
    /// When pushed.
    pub pushed_at_ms: u64,
    /// By whom.
    pub pushed_by: String,
    /// The training data's profile devices summarize against (empty: no drift detection).
    #[serde(default)]
    pub drift_reference: DriftReference,
}

impl ModelRecord {
    /// Registry key: `name@version`.
    pub fn key(&self) -> String {
        model_key(&self.name, self.version_seq)
    }

    /// The variant for `hardware`, if any.
    pub fn variant(&self, hardware: HardwareClass) -> Option<&VariantInfo> {
        self.variants.iter().find(|v| v.hardware == hardware)
    }
}

/// Registry key of a model version.
pub fn model_key(name: &str, version_seq: u64) -> String {
    format!("{name}@{version_seq}")
}

/// A push that was refused; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No trusted keys are configured.
    #[error(
        "no trusted signing keys: {0} (start `edgefleet serve --trust-store FILE` with the public key or trust store the devices use)"
    )]
    NoTrust(String),
    /// The package failed verification.
    #[error("package refused: {0}")]
    Invalid(#[from] ReadError),
    /// The same name and version exists with different content.
    #[error(
        "{name} version {version_seq} already exists with a different package ({existing}); versions are immutable, bump version_seq"
    )]
    Conflict {
        /// Model.
        name: String,
        /// Version.
        version_seq: u64,
        /// The package id already registered.
        existing: String,
    },
    /// Storing the package failed.
    #[error("storing the package: {0}")]
    Io(#[from] std::io::Error),
}

/// Where package files live.
pub fn packages_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("packages")
}

/// Verifies `bytes` against the trust store at `trust_path` and writes it, content-addressed
/// and durably, under `data_dir`. Returns the record (not yet in the registry).
pub fn verify_and_store(
    bytes: &[u8],
    trust_path: &Path,
    data_dir: &Path,
    now_ms: u64,
    actor: &str,
) -> Result<ModelRecord, PushError> {
    let trust = TrustStore::load(trust_path).map_err(|e| PushError::NoTrust(e.to_string()))?;
    let verified = verify_package(bytes, &trust, None)?;
    let m = &verified.manifest;
    let head_size = (bytes.len() as u64).saturating_sub(m.total_blob_size());
    let record = ModelRecord {
        name: m.name.to_string(),
        version_seq: m.version_seq,
        label: m.label.clone(),
        package_id: verified.package_id.to_hex(),
        head_size,
        package_size: bytes.len() as u64,
        variants: m
            .variants
            .iter()
            .map(|v| VariantInfo {
                hardware: v.hardware,
                precision: v.precision.as_str().to_string(),
                size: v.size,
                digest: v.digest.to_hex(),
            })
            .collect(),
        key_id: hex::encode(verified.signature.key_id.0),
        pushed_at_ms: now_ms,
        pushed_by: actor.to_string(),
        drift_reference: m.drift_reference.clone(),
    };
    let dir = packages_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.efpkg", record.package_id));
    if !path.exists() {
        let tmp = dir.join(format!(".{}.tmp", record.package_id));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(record)
}

/// What a push needs: `POST /v1/models` and the pipelines' `package` step share it.
#[derive(Clone)]
pub struct Push {
    /// The trusted keys.
    pub trust_store: PathBuf,
    /// Where packages are stored.
    pub data_dir: PathBuf,
    /// What devices can download.
    pub objects: std::sync::Arc<std::sync::RwLock<ObjectStore>>,
    /// The core, which registers the version.
    pub inputs: tokio::sync::mpsc::Sender<super::core::Input>,
}

impl Push {
    /// Verifies and stores a package, makes it downloadable, then registers it in the core.
    pub async fn push(&self, bytes: Vec<u8>, now_ms: u64, actor: &str) -> super::requests::ApiResult {
        use super::requests::{ApiError, ApiRequest, ask_core};
        let (trust, dir, objects, who) =
            (self.trust_store.clone(), self.data_dir.clone(), self.objects.clone(), actor.to_string());
        let stored = tokio::task::spawn_blocking(move || {
            let record = verify_and_store(&bytes, &trust, &dir, now_ms, &who)?;
            // On disk and downloadable before any device can be told about it.
            if let Ok(mut store) = objects.write() {
                store.add_package(&bytes[..]).map_err(PushError::Invalid)?;
            }
            Ok::<_, PushError>(record)
        })
        .await;
        let record = match stored {
            Ok(Ok(record)) => record,
            Ok(Err(e @ PushError::Io(_))) => return Err(ApiError::Storage { message: e.to_string() }),
            Ok(Err(e)) => return Err(ApiError::invalid(e)),
            Err(e) => return Err(ApiError::Storage { message: e.to_string() }),
        };
        ask_core(&self.inputs, ApiRequest::RegisterModel { record }).await
    }
}

/// Loads every stored package into `objects` (at start-up); returns how many.
pub fn load_objects(data_dir: &Path, objects: &mut ObjectStore) -> std::io::Result<usize> {
    let dir = packages_dir(data_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(0) };
    let mut count = 0;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "efpkg") {
            let file = std::fs::File::open(&path)?;
            objects.add_package(std::io::BufReader::new(file)).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?;
            count += 1;
        }
    }
    Ok(count)
}
