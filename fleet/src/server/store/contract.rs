//! The contract every [`FleetStore`] passes: one suite, run against each implementation
//! (`store::tests` runs it on [`FleetDb`](super::FleetDb) and [`MemoryStore`](super::MemoryStore);
//! a new engine calls [`run_all`] from its own tests). Each check opens a fresh store from
//! `make`, so checks cannot lean on one another.

use super::{Batch, FleetStore};
use crate::drift::device::StoredWindow;
use crate::rollout::{Rollout, RolloutId, Target};
use crate::server::audit::{self, AuditEntry};
use crate::server::models::{ModelRecord, VariantInfo};
use crate::server::registry::DeviceRecord;
use crate::server::rollouts::{RolloutRecord, RolloutRequest};
use edgefleet_protocol::command::{CommandId, ProbationBudget};
use edgefleet_protocol::drift::{DriftReference, Feedback};
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::uplink::{DriftSummary, SampleBatch, SampleLabel, SampleLabels, SampleRecord};
use edgefleet_protocol::{DeviceId, Digest, ModelName};
use std::collections::BTreeMap;

/// Makes a fresh, empty store.
pub type MakeStore<'a> = &'a dyn Fn() -> Box<dyn FleetStore>;

/// Runs every check of the contract on stores from `make` (panics on the first violation).
pub fn run_all(make: MakeStore<'_>) {
    an_empty_store_loads_nothing(make);
    a_written_batch_loads_back(make);
    records_are_replaced_by_key(make);
    audit_entries_page_in_sequence_order(make);
    keep_from_deletes_only_that_devices_older_entries(make);
    samples_filter_by_model_and_device_in_key_order(make);
    an_empty_batch_changes_nothing(make);
}

fn device_id(name: &str) -> DeviceId {
    DeviceId::new(name).expect("a valid device id")
}

/// A device record as the registry would keep it.
pub fn device(name: &str, hardware: HardwareClass) -> DeviceRecord {
    let mut d = DeviceRecord::new(device_id(name), 1_000);
    d.hardware = Some(hardware);
    d.labels.insert("site".into(), "plant-a".into());
    d
}

/// A model record with one CPU variant.
pub fn model(name: &str, version_seq: u64) -> ModelRecord {
    ModelRecord {
        name: name.into(),
        version_seq,
        label: format!("v{version_seq}"),
        package_id: Digest::sha256(name.as_bytes()).to_hex(),
        head_size: 512,
        package_size: 4096,
        variants: vec![VariantInfo {
            hardware: HardwareClass::Cpu,
            precision: "fp32".into(),
            size: 3000,
            digest: Digest::sha256(b"blob").to_hex(),
        }],
        key_id: "00".repeat(8),
        pushed_at_ms: 2_000,
        pushed_by: "ops".into(),
        drift_reference: DriftReference::default(),
    }
}

/// A started rollout of `model` to `targets` (CPU devices).
pub fn rollout(id: u32, model: &ModelRecord, targets: &[&str]) -> RolloutRecord {
    let request: RolloutRequest =
        serde_json::from_value(serde_json::json!({"model": model.name, "version_seq": model.version_seq}))
            .expect("a minimal rollout request");
    let defaults =
        ProbationBudget { duration_ms: 1_000, min_inferences: 0, max_error_rate_ppm: 0, max_p99_latency_us: 0 };
    let (plan, probation) = request.plan(&defaults).expect("the default plan");
    let targets =
        targets.iter().map(|d| Target { device: device_id(d), hardware: HardwareClass::Cpu }).collect::<Vec<_>>();
    let mut machine = Rollout::new(RolloutId(id), plan, targets).expect("a valid rollout");
    machine.handle(crate::rollout::Event::Start);
    let first = device_id(targets_first(&machine));
    RolloutRecord {
        id,
        request,
        created_by: "ops".into(),
        created_at_ms: 3_000,
        finished_at_ms: None,
        package_id: model.package_id.parse().expect("a hex package id"),
        head_size: model.head_size,
        probation,
        machine,
        last_heard_ms: BTreeMap::from([(first.clone(), 3_000)]),
        latest_commands: BTreeMap::from([(first.clone(), CommandId(77))]),
        decisions: BTreeMap::new(),
        failures: BTreeMap::from([(first, "disk full".into())]),
        rollback_skipped: BTreeMap::new(),
        holds: BTreeMap::new(),
    }
}

fn targets_first(machine: &Rollout) -> &str {
    machine.targets().next().map_or("edge-1", |(t, _)| t.device.as_str())
}

/// `n` chained audit entries after `prev`.
pub fn audit_entries(prev: Option<&AuditEntry>, n: usize) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    for i in 0..n {
        let last = out.last().or(prev);
        out.push(audit::next_entry(
            last,
            4_000 + i as u64,
            "ops",
            "device.label",
            "device/edge-1",
            serde_json::json!({"i": i}),
        ));
    }
    out
}

/// A drift window of `model` with sequence `seq`.
pub fn window(model: &str, seq: u64) -> StoredWindow {
    StoredWindow {
        received_ms: 5_000 + seq,
        summary: DriftSummary {
            seq,
            model: ModelName::new(model).expect("a valid model name"),
            version_seq: 1,
            window_start_ms: seq * 1_000,
            window_end_ms: (seq + 1) * 1_000,
            rows: 10,
            features: Vec::new(),
            outputs: Vec::new(),
            prediction: None,
            confidence: None,
            feedback: Feedback { labelled: 2, correct: 1 },
        },
        drifting: vec![("x".into(), "psi 0.4".into())],
        evaluated: true,
    }
}

/// A sample batch of `model` with sequence `seq`.
pub fn samples(model: &str, seq: u64) -> SampleBatch {
    SampleBatch {
        seq,
        model: ModelName::new(model).expect("a valid model name"),
        version_seq: 1,
        records: vec![SampleRecord {
            inference_id: seq,
            timestamp_ms: seq,
            inputs: vec![0.5, -1.0],
            outputs: vec![0.25],
        }],
    }
}

/// A label message with sequence `seq`: (inference id, timestamp, label) each.
pub fn labels(seq: u64, labels: &[(u64, u64, i64)]) -> SampleLabels {
    SampleLabels {
        seq,
        labels: labels
            .iter()
            .map(|&(inference_id, timestamp_ms, label)| SampleLabel { inference_id, timestamp_ms, label })
            .collect(),
    }
}

/// One of everything.
pub fn sample_batch() -> Batch {
    let m = model("vibration", 1);
    Batch {
        devices: vec![device("edge-1", HardwareClass::Cpu), device("edge-2", HardwareClass::Gpu)],
        rollouts: vec![rollout(1, &m, &["edge-1", "edge-2"])],
        models: vec![m],
        audit: audit_entries(None, 3),
        drift: vec![(device_id("edge-1"), window("vibration", 1)), (device_id("edge-1"), window("vibration", 2))],
        drift_keep_from: Vec::new(),
        samples: vec![(device_id("edge-2"), samples("vibration", 1))],
        samples_keep_from: Vec::new(),
        labels: vec![(device_id("edge-2"), labels(1, &[(1, 1, 4)]))],
        labels_keep_from: Vec::new(),
    }
}

/// Asserts that `store` loads exactly what `batch` wrote into an empty store.
pub fn assert_loads(store: &dyn FleetStore, batch: &Batch) {
    let s = store.load().expect("load");
    assert_eq!(s.devices, batch.devices, "devices, in id order");
    assert_eq!(s.models, batch.models, "models");
    assert_eq!(s.rollouts, batch.rollouts, "rollouts, the machine and typed maps included");
    assert_eq!(s.audit_tail.as_ref(), batch.audit.last(), "the audit tail is the last entry");
    assert_eq!(s.drift, batch.drift, "drift windows, oldest first");
    let seqs: Vec<_> = batch.samples.iter().map(|(d, b)| (d.clone(), b.seq)).collect();
    assert_eq!(s.sample_seqs, seqs, "sample batch sequence numbers");
    let seqs: Vec<_> = batch.labels.iter().map(|(d, l)| (d.clone(), l.seq)).collect();
    assert_eq!(s.label_seqs, seqs, "label message sequence numbers");
    for (device, l) in &batch.labels {
        assert!(store.labels(device).expect("labels").contains(l), "labels of {device}");
    }
}

fn an_empty_store_loads_nothing(make: MakeStore<'_>) {
    let s = make().load().expect("load");
    assert!(s.devices.is_empty() && s.models.is_empty() && s.rollouts.is_empty());
    assert!(s.audit_tail.is_none() && s.drift.is_empty() && s.sample_seqs.is_empty());
}

fn a_written_batch_loads_back(make: MakeStore<'_>) {
    let store = make();
    let batch = sample_batch();
    store.write(&batch).expect("write");
    assert_loads(&*store, &batch);
    assert_eq!(store.audit(0, 100).expect("audit"), batch.audit);
}

fn records_are_replaced_by_key(make: MakeStore<'_>) {
    let store = make();
    let batch = sample_batch();
    store.write(&batch).expect("write");
    let mut changed = batch.devices[0].clone();
    changed.labels.insert("site".into(), "plant-b".into());
    let mut finished = batch.rollouts[0].clone();
    finished.finished_at_ms = Some(9_000);
    let mut relabelled = batch.models[0].clone();
    relabelled.label = "v1-fixed".into();
    let second = Batch {
        devices: vec![changed.clone()],
        models: vec![relabelled.clone()],
        rollouts: vec![finished.clone()],
        ..Batch::default()
    };
    store.write(&second).expect("second write");
    let s = store.load().expect("load");
    assert_eq!(s.devices.len(), 2);
    assert_eq!(s.devices[0], changed);
    assert_eq!(s.models, vec![relabelled]);
    assert_eq!(s.rollouts, vec![finished]);
}

fn audit_entries_page_in_sequence_order(make: MakeStore<'_>) {
    let store = make();
    let first = audit_entries(None, 5);
    store.write(&Batch { audit: first.clone(), ..Batch::default() }).expect("write");
    let more = audit_entries(first.last(), 5);
    store.write(&Batch { audit: more.clone(), ..Batch::default() }).expect("write");
    let all: Vec<AuditEntry> = first.into_iter().chain(more).collect();
    assert_eq!(store.audit(0, 100).expect("audit"), all);
    assert_eq!(store.audit(3, 4).expect("audit"), all[3..7].to_vec(), "from 3, 4 entries");
    assert!(store.audit(10, 5).expect("audit").is_empty(), "past the end");
    assert_eq!(store.load().expect("load").audit_tail.as_ref(), all.last());
    assert_eq!(audit::verify_chain(store.audit(0, 100).expect("audit")).ok(), Some(10), "the chain is intact");
}

fn keep_from_deletes_only_that_devices_older_entries(make: MakeStore<'_>) {
    let store = make();
    // `edge-1` and `edge-10` share a key prefix: trimming one must not touch the other.
    let (one, ten) = (device_id("edge-1"), device_id("edge-10"));
    let mut batch = Batch::default();
    for seq in 1..=4 {
        batch.drift.push((one.clone(), window("vibration", seq)));
        batch.drift.push((ten.clone(), window("vibration", seq)));
        batch.samples.push((one.clone(), samples("vibration", seq)));
        batch.samples.push((ten.clone(), samples("vibration", seq)));
        batch.labels.push((one.clone(), labels(seq, &[(seq, seq, 1)])));
        batch.labels.push((ten.clone(), labels(seq, &[(seq, seq, 1)])));
    }
    store.write(&batch).expect("write");
    let trim = Batch {
        drift: vec![(one.clone(), window("vibration", 5))],
        drift_keep_from: vec![(one.clone(), 3)],
        samples_keep_from: vec![(one.clone(), 4)],
        labels_keep_from: vec![(one.clone(), 3)],
        ..Batch::default()
    };
    store.write(&trim).expect("trim");
    let label_seqs = |d: &DeviceId| store.labels(d).expect("labels").iter().map(|l| l.seq).collect::<Vec<_>>();
    assert_eq!(label_seqs(&one), vec![3, 4]);
    assert_eq!(label_seqs(&ten), vec![1, 2, 3, 4]);
    assert!(store.labels(&device_id("edge-2")).expect("labels").is_empty());
    let s = store.load().expect("load");
    let drift_of =
        |d: &DeviceId| s.drift.iter().filter(|(x, _)| x == d).map(|(_, w)| w.summary.seq).collect::<Vec<_>>();
    assert_eq!(drift_of(&one), vec![3, 4, 5]);
    assert_eq!(drift_of(&ten), vec![1, 2, 3, 4]);
    let samples_of = |d: &DeviceId| s.sample_seqs.iter().filter(|(x, _)| x == d).map(|(_, q)| *q).collect::<Vec<_>>();
    assert_eq!(samples_of(&one), vec![4]);
    assert_eq!(samples_of(&ten), vec![1, 2, 3, 4]);
    let trim_alone = Batch { drift_keep_from: vec![(ten.clone(), 4)], ..Batch::default() };
    store.write(&trim_alone).expect("a batch that only trims");
    let s = store.load().expect("load");
    assert_eq!(s.drift.iter().filter(|(x, _)| x == &ten).count(), 1, "a trim-only batch is written");
}

fn samples_filter_by_model_and_device_in_key_order(make: MakeStore<'_>) {
    let store = make();
    let (a, b) = (device_id("edge-a"), device_id("edge-b"));
    let batch = Batch {
        samples: vec![
            (b.clone(), samples("vibration", 1)),
            (a.clone(), samples("vibration", 2)),
            (a.clone(), samples("other", 3)),
            (a.clone(), samples("vibration", 4)),
        ],
        ..Batch::default()
    };
    store.write(&batch).expect("write");
    let got = |device: Option<&DeviceId>, limit| {
        store
            .samples("vibration", device, limit)
            .expect("samples")
            .into_iter()
            .map(|(d, s)| (d.to_string(), s.seq))
            .collect::<Vec<_>>()
    };
    let pairs = |v: &[(&str, u64)]| v.iter().map(|(d, q)| (d.to_string(), *q)).collect::<Vec<_>>();
    assert_eq!(got(None, 100), pairs(&[("edge-a", 2), ("edge-a", 4), ("edge-b", 1)]));
    assert_eq!(got(Some(&a), 100), pairs(&[("edge-a", 2), ("edge-a", 4)]));
    assert_eq!(got(None, 2), pairs(&[("edge-a", 2), ("edge-a", 4)]), "limit counts batches");
    assert!(got(Some(&device_id("edge-c")), 100).is_empty());
    let full = store.samples("vibration", Some(&b), 10).expect("samples");
    assert_eq!(full, vec![(b, samples("vibration", 1))], "records come back as written");
}

fn an_empty_batch_changes_nothing(make: MakeStore<'_>) {
    let store = make();
    store.write(&Batch::default()).expect("an empty write");
    let batch = sample_batch();
    store.write(&batch).expect("write");
    store.write(&Batch::default()).expect("an empty write");
    assert_loads(&*store, &batch);
}
