//! The recent inferences ground truth can still be reported for: inference id → (version
//! that served it, predicted class), bounded to the most recent [`FEEDBACK_CAPACITY`].

use crate::inference::ModelInfo;
use std::collections::VecDeque;
use std::sync::Arc;

/// Inferences remembered for feedback; older ids are answered as unknown.
pub const FEEDBACK_CAPACITY: usize = 4096;

/// What is remembered about one inference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The version that served it.
    pub model: Arc<ModelInfo>,
    /// The argmax of its first output's first row (`None`: no finite output).
    pub predicted: Option<i64>,
    /// Whether a label was already counted for it (each inference counts once).
    pub labelled: bool,
    /// When it was sampled (its record's `timestamp_ms`), if it was: its labels go to the fleet.
    pub sampled_at_ms: Option<u64>,
}

/// Bounded log of recent inferences. Ids come from the worker in increasing order, so the
/// log is sorted and a lookup is a binary search (no hash map, no per-entry allocation).
#[derive(Debug, Clone)]
pub struct FeedbackLog {
    capacity: usize,
    entries: VecDeque<(u64, Served)>,
}

impl Default for FeedbackLog {
    fn default() -> Self {
        Self::with_capacity(FEEDBACK_CAPACITY)
    }
}

impl FeedbackLog {
    /// A log keeping the `capacity` most recent inferences.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), entries: VecDeque::with_capacity(capacity.min(FEEDBACK_CAPACITY)) }
    }

    /// Remembers inference `id` (ids must increase; an out-of-order id is ignored).
    pub fn remember(&mut self, id: u64, model: Arc<ModelInfo>, predicted: Option<i64>) {
        if self.entries.back().is_some_and(|(last, _)| *last >= id) {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((id, Served { model, predicted, labelled: false, sampled_at_ms: None }));
    }

    /// The entry of `id`, `None` when unknown or forgotten.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Served> {
        let index = self.entries.binary_search_by_key(&id, |(i, _)| *i).ok()?;
        self.entries.get_mut(index).map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::ModelName;

    #[test]
    fn keeps_the_most_recent_ids() {
        let info = Arc::new(ModelInfo { name: ModelName::new("m").unwrap(), version_seq: 1, label: "1".into() });
        let mut log = FeedbackLog::with_capacity(3);
        for id in 1..=5 {
            log.remember(id, info.clone(), Some(id as i64));
        }
        assert!(log.get_mut(2).is_none(), "evicted");
        assert_eq!(log.get_mut(4).map(|s| s.predicted), Some(Some(4)));
        log.remember(4, info, None);
        assert_eq!(log.get_mut(4).map(|s| s.predicted), Some(Some(4)), "out of order ignored");
        assert!(log.get_mut(9).is_none());
    }
}
