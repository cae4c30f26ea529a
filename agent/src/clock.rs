//! The device's wall clock. Real devices read the system clock; an embedding simulator gives
//! each simulated device an offset to model clock skew (devices without NTP, a dead RTC
//! battery), so the fleet's handling of device timestamps is exercised.

use crate::reporting::now_ms;

/// Wall-clock milliseconds since the Unix epoch, shifted by a fixed offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// The system clock.
    pub const SYSTEM: Clock = Clock { offset_ms: 0 };

    /// A clock `offset_ms` ahead of the system clock (behind when negative).
    pub fn skewed(offset_ms: i64) -> Clock {
        Clock { offset_ms }
    }

    /// The offset from the system clock.
    pub fn offset_ms(self) -> i64 {
        self.offset_ms
    }

    /// Now, on this clock.
    pub fn now_ms(self) -> u64 {
        now_ms().saturating_add_signed(self.offset_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skewed_clock_runs_at_its_offset_from_the_system_clock() {
        let behind = Clock::skewed(-3_600_000).now_ms();
        let system = Clock::SYSTEM.now_ms();
        let ahead = Clock::skewed(86_400_000).now_ms();
        assert!(system - behind >= 3_600_000 && system - behind < 3_700_000);
        assert!(ahead - system >= 86_400_000 && ahead - system < 86_500_000);
        assert_eq!(Clock::skewed(i64::MIN).now_ms(), 0, "saturates instead of wrapping");
    }
}
