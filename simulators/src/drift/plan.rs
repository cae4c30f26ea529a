//! Where and when a drift scenario applies: the affected devices (a seeded fraction of the
//! fleet or explicit indices), the onset, and the shared [`DriftControl`] that running sensors
//! read on every window, so a caller (the demo) can switch drift on mid-run.

use super::DriftScenario;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Mixed into the fleet seed for the affected-set draw, so it is independent of the hardware
/// shuffle that uses the same seed (otherwise "affected" would correlate with hardware class).
const AFFECTED_SALT: u64 = 0xD81F_7A5E_0000_0001;

/// When drift starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Onset {
    /// This long after the start of whatever applies the plan (the fleet's start for
    /// [`crate::fleet::SimFleet`], so a crash-restarted device does not restart its drift).
    AfterStart(Duration),
    /// At this instant (may be in the future: the demo schedules drift this way).
    At(Instant),
}

impl Onset {
    /// The onset instant for something that started at `start`.
    pub fn resolve(self, start: Instant) -> Instant {
        match self {
            Onset::AfterStart(after) => start + after,
            Onset::At(at) => at,
        }
    }
}

/// Which devices drift.
#[derive(Debug, Clone, PartialEq)]
pub enum Affected {
    /// This fraction (`0.0..=1.0`, rounded to whole devices) of the fleet, chosen by the seed.
    Fraction(f64),
    /// These device indices (indices past the fleet's end are ignored).
    Devices(Vec<usize>),
}

impl Affected {
    /// The affected device indices of a fleet of `devices`, ascending; the same seed gives the
    /// same set.
    pub fn resolve(&self, devices: usize, seed: u64) -> Vec<usize> {
        match self {
            Affected::Fraction(fraction) => {
                // NaN and out-of-range fractions clamp rather than panic: this comes from a
                // command line.
                let fraction = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
                let count = ((devices as f64 * fraction).round() as usize).min(devices);
                let mut order: Vec<usize> = (0..devices).collect();
                order.shuffle(&mut SmallRng::seed_from_u64(seed ^ AFFECTED_SALT));
                let mut chosen = order[..count].to_vec();
                chosen.sort_unstable();
                chosen
            }
            Affected::Devices(indices) => {
                let set: BTreeSet<usize> = indices.iter().copied().filter(|&i| i < devices).collect();
                set.into_iter().collect()
            }
        }
    }
}

/// A drift scenario, its onset and the devices it affects.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftPlan {
    /// What happens.
    pub scenario: DriftScenario,
    /// From when.
    pub onset: Onset,
    /// To whom.
    pub affected: Affected,
}

impl DriftPlan {
    /// The plan for a fleet of `devices` with `seed` that started at `start`.
    pub fn activate(&self, devices: usize, seed: u64, start: Instant) -> ActiveDrift {
        ActiveDrift {
            scenario: self.scenario.clone(),
            onset: self.onset.resolve(start),
            affected: self.affected.resolve(devices, seed).into_iter().collect(),
        }
    }
}

/// A plan resolved for one fleet: concrete onset instant and device indices.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveDrift {
    /// What happens.
    pub scenario: DriftScenario,
    /// From when.
    pub onset: Instant,
    /// Affected device indices.
    pub affected: BTreeSet<usize>,
}

/// A cheap, cloneable handle to the drift a fleet's sensors apply. Each sensor reads it once
/// per window; [`DriftControl::set`] and [`DriftControl::clear`] take effect from the next one.
#[derive(Debug, Clone, Default)]
pub struct DriftControl {
    active: Arc<RwLock<Option<Arc<ActiveDrift>>>>,
}

impl DriftControl {
    /// No drift.
    pub fn new() -> DriftControl {
        DriftControl::default()
    }

    /// Applies `drift` (replacing any other).
    pub fn set(&self, drift: ActiveDrift) {
        // A panic while holding this lock cannot leave the Option half-written, so a poisoned
        // lock's value is still good.
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(drift));
    }

    /// Stops all drift.
    pub fn clear(&self) {
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The drift in force, if any.
    pub fn current(&self) -> Option<Arc<ActiveDrift>> {
        self.active.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_picks_a_deterministic_set_of_the_right_size() {
        let a = Affected::Fraction(0.2).resolve(200, 7);
        assert_eq!(a.len(), 40);
        assert_eq!(a, Affected::Fraction(0.2).resolve(200, 7));
        assert_ne!(a, Affected::Fraction(0.2).resolve(200, 8));
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|&i| i < 200));
        assert_eq!(Affected::Fraction(0.25).resolve(10, 1).len(), 3); // 2.5 rounds up
        assert_eq!(Affected::Fraction(1.5).resolve(10, 1).len(), 10);
        assert!(Affected::Fraction(f64::NAN).resolve(10, 1).is_empty());
        assert!(Affected::Fraction(0.5).resolve(0, 1).is_empty());
    }

    #[test]
    fn explicit_devices_are_deduplicated_and_bounded() {
        assert_eq!(Affected::Devices(vec![5, 1, 5, 99]).resolve(10, 0), vec![1, 5]);
    }

    #[test]
    fn onset_resolves_relative_to_start_and_control_switches() {
        let start = Instant::now();
        let plan = DriftPlan {
            scenario: DriftScenario::NewState,
            onset: Onset::AfterStart(Duration::from_secs(30)),
            affected: Affected::Devices(vec![2]),
        };
        let active = plan.activate(4, 0, start);
        assert_eq!(active.onset, start + Duration::from_secs(30));
        assert_eq!(Onset::At(start).resolve(start + Duration::from_secs(9)), start);
        let control = DriftControl::new();
        let sensor_side = control.clone();
        assert!(sensor_side.current().is_none());
        control.set(active.clone());
        assert_eq!(sensor_side.current().as_deref(), Some(&active));
        control.clear();
        assert!(sensor_side.current().is_none());
    }
}
