//! `edgefleet direct deploy`: one device straight over the broker, without a fleet manager.

use anyhow::Result;
use clap::Subcommand;
use edgefleet::direct::{self, DirectDeploy};
use edgefleet_protocol::BrokerUrl;
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::topic::Namespace;
use edgefleet_protocol::uplink::DeploymentState;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub(crate) enum DirectCommand {
    /// Install a package on one device: serve its chunks, send the deploy command, follow the
    /// device's status until it commits, fails or rolls back (exit 0 only when committed).
    Deploy {
        /// The `.efpkg` file.
        package: PathBuf,
        /// Target device id.
        #[arg(long)]
        device: DeviceId,
        /// Broker the device is connected to.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerUrl,
        /// Topic namespace.
        #[arg(long, default_value = "edgefleet")]
        namespace: String,
        /// Probation after activation, in seconds.
        #[arg(long, default_value_t = 30)]
        probation_secs: u64,
        /// Inferences needed before the probation checks apply.
        #[arg(long, default_value_t = 20)]
        probation_min_inferences: u32,
        /// Largest error rate tolerated during probation, in percent.
        #[arg(long, default_value_t = 1.0)]
        max_error_rate: f64,
        /// Largest p99 latency tolerated during probation, in microseconds (0: no check).
        #[arg(long, default_value_t = 0)]
        max_p99_us: u64,
        /// Give up after this many seconds without a final status.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
        /// Install even if the device runs a newer version: signs a downgrade authorization for
        /// exactly this package with this key (which the device must trust).
        #[arg(long, value_name = "SIGNING_KEY")]
        allow_downgrade: Option<PathBuf>,
        /// How long the downgrade authorization stays valid, in seconds.
        #[arg(long, default_value_t = 3600)]
        downgrade_valid_secs: u64,
    },
}

/// `edgefleet direct ...`
pub(crate) fn run(command: DirectCommand) -> Result<ExitCode> {
    match command {
        DirectCommand::Deploy {
            package,
            device,
            broker,
            namespace,
            probation_secs,
            probation_min_inferences,
            max_error_rate,
            max_p99_us,
            timeout_secs,
            allow_downgrade,
            downgrade_valid_secs,
        } => {
            if !(0.0..=100.0).contains(&max_error_rate) {
                anyhow::bail!("--max-error-rate must be a percentage between 0 and 100");
            }
            let request = DirectDeploy {
                broker,
                namespace: Namespace::new(namespace)?,
                device,
                package,
                probation: ProbationBudget {
                    duration_ms: probation_secs * 1000,
                    min_inferences: probation_min_inferences,
                    max_error_rate_ppm: (max_error_rate * 10_000.0) as u32,
                    max_p99_latency_us: max_p99_us,
                },
                timeout: Duration::from_secs(timeout_secs),
                downgrade_key: allow_downgrade,
                downgrade_valid: Duration::from_secs(downgrade_valid_secs),
            };
            println!(
                "deploying {} to {} via {}:{}",
                request.package.display(),
                request.device,
                request.broker.host,
                request.broker.port
            );
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let state = runtime.block_on(direct::deploy(&request, |state| match state {
                DeploymentState::Downloading { received, total } => println!("  downloading {received}/{total} bytes"),
                DeploymentState::Failed(reason) => println!("  failed: {reason}"),
                DeploymentState::RolledBack { to_version_seq, reason } => {
                    println!("  rolled back to version {to_version_seq}: {reason}")
                }
                other => println!("  {other:?}"),
            }))?;
            if state != DeploymentState::Committed {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
