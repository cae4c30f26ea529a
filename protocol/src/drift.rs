//! Drift profiles: the reference a package carries (bins fixed at training time) and the
//! mergeable per-window summaries a device measures against it.
//!
//! One [`Binning`] decides, for both sides, which bucket a value falls in, so a device and the
//! fleet can never disagree about bins. A [`FeatureSummary`] is a monoid over values: merging
//! two summaries equals summarizing the concatenated values (bucket counts, count, missing,
//! min and max exactly; mean and m2 up to floating-point rounding), except `others`, which is
//! a bounded top-K sketch and therefore approximate.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Entries kept in a categorical summary's [`FeatureSummary::others`] sketch.
pub const OTHERS_CAPACITY: usize = 8;

/// How a feature's values are bucketed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Binning {
    /// Strictly increasing, finite edges (the training data's quantiles). Buckets:
    /// `[underflow (< e0), [e0, e1), …, overflow (≥ e_last)]`, so `edges.len() + 1` of them.
    Numeric {
        /// Bin edges.
        edges: Vec<f64>,
    },
    /// Integer category codes (a value is truncated toward zero). Buckets:
    /// `[codes[0], …, codes[n-1], other]`, so `codes.len() + 1` of them.
    Categorical {
        /// The categories the training data had.
        codes: Vec<i64>,
    },
}

impl Binning {
    /// Number of buckets a summary over this binning has.
    pub fn buckets(&self) -> usize {
        match self {
            Binning::Numeric { edges } => edges.len() + 1,
            Binning::Categorical { codes } => codes.len() + 1,
        }
    }

    /// The bucket `value` falls in (`value` must not be NaN).
    pub fn bucket(&self, value: f64) -> usize {
        match self {
            Binning::Numeric { edges } => edges.partition_point(|e| *e <= value),
            Binning::Categorical { codes } => {
                let code = value as i64;
                codes.iter().position(|c| *c == code).unwrap_or(codes.len())
            }
        }
    }

    /// Whether the binning obeys PACKAGE.md's rules (finite increasing edges; distinct codes).
    pub fn is_valid(&self) -> bool {
        match self {
            Binning::Numeric { edges } => edges.iter().all(|e| e.is_finite()) && edges.windows(2).all(|w| w[0] < w[1]),
            Binning::Categorical { codes } => codes.iter().enumerate().all(|(i, c)| !codes[..i].contains(c)),
        }
    }
}

/// Reference distribution of one feature (an input value, an output value, the predicted
/// class or the confidence), from the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReference {
    /// Feature name.
    pub name: String,
    /// Buckets.
    pub binning: Binning,
    /// Training-data count per bucket: `binning.buckets()` of them.
    pub counts: Vec<u64>,
}

impl FeatureReference {
    /// Whether the binning is valid and the counts match it.
    pub fn is_valid(&self) -> bool {
        self.binning.is_valid() && self.counts.len() == self.binning.buckets()
    }
}

/// The training data's profile that drift is measured against (all parts may be empty).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DriftReference {
    /// One per element of the model's first input (flattened per batch row), in order.
    pub features: Vec<FeatureReference>,
    /// One per element of the model's first output (flattened per batch row), in order.
    pub outputs: Vec<FeatureReference>,
    /// The predicted class (index of the largest value of the first output): categorical.
    pub prediction: Option<FeatureReference>,
    /// The confidence (largest value of the first output): numeric.
    pub confidence: Option<FeatureReference>,
}

impl DriftReference {
    /// Whether nothing is profiled.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty() && self.outputs.is_empty() && self.prediction.is_none() && self.confidence.is_none()
    }

    /// Every reference it holds, in wire order (features, outputs, prediction, confidence).
    pub fn all(&self) -> impl Iterator<Item = &FeatureReference> {
        self.features.iter().chain(&self.outputs).chain(&self.prediction).chain(&self.confidence)
    }
}

/// Summary of one feature over a window, bucketed by its [`FeatureReference`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    /// Count per bucket of the reference's binning.
    pub bin_counts: Vec<u64>,
    /// Values seen (NaN excluded).
    pub count: u64,
    /// NaN values seen (not in any bucket).
    pub missing: u64,
    /// Running mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean (variance = m2 / count).
    pub m2: f64,
    /// Smallest value (+inf when empty).
    pub min: f64,
    /// Largest value (-inf when empty).
    pub max: f64,
    /// Categorical only: the most frequent codes that fell in the `other` bucket, as
    /// `(code, approximate count)`, at most [`OTHERS_CAPACITY`] (Misra–Gries sketch). Empty
    /// for numeric features.
    pub others: Vec<(i64, u64)>,
}

/// Why two summaries cannot be merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketMismatch {
    /// Buckets on the left.
    pub left: usize,
    /// Buckets on the right.
    pub right: usize,
}

impl core::fmt::Display for BucketMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "summaries have {} and {} buckets", self.left, self.right)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BucketMismatch {}

impl FeatureSummary {
    /// An empty summary with `buckets` buckets.
    pub fn empty(buckets: usize) -> Self {
        Self {
            bin_counts: alloc::vec![0; buckets],
            count: 0,
            missing: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            others: Vec::new(),
        }
    }

    /// An empty summary for `reference`.
    pub fn for_reference(reference: &FeatureReference) -> Self {
        Self::empty(reference.binning.buckets())
    }

    /// Adds one value (Welford's update). `binning` must be the one this summary was made for.
    #[inline]
    pub fn observe(&mut self, binning: &Binning, value: f64) {
        if value.is_nan() {
            self.missing += 1;
            return;
        }
        let bucket = binning.bucket(value);
        if let Some(slot) = self.bin_counts.get_mut(bucket) {
            *slot += 1;
        }
        if let Binning::Categorical { codes } = binning
            && bucket == codes.len()
        {
            self.note_other(value as i64, 1);
        }
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds `other`'s values (Chan et al. for mean and m2).
    pub fn merge(&mut self, other: &FeatureSummary) -> Result<(), BucketMismatch> {
        if self.bin_counts.len() != other.bin_counts.len() {
            return Err(BucketMismatch { left: self.bin_counts.len(), right: other.bin_counts.len() });
        }
        for (a, b) in self.bin_counts.iter_mut().zip(&other.bin_counts) {
            *a = a.saturating_add(*b);
        }
        self.missing = self.missing.saturating_add(other.missing);
        if other.count > 0 {
            let n_a = self.count as f64;
            let n_b = other.count as f64;
            let n = n_a + n_b;
            let delta = other.mean - self.mean;
            self.mean += delta * n_b / n;
            self.m2 += other.m2 + delta * delta * n_a * n_b / n;
            self.count = self.count.saturating_add(other.count);
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        for (code, count) in &other.others {
            self.note_other(*code, *count);
        }
        Ok(())
    }

    /// Variance of the values seen (population), `None` when empty.
    pub fn variance(&self) -> Option<f64> {
        (self.count > 0).then(|| self.m2 / self.count as f64)
    }

    /// Misra–Gries with weights: keeps at most [`OTHERS_CAPACITY`] codes.
    fn note_other(&mut self, code: i64, count: u64) {
        if let Some(entry) = self.others.iter_mut().find(|(c, _)| *c == code) {
            entry.1 += count;
        } else if self.others.len() < OTHERS_CAPACITY {
            self.others.push((code, count));
        } else {
            let smallest = self.others.iter().map(|(_, n)| *n).min().unwrap_or(0).min(count);
            for entry in &mut self.others {
                entry.1 -= smallest;
            }
            self.others.retain(|(_, n)| *n > 0);
            if count > smallest && self.others.len() < OTHERS_CAPACITY {
                self.others.push((code, count - smallest));
            }
        }
        self.others.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    }
}

/// Ground-truth feedback counted in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Feedback {
    /// Inferences that received a true label.
    pub labelled: u64,
    /// Of those, how many the model's prediction matched.
    pub correct: u64,
}

impl Feedback {
    /// Adds `other`.
    pub fn merge(&mut self, other: Feedback) {
        self.labelled = self.labelled.saturating_add(other.labelled);
        self.correct = self.correct.saturating_add(other.correct);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn numeric() -> Binning {
        Binning::Numeric { edges: vec![-1.0, 0.0, 1.0] }
    }

    fn summarize(binning: &Binning, values: &[f64]) -> FeatureSummary {
        let mut s = FeatureSummary::empty(binning.buckets());
        for v in values {
            s.observe(binning, *v);
        }
        s
    }

    #[test]
    fn buckets_follow_the_edges() {
        let b = numeric();
        assert_eq!(
            [b.bucket(-5.0), b.bucket(-1.0), b.bucket(-0.5), b.bucket(0.0), b.bucket(1.0), b.bucket(9.0)],
            [0, 1, 1, 2, 3, 3]
        );
        let c = Binning::Categorical { codes: vec![3, 1] };
        assert_eq!([c.bucket(3.0), c.bucket(1.9), c.bucket(7.0)], [0, 1, 2]);
    }

    #[test]
    fn nan_counts_as_missing() {
        let s = summarize(&numeric(), &[f64::NAN, 0.5]);
        assert_eq!((s.count, s.missing, s.bin_counts.iter().sum::<u64>()), (1, 1, 1));
    }

    #[test]
    fn categorical_others_keep_the_frequent_unseen_codes() {
        let c = Binning::Categorical { codes: vec![0] };
        let mut values = vec![];
        for code in 1..=20 {
            values.push(code as f64);
        }
        values.extend(core::iter::repeat_n(42.0, 30));
        let s = summarize(&c, &values);
        assert_eq!(s.bin_counts, vec![0, 50]);
        assert_eq!(s.others.first().map(|o| o.0), Some(42));
        assert!(s.others.len() <= OTHERS_CAPACITY);
    }

    #[test]
    fn mismatched_buckets_do_not_merge() {
        let mut a = FeatureSummary::empty(3);
        assert_eq!(a.merge(&FeatureSummary::empty(4)), Err(BucketMismatch { left: 3, right: 4 }));
    }

    proptest! {
        #[test]
        fn merging_equals_summarizing_the_concatenation(
            a in proptest::collection::vec(prop_oneof![-3.0f64..3.0, Just(f64::NAN)], 0..60),
            b in proptest::collection::vec(-3.0f64..3.0, 0..60),
            categorical in any::<bool>(),
        ) {
            let binning = if categorical { Binning::Categorical { codes: vec![0, 1, -1] } } else { numeric() };
            let mut merged = summarize(&binning, &a);
            merged.merge(&summarize(&binning, &b)).unwrap();
            let whole: Vec<f64> = a.iter().chain(&b).copied().collect();
            let direct = summarize(&binning, &whole);
            prop_assert_eq!(&merged.bin_counts, &direct.bin_counts);
            prop_assert_eq!((merged.count, merged.missing), (direct.count, direct.missing));
            prop_assert_eq!((merged.min, merged.max), (direct.min, direct.max));
            let scale = 1.0 + direct.m2.abs();
            prop_assert!((merged.mean - direct.mean).abs() < 1e-9);
            prop_assert!((merged.m2 - direct.m2).abs() < 1e-9 * scale);
        }
    }
}
