//! Everything drift and sampling keep for the served model, as one pure state type: the open
//! window ([`DriftTracker`]), the feedback log, the sampler and the policy. The inference
//! worker feeds it, the API adds feedback, and the drift task takes closed windows and
//! batches out of it; none of them does I/O through it.

use super::feedback::FeedbackLog;
use super::policy::{Overrides, Policy};
use super::rows::{predicted_class, to_f32};
use super::sampler::{PendingBatch, Sampler, record_cost};
use super::tracker::DriftTracker;
use crate::inference::ModelInfo;
use edgefleet_protocol::drift::DriftReference;
use edgefleet_protocol::tensor::Tensor;
use edgefleet_protocol::uplink::{DriftSummary, SampleLabel, SampleRecord};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Something for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// A drift summary (Drift stream).
    Drift(Box<DriftSummary>),
    /// Sampled records (Samples stream), with the labels that arrived before it was sent
    /// (Labels stream, right after it).
    Samples(PendingBatch),
    /// Labels that arrived after their records were sent (Labels stream).
    Labels(Vec<SampleLabel>),
}

/// Late labels kept for the next report at most (older ones are dropped first).
pub const LATE_LABELS_CAPACITY: usize = 4096;

/// Labels per `SampleLabels` message at most (≤ 30 bytes each encoded: about 30 KiB).
pub const LABELS_PER_MESSAGE: usize = 1024;

/// The answer to a ground-truth label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedbackAnswer {
    /// The inference labelled.
    pub inference_id: u64,
    /// Whether the label equals the predicted class.
    pub correct: bool,
    /// The predicted class (argmax of the first output's first row).
    pub predicted: Option<i64>,
    /// The version that served the inference.
    pub model: ModelInfo,
    /// Whether the label was counted in a drift window: only the first label of an inference
    /// is, and only while the version that served it is still the active one (labels for a
    /// replaced version are answered but dropped — its windows are closed and sent).
    pub counted: bool,
}

/// The inference id is unknown or was forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("inference {0} is unknown or too old for feedback (the agent remembers the latest 4096)")]
pub struct UnknownInference(pub u64);

/// Settings and the open window, for `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftStatus {
    /// The policy of the active model (the default one when none is active).
    pub policy: Policy,
    /// Whether the active model's package has a drift reference (summaries are sent).
    pub summarizing: bool,
    /// Rows in the open window.
    pub window_rows: u64,
    /// When the open window started (ms since the Unix epoch), if a model is active.
    pub window_start_ms: Option<u64>,
    /// Sampled records refused for lack of byte budget since the start.
    pub samples_dropped_for_budget: u64,
}

#[derive(Debug)]
struct Active {
    info: Arc<ModelInfo>,
    window_start_ms: u64,
    tracker: Option<DriftTracker>,
}

/// The state.
#[derive(Debug)]
pub struct DriftHub {
    default: Policy,
    overrides: Overrides,
    active: Option<Active>,
    feedback: FeedbackLog,
    sampler: Sampler,
    ready: Vec<Report>,
    late_labels: Vec<SampleLabel>,
}

impl DriftHub {
    /// A hub with the configured `default` policy and persisted `overrides`, sampling from
    /// `seed`.
    pub fn new(default: Policy, overrides: Overrides, seed: u64) -> Self {
        Self {
            default,
            overrides,
            active: None,
            feedback: FeedbackLog::default(),
            sampler: Sampler::new(seed),
            ready: Vec::new(),
            late_labels: Vec::new(),
        }
    }

    /// The policy in force for the active model.
    pub fn policy(&self) -> Policy {
        self.active.as_ref().map_or(self.default, |a| self.overrides.resolve(&a.info.name, self.default))
    }

    /// The fleet's overrides.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// Replaces the overrides (after a command); a shorter window applies to the open one.
    pub fn set_overrides(&mut self, overrides: Overrides) {
        self.overrides = overrides;
    }

    /// The served model changed (activation, rollback, unload): closes the previous version's
    /// window and batch early and opens the new version's.
    pub fn activate(&mut self, now_ms: u64, info: Option<ModelInfo>, reference: Arc<DriftReference>) {
        self.close(now_ms);
        self.sampler.seal();
        self.active = info.map(|info| Active {
            tracker: (!reference.is_empty())
                .then(|| DriftTracker::new(info.name.clone(), info.version_seq, reference, now_ms)),
            info: Arc::new(info),
            window_start_ms: now_ms,
        });
    }

    /// One successful inference `inference_id` of the active model.
    pub fn observe(&mut self, now_ms: u64, inference_id: u64, inputs: &[Tensor], outputs: &[Tensor]) {
        let policy = self.policy();
        let Some(active) = &mut self.active else { return };
        self.feedback.remember(inference_id, active.info.clone(), predicted_class(outputs));
        if let Some(tracker) = &mut active.tracker {
            tracker.observe(inputs, outputs);
        }
        if self.sampler.draw(&policy) {
            let (first_in, first_out) = (inputs.first(), outputs.first());
            let cost = record_cost(first_in.map_or(0, |t| t.data.len()), first_out.map_or(0, |t| t.data.len()));
            let kept = self.sampler.offer(&policy, now_ms, &active.info.name, active.info.version_seq, cost, || {
                SampleRecord {
                    inference_id,
                    timestamp_ms: now_ms,
                    inputs: first_in.map(|t| to_f32(&t.data)).unwrap_or_default(),
                    outputs: first_out.map(|t| to_f32(&t.data)).unwrap_or_default(),
                }
            });
            if kept && let Some(served) = self.feedback.get_mut(inference_id) {
                served.sampled_at_ms = Some(now_ms);
            }
        }
    }

    /// A ground-truth `label` for `inference_id`.
    pub fn feedback(&mut self, inference_id: u64, label: i64) -> Result<FeedbackAnswer, UnknownInference> {
        let served = self.feedback.get_mut(inference_id).ok_or(UnknownInference(inference_id))?;
        let correct = served.predicted == Some(label);
        // A sampled inference's label goes to the fleet: with its batch while that waits here,
        // on its own once the batch was handed to the outbox.
        if let Some(timestamp_ms) = served.sampled_at_ms {
            let sample_label = SampleLabel { inference_id, timestamp_ms, label };
            if !self.sampler.attach_label(sample_label) {
                if self.late_labels.len() >= LATE_LABELS_CAPACITY {
                    self.late_labels.remove(0);
                }
                self.late_labels.push(sample_label);
            }
        }
        let tracker = self.active.as_mut().filter(|a| a.info == served.model).and_then(|a| a.tracker.as_mut());
        let counted = !served.labelled && tracker.is_some();
        if counted && let Some(tracker) = tracker {
            tracker.record_feedback(correct);
            served.labelled = true;
        }
        Ok(FeedbackAnswer {
            inference_id,
            correct,
            predicted: served.predicted,
            model: (*served.model).clone(),
            counted,
        })
    }

    fn close(&mut self, now_ms: u64) {
        if let Some(active) = &mut self.active {
            active.window_start_ms = now_ms;
            if let Some(window) = active.tracker.as_mut().and_then(|t| t.close_window(now_ms)) {
                self.ready.push(Report::Drift(Box::new(window)));
            }
        }
    }

    /// What is due at `now_ms`: the window when its time is up (with the sample batch it
    /// collected), windows closed early by a version change, and batches that filled up.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Report> {
        let window_ms = self.policy().drift_window_ms;
        if self.active.as_ref().is_some_and(|a| now_ms >= a.window_start_ms.saturating_add(window_ms)) {
            self.close(now_ms);
            self.sampler.seal();
        }
        self.take_ready()
    }

    /// Closes everything now (shutdown).
    pub fn flush(&mut self, now_ms: u64) -> Vec<Report> {
        self.close(now_ms);
        self.sampler.seal();
        self.take_ready()
    }

    fn take_ready(&mut self) -> Vec<Report> {
        let mut out = std::mem::take(&mut self.ready);
        out.extend(self.sampler.take_full().into_iter().map(Report::Samples));
        // Several messages when many wait, each far below the MQTT packet limit.
        let late = std::mem::take(&mut self.late_labels);
        out.extend(late.chunks(LABELS_PER_MESSAGE).map(|c| Report::Labels(c.to_vec())));
        out
    }

    /// How often the drift task should poll: a quarter window, between 25 ms and 1 s.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis((self.policy().drift_window_ms / 4).clamp(25, 1_000))
    }

    /// For `GET /v1/status`.
    pub fn status(&self) -> DriftStatus {
        let tracker = self.active.as_ref().and_then(|a| a.tracker.as_ref());
        DriftStatus {
            policy: self.policy(),
            summarizing: tracker.is_some(),
            window_rows: tracker.map_or(0, DriftTracker::rows),
            window_start_ms: self.active.as_ref().map(|a| a.window_start_ms),
            samples_dropped_for_budget: self.sampler.dropped_for_budget(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::ModelName;
    use edgefleet_protocol::command::SamplingPolicy;
    use edgefleet_protocol::drift::{Binning, FeatureReference};
    use edgefleet_protocol::tensor::TensorData;

    const POLICY: Policy = Policy { sample_rate: 0.0, max_sample_bytes_per_hour: 1 << 20, drift_window_ms: 1_000 };

    fn info(version_seq: u64) -> ModelInfo {
        ModelInfo { name: ModelName::new("m").unwrap(), version_seq, label: format!("1.{version_seq}") }
    }

    fn reference() -> Arc<DriftReference> {
        let binning = Binning::Numeric { edges: vec![0.0] };
        Arc::new(DriftReference {
            features: vec![FeatureReference { name: "x".into(), binning, counts: vec![1, 1] }],
            ..DriftReference::default()
        })
    }

    fn infer(hub: &mut DriftHub, now: u64, id: u64, class: usize) {
        let mut y = vec![0.0f32; 3];
        y[class] = 1.0;
        let x = Tensor { shape: vec![1, 1], data: TensorData::F32(vec![0.5]) };
        hub.observe(now, id, &[x], &[Tensor { shape: vec![1, 3], data: TensorData::F32(y) }]);
    }

    fn drift(reports: &[Report]) -> Vec<&DriftSummary> {
        reports.iter().filter_map(|r| if let Report::Drift(w) = r { Some(&**w) } else { None }).collect()
    }

    #[test]
    fn windows_close_on_time_and_early_on_a_version_change() {
        let mut hub = DriftHub::new(POLICY, Overrides::default(), 1);
        hub.activate(10_000, Some(info(1)), reference());
        infer(&mut hub, 10_100, 1, 0);
        assert!(hub.poll(10_999).is_empty(), "not due yet");
        let due = hub.poll(11_000);
        assert_eq!(
            drift(&due).iter().map(|w| (w.window_start_ms, w.window_end_ms, w.rows)).collect::<Vec<_>>(),
            [(10_000, 11_000, 1)]
        );
        assert!(hub.poll(12_500).is_empty(), "an idle window sends nothing");
        infer(&mut hub, 12_600, 2, 0);
        hub.activate(12_700, Some(info(2)), reference());
        infer(&mut hub, 12_800, 3, 0);
        let early = hub.poll(12_900);
        let windows = drift(&early);
        assert_eq!((windows.len(), windows[0].version_seq, windows[0].window_end_ms), (1, 1, 12_700));
        let last = hub.flush(13_000);
        assert_eq!(drift(&last).iter().map(|w| (w.version_seq, w.window_start_ms)).collect::<Vec<_>>(), [(2, 12_700)]);
    }

    #[test]
    fn feedback_counts_once_for_the_version_that_served() {
        let mut hub = DriftHub::new(POLICY, Overrides::default(), 1);
        hub.activate(0, Some(info(1)), reference());
        infer(&mut hub, 1, 1, 2);
        infer(&mut hub, 2, 2, 0);
        let a = hub.feedback(1, 2).unwrap();
        assert_eq!((a.correct, a.predicted, a.counted, a.model.version_seq), (true, Some(2), true, 1));
        assert!(!hub.feedback(1, 2).unwrap().counted, "a second label is not counted");
        assert!(!hub.feedback(2, 1).unwrap().correct);
        assert_eq!(hub.feedback(99, 1), Err(UnknownInference(99)));
        // Id 2's version is replaced: the label is answered but dropped.
        infer(&mut hub, 3, 3, 1);
        hub.activate(4, Some(info(2)), reference());
        let windows = hub.poll(5);
        assert_eq!(drift(&windows)[0].feedback, edgefleet_protocol::drift::Feedback { labelled: 2, correct: 1 });
        hub.feedback(3, 1).map(|a| assert!(a.correct && !a.counted)).unwrap();
        assert!(hub.flush(6).is_empty());
    }

    #[test]
    fn no_reference_no_summaries_but_feedback_and_samples_work() {
        let mut hub = DriftHub::new(Policy { sample_rate: 1.0, ..POLICY }, Overrides::default(), 1);
        hub.activate(0, Some(info(1)), Arc::default());
        infer(&mut hub, 1, 1, 1);
        assert!(hub.feedback(1, 1).unwrap().correct);
        let reports = hub.poll(1_000);
        assert!(drift(&reports).is_empty());
        let Some(Report::Samples(batch)) = reports.first() else { panic!("{reports:?}") };
        assert_eq!((batch.records[0].inference_id, &batch.records[0].inputs[..]), (1, &[0.5f32][..]));
        assert!(!hub.status().summarizing);
    }

    #[test]
    fn labels_travel_with_their_batch_or_after_it() {
        let mut hub = DriftHub::new(Policy { sample_rate: 1.0, ..POLICY }, Overrides::default(), 1);
        hub.activate(0, Some(info(1)), Arc::default());
        infer(&mut hub, 10, 1, 1);
        infer(&mut hub, 20, 2, 0);
        // Before the batch leaves: the label goes with it (a second label replaces the first).
        hub.feedback(1, 0).unwrap();
        hub.feedback(1, 2).unwrap();
        let reports = hub.poll(1_000);
        let [Report::Samples(batch)] = &reports[..] else { panic!("{reports:?}") };
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.labels, vec![SampleLabel { inference_id: 1, timestamp_ms: 10, label: 2 }]);
        // After it left: a labels report of its own, naming the record by id and timestamp.
        hub.feedback(2, 1).unwrap();
        let reports = hub.poll(1_100);
        assert_eq!(reports, vec![Report::Labels(vec![SampleLabel { inference_id: 2, timestamp_ms: 20, label: 1 }])]);
        // An inference that was not sampled: nothing to join a label to, nothing sent.
        let mut unsampled = DriftHub::new(POLICY, Overrides::default(), 1);
        unsampled.activate(0, Some(info(1)), Arc::default());
        infer(&mut unsampled, 10, 1, 1);
        unsampled.feedback(1, 1).unwrap();
        assert!(unsampled.flush(2_000).is_empty());
    }

    #[test]
    fn overrides_change_the_window() {
        let mut hub = DriftHub::new(POLICY, Overrides::default(), 1);
        hub.activate(0, Some(info(1)), reference());
        let mut o = Overrides::default();
        let command = SamplingPolicy {
            model: Some(ModelName::new("m").unwrap()),
            sample_rate: 0.5,
            max_sample_bytes_per_hour: 10,
            drift_window_ms: 200,
        };
        o.apply(&command).unwrap();
        hub.set_overrides(o);
        infer(&mut hub, 50, 1, 0);
        assert_eq!(hub.status().window_rows, 1);
        assert_eq!(drift(&hub.poll(200)).len(), 1);
        assert_eq!((hub.status().policy.drift_window_ms, hub.poll_interval()), (200, Duration::from_millis(50)));
    }
}
