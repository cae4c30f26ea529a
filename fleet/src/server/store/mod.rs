//! The fleet manager's storage edge: one [`FleetStore`] trait, written by the core's single
//! writer (one [`Batch`] per batch of inputs) and read concurrently by the HTTP API for the
//! reads that can be slow (audit pages, sample exports), so those never stall device ingest.
//!
//! Implementations: [`FleetDb`] (redb, `<data_dir>/fleet.redb`, what `edgefleet serve` uses)
//! and [`MemoryStore`] (in memory, for tests and simulations). Both pass the one
//! [`contract`] suite; a new engine (PostgreSQL) must pass it too.
//!
//! Invariants every implementation keeps (the contract checks each):
//! - [`FleetStore::write`] is atomic: after a crash either the whole batch is visible or none.
//! - Records are replaced by key (device id, model key, rollout id); audit entries, drift
//!   windows and sample batches are appended by sequence number and read back in order.
//! - `*_keep_from` deletes a device's older drift windows / sample batches / label messages
//!   in the same batch.

pub mod contract;
mod memory;
mod redb;

pub use memory::MemoryStore;
pub use redb::FleetDb;

use super::audit::AuditEntry;
use super::models::ModelRecord;
use super::registry::DeviceRecord;
use super::rollouts::RolloutRecord;
use crate::drift::device::StoredWindow;
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::uplink::{SampleBatch, SampleLabels};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed (I/O, full disk, a lock held by another process).
    #[error("fleet database: {0}")]
    Db(String),
    /// A stored record does not parse.
    #[error("fleet database record {key}: {detail}")]
    Corrupt {
        /// Which record.
        key: String,
        /// Why.
        detail: String,
    },
}

/// What changed in one batch.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Devices to write.
    pub devices: Vec<DeviceRecord>,
    /// Models to write.
    pub models: Vec<ModelRecord>,
    /// Rollouts to write.
    pub rollouts: Vec<RolloutRecord>,
    /// Audit entries to append.
    pub audit: Vec<AuditEntry>,
    /// Drift windows to add, per device.
    pub drift: Vec<(DeviceId, StoredWindow)>,
    /// Per device, the oldest drift window seq still kept (older ones are deleted).
    pub drift_keep_from: Vec<(DeviceId, u64)>,
    /// Sample batches to add, per device.
    pub samples: Vec<(DeviceId, SampleBatch)>,
    /// Per device, the oldest sample batch seq still kept.
    pub samples_keep_from: Vec<(DeviceId, u64)>,
    /// Label messages to add, per device (joined to samples when read).
    pub labels: Vec<(DeviceId, SampleLabels)>,
    /// Per device, the oldest label message seq still kept.
    pub labels_keep_from: Vec<(DeviceId, u64)>,
}

impl Batch {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && self.models.is_empty()
            && self.rollouts.is_empty()
            && self.audit.is_empty()
            && self.drift.is_empty()
            && self.drift_keep_from.is_empty()
            && self.samples.is_empty()
            && self.samples_keep_from.is_empty()
            && self.labels.is_empty()
            && self.labels_keep_from.is_empty()
    }
}

/// Everything, as loaded at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Devices.
    pub devices: Vec<DeviceRecord>,
    /// Models.
    pub models: Vec<ModelRecord>,
    /// Rollouts.
    pub rollouts: Vec<RolloutRecord>,
    /// The last audit entry.
    pub audit_tail: Option<AuditEntry>,
    /// Drift windows per device, oldest first.
    pub drift: Vec<(DeviceId, StoredWindow)>,
    /// Stored sample batch seqs per device, oldest first.
    pub sample_seqs: Vec<(DeviceId, u64)>,
    /// Stored label message seqs per device, oldest first.
    pub label_seqs: Vec<(DeviceId, u64)>,
}

/// Durable fleet state. `Send + Sync`: the core writes, HTTP handlers read at the same time
/// (from blocking threads: a read may touch the disk).
pub trait FleetStore: Send + Sync {
    /// Reads everything the core keeps in memory (of the audit log only its last entry).
    fn load(&self) -> Result<Snapshot, StoreError>;

    /// Writes a batch in one durable, atomic transaction. Called by one writer at a time.
    fn write(&self, batch: &Batch) -> Result<(), StoreError>;

    /// Audit entries with `seq >= from`, oldest first, at most `limit`.
    fn audit(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// Stored sample batches of `model` (every device, or only `device`), oldest first per
    /// device and devices in id order, at most `limit` batches.
    fn samples(
        &self,
        model: &str,
        device: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Vec<(DeviceId, SampleBatch)>, StoreError>;

    /// Stored label messages of `device`, oldest first.
    fn labels(&self, device: &DeviceId) -> Result<Vec<SampleLabels>, StoreError>;
}

/// Key of a device's drift window or sample batch: `<device>/<seq, 20 digits>`, so one
/// device's entries sort together and in sequence order.
pub(crate) fn seq_key(device: &DeviceId, seq: u64) -> String {
    format!("{device}/{seq:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_store_passes_the_contract() {
        contract::run_all(&|| Box::new(MemoryStore::default()));
    }

    #[test]
    fn the_redb_store_passes_the_contract() {
        let dir = tempfile::tempdir().expect("temp dir");
        let n = std::sync::atomic::AtomicU32::new(0);
        contract::run_all(&|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::new(FleetDb::open(&dir.path().join(format!("fleet-{i}.redb"))).expect("open redb"))
        });
    }

    #[test]
    fn a_redb_store_reopened_loads_what_was_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fleet.redb");
        let batch = contract::sample_batch();
        FleetDb::open(&path).expect("open").write(&batch).expect("write");
        let reopened = FleetDb::open(&path).expect("reopen");
        contract::assert_loads(&reopened, &batch);
    }
}
