//! [`FleetDb`]: durable fleet state in one redb file (`<data_dir>/fleet.redb`), chosen by the
//! same evidence as the agent's outbox (ARCHITECTURE.md): crash-safe commits, stable format,
//! and space given back. Records are JSON (readable, and new optional fields need no
//! migration). One write transaction per batch; readers (audit, samples) run concurrently with
//! the writer on redb's MVCC snapshots.

use super::{Batch, FleetStore, Snapshot, StoreError, seq_key};
use crate::server::audit::AuditEntry;
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::uplink::{SampleBatch, SampleLabels};
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

/// Labels of sampled records, one `SampleLabels` (JSON) per key `<device>/<seq, 20 digits>`.
const LABELS: TableDefinition<&str, &[u8]> = TableDefinition::new("labels");

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
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
            tx.open_table(LABELS).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(FleetDb { db })
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

impl FleetStore for FleetDb {
    fn load(&self) -> Result<Snapshot, StoreError> {
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
            snapshot.drift.push((device_of(k.value())?, parse(k.value(), v.value())?));
        }
        for row in tx.open_table(SAMPLES).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, _) = row.map_err(db_err)?;
            let seq = k.value().rsplit_once('/').and_then(|(_, seq)| seq.parse().ok());
            let seq = seq.ok_or_else(|| corrupt(k.value(), "no sequence number in the key"))?;
            snapshot.sample_seqs.push((device_of(k.value())?, seq));
        }
        for row in tx.open_table(LABELS).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, _) = row.map_err(db_err)?;
            let seq = k.value().rsplit_once('/').and_then(|(_, seq)| seq.parse().ok());
            let seq = seq.ok_or_else(|| corrupt(k.value(), "no sequence number in the key"))?;
            snapshot.label_seqs.push((device_of(k.value())?, seq));
        }
        let audit = tx.open_table(AUDIT).map_err(db_err)?;
        if let Some(row) = audit.last().map_err(db_err)? {
            snapshot.audit_tail = Some(parse(&format!("audit {}", row.0.value()), row.1.value())?);
        }
        Ok(snapshot)
    }

    fn write(&self, batch: &Batch) -> Result<(), StoreError> {
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
                drift.insert(seq_key(device, w.summary.seq).as_str(), json(w)?.as_slice()).map_err(db_err)?;
            }
            for (device, keep_from) in &batch.drift_keep_from {
                let (start, end) = (seq_key(device, 0), seq_key(device, *keep_from));
                drift.retain_in(start.as_str()..end.as_str(), |_, _| false).map_err(db_err)?;
            }
            let mut samples = tx.open_table(SAMPLES).map_err(db_err)?;
            for (device, b) in &batch.samples {
                samples.insert(seq_key(device, b.seq).as_str(), json(b)?.as_slice()).map_err(db_err)?;
            }
            for (device, keep_from) in &batch.samples_keep_from {
                let (start, end) = (seq_key(device, 0), seq_key(device, *keep_from));
                samples.retain_in(start.as_str()..end.as_str(), |_, _| false).map_err(db_err)?;
            }
            let mut labels = tx.open_table(LABELS).map_err(db_err)?;
            for (device, l) in &batch.labels {
                labels.insert(seq_key(device, l.seq).as_str(), json(l)?.as_slice()).map_err(db_err)?;
            }
            for (device, keep_from) in &batch.labels_keep_from {
                let (start, end) = (seq_key(device, 0), seq_key(device, *keep_from));
                labels.retain_in(start.as_str()..end.as_str(), |_, _| false).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    fn audit(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(AUDIT).map_err(db_err)?;
        let mut out = Vec::new();
        for row in table.range(from..).map_err(db_err)?.take(limit) {
            let (k, v) = row.map_err(db_err)?;
            out.push(parse(&format!("audit {}", k.value()), v.value())?);
        }
        Ok(out)
    }

    fn samples(
        &self,
        model: &str,
        device: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Vec<(DeviceId, SampleBatch)>, StoreError> {
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
                out.push((device_of(k.value())?, batch));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn labels(&self, device: &DeviceId) -> Result<Vec<SampleLabels>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(LABELS).map_err(db_err)?;
        let (start, end) = (seq_key(device, 0), seq_key(device, u64::MAX));
        let mut out = Vec::new();
        for row in table.range(start.as_str()..=end.as_str()).map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            out.push(parse(k.value(), v.value())?);
        }
        Ok(out)
    }
}

fn corrupt(key: &str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt { key: key.to_string(), detail: detail.to_string() }
}

/// The device of a `<device>/<seq>` key.
fn device_of(key: &str) -> Result<DeviceId, StoreError> {
    let device = key.rsplit_once('/').map_or(key, |(d, _)| d);
    device.parse().map_err(|e| corrupt(key, e))
}
