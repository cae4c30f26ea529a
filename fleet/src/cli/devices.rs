//! `edgefleet devices list|show|label|sampling`.

use super::{Conn, j, ms_ago, print_json, s};
use anyhow::{Context, Result};
use clap::Subcommand;
use edgefleet::api::devices::{LabelRequest, SamplingRequest};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// `edgefleet devices ...`
#[derive(Debug, Subcommand)]
pub(crate) enum DevicesCommand {
    /// Devices, optionally filtered by a selector (hw=gpu,site=plant-3).
    List {
        /// Selector.
        #[arg(long, default_value = "")]
        select: String,
    },
    /// One device: capabilities, labels, models, recent health and deployments.
    Show {
        /// Device id.
        id: String,
    },
    /// Set labels (KEY=VALUE) and remove labels (--remove KEY).
    Label {
        /// Device id.
        id: String,
        /// Labels to set.
        labels: Vec<String>,
        /// Labels to remove.
        #[arg(long)]
        remove: Vec<String>,
    },
    /// Send a sampling policy (SetSamplingPolicy) to the devices a selector picks: raw record
    /// sampling for retraining data, and the drift summary window.
    Sampling {
        /// Selector (empty: every device).
        #[arg(long, default_value = "")]
        select: String,
        /// Only for this model (default: every model on the device).
        #[arg(long)]
        model: Option<String>,
        /// Fraction of inferences sampled as raw records (0 to 1).
        #[arg(long)]
        sample_rate: f32,
        /// Byte budget for sampled records per hour.
        #[arg(long, default_value_t = 1 << 20)]
        max_bytes_per_hour: u64,
        /// Drift summary window, e.g. 60s.
        #[arg(long, default_value = "60s")]
        drift_window: String,
    },
}

/// `edgefleet devices ...`
pub(crate) fn run(conn: &Conn, command: DevicesCommand) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        DevicesCommand::List { select } => {
            let rows = client.devices(&select)?;
            if conn.json {
                print_json(&rows);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<24} {:<12} {:<8} {:<28} {:<24} LAST SEEN", "DEVICE", "HARDWARE", "ONLINE", "MODELS", "LABELS");
            for d in &rows {
                let labels = d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
                let models = d.models.join(",");
                println!(
                    "{:<24} {:<12} {:<8} {:<28} {:<24} {}",
                    d.id.as_str(),
                    s(&d.hardware).to_lowercase(),
                    if d.online { "yes" } else { "no" },
                    models,
                    labels,
                    ms_ago(d.last_seen_ms)
                );
            }
            println!("{} device(s)", rows.len());
        }
        DevicesCommand::Sampling { select, model, sample_rate, max_bytes_per_hour, drift_window } => {
            let window = edgefleet::rollout::plan::parse_duration_ms(&drift_window)
                .map_err(|e| anyhow::anyhow!("--drift-window: {e}"))?;
            let answer = client.set_sampling(&SamplingRequest {
                select,
                model,
                sample_rate,
                max_sample_bytes_per_hour: max_bytes_per_hour,
                drift_window_ms: window,
            })?;
            if conn.json {
                print_json(&answer);
            } else {
                println!("sampling policy sent to {} device(s)", answer.devices);
            }
        }
        DevicesCommand::Show { id } => print_json(&client.device(&id)?),
        DevicesCommand::Label { id, labels, remove } => {
            let mut set = BTreeMap::new();
            for label in labels {
                let (k, v) = label
                    .split_once('=')
                    .with_context(|| format!("label {label:?} is not KEY=VALUE (e.g. site=plant-3)"))?;
                set.insert(k.to_string(), v.to_string());
            }
            let answer = client.label(&id, &LabelRequest { set, remove })?;
            if conn.json {
                print_json(&answer);
            } else {
                println!("{id}: labels {}", j(&answer.labels));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
