//! Raw-record sampling: Bernoulli at `sample_rate`, then a token bucket of
//! `max_sample_bytes_per_hour` bytes, batched per model version into [`SampleBatch`]es.
//!
//! The bucket holds at most one hour's budget and starts full, so a fresh agent can sample at
//! once; over any `h` hours at most `(h + 1) × budget` record bytes leave, and the long-run
//! average is the budget. A record's cost is its encoded size bound ([`record_cost`]).

use super::policy::Policy;
use edgefleet_protocol::ModelName;
use edgefleet_protocol::uplink::{SampleBatch, SampleLabel, SampleRecord};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A batch is handed over once its records cost this much (well below the MQTT packet limit).
pub const BATCH_BYTES: u64 = 32 * 1024;

/// Upper bound of a record's encoded size: two varint u64s, two length prefixes, the floats.
pub fn record_cost(inputs: usize, outputs: usize) -> u64 {
    (10 + 10 + 5 + 5 + 4 * (inputs + outputs)) as u64
}

/// A batch waiting for its stream sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingBatch {
    /// Model.
    pub model: ModelName,
    /// Version that produced the records.
    pub version_seq: u64,
    /// Records, oldest first.
    pub records: Vec<SampleRecord>,
    /// Sum of their costs.
    pub bytes: u64,
    /// Labels that arrived for its records before it was sent (they follow it as one
    /// `SampleLabels`, WIRE.md §4.6a).
    pub labels: Vec<SampleLabel>,
}

impl PendingBatch {
    /// Attaches `label` when one of the records is the one labelled (a later label replaces
    /// an earlier one); false when none is.
    fn attach(&mut self, label: SampleLabel) -> bool {
        let ours =
            self.records.iter().any(|r| r.inference_id == label.inference_id && r.timestamp_ms == label.timestamp_ms);
        if ours {
            self.labels.retain(|l| l.inference_id != label.inference_id || l.timestamp_ms != label.timestamp_ms);
            self.labels.push(label);
        }
        ours
    }

    /// The wire message with `seq`.
    pub fn into_message(self, seq: u64) -> SampleBatch {
        SampleBatch { seq, model: self.model, version_seq: self.version_seq, records: self.records }
    }
}

/// Sampling state.
#[derive(Debug, Clone)]
pub struct Sampler {
    rng: SmallRng,
    tokens: f64,
    refilled_at_ms: Option<u64>,
    open: Option<PendingBatch>,
    full: Vec<PendingBatch>,
    dropped_for_budget: u64,
}

impl Sampler {
    /// A sampler drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            tokens: f64::INFINITY, // clamped to the budget at the first refill: starts full
            refilled_at_ms: None,
            open: None,
            full: Vec::new(),
            dropped_for_budget: 0,
        }
    }

    /// Whether to sample this inference (the coin flip, before the budget).
    pub fn draw(&mut self, policy: &Policy) -> bool {
        policy.sample_rate > 0.0 && self.rng.random::<f32>() < policy.sample_rate
    }

    fn refill(&mut self, policy: &Policy, now_ms: u64) {
        let budget = policy.max_sample_bytes_per_hour as f64;
        let elapsed = self.refilled_at_ms.map_or(0, |t| now_ms.saturating_sub(t));
        self.tokens = (self.tokens + elapsed as f64 * budget / 3_600_000.0).min(budget);
        self.refilled_at_ms = Some(now_ms);
    }

    /// Keeps `record` (already drawn) when the budget allows. `make` builds it only then.
    pub fn offer(
        &mut self,
        policy: &Policy,
        now_ms: u64,
        model: &ModelName,
        version_seq: u64,
        cost: u64,
        make: impl FnOnce() -> SampleRecord,
    ) -> bool {
        self.refill(policy, now_ms);
        if (cost as f64) > self.tokens {
            self.dropped_for_budget += 1;
            return false;
        }
        self.tokens -= cost as f64;
        if self.open.as_ref().is_some_and(|b| &b.model != model || b.version_seq != version_seq) {
            self.seal();
        }
        let batch = self.open.get_or_insert_with(|| PendingBatch {
            model: model.clone(),
            version_seq,
            records: Vec::new(),
            bytes: 0,
            labels: Vec::new(),
        });
        batch.records.push(make());
        batch.bytes += cost;
        if batch.bytes >= BATCH_BYTES {
            self.seal();
        }
        true
    }

    /// Moves the open batch (if any) to the finished ones.
    pub fn seal(&mut self) {
        if let Some(batch) = self.open.take() {
            self.full.push(batch);
        }
    }

    /// Attaches `label` to the batch not yet handed over that holds its record; false when
    /// none does (the record was sent: the label must follow on its own).
    pub fn attach_label(&mut self, label: SampleLabel) -> bool {
        self.open.iter_mut().chain(self.full.iter_mut()).any(|b| b.attach(label))
    }

    /// Finished batches, oldest first.
    pub fn take_full(&mut self) -> Vec<PendingBatch> {
        std::mem::take(&mut self.full)
    }

    /// Records refused for lack of budget since the start.
    pub fn dropped_for_budget(&self) -> u64 {
        self.dropped_for_budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(sample_rate: f32, budget: u64) -> Policy {
        Policy { sample_rate, max_sample_bytes_per_hour: budget, drift_window_ms: 1_000 }
    }

    fn record(id: u64) -> SampleRecord {
        SampleRecord { inference_id: id, timestamp_ms: 0, inputs: vec![0.0; 8], outputs: vec![0.0; 4] }
    }

    fn offer(s: &mut Sampler, p: &Policy, now: u64, id: u64) -> bool {
        let model = ModelName::new("m").unwrap();
        s.offer(p, now, &model, 1, record_cost(8, 4), || record(id))
    }

    #[test]
    fn the_rate_is_a_fraction_of_draws() {
        let mut s = Sampler::new(7);
        let p = policy(0.25, 0);
        let kept = (0..10_000).filter(|_| s.draw(&p)).count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
        assert_eq!((0..1_000).filter(|_| s.draw(&policy(0.0, 0))).count(), 0);
        assert_eq!((0..1_000).filter(|_| s.draw(&policy(1.0, 0))).count(), 1_000);
    }

    #[test]
    fn the_byte_budget_is_respected() {
        let cost = record_cost(8, 4);
        let p = policy(1.0, 100 * cost);
        let mut s = Sampler::new(1);
        let first_hour = (0..1_000).filter(|i| offer(&mut s, &p, 1_000 + i, *i)).count() as u64;
        assert_eq!(first_hour, 100, "a full bucket: one hour's budget");
        // Half an hour later, half the budget has come back.
        let later = (0..1_000).filter(|i| offer(&mut s, &p, 1_000 + 1_800_000, *i)).count() as u64;
        assert_eq!(later, 50);
        assert_eq!(s.dropped_for_budget(), 2_000 - 150);
        let bytes: u64 = {
            s.seal();
            s.take_full().iter().map(|b| b.bytes).sum()
        };
        assert!(bytes <= 150 * cost);
        // No budget: nothing is kept.
        let mut none = Sampler::new(1);
        assert!(!offer(&mut none, &policy(1.0, 0), 0, 1));
    }

    #[test]
    fn batches_split_by_size_and_by_version() {
        let p = policy(1.0, 10 * 1024 * 1024);
        let mut s = Sampler::new(1);
        let n = (BATCH_BYTES / record_cost(8, 4)) + 5;
        for id in 0..n {
            assert!(offer(&mut s, &p, 0, id));
        }
        let first = s.take_full();
        assert_eq!(first.len(), 1, "one batch reached the size limit");
        assert!(first[0].bytes >= BATCH_BYTES && first[0].bytes < BATCH_BYTES + record_cost(8, 4));
        let rest = n as usize - first[0].records.len();
        let model = ModelName::new("m").unwrap();
        s.offer(&p, 0, &model, 2, record_cost(8, 4), || record(999));
        let batches = s.take_full();
        assert_eq!((batches.len(), batches[0].version_seq, batches[0].records.len()), (1, 1, rest));
        s.seal();
        let last = s.take_full().remove(0).into_message(4);
        assert_eq!((last.seq, last.records[0].inference_id), (4, 999));
    }
}
