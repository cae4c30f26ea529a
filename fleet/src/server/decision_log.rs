//! One log line per decision an operator watching `edgefleet serve` wants to see: gate
//! decisions, holds, rollbacks and drift alerts. Written from the audit entries after they are
//! committed, so the log never tells of a decision the store does not have.

use super::audit::AuditEntry;
use serde_json::Value;

/// Logs `entry` if it records a decision (other entries, such as model pushes, are not logged).
pub fn log(entry: &AuditEntry) {
    let Some(line) = line(entry) else { return };
    if entry.action.ends_with("gate_failed")
        || entry.action.ends_with("gate_failed_rollback")
        || entry.action.ends_with("hold_expired")
        || entry.action == "drift.alert"
    {
        tracing::warn!(subject = %entry.subject, action = %entry.action, "{line}");
    } else {
        tracing::info!(subject = %entry.subject, action = %entry.action, "{line}");
    }
}

/// The sentence for a decision entry, or None for entries that are not decisions.
pub fn line(entry: &AuditEntry) -> Option<String> {
    let d = &entry.detail;
    let text = |key: &str| d.get(key).and_then(Value::as_str).unwrap_or("?").to_string();
    let track = text("track");
    let evidence = |d: &Value| -> String {
        let e = &d["evidence"];
        match (e.get("committed"), e.get("failed"), e.get("unreachable")) {
            (Some(c), Some(f), Some(u)) => format!(" (committed {c}, failed {f}, unreachable {u})"),
            _ => String::new(),
        }
    };
    let subject = entry.subject.replace('/', " ");
    Some(match entry.action.as_str() {
        "rollout.promote" => format!("{subject} {track}: gate passed, stage {}{}", d["stage"], evidence(d)),
        "rollout.track_completed" => format!("{subject} {track}: last gate passed, track done{}", evidence(d)),
        "rollout.hold" => format!("{subject} {track}: gate holds: {}{}", text("reason"), evidence(d)),
        "rollout.hold_expired" => format!(
            "{subject} {track}: hold expired after {}s ({})",
            d["held_ms"].as_u64().unwrap_or(0) / 1000,
            text("reason")
        ),
        "rollout.gate_failed" => format!("{subject} {track}: gate failed, track paused{}", evidence(d)),
        "rollout.gate_failed_rollback" => {
            format!("{subject} {track}: gate failed, committed devices told to roll back{}", evidence(d))
        }
        "rollout.completed" => format!("{subject}: completed"),
        "rollout.rollback" => format!("{subject}: rolled back by {}", entry.actor),
        "rollout.abort" => format!("{subject}: aborted by {}", entry.actor),
        "rollout.promote_override" => {
            format!("{subject} {track}: promoted by {} over its holding gate ({})", entry.actor, text("reason"))
        }
        "drift.alert" => format!(
            "{subject}: drift alert on {}@{}: {}",
            text("model"),
            d["version_seq"],
            d["reasons"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
                .unwrap_or_default()
        ),
        "drift.cleared" => format!("{subject}: drift alert cleared on {}@{}", text("model"), d["version_seq"]),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(action: &str, subject: &str, detail: Value) -> AuditEntry {
        AuditEntry {
            seq: 0,
            at_ms: 0,
            actor: "frank".into(),
            action: action.into(),
            subject: subject.into(),
            detail,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn decisions_get_one_sentence_and_other_entries_none() {
        let gate = entry(
            "rollout.gate_failed_rollback",
            "rollout/3",
            json!({"track": "gpu", "evidence": {"committed": 1, "failed": 4, "unreachable": 0}}),
        );
        assert_eq!(
            line(&gate).unwrap(),
            "rollout 3 gpu: gate failed, committed devices told to roll back (committed 1, failed 4, unreachable 0)"
        );
        let drift = entry(
            "drift.alert",
            "device/edge-7",
            json!({"model": "m", "version_seq": 2, "reasons": ["rms: PSI 0.4 > 0.2"]}),
        );
        assert_eq!(line(&drift).unwrap(), "device edge-7: drift alert on m@2: rms: PSI 0.4 > 0.2");
        assert_eq!(
            line(&entry("rollout.rollback", "rollout/3", json!({}))).unwrap(),
            "rollout 3: rolled back by frank"
        );
        assert!(line(&entry("model.push", "model/m@2", json!({}))).is_none());
    }
}
