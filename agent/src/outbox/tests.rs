//! The outbox policy against [`MemoryStore`], plus restarts on the real engines.
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use std::sync::Arc;

const NO_AGE: u64 = u64::MAX;

fn outbox(max_bytes: u64, max_age_ms: u64) -> Outbox<MemoryStore> {
    Outbox::open(MemoryStore::new(), OutboxLimits { max_bytes, max_age_ms }).unwrap()
}

/// A payload of exactly `size` counted bytes that names its stream and seq.
fn payload(stream: Stream, seq: u64, size: u64) -> Vec<u8> {
    let mut p = format!("{stream}:{seq}:").into_bytes();
    p.resize((size - RECORD_OVERHEAD) as usize, b'.');
    p
}

fn push(outbox: &Outbox<impl Store>, stream: Stream, now_ms: u64, size: u64) -> u64 {
    outbox.push(stream, now_ms, |seq| payload(stream, seq, size)).unwrap()
}

fn seqs(outbox: &Outbox<impl Store>, stream: Stream) -> Vec<u64> {
    outbox.pending(stream, 0, usize::MAX).unwrap().iter().map(|r| r.seq).collect()
}

#[test]
fn seqs_start_at_one_and_count_per_stream() {
    let outbox = outbox(1 << 20, NO_AGE);
    assert_eq!(push(&outbox, Stream::Health, 0, 100), 1);
    assert_eq!(push(&outbox, Stream::Health, 0, 100), 2);
    assert_eq!(push(&outbox, Stream::Samples, 0, 100), 1);
    assert_eq!(outbox.push_batch(Stream::Health, 0, 0..3, |_, seq| payload(Stream::Health, seq, 50)).unwrap(), 3..6);
    assert_eq!(outbox.push_batch(Stream::Ack, 0, Vec::<u8>::new(), |_, _| Vec::new()).unwrap(), 1..1);
    assert_eq!(push(&outbox, Stream::Ack, 0, 100), 1);
    // The payload carries the seq it was built with.
    for record in outbox.pending(Stream::Health, 0, 10).unwrap() {
        assert!(record.payload.starts_with(format!("health:{}:", record.seq).as_bytes()));
    }
}

#[test]
fn pending_is_ordered_and_does_not_remove() {
    let outbox = outbox(1 << 20, NO_AGE);
    for _ in 0..10 {
        push(&outbox, Stream::Drift, 7, 40);
    }
    assert_eq!(seqs(&outbox, Stream::Drift), (1..=10).collect::<Vec<_>>());
    let page: Vec<u64> = outbox.pending(Stream::Drift, 4, 3).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(page, [5, 6, 7]);
    assert_eq!(outbox.pending(Stream::Drift, 10, 3).unwrap(), []);
    assert_eq!(outbox.pending(Stream::Health, 0, 3).unwrap(), []);
    assert_eq!(outbox.stats().depth, 10);
    assert_eq!(outbox.pending(Stream::Drift, 0, 1).unwrap()[0].created_ms, 7);
}

#[test]
fn ack_deletes_once_and_tolerates_unknown_seqs() {
    let outbox = outbox(1 << 20, NO_AGE);
    for _ in 0..5 {
        push(&outbox, Stream::Ack, 0, 100);
    }
    outbox.ack(Stream::Ack, 2).unwrap();
    outbox.ack(Stream::Ack, 2).unwrap();
    outbox.ack(Stream::Ack, 99).unwrap();
    outbox.ack(Stream::Health, 1).unwrap();
    outbox.ack_batch(Stream::Ack, &[4, 5, 5]).unwrap();
    assert_eq!(seqs(&outbox, Stream::Ack), [1, 3]);
    let stats = outbox.stats();
    assert_eq!((stats.depth, stats.bytes), (2, 200));
    assert_eq!(stats.evictions, PerStream::default(), "acks are not evictions");
    // Acking never frees a seq for reuse.
    assert_eq!(push(&outbox, Stream::Ack, 0, 100), 6);
}

#[test]
fn byte_cap_evicts_samples_first_then_drift_and_keeps_deployment_and_health() {
    let outbox = outbox(2_000, NO_AGE);
    push(&outbox, Stream::Deployment, 0, 200);
    push(&outbox, Stream::Health, 0, 200);
    push(&outbox, Stream::Drift, 0, 200);
    push(&outbox, Stream::Drift, 0, 200);
    for _ in 0..6 {
        push(&outbox, Stream::Samples, 0, 200);
    }
    assert_eq!(outbox.stats().bytes, 2_000);
    assert_eq!(outbox.stats().evictions, PerStream::default());
    // One more sample: the oldest sample goes.
    push(&outbox, Stream::Samples, 0, 200);
    assert_eq!(seqs(&outbox, Stream::Samples), [2, 3, 4, 5, 6, 7]);
    // A big health report pushes out every sample, then the oldest drift record.
    push(&outbox, Stream::Health, 0, 1_300);
    assert_eq!(seqs(&outbox, Stream::Samples), Vec::<u64>::new());
    assert_eq!(seqs(&outbox, Stream::Drift), [2]);
    assert_eq!(seqs(&outbox, Stream::Health), [1, 2]);
    assert_eq!(seqs(&outbox, Stream::Deployment), [1]);
    let stats = outbox.stats();
    assert!(stats.bytes <= 2_000, "{stats:?}");
    assert_eq!(stats.evictions[Stream::Samples], 7);
    assert_eq!(stats.evictions[Stream::Drift], 1);
    assert_eq!(stats.evictions[Stream::Health] + stats.evictions[Stream::Deployment], 0);
}

#[test]
fn protected_streams_are_evicted_oldest_first_once_nothing_lower_is_left() {
    let outbox = outbox(1_000, NO_AGE);
    push(&outbox, Stream::Deployment, 0, 300);
    for _ in 0..3 {
        push(&outbox, Stream::Health, 0, 300);
    }
    // 1200 bytes: the oldest health record goes, deployment (last in eviction order) stays.
    assert_eq!(seqs(&outbox, Stream::Health), [2, 3]);
    assert_eq!(seqs(&outbox, Stream::Deployment), [1]);
    assert_eq!(outbox.stats().evictions[Stream::Health], 1);
    push(&outbox, Stream::Deployment, 0, 600);
    assert_eq!(seqs(&outbox, Stream::Health), Vec::<u64>::new());
    assert_eq!(seqs(&outbox, Stream::Deployment), [1, 2]);
}

#[test]
fn a_record_larger_than_the_cap_is_refused_without_using_a_seq() {
    let outbox = outbox(1_000, NO_AGE);
    let err = outbox.push(Stream::Samples, 0, |seq| payload(Stream::Samples, seq, 1_001)).unwrap_err();
    assert!(matches!(err, OutboxError::TooLarge { size: 1_001, max_bytes: 1_000, .. }), "{err}");
    assert!(err.to_string().contains("max_bytes"));
    assert_eq!(push(&outbox, Stream::Samples, 0, 1_000), 1);
}

#[test]
fn age_limit_drops_old_records_but_keeps_protected_ones_while_lower_streams_remain() {
    let outbox = outbox(1 << 20, 1_000);
    push(&outbox, Stream::Health, 0, 100);
    push(&outbox, Stream::Deployment, 0, 100);
    push(&outbox, Stream::Samples, 0, 100);
    push(&outbox, Stream::Samples, 500, 100);
    push(&outbox, Stream::Ack, 0, 100);
    // At t=1200 the first sample and the ack are expired; health and deployment too, but a
    // (fresh) sample remains so they are kept.
    push(&outbox, Stream::Drift, 1_200, 100);
    assert_eq!(seqs(&outbox, Stream::Samples), [2]);
    assert_eq!(seqs(&outbox, Stream::Ack), Vec::<u64>::new());
    assert_eq!(seqs(&outbox, Stream::Health), [1]);
    assert_eq!(seqs(&outbox, Stream::Deployment), [1]);
    // Once the sample and the drift record are acked, expired health and deployment go.
    outbox.ack(Stream::Samples, 2).unwrap();
    outbox.ack(Stream::Drift, 1).unwrap();
    outbox.enforce_limits(1_300);
    assert_eq!(outbox.stats().depth, 0);
    let evictions = outbox.stats().evictions;
    assert_eq!(
        [Stream::Samples, Stream::Ack, Stream::Health, Stream::Deployment, Stream::Drift].map(|s| evictions[s]),
        [1, 1, 1, 1, 0]
    );
}

#[test]
fn age_limit_sweeps_more_than_one_read_chunk() {
    let outbox = outbox(1 << 30, 10);
    outbox
        .push_batch(Stream::Samples, 0, 0..(EVICT_CHUNK * 2 + 5), |_, seq| payload(Stream::Samples, seq, 30))
        .unwrap();
    push(&outbox, Stream::Samples, 100, 30);
    assert_eq!(seqs(&outbox, Stream::Samples), [EVICT_CHUNK as u64 * 2 + 6]);
    assert_eq!(outbox.stats().evictions[Stream::Samples], EVICT_CHUNK as u64 * 2 + 5);
}

#[test]
fn a_failed_append_stores_nothing_and_burns_its_seq() {
    let store = MemoryStore::new();
    let outbox = Outbox::open(store.clone(), OutboxLimits { max_bytes: 1 << 20, max_age_ms: NO_AGE }).unwrap();
    push(&outbox, Stream::Health, 0, 100);
    store.fail_appends(true);
    let err = outbox.push(Stream::Health, 0, |seq| payload(Stream::Health, seq, 100)).unwrap_err();
    assert!(matches!(err, OutboxError::Store(StoreError::DiskFull { .. })), "{err}");
    assert!(err.to_string().contains("disk full"));
    store.fail_appends(false);
    assert_eq!(push(&outbox, Stream::Health, 0, 100), 3);
    assert_eq!(seqs(&outbox, Stream::Health), [1, 3]);
    assert_eq!(outbox.stats().bytes, 200);
}

#[test]
fn concurrent_producers_get_unique_contiguous_seqs_in_order() {
    let outbox = Arc::new(outbox(1 << 30, NO_AGE));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let outbox = Arc::clone(&outbox);
            std::thread::spawn(move || (0..200).map(|_| push(&outbox, Stream::Health, 0, 64)).collect::<Vec<_>>())
        })
        .collect();
    let mut all: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=800).collect::<Vec<_>>());
    assert_eq!(seqs(&outbox, Stream::Health), all);
}

/// Pushes, acks and evicts on a store, reopens it, and checks that nothing was forgotten.
fn restart_keeps_seqs_records_and_counters<S: Store>(open: impl Fn() -> S) {
    let limits = OutboxLimits { max_bytes: 1_000, max_age_ms: NO_AGE };
    let before = {
        let outbox = Outbox::open(open(), limits).unwrap();
        for _ in 0..3 {
            push(&outbox, Stream::Health, 0, 100);
        }
        for _ in 0..9 {
            push(&outbox, Stream::Samples, 0, 100);
        }
        outbox.ack(Stream::Health, 1).unwrap();
        assert_eq!(outbox.stats().evictions[Stream::Samples], 2);
        outbox.stats()
    };
    let outbox = Outbox::open(open(), limits).unwrap();
    assert_eq!(outbox.stats(), before);
    assert_eq!(seqs(&outbox, Stream::Health), [2, 3]);
    assert_eq!(seqs(&outbox, Stream::Samples), (3..=9).collect::<Vec<_>>());
    assert_eq!(push(&outbox, Stream::Health, 0, 100), 4);
    assert_eq!(push(&outbox, Stream::Ack, 0, 100), 1);
    assert_eq!(outbox.stats().evictions[Stream::Samples], 3);
}

#[test]
fn restart_on_memory_store() {
    let store = MemoryStore::new();
    restart_keeps_seqs_records_and_counters(|| store.clone());
}

#[test]
fn restart_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    restart_keeps_seqs_records_and_counters(|| RedbStore::open(dir.path().join(RedbStore::FILE_NAME)).unwrap());
}

#[test]
#[cfg(feature = "outbox-sled")]
fn restart_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    restart_keeps_seqs_records_and_counters(|| SledStore::open(dir.path().join(SledStore::DIR_NAME)).unwrap());
}

#[test]
fn lowering_the_cap_evicts_on_open() {
    let store = MemoryStore::new();
    let outbox = Outbox::open(store.clone(), OutboxLimits { max_bytes: 10_000, max_age_ms: NO_AGE }).unwrap();
    for _ in 0..10 {
        push(&outbox, Stream::Samples, 0, 100);
    }
    drop(outbox);
    let outbox = Outbox::open(store, OutboxLimits { max_bytes: 450, max_age_ms: NO_AGE }).unwrap();
    assert_eq!(seqs(&outbox, Stream::Samples), [7, 8, 9, 10]);
}

#[derive(Debug, Clone)]
enum Op {
    Push { stream: usize, size: u64, count: usize },
    Ack { stream: usize, nth: usize },
    Tick { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..STREAM_COUNT, RECORD_OVERHEAD..400u64, 1..4usize).prop_map(|(stream, size, count)| Op::Push { stream, size, count }),
        2 => (0..STREAM_COUNT, 0..8usize).prop_map(|(stream, nth)| Op::Ack { stream, nth }),
        1 => (0..400u64).prop_map(|ms| Op::Tick { ms }),
    ]
}

proptest! {
    /// Whatever the sequence of pushes, acks and clock steps: the cap holds after every push,
    /// protected streams lose records only when every lower stream is empty, seqs are never
    /// reused, and the outbox's accounting matches the store.
    #[test]
    fn policy_invariants_hold(ops in proptest::collection::vec(op(), 1..80), max_bytes in 400..3_000u64) {
        let store = MemoryStore::new();
        let outbox = Outbox::open(store.clone(), OutboxLimits { max_bytes, max_age_ms: 1_000 }).unwrap();
        let mut now = 0;
        let mut issued = PerStream::<u64>::default();
        for op in ops {
            let before = outbox.stats();
            match op {
                Op::Push { stream, size, count } => {
                    let stream = Stream::all()[stream];
                    let seqs = outbox.push_batch(stream, now, 0..count, |_, seq| payload(stream, seq, size)).unwrap();
                    prop_assert_eq!(seqs.start, issued[stream] + 1);
                    issued[stream] = seqs.end - 1;
                    prop_assert!(outbox.stats().bytes <= max_bytes);
                }
                Op::Ack { stream, nth } => {
                    let stream = Stream::all()[stream];
                    let pending = outbox.pending(stream, 0, usize::MAX).unwrap();
                    if let Some(record) = pending.get(nth) {
                        outbox.ack(stream, record.seq).unwrap();
                    }
                }
                Op::Tick { ms } => {
                    now += ms;
                    outbox.enforce_limits(now);
                }
            }
            let after = outbox.stats();
            for protected in Stream::all().into_iter().filter(|s| s.is_protected()) {
                if after.evictions[protected] > before.evictions[protected] {
                    for lower in Stream::all().into_iter().filter(|s| s.eviction_rank() < protected.eviction_rank()) {
                        prop_assert_eq!(after.streams[lower].records, 0, "{} evicted while {} has records", protected, lower);
                    }
                }
            }
            let stored = store.stats().unwrap();
            for stream in Stream::all() {
                let (ours, theirs) = (after.streams[stream], stored[stream]);
                prop_assert_eq!((ours.records, ours.bytes, ours.evicted), (theirs.records, theirs.bytes, theirs.evicted));
                let present: Vec<u64> = store.range(stream, 0, usize::MAX).unwrap().iter().map(|r| r.seq).collect();
                prop_assert!(present.windows(2).all(|w| w[0] < w[1]));
                prop_assert!(present.last().is_none_or(|&last| last <= issued[stream]));
            }
        }
    }
}
