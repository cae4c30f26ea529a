//! The `edgefleet` command line: every command's flags (clap) and what it does. Commands that
//! talk to a running fleet manager read its typed answers ([`edgefleet::api`]) through
//! [`edgefleet::client::Client`].
//!
//! - [`serve`]: `edgefleet serve`. [`devices`], [`models`], [`rollouts`], [`health`],
//!   [`audit`], [`drift`] (drift, samples, scorecard): operator commands against the API.
//! - [`package`]: `keys` and `package build|inspect`. [`direct`]: `direct deploy` over the
//!   broker. [`quickstart`].

pub(crate) mod audit;
pub(crate) mod devices;
pub(crate) mod direct;
pub(crate) mod drift;
pub(crate) mod health;
pub(crate) mod models;
pub(crate) mod package;
pub(crate) mod quickstart;
pub(crate) mod rollouts;
pub(crate) mod serve;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use edgefleet::client::Client;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// Edgefleet: ship signed ML models to fleets of edge devices and keep them healthy.
#[derive(Debug, Parser)]
#[command(name = "edgefleet", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Signing keys.
    #[command(subcommand)]
    Keys(package::KeysCommand),
    /// Model packages.
    #[command(subcommand)]
    Package(package::PackageCommand),
    /// Run the fleet manager: embedded MQTT broker, registry, rollouts, HTTP API.
    Serve(Box<serve::ServeArgs>),
    /// Devices known to the fleet manager.
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// Model versions in the fleet manager's registry.
    #[command(subcommand)]
    Model(models::ModelCommand),
    /// Staged rollouts with health gates.
    #[command(subcommand)]
    Rollout(rollouts::RolloutCommand),
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
    Drift(drift::DriftCommand),
    /// Sampled raw records from the devices (retraining datasets).
    #[command(subcommand)]
    Samples(drift::SamplesCommand),
    /// A rollout's A/B scorecard: the new version's devices against the old version's, per
    /// hardware track (accuracy, errors, latency, prediction shift, drift), with 95% intervals.
    Scorecard {
        /// Rollout id.
        rollout: String,
    },
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Talk to one device straight over the broker, without a fleet manager.
    #[command(subcommand)]
    Direct(direct::DirectCommand),
    /// Generate a key, build a signed package from the bundled example model, verify it as a
    /// device would, and show a tampered copy being refused.
    Quickstart {
        /// Where to put the key, models and package.
        #[arg(long, default_value = "edgefleet-quickstart")]
        dir: PathBuf,
    },
}

/// Runs a parsed command line.
pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    let conn = cli.conn;
    match cli.command {
        Command::Serve(args) => serve::serve(*args),
        Command::Devices(c) => devices::run(&conn, c),
        Command::Model(c) => models::run(&conn, c),
        Command::Rollout(c) => rollouts::run(&conn, c),
        Command::Health { device, model } => health::run(&conn, device, model),
        Command::Audit(c) => audit::run(&conn, c),
        Command::Drift(c) => drift::run(&conn, c),
        Command::Samples(c) => drift::samples(&conn, c),
        Command::Scorecard { rollout } => drift::scorecard(&conn, &rollout),
        Command::Keys(c) => package::keys(c),
        Command::Package(c) => package::run(c),
        Command::Quickstart { dir } => quickstart::run(&dir).map(|()| ExitCode::SUCCESS),
        Command::Direct(c) => direct::run(c),
    }
}

/// Where the fleet manager is and who is asking.
#[derive(Debug, Args, Clone)]
pub(crate) struct Conn {
    /// Fleet manager API.
    #[arg(long, global = true, env = "EDGEFLEET_SERVER", default_value = "http://127.0.0.1:8080")]
    pub(crate) server: String,
    /// Operator name recorded in the audit log (default: $USER).
    #[arg(long = "as", global = true, env = "EDGEFLEET_OPERATOR")]
    pub(crate) actor: Option<String>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl Conn {
    pub(crate) fn client(&self) -> Client {
        let actor = self.actor.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "operator".into());
        Client::new(&self.server, &actor)
    }
}

/// An answer as JSON: through a [`Value`], so the keys print sorted as they always did.
fn value(answer: &impl Serialize) -> Value {
    serde_json::to_value(answer).unwrap_or(Value::Null)
}

/// `--json`: the answer, pretty.
pub(crate) fn print_json(answer: &impl Serialize) {
    println!("{:#}", value(answer));
}

/// A field as compact JSON (strings quoted, `null` for none).
pub(crate) fn j(field: &impl Serialize) -> String {
    value(field).to_string()
}

/// A field as text: strings bare, `-` for none, anything else as JSON.
pub(crate) fn s(field: &impl Serialize) -> String {
    match value(field) {
        Value::String(s) => s,
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A field as its JSON value's debug form (`Array [Number(0.1), ..]`, `Null`), as the
/// health-gate line has always shown the error-rate bounds.
pub(crate) fn debug_json(field: &impl Serialize) -> String {
    format!("{:?}", value(field))
}

/// How long ago a fleet-clock time was.
pub(crate) fn ms_ago(ms: u64) -> String {
    let now = edgefleet_protocol::time::unix_now_ms();
    let secs = now.saturating_sub(ms) / 1000;
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    }
}
