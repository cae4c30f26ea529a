//! The fleet's stored device samples as dataset CSV (`dataset create --from-samples`) and as
//! `edgefleet samples export` writes them: one writer for both.
//!
//! Columns: `device,version_seq,inference_id,timestamp_ms,in_0…,out_0…` and, for datasets (or
//! when a record has one), `label`, the ground truth an operator's application reported with
//! `POST /v1/feedback` on the device (empty when none arrived). Rows in the order the store
//! reads them (devices by id, batches by sequence, records in batch order), so the same
//! stored samples always give the same bytes, and so the same dataset digest.

use super::{ModelVersionRef, Provenance, TimeRange};
use crate::api::samples::SampleRecord;
use std::collections::BTreeSet;

/// Which stored samples become the dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleFilter {
    /// Only these devices (`None`: every device).
    pub devices: Option<BTreeSet<String>>,
    /// Only records at or after this time (device clock, ms since the epoch).
    pub since_ms: Option<u64>,
    /// Only records with a label.
    pub labelled_only: bool,
}

impl SampleFilter {
    /// Whether `record` is kept.
    pub fn keeps(&self, record: &SampleRecord) -> bool {
        self.devices.as_ref().is_none_or(|d| d.contains(&record.device))
            && self.since_ms.is_none_or(|since| record.timestamp_ms >= since)
            && (!self.labelled_only || record.label.is_some())
    }
}

/// `records` as CSV; with `label`, a last `label` column.
pub fn to_csv(records: &[SampleRecord], label: bool) -> String {
    let (inputs, outputs) = (
        records.iter().map(|r| r.inputs.len()).max().unwrap_or(0),
        records.iter().map(|r| r.outputs.len()).max().unwrap_or(0),
    );
    let mut csv = String::from("device,version_seq,inference_id,timestamp_ms");
    csv.extend((0..inputs).map(|i| format!(",in_{i}")));
    csv.extend((0..outputs).map(|i| format!(",out_{i}")));
    if label {
        csv.push_str(",label");
    }
    csv.push('\n');
    for r in records {
        csv.push_str(&format!("{},{},{},{}", r.device, r.version_seq, r.inference_id, r.timestamp_ms));
        for (values, n) in [(&r.inputs, inputs), (&r.outputs, outputs)] {
            for i in 0..n {
                csv.push(',');
                // As f64, the way the values were always written.
                if let Some(v) = values.get(i).copied().flatten() {
                    csv.push_str(&f64::from(v).to_string());
                }
            }
        }
        if label {
            csv.push(',');
            if let Some(l) = r.label {
                csv.push_str(&l.to_string());
            }
        }
        csv.push('\n');
    }
    csv
}

/// What the rows say about where they came from: devices, time range, model versions.
pub fn fill_provenance(records: &[SampleRecord], provenance: &mut Provenance) {
    let devices: BTreeSet<&str> = records.iter().map(|r| r.device.as_str()).collect();
    let versions: BTreeSet<ModelVersionRef> =
        records.iter().map(|r| ModelVersionRef { model: r.model.clone(), version_seq: r.version_seq }).collect();
    provenance.devices = devices.into_iter().map(str::to_string).collect();
    provenance.model_versions = versions.into_iter().collect();
    provenance.time_range =
        match (records.iter().map(|r| r.timestamp_ms).min(), records.iter().map(|r| r.timestamp_ms).max()) {
            (Some(from_ms), Some(to_ms)) => Some(TimeRange { from_ms, to_ms }),
            _ => None,
        };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(device: &str, id: u64, ts: u64, label: Option<i64>) -> SampleRecord {
        SampleRecord {
            device: device.into(),
            model: "vib".into(),
            version_seq: 2,
            inference_id: id,
            timestamp_ms: ts,
            inputs: vec![Some(0.5), None],
            outputs: vec![Some(1.0)],
            label,
        }
    }

    #[test]
    fn csv_rows_and_labels() {
        let records = [record("a", 1, 10, Some(3)), record("b", 2, 20, None)];
        assert_eq!(
            to_csv(&records, true),
            "device,version_seq,inference_id,timestamp_ms,in_0,in_1,out_0,label\na,2,1,10,0.5,,1,3\nb,2,2,20,0.5,,1,\n"
        );
        assert_eq!(
            to_csv(&records, false).lines().next(),
            Some("device,version_seq,inference_id,timestamp_ms,in_0,in_1,out_0")
        );
    }

    #[test]
    fn filters_and_provenance() {
        let records = [record("a", 1, 10, Some(3)), record("b", 2, 20, None), record("c", 3, 5, Some(1))];
        let filter = SampleFilter {
            devices: Some(["a".to_string(), "b".to_string()].into()),
            since_ms: Some(8),
            labelled_only: true,
        };
        let kept: Vec<SampleRecord> = records.iter().filter(|r| filter.keeps(r)).cloned().collect();
        assert_eq!(kept.iter().map(|r| r.inference_id).collect::<Vec<_>>(), [1]);
        let mut p = Provenance::default();
        fill_provenance(&records, &mut p);
        assert_eq!(p.devices, ["a", "b", "c"]);
        assert_eq!(p.time_range, Some(TimeRange { from_ms: 5, to_ms: 20 }));
        assert_eq!(p.model_versions, vec![ModelVersionRef { model: "vib".into(), version_seq: 2 }]);
    }
}
