//! Hours of traffic through a capped outbox: does the disk stay bounded?
//!
//! Each cycle fills the outbox past its 4 MiB cap with ~1 KiB sample records and some health
//! records (evicting samples), then drains it by acking everything, as a device does when its
//! link comes back. 40 cycles, 201,000 records, in 2,040 durable commits. The size of the data dir (sum of file sizes,
//! and of allocated blocks) is measured after every fill and every drain.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet_agent::outbox::{Outbox, OutboxLimits, RedbStore, SledStore, Store, Stream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const CAP: u64 = 4 << 20;
const CYCLES: usize = 40;
const BATCHES_PER_FILL: usize = 25;
const SAMPLES_PER_BATCH: usize = 200;
const SAMPLE_BYTES: usize = 1_000;
const HEALTH_BYTES: usize = 200;
/// The bound the default engine must hold: 4× the cap.
const BOUND: u64 = 4 * CAP;

#[derive(Debug, Default)]
struct Measured {
    /// Largest data dir size (apparent bytes, allocated bytes) seen after any fill or drain.
    peak: (u64, u64),
    /// Data dir size after the last drain (apparent, allocated).
    after_drain: (u64, u64),
    records: u64,
    evicted: u64,
}

impl Measured {
    fn note(&mut self, usage: (u64, u64)) {
        self.peak = (self.peak.0.max(usage.0), self.peak.1.max(usage.1));
    }
}

/// (sum of file lengths, sum of allocated blocks) under `dir`.
fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let (len, alloc) = disk_usage(&entry.path());
            total = (total.0 + len, total.1 + alloc);
        } else {
            total = (total.0 + meta.len(), total.1 + meta.blocks() * 512);
        }
    }
    total
}

fn churn<S: Store>(dir: &Path, store: S) -> Measured {
    let outbox = Outbox::open(store, OutboxLimits { max_bytes: CAP, max_age_ms: u64::MAX }).unwrap();
    let mut measured = Measured::default();
    let mut now_ms = 0;
    let template = vec![b'x'; SAMPLE_BYTES];
    for _ in 0..CYCLES {
        for _ in 0..BATCHES_PER_FILL {
            now_ms += 1_000;
            outbox
                .push_batch(Stream::Samples, now_ms, 0..SAMPLES_PER_BATCH, |_, seq| {
                    let mut p = template.clone();
                    p[..8].copy_from_slice(&seq.to_le_bytes());
                    p
                })
                .unwrap();
            outbox
                .push(Stream::Health, now_ms, |seq| format!("health {seq} {:.<1$}", "", HEALTH_BYTES).into_bytes())
                .unwrap();
            measured.records += SAMPLES_PER_BATCH as u64 + 1;
        }
        assert!(outbox.stats().bytes <= CAP);
        measured.note(disk_usage(dir));
        for stream in Stream::all() {
            loop {
                let seqs: Vec<u64> = outbox.pending(stream, 0, 1_000).unwrap().iter().map(|r| r.seq).collect();
                if seqs.is_empty() {
                    break;
                }
                outbox.ack_batch(stream, &seqs).unwrap();
            }
        }
        assert_eq!(outbox.stats().depth, 0);
        // One more durable push commits the acks (they ride on the next append), then drain it.
        let seq = outbox.push(Stream::Health, now_ms, |seq| seq.to_le_bytes().to_vec()).unwrap();
        outbox.ack(Stream::Health, seq).unwrap();
        measured.after_drain = disk_usage(dir);
        measured.note(measured.after_drain);
    }
    let stats = outbox.stats();
    measured.evicted = stats.evictions.iter().map(|(_, n)| n).sum();
    assert_eq!(stats.evictions[Stream::Health], 0, "health must not be evicted while samples remain");
    measured
}

fn report(engine: &str, m: &Measured) {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    eprintln!(
        "{engine}: {} records ({} samples evicted) through a {} MiB cap: peak data dir {:.1} MiB ({:.1} MiB allocated), \
         after the last drain {:.1} MiB ({:.1} MiB allocated); bound {} MiB",
        m.records,
        m.evicted,
        mib(CAP),
        mib(m.peak.0),
        mib(m.peak.1),
        mib(m.after_drain.0),
        mib(m.after_drain.1),
        mib(BOUND)
    );
}

/// redb, the default engine, reuses freed pages: its file stays within 4× the cap (measured:
/// 8.5 MiB peak, 6.2 MiB after a drain, flat over 600k records).
#[test]
fn redb_disk_use_stays_bounded_under_churn() {
    let dir = tempfile::tempdir().unwrap();
    let measured = churn(dir.path(), RedbStore::open(dir.path().join(RedbStore::FILE_NAME)).unwrap());
    report("redb", &measured);
    assert!(measured.peak.0 <= BOUND && measured.peak.1 <= BOUND, "redb exceeded {BOUND} bytes: {measured:?}");
}

/// sled (measured here: 13–18.5 MiB peak, 12–16 MiB after a drain, over 600k records) holds
/// about 4× the cap whatever the outbox contains, and does not give it back when the outbox is
/// empty. This pins that behaviour: if it fails, sled changed and the engine choice in
/// ARCHITECTURE.md deserves another look. The upper assertion catches unbounded growth.
#[test]
fn sled_does_not_give_space_back_after_a_drain() {
    let dir = tempfile::tempdir().unwrap();
    let measured = churn(dir.path(), SledStore::open(dir.path().join(SledStore::DIR_NAME)).unwrap());
    report("sled", &measured);
    assert!(measured.after_drain.0 > 2 * CAP, "sled now keeps under 2x the cap after a drain: {measured:?}");
    assert!(measured.peak.0 <= 8 * CAP, "sled grew past 8x the cap: {measured:?}");
}
