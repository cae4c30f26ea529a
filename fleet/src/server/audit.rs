//! The audit trail: every operator and automatic action (who, what, why, evidence) as a
//! hash chain. Entry `n` stores the hash of entry `n-1`; its own hash is SHA-256 over its
//! canonical JSON form without the `hash` field, so changing, removing or reordering any
//! entry breaks the chain at that entry. Entries are written in the same storage transaction
//! as the state change they record.

use edgefleet_protocol::Digest;
use serde::{Deserialize, Serialize};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// Fleet clock, ms since the epoch.
    pub at_ms: u64,
    /// Who: an operator name, or `edgefleet` for automatic decisions.
    pub actor: String,
    /// What, e.g. `rollout.create`, `rollout.gate_failed`, `model.push`.
    pub action: String,
    /// On what, e.g. `rollout/3`, `model/vibration-mlp@2`, `device/edge-1`.
    pub subject: String,
    /// Why and the evidence (free-form JSON).
    pub detail: serde_json::Value,
    /// Hash of the previous entry ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) of this entry's canonical form.
    pub hash: String,
}

#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    at_ms: u64,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    detail: &'a serde_json::Value,
    prev_hash: &'a str,
}

fn hash_of(e: &AuditEntry) -> String {
    let canonical = Canonical {
        seq: e.seq,
        at_ms: e.at_ms,
        actor: &e.actor,
        action: &e.action,
        subject: &e.subject,
        detail: &e.detail,
        prev_hash: &e.prev_hash,
    };
    // serde_json writes object keys of a `Value` in sorted order (no `preserve_order`), so the
    // bytes are the same after a round trip through storage.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    Digest::sha256(&bytes).to_hex()
}

/// The next entry after `prev` (None: the first).
pub fn next_entry(
    prev: Option<&AuditEntry>,
    at_ms: u64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    let mut entry = AuditEntry {
        seq: prev.map_or(0, |p| p.seq + 1),
        at_ms,
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        detail,
        prev_hash: prev.map_or_else(|| GENESIS.to_string(), |p| p.hash.clone()),
        hash: String::new(),
    };
    entry.hash = hash_of(&entry);
    entry
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {reason}")]
pub struct ChainBreak {
    /// The first entry that does not verify.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// Checks a whole chain in order; returns the number of entries.
pub fn verify_chain(entries: impl IntoIterator<Item = AuditEntry>) -> Result<u64, ChainBreak> {
    let mut prev_hash = GENESIS.to_string();
    let mut expected_seq = 0u64;
    for entry in entries {
        if entry.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                reason: format!("entry {expected_seq} is missing (found {} next)", entry.seq),
            });
        }
        if entry.prev_hash != prev_hash {
            return Err(ChainBreak { seq: entry.seq, reason: "prev_hash does not match the entry before".into() });
        }
        if hash_of(&entry) != entry.hash {
            return Err(ChainBreak { seq: entry.seq, reason: "content does not match its hash (modified)".into() });
        }
        prev_hash = entry.hash;
        expected_seq += 1;
    }
    Ok(expected_seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let e = next_entry(
                out.last(),
                1000 + i,
                "alice",
                "rollout.pause",
                "rollout/1",
                serde_json::json!({"i": i, "rate": 0.1}),
            );
            out.push(e);
        }
        out
    }

    #[test]
    fn floats_survive_storage_exactly() {
        // Wilson bounds are arbitrary doubles; without exact float parsing a stored entry
        // would no longer match its hash.
        let detail = serde_json::json!({"lower": 0.42549544224066254, "upper": 0.1 + 0.2, "tiny": 5e-324});
        let e = next_entry(None, 1, "edgefleet", "rollout.hold", "rollout/1", detail);
        let back: AuditEntry = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(verify_chain([back]), Ok(1));
    }

    #[test]
    fn verifies_and_names_the_first_broken_entry() {
        let good = chain(5);
        assert_eq!(verify_chain(good.clone()), Ok(5));
        let round_trip: Vec<AuditEntry> =
            good.iter().map(|e| serde_json::from_slice(&serde_json::to_vec(e).unwrap()).unwrap()).collect();
        assert_eq!(verify_chain(round_trip), Ok(5));

        let mut edited = good.clone();
        edited[2].actor = "mallory".into();
        assert_eq!(verify_chain(edited).unwrap_err().seq, 2);

        let mut rehashed = good.clone();
        rehashed[2].detail = serde_json::json!({"i": 99});
        rehashed[2].hash = hash_of(&rehashed[2]);
        assert_eq!(verify_chain(rehashed).unwrap_err().seq, 3, "a re-hashed edit breaks the next link");

        let mut removed = good.clone();
        removed.remove(1);
        assert_eq!(verify_chain(removed).unwrap_err().seq, 1);
    }
}
