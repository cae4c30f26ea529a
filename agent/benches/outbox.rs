//! Outbox throughput and footprint on redb and sled:
//! `cargo bench -p edgefleet-agent --bench outbox`.
//!
//! For each engine, in its own process (so RSS is the engine's own): durable single pushes/s,
//! durable pushes/s in batches of 100, then a fill of 100,000 × 1 KiB records with no cap, the
//! process RSS after it, a drain by acks, and the data dir's size after the drain. The baseline,
//! measured in the same run on the same filesystem, is a raw `write(1 KiB) + fdatasync` loop
//! appending to a file: what one durable record per commit costs without any engine.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet_agent::outbox::{Outbox, OutboxLimits, RedbStore, SledStore, Store, Stream};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const SINGLE_PUSHES: u64 = 1_000;
const BATCHES: u64 = 300;
const BATCH: u64 = 100;
const FILL: u64 = 100_000;
const RECORD_BYTES: usize = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--engine") {
        let engine = args.get(i + 1).map(String::as_str).unwrap_or_default();
        let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        match engine {
            "redb" => run(engine, dir.path(), RedbStore::open(dir.path().join(RedbStore::FILE_NAME)).unwrap()),
            "sled" => run(engine, dir.path(), SledStore::open(dir.path().join(SledStore::DIR_NAME)).unwrap()),
            other => panic!("unknown engine {other}"),
        }
        return;
    }
    // This machine's disk speed drifts by 10× within minutes (shared storage): interleave the
    // baseline and both engines, and report medians of ROUNDS runs and of the per-run ratios.
    let mut baselines = Vec::new();
    let mut results: Vec<Vec<[f64; 4]>> = vec![Vec::new(); ENGINES.len()];
    for _ in 0..ROUNDS {
        baselines.push(fdatasync_baseline());
        for (engine, out) in ENGINES.iter().zip(results.iter_mut()) {
            let child = Command::new(&args[0]).args(["--engine", engine]).output().unwrap();
            assert!(child.status.success(), "{}", String::from_utf8_lossy(&child.stderr));
            let line = String::from_utf8(child.stdout).unwrap();
            let v: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
            out.push([v[0], v[1], v[2], v[3]]);
        }
    }
    println!("baseline write(1 KiB) + fdatasync, per round: {}/s", join(&baselines));
    println!();
    println!(
        "| engine | single push/s (median of {ROUNDS}) | ÷ baseline (median) | pushes/s in batches of 100 | RSS after 100k × 1 KiB | data dir after drain |"
    );
    println!("|---|---|---|---|---|---|");
    for (engine, out) in ENGINES.iter().zip(&results) {
        let col = |i: usize| median(out.iter().map(|r| r[i]).collect());
        let ratio = median(out.iter().zip(&baselines).map(|(r, b)| r[0] / b).collect());
        println!(
            "| {engine} | {:.0} ({}) | {ratio:.2}× | {:.0} ({}) | {:.0} MiB | {:.1} MiB |",
            col(0),
            join(&out.iter().map(|r| r[0]).collect::<Vec<_>>()),
            col(1),
            join(&out.iter().map(|r| r[1]).collect::<Vec<_>>()),
            col(2) / f64::from(1 << 20),
            col(3) / f64::from(1 << 20)
        );
    }
}

const ENGINES: [&str; 2] = ["redb", "sled"];
const ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn join(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ")
}

/// Prints `single/s batched/s rss_bytes disk_bytes_after_drain` for one engine.
fn run<S: Store>(engine: &str, dir: &Path, store: S) {
    let outbox = Outbox::open(store, OutboxLimits { max_bytes: u64::MAX, max_age_ms: u64::MAX }).unwrap();
    let payload = vec![b'x'; RECORD_BYTES];

    let start = Instant::now();
    for _ in 0..SINGLE_PUSHES {
        outbox.push(Stream::Health, 0, |_| payload.clone()).unwrap();
    }
    let single = SINGLE_PUSHES as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    for _ in 0..BATCHES {
        outbox.push_batch(Stream::Samples, 0, 0..BATCH, |_, _| payload.clone()).unwrap();
    }
    let batched = (BATCHES * BATCH) as f64 / start.elapsed().as_secs_f64();

    for _ in 0..FILL / 1_000 {
        outbox.push_batch(Stream::Drift, 0, 0..1_000, |_, _| payload.clone()).unwrap();
    }
    let rss = rss_bytes();
    for stream in Stream::all() {
        loop {
            let seqs: Vec<u64> = outbox.pending(stream, 0, 1_000).unwrap().iter().map(|r| r.seq).collect();
            if seqs.is_empty() {
                break;
            }
            outbox.ack_batch(stream, &seqs).unwrap();
        }
    }
    // A last durable push makes the acks durable too; then drop it.
    let seq = outbox.push(Stream::Health, 0, |_| Vec::new()).unwrap();
    outbox.ack(Stream::Health, seq).unwrap();
    assert_eq!(outbox.stats().depth, 0, "{engine}");
    drop(outbox);
    println!("{single} {batched} {rss} {}", dir_bytes(dir));
}

fn fdatasync_baseline() -> f64 {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let mut file = std::fs::File::create(dir.path().join("baseline")).unwrap();
    let record = vec![b'x'; RECORD_BYTES];
    let start = Instant::now();
    for _ in 0..SINGLE_PUSHES {
        file.write_all(&record).unwrap();
        file.sync_data().unwrap();
    }
    SINGLE_PUSHES as f64 / start.elapsed().as_secs_f64()
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() { dir_bytes(&e.path()) } else { meta.len() }
        })
        .sum()
}
