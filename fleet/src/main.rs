//! `edgefleet` command line: operator commands.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use edgefleet::build::{BuildRequest, ModelArg, build_package};
use edgefleet::direct::{self, DirectDeploy};
use edgefleet::inspect::inspect;
use edgefleet::keys;
use edgefleet_protocol::BrokerUrl;
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::package::{Lineage, ManifestSummary, TrustStore};
use edgefleet_protocol::topic::Namespace;
use edgefleet_protocol::uplink::DeploymentState;
use edgefleet_protocol::{DeviceId, Digest, ModelName, SemVer};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod drift_cli;
mod ops;
mod quickstart;

/// Edgefleet: ship signed ML models to fleets of edge devices and keep them healthy.
#[derive(Debug, Parser)]
#[command(name = "edgefleet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    conn: ops::Conn,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Model packages.
    #[command(subcommand)]
    Package(PackageCommand),
    /// Run the fleet manager: embedded MQTT broker, registry, rollouts, HTTP API.
    Serve(Box<ops::ServeArgs>),
    /// Devices known to the fleet manager.
    #[command(subcommand)]
    Devices(ops::DevicesCommand),
    /// Model versions in the fleet manager's registry.
    #[command(subcommand)]
    Model(ops::ModelCommand),
    /// Staged rollouts with health gates.
    #[command(subcommand)]
    Rollout(ops::RolloutCommand),
    /// Device health states with their reasons.
    Health {
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
        /// Only devices serving this model.
        #[arg(long)]
        model: Option<String>,
    },
    /// Drift reports from the fleet, and offline drift tools on CSV files.
    #[command(subcommand)]
    Drift(drift_cli::DriftCommand),
    /// Sampled raw records from the devices (retraining datasets).
    #[command(subcommand)]
    Samples(drift_cli::SamplesCommand),
    /// A rollout's A/B scorecard: the new version's devices against the old version's, per
    /// hardware track (accuracy, errors, latency, prediction shift, drift), with 95% intervals.
    Scorecard {
        /// Rollout id.
        rollout: String,
    },
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(ops::AuditCommand),
    /// Talk to one device straight over the broker, without a fleet manager.
    #[command(subcommand)]
    Direct(DirectCommand),
    /// Generate a key, build a signed package from the bundled example model, verify it as a
    /// device would, and show a tampered copy being refused.
    Quickstart {
        /// Where to put the key, models and package.
        #[arg(long, default_value = "edgefleet-quickstart")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DirectCommand {
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

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Generate an ed25519 signing key (mode 0600), its public key and a one-key trust store.
    Generate {
        /// Directory to write into (created if missing); existing keys are never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Name recorded in the trust store.
        #[arg(long, default_value = "release")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum PackageCommand {
    /// Build and sign a package from one ONNX model per hardware class.
    Build(Box<BuildArgs>),
    /// Show what a package holds; checks every blob, and the signature with --trust.
    Inspect {
        /// The `.efpkg` file.
        file: PathBuf,
        /// Also verify the signature against this public key or trust store.
        #[arg(long, value_name = "PUBKEY_OR_TRUSTSTORE")]
        trust: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// Model name (letters, digits, '.', '_', '-').
    #[arg(long)]
    name: ModelName,
    /// Version sequence: must increase with every release (anti-rollback).
    #[arg(long)]
    version_seq: u64,
    /// Human label, e.g. 1.2.0.
    #[arg(long)]
    label: String,
    /// A variant: CLASS[:PRECISION]=PATH, CLASS one of cpu, gpu, accelerator (npu), PRECISION one
    /// of fp32 (default), fp16, bf16, int8. Repeat per class.
    #[arg(long = "model", value_name = "CLASS[:PRECISION]=PATH", required = true)]
    models: Vec<ModelArg>,
    /// Signing key file (from `edgefleet keys generate`).
    #[arg(long)]
    key: PathBuf,
    /// Output package file.
    #[arg(long)]
    out: PathBuf,
    /// Oldest agent allowed to install it.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    min_agent_version: SemVer,
    /// Golden validation vectors to generate (run on devices before activation).
    #[arg(long, default_value_t = 4)]
    golden_count: usize,
    /// Golden tolerance (abs and rel) for every variant, instead of the per-precision default.
    #[arg(long)]
    tolerance: Option<f32>,
    /// Accelerator family of the accelerator variant (e.g. hailo-8).
    #[arg(long)]
    accelerator_kind: Option<String>,
    /// Drift reference profile (JSON, as written by `edgefleet drift profile`).
    #[arg(long)]
    drift_reference: Option<PathBuf>,
    /// Lineage: training run id.
    #[arg(long)]
    training_run: Option<String>,
    /// Lineage: SHA-256 of the training dataset.
    #[arg(long)]
    dataset_digest: Option<Digest>,
    /// Lineage: SHA-256 of the pipeline spec.
    #[arg(long)]
    pipeline_digest: Option<Digest>,
    /// Lineage: source revision of the training code.
    #[arg(long)]
    code_revision: Option<String>,
    /// Lineage: version sequence this model derives from.
    #[arg(long)]
    parent_version_seq: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Operator commands end quietly when their output is piped into `head` (Rust ignores
    // SIGPIPE and println! would panic). Not for `serve`: a long-running server must see a
    // closed socket as an error, not die of a signal.
    if !matches!(cli.command, Command::Serve(_)) {
        sigpipe::reset();
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let conn = cli.conn;
    match cli.command {
        Command::Serve(args) => return ops::serve(*args),
        Command::Devices(c) => return ops::devices(&conn, c),
        Command::Model(c) => return ops::model(&conn, c),
        Command::Rollout(c) => return ops::rollout(&conn, c),
        Command::Health { device, model } => return ops::health(&conn, device, model),
        Command::Audit(c) => return ops::audit(&conn, c),
        Command::Drift(c) => return drift_cli::run(&conn, c),
        Command::Samples(c) => return drift_cli::samples(&conn, c),
        Command::Scorecard { rollout } => return drift_cli::scorecard(&conn, &rollout),
        Command::Keys(KeysCommand::Generate { out, name }) => {
            let key = keys::generate(&out, &name)?;
            println!("generated key {}", key.key_id);
            println!("  signing key  {} (mode 0600: keep it secret)", key.signing_key_path.display());
            println!("  public key   {}", key.public_key_path.display());
            println!("  trust store  {} (copy to devices)", key.trust_store_path.display());
        }
        Command::Package(PackageCommand::Build(args)) => {
            let args = *args;
            let json = args.json;
            let request = BuildRequest {
                name: args.name,
                version_seq: args.version_seq,
                label: args.label,
                models: args.models,
                key: args.key,
                out: args.out.clone(),
                min_agent_version: args.min_agent_version,
                golden_count: args.golden_count,
                tolerance: args.tolerance,
                accelerator_kind: args.accelerator_kind,
                drift_reference: args.drift_reference,
                lineage: Lineage {
                    training_run_id: args.training_run,
                    dataset_digest: args.dataset_digest,
                    pipeline_spec_digest: args.pipeline_digest,
                    code_revision: args.code_revision,
                    parent_version_seq: args.parent_version_seq,
                    created_at_ms: 0,
                },
            };
            let report = build_package(&request).context("package build failed")?;
            if json {
                let out = serde_json::json!({ "path": args.out, "package_id": report.package_id, "size": report.size, "manifest": report.manifest });
                println!("{out:#}");
            } else {
                println!("built {} ({} bytes)", args.out.display(), report.size);
                println!("  package id   {}", report.package_id);
                print!("{}", ManifestSummary(&report.manifest));
            }
        }
        Command::Package(PackageCommand::Inspect { file, trust, json }) => {
            let trust = trust.map(|path| TrustStore::load(&path)).transpose()?;
            match inspect(&file, trust.as_ref()) {
                Ok(found) => {
                    if json {
                        println!("{:#}", serde_json::to_value(&found)?);
                    } else {
                        println!("{}", file.display());
                        println!("  package id   {}", found.package_id);
                        let checked = if found.signature_checked { "verified" } else { "NOT checked (pass --trust)" };
                        println!("  signed by    {} (signature {checked})", found.key_id);
                        println!("  blobs        all digests match");
                        print!("{}", ManifestSummary(&found.manifest));
                    }
                }
                Err(error) => {
                    if json {
                        println!("{:#}", serde_json::json!({ "valid": false, "reason": error.to_string() }));
                    }
                    eprintln!("invalid package {}: {error}", file.display());
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::Quickstart { dir } => quickstart::run(&dir)?,
        Command::Direct(DirectCommand::Deploy {
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
        }) => {
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
