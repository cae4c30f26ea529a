//! `edgefleet-agent` command line.

mod infer_command;
mod run_command;
mod uplink_stress;

use clap::{Parser, Subcommand, ValueEnum};
use edgefleet_agent::config::{DEFAULT_CONFIG, Overrides};
#[cfg(feature = "outbox-sled")]
use edgefleet_agent::outbox::SledStore;
use edgefleet_agent::outbox::{Outbox, OutboxLimits, RedbStore, Store, Stream};
use edgefleet_agent::verify::{VerifyError, VerifyRequest, verify_file};
use edgefleet_protocol::package::ManifestSummary;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The Edgefleet device agent.
#[derive(Debug, Parser)]
#[command(name = "edgefleet-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: MQTT link, deployments, local API, heartbeats. Stops cleanly on SIGTERM.
    Run {
        /// TOML config file (layered over the embedded default; see print-default-config).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides `device_id`.
        #[arg(long)]
        device_id: Option<String>,
        /// Overrides `broker_url` (mqtt://HOST:PORT or mqtts://HOST:PORT).
        #[arg(long)]
        broker_url: Option<String>,
        /// Overrides `data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Overrides `trust_store`.
        #[arg(long)]
        trust_store: Option<PathBuf>,
        /// Overrides `api_listen`.
        #[arg(long)]
        api_listen: Option<String>,
    },
    /// Print the embedded default configuration (every setting, documented).
    PrintDefaultConfig,
    /// Verify a model package: exit 0 and a summary if valid, 1 and the precise reason if not.
    Verify {
        /// The `.efpkg` file.
        file: PathBuf,
        /// A public key file (`signing.pub`) or a TOML trust store.
        #[arg(long, value_name = "PUBKEY_OR_TRUSTSTORE")]
        trust: PathBuf,
        /// Refuse packages whose version sequence is not above this one (anti-rollback).
        #[arg(long, value_name = "N")]
        installed_seq: Option<u64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a model once: a verified package's CPU variant, or a bare ONNX file.
    ///
    /// Exit 0 with the outputs; 1 when the input does not fit the model; 2 when the model,
    /// package or files cannot be used.
    Infer {
        /// A `.efpkg` package: verified fully (signature, manifest, every blob) before running.
        #[arg(long, value_name = "FILE.efpkg", required_unless_present = "model", requires = "trust")]
        package: Option<PathBuf>,
        /// Public key file or TOML trust store for `--package`.
        #[arg(long, value_name = "PUBKEY_OR_TRUSTSTORE", requires = "package")]
        trust: Option<PathBuf>,
        /// A bare ONNX model (no verification).
        #[arg(long, value_name = "FILE.onnx", conflicts_with = "package")]
        model: Option<PathBuf>,
        /// Input: `.npy` (one array, for the first input) or `.json` (`{"inputs":[{"name","shape","data"}]}`).
        #[arg(long, value_name = "x.npy|x.json")]
        input: PathBuf,
        /// Also write the outputs: `.npy` (first output) or `.json` (all, as `--json` prints them).
        #[arg(long, value_name = "y.npy|y.json")]
        output: Option<PathBuf>,
        /// Print the result as JSON (the local API's response format).
        #[arg(long)]
        json: bool,
    },
    /// Test aid: push `count` health records to an outbox as fast as possible, printing each seq
    /// (flushed) once its push returned. `tests/outbox_kill.rs` SIGKILLs it at random points.
    #[command(hide = true)]
    OutboxStress {
        /// Directory holding the outbox (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// Storage engine.
        #[arg(long, value_enum, default_value_t = Engine::Redb)]
        engine: Engine,
        /// Records to push.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
    },
    /// Test aid: the outbox and the MQTT link together. Pushes `count` health records (printing
    /// each seq once durable) while the link drains them; keeps draining until killed.
    /// `tests/uplink_kill.rs` SIGKILLs it with the broker up and down.
    #[command(hide = true)]
    UplinkStress {
        /// Directory holding the outbox.
        #[arg(long)]
        data_dir: PathBuf,
        /// Broker (mqtt://HOST:PORT).
        #[arg(long)]
        broker_url: String,
        /// Topic namespace.
        #[arg(long)]
        namespace: String,
        /// Device id.
        #[arg(long)]
        device_id: String,
        /// Records to push.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        /// Pause between pushes, in milliseconds.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
    },
}

/// Outbox storage engine.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Engine {
    Redb,
    /// Only in builds with the `outbox-sled` feature (the engine comparison).
    #[cfg(feature = "outbox-sled")]
    Sled,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, device_id, broker_url, data_dir, trust_store, api_listen } => {
            let overrides = Overrides { device_id, broker_url, data_dir, trust_store, api_listen };
            run_command::run(run_command::RunArgs { config, overrides })
        }
        Command::PrintDefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
        Command::Infer { package, trust, model, input, output, json } => {
            let model = match (package, trust, model) {
                (Some(package), Some(trust), _) => infer_command::ModelArg::Package { package, trust },
                (_, _, Some(model)) => infer_command::ModelArg::Onnx(model),
                // clap's `requires`/`required_unless_present` rule the other combinations out.
                _ => {
                    eprintln!("error: give --package with --trust, or --model");
                    return ExitCode::from(2);
                }
            };
            infer_command::run(infer_command::InferArgs { model, input, output, json })
        }
        Command::UplinkStress { data_dir, broker_url, namespace, device_id, count, interval_ms } => {
            let args =
                uplink_stress::UplinkStressArgs { data_dir, broker_url, namespace, device_id, count, interval_ms };
            match uplink_stress::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("uplink-stress: {error:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::OutboxStress { data_dir, engine, count } => match outbox_stress(&data_dir, engine, count) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("outbox-stress: {error:#}");
                ExitCode::from(2)
            }
        },
        Command::Verify { file, trust, installed_seq, json } => {
            let request = VerifyRequest { package: &file, trust: &trust, installed_seq };
            match verify_file(&request) {
                Ok(verified) => {
                    if json {
                        let report = serde_json::json!({
                            "valid": true,
                            "package_id": verified.package_id,
                            "key_id": verified.signature.key_id,
                            "manifest": verified.manifest,
                        });
                        println!("{report:#}");
                    } else {
                        println!("OK {}: valid package", file.display());
                        println!("  package id   {}", verified.package_id);
                        println!("  signed by    {}", verified.signature.key_id);
                        print!("{}", ManifestSummary(&verified.manifest));
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    if json {
                        let kind = match &error {
                            VerifyError::Rejected(_) => "rejected",
                            VerifyError::Trust(_) => "trust",
                            VerifyError::Io { .. } => "io",
                        };
                        println!(
                            "{:#}",
                            serde_json::json!({ "valid": false, "error": kind, "reason": error.to_string() })
                        );
                    }
                    eprintln!("REJECTED {}: {error}", file.display());
                    match error {
                        VerifyError::Rejected(_) => ExitCode::from(1),
                        _ => ExitCode::from(2),
                    }
                }
            }
        }
    }
}

fn outbox_stress(data_dir: &Path, engine: Engine, count: u64) -> anyhow::Result<()> {
    match engine {
        Engine::Redb => stress(RedbStore::open(data_dir.join(RedbStore::FILE_NAME))?, count),
        #[cfg(feature = "outbox-sled")]
        Engine::Sled => stress(SledStore::open(data_dir.join(SledStore::DIR_NAME))?, count),
    }
}

fn stress(store: impl Store, count: u64) -> anyhow::Result<()> {
    let outbox = Outbox::open(store, OutboxLimits { max_bytes: u64::MAX, max_age_ms: u64::MAX })?;
    let mut stdout = std::io::stdout().lock();
    for _ in 0..count {
        let now_ms = edgefleet_protocol::time::unix_now_ms();
        let seq = outbox
            .push(Stream::Health, now_ms, |seq| format!("health seq={seq} t={now_ms} {:.<64}", "").into_bytes())?;
        writeln!(stdout, "{seq}")?;
        stdout.flush()?;
    }
    Ok(())
}
