//! [`MemoryStore`]: the fleet state in memory, for tests and simulations. Same semantics as
//! [`FleetDb`](super::FleetDb) (the contract suite runs on both), nothing survives the process.

use super::{Batch, FleetStore, Snapshot, StoreError, seq_key};
use crate::drift::device::StoredWindow;
use crate::server::audit::AuditEntry;
use crate::server::models::ModelRecord;
use crate::server::registry::DeviceRecord;
use crate::server::rollouts::RolloutRecord;
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::uplink::{SampleBatch, SampleLabels};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// An in-memory [`FleetStore`]. Can be told to fail its writes, to test what the core does
/// when storage fails (it must acknowledge nothing).
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    devices: BTreeMap<DeviceId, DeviceRecord>,
    models: BTreeMap<String, ModelRecord>,
    rollouts: BTreeMap<u32, RolloutRecord>,
    audit: BTreeMap<u64, AuditEntry>,
    // Keyed like the redb tables (`<device>/<seq>`), so both iterate in the same order.
    drift: BTreeMap<String, (DeviceId, StoredWindow)>,
    samples: BTreeMap<String, (DeviceId, SampleBatch)>,
    labels: BTreeMap<String, (DeviceId, SampleLabels)>,
    fail_writes: Option<String>,
}

impl MemoryStore {
    /// From now on every write fails with `reason` (`None`: writes work again).
    pub fn fail_writes(&self, reason: Option<&str>) {
        self.lock().fail_writes = reason.map(str::to_string);
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // The lock only guards plain map inserts and reads, which do not panic midway: a
        // poisoned lock still guards consistent tables.
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Drops `device`'s entries with a sequence number below `keep_from`.
fn retain_from<T>(table: &mut BTreeMap<String, T>, device: &DeviceId, keep_from: u64) {
    let (start, end) = (seq_key(device, 0), seq_key(device, keep_from));
    let doomed: Vec<String> = table.range(start..end).map(|(k, _)| k.clone()).collect();
    for key in doomed {
        table.remove(&key);
    }
}

impl FleetStore for MemoryStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let t = self.lock();
        Ok(Snapshot {
            devices: t.devices.values().cloned().collect(),
            models: t.models.values().cloned().collect(),
            rollouts: t.rollouts.values().cloned().collect(),
            audit_tail: t.audit.values().next_back().cloned(),
            drift: t.drift.values().cloned().collect(),
            sample_seqs: t.samples.values().map(|(d, b)| (d.clone(), b.seq)).collect(),
            label_seqs: t.labels.values().map(|(d, l)| (d.clone(), l.seq)).collect(),
        })
    }

    fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut guard = self.lock();
        if let Some(reason) = &guard.fail_writes {
            return Err(StoreError::Db(reason.clone()));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let t = &mut *guard;
        for d in &batch.devices {
            t.devices.insert(d.id.clone(), d.clone());
        }
        for m in &batch.models {
            t.models.insert(m.key(), m.clone());
        }
        for r in &batch.rollouts {
            t.rollouts.insert(r.id, r.clone());
        }
        for e in &batch.audit {
            t.audit.insert(e.seq, e.clone());
        }
        for (device, w) in &batch.drift {
            t.drift.insert(seq_key(device, w.summary.seq), (device.clone(), w.clone()));
        }
        for (device, keep_from) in &batch.drift_keep_from {
            retain_from(&mut t.drift, device, *keep_from);
        }
        for (device, b) in &batch.samples {
            t.samples.insert(seq_key(device, b.seq), (device.clone(), b.clone()));
        }
        for (device, keep_from) in &batch.samples_keep_from {
            retain_from(&mut t.samples, device, *keep_from);
        }
        for (device, l) in &batch.labels {
            t.labels.insert(seq_key(device, l.seq), (device.clone(), l.clone()));
        }
        for (device, keep_from) in &batch.labels_keep_from {
            retain_from(&mut t.labels, device, *keep_from);
        }
        Ok(())
    }

    fn audit(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self.lock().audit.range(from..).take(limit).map(|(_, e)| e.clone()).collect())
    }

    fn samples(
        &self,
        model: &str,
        device: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Vec<(DeviceId, SampleBatch)>, StoreError> {
        let t = self.lock();
        Ok(t.samples
            .values()
            .filter(|(d, b)| device.is_none_or(|want| want == d) && b.model.as_str() == model)
            .take(limit)
            .cloned()
            .collect())
    }

    fn labels(&self, device: &DeviceId) -> Result<Vec<SampleLabels>, StoreError> {
        let t = self.lock();
        let (start, end) = (seq_key(device, 0), seq_key(device, u64::MAX));
        Ok(t.labels.range(start..=end).map(|(_, (_, l))| l.clone()).collect())
    }
}
