//! `edgefleet rollout create|list|status|pause|resume|abort|rollback|promote`.

use super::{Conn, EXIT_ABORTED, EXIT_FAILED, EXIT_OK, j, ms_ago, print_json, s};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use edgefleet::api::rollouts::{DryRunPlan, OperateRequest, RolloutDetail};
use edgefleet::client::Client;
use edgefleet::rollout::machine::HealthVerdict;
use edgefleet::rollout::{CohortFigures, RolloutStatus};
use edgefleet::server::rollouts::RolloutRequest;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `edgefleet rollout create` flags (or `--plan FILE` with the same keys in TOML).
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// A TOML plan file (keys as the flags, with '_' for '-'); flags given override it.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Model name.
    #[arg(long)]
    model: Option<String>,
    /// Version sequence to roll out.
    #[arg(long)]
    version_seq: Option<u64>,
    /// Device selector, e.g. hw=gpu,site=plant-3 or `site in (plant-1,plant-3),line!=2`
    /// (default: every device).
    #[arg(long)]
    select: Option<String>,
    /// Cumulative stages, ending at 100% (default 1%,10%,50%,100%).
    #[arg(long)]
    stages: Option<String>,
    /// Bake time per stage (default 10m).
    #[arg(long)]
    bake: Option<String>,
    /// Largest install failure rate a gate tolerates (default 5%).
    #[arg(long)]
    max_failure_rate: Option<String>,
    /// Completed devices a gate needs (default 20; capped at what a stage can give).
    #[arg(long)]
    min_sample: Option<u32>,
    /// Confidence of the gate's bounds (default 95%).
    #[arg(long)]
    confidence: Option<String>,
    /// Largest share of unreachable devices per stage (default 20%).
    #[arg(long)]
    max_unreachable_rate: Option<String>,
    /// Deployments in flight at once (default 100).
    #[arg(long)]
    max_concurrent_downloads: Option<u32>,
    /// What a failing gate does: pause or rollback (default rollback).
    #[arg(long, value_parser = ["pause", "rollback"])]
    on_fail: Option<String>,
    /// Longest a gate may hold undecided before its track fails by this deadline
    /// (default 1h; `never`: a hold waits for an operator).
    #[arg(long)]
    max_hold: Option<String>,
    /// What an expired hold does: pause or rollback (default: the --on-fail action).
    #[arg(long, value_parser = ["pause", "rollback"])]
    on_hold_timeout: Option<String>,
    /// Probation on each device (default: the server's).
    #[arg(long)]
    probation: Option<String>,
    /// Inferences before probation checks apply.
    #[arg(long)]
    probation_min_inferences: Option<u32>,
    /// Probation error budget, e.g. 1%.
    #[arg(long)]
    probation_max_error_rate: Option<String>,
    /// Probation p99 latency budget in µs (0: none).
    #[arg(long)]
    probation_max_p99_us: Option<u64>,
    /// Health gate: largest tolerated inference error-rate increase of the new version's
    /// devices over the same track's devices still on the old version (e.g. 1%).
    #[arg(long)]
    max_error_rate_increase: Option<String>,
    /// Health gate: largest tolerated p99 latency ratio, new over old (e.g. 1.5).
    #[arg(long)]
    max_p99_ratio: Option<f64>,
    /// Health gate: inferences the new version's devices must run before it decides (default 200).
    #[arg(long)]
    min_inferences: Option<u64>,
    /// A/B gate expression (repeatable): ab:accuracy>=-1% (labelled accuracy new − old),
    /// ab:error_rate<=+1%, ab:p99_ratio<=1.5, ab:min_labelled=200.
    #[arg(long = "gate")]
    gates: Vec<String>,
    /// Resolve targets, stages, bytes and duration; send nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `edgefleet rollout ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RolloutCommand {
    /// Start a staged rollout (or --dry-run it).
    Create(Box<CreateArgs>),
    /// Every rollout.
    List,
    /// Per stage and hardware track: device counts and gate evidence.
    Status {
        /// Rollout id.
        id: u32,
        /// Refresh every second until the rollout ends.
        #[arg(long)]
        watch: bool,
    },
    /// Stop dispatching and promoting.
    Pause(OpArgs),
    /// Continue a paused rollout.
    Resume(OpArgs),
    /// Stop for good, leaving devices as they are.
    Abort(OpArgs),
    /// Stop and roll every device that installed this version back.
    Rollback(OpArgs),
    /// Promote tracks whose gate holds (too few samples to decide), overriding the hold.
    /// A failed gate cannot be overridden.
    Promote {
        #[command(flatten)]
        args: OpArgs,
        /// Only this hardware track.
        #[arg(long)]
        track: Option<String>,
    },
}

/// A rollout id and a reason.
#[derive(Debug, Args)]
pub(crate) struct OpArgs {
    /// Rollout id.
    id: u32,
    /// Why (recorded in the audit log).
    #[arg(long, default_value = "")]
    reason: String,
}

fn request_from(args: &CreateArgs) -> Result<RolloutRequest> {
    let mut table: toml::Table = match &args.plan {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .parse()
            .with_context(|| format!("parsing {}", path.display()))?,
        None => toml::Table::new(),
    };
    let mut put = |key: &str, value: Option<toml::Value>| {
        if let Some(v) = value {
            table.insert(key.to_string(), v);
        }
    };
    let text = |v: &Option<String>| v.clone().map(toml::Value::String);
    put("model", text(&args.model));
    put("version_seq", args.version_seq.map(|v| toml::Value::Integer(v as i64)));
    put("select", text(&args.select));
    put("stages", text(&args.stages));
    put("bake", text(&args.bake));
    put("max_failure_rate", text(&args.max_failure_rate));
    put("min_sample", args.min_sample.map(|v| toml::Value::Integer(i64::from(v))));
    put("confidence", text(&args.confidence));
    put("max_unreachable_rate", text(&args.max_unreachable_rate));
    put("max_concurrent_downloads", args.max_concurrent_downloads.map(|v| toml::Value::Integer(i64::from(v))));
    put("on_fail", text(&args.on_fail));
    put("max_hold", text(&args.max_hold));
    put("on_hold_timeout", text(&args.on_hold_timeout));
    put("probation", text(&args.probation));
    put("probation_min_inferences", args.probation_min_inferences.map(|v| toml::Value::Integer(i64::from(v))));
    put("probation_max_error_rate", text(&args.probation_max_error_rate));
    put("probation_max_p99_us", args.probation_max_p99_us.map(|v| toml::Value::Integer(v as i64)));
    put("max_error_rate_increase", text(&args.max_error_rate_increase));
    put("max_p99_ratio", args.max_p99_ratio.map(toml::Value::Float));
    put("min_inferences", args.min_inferences.map(|v| toml::Value::Integer(v as i64)));
    if !args.gates.is_empty() {
        put("gates", Some(toml::Value::Array(args.gates.iter().cloned().map(toml::Value::String).collect())));
    }
    if !table.contains_key("model") || !table.contains_key("version_seq") {
        anyhow::bail!("a rollout needs --model and --version-seq (or both in --plan)");
    }
    table.try_into::<RolloutRequest>().context("rollout plan")
}

fn print_plan(plan: &DryRunPlan) {
    println!(
        "  {} target(s) for {}@{}: {} already running it, {} offline now",
        plan.targets, plan.model, plan.version_seq, plan.already_running, plan.offline_now
    );
    if !plan.skipped_no_variant.is_empty() {
        let skipped: Vec<String> = plan.skipped_no_variant.iter().map(|(hw, n)| format!("{n} {hw}")).collect();
        println!("  skipped (no variant for their hardware): {}", skipped.join(", "));
    }
    if plan.skipped_no_birth > 0 {
        let unborn = plan.skipped_no_birth;
        println!("  skipped: {unborn} device(s) whose birth has not arrived (hardware unknown; asked to send it)");
    }
    for t in &plan.tracks {
        let stages: Vec<String> = t.stages.iter().map(|st| format!("{}%→{}", st.percent, st.devices)).collect();
        println!("  track {:<11} {:>5} devices, stages {}", s(&t.hardware).to_lowercase(), t.size, stages.join("  "));
    }
    println!(
        "  transfer {} bytes; estimated {:.0}s ({})",
        plan.bytes_to_transfer,
        plan.estimated_duration_ms as f64 / 1000.0,
        plan.estimate_assumes
    );
}

fn status_text(r: &RolloutDetail) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "rollout {} {}@{}: {}", r.id, r.model, r.version_seq, status_word(r.status));
    let p = &r.plan;
    let _ = writeln!(
        out,
        "  stages {} bake {}, gate: failure ≤ {} (confidence {}), min sample {}, on fail {}, {}",
        p.stages.iter().map(|st| format!("{st}%")).collect::<Vec<_>>().join(","),
        duration(p.bake_ms),
        percent(p.max_failure_rate),
        percent(p.confidence),
        p.min_sample,
        s(&p.on_fail),
        match p.max_hold_ms {
            Some(ms) => format!("a hold expires after {} ({})", duration(ms), s(&p.on_hold_timeout)),
            None => "holds never expire".to_string(),
        }
    );
    for t in &r.tracks {
        let counts = t.counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            out,
            "  {:<11} stage {}/{} ({}% = {} of {}), {}: {}",
            t.hardware, t.stage, t.stages, t.stage_percent, t.quota, t.size, t.phase, counts
        );
        let Some(d) = &t.last_decision else { continue };
        let e = &d.evidence;
        let _ = writeln!(
            out,
            "      last gate: {} — failed {} / completed {} (needs {}), failure rate in [{:.3}, {:.3}] vs ≤ {}, unreachable {}",
            d.decision,
            e.failed,
            u64::from(e.committed) + u64::from(e.failed),
            e.required_sample,
            e.failure_lower,
            e.failure_upper,
            percent(e.max_failure_rate),
            e.unreachable
        );
        if let Some(h) = &e.health {
            let fig = |c: Option<&CohortFigures>| match c {
                None => "none".to_string(),
                Some(c) => {
                    format!(
                        "{} devices, {} inferences, {} errors, p99 {}µs",
                        c.devices,
                        c.inferences,
                        c.errors,
                        s(&c.p99_us)
                    )
                }
            };
            let _ = writeln!(
                out,
                "      health gate: {} — new {} vs control {}; error rate new {} vs control {} (tolerance +{}), p99 ratio {} (max {})",
                verdict_word(h.verdict),
                fig(Some(&h.new)),
                fig(h.control.as_ref()),
                rate(&h.new_error_rate),
                rate(&h.control_error_rate),
                percent(h.gate.max_error_rate_increase),
                s(&h.p99_ratio),
                j(&h.gate.max_p99_ratio)
            );
        }
    }
    if !r.failure_reasons.is_empty() {
        let _ = writeln!(out, "  failures:");
        for (reason, count) in r.failure_reasons.iter().take(10) {
            let _ = writeln!(out, "    {count} × {reason}");
        }
    }
    out
}

fn print_status(r: &RolloutDetail) {
    print!("{}", super::wrap_lines(&status_text(r), super::output_width()));
}

/// A rate as the operator writes it: `0.5` is `50%`, `0.015` is `1.5%`.
pub(crate) fn percent(x: f64) -> String {
    let p = x * 100.0;
    if (p - p.round()).abs() < 1e-9 { format!("{}%", p.round()) } else { format!("{}%", (p * 1000.0).round() / 1000.0) }
}

/// A duration as the operator writes it: `5s`, `10m`, `1500ms`.
pub(crate) fn duration(ms: u64) -> String {
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// A health verdict in words.
pub(crate) fn verdict_word(v: HealthVerdict) -> &'static str {
    match v {
        HealthVerdict::Fine => "fine",
        HealthVerdict::Regressed => "regressed",
        HealthVerdict::InsufficientInferences => "too few inferences",
        HealthVerdict::Inconclusive => "inconclusive",
        HealthVerdict::NoControl => "no control devices",
    }
}

/// A rollout status in words (`rolled back`, not `RolledBack`).
pub(crate) fn status_word(status: RolloutStatus) -> &'static str {
    status.words()
}

/// An error rate (a number, or an interval `[low, high]`, or none) as text: `1.2%`,
/// `[0.0%, 3.1%]`, `none`.
fn rate(field: &impl serde::Serialize) -> String {
    fn one(v: &serde_json::Value) -> String {
        match v.as_f64() {
            Some(x) => format!("{:.1}%", x * 100.0),
            None => "?".into(),
        }
    }
    match serde_json::to_value(field).unwrap_or(serde_json::Value::Null) {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::Array(items) => {
            format!("[{}]", items.iter().map(one).collect::<Vec<_>>().join(", "))
        }
        other => one(&other),
    }
}

fn terminal(status: RolloutStatus) -> bool {
    matches!(
        status,
        RolloutStatus::Completed | RolloutStatus::Stopped | RolloutStatus::Aborted | RolloutStatus::RolledBack
    )
}

/// `rollout status`'s exit code: completed (or not ended) 0, failed or rolled back 1, aborted 3.
pub(crate) fn status_code(status: RolloutStatus) -> u8 {
    match status {
        RolloutStatus::Stopped | RolloutStatus::RolledBack => EXIT_FAILED,
        RolloutStatus::Aborted => EXIT_ABORTED,
        _ => EXIT_OK,
    }
}

/// `edgefleet rollout ...`
pub(crate) fn run(conn: &Conn, command: RolloutCommand) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        RolloutCommand::Create(args) => {
            let request = request_from(&args)?;
            let answer = client.create_rollout(&request, args.dry_run)?;
            if conn.json {
                print_json(&answer);
            } else {
                if args.dry_run {
                    println!("dry run (nothing sent):");
                } else {
                    println!("rollout {} created and started", j(&answer.id));
                }
                print_plan(&answer.plan);
                if !args.dry_run {
                    println!("  follow it: edgefleet rollout status {} --watch", j(&answer.id));
                }
            }
        }
        RolloutCommand::List => {
            let list = client.rollouts()?;
            if conn.json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<4} {:<28} {:<8} {:<11} {:<8} {:<12} CREATED",
                "ID", "MODEL", "VERSION", "STATUS", "TARGETS", "BY"
            );
            for r in &list {
                println!(
                    "{:<4} {:<28} {:<8} {:<11} {:<8} {:<12} {}",
                    r.id,
                    r.model,
                    r.version_seq,
                    status_word(r.status),
                    r.targets,
                    r.created_by,
                    ms_ago(r.created_at_ms)
                );
            }
        }
        RolloutCommand::Status { id, watch } => {
            // On a terminal, --watch redraws in place; piped, it prints the status again only
            // when it changed.
            let redraw = watch && !conn.json && std::io::stdout().is_terminal();
            let mut last: Option<String> = None;
            loop {
                let r = client.rollout(id)?;
                let shown = if conn.json {
                    format!("{:#}", super::value(&r))
                } else {
                    super::wrap_lines(&status_text(&r), super::output_width())
                };
                // Piped, countdowns ("baking, 41s left", "held 3m") are not a change.
                let key = if redraw { shown.clone() } else { change_key(&r) };
                if last.as_deref() != Some(key.as_str()) {
                    if redraw {
                        print!("\x1b[H\x1b[2J");
                    } else if last.is_some() {
                        println!();
                    }
                    print!("{shown}");
                    if conn.json {
                        println!();
                    }
                    last = Some(key);
                }
                if !watch || terminal(r.status) {
                    return Ok(ExitCode::from(status_code(r.status)));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        RolloutCommand::Pause(a) => op(conn, &client, "pause", a, None)?,
        RolloutCommand::Resume(a) => op(conn, &client, "resume", a, None)?,
        RolloutCommand::Abort(a) => op(conn, &client, "abort", a, None)?,
        RolloutCommand::Rollback(a) => op(conn, &client, "rollback", a, None)?,
        RolloutCommand::Promote { args, track } => op(conn, &client, "promote", args, track)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// What makes a rollout's status different for a reader of piped `--watch` output: everything
/// but the clock-driven part of each track's phase (its first word stays: `baking` → `held`).
fn change_key(r: &RolloutDetail) -> String {
    let mut r = r.clone();
    for t in &mut r.tracks {
        t.phase = t.phase.split([',', ' ', ':']).next().unwrap_or_default().to_string();
    }
    super::value(&r).to_string()
}

fn op(conn: &Conn, client: &Client, name: &str, args: OpArgs, track: Option<String>) -> Result<()> {
    let r = client.operate_rollout(args.id, name, &OperateRequest { reason: args.reason, track })?;
    if conn.json {
        print_json(&r);
    } else {
        print_status(&r);
    }
    Ok(())
}
