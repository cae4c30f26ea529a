//! One model version's drift window: summaries of every value it served, bucketed by the
//! package's [`DriftReference`] (WIRE.md §4.5). A pure state type: the caller supplies the
//! clock and decides when a window closes.

use super::rows::{argmax, fill_f64, row_layout};
use edgefleet_protocol::ModelName;
use edgefleet_protocol::drift::{DriftReference, FeatureReference, FeatureSummary, Feedback};
use edgefleet_protocol::tensor::Tensor;
use edgefleet_protocol::uplink::DriftSummary;
use std::sync::Arc;

/// The open window of one model version.
#[derive(Debug, Clone)]
pub struct DriftTracker {
    model: ModelName,
    version_seq: u64,
    reference: Arc<DriftReference>,
    window_start_ms: u64,
    rows: u64,
    features: Vec<FeatureSummary>,
    outputs: Vec<FeatureSummary>,
    prediction: Option<FeatureSummary>,
    confidence: Option<FeatureSummary>,
    feedback: Feedback,
    /// Reused buffers for the widened first input and output (no allocation per inference).
    input_values: Vec<f64>,
    output_values: Vec<f64>,
}

fn empty(references: &[FeatureReference]) -> Vec<FeatureSummary> {
    references.iter().map(FeatureSummary::for_reference).collect()
}

impl DriftTracker {
    /// Opens the first window of `model` at `version_seq` at `now_ms`.
    pub fn new(model: ModelName, version_seq: u64, reference: Arc<DriftReference>, now_ms: u64) -> Self {
        Self {
            features: empty(&reference.features),
            outputs: empty(&reference.outputs),
            prediction: reference.prediction.as_ref().map(FeatureSummary::for_reference),
            confidence: reference.confidence.as_ref().map(FeatureSummary::for_reference),
            model,
            version_seq,
            reference,
            window_start_ms: now_ms,
            rows: 0,
            feedback: Feedback::default(),
            input_values: Vec::new(),
            output_values: Vec::new(),
        }
    }

    /// The version this tracker summarizes.
    pub fn version_seq(&self) -> u64 {
        self.version_seq
    }

    /// Rows summarized in the open window.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// When the open window started.
    pub fn window_start_ms(&self) -> u64 {
        self.window_start_ms
    }

    /// Adds one successful inference: each batch row of the first input feeds `features`
    /// element by element, each row of the first output feeds `outputs`, `prediction` and
    /// `confidence`. Elements beyond the reference are ignored; a short row leaves the
    /// remaining features uncounted.
    pub fn observe(&mut self, inputs: &[Tensor], outputs: &[Tensor]) {
        if let Some(first) = inputs.first() {
            let (rows, len) = row_layout(first);
            self.rows += rows as u64;
            if !self.features.is_empty() && len > 0 {
                fill_f64(&first.data, &mut self.input_values);
                for row in self.input_values.chunks_exact(len) {
                    for ((summary, reference), value) in self.features.iter_mut().zip(&self.reference.features).zip(row)
                    {
                        summary.observe(&reference.binning, *value);
                    }
                }
            }
        }
        let Some(first) = outputs.first() else { return };
        let (rows, len) = row_layout(first);
        if rows == 0 || len == 0 {
            return;
        }
        fill_f64(&first.data, &mut self.output_values);
        for row in self.output_values.chunks_exact(len) {
            for ((summary, reference), value) in self.outputs.iter_mut().zip(&self.reference.outputs).zip(row) {
                summary.observe(&reference.binning, *value);
            }
            // An all-NaN row has no prediction: both count as missing.
            let best = argmax(row);
            if let (Some(summary), Some(reference)) = (&mut self.prediction, &self.reference.prediction) {
                summary.observe(&reference.binning, best.map_or(f64::NAN, |(i, _)| i as f64));
            }
            if let (Some(summary), Some(reference)) = (&mut self.confidence, &self.reference.confidence) {
                summary.observe(&reference.binning, best.map_or(f64::NAN, |(_, v)| v));
            }
        }
    }

    /// Counts one ground-truth label for an inference this version served.
    pub fn record_feedback(&mut self, correct: bool) {
        self.feedback.merge(Feedback { labelled: 1, correct: u64::from(correct) });
    }

    /// Closes the open window at `now_ms` and opens the next one there. `None` when the
    /// window saw no rows and no feedback (nothing is sent for it). The summary's `seq` is 0:
    /// the outbox assigns the stream sequence number when it is queued.
    pub fn close_window(&mut self, now_ms: u64) -> Option<DriftSummary> {
        let start = std::mem::replace(&mut self.window_start_ms, now_ms);
        if self.rows == 0 && self.feedback == Feedback::default() {
            return None;
        }
        let reference = &self.reference;
        Some(DriftSummary {
            seq: 0,
            model: self.model.clone(),
            version_seq: self.version_seq,
            window_start_ms: start,
            window_end_ms: now_ms.max(start),
            rows: std::mem::take(&mut self.rows),
            features: std::mem::replace(&mut self.features, empty(&reference.features)),
            outputs: std::mem::replace(&mut self.outputs, empty(&reference.outputs)),
            prediction: std::mem::replace(
                &mut self.prediction,
                reference.prediction.as_ref().map(FeatureSummary::for_reference),
            ),
            confidence: std::mem::replace(
                &mut self.confidence,
                reference.confidence.as_ref().map(FeatureSummary::for_reference),
            ),
            feedback: std::mem::take(&mut self.feedback),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::drift::Binning;
    use edgefleet_protocol::tensor::TensorData;

    fn numeric(name: &str, edges: Vec<f64>) -> FeatureReference {
        let binning = Binning::Numeric { edges };
        FeatureReference { name: name.into(), counts: vec![1; binning.buckets()], binning }
    }

    fn reference() -> Arc<DriftReference> {
        let classes = Binning::Categorical { codes: vec![0, 1, 2] };
        Arc::new(DriftReference {
            features: vec![numeric("a", vec![0.0]), numeric("b", vec![0.0])],
            outputs: vec![numeric("o0", vec![0.5]), numeric("o1", vec![0.5]), numeric("o2", vec![0.5])],
            prediction: Some(FeatureReference { name: "class".into(), counts: vec![1; 4], binning: classes }),
            confidence: Some(numeric("confidence", vec![0.5, 0.9])),
        })
    }

    fn t(shape: Vec<u64>, v: Vec<f32>) -> Tensor {
        Tensor { shape, data: TensorData::F32(v) }
    }

    fn tracker() -> DriftTracker {
        DriftTracker::new(ModelName::new("m").unwrap(), 3, reference(), 1_000)
    }

    #[test]
    fn rows_map_elements_to_features_in_order() {
        let mut tr = tracker();
        // Two batch rows of three elements: the third element has no reference (ignored).
        let x = t(vec![2, 3], vec![-1.0, 1.0, 99.0, 2.0, -2.0, 99.0]);
        let y = t(vec![2, 3], vec![0.1, 0.8, 0.1, 0.6, 0.2, 0.2]);
        tr.observe(&[x], &[y]);
        let w = tr.close_window(2_000).unwrap();
        assert_eq!((w.rows, w.window_start_ms, w.window_end_ms, w.version_seq), (2, 1_000, 2_000, 3));
        assert_eq!(w.features[0].bin_counts, vec![1, 1]); // -1 below the edge, 2 above
        assert_eq!(w.features[1].bin_counts, vec![1, 1]);
        assert_eq!((w.features[0].min, w.features[0].max), (-1.0, 2.0));
        assert_eq!(w.outputs[1].bin_counts, vec![1, 1]);
        let prediction = w.prediction.unwrap();
        assert_eq!(prediction.bin_counts, vec![1, 1, 0, 0]); // classes 1 and 0
        let confidence = w.confidence.unwrap();
        assert_eq!((confidence.min, confidence.max), (0.6000000238418579, 0.800000011920929));
    }

    #[test]
    fn a_short_row_leaves_features_uncounted_and_vectors_are_one_row() {
        let mut tr = tracker();
        tr.observe(&[t(vec![1], vec![0.5])], &[t(vec![3], vec![0.2, 0.2, 0.1])]);
        let w = tr.close_window(1_500).unwrap();
        assert_eq!((w.rows, w.features[0].count, w.features[1].count), (1, 1, 0));
        // Ties take the first index.
        assert_eq!(w.prediction.unwrap().bin_counts, vec![1, 0, 0, 0]);
    }

    #[test]
    fn nan_counts_as_missing_and_an_all_nan_row_has_no_prediction() {
        let mut tr = tracker();
        tr.observe(&[t(vec![1, 2], vec![f32::NAN, 1.0])], &[t(vec![1, 3], vec![f32::NAN; 3])]);
        let w = tr.close_window(1_001).unwrap();
        assert_eq!((w.features[0].missing, w.features[0].count, w.features[1].count), (1, 0, 1));
        assert_eq!((w.outputs[0].missing, w.outputs[0].count), (1, 0));
        let prediction = w.prediction.unwrap();
        assert_eq!((prediction.missing, prediction.count), (1, 0));
        assert_eq!(w.confidence.unwrap().missing, 1);
    }

    #[test]
    fn windows_restart_empty_and_an_idle_window_sends_nothing() {
        let mut tr = tracker();
        assert!(tr.close_window(2_000).is_none());
        tr.observe(&[t(vec![1, 2], vec![0.0, 0.0])], &[]);
        let w = tr.close_window(3_000).unwrap();
        assert_eq!((w.window_start_ms, w.rows), (2_000, 1));
        assert!(tr.close_window(4_000).is_none());
        assert_eq!((tr.rows(), tr.window_start_ms()), (0, 4_000));
    }

    #[test]
    fn feedback_alone_makes_a_window() {
        let mut tr = tracker();
        tr.record_feedback(true);
        tr.record_feedback(false);
        let w = tr.close_window(5_000).unwrap();
        assert_eq!((w.rows, w.feedback), (0, Feedback { labelled: 2, correct: 1 }));
        assert_eq!(w.features[0].count, 0);
    }
}
