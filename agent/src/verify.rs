//! Checks a package file the way the agent checks a download: trusted key, signature,
//! manifest rules, anti-rollback, agent version, every blob's digest.

use crate::AGENT_VERSION;
use edgefleet_protocol::package::{
    PackageError, ReadError, TrustFileError, TrustStore, VerifiedPackage, verify_package,
};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// What to verify.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a> {
    /// The `.efpkg` file.
    pub package: &'a Path,
    /// A public key file or a TOML trust store.
    pub trust: &'a Path,
    /// Installed version sequence, for the anti-rollback check.
    pub installed_seq: Option<u64>,
}

/// Why verification did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The package is invalid: the precise reason.
    #[error("{0}")]
    Rejected(PackageError),
    /// The trust source could not be loaded.
    #[error(transparent)]
    Trust(#[from] TrustFileError),
    /// The package file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Verifies `request.package` in one streaming pass (memory stays bounded by the manifest).
pub fn verify_file(request: &VerifyRequest<'_>) -> Result<VerifiedPackage, VerifyError> {
    let trust = TrustStore::load(request.trust)?;
    let io_error = |source| VerifyError::Io { path: request.package.display().to_string(), source };
    let file = File::open(request.package).map_err(io_error)?;
    let verified = verify_package(BufReader::new(file), &trust, request.installed_seq).map_err(|e| match e {
        ReadError::Invalid(e) => VerifyError::Rejected(e),
        ReadError::Io(e) => io_error(e),
    })?;
    let required = verified.manifest.min_agent_version;
    if required > AGENT_VERSION {
        return Err(VerifyError::Rejected(PackageError::AgentTooOld { required, running: AGENT_VERSION }));
    }
    Ok(verified)
}
