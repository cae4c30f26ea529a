//! Adding device summaries together: per device over windows, per cohort over devices. The
//! parts merge bucket by bucket (WIRE.md §4.5), so a cohort's summary equals the summary of
//! all its devices' values.

use edgefleet_protocol::drift::{BucketMismatch, FeatureSummary, Feedback};
use edgefleet_protocol::uplink::DriftSummary;
use serde::Serialize;

/// Several windows' summaries of one model version, added up.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Merged {
    /// Windows added.
    pub windows: u32,
    /// Rows.
    pub rows: u64,
    /// Input features.
    pub features: Vec<FeatureSummary>,
    /// Output values.
    pub outputs: Vec<FeatureSummary>,
    /// Predicted class.
    pub prediction: Option<FeatureSummary>,
    /// Confidence.
    pub confidence: Option<FeatureSummary>,
    /// Ground truth.
    pub feedback: Feedback,
}

/// Whether `from` can be added to `into` (empty `into` takes any shape).
fn fits(into: &[FeatureSummary], from: &[FeatureSummary]) -> Result<(), BucketMismatch> {
    if into.is_empty() || from.is_empty() {
        return Ok(());
    }
    if into.len() != from.len() {
        return Err(BucketMismatch { left: into.len(), right: from.len() });
    }
    into.iter().zip(from).try_for_each(|(a, b)| {
        (a.bin_counts.len() == b.bin_counts.len())
            .then_some(())
            .ok_or(BucketMismatch { left: a.bin_counts.len(), right: b.bin_counts.len() })
    })
}

/// Adds `from` into `into`; shapes were checked by [`fits`].
fn merge_parts(into: &mut Vec<FeatureSummary>, from: &[FeatureSummary]) {
    if into.is_empty() {
        into.extend_from_slice(from);
    } else {
        for (a, b) in into.iter_mut().zip(from) {
            // Cannot fail: `fits` compared every bucket count.
            let _ = a.merge(b);
        }
    }
}

impl Merged {
    /// Adds one window. A window whose shape differs from what was added before (another
    /// reference) is refused and changes nothing.
    pub fn add(&mut self, s: &DriftSummary) -> Result<(), BucketMismatch> {
        self.add_parts(&s.features, &s.outputs, &s.prediction, &s.confidence, s.rows, s.feedback, 1)
    }

    /// Adds another merged summary.
    pub fn add_merged(&mut self, m: &Merged) -> Result<(), BucketMismatch> {
        self.add_parts(&m.features, &m.outputs, &m.prediction, &m.confidence, m.rows, m.feedback, m.windows)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_parts(
        &mut self,
        features: &[FeatureSummary],
        outputs: &[FeatureSummary],
        prediction: &Option<FeatureSummary>,
        confidence: &Option<FeatureSummary>,
        rows: u64,
        feedback: Feedback,
        windows: u32,
    ) -> Result<(), BucketMismatch> {
        // Check every shape first, then merge in place: a refused window changes nothing.
        fits(&self.features, features)?;
        fits(&self.outputs, outputs)?;
        fits(self.prediction.as_slice(), prediction.as_slice())?;
        fits(self.confidence.as_slice(), confidence.as_slice())?;
        merge_parts(&mut self.features, features);
        merge_parts(&mut self.outputs, outputs);
        for (into, from) in [(&mut self.prediction, prediction), (&mut self.confidence, confidence)] {
            match (into.as_mut(), from) {
                (Some(a), Some(b)) => {
                    let _ = a.merge(b);
                }
                (None, Some(b)) => *into = Some(b.clone()),
                (_, None) => {}
            }
        }
        self.rows = self.rows.saturating_add(rows);
        self.feedback.merge(feedback);
        self.windows = self.windows.saturating_add(windows);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::ModelName;
    use edgefleet_protocol::drift::Binning;

    fn window(values: &[f64]) -> DriftSummary {
        let binning = Binning::Numeric { edges: vec![0.0, 1.0] };
        let mut f = FeatureSummary::empty(3);
        for v in values {
            f.observe(&binning, *v);
        }
        DriftSummary {
            seq: 1,
            model: ModelName::new("m").unwrap_or_else(|_| unreachable!()),
            version_seq: 1,
            window_start_ms: 0,
            window_end_ms: 1,
            rows: values.len() as u64,
            features: vec![f],
            outputs: vec![],
            prediction: None,
            confidence: None,
            feedback: Feedback { labelled: 1, correct: 1 },
        }
    }

    #[test]
    fn windows_add_up_and_mismatches_change_nothing() {
        let mut m = Merged::default();
        m.add(&window(&[-1.0, 0.5])).unwrap_or_else(|e| panic!("{e}"));
        m.add(&window(&[2.0])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((m.windows, m.rows, m.feedback.labelled), (2, 3, 2));
        assert_eq!(m.features[0].bin_counts, vec![1, 1, 1]);
        let mut odd = window(&[1.0]);
        odd.features[0] = FeatureSummary::empty(5);
        let before = m.clone();
        assert!(m.add(&odd).is_err());
        assert_eq!(m, before);
    }
}
