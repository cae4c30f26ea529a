//! Command ids: unique per command the fleet manager sends, across restarts in practice
//! (a random 63-bit start, then sequential), so a device's dedup log never mistakes a new
//! command for one it already ran.

use edgefleet_protocol::command::CommandId;

/// Hands out command ids.
#[derive(Debug, Clone)]
pub struct CommandIds {
    last: u64,
}

impl CommandIds {
    /// Ids following `last` (tests use a fixed start).
    pub fn after(last: u64) -> Self {
        CommandIds { last: last & (u64::MAX >> 1) }
    }

    /// Ids from a random start.
    pub fn random() -> Self {
        let mut seed = [0u8; 8];
        // Without randomness, start at 0: ids are then unique within this run only.
        let _ = getrandom::fill(&mut seed);
        CommandIds::after(u64::from_le_bytes(seed) >> 2)
    }

    /// The next id.
    pub fn next_id(&mut self) -> CommandId {
        self.last = self.last.wrapping_add(1) & (u64::MAX >> 1);
        CommandId(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sequential_and_stay_below_2_to_the_63() {
        let mut ids = CommandIds::after(u64::MAX >> 1);
        assert_eq!(ids.next_id(), CommandId(0));
        assert_eq!(ids.next_id(), CommandId(1));
        let mut random = CommandIds::random();
        let (a, b) = (random.next_id(), random.next_id());
        assert_eq!(b.0, (a.0 + 1) & (u64::MAX >> 1));
        assert!(a.0 < 1 << 63);
    }
}
