//! Signed downgrade authorizations: the one way past anti-rollback.
//!
//! A device refuses any package whose version sequence is not above the installed one. To go
//! back to an earlier version on purpose (a bad release already pruned its last-known-good), an
//! operator signs a [`Downgrade`] naming the exact package, with a trusted release key and an
//! expiry; the deploy command carries it. Signed message:
//! `"edgefleet/downgrade/v1\0" ‖ postcard(Downgrade)`.

use super::error::PackageError;
use super::trust::TrustStore;
use crate::ids::{Digest, KeyId, ModelName, PublicKey};
use alloc::vec::Vec;
use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

/// Domain separation for downgrade signatures.
pub const DOWNGRADE_CONTEXT: &[u8] = b"edgefleet/downgrade/v1\0";

/// What is authorized: installing exactly this package of this model, until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downgrade {
    /// Model.
    pub model: ModelName,
    /// The (older) version sequence allowed.
    pub version_seq: u64,
    /// The package allowed (SHA-256 of its head).
    pub package_id: Digest,
    /// After this (device clock, ms since the epoch) the authorization is void.
    pub expires_at_ms: u64,
}

/// A [`Downgrade`] with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDowngrade {
    /// The authorization.
    pub downgrade: Downgrade,
    /// Signing key id.
    pub key_id: KeyId,
    /// ed25519 signature over [`DOWNGRADE_CONTEXT`] ‖ postcard(`downgrade`).
    pub signature: Vec<u8>,
}

fn message(downgrade: &Downgrade) -> Result<Vec<u8>, PackageError> {
    let body = postcard::to_allocvec(downgrade).map_err(|e| PackageError::MalformedManifest(alloc::format!("{e}")))?;
    let mut message = Vec::with_capacity(DOWNGRADE_CONTEXT.len() + body.len());
    message.extend_from_slice(DOWNGRADE_CONTEXT);
    message.extend_from_slice(&body);
    Ok(message)
}

impl SignedDowngrade {
    /// Signs `downgrade` with `key`.
    pub fn sign(downgrade: Downgrade, key: &SigningKey) -> Result<Self, PackageError> {
        let signature = key.sign(&message(&downgrade)?).to_bytes().to_vec();
        let key_id = PublicKey(key.verifying_key().to_bytes()).key_id();
        Ok(Self { downgrade, key_id, signature })
    }

    /// Checks the signature (trusted, unrevoked key; strict verification), that it names this
    /// package, and that it has not expired at `now_ms`.
    pub fn authorizes(
        &self,
        trust: &TrustStore,
        model: &ModelName,
        version_seq: u64,
        package_id: &Digest,
        now_ms: u64,
    ) -> Result<(), PackageError> {
        let key = trust.lookup(self.key_id)?;
        let bytes: [u8; 64] =
            self.signature.as_slice().try_into().map_err(|_| PackageError::BadSignature(self.key_id))?;
        key.verify_strict(&message(&self.downgrade)?, &Signature::from_bytes(&bytes))
            .map_err(|_| PackageError::BadSignature(self.key_id))?;
        let d = &self.downgrade;
        if &d.model != model || d.version_seq != version_seq || &d.package_id != package_id {
            return Err(PackageError::InvalidManifest(alloc::format!(
                "downgrade authorization is for {} seq {} package {}, not this package",
                d.model,
                d.version_seq,
                d.package_id
            )));
        }
        if now_ms > d.expires_at_ms {
            return Err(PackageError::InvalidManifest(alloc::format!(
                "downgrade authorization expired at {} ms",
                d.expires_at_ms
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (SigningKey, TrustStore, Downgrade) {
        let key = SigningKey::from_bytes(&[5; 32]);
        let trust = TrustStore::single("k", PublicKey(key.verifying_key().to_bytes()));
        let downgrade = Downgrade {
            model: ModelName::new("m").unwrap(),
            version_seq: 3,
            package_id: Digest([7; 32]),
            expires_at_ms: 1_000,
        };
        (key, trust, downgrade)
    }

    #[test]
    fn authorizes_exactly_the_signed_package_until_it_expires() {
        let (key, trust, downgrade) = setup();
        let signed = SignedDowngrade::sign(downgrade.clone(), &key).unwrap();
        let m = ModelName::new("m").unwrap();
        assert!(signed.authorizes(&trust, &m, 3, &Digest([7; 32]), 999).is_ok());
        assert!(signed.authorizes(&trust, &m, 3, &Digest([7; 32]), 1_001).is_err(), "expired");
        assert!(signed.authorizes(&trust, &m, 2, &Digest([7; 32]), 0).is_err(), "other version");
        assert!(signed.authorizes(&trust, &m, 3, &Digest([8; 32]), 0).is_err(), "other package");
        let mut forged = signed.clone();
        forged.downgrade.version_seq = 1;
        assert!(matches!(forged.authorizes(&trust, &m, 1, &Digest([7; 32]), 0), Err(PackageError::BadSignature(_))));
        let stranger = SignedDowngrade::sign(downgrade, &SigningKey::from_bytes(&[6; 32])).unwrap();
        assert!(matches!(stranger.authorizes(&trust, &m, 3, &Digest([7; 32]), 0), Err(PackageError::UnknownKey(_))));
    }
}
