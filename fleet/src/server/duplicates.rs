//! Two agents configured with the same device id: each (re)connect of one takes the MQTT
//! session from the other, so their births alternate, each with its own boot id. A genuine
//! restart never returns to an earlier boot id (it is random per agent start), so a birth whose
//! boot id came back is a second agent — or, once, a redelivered old birth; the fleet calls it a
//! duplicate at the second return within [`WINDOW_MS`]. From then on the registry keeps the
//! agent it heard from first and refuses the other's births, until the other has been quiet for
//! [`CLEAR_AFTER_MS`]. Pure code: the registry calls it, the core audits what changed.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Boot ids remembered per device.
const RECENT: usize = 4;
/// Returns to an earlier boot id within this long make a duplicate.
pub const WINDOW_MS: u64 = 5 * 60_000;
/// Returns needed within [`WINDOW_MS`] (one can be a redelivered birth).
const RETURNS: usize = 2;
/// A duplicate clears once the other agent sent no birth for this long.
pub const CLEAR_AFTER_MS: u64 = 10 * 60_000;

/// The boot ids a device id was heard with, and a duplicate found among them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BootIds {
    /// Recent boot ids with when each was first heard, oldest first.
    pub recent: VecDeque<(u64, u64)>,
    /// When a birth came back to an earlier boot id, within the window.
    pub returns: VecDeque<u64>,
    /// Set while two agents share the device id.
    pub duplicate: Option<Duplicate>,
}

/// Two agents speaking for one device id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Duplicate {
    /// The boot id kept: the agent heard from first.
    pub kept: u64,
    /// The other agent's boot id, whose births are refused.
    pub other: u64,
    /// Fleet clock when it was found.
    pub since_ms: u64,
    /// The other agent's last birth.
    pub last_other_ms: u64,
    /// Births of the other agent refused so far.
    pub refused_births: u64,
}

impl Duplicate {
    /// In words, for `health` and `devices show`.
    pub fn describe(&self) -> String {
        format!(
            "duplicate device id: two agents (boot ids {:016x} and {:016x}) take turns on it; keeping the first ({:016x}), {} birth(s) of the other refused; give one of them its own device id",
            self.kept, self.other, self.kept, self.refused_births
        )
    }
}

/// What a birth does to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BirthVerdict {
    /// Apply it.
    Apply,
    /// It is the duplicate's: ignore it.
    Refuse,
}

impl BootIds {
    /// A birth with `boot` while the registry follows `current` (0: none yet) at `now_ms`.
    pub fn on_birth(&mut self, current: u64, boot: u64, now_ms: u64) -> BirthVerdict {
        if let Some(d) = &mut self.duplicate {
            if boot == d.other {
                d.last_other_ms = now_ms;
                d.refused_births += 1;
                return BirthVerdict::Refuse;
            }
            if boot != d.kept {
                // A new run; which of the two restarted cannot be told: follow it.
                d.kept = boot;
                self.remember(boot, now_ms);
            }
            return BirthVerdict::Apply;
        }
        if boot == current || current == 0 {
            self.remember(boot, now_ms);
            return BirthVerdict::Apply;
        }
        if !self.recent.iter().any(|&(b, _)| b == boot) {
            self.remember(boot, now_ms);
            return BirthVerdict::Apply; // a restart
        }
        self.returns.push_back(now_ms);
        while self.returns.front().is_some_and(|&t| now_ms.saturating_sub(t) > WINDOW_MS) {
            self.returns.pop_front();
        }
        if self.returns.len() < RETURNS {
            return BirthVerdict::Apply;
        }
        let first_seen = |id: u64| self.recent.iter().find(|&&(b, _)| b == id).map_or(u64::MAX, |&(_, t)| t);
        let (kept, other) = if first_seen(boot) <= first_seen(current) { (boot, current) } else { (current, boot) };
        self.returns.clear();
        self.duplicate = Some(Duplicate { kept, other, since_ms: now_ms, last_other_ms: now_ms, refused_births: 0 });
        if boot == kept {
            BirthVerdict::Apply
        } else {
            if let Some(d) = &mut self.duplicate {
                d.refused_births = 1;
            }
            BirthVerdict::Refuse
        }
    }

    /// Clears the duplicate once the other agent has been quiet long enough; true if it did.
    pub fn tick(&mut self, now_ms: u64) -> bool {
        match &self.duplicate {
            Some(d) if now_ms.saturating_sub(d.last_other_ms) >= CLEAR_AFTER_MS => {
                self.duplicate = None;
                true
            }
            _ => false,
        }
    }

    fn remember(&mut self, boot: u64, now_ms: u64) {
        if self.recent.iter().any(|&(b, _)| b == boot) {
            return;
        }
        self.recent.push_back((boot, now_ms));
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds births the way the registry does (following the applied boot id).
    fn feed(ids: &mut BootIds, current: &mut u64, births: &[(u64, u64)]) -> Vec<BirthVerdict> {
        births
            .iter()
            .map(|&(boot, at)| {
                let v = ids.on_birth(*current, boot, at);
                if v == BirthVerdict::Apply {
                    *current = boot;
                }
                v
            })
            .collect()
    }

    #[test]
    fn restarts_are_not_duplicates() {
        let (mut ids, mut current) = (BootIds::default(), 0);
        let v = feed(&mut ids, &mut current, &[(1, 0), (2, 1000), (3, 2000), (3, 3000), (4, 4000)]);
        assert!(v.iter().all(|v| *v == BirthVerdict::Apply));
        assert!(ids.duplicate.is_none());
        assert_eq!(current, 4);
    }

    #[test]
    fn one_redelivered_old_birth_is_not_a_duplicate() {
        let (mut ids, mut current) = (BootIds::default(), 0);
        // Agent run 2 replaced run 1; run 1's last birth is delivered again; run 2's next birth
        // comes at its next reconnect, long after.
        feed(&mut ids, &mut current, &[(1, 0), (2, 1000), (1, 1100), (2, 1100 + WINDOW_MS + 1)]);
        assert!(ids.duplicate.is_none(), "{ids:?}");
    }

    #[test]
    fn alternating_boot_ids_are_a_duplicate_and_the_first_is_kept() {
        let (mut ids, mut current) = (BootIds::default(), 0);
        let births: Vec<(u64, u64)> = (0..8).map(|i| (if i % 2 == 0 { 0xA } else { 0xB }, i * 500)).collect();
        let v = feed(&mut ids, &mut current, &births);
        let d = ids.duplicate.clone().expect("duplicate found");
        assert_eq!((d.kept, d.other), (0xA, 0xB));
        assert_eq!(current, 0xA, "the registry follows the first agent");
        // Found at the second return (the 4th birth: A B A B); B's births from then on refused.
        assert_eq!(&v[4..], &[BirthVerdict::Apply, BirthVerdict::Refuse, BirthVerdict::Apply, BirthVerdict::Refuse]);
        assert_eq!(d.refused_births, 3, "{d:?}");
        assert!(d.describe().contains("keeping the first (000000000000000a)"), "{}", d.describe());
    }

    #[test]
    fn the_duplicate_clears_when_the_other_agent_goes_quiet() {
        let (mut ids, mut current) = (BootIds::default(), 0);
        feed(&mut ids, &mut current, &[(1, 0), (2, 500), (1, 1000), (2, 1500), (1, 2000)]);
        assert!(ids.duplicate.is_some());
        assert!(!ids.tick(1500 + CLEAR_AFTER_MS - 1));
        assert!(ids.tick(1500 + CLEAR_AFTER_MS));
        assert!(ids.duplicate.is_none());
    }
}
