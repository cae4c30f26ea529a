//! What the fleet knows about drift, per device: the recent windows as received, each window's
//! assessment against its model version's reference, and the persistence state that turns
//! drifting windows into an alert. Pure code; the core feeds it and stores the windows.

use crate::drift::{Assessment, DetectorSettings, Merged, Persistence, assess};
use edgefleet_protocol::drift::{DriftReference, Feedback};
use edgefleet_protocol::uplink::DriftSummary;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// One received window and what the detector made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredWindow {
    /// Fleet clock when received.
    pub received_ms: u64,
    /// The summary, as received.
    pub summary: DriftSummary,
    /// Features drifting in this window, with the reason (empty: none, or not evaluated).
    pub drifting: Vec<(String, String)>,
    /// Whether the window had enough values to be tested.
    pub evaluated: bool,
}

/// A device's drift state for one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelDrift {
    /// Version the windows are of.
    pub version_seq: u64,
    /// Persistence over evaluated windows.
    pub persistence: Persistence,
    /// Alert holds (k of the last n windows drifted).
    pub alert: bool,
    /// Fleet time the alert started.
    pub alert_since_ms: Option<u64>,
    /// Fleet time of the first drifting window of the current run (for detection delay).
    pub first_drifting_ms: Option<u64>,
    /// Reasons from the latest drifting window.
    pub reasons: Vec<(String, String)>,
    /// The latest window's end (device clock).
    pub last_window_end_ms: u64,
}

/// A device's drift data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceDrift {
    /// Newest last, at most the configured retention.
    pub windows: VecDeque<StoredWindow>,
    /// Per model name.
    pub models: BTreeMap<String, ModelDrift>,
}

impl DeviceDrift {
    /// Records a window: assesses it against `reference` (when the fleet knows the version),
    /// updates persistence, and keeps at most `retention` windows. Returns the stored window.
    pub fn record(
        &mut self,
        summary: DriftSummary,
        reference: Option<&DriftReference>,
        settings: &DetectorSettings,
        received_ms: u64,
        retention: usize,
    ) -> &StoredWindow {
        let assessment = reference.map(|r| {
            let mut merged = Merged::default();
            // A summary shaped unlike the reference is assessed as empty (nothing tested).
            let _ = merged.add(&summary);
            assess(r, &merged, settings)
        });
        let evaluated = assessment.as_ref().is_some_and(|a| a.evaluated);
        let drifting = assessment.as_ref().map(reasons).unwrap_or_default();
        let model = self.models.entry(summary.model.to_string()).or_default();
        if model.version_seq != summary.version_seq {
            // A new version starts with a clean slate: its reference is another one.
            *model = ModelDrift { version_seq: summary.version_seq, ..ModelDrift::default() };
        }
        model.last_window_end_ms = model.last_window_end_ms.max(summary.window_end_ms);
        if evaluated {
            let drifts = !drifting.is_empty();
            if drifts {
                model.first_drifting_ms.get_or_insert(received_ms);
                model.reasons = drifting.clone();
            }
            let alert = model.persistence.record(drifts, settings);
            if alert && !model.alert {
                model.alert_since_ms = Some(received_ms);
            }
            if !alert {
                model.alert_since_ms = None;
                if !model.persistence.recent.iter().any(|d| *d) {
                    model.first_drifting_ms = None;
                    model.reasons.clear();
                }
            }
            model.alert = alert;
        }
        self.windows.push_back(StoredWindow { received_ms, summary, drifting, evaluated });
        while self.windows.len() > retention.max(1) {
            self.windows.pop_front();
        }
        // Just pushed, so present.
        &self.windows[self.windows.len() - 1]
    }

    /// The ground-truth counts of this device's windows of `model`@`version` received at or
    /// after `since_ms` (fleet clock: a device's clock may be skewed by hours, so its window
    /// times are never compared with the fleet's): what the accuracy gate needs, without
    /// merging buckets.
    pub fn feedback(&self, model: &str, version: u64, since_ms: u64) -> Feedback {
        let mut total = Feedback::default();
        for w in self.windows.iter().filter(|w| {
            w.summary.model.as_str() == model && w.summary.version_seq == version && w.received_ms >= since_ms
        }) {
            total.merge(w.summary.feedback);
        }
        total
    }

    /// Adds this device's windows of `model`@`version` received at or after `since_ms` (fleet
    /// clock), the newest `last` of them at most.
    pub fn merged(&self, model: &str, version: u64, since_ms: u64, last: usize) -> Merged {
        let mut merged = Merged::default();
        for w in self
            .windows
            .iter()
            .rev()
            .filter(|w| w.summary.model.as_str() == model && w.summary.version_seq == version)
            .filter(|w| w.received_ms >= since_ms)
            .take(last)
        {
            let _ = merged.add(&w.summary);
        }
        merged
    }
}

/// The drifting features of an assessment as `(feature, reason)`.
pub fn reasons(a: &Assessment) -> Vec<(String, String)> {
    a.drifting().map(|f| (f.name.clone(), f.reason.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::profile::{numeric_reference, summarize};
    use edgefleet_protocol::ModelName;

    fn window(version: u64, values: &[f64], reference: &DriftReference, end: u64) -> DriftSummary {
        DriftSummary {
            seq: end,
            model: ModelName::new("m").unwrap_or_else(|_| unreachable!()),
            version_seq: version,
            window_start_ms: end - 1,
            window_end_ms: end,
            rows: values.len() as u64,
            features: vec![summarize(&reference.features[0].binning, values)],
            outputs: vec![],
            prediction: None,
            confidence: None,
            feedback: Default::default(),
        }
    }

    #[test]
    fn an_alert_needs_k_of_n_windows_and_a_new_version_resets_it() {
        let training: Vec<f64> = (0..2000).map(|i| f64::from(i % 100)).collect();
        let reference = DriftReference { features: vec![numeric_reference("x", &training, 10)], ..Default::default() };
        let same: Vec<f64> = (0..500).map(|i| f64::from(i % 100)).collect();
        let shifted: Vec<f64> = same.iter().map(|v| v + 40.0).collect();
        let settings = DetectorSettings::default();
        let mut d = DeviceDrift::default();
        let mut t = 10;
        let mut feed = |d: &mut DeviceDrift, version, values: &[f64]| {
            t += 10;
            d.record(window(version, values, &reference, t), Some(&reference), &settings, t, 8);
            d.models["m"].alert
        };
        assert!(!feed(&mut d, 1, &same));
        assert!(!feed(&mut d, 1, &shifted));
        assert!(!feed(&mut d, 1, &shifted));
        assert!(feed(&mut d, 1, &shifted), "3 of the last 5 windows drifted");
        assert_eq!(d.models["m"].reasons[0].0, "x");
        assert_eq!(d.models["m"].first_drifting_ms, Some(30));
        assert!(!feed(&mut d, 2, &shifted), "another version starts over");
        assert_eq!(d.windows.len(), 5);
        assert_eq!(d.merged("m", 1, 0, 10).windows, 4);
        assert_eq!(d.merged("m", 1, 40, 10).windows, 2);
    }

    #[test]
    fn windows_count_from_when_the_fleet_received_them_whatever_the_device_clock_says() {
        let training: Vec<f64> = (0..2000).map(|i| f64::from(i % 100)).collect();
        let reference = DriftReference { features: vec![numeric_reference("x", &training, 10)], ..Default::default() };
        let values: Vec<f64> = (0..200).map(|i| f64::from(i % 100)).collect();
        let settings = DetectorSettings::default();
        let rollout_created: u64 = 1_000_000_000;
        let day: i64 = 86_400_000;
        for skew in [-day, 0, day] {
            let mut d = DeviceDrift::default();
            for (k, received) in
                [rollout_created - 5_000, rollout_created + 5_000, rollout_created + 10_000].into_iter().enumerate()
            {
                let mut w = window(1, &values, &reference, received.saturating_add_signed(skew));
                w.seq = k as u64 + 1;
                w.feedback = Feedback { labelled: 10, correct: 9 };
                d.record(w, Some(&reference), &settings, received, 8);
            }
            assert_eq!(d.merged("m", 1, rollout_created, 10).windows, 2, "skew {skew}");
            assert_eq!(d.feedback("m", 1, rollout_created).labelled, 20, "skew {skew}");
        }
    }
}
