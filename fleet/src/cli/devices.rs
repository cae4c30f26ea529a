//! `edgefleet devices list|show|label|sampling`.

use super::{Conn, ms_ago, print_json, s};
use anyhow::{Context, Result};
use clap::Subcommand;
use edgefleet::api::devices::{LabelRequest, SamplingRequest};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// `edgefleet devices ...`
#[derive(Debug, Subcommand)]
pub(crate) enum DevicesCommand {
    /// Devices, optionally filtered by a selector (hw=gpu,site=plant-3; also `key!=value`,
    /// `key in (a,b)`, `key notin (a,b)`).
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
    /// Set labels (KEY=VALUE) and remove labels (--remove KEY), on one device or, with
    /// --select, on every device the selector picks (`devices label --select hw=gpu site=x`).
    Label {
        /// Device id (with --select: the first label instead).
        id: String,
        /// Label every device this selector picks instead of one device.
        #[arg(long)]
        select: Option<String>,
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
        DevicesCommand::Show { id } => {
            let d = client.device(&id)?;
            if conn.json {
                print_json(&d);
            } else {
                print!("{}", show_text(&d.0));
            }
        }
        DevicesCommand::Label { id, select, mut labels, remove } => {
            let ids: Vec<String> = match &select {
                None => vec![id],
                Some(select) => {
                    labels.insert(0, id);
                    client.devices(select)?.into_iter().map(|d| d.id.as_str().to_string()).collect()
                }
            };
            let mut set = BTreeMap::new();
            for label in labels {
                let (k, v) = label
                    .split_once('=')
                    .with_context(|| format!("label {label:?} is not KEY=VALUE (e.g. site=plant-3)"))?;
                set.insert(k.to_string(), v.to_string());
            }
            let request = LabelRequest { set, remove };
            let mut answers = Vec::new();
            for id in &ids {
                answers.push(client.label(id, &request)?);
            }
            if conn.json {
                match (&select, answers.as_slice()) {
                    (None, [one]) => print_json(one),
                    _ => print_json(&answers),
                }
            } else {
                for answer in &answers {
                    let labels = answer.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
                    println!("{}: labels {labels}", answer.device.as_str());
                }
                if select.is_some() {
                    println!("{} device(s) labelled", answers.len());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `devices show` as text: identity, hardware, labels, models, the last health report and
/// recent deployment transitions.
fn show_text(d: &edgefleet::server::registry::DeviceRecord) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let hardware = d.hardware.map_or("unknown (no birth yet)".to_string(), |h| h.to_string());
    let _ = writeln!(out, "device {}", d.id.as_str());
    let _ = writeln!(out, "  hardware   {hardware} ({})", d.hardware_detail);
    let _ = writeln!(out, "  agent      {}", d.agent_version);
    let online = match (&d.online, &d.offline_reason) {
        (true, _) => "online".to_string(),
        (false, Some(why)) => format!("offline ({why})"),
        (false, None) => "offline".to_string(),
    };
    let _ = writeln!(
        out,
        "  status     {online}, last seen {}, first seen {}",
        ms_ago(d.last_seen_ms),
        ms_ago(d.first_seen_ms)
    );
    let labels = d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "  labels     {}", if labels.is_empty() { "-" } else { &labels });
    let models =
        d.active_models.iter().map(|m| format!("{}@{} ({})", m.name, m.version_seq, m.label)).collect::<Vec<_>>();
    let _ = writeln!(out, "  models     {}", if models.is_empty() { "-".to_string() } else { models.join(", ") });
    let _ = writeln!(out, "  free disk  {} MiB", d.free_disk_bytes >> 20);
    if let Some(h) = d.health.back() {
        let _ = writeln!(
            out,
            "  health     {}: cpu {:.0}%, rss {} MiB, outbox {} ({} evicted)",
            ms_ago(h.received_ms),
            h.cpu_percent,
            h.rss_bytes >> 20,
            h.outbox_depth,
            h.outbox_evictions
        );
    }
    if !d.history.is_empty() {
        let _ = writeln!(out, "  deployments (newest first):");
        for e in d.history.iter().rev().take(10) {
            let _ = writeln!(
                out,
                "    {:<10} deployment {} {}@{}: {}",
                ms_ago(e.received_ms),
                e.deployment_id,
                e.model,
                e.version_seq,
                e.state
            );
        }
    }
    if let Some(dup) = &d.boots.duplicate {
        let _ = writeln!(out, "  DUPLICATE  {}", dup.describe());
    }
    if d.quarantine.flagged.is_some() {
        let _ = writeln!(out, "  flagged    refused messages: see `edgefleet devices show {} --json`", d.id.as_str());
    }
    out
}
