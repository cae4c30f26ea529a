//! Operator requests that only read stored data that can be large (audit pages, the whole
//! audit chain, sample exports). They run on a blocking thread straight against the
//! [`FleetStore`], never inside the core's single-writer loop, so a 100,000-record export or a
//! chain verification cannot stall device ingest. They see what is committed: everything an
//! earlier answer reported is (answers follow the commit).

use super::audit;
use super::requests::{ApiError, ApiResult};
use super::store::FleetStore;
use crate::api::ApiResponse;
use crate::api::audit::AuditVerify;
use crate::api::samples::SampleRecord;
use edgefleet_protocol::DeviceId;
use std::collections::BTreeMap;

/// Audit entries from `from`, at most `limit` (capped at 10,000).
pub fn audit_page(store: &dyn FleetStore, from: u64, limit: usize) -> ApiResult {
    let entries = store.audit(from, limit.min(10_000)).map_err(storage)?;
    Ok(ApiResponse::Audit(entries))
}

/// Recomputes the whole audit chain and names the first broken entry.
pub fn verify_audit(store: &dyn FleetStore) -> ApiResult {
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let page = store.audit(from, 10_000).map_err(storage)?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        all.extend(page);
    }
    Ok(ApiResponse::AuditVerify(match audit::verify_chain(all) {
        Ok(count) => AuditVerify { ok: true, entries: Some(count), ..AuditVerify::default() },
        Err(broken) => AuditVerify {
            ok: false,
            first_broken: Some(broken.seq),
            reason: Some(broken.reason),
            ..AuditVerify::default()
        },
    }))
}

/// Sampled raw records of `model` (every device, or `device`), at most `limit` batches
/// (capped at 100,000).
pub fn samples(store: &dyn FleetStore, model: &str, device: Option<&str>, limit: usize) -> ApiResult {
    let device = match device {
        Some(id) => Some(id.parse::<DeviceId>().map_err(|_| ApiError::UnknownDevice { id: id.to_string() })?),
        None => None,
    };
    let batches = store.samples(model, device.as_ref(), limit.min(100_000)).map_err(storage)?;
    // Each device's labels, by (inference id, timestamp); a later label replaces an earlier one.
    let mut labels: BTreeMap<&DeviceId, BTreeMap<(u64, u64), i64>> = BTreeMap::new();
    for (device, _) in &batches {
        if let std::collections::btree_map::Entry::Vacant(slot) = labels.entry(device) {
            let joined = slot.insert(BTreeMap::new());
            for message in store.labels(device).map_err(storage)? {
                joined.extend(message.labels.iter().map(|l| ((l.inference_id, l.timestamp_ms), l.label)));
            }
        }
    }
    let records: Vec<SampleRecord> = batches
        .iter()
        .flat_map(|(device, b)| {
            let labels = labels.get(device);
            b.records.iter().map(move |r| SampleRecord {
                device: device.to_string(),
                model: b.model.to_string(),
                version_seq: b.version_seq,
                inference_id: r.inference_id,
                timestamp_ms: r.timestamp_ms,
                inputs: r.inputs.iter().map(|v| v.is_finite().then_some(*v)).collect(),
                outputs: r.outputs.iter().map(|v| v.is_finite().then_some(*v)).collect(),
                label: labels.and_then(|l| l.get(&(r.inference_id, r.timestamp_ms)).copied()),
            })
        })
        .collect();
    Ok(ApiResponse::Samples(records))
}

fn storage(e: impl ToString) -> ApiError {
    ApiError::Storage { message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::{Batch, MemoryStore, contract};

    #[test]
    fn reads_answer_from_the_store_alone() {
        let store = MemoryStore::default();
        let batch = contract::sample_batch();
        store.write(&batch).expect("write");
        let Ok(ApiResponse::AuditVerify(v)) = verify_audit(&store) else { panic!("a verification") };
        assert_eq!((v.ok, v.entries), (true, Some(3)));
        let Ok(ApiResponse::Audit(page)) = audit_page(&store, 1, 1) else { panic!("a page") };
        assert_eq!(page, batch.audit[1..2].to_vec());
        let Ok(ApiResponse::Samples(records)) = samples(&store, "vibration", Some("edge-2"), 10) else {
            panic!("samples")
        };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].inputs, vec![Some(0.5), Some(-1.0)]);
        assert_eq!(records[0].label, Some(4), "the label joined by inference id and timestamp");
        let late = Batch {
            labels: vec![("edge-2".parse().expect("an id"), contract::labels(2, &[(1, 1, 7)]))],
            ..Batch::default()
        };
        store.write(&late).expect("write");
        let Ok(ApiResponse::Samples(records)) = samples(&store, "vibration", None, 10) else { panic!("samples") };
        assert_eq!(records[0].label, Some(7), "a later label replaces an earlier one");
        assert!(matches!(
            samples(&store, "vibration", Some("no such/device"), 10),
            Err(ApiError::UnknownDevice { .. })
        ));
        let mut tampered = batch.audit[1].clone();
        tampered.actor = "mallory".into();
        store.write(&Batch { audit: vec![tampered], ..Batch::default() }).expect("write");
        let Ok(ApiResponse::AuditVerify(v)) = verify_audit(&store) else { panic!("a verification") };
        assert_eq!((v.ok, v.first_broken), (false, Some(1)));
    }
}
