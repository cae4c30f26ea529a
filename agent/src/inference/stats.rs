//! Per-model-version inference counters and a latency histogram.
//!
//! The worker thread updates a version's [`VersionStats`] with a few relaxed atomic adds per
//! inference (no lock, no allocation). Readers take a [`StatsSnapshot`] at any time: counters
//! are cumulative since the agent started, and [`VersionSnapshot::to_health`] turns two
//! snapshots into a health report whose percentiles cover only the window between them.

use edgefleet_protocol::uplink::ModelHealth;
use edgefleet_runtime::ModelInfo;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Sub-buckets per power of two: 16 gives ≤ 6.25% relative error on a percentile.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Largest power of two tracked exactly; larger values (over 19 hours) land in the top bucket.
const MAX_EXP: u32 = 35;
/// Values below `SUB` each get a bucket, then `SUB` per power of two up to `MAX_EXP`.
const BUCKETS: usize = SUB + (MAX_EXP - SUB_BITS + 1) as usize * SUB;

fn bucket_of(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let exp = (63 - value.leading_zeros()).min(MAX_EXP);
    if exp == MAX_EXP && value >> MAX_EXP > 1 {
        return BUCKETS - 1;
    }
    let sub = ((value >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (exp - SUB_BITS) as usize * SUB + sub
}

/// The value a bucket reports: its midpoint (exact below `SUB`).
fn bucket_value(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let exp = (index - SUB) / SUB + SUB_BITS as usize;
    let sub = ((index - SUB) % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS as usize);
    ((SUB as u64 + sub) << (exp - SUB_BITS as usize)) + width / 2
}

/// A lock-free log-linear histogram of microsecond latencies.
#[derive(Debug)]
pub struct LatencyHistogram {
    counts: Box<[AtomicU64]>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&self, micros: u64) {
        self.counts[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot { counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect() }
    }
}

/// Histogram counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    counts: Vec<u64>,
}

impl HistogramSnapshot {
    /// Values recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..=1) in microseconds, `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_value(index));
            }
        }
        None
    }

    /// What was recorded after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        let counts = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| c.saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)))
            .collect();
        HistogramSnapshot { counts }
    }
}

/// Counters for one model version.
#[derive(Debug)]
pub struct VersionStats {
    info: ModelInfo,
    inferences: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
    latency: LatencyHistogram,
    since: Instant,
}

impl VersionStats {
    fn new(info: ModelInfo) -> Self {
        Self {
            info,
            inferences: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            latency: LatencyHistogram::default(),
            since: Instant::now(),
        }
    }

    /// Which version these are.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// A successful inference and its latency.
    pub fn record_success(&self, latency_us: u64) {
        self.inferences.fetch_add(1, Ordering::Relaxed);
        self.latency.record(latency_us);
    }

    /// The model failed on a valid request (counts toward `error_count` in health reports).
    pub fn record_error(&self) {
        self.inferences.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The request was invalid and never reached the model (not the model's fault).
    pub fn record_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self, active: bool) -> VersionSnapshot {
        let now = Instant::now();
        let latency = self.latency.snapshot();
        let inference_count = self.inferences.load(Ordering::Relaxed);
        let elapsed = now.duration_since(self.since).as_secs_f64();
        VersionSnapshot {
            model: self.info.clone(),
            active,
            inference_count,
            error_count: self.errors.load(Ordering::Relaxed),
            rejected_count: self.rejected.load(Ordering::Relaxed),
            latency_p50_us: latency.quantile(0.50),
            latency_p99_us: latency.quantile(0.99),
            throughput_per_s: if elapsed > 0.0 { inference_count as f64 / elapsed } else { 0.0 },
            latency,
            taken_at: now,
        }
    }
}

/// One version's counters at one moment (cumulative since the agent started).
#[derive(Debug, Clone, Serialize)]
pub struct VersionSnapshot {
    /// Which version (serialized as `name`, `version_seq`, `label`).
    #[serde(flatten)]
    pub model: ModelInfo,
    /// Whether this version is the one being served.
    pub active: bool,
    /// Inferences run (successful or failed in the model).
    pub inference_count: u64,
    /// Inferences the model failed on.
    pub error_count: u64,
    /// Requests refused before reaching the model (bad shape, type, names).
    pub rejected_count: u64,
    /// Median latency in µs since the agent started (`null` before the first inference).
    pub latency_p50_us: Option<u64>,
    /// 99th-percentile latency in µs since the agent started.
    pub latency_p99_us: Option<u64>,
    /// Mean inferences per second since this version was first loaded.
    pub throughput_per_s: f64,
    #[serde(skip)]
    latency: HistogramSnapshot,
    #[serde(skip)]
    taken_at: Instant,
}

impl VersionSnapshot {
    /// The health report for this version: cumulative counters, percentiles over the window
    /// since `previous` (an earlier snapshot of the same version), or since start when `None`.
    pub fn to_health(&self, previous: Option<&VersionSnapshot>) -> ModelHealth {
        let window = match previous {
            Some(p) => self.latency.since(&p.latency),
            None => self.latency.clone(),
        };
        let micros = |q| window.quantile(q).map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX));
        ModelHealth {
            name: self.model.name.clone(),
            version_seq: self.model.version_seq,
            inference_count: self.inference_count,
            error_count: self.error_count,
            latency_p50_us: micros(0.50),
            latency_p99_us: micros(0.99),
        }
    }

    /// Inferences per second between `previous` and this snapshot.
    pub fn throughput_since(&self, previous: &VersionSnapshot) -> f64 {
        let seconds = self.taken_at.saturating_duration_since(previous.taken_at).as_secs_f64();
        let count = self.inference_count.saturating_sub(previous.inference_count);
        if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
    }
}

/// All versions' counters at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    /// The version being served, if any.
    pub active: Option<ModelInfo>,
    /// Every version served since the agent started (most recently activated last).
    pub models: Vec<VersionSnapshot>,
}

impl StatsSnapshot {
    /// One [`ModelHealth`] per version, windowed against `previous` where it has the version.
    pub fn to_health(&self, previous: Option<&StatsSnapshot>) -> Vec<ModelHealth> {
        self.models
            .iter()
            .map(|m| {
                let same =
                    |o: &&VersionSnapshot| o.model.name == m.model.name && o.model.version_seq == m.model.version_seq;
                m.to_health(previous.and_then(|p| p.models.iter().find(same)))
            })
            .collect()
    }
}

#[derive(Debug, Default)]
struct Registry {
    /// Most recently activated last.
    versions: Vec<Arc<VersionStats>>,
    active: Option<usize>,
}

/// The statistics of every model version the agent served, shared by the worker (writer) and
/// the API and health reporter (readers). Keeps the most recent [`InferenceStats::MAX_VERSIONS`].
#[derive(Debug, Default)]
pub struct InferenceStats {
    registry: Mutex<Registry>,
}

impl InferenceStats {
    /// Versions remembered; older ones are dropped (their counters were already reported).
    pub const MAX_VERSIONS: usize = 8;

    /// Empty statistics.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Marks `info` as the active version and returns its counters (reusing them when the
    /// version was served before, as after a rollback). `None` marks no version active.
    pub fn activate(&self, info: Option<&ModelInfo>) -> Option<Arc<VersionStats>> {
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(info) = info else {
            registry.active = None;
            return None;
        };
        let same = |v: &Arc<VersionStats>| v.info.name == info.name && v.info.version_seq == info.version_seq;
        let stats = match registry.versions.iter().position(same) {
            Some(index) => registry.versions.remove(index),
            None => Arc::new(VersionStats::new(info.clone())),
        };
        registry.versions.push(stats.clone());
        if registry.versions.len() > Self::MAX_VERSIONS {
            registry.versions.remove(0);
        }
        registry.active = Some(registry.versions.len() - 1);
        Some(stats)
    }

    /// Copies every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let models: Vec<VersionSnapshot> =
            registry.versions.iter().enumerate().map(|(i, v)| v.snapshot(registry.active == Some(i))).collect();
        let active = registry.active.and_then(|i| registry.versions.get(i)).map(|v| v.info.clone());
        StatsSnapshot { active, models }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::ModelName;

    #[test]
    fn buckets_are_monotonic_and_precise_to_a_sixteenth() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last && b < BUCKETS, "value {v}");
            last = b;
            if v < 1 << 30 {
                let reported = bucket_value(b) as f64;
                assert!((reported - v as f64).abs() <= (v as f64) / 16.0 + 0.5, "{v} reported as {reported}");
            }
        }
    }

    #[test]
    fn percentiles_and_windows() {
        let h = LatencyHistogram::default();
        assert_eq!(h.snapshot().quantile(0.5), None);
        for v in 1..=100 {
            h.record(v);
        }
        let first = h.snapshot();
        let p50 = first.quantile(0.5).unwrap();
        let p99 = first.quantile(0.99).unwrap();
        assert!((47..=53).contains(&p50), "{p50}");
        assert!((93..=103).contains(&p99), "{p99}");
        for _ in 0..10 {
            h.record(1000);
        }
        let window = h.snapshot().since(&first);
        assert_eq!(window.total(), 10);
        assert!((970..=1030).contains(&window.quantile(0.5).unwrap()));
    }

    #[test]
    fn versions_keep_their_counters_across_rollback() {
        let stats = InferenceStats::new();
        let info = |seq| ModelInfo { name: ModelName::new("m").unwrap(), version_seq: seq, label: format!("v{seq}") };
        let v1 = stats.activate(Some(&info(1))).unwrap();
        v1.record_success(10);
        v1.record_error();
        v1.record_rejected();
        let v2 = stats.activate(Some(&info(2))).unwrap();
        v2.record_success(20);
        let before = stats.snapshot();
        assert_eq!(before.active.as_ref().unwrap().version_seq, 2);
        let again = stats.activate(Some(&info(1))).unwrap();
        again.record_success(30);
        let snap = stats.snapshot();
        let m1 = snap.models.iter().find(|m| m.model.version_seq == 1).unwrap();
        assert!(m1.active);
        assert_eq!((m1.inference_count, m1.error_count, m1.rejected_count), (3, 1, 1));
        let health = snap.to_health(Some(&before));
        let h1 = health.iter().find(|h| h.version_seq == 1).unwrap();
        assert_eq!((h1.inference_count, h1.error_count, h1.latency_p50_us), (3, 1, 30));
        stats.activate(None);
        assert!(stats.snapshot().active.is_none());
    }
}
