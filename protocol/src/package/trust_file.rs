//! Trust sources on disk: a single public key file, or a TOML trust store.

use super::trust::TrustStore;
use crate::ids::PublicKey;
use std::fmt;
use std::path::{Path, PathBuf};

/// A trust source could not be read or understood.
#[derive(Debug)]
pub enum TrustFileError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Neither a public key (64 hex digits) nor a valid TOML trust store.
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        detail: String,
    },
}

impl fmt::Display for TrustFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustFileError::Io { path, source } => write!(f, "cannot read trust source {}: {source}", path.display()),
            TrustFileError::Parse { path, detail } => write!(
                f,
                "{} is neither a public key file (64 hex digits) nor a TOML trust store: {detail}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for TrustFileError {}

impl TrustStore {
    /// Parses a trust source's text: a public key file (64 hex digits, optional whitespace),
    /// trusted under `name`, or a TOML trust store.
    pub fn from_text(text: &str, name: &str) -> Result<Self, String> {
        if let Ok(key) = text.trim().parse::<PublicKey>() {
            return Ok(TrustStore::single(name, key));
        }
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads a trust source from `path` (see [`TrustStore::from_text`]).
    pub fn load(path: &Path) -> Result<Self, TrustFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TrustFileError::Io { path: path.to_path_buf(), source })?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("key");
        Self::from_text(&text, name).map_err(|detail| TrustFileError::Parse { path: path.to_path_buf(), detail })
    }

    /// The TOML form.
    pub fn to_toml(&self) -> String {
        // Serializing these plain structs to TOML cannot fail.
        toml::to_string(self).unwrap_or_default()
    }
}
