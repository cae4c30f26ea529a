//! Building a package's drift reference from training data: bin edges at the data's
//! quantiles, then the training data's own counts per bucket.
//!
//! Edges are the interior quantiles 1/b, …, (b−1)/b (numpy's default linear interpolation),
//! repeated values dropped, so the b buckets (underflow, b−2 bins, overflow) each hold about
//! 1/b of the training data. The open-ended tails matter: with edges at the training minimum
//! and maximum, the tail buckets would start empty and a single unremarkable new extreme
//! would look like overwhelming evidence to a chi-square test (measured on null data: the
//! tests alone flagged 46% of windows that way, 4.6% with these edges;
//! fleet/tests/drift_false_alarms.rs).

use edgefleet_protocol::drift::{Binning, FeatureReference, FeatureSummary};

/// Quantile `q` of sorted, non-empty `sorted` (numpy `method="linear"`).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Quantile bin edges for `values` (NaN ignored): at most `bins − 1` of them, so at most
/// `bins` buckets. Empty when no value is finite or `bins` ≤ 1.
pub fn quantile_edges(values: &[f64], bins: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return Vec::new();
    }
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = Vec::with_capacity(bins);
    for i in 1..bins {
        let edge = quantile(&sorted, i as f64 / bins as f64);
        if edges.last().is_none_or(|last| *last < edge) {
            edges.push(edge);
        }
    }
    edges
}

/// Summarizes `values` against `binning`.
pub fn summarize(binning: &Binning, values: &[f64]) -> FeatureSummary {
    let mut summary = FeatureSummary::empty(binning.buckets());
    for v in values {
        summary.observe(binning, *v);
    }
    summary
}

/// A numeric reference for `values` with `bins` quantile bins.
pub fn numeric_reference(name: &str, values: &[f64], bins: usize) -> FeatureReference {
    let binning = Binning::Numeric { edges: quantile_edges(values, bins) };
    let counts = summarize(&binning, values).bin_counts;
    FeatureReference { name: name.to_string(), binning, counts }
}

/// A categorical reference over `codes` (e.g. class indices) for `values`.
pub fn categorical_reference(name: &str, codes: Vec<i64>, values: &[f64]) -> FeatureReference {
    let binning = Binning::Categorical { codes };
    let counts = summarize(&binning, values).bin_counts;
    FeatureReference { name: name.to_string(), binning, counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_sit_at_interior_quantiles() {
        let values: Vec<f64> = (0..=100).map(f64::from).collect();
        let r = numeric_reference("x", &values, 4);
        assert_eq!(r.binning, Binning::Numeric { edges: vec![25.0, 50.0, 75.0] });
        assert_eq!(r.counts, vec![25, 25, 25, 26]);
        assert!(r.is_valid());
    }

    #[test]
    fn repeated_values_collapse_edges() {
        let r = numeric_reference("x", &[1.0; 50], 10);
        assert!(r.is_valid());
        assert_eq!(r.counts.iter().sum::<u64>(), 50);
        assert_eq!(numeric_reference("x", &[f64::NAN], 10).counts, vec![0]);
    }
}
