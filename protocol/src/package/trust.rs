use super::error::PackageError;
use super::head::{SIGNING_CONTEXT, SignatureBlock};
use crate::ids::{KeyId, PublicKey};
use alloc::string::String;
use alloc::vec::Vec;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// A key packages may be signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// Operator's name for it (e.g. `release-2026`); not used for lookups.
    pub name: String,
    /// The public key.
    pub public_key: PublicKey,
}

/// The keys an agent (or fleet) accepts packages from. Stored as TOML:
///
/// ```toml
/// revoked = ["0123456789abcdef"]
///
/// [[keys]]
/// name = "release-2026"
/// public_key = "<64 hex digits>"
/// ```
/// A key id listed in `revoked` is refused even if it is also listed in `keys`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustStore {
    /// Trusted keys.
    #[serde(default)]
    pub keys: Vec<TrustedKey>,
    /// Revoked key ids.
    #[serde(default)]
    pub revoked: Vec<KeyId>,
}

impl TrustStore {
    /// A store trusting exactly one key.
    pub fn single(name: impl Into<String>, public_key: PublicKey) -> Self {
        Self { keys: alloc::vec![TrustedKey { name: name.into(), public_key }], revoked: Vec::new() }
    }

    /// Marks `key_id` revoked.
    pub fn revoke(&mut self, key_id: KeyId) {
        if !self.revoked.contains(&key_id) {
            self.revoked.push(key_id);
        }
    }

    /// The verifying key for `key_id`, if trusted and not revoked.
    pub fn lookup(&self, key_id: KeyId) -> Result<VerifyingKey, PackageError> {
        if self.revoked.contains(&key_id) {
            return Err(PackageError::RevokedKey(key_id));
        }
        let key = self.keys.iter().find(|k| k.public_key.key_id() == key_id).ok_or(PackageError::UnknownKey(key_id))?;
        VerifyingKey::from_bytes(&key.public_key.0).map_err(|_| PackageError::InvalidPublicKey(key_id))
    }

    /// Verifies `block` over [`SIGNING_CONTEXT`] ‖ `manifest_bytes` (strict RFC 8032 checks:
    /// no small-order keys, canonical `S`).
    pub fn verify_signature(&self, block: &SignatureBlock, manifest_bytes: &[u8]) -> Result<(), PackageError> {
        let key = self.lookup(block.key_id)?;
        let signature = Signature::from_bytes(&block.signature);
        key.verify_strict(&signed_message(manifest_bytes), &signature)
            .map_err(|_| PackageError::BadSignature(block.key_id))
    }
}

fn signed_message(manifest_bytes: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + manifest_bytes.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(manifest_bytes);
    message
}

/// Signs canonical manifest bytes.
pub fn sign_manifest(key: &SigningKey, manifest_bytes: &[u8]) -> SignatureBlock {
    let public = PublicKey(key.verifying_key().to_bytes());
    let signature = key.sign(&signed_message(manifest_bytes));
    SignatureBlock { key_id: public.key_id(), signature: signature.to_bytes() }
}

/// Anti-rollback: a package must carry a version sequence above the installed one.
pub fn check_newer(installed: Option<u64>, offered: u64) -> Result<(), PackageError> {
    match installed {
        Some(installed) if offered <= installed => Err(PackageError::NotNewer { installed, offered }),
        _ => Ok(()),
    }
}
