//! Reconnect delays: exponential with full jitter (AWS architecture blog's "full jitter"),
//! so a fleet that lost its broker does not reconnect in lockstep. Shared by every MQTT
//! client of ours (the agent's link and the fleet manager's), which is why it lives here
//! rather than in either (`std` only).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Produces successive reconnect delays.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
    rng: SmallRng,
}

impl Backoff {
    /// Delays start below `min` and grow up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Self { min, max, ceiling: min, rng: SmallRng::seed_from_u64(u64::from_le_bytes(seed)) }
    }

    /// Back to the shortest delay (after a successful connect).
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }

    /// The next delay: uniform in `[min/2, ceiling]`, then the ceiling doubles up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let low = self.min / 2;
        let span = self.ceiling.saturating_sub(low).as_millis() as u64;
        let delay = low + Duration::from_millis(if span == 0 { 0 } else { self.rng.random_range(0..=span) });
        self.ceiling = (self.ceiling * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_max_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(50) && *d <= Duration::from_millis(1000)));
        assert!(delays[0] <= Duration::from_millis(100));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
