//! Outbox + MQTT link in a real process, SIGKILLed at random points while the broker
//! (Mosquitto) is reachable and while it is not: afterwards every record acknowledged to its
//! producer reaches a subscriber, in order, exactly once after dropping duplicates by seq.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{Recorder, unique_namespace};
use edgefleet_protocol::decode;
use edgefleet_protocol::uplink::Health;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const UP: &str = "mqtt://127.0.0.1:1883";
/// Nothing listens on the discard port: connections are refused, as with a broker that is down.
const DOWN: &str = "mqtt://127.0.0.1:9";

fn spawn(dir: &Path, broker: &str, namespace: &str, count: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_edgefleet-agent"))
        .args(["uplink-stress", "--broker-url", broker, "--namespace", namespace, "--device-id", "dev-k"])
        .args(["--count", &count.to_string(), "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// SIGKILLs `child` and returns the seqs it acknowledged (complete lines only).
fn kill_and_collect(mut child: Child) -> Vec<u64> {
    child.kill().unwrap();
    child.wait().unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let complete = out.rfind('\n').map_or("", |end| &out[..end]);
    complete.lines().map(|l| l.parse().unwrap()).collect()
}

fn health_seqs(recorder: &Recorder) -> Vec<u64> {
    recorder.on("/devices/dev-k/health").iter().map(|p| decode::<Health>(p).unwrap().seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_arrive_once_in_order_across_kills_with_broker_up_and_down() {
    let namespace = unique_namespace();
    let recorder = Recorder::start(&namespace).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let mut acknowledged = BTreeSet::new();
    let mut rounds_down = 0;
    for round in 0..16 {
        let broker = if round % 3 == 1 { DOWN } else { UP };
        rounds_down += usize::from(broker == DOWN);
        let child = spawn(dir.path(), broker, &namespace, 100_000_000);
        tokio::time::sleep(Duration::from_millis(rng.random_range(80..400))).await;
        let printed = kill_and_collect(child);
        acknowledged.extend(printed);
    }
    assert!(rounds_down >= 5);
    assert!(acknowledged.len() > 500, "the producer made progress ({} records)", acknowledged.len());

    // Restart once more with the broker up and no new records: the outbox drains.
    let drain = spawn(dir.path(), UP, &namespace, 0);
    let highest = *acknowledged.last().unwrap();
    recorder.wait_for(60, "every acknowledged record", |r| health_seqs(r).iter().any(|s| *s >= highest)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill_and_collect(drain);

    let received = health_seqs(&recorder);
    let mut deduped: Vec<u64> = Vec::new();
    for seq in &received {
        if deduped.last().is_none_or(|last| seq > last) {
            deduped.push(*seq);
        }
    }
    // In order and without gaps: the first copy of every seq arrived after the one before it.
    let top = *deduped.last().unwrap();
    assert_eq!(deduped, (1..=top).collect::<Vec<_>>(), "gap or reordering in {} received", received.len());
    let missing: Vec<u64> = acknowledged.iter().filter(|s| **s > top).copied().collect();
    assert!(missing.is_empty(), "acknowledged but never received: {missing:?}");
    let duplicates = received.len() - deduped.len();
    eprintln!("{} acknowledged, {} received, {duplicates} duplicates dropped", acknowledged.len(), received.len());
}
