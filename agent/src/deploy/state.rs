//! The deployment in progress, persisted before each step so a restart resumes it (or rolls
//! it back) instead of forgetting it.

use super::fsutil::write_atomic;
use edgefleet_protocol::command::{CommandId, DeployCommand};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// Where a deployment is. Steps happen in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Fetching the package head (progress = partial file length).
    FetchHead,
    /// Fetching the blob of variant `index`.
    FetchBlob {
        /// Variant index in the manifest.
        index: usize,
    },
    /// Blob verified; writing the generation.
    Install,
    /// Generation written; running golden vectors, then switching.
    Validate {
        /// Generation directory name.
        dir: String,
    },
    /// Active and on probation since `since_ms`.
    Probation {
        /// Generation directory name.
        dir: String,
        /// Activation time, ms since the epoch.
        since_ms: u64,
    },
}

/// The persisted deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The command that started it.
    pub command_id: CommandId,
    /// What to deploy.
    pub deploy: DeployCommand,
    /// Where it is.
    pub step: Step,
}

/// `data_dir/deploy/`: the pending deployment and download scratch space.
#[derive(Debug, Clone)]
pub struct DeployDir {
    root: PathBuf,
}

impl DeployDir {
    /// Opens (creating) `data_dir/deploy`.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("deploy");
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// Scratch file for a download of `name`.
    pub fn partial(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.partial"))
    }

    /// The pending deployment, if any.
    pub fn load(&self) -> io::Result<Option<Pending>> {
        match std::fs::read(self.root.join("pending.json")) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Persists `pending` (atomically).
    pub fn save(&self, pending: &Pending) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(pending).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        write_atomic(&self.root.join("pending.json"), &bytes)
    }

    /// Forgets the deployment and its scratch files.
    pub fn clear(&self) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.root)? {
            let path = entry?.path();
            if path.is_file() {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}
