//! `edgefleet rollout create|list|status|pause|resume|abort|rollback|promote`.

use super::{Conn, debug_json, j, ms_ago, print_json, s};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use edgefleet::api::rollouts::{DryRunPlan, OperateRequest, RolloutDetail};
use edgefleet::client::Client;
use edgefleet::rollout::{CohortFigures, OnFail, RolloutStatus};
use edgefleet::server::rollouts::RolloutRequest;
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
    /// Device selector, e.g. hw=gpu,site=plant-3 (default: every device).
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
    #[arg(long)]
    on_fail: Option<String>,
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
    if let Some(on_fail) = &args.on_fail {
        let parsed: OnFail = match on_fail.as_str() {
            "pause" => OnFail::Pause,
            "rollback" => OnFail::Rollback,
            other => anyhow::bail!("--on-fail {other:?}: expected pause or rollback"),
        };
        put("on_fail", Some(toml::Value::String(format!("{parsed:?}").to_lowercase())));
    }
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
        println!("  skipped (no variant for their hardware): {}", j(&plan.skipped_no_variant));
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

fn print_status(r: &RolloutDetail) {
    println!("rollout {} {}@{}: {}", r.id, r.model, r.version_seq, s(&r.status).to_lowercase());
    let p = &r.plan;
    println!(
        "  stages {} bake {}ms, gate: failure ≤ {} (confidence {}), min sample {}, on fail {}",
        j(&p.stages),
        p.bake_ms,
        j(&p.max_failure_rate),
        j(&p.confidence),
        p.min_sample,
        s(&p.on_fail)
    );
    for t in &r.tracks {
        let counts = t.counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        println!(
            "  {:<11} stage {}/{} ({}% = {} of {}), {}: {}",
            t.hardware, t.stage, t.stages, t.stage_percent, t.quota, t.size, t.phase, counts
        );
        let Some(d) = &t.last_decision else { continue };
        let e = &d.evidence;
        println!(
            "      last gate: {} — failed {} / completed {} (needs {}), failure rate in [{:.3}, {:.3}] vs ≤ {}, unreachable {}",
            d.decision,
            e.failed,
            u64::from(e.committed) + u64::from(e.failed),
            e.required_sample,
            e.failure_lower,
            e.failure_upper,
            j(&e.max_failure_rate),
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
            println!(
                "      health gate: {} — new {} vs control {}; error rate new {} vs control {} (tolerance +{}), p99 ratio {} (max {})",
                s(&h.verdict),
                fig(Some(&h.new)),
                fig(h.control.as_ref()),
                debug_json(&h.new_error_rate),
                debug_json(&h.control_error_rate),
                j(&h.gate.max_error_rate_increase),
                s(&h.p99_ratio),
                j(&h.gate.max_p99_ratio)
            );
        }
    }
    if !r.failure_reasons.is_empty() {
        println!("  failures:");
        for (reason, count) in r.failure_reasons.iter().take(10) {
            println!("    {count} × {reason}");
        }
    }
}

fn terminal(status: RolloutStatus) -> bool {
    matches!(
        status,
        RolloutStatus::Completed | RolloutStatus::Stopped | RolloutStatus::Aborted | RolloutStatus::RolledBack
    )
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
                    s(&r.status).to_lowercase(),
                    r.targets,
                    r.created_by,
                    ms_ago(r.created_at_ms)
                );
            }
        }
        RolloutCommand::Status { id, watch } => loop {
            let r = client.rollout(id)?;
            if conn.json {
                print_json(&r);
            } else {
                print_status(&r);
            }
            if !watch || terminal(r.status) {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            println!();
        },
        RolloutCommand::Pause(a) => op(conn, &client, "pause", a, None)?,
        RolloutCommand::Resume(a) => op(conn, &client, "resume", a, None)?,
        RolloutCommand::Abort(a) => op(conn, &client, "abort", a, None)?,
        RolloutCommand::Rollback(a) => op(conn, &client, "rollback", a, None)?,
        RolloutCommand::Promote { args, track } => op(conn, &client, "promote", args, track)?,
    }
    Ok(ExitCode::SUCCESS)
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
