//! Package signing keys on disk.
//!
//! `signing.key`: the 32-byte ed25519 seed as 64 hex digits and a newline, mode 0600.
//! `signing.pub`: the 32-byte public key as 64 hex digits and a newline (a trust source for
//! `edgefleet-agent verify --trust`). `trust.toml`: a trust store holding just this key, ready
//! to copy to devices.

use ed25519_dalek::SigningKey;
use edgefleet_protocol::package::TrustStore;
use edgefleet_protocol::{KeyId, PublicKey};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File names inside a key directory.
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// Public key file name.
pub const PUBLIC_KEY_FILE: &str = "signing.pub";
/// Trust store file name.
pub const TRUST_STORE_FILE: &str = "trust.toml";

/// A key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Generation would overwrite an existing file.
    #[error("{0} already exists: refusing to overwrite a key (move it away or pick another --out)")]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The signing key file is not 64 hex digits.
    #[error("{0} is not a signing key (expected 64 hex digits)")]
    Malformed(PathBuf),
    /// The signing key file is readable by group or others.
    #[error("{path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The operating system's random number generator failed.
    #[error("cannot get randomness from the operating system: {0}")]
    Random(String),
}

/// What `generate` wrote.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The key's id.
    pub key_id: KeyId,
    /// The public key.
    pub public_key: PublicKey,
    /// Path of the signing key.
    pub signing_key_path: PathBuf,
    /// Path of the public key.
    pub public_key_path: PathBuf,
    /// Path of the one-key trust store.
    pub trust_store_path: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_path_buf(), source }
}

fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), KeyError> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_path_buf())
        } else {
            KeyError::Io { path: path.to_path_buf(), source: e }
        }
    })?;
    file.write_all(contents.as_bytes()).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Generates a key pair into `dir` (created if missing). Refuses if any of the files exists.
pub fn generate(dir: &Path, name: &str) -> Result<GeneratedKey, KeyError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let paths = [SIGNING_KEY_FILE, PUBLIC_KEY_FILE, TRUST_STORE_FILE].map(|f| dir.join(f));
    if let Some(existing) = paths.iter().find(|p| p.exists()) {
        return Err(KeyError::Exists(existing.clone()));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let public_key = PublicKey(key.verifying_key().to_bytes());
    let [signing_key_path, public_key_path, trust_store_path] = paths;
    write_new(&signing_key_path, &format!("{}\n", hex::encode(key.to_bytes())), 0o600)?;
    write_new(&public_key_path, &format!("{public_key}\n"), 0o644)?;
    let trust = TrustStore::single(name, public_key);
    write_new(&trust_store_path, &trust.to_toml(), 0o644)?;
    Ok(GeneratedKey { key_id: public_key.key_id(), public_key, signing_key_path, public_key_path, trust_store_path })
}

/// Loads a signing key file, refusing one other users can read.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let metadata = fs::metadata(path).map_err(io_error(path))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: path.to_path_buf(), mode });
    }
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| KeyError::Malformed(path.to_path_buf()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_then_load_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(dir.path(), "test").unwrap();
        let mode = fs::metadata(&generated.signing_key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = load_signing_key(&generated.signing_key_path).unwrap();
        assert_eq!(PublicKey(key.verifying_key().to_bytes()), generated.public_key);
        let trust = TrustStore::load(&generated.public_key_path).unwrap();
        assert_eq!(trust.keys[0].public_key, generated.public_key);
        assert_eq!(TrustStore::load(&generated.trust_store_path).unwrap().keys[0].public_key, generated.public_key);
        assert!(matches!(generate(dir.path(), "again"), Err(KeyError::Exists(_))));

        fs::set_permissions(&generated.signing_key_path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load_signing_key(&generated.signing_key_path), Err(KeyError::Permissions { .. })));
    }
}
