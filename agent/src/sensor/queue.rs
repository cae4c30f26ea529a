//! A bounded drop-oldest queue between the serial reader (which must never block: a UART does
//! not wait) and inference. When inference falls behind, the oldest sample goes and is counted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

/// Samples waiting for inference.
#[derive(Debug)]
pub struct SampleQueue {
    items: Mutex<VecDeque<Vec<f32>>>,
    capacity: usize,
    drops: AtomicU64,
    ready: Notify,
}

impl SampleQueue {
    /// A queue holding at most `capacity` (at least 1) samples.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            items: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            drops: AtomicU64::new(0),
            ready: Notify::new(),
        }
    }

    /// Adds a sample, dropping the oldest when full; returns whether one was dropped.
    pub fn push(&self, values: Vec<f32>) -> bool {
        let dropped = {
            let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
            let dropped = if items.len() >= self.capacity { items.pop_front().is_some() } else { false };
            items.push_back(values);
            dropped
        };
        if dropped {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
        self.ready.notify_one();
        dropped
    }

    /// The oldest sample, waiting for one.
    pub async fn pop(&self) -> Vec<f32> {
        loop {
            if let Some(values) = self.try_pop() {
                return values;
            }
            self.ready.notified().await;
        }
    }

    /// The oldest sample, if any.
    pub fn try_pop(&self) -> Option<Vec<f32>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples dropped so far.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drops_the_oldest_and_counts() {
        let q = SampleQueue::new(2);
        assert!(!q.push(vec![1.0]));
        assert!(!q.push(vec![2.0]));
        assert!(q.push(vec![3.0]));
        assert_eq!(q.drops(), 1);
        assert_eq!(q.pop().await, vec![2.0]);
        assert_eq!(q.pop().await, vec![3.0]);
        assert!(q.is_empty());
        let waiter = async { q.pop().await };
        let pusher = async {
            tokio::task::yield_now().await;
            q.push(vec![4.0]);
        };
        let (got, ()) = tokio::join!(waiter, pusher);
        assert_eq!(got, vec![4.0]);
    }
}
