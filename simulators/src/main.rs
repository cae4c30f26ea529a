//! `edgefleet-sim`: simulated device fleets and the demo.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use edgefleet_sim::demo::{self, DemoOptions};
use edgefleet_sim::drift::{self, Affected, DriftPlan, DriftScenario, Onset};
use edgefleet_sim::fleet::{Mix, SimFleet, SimFleetConfig};
use edgefleet_sim::hardware::{ClockSkew, ModelFault, Versions};
use std::path::PathBuf;
use std::time::Duration;

/// Simulated Edgefleet device fleets (real agents, simulated sensors and hardware).
#[derive(Debug, Parser)]
#[command(name = "edgefleet-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole story on embedded defaults: fleet manager, simulated fleet, a staged rollout,
    /// a bad release stopped by its gate and rolled back, the audit chain.
    Demo {
        /// Working directory (recreated on every run).
        #[arg(long, default_value = "edgefleet-demo")]
        dir: PathBuf,
        /// Simulated devices.
        #[arg(long, default_value_t = 200)]
        devices: usize,
        /// Hardware mix.
        #[arg(long, default_value = "cpu=70,gpu=20,accelerator=10")]
        mix: Mix,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Keep the fleet manager and devices running at the end.
        #[arg(long)]
        keep_running: bool,
    },
    /// Run a simulated fleet against a separately started `edgefleet serve`.
    Run {
        /// The fleet manager's broker (`mqtt://HOST:PORT`).
        #[arg(long)]
        fleet: String,
        /// The devices' trust store (the key the fleet's packages are signed with).
        #[arg(long)]
        trust_store: PathBuf,
        /// Simulated devices.
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// Hardware mix.
        #[arg(long, default_value = "cpu=70,gpu=20,accelerator=10")]
        mix: Mix,
        /// Scenario (see `edgefleet-sim scenarios`).
        #[arg(long, default_value = "steady")]
        scenario: String,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the devices keep their data.
        #[arg(long, default_value = "edgefleet-sim-data")]
        data_dir: PathBuf,
        /// Topic namespace.
        #[arg(long, default_value = "edgefleet")]
        namespace: String,
        /// Sensor windows per device per second.
        #[arg(long, default_value_t = 10.0)]
        rate_hz: f64,
        /// Drift and fault scenarios: percentage of devices affected (chosen by the seed).
        #[arg(long, default_value_t = 20.0, value_name = "PERCENT")]
        affected: f64,
        /// Drift and partition scenarios: seconds after start at which they begin.
        #[arg(long, visible_alias = "fault-after", default_value_t = 30, value_name = "SECONDS")]
        drift_after: u64,
        /// Fraction of inferences that get their ground truth recorded as feedback (0 to 1).
        #[arg(long, default_value_t = 1.0)]
        label_rate: f64,
        /// Drift summary window on each device, in seconds.
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        drift_window: f64,
    },
    /// List the scenarios `run --scenario` accepts.
    Scenarios,
    /// Write the simulator's training data as CSV (the 8 firmware features and the true class
    /// index, one machine per row, the undrifted fleet's state mix): what the example model is
    /// trained on (fixtures/models/train_vibration.py) and `edgefleet drift profile` profiles.
    TrainingData {
        /// Rows.
        #[arg(long, default_value_t = 20_000)]
        rows: usize,
        /// Seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Output CSV file.
        #[arg(long)]
        out: PathBuf,
    },
}

const SCENARIOS: [(&str, &str); 9] = [
    ("steady", "every device runs normally"),
    ("crash-restart", "every 5 s one device (seeded choice) dies and restarts: in-memory state lost, disk kept"),
    ("partition", "the affected devices lose their network for 30 s of every 60 s (from --drift-after on)"),
    ("slow-model", "on the affected devices every model version from 2 on runs 10x slower"),
    ("failing-model", "on the affected devices model versions from 2 on fail 20% of inferences after their first 10"),
    ("corrupt-chunks", "a quarter of the package chunks sent to the affected devices arrive with a flipped byte"),
    ("drop-chunks", "a quarter of the package chunks sent to the affected devices never arrive"),
    ("full-disk", "the affected devices' data partitions have 64 KiB left: downloads are refused"),
    ("clock-skew", "the affected devices' clocks run 6 hours behind the fleet's"),
];

/// Every scenario `run --scenario` accepts: the fleet ones, then the drift ones.
fn scenarios() -> impl Iterator<Item = (&'static str, &'static str)> {
    SCENARIOS.into_iter().chain(drift::SCENARIO_NAMES)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Scenarios => {
            for (name, what) in scenarios() {
                println!("{name:<19} {what}");
            }
            println!("\ndrift scenarios take --affected PERCENT (default 20) and --drift-after SECONDS (default 30)");
            Ok(())
        }
        Command::TrainingData { rows, seed, out } => {
            let mut csv = edgefleet_sim::reference::FEATURE_NAMES.join(",") + ",label\n";
            for (row, state) in edgefleet_sim::training::training_rows(rows, seed) {
                let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
                csv.push_str(&format!("{},{}\n", cells.join(","), state.class_index()));
            }
            std::fs::write(&out, csv).with_context(|| format!("writing {}", out.display()))?;
            println!("{rows} training rows (seed {seed}) → {}", out.display());
            Ok(())
        }
        Command::Demo { dir, devices, mix, seed, keep_running } => {
            runtime.block_on(demo::run(DemoOptions { dir, devices, mix, seed, keep_running }))
        }
        Command::Run {
            fleet,
            trust_store,
            devices,
            mix,
            scenario,
            seed,
            data_dir,
            namespace,
            rate_hz,
            affected,
            drift_after,
            label_rate,
            drift_window,
        } => {
            if !(0.1..=86_400.0).contains(&drift_window) {
                anyhow::bail!("--drift-window {drift_window} must be between 0.1 and 86400 seconds");
            }
            if !scenarios().any(|(n, _)| n == scenario) {
                anyhow::bail!("unknown scenario {scenario:?}; `edgefleet-sim scenarios` lists them");
            }
            if !(0.0..=100.0).contains(&affected) {
                anyhow::bail!("--affected {affected} is not a percentage (0 to 100)");
            }
            if !(0.0..=1.0).contains(&label_rate) {
                anyhow::bail!("--label-rate {label_rate} is not a fraction (0 to 1)");
            }
            let drift = DriftScenario::from_name(&scenario).map(|scenario| DriftPlan {
                scenario,
                onset: Onset::AfterStart(Duration::from_secs(drift_after)),
                affected: Affected::Fraction(affected / 100.0),
            });
            runtime.block_on(async move {
                let mut sim = SimFleet::start(SimFleetConfig {
                    namespace,
                    mix,
                    seed,
                    rate_hz,
                    id_prefix: format!("sim{seed}"),
                    drift,
                    label_rate,
                    drift_window_ms: (drift_window * 1000.0) as u64,
                    network_faults: matches!(scenario.as_str(), "partition" | "corrupt-chunks" | "drop-chunks"),
                    clock_skew: (scenario == "clock-skew").then(|| ClockSkew { affected: Affected::Fraction(affected / 100.0), offset_ms: -6 * 3_600_000 }),
                    ..SimFleetConfig::new(&fleet, trust_store, data_dir.clone(), devices)
                })
                .context("starting the simulated fleet")?;
                let faulty = Affected::Fraction(affected / 100.0).resolve(devices, seed);
                let fault_ids = |sim: &SimFleet| -> Vec<String> {
                    faulty.iter().filter_map(|&i| sim.device_id(i).map(str::to_string)).collect()
                };
                match scenario.as_str() {
                    "slow-model" => sim.model_faults().set(&faulty, ModelFault::Slow { factor: 10.0 }, Versions::From(2)),
                    "failing-model" => sim.model_faults().set(
                        &faulty,
                        ModelFault::Failing { after_calls: 10, error_rate: 0.2 },
                        Versions::From(2),
                    ),
                    "corrupt-chunks" => {
                        sim.chunk_faults(&faulty, 0.25, 0.0);
                    }
                    "drop-chunks" => {
                        sim.chunk_faults(&faulty, 0.0, 0.25);
                    }
                    "full-disk" => sim.full_disks().set(&faulty, Some(64 << 10)),
                    _ => {}
                }
                let fault_scenario = !matches!(scenario.as_str(), "steady" | "crash-restart")
                    && DriftScenario::from_name(&scenario).is_none();
                if fault_scenario {
                    println!("{scenario} on {} devices: {}", faulty.len(), fault_ids(&sim).join(" "));
                }
                println!("{devices} simulated devices → {fleet} (data in {}), scenario {scenario}; Ctrl-C stops", data_dir.display());
                if DriftScenario::from_name(&scenario).is_some() {
                    let ids: Vec<&str> = sim.affected_devices().collect();
                    println!("drift from {drift_after} s on {} devices: {}", ids.len(), ids.join(" "));
                }
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                let mut pick = seed;
                let started = std::time::Instant::now();
                let mut partitioned = false;
                loop {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => break,
                        _ = tick.tick() => {
                            if scenario == "partition" {
                                let since = started.elapsed().as_secs();
                                let cut = since >= drift_after && (since - drift_after) % 60 < 30;
                                if sim.partition(&faulty, cut) > 0 && cut != partitioned {
                                    partitioned = cut;
                                    println!("[{since:>4} s] network {} for {} devices", if cut { "cut" } else { "back" }, faulty.len());
                                }
                            }
                            if scenario == "crash-restart" && !sim.is_empty() {
                                pick = pick.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                                let index = (pick >> 33) as usize % sim.len();
                                sim.crash_restart(index).await?;
                                println!("crash-restart #{}: device {index}", sim.restarts());
                            }
                        }
                    }
                }
                sim.stop().await;
                Ok(())
            })
        }
    }
}
