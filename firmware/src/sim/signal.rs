//! A synthesized vibration signal: machine states (idle, running, loaded) cycling on a fixed
//! schedule, plus a drift switch that adds a bearing-fault tone and raises the noise floor,
//! so the features move the way they do on a wearing machine.

/// Operating state of the simulated machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    /// Motor off: gravity on Z and sensor noise only.
    Idle,
    /// Running at its nominal speed: a 50 Hz shaft tone and its second harmonic.
    Running,
    /// Under load: the same tones, stronger.
    Loaded,
}

/// Deterministic vibration on one axis, in g, one value per sample.
#[derive(Debug, Clone)]
pub struct Vibration {
    sample_rate_hz: u32,
    sample: u64,
    rng: u32,
    drifted: bool,
    drift_at: Option<u64>,
    /// Samples per machine state before moving to the next.
    pub state_period: u64,
}

impl Vibration {
    /// A signal sampled at `sample_rate_hz`, seeded by `seed` (never 0 internally).
    pub fn new(sample_rate_hz: u32, seed: u32) -> Self {
        Self {
            sample_rate_hz: sample_rate_hz.max(1),
            sample: 0,
            rng: seed | 1,
            drifted: false,
            drift_at: None,
            state_period: 0,
        }
    }

    /// Turns the drift (bearing wear) on or off from the next sample on.
    pub fn set_drift(&mut self, on: bool) {
        self.drifted = on;
    }

    /// Turns the drift on by itself once `sample` samples were taken (a timed switch).
    pub fn drift_from_sample(&mut self, sample: u64) {
        self.drift_at = Some(sample);
    }

    /// Whether the drift is on.
    pub fn drifted(&self) -> bool {
        self.drifted
    }

    /// The state the next sample is taken in (always `Running` when `state_period` is 0).
    pub fn state(&self) -> MachineState {
        if self.state_period == 0 {
            return MachineState::Running;
        }
        match (self.sample / self.state_period) % 3 {
            0 => MachineState::Running,
            1 => MachineState::Loaded,
            _ => MachineState::Idle,
        }
    }

    /// The next sample in g.
    pub fn next_g(&mut self) -> f32 {
        if self.drift_at.is_some_and(|at| self.sample >= at) {
            self.drifted = true;
        }
        let t = (self.sample % u64::from(self.sample_rate_hz)) as f32 / self.sample_rate_hz as f32;
        let amplitude = match self.state() {
            MachineState::Idle => 0.0,
            MachineState::Running => 0.5,
            MachineState::Loaded => 0.8,
        };
        let mut g = amplitude * (sin_turns(50.0 * t) + 0.3 * sin_turns(100.0 * t));
        let mut noise = 0.02;
        if self.drifted {
            // An outer-race defect tone at 610 Hz and a rougher noise floor.
            g += 0.6 * sin_turns(610.0 * t);
            noise = 0.15;
        }
        g += noise * self.uniform();
        self.sample += 1;
        g
    }

    /// Uniform in [-1, 1) from a xorshift32.
    fn uniform(&mut self) -> f32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        (self.rng >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
}

/// `sin(2π·turns)` without libm: reduce to [-0.5, 0.5) turns, then a 7th-order Taylor
/// polynomial on [-π/2, π/2] (error below 2e-4).
pub fn sin_turns(turns: f32) -> f32 {
    let mut x = turns - (turns as i64) as f32; // (-1, 1)
    if x >= 0.5 {
        x -= 1.0;
    } else if x < -0.5 {
        x += 1.0;
    }
    // Fold [-0.5, -0.25) and (0.25, 0.5) onto the central quarter: sin(π - a) = sin(a).
    if x > 0.25 {
        x = 0.5 - x;
    } else if x < -0.25 {
        x = -0.5 - x;
    }
    let a = x * core::f32::consts::TAU;
    let a2 = a * a;
    a * (1.0 - a2 / 6.0 * (1.0 - a2 / 20.0 * (1.0 - a2 / 42.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_is_close_everywhere() {
        for i in -400..400 {
            let turns = i as f32 / 97.0;
            let expected = (turns * core::f32::consts::TAU).sin();
            assert!((sin_turns(turns) - expected).abs() < 2e-3, "{turns}");
        }
    }

    #[test]
    fn drift_raises_the_energy() {
        let energy = |drift: bool| {
            let mut v = Vibration::new(3200, 7);
            v.set_drift(drift);
            (0..3200).map(|_| v.next_g().powi(2)).sum::<f32>()
        };
        assert!(energy(true) > energy(false) * 1.5);
    }
}
