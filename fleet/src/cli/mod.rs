//! The `edgefleet` command line: every command's flags (clap) and what it does. Commands that
//! talk to a running fleet manager read its typed answers ([`edgefleet::api`]) through
//! [`edgefleet::client::Client`].
//!
//! - [`serve`]: `edgefleet serve`. [`devices`], [`models`], [`rollouts`], [`health`],
//!   [`audit`], [`drift`] (drift, samples, scorecard), [`dataset`]: operator commands against
//!   the API.
//! - [`package`]: `keys` and `package build|inspect`. [`direct`]: `direct deploy` over the
//!   broker. [`quickstart`].
//!
//! # Exit codes
//! - [`EXIT_OK`] (0): done; `rollout status` of a rollout that completed (or is still going).
//! - [`EXIT_FAILED`] (1): an error (unreachable server, refused request, unknown model or
//!   device, bad input), or `rollout status` of a rollout that failed a gate or was rolled back.
//! - [`EXIT_USAGE`] (2): the command line did not parse (clap's own code).
//! - [`EXIT_ABORTED`] (3): `rollout status` of a rollout an operator aborted.
//!
//! With `--json`, an error prints `{"error": "..."}` on stderr, with the same exit code.

pub(crate) mod audit;
pub(crate) mod dataset;
pub(crate) mod devices;
pub(crate) mod direct;
pub(crate) mod drift;
pub(crate) mod health;
pub(crate) mod models;
pub(crate) mod package;
pub(crate) mod pipeline;
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
    pub(crate) conn: Conn,
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
        /// Only devices this selector picks (hw=gpu,site=plant-3).
        #[arg(long)]
        select: Option<String>,
        /// Only devices in this state.
        #[arg(long, value_parser = ["healthy", "degraded", "failing", "drifting", "offline", "unknown"])]
        state: Option<String>,
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
    /// Versioned, content-addressed datasets (fleet/DATASETS.md): snapshots of CSV files or
    /// of the devices' sampled records, numbered per name (NAME@N).
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Training pipelines: declarative YAML specs (fleet/PIPELINES.md).
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Where a model version came from and where it went: `lineage MODEL@SEQ` (dataset(s) →
    /// run → package → signature → rollouts → devices, every digest re-verified; exit 1 when a
    /// check fails), `lineage dataset NAME@V` (what was trained from it).
    Lineage {
        /// `MODEL@SEQ`, or `dataset`.
        target: String,
        /// With `dataset`: `NAME@VERSION`.
        dataset: Option<String>,
    },
    /// Talk to one device straight over the broker, without a fleet manager.
    #[command(subcommand)]
    Direct(direct::DirectCommand),
    /// Print a shell completion script: `edgefleet completion bash > /etc/bash_completion.d/edgefleet`,
    /// `edgefleet completion zsh > "${fpath[1]}/_edgefleet"`, `edgefleet completion fish >
    /// ~/.config/fish/completions/edgefleet.fish`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Generate a key, build a signed package from the bundled example model, verify it as a
    /// device would, and show a tampered copy being refused.
    Quickstart {
        /// Where to put the key, models and package.
        #[arg(long, default_value = "edgefleet-quickstart")]
        dir: PathBuf,
    },
}

/// Done (and a rollout that completed).
pub(crate) const EXIT_OK: u8 = 0;
/// An error, or a rollout that failed a gate or was rolled back.
pub(crate) const EXIT_FAILED: u8 = 1;
/// The command line did not parse (clap exits with 2 itself; named here to document it).
#[allow(dead_code)]
pub(crate) const EXIT_USAGE: u8 = 2;
/// A rollout an operator aborted.
pub(crate) const EXIT_ABORTED: u8 = 3;

/// Runs a parsed command line.
pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    let conn = cli.conn;
    match cli.command {
        Command::Serve(args) => serve::serve(*args),
        Command::Devices(c) => devices::run(&conn, c),
        Command::Model(c) => models::run(&conn, c),
        Command::Rollout(c) => rollouts::run(&conn, c),
        Command::Health { device, model, select, state } => {
            health::run(&conn, health::Filter { device, model, select, state })
        }
        Command::Audit(c) => audit::run(&conn, c),
        Command::Pipeline(c) => pipeline::run(&conn, c),
        Command::Lineage { target, dataset } => pipeline::lineage(&conn, &target, dataset.as_deref()),
        Command::Dataset(c) => dataset::run(&conn, c),
        Command::Drift(c) => drift::run(&conn, c),
        Command::Samples(c) => drift::samples(&conn, c),
        Command::Scorecard { rollout } => drift::scorecard(&conn, &rollout),
        Command::Keys(c) => package::keys(c),
        Command::Package(c) => package::run(c),
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "edgefleet", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Quickstart { dir } => quickstart::run(&dir, conn.json).map(|()| ExitCode::SUCCESS),
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

/// Fails, with the same message and exit code in every command, unless the fleet manager
/// knows `model` (`health --model`, `samples export`, `drift report`).
pub(crate) fn require_model(client: &Client, model: &str) -> Result<()> {
    client.model(model)?;
    Ok(())
}

/// Fails, with the same message and exit code in every command, unless the fleet manager
/// knows `device`.
pub(crate) fn require_device(client: &Client, device: &str) -> Result<()> {
    client.device(device)?;
    Ok(())
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

/// The width text output wraps at: `$COLUMNS` when set (shells export it to terminals), else 120.
pub(crate) fn output_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok()).filter(|&c: &usize| c >= 40).unwrap_or(120)
}

/// `text` broken at spaces into lines of at most `width` characters (a longer word stays whole).
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(20);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Every line of `text` longer than `width` wrapped, its continuation lines indented four
/// more than the line itself.
pub(crate) fn wrap_lines(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        for (i, part) in wrap(line.trim_start(), width.saturating_sub(indent + 4)).iter().enumerate() {
            let pad = if i == 0 { indent } else { indent + 4 };
            out.push_str(&format!("{:pad$}{part}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod wrap_tests {
    use super::{wrap, wrap_lines};

    #[test]
    fn continuation_lines_are_indented() {
        let text = "rollout 1\n  cpu stage 1/2, held: labelled 0 of min_labelled 100 on the new version\n";
        assert_eq!(
            wrap_lines(text, 40),
            "rollout 1\n  cpu stage 1/2, held: labelled 0 of\n      min_labelled 100 on the new\n      version\n"
        );
    }

    #[test]
    fn wraps_at_spaces_and_keeps_long_words_whole() {
        assert_eq!(wrap("a bb ccc dddd", 20), vec!["a bb ccc dddd"]);
        let long = "held: labelled 0 of min_labelled 100 on the new version; labelled 3 of min_labelled 100 on the old";
        let lines = wrap(long, 40);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert_eq!(lines.join(" "), long);
        assert_eq!(wrap("", 40), vec![""]);
        assert_eq!(wrap(&"x".repeat(50), 20), vec!["x".repeat(50)]);
    }
}
