//! Simulated hardware: every simulated device runs the real tract model on this host's CPU, and
//! its hardware class's [`LatencyProfile`] turns the measured compute time into the latency
//! that class would show; [`ModelFault`]s make a model slow or failing on chosen devices;
//! [`SimulatedDisk`] lets a device's data partition fill up.
//!
//! They act through the agent's seams ([`ModelLayer`], [`DiskSpace`]), so the agent's own code
//! measures and reports the latency, errors and free space (its histograms, probation, the
//! disk check before a download, health reports, the fleet's gates) exactly as on a device.

use edgefleet_agent::deploy::fsutil::{DiskSpace, FileSystem};
use edgefleet_agent::inference::{InferenceError, Model, ModelInfo, ModelLayer};
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::tensor::{Tensor, TensorSpec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How long a hardware class takes to run a model, from the time this host's CPU took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyProfile {
    /// Compute time multiplier against this host's CPU.
    pub compute_factor: f64,
    /// Fixed cost per call (kernel launch, host↔device copies), microseconds.
    pub overhead_us: u64,
    /// Uniform extra delay up to this many microseconds (scheduling, bus contention).
    pub jitter_us: u64,
}

impl LatencyProfile {
    /// The default profile of a class.
    ///
    /// - CPU: an edge SoC core (Cortex-A72 class) runs f32 matrix-vector work about 3× slower
    ///   than the x86 cores these simulations run on.
    /// - GPU: an embedded GPU (Jetson class) at batch 1: ~200 µs of launch and copy overhead,
    ///   compute no faster than the host for networks this small.
    /// - Accelerator: an NPU: ~100 µs of driver overhead, compute at half the host's time.
    pub fn for_class(class: HardwareClass) -> LatencyProfile {
        match class {
            HardwareClass::Gpu => LatencyProfile { compute_factor: 1.0, overhead_us: 200, jitter_us: 40 },
            HardwareClass::Accelerator => LatencyProfile { compute_factor: 0.5, overhead_us: 100, jitter_us: 20 },
            _ => LatencyProfile { compute_factor: 3.0, overhead_us: 0, jitter_us: 10 },
        }
    }

    /// The latency this class shows for a call that took `host` here (never less than `host`:
    /// the simulation cannot undo time already spent).
    pub fn latency(&self, host: Duration, jitter: f64) -> Duration {
        let target_us = self.overhead_us as f64
            + host.as_secs_f64() * 1e6 * self.compute_factor
            + self.jitter_us as f64 * jitter.clamp(0.0, 1.0);
        Duration::from_secs_f64(target_us / 1e6).max(host)
    }
}

/// A fault injected into the model a device runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelFault {
    /// Every call takes this many times longer.
    Slow {
        /// Latency multiplier (≥ 1).
        factor: f64,
    },
    /// After the first `after_calls` calls (so golden validation passes), this fraction of
    /// calls fails with a runtime error.
    Failing {
        /// Calls that succeed first.
        after_calls: u64,
        /// Fraction of later calls that fail (0 to 1).
        error_rate: f64,
    },
}

/// Which model versions a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// Every version.
    All,
    /// Versions with this sequence number or later (a bad release and whatever follows it).
    From(u64),
}

impl Versions {
    fn includes(self, version_seq: u64) -> bool {
        match self {
            Versions::All => true,
            Versions::From(first) => version_seq >= first,
        }
    }
}

/// The model faults in force, per device index; shared by a fleet and its devices' layers and
/// read on every call, so faults can be switched on and off while the fleet runs.
#[derive(Debug, Clone, Default)]
pub struct ModelFaults {
    by_device: Arc<RwLock<BTreeMap<usize, (ModelFault, Versions)>>>,
}

impl ModelFaults {
    /// Applies `fault` to the models of versions `versions` on devices `indices`.
    pub fn set(&self, indices: &[usize], fault: ModelFault, versions: Versions) {
        // A panic while holding this lock cannot leave the map half-written.
        let mut map = self.by_device.write().unwrap_or_else(PoisonError::into_inner);
        for &i in indices {
            map.insert(i, (fault, versions));
        }
    }

    /// Removes every model fault.
    pub fn clear(&self) {
        self.by_device.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    fn get(&self, index: usize) -> Option<(ModelFault, Versions)> {
        self.by_device.read().unwrap_or_else(PoisonError::into_inner).get(&index).copied()
    }
}

/// The [`ModelLayer`] of one simulated device: its class's latency profile and its faults.
#[derive(Debug, Clone)]
pub struct SimulatedHardware {
    /// The device's index in its fleet (the key into `faults`).
    pub index: usize,
    /// Its latency profile.
    pub profile: LatencyProfile,
    /// The fleet's fault table.
    pub faults: ModelFaults,
    /// Seeds the jitter and the failing calls.
    pub seed: u64,
}

impl ModelLayer for SimulatedHardware {
    fn wrap(&self, model: Box<dyn Model>, info: &ModelInfo) -> Box<dyn Model> {
        Box::new(SimulatedModel {
            inner: model,
            hardware: self.clone(),
            version_seq: info.version_seq,
            name: info.name.to_string(),
            calls: 0,
            rng: SmallRng::seed_from_u64(self.seed ^ info.version_seq.rotate_left(17)),
        })
    }
}

struct SimulatedModel {
    inner: Box<dyn Model>,
    hardware: SimulatedHardware,
    version_seq: u64,
    name: String,
    calls: u64,
    rng: SmallRng,
}

impl Model for SimulatedModel {
    fn inputs(&self) -> &[TensorSpec] {
        self.inner.inputs()
    }

    fn outputs(&self) -> &[TensorSpec] {
        self.inner.outputs()
    }

    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferenceError> {
        let started = Instant::now();
        self.calls += 1;
        let fault = self.hardware.faults.get(self.hardware.index).filter(|(_, v)| v.includes(self.version_seq));
        if let Some((ModelFault::Failing { after_calls, error_rate }, _)) = fault
            && self.calls > after_calls
            && self.rng.random::<f64>() < error_rate
        {
            return Err(InferenceError::Run {
                model: self.name.clone(),
                reason: "simulated fault: the accelerator runtime returned an error".into(),
            });
        }
        let outputs = self.inner.run(inputs)?;
        let mut latency = self.hardware.profile.latency(started.elapsed(), self.rng.random());
        if let Some((ModelFault::Slow { factor }, _)) = fault {
            latency = latency.mul_f64(factor.max(1.0));
        }
        if let Some(left) = latency.checked_sub(started.elapsed()) {
            // This is the device's dedicated inference thread: sleeping here is what a slower
            // chip would look like to everything around it (queueing included).
            std::thread::sleep(left);
        }
        Ok(outputs)
    }
}

/// Devices whose clocks are off: their health reports, deployment statuses and drift windows
/// carry timestamps `offset_ms` away from the fleet's clock (no NTP, a dead RTC battery).
#[derive(Debug, Clone, PartialEq)]
pub struct ClockSkew {
    /// Which devices.
    pub affected: crate::drift::Affected,
    /// How far their clocks are ahead (negative: behind).
    pub offset_ms: i64,
}

/// Which simulated devices have a (nearly) full data partition: device index → bytes left.
/// Shared by a fleet and its devices' disks, read on every check.
#[derive(Debug, Clone, Default)]
pub struct FullDisks {
    bytes_left: Arc<RwLock<BTreeMap<usize, u64>>>,
}

impl FullDisks {
    /// Leaves only `bytes_left` free on devices `indices` (`None`: their real free space again).
    pub fn set(&self, indices: &[usize], bytes_left: Option<u64>) {
        let mut map = self.bytes_left.write().unwrap_or_else(PoisonError::into_inner);
        for &i in indices {
            match bytes_left {
                Some(left) => map.insert(i, left),
                None => map.remove(&i),
            };
        }
    }

    fn get(&self, index: usize) -> Option<u64> {
        self.bytes_left.read().unwrap_or_else(PoisonError::into_inner).get(&index).copied()
    }
}

/// One simulated device's data partition: the host file system's free space, capped at what
/// [`FullDisks`] leaves it. (Simulated devices share the host's disk, so a full one is
/// simulated at the agent's free-space probe; the agent's writes still succeed.)
#[derive(Debug, Clone)]
pub struct SimulatedDisk {
    /// The device's index in its fleet.
    pub index: usize,
    /// The fleet's table of full disks.
    pub full: FullDisks,
}

impl DiskSpace for SimulatedDisk {
    fn available(&self, path: &Path) -> io::Result<u64> {
        let real = FileSystem.available(path)?;
        Ok(self.full.get(self.index).map_or(real, |left| left.min(real)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_agent::inference::FnModel;
    use edgefleet_protocol::ModelName;
    use edgefleet_protocol::tensor::{Dim, ElemType, TensorData};

    fn info(version_seq: u64) -> ModelInfo {
        ModelInfo { name: ModelName::new("m").unwrap(), version_seq, label: "x".into() }
    }

    fn identity() -> Box<dyn Model> {
        let spec = TensorSpec { name: "x".into(), elem: ElemType::F32, shape: vec![Dim::Fixed(1)] };
        Box::new(FnModel::new(vec![spec.clone()], vec![spec], |inputs: &[Tensor]| Ok(inputs.to_vec())))
    }

    fn input() -> Vec<Tensor> {
        vec![Tensor { shape: vec![1], data: TensorData::F32(vec![1.0]) }]
    }

    #[test]
    fn a_full_disk_caps_free_space_on_its_device_only() {
        let full = FullDisks::default();
        let disk = |index| SimulatedDisk { index, full: full.clone() };
        let real = disk(0).available(Path::new("/")).unwrap();
        full.set(&[0], Some(4096));
        assert_eq!(disk(0).available(Path::new("/")).unwrap(), 4096.min(real));
        assert_eq!(disk(1).available(Path::new("/")).unwrap() > 4096, real > 4096);
        full.set(&[0], None);
        assert!(disk(0).available(Path::new("/")).unwrap() > 4096 || real <= 4096);
    }

    #[test]
    fn profiles_never_undercut_the_host_and_add_their_overhead() {
        let gpu = LatencyProfile::for_class(HardwareClass::Gpu);
        assert_eq!(gpu.latency(Duration::from_micros(50), 0.0), Duration::from_micros(250));
        let npu = LatencyProfile::for_class(HardwareClass::Accelerator);
        assert_eq!(npu.latency(Duration::from_millis(10), 0.0), Duration::from_millis(10));
        let cpu = LatencyProfile::for_class(HardwareClass::Cpu);
        assert_eq!(cpu.latency(Duration::from_micros(100), 1.0), Duration::from_micros(310));
    }

    #[test]
    fn a_slow_fault_stretches_only_the_versions_it_names() {
        let faults = ModelFaults::default();
        let profile = LatencyProfile { compute_factor: 1.0, overhead_us: 1_000, jitter_us: 0 };
        let hw = SimulatedHardware { index: 3, profile, faults: faults.clone(), seed: 1 };
        faults.set(&[3], ModelFault::Slow { factor: 20.0 }, Versions::From(2));
        let time = |version| {
            let mut m = hw.wrap(identity(), &info(version));
            let t = Instant::now();
            m.run(&input()).unwrap();
            t.elapsed()
        };
        assert!(time(1) < Duration::from_millis(15), "v1 is not slowed");
        assert!(time(2) >= Duration::from_millis(20), "v2 runs 20× its 1 ms");
    }

    #[test]
    fn a_failing_fault_passes_its_first_calls_then_fails_at_its_rate() {
        let faults = ModelFaults::default();
        let profile = LatencyProfile { compute_factor: 1.0, overhead_us: 0, jitter_us: 0 };
        let hw = SimulatedHardware { index: 0, profile, faults: faults.clone(), seed: 9 };
        faults.set(&[0], ModelFault::Failing { after_calls: 2, error_rate: 0.5 }, Versions::All);
        let mut m = hw.wrap(identity(), &info(1));
        assert!(m.run(&input()).is_ok() && m.run(&input()).is_ok());
        let failures = (0..1000).filter(|_| m.run(&input()).is_err()).count();
        assert!((400..600).contains(&failures), "{failures} of 1000 failed");
        faults.clear();
        assert!((0..100).all(|_| m.run(&input()).is_ok()));
        // Other devices never saw it.
        let other = SimulatedHardware { index: 1, ..hw };
        faults.set(&[0], ModelFault::Failing { after_calls: 0, error_rate: 1.0 }, Versions::All);
        assert!(other.wrap(identity(), &info(1)).run(&input()).is_ok());
    }
}
