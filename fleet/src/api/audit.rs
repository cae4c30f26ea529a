//! `/v1/audit`: the hash-chained audit log.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::server::audit::AuditEntry;

/// `GET /v1/audit/verify`: `{"ok": true, "entries": N}` or
/// `{"ok": false, "first_broken": SEQ, "reason": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerify {
    /// The whole chain verifies.
    pub ok: bool,
    /// Entries verified (when ok).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// The first entry that does not verify (when not ok).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<u64>,
    /// Why it does not (when not ok).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
