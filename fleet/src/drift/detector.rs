//! Deciding drift: one window (or a merged cohort) against the package's reference, and
//! persistence over windows.
//!
//! Per window, every profiled feature with at least `min_rows` values is tested (chi-square
//! on its buckets against the reference's). The p-values of one window form one family,
//! corrected with Benjamini–Hochberg at `fdr`. A feature drifts in that window when its test
//! is rejected **and** its PSI reaches `min_psi` (an effect-size floor: with thousands of rows
//! a chi-square test rejects differences nobody cares about), or when more than
//! `max_missing_rate` of its values are NaN (a failing sensor). A device is *drifting* when at
//! least `persist_k` of its last `persist_n` evaluated windows had a drifting feature.

use super::merge::Merged;
use super::stats::{self, ChiSquare, Ks};
use edgefleet_protocol::drift::{DriftReference, FeatureReference, FeatureSummary};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Detector thresholds (`[drift]` in the fleet manager's config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorSettings {
    /// Benjamini–Hochberg false discovery rate across one window's features.
    pub fdr: f64,
    /// Fewest values a feature needs in a window to be tested.
    pub min_rows: u64,
    /// Smallest PSI that counts as drift.
    pub min_psi: f64,
    /// Missing (NaN) share above which a feature counts as drifting.
    pub max_missing_rate: f64,
    /// Drifting windows needed …
    pub persist_k: usize,
    /// … among this many most recent evaluated windows.
    pub persist_n: usize,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings { fdr: 0.01, min_rows: 100, min_psi: 0.1, max_missing_rate: 0.05, persist_k: 3, persist_n: 5 }
    }
}

impl DetectorSettings {
    /// Checks the values make sense: `Err((field, what is wrong))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.fdr > 0.0 && self.fdr < 1.0) {
            return Err(("drift.fdr", format!("must be in (0, 1), is {}", self.fdr)));
        }
        if self.min_psi.is_nan() || self.min_psi < 0.0 {
            return Err(("drift.min_psi", format!("must be ≥ 0, is {}", self.min_psi)));
        }
        if !(0.0..=1.0).contains(&self.max_missing_rate) {
            return Err(("drift.max_missing_rate", format!("must be in [0, 1], is {}", self.max_missing_rate)));
        }
        if self.persist_k == 0 || self.persist_k > self.persist_n {
            return Err((
                "drift.persist_k",
                format!("must be between 1 and persist_n ({}), is {}", self.persist_n, self.persist_k),
            ));
        }
        Ok(())
    }
}

/// Which part of the profile a feature belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// A model input value.
    Input,
    /// A model output value.
    Output,
    /// The predicted class.
    Prediction,
    /// The confidence.
    Confidence,
}

/// One feature's statistics in a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureStats {
    /// Feature name from the reference.
    pub name: String,
    /// Which part.
    pub part: Part,
    /// Values in the window.
    pub count: u64,
    /// NaN values in the window.
    pub missing: u64,
    /// NaN share.
    pub missing_rate: f64,
    /// Mean in the window.
    pub mean: Option<f64>,
    /// Standard deviation in the window.
    pub std: Option<f64>,
    /// Population stability index.
    pub psi: f64,
    /// Jensen–Shannon divergence (base 2).
    pub js: f64,
    /// Chi-square test.
    pub chi_square: ChiSquare,
    /// KS from bins (lower bound).
    pub ks: Ks,
    /// Tested (enough values)?
    pub tested: bool,
    /// Rejected by Benjamini–Hochberg?
    pub rejected: bool,
    /// Counts as drifting in this window?
    pub drifting: bool,
    /// Why, in words (empty when not drifting).
    pub reason: String,
}

/// A window's (or cohort's) assessment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// Rows assessed.
    pub rows: u64,
    /// Whether any feature had enough values to be tested.
    pub evaluated: bool,
    /// Per feature, in reference order (inputs, outputs, prediction, confidence).
    pub features: Vec<FeatureStats>,
}

impl Assessment {
    /// The drifting features.
    pub fn drifting(&self) -> impl Iterator<Item = &FeatureStats> {
        self.features.iter().filter(|f| f.drifting)
    }

    /// True when at least one feature drifts.
    pub fn is_drifting(&self) -> bool {
        self.drifting().next().is_some()
    }

    /// Largest PSI among tested features.
    pub fn max_psi(&self) -> Option<f64> {
        self.features.iter().filter(|f| f.tested).map(|f| f.psi).max_by(f64::total_cmp)
    }
}

fn pairs<'a>(
    reference: &'a DriftReference,
    merged: &'a Merged,
) -> Vec<(Part, &'a FeatureReference, &'a FeatureSummary)> {
    let mut out = Vec::new();
    out.extend(reference.features.iter().zip(&merged.features).map(|(r, s)| (Part::Input, r, s)));
    out.extend(reference.outputs.iter().zip(&merged.outputs).map(|(r, s)| (Part::Output, r, s)));
    if let (Some(r), Some(s)) = (&reference.prediction, &merged.prediction) {
        out.push((Part::Prediction, r, s));
    }
    if let (Some(r), Some(s)) = (&reference.confidence, &merged.confidence) {
        out.push((Part::Confidence, r, s));
    }
    out
}

/// Assesses `merged` against `reference`. Features whose bucket count does not match the
/// reference are skipped (they were summarized against another profile).
pub fn assess(reference: &DriftReference, merged: &Merged, settings: &DetectorSettings) -> Assessment {
    let mut features: Vec<FeatureStats> = pairs(reference, merged)
        .into_iter()
        .filter(|(_, r, s)| r.counts.len() == s.bin_counts.len())
        .map(|(part, r, s)| {
            let seen = s.count + s.missing;
            let missing_rate = if seen == 0 { 0.0 } else { s.missing as f64 / seen as f64 };
            FeatureStats {
                name: r.name.clone(),
                part,
                count: s.count,
                missing: s.missing,
                missing_rate,
                mean: (s.count > 0).then_some(s.mean),
                std: s.variance().map(f64::sqrt),
                psi: stats::psi(&r.counts, &s.bin_counts),
                js: stats::js_divergence(&r.counts, &s.bin_counts),
                chi_square: stats::chi_square(&r.counts, &s.bin_counts),
                ks: stats::ks_from_bins(&r.counts, &s.bin_counts),
                tested: s.count >= settings.min_rows,
                rejected: false,
                drifting: false,
                reason: String::new(),
            }
        })
        .collect();
    let tested: Vec<usize> = (0..features.len()).filter(|i| features[*i].tested).collect();
    let p_values: Vec<f64> = tested.iter().map(|i| features[*i].chi_square.p_value).collect();
    let rejected = stats::benjamini_hochberg(&p_values, settings.fdr);
    for (i, rejected) in tested.iter().zip(rejected) {
        let f = &mut features[*i];
        f.rejected = rejected;
        if rejected && f.psi >= settings.min_psi {
            f.drifting = true;
            // A p-value below f64's range prints as a bound rather than as a misleading 0.
            let p = match f.chi_square.p_value {
                0.0 => "< 1e-300".to_string(),
                p => format!("{p:.2e}"),
            };
            f.reason = format!(
                "PSI {:.3} ≥ {} and chi-square p {p} rejected at FDR {} (JS {:.3}, KS ≥ {:.3})",
                f.psi, settings.min_psi, settings.fdr, f.js, f.ks.statistic
            );
        }
    }
    for f in &mut features {
        if f.count + f.missing >= settings.min_rows && f.missing_rate > settings.max_missing_rate {
            f.drifting = true;
            let missing = format!("{:.1}% missing > {:.1}%", f.missing_rate * 100.0, settings.max_missing_rate * 100.0);
            f.reason = if f.reason.is_empty() { missing } else { format!("{}; {missing}", f.reason) };
        }
    }
    Assessment { rows: merged.rows, evaluated: !tested.is_empty(), features }
}

/// The last windows' outcomes for one device and model version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Persistence {
    /// Newest last: true = the window had a drifting feature.
    pub recent: VecDeque<bool>,
}

impl Persistence {
    /// Records an evaluated window; returns whether the alert holds now.
    pub fn record(&mut self, drifting: bool, settings: &DetectorSettings) -> bool {
        self.recent.push_back(drifting);
        while self.recent.len() > settings.persist_n {
            self.recent.pop_front();
        }
        self.alert(settings)
    }

    /// At least k of the last n windows drifted.
    pub fn alert(&self, settings: &DetectorSettings) -> bool {
        self.recent.iter().filter(|d| **d).count() >= settings.persist_k
    }
}
