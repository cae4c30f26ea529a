//! Durable fleet state in one redb file (`<data_dir>/fleet.redb`), chosen by the same
//! evidence as the agent's outbox (ARCHITECTURE.md): crash-safe commits, stable format, and
//! space given back. Records are JSON (readable, and new optional fields need no migration).
//! One write transaction per batch of inputs: the state changes and the audit entries that
//! explain them commit together, and device messages are acknowledged only after it.

use super::audit::AuditEntry;
use super::models::ModelRecord;
use super::registry::DeviceRecord;
use super::rollouts::RolloutRecord;
use crate::drift::device::StoredWindow;
use edgefleet_protocol::uplink::SampleBatch;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");
const ROLLOUTS: TableDefinition<u64, &[u8]> = TableDefinition::new("rollouts");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// Drift windows, keyed `<device>/<seq, 20 digits>` so one device's windows sort together.
const DRIFT: TableDefinition<&str, &[u8]> = TableDefinition::new("drift");

/// Sampled raw records, one `SampleBatch` (JSON) per key `<device>/<seq, 20 digits>`.
const SAMPLES: TableDefinition<&str, &[u8]> = TableDefinition::new("samples");

fn drift_key(device: &str, seq: u64) -> String {
    format!("{device}/{seq:020}")
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed.
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

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// What changed in one batch.
#[derive(Debug, Default)]
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
    pub drift: Vec<(String, StoredWindow)>,
    /// Per device, the oldest drift window seq still kept (older ones are deleted).
    pub drift_keep_from: Vec<(String, u64)>,
    /// Sample batches to add, per device.
    pub samples: Vec<(String, SampleBatch)>,
    /// Per device, the oldest sample batch seq still kept.
    pub samples_keep_from: Vec<(String, u64)>,
}

impl Batch {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && self.models.is_empty()
            && self.rollouts.is_empty()
            && self.audit.is_empty()
            && self.drift.is_empty()
            && self.samples.is_empty()
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
    pub drift: Vec<(String, StoredWindow)>,
    /// Stored sample batch seqs per device, oldest first.
    pub sample_seqs: Vec<(String, u64)>,
}

/// The fleet database.
#[derive(Debug)]
pub struct FleetDb {
    db: Database,
}

impl FleetDb {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        {
            tx.open_table(DEVICES).map_err(db_err)?;
            tx.open_table(MODELS).map_err(db_err)?;
            tx.open_table(ROLLOUTS).map_err(db_err)?;
            tx.open_table(AUDIT).map_err(db_err)?;
            tx.open_table(DRIFT).map_err(db_err)?;
            tx.open_table(SAMPLES).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(FleetDb { db })
    }

    /// Reads everything but the audit log (only its last entry).
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let mut snapshot = Snapshot::default();
        for row in tx.open_table(DEVICES).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            snapshot.devices.push(parse(k.value(), v.value())?);
        }
        for row in tx.open_table(MODELS).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            snapshot.models.push(parse(k.value(), v.value())?);
        }
        for row in tx.open_table(ROLLOUTS).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            snapshot.rollouts.push(parse(&format!("rollout {}", k.value()), v.value())?);
        }
        for row in tx.open_table(DRIFT).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let device = k.value().rsplit_once('/').map_or(k.value(), |(d, _)| d).to_string();
            snapshot.drift.push((device, parse(k.value(), v.value())?));
        }
        for row in tx.open_table(SAMPLES).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, _) = row.map_err(db_err)?;
            if let Some((device, seq)) = k.value().rsplit_once('/')
                && let Ok(seq) = seq.parse()
            {
                snapshot.sample_seqs.push((device.to_string(), seq));
            }
        }
        let audit = tx.open_table(AUDIT).map_err(db_err)?;
        if let Some(row) = audit.last().map_err(db_err)? {
            snapshot.audit_tail = Some(parse(&format!("audit {}", row.0.value()), row.1.value())?);
        }
        Ok(snapshot)
    }

    /// Writes a batch in one durable transaction.
    pub fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut devices = tx.open_table(DEVICES).map_err(db_err)?;
            for d in &batch.devices {
                devices.insert(d.id.as_str(), json(d)?.as_slice()).map_err(db_err)?;
            }
            let mut models = tx.open_table(MODELS).map_err(db_err)?;
            for m in &batch.models {
                models.insert(m.key().as_str(), json(m)?.as_slice()).map_err(db_err)?;
            }
            let mut rollouts = tx.open_table(ROLLOUTS).map_err(db_err)?;
            for r in &batch.rollouts {
                rollouts.insert(u64::from(r.id), json(r)?.as_slice()).map_err(db_err)?;
            }
            let mut audit = tx.open_table(AUDIT).map_err(db_err)?;
            for e in &batch.audit {
                audit.insert(e.seq, json(e)?.as_slice()).map_err(db_err)?;
            }
            let mut drift = tx.open_table(DRIFT).map_err(db_err)?;
            for (device, w) in &batch.drift {
                drift.insert(drift_key(device, w.summary.seq).as_str(), json(w)?.as_slice()).map_err(db_err)?;
            }
            for (device, keep_from) in &batch.drift_keep_from {
                let (start, end) = (drift_key(device, 0), drift_key(device, *keep_from));
                drift.retain_in(start.as_str()..end.as_str(), |_, _| false).map_err(db_err)?;
            }
            let mut samples = tx.open_table(SAMPLES).map_err(db_err)?;
            for (device, b) in &batch.samples {
                samples.insert(drift_key(device, b.seq).as_str(), json(b)?.as_slice()).map_err(db_err)?;
            }
            for (device, keep_from) in &batch.samples_keep_from {
                let (start, end) = (drift_key(device, 0), drift_key(device, *keep_from));
                samples.retain_in(start.as_str()..end.as_str(), |_, _| false).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    /// Audit entries with `seq >= from`, at most `limit`.
    pub fn audit(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(AUDIT).map_err(db_err)?;
        let mut out = Vec::new();
        for row in table.range(from..).map_err(db_err)?.take(limit) {
            let (k, v) = row.map_err(db_err)?;
            out.push(parse(&format!("audit {}", k.value()), v.value())?);
        }
        Ok(out)
    }

    /// Stored sample batches of `model` (every device, or `device`), oldest first per device,
    /// at most `limit` batches.
    pub fn samples(
        &self,
        model: &str,
        device: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, SampleBatch)>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(SAMPLES).map_err(db_err)?;
        let mut out = Vec::new();
        let range = match device {
            Some(d) => table.range(format!("{d}/").as_str()..format!("{d}0").as_str()),
            None => table.range::<&str>(..),
        }
        .map_err(db_err)?;
        for row in range {
            let (k, v) = row.map_err(db_err)?;
            let batch: SampleBatch = parse(k.value(), v.value())?;
            if batch.model.as_str() == model {
                let device = k.value().rsplit_once('/').map_or(k.value(), |(d, _)| d).to_string();
                out.push((device, batch));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Overwrites one stored audit entry as given (for tamper tests and repair tools only).
    pub fn overwrite_audit_entry(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut audit = tx.open_table(AUDIT).map_err(db_err)?;
            audit.insert(entry.seq, json(entry)?.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Db(format!("encoding a record: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_string(), detail: e.to_string() })
}
