//! `SimFleet`: N simulated devices in one process, each a real agent (the `edgefleet-agent`
//! daemon: its own data dir and outbox, its own MQTT session, the real install path and
//! inference runtime), fed by a simulated vibration sensor, with a seeded hardware mix.
//!
//! Drift: the fleet owns one [`DriftControl`] that every device's sensor reads per window. A
//! [`DriftPlan`] in the config is applied at start; [`SimFleet::start_drift`] applies (or
//! replaces) one while the fleet runs, e.g. with an [`Onset::At`](crate::drift::Onset::At) in
//! the future. The affected
//! device indices are resolved once per plan from the fleet seed, so tests and the demo can
//! check detection on exactly those devices ([`SimFleet::affected_devices`]).

use crate::drift::{DriftControl, DriftPlan};
use crate::hardware::{ClockSkew, FullDisks, LatencyProfile, ModelFaults, SimulatedDisk, SimulatedHardware};
use crate::input::VibrationInput;
use crate::network::Relay;
use edgefleet_agent::clock::Clock;
use edgefleet_agent::config::{Overrides, load};
use edgefleet_agent::daemon::Embedding;
use edgefleet_protocol::hardware::HardwareClass;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Shares of hardware classes, e.g. `cpu=70,gpu=20,accelerator=10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// CPU-only devices.
    pub cpu: u32,
    /// GPU devices.
    pub gpu: u32,
    /// Accelerator devices (NPU, TPU, DSP).
    pub accelerator: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { cpu: 70, gpu: 20, accelerator: 10 }
    }
}

impl FromStr for Mix {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut mix = Mix { cpu: 0, gpu: 0, accelerator: 0 };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) =
                part.split_once('=').ok_or_else(|| format!("mix term {part:?} is not class=weight (e.g. cpu=70)"))?;
            let v: u32 = v.trim().parse().map_err(|_| format!("mix weight {v:?} is not a number"))?;
            match k.parse::<HardwareClass>().map_err(|e| format!("mix: {e}"))? {
                HardwareClass::Cpu => mix.cpu = v,
                HardwareClass::Gpu => mix.gpu = v,
                HardwareClass::Accelerator => mix.accelerator = v,
            }
        }
        if mix.cpu + mix.gpu + mix.accelerator == 0 {
            return Err("the mix is empty; e.g. cpu=70,gpu=20,accelerator=10".into());
        }
        Ok(mix)
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cpu={},gpu={},accelerator={}", self.cpu, self.gpu, self.accelerator)
    }
}

impl Mix {
    /// Hardware classes for `n` devices in these proportions (largest remainder), shuffled by `seed`.
    pub fn assign(&self, n: usize, seed: u64) -> Vec<HardwareClass> {
        let total = f64::from(self.cpu + self.gpu + self.accelerator);
        let shares = [
            (HardwareClass::Cpu, self.cpu),
            (HardwareClass::Gpu, self.gpu),
            (HardwareClass::Accelerator, self.accelerator),
        ];
        let mut counts: Vec<(HardwareClass, usize, f64)> = shares
            .iter()
            .map(|&(c, w)| {
                let exact = n as f64 * f64::from(w) / total;
                (c, exact.floor() as usize, exact - exact.floor())
            })
            .collect();
        let mut left = n - counts.iter().map(|c| c.1).sum::<usize>();
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by(|&a, &b| counts[b].2.total_cmp(&counts[a].2));
        for i in order {
            if left == 0 {
                break;
            }
            counts[i].1 += 1;
            left -= 1;
        }
        let mut classes: Vec<HardwareClass> = counts.iter().flat_map(|&(c, k, _)| std::iter::repeat_n(c, k)).collect();
        classes.shuffle(&mut SmallRng::seed_from_u64(seed));
        classes
    }
}

/// How to build a simulated fleet.
#[derive(Debug, Clone)]
pub struct SimFleetConfig {
    /// Broker URL (`mqtt://host:port`).
    pub broker: String,
    /// Topic namespace.
    pub namespace: String,
    /// Number of devices.
    pub devices: usize,
    /// Hardware mix.
    pub mix: Mix,
    /// Seed: hardware assignment, machine states, sensor noise.
    pub seed: u64,
    /// Where the devices keep their data (`<dir>/<device id>`).
    pub data_dir: PathBuf,
    /// The devices' trust store.
    pub trust_store: PathBuf,
    /// Sensor windows fed to each device's model per second.
    pub rate_hz: f64,
    /// Health report interval.
    pub health_interval_secs: u64,
    /// Device id prefix (`<prefix>-00042`).
    pub id_prefix: String,
    /// Drift applied from the start (`None`: none until [`SimFleet::start_drift`]).
    pub drift: Option<DriftPlan>,
    /// Fraction of inferences whose ground truth the sensors report as labelled feedback
    /// (seeded per device; 1.0 labels all).
    pub label_rate: f64,
    /// The devices' drift summary window, milliseconds.
    pub drift_window_ms: u64,
    /// Give every device its local HTTP API (on an ephemeral loopback port, written to
    /// `<data dir>/api.addr`). Off saves a listening socket per device: at 10,000 devices the
    /// process would otherwise need ~30,000 file descriptors.
    pub local_api: bool,
    /// Route every device through its own [`Relay`] so [`SimFleet::partition`] can cut its
    /// network (three more sockets per device).
    pub network_faults: bool,
    /// Devices whose clocks are skewed (`None`: every clock is the system clock).
    pub clock_skew: Option<ClockSkew>,
}

impl SimFleetConfig {
    /// `devices` devices against `broker`, trusting `trust_store`, keeping their data under
    /// `data_dir`; the rest at its default: namespace `edgefleet`, mix cpu=70/gpu=20/accelerator=10,
    /// seed 1, 10 sensor windows a second, a heartbeat every 10 s, ids `sim-NNNNN`, no drift,
    /// no labels, 60 s drift windows, local API on, no network faults, no clock skew.
    pub fn new(broker: impl Into<String>, trust_store: PathBuf, data_dir: PathBuf, devices: usize) -> SimFleetConfig {
        SimFleetConfig {
            broker: broker.into(),
            namespace: "edgefleet".into(),
            devices,
            mix: Mix::default(),
            seed: 1,
            data_dir,
            trust_store,
            rate_hz: 10.0,
            health_interval_secs: 10,
            id_prefix: "sim".into(),
            drift: None,
            label_rate: 0.0,
            drift_window_ms: 60_000,
            local_api: true,
            network_faults: false,
            clock_skew: None,
        }
    }
}

struct SimDevice {
    id: String,
    relay: Option<Relay>,
    class: HardwareClass,
    seed: u64,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A running simulated fleet.
pub struct SimFleet {
    config: SimFleetConfig,
    devices: Vec<SimDevice>,
    restarts: u64,
    /// When the fleet started: the origin of [`crate::drift::Onset::AfterStart`].
    started: Instant,
    drift: DriftControl,
    /// Indices of the devices the drift in force affects, ascending.
    affected: Vec<usize>,
    model_faults: ModelFaults,
    full_disks: FullDisks,
    /// Indices of the devices with a skewed clock, ascending.
    skewed: Vec<usize>,
}

/// A device that could not start.
#[derive(Debug, thiserror::Error)]
#[error("simulated device {device}: {detail}")]
pub struct SimError {
    /// Which device.
    pub device: String,
    /// Why.
    pub detail: String,
}

impl SimFleet {
    /// Starts every device (on the current tokio runtime).
    pub fn start(config: SimFleetConfig) -> Result<SimFleet, SimError> {
        let classes = config.mix.assign(config.devices, config.seed);
        let plan = config.drift.clone();
        let mut fleet = SimFleet {
            config,
            devices: Vec::new(),
            restarts: 0,
            started: Instant::now(),
            drift: DriftControl::new(),
            affected: Vec::new(),
            model_faults: ModelFaults::default(),
            full_disks: FullDisks::default(),
            skewed: Vec::new(),
        };
        if let Some(skew) = &fleet.config.clock_skew {
            fleet.skewed = skew.affected.resolve(fleet.config.devices, fleet.config.seed);
        }
        // Before any device starts, so none sees a window without the configured drift.
        if let Some(plan) = plan {
            fleet.start_drift(&plan);
        }
        for (i, class) in classes.into_iter().enumerate() {
            let id = format!("{}-{i:05}", fleet.config.id_prefix);
            let seed = fleet.config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let relay = if fleet.config.network_faults { Some(fleet.relay(&id, seed)?) } else { None };
            let device = fleet.spawn(i, id, class, seed, relay)?;
            fleet.devices.push(device);
        }
        Ok(fleet)
    }

    /// Applies `plan` (replacing any drift in force) and returns the affected device ids. An
    /// [`Onset::AfterStart`](crate::drift::Onset::AfterStart) counts from the fleet's start; use
    /// [`Onset::At`](crate::drift::Onset::At) for "from now" or a moment in the future.
    pub fn start_drift(&mut self, plan: &DriftPlan) -> Vec<String> {
        let active = plan.activate(self.config.devices, self.config.seed, self.started);
        self.affected = active.affected.iter().copied().collect();
        self.drift.set(active);
        self.affected_devices().map(str::to_string).collect()
    }

    /// Ends the drift in force: every sensor is nominal again from its next window.
    pub fn stop_drift(&mut self) {
        self.drift.clear();
        self.affected.clear();
    }

    /// Indices (into [`Self::devices`]) of the devices the drift in force affects, ascending;
    /// empty without drift.
    pub fn affected(&self) -> &[usize] {
        &self.affected
    }

    /// Ids of the devices the drift in force affects.
    pub fn affected_devices(&self) -> impl Iterator<Item = &str> {
        self.affected.iter().filter_map(|&i| self.device_id(i))
    }

    /// The id of device `index`, if there is one. (Ids are `<prefix>-<index:05>`, but this does
    /// not assume it.)
    pub fn device_id(&self, index: usize) -> Option<&str> {
        self.devices.get(index).map(|d| d.id.as_str())
    }

    /// The handle every sensor of this fleet reads (to inspect or switch drift directly).
    pub fn drift_control(&self) -> DriftControl {
        self.drift.clone()
    }

    /// The fault table every device's simulated hardware reads on each inference (slow or
    /// failing models, switched on and off while the fleet runs).
    pub fn model_faults(&self) -> &ModelFaults {
        &self.model_faults
    }

    /// Indices of the devices whose clocks are skewed (`clock_skew`), ascending.
    pub fn skewed(&self) -> &[usize] {
        &self.skewed
    }

    /// The table of full data partitions every device's disk check reads.
    pub fn full_disks(&self) -> &FullDisks {
        &self.full_disks
    }

    fn relay(&self, id: &str, seed: u64) -> Result<Relay, SimError> {
        let fail = |detail: String| SimError { device: id.to_string(), detail };
        let address = self.config.broker.split_once("://").map_or(self.config.broker.as_str(), |(_, a)| a);
        let broker = address
            .to_socket_addrs()
            .map_err(|e| fail(format!("resolving the broker {address}: {e}")))?
            .next()
            .ok_or_else(|| fail(format!("the broker {address} resolves to no address")))?;
        Relay::start(broker, seed).map_err(|e| fail(format!("starting its network relay: {e}")))
    }

    fn spawn(
        &self,
        index: usize,
        id: String,
        class: HardwareClass,
        seed: u64,
        relay: Option<Relay>,
    ) -> Result<SimDevice, SimError> {
        let c = &self.config;
        let env = vec![
            ("EDGEFLEET_AGENT__NAMESPACE".to_string(), c.namespace.clone()),
            ("EDGEFLEET_AGENT__HARDWARE__CLASS".to_string(), class.to_string()),
            ("EDGEFLEET_AGENT__HARDWARE__ACCELERATOR_KIND".to_string(), "sim-npu".to_string()),
            ("EDGEFLEET_AGENT__HEALTH__INTERVAL_SECS".to_string(), c.health_interval_secs.to_string()),
            ("EDGEFLEET_AGENT__MQTT__RECONNECT_MAX_MS".to_string(), "5000".to_string()),
            ("EDGEFLEET_AGENT__SAMPLING__DRIFT_WINDOW_MS".to_string(), c.drift_window_ms.to_string()),
        ];
        let overrides = Overrides {
            device_id: Some(id.clone()),
            broker_url: Some(relay.as_ref().map_or_else(|| c.broker.clone(), Relay::url)),
            data_dir: Some(c.data_dir.join(&id)),
            trust_store: Some(c.trust_store.clone()),
            api_listen: Some(if c.local_api { "127.0.0.1:0" } else { "off" }.into()),
        };
        let settings =
            load(None, env, &overrides).map_err(|e| SimError { device: id.clone(), detail: e.to_string() })?;
        let shutdown = CancellationToken::new();
        let sensor = VibrationInput::station(seed).with_label_rate(c.label_rate).with_drift(self.drift.clone(), index);
        let input: Box<dyn edgefleet_agent::input::InputSource> = Box::new(sensor);
        let hardware = SimulatedHardware {
            index,
            profile: LatencyProfile::for_class(class),
            faults: self.model_faults.clone(),
            seed,
        };
        let disk = SimulatedDisk { index, full: self.full_disks.clone() };
        let clock = match &c.clock_skew {
            Some(skew) if self.skewed.binary_search(&index).is_ok() => Clock::skewed(skew.offset_ms),
            _ => Clock::SYSTEM,
        };
        let embedding = Embedding {
            input: Some((input, c.rate_hz)),
            model_layer: Some(Arc::new(hardware)),
            disk: Some(Arc::new(disk)),
            clock,
        };
        let agent = edgefleet_agent::daemon::run_embedded(settings, shutdown.clone(), embedding);
        let device = id.clone();
        let task = tokio::spawn(async move {
            let result = agent.await;
            // A device that cannot start says why (whoever waits for it would only time out).
            if let Err(e) = &result {
                tracing::error!(%device, error = format!("{e:#}"), "simulated agent stopped");
            }
            result
        });
        Ok(SimDevice { id, relay, class, seed, shutdown, task })
    }

    /// Device ids and classes.
    pub fn devices(&self) -> impl Iterator<Item = (&str, HardwareClass)> {
        self.devices.iter().map(|d| (d.id.as_str(), d.class))
    }

    /// How many devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// True with no devices.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Crash-restarts times so far.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Stops device `index` without a goodbye to the broker's session state it keeps on disk
    /// (its in-memory state is lost, its data dir kept), then starts it again.
    pub async fn crash_restart(&mut self, index: usize) -> Result<(), SimError> {
        let Some(old) = self.devices.get(index) else { return Ok(()) };
        let (id, class, seed) = (old.id.clone(), old.class, old.seed);
        old.shutdown.cancel();
        let mut device = self.devices.remove(index);
        let _ = (&mut device.task).await;
        // The network outlives the device: a partition in force stays in force.
        let fresh = self.spawn(index, id, class, seed, device.relay.take())?;
        self.devices.insert(index, fresh);
        self.restarts += 1;
        Ok(())
    }

    /// Cuts (`true`) or heals (`false`) the network of devices `indices`; returns how many
    /// could be (only a fleet started with `network_faults` has relays to cut).
    pub fn partition(&self, indices: &[usize], partitioned: bool) -> usize {
        indices
            .iter()
            .filter_map(|&i| self.devices.get(i)?.relay.as_ref())
            .map(|relay| relay.set_partitioned(partitioned))
            .count()
    }

    /// Corrupts and drops these fractions of the package chunks sent to devices `indices`
    /// (0 and 0 to stop); returns how many devices have a relay to do it (`network_faults`).
    pub fn chunk_faults(&self, indices: &[usize], corrupt: f64, drop: f64) -> usize {
        indices
            .iter()
            .filter_map(|&i| self.devices.get(i)?.relay.as_ref())
            .map(|relay| relay.set_chunk_faults(corrupt, drop))
            .count()
    }

    /// Stops every device.
    pub async fn stop(self) {
        for d in &self.devices {
            d.shutdown.cancel();
        }
        for d in self.devices {
            let _ = d.task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_assigns_exact_shares_deterministically() {
        let mix: Mix = "cpu=70,gpu=20,accelerator=10".parse().unwrap();
        let a = mix.assign(200, 7);
        assert_eq!(a, mix.assign(200, 7));
        assert_ne!(a, mix.assign(200, 8));
        let count = |c| a.iter().filter(|&&x| x == c).count();
        assert_eq!(
            (count(HardwareClass::Cpu), count(HardwareClass::Gpu), count(HardwareClass::Accelerator)),
            (140, 40, 20)
        );
        assert_eq!(Mix::default().assign(3, 1).len(), 3);
        assert!("cpu=1,tpu=2".parse::<Mix>().is_err());
        assert!("".parse::<Mix>().is_err());
        assert_eq!(mix.to_string().parse::<Mix>(), Ok(mix));
    }
}
