//! Operator commands that talk to a running fleet manager (`edgefleet serve`) over its API,
//! and `edgefleet serve` itself.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use edgefleet::client::{Client, query_escape};
use edgefleet::rollout::OnFail;
use edgefleet::server::config::{DEFAULT_CONFIG, Overrides, ServeConfig};
use edgefleet::server::rollouts::RolloutRequest;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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

/// `edgefleet serve` flags.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML settings file (layered over the embedded default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Registry, packages and audit log.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Embedded MQTT broker listener (port 0: any free port).
    #[arg(long)]
    mqtt_listen: Option<String>,
    /// HTTP API listener (port 0: any free port).
    #[arg(long)]
    http_listen: Option<String>,
    /// Use this external broker instead of the embedded one (mqtt://HOST:PORT).
    #[arg(long)]
    mqtt_url: Option<String>,
    /// Trusted package signing keys (a public key file or a trust store).
    #[arg(long)]
    trust_store: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Log format.
    #[arg(long, default_value = "plain", value_parser = ["plain", "json"])]
    log_format: String,
}

/// Runs the fleet manager until SIGINT/SIGTERM.
pub(crate) fn serve(args: ServeArgs) -> Result<ExitCode> {
    if args.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return Ok(ExitCode::SUCCESS);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
    let flags = Overrides {
        data_dir: args.data_dir,
        http_listen: args.http_listen,
        mqtt_listen: args.mqtt_listen,
        mqtt_url: args.mqtt_url,
        trust_store: args.trust_store,
    };
    let config = ServeConfig::load(args.config.as_deref(), std::env::vars(), &flags).context("configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running = edgefleet::server::start(config.clone(), shutdown.clone()).await?;
        println!("edgefleet fleet manager");
        println!("  HTTP API   http://{}   (edgefleet --server http://{} ...)", running.http_addr, running.http_addr);
        println!(
            "  MQTT       {}   ({})",
            running.mqtt_url,
            if running.embedded_broker { "embedded broker" } else { "external broker" }
        );
        println!("  data       {}", config.data_dir.display());
        println!("  trust      {}", config.trust_store.display());
        let signal_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            signal_shutdown.cancel();
        });
        running.task.await.context("fleet manager task")??;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

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

/// `edgefleet model ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ModelCommand {
    /// Upload a signed package; the fleet verifies it against its trusted keys.
    Push {
        /// The `.efpkg` file.
        file: PathBuf,
    },
    /// Every model version and how many devices run it.
    List,
    /// One model's versions and which devices run each.
    Show {
        /// Model name.
        name: String,
    },
}

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

/// `edgefleet audit ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain; names the first broken entry.
    Verify,
    /// Show entries.
    List {
        /// From this entry.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

pub(crate) fn print_json(value: &Value) {
    println!("{value:#}");
}

fn ms_ago(ms: u64) -> String {
    let now = edgefleet_protocol::time::unix_now_ms();
    let secs = now.saturating_sub(ms) / 1000;
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    }
}

pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `edgefleet devices ...`
pub(crate) fn devices(conn: &Conn, command: DevicesCommand) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        DevicesCommand::List { select } => {
            let list = client.get(&format!("/v1/devices?select={}", query_escape(&select)))?;
            if conn.json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            let rows = list.as_array().cloned().unwrap_or_default();
            println!("{:<24} {:<12} {:<8} {:<28} {:<24} LAST SEEN", "DEVICE", "HARDWARE", "ONLINE", "MODELS", "LABELS");
            for d in &rows {
                let labels = d["labels"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join(","))
                    .unwrap_or_default();
                let models =
                    d["models"].as_array().map(|a| a.iter().map(s).collect::<Vec<_>>().join(",")).unwrap_or_default();
                println!(
                    "{:<24} {:<12} {:<8} {:<28} {:<24} {}",
                    s(&d["id"]),
                    s(&d["hardware"]).to_lowercase(),
                    if d["online"].as_bool() == Some(true) { "yes" } else { "no" },
                    models,
                    labels,
                    ms_ago(d["last_seen_ms"].as_u64().unwrap_or(0))
                );
            }
            println!("{} device(s)", rows.len());
        }
        DevicesCommand::Sampling { select, model, sample_rate, max_bytes_per_hour, drift_window } => {
            let window = edgefleet::rollout::plan::parse_duration_ms(&drift_window)
                .map_err(|e| anyhow::anyhow!("--drift-window: {e}"))?;
            let answer = client.post_json(
                "/v1/sampling",
                &json!({
                    "select": select, "model": model, "sample_rate": sample_rate,
                    "max_sample_bytes_per_hour": max_bytes_per_hour, "drift_window_ms": window,
                }),
            )?;
            if conn.json {
                print_json(&answer);
            } else {
                println!("sampling policy sent to {} device(s)", answer["devices"]);
            }
        }
        DevicesCommand::Show { id } => print_json(&client.get(&format!("/v1/devices/{}", query_escape(&id)))?),
        DevicesCommand::Label { id, labels, remove } => {
            let mut set = serde_json::Map::new();
            for label in labels {
                let (k, v) = label
                    .split_once('=')
                    .with_context(|| format!("label {label:?} is not KEY=VALUE (e.g. site=plant-3)"))?;
                set.insert(k.to_string(), Value::String(v.to_string()));
            }
            let answer = client.post_json(
                &format!("/v1/devices/{}/labels", query_escape(&id)),
                &json!({"set": set, "remove": remove}),
            )?;
            if conn.json {
                print_json(&answer);
            } else {
                println!("{id}: labels {}", answer["labels"]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `edgefleet model ...`
pub(crate) fn model(conn: &Conn, command: ModelCommand) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        ModelCommand::Push { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let answer = client.post_bytes("/v1/models", &bytes)?;
            if conn.json {
                print_json(&answer);
            } else {
                let m = &answer["model"];
                let again =
                    if answer["already_registered"].as_bool() == Some(true) { " (already registered)" } else { "" };
                println!("pushed {}@{} ({}){again}", s(&m["name"]), m["version_seq"], s(&m["label"]));
                println!("  package id  {}", s(&m["package_id"]));
                println!("  signed by   {} (verified)", s(&m["key_id"]));
                let variants: Vec<String> = m["variants"]
                    .as_array()
                    .map(|a| {
                        a.iter().map(|v| format!("{} {} bytes", s(&v["hardware"]).to_lowercase(), v["size"])).collect()
                    })
                    .unwrap_or_default();
                println!("  variants    {}", variants.join(", "));
            }
        }
        ModelCommand::List => {
            let list = client.get("/v1/models")?;
            if conn.json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<28} {:<8} {:<14} {:<22} {:<8} PACKAGE", "MODEL", "VERSION", "LABEL", "VARIANTS", "DEVICES");
            for m in list.as_array().cloned().unwrap_or_default() {
                let variants = m["variants"]
                    .as_array()
                    .map(|a| a.iter().map(|v| s(v).to_lowercase()).collect::<Vec<_>>().join(","))
                    .unwrap_or_default();
                println!(
                    "{:<28} {:<8} {:<14} {:<22} {:<8} {}",
                    s(&m["name"]),
                    s(&m["version_seq"]),
                    s(&m["label"]),
                    variants,
                    s(&m["devices"]),
                    &s(&m["package_id"])[..16.min(s(&m["package_id"]).len())]
                );
            }
        }
        ModelCommand::Show { name } => {
            let answer = client.get(&format!("/v1/models/{}", query_escape(&name)))?;
            if conn.json {
                print_json(&answer);
                return Ok(ExitCode::SUCCESS);
            }
            for v in answer["versions"].as_array().cloned().unwrap_or_default() {
                let r = &v["record"];
                let devices = v["devices"].as_array().cloned().unwrap_or_default();
                println!("{}@{} ({}) package {}", s(&r["name"]), r["version_seq"], s(&r["label"]), s(&r["package_id"]));
                println!("  pushed by {} {}", s(&r["pushed_by"]), ms_ago(r["pushed_at_ms"].as_u64().unwrap_or(0)));
                println!(
                    "  running on {} device(s){}",
                    devices.len(),
                    if devices.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", devices.iter().take(20).map(s).collect::<Vec<_>>().join(", "))
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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

fn print_plan(plan: &Value) {
    println!(
        "  {} target(s) for {}@{}: {} already running it, {} offline now",
        plan["targets"],
        s(&plan["model"]),
        plan["version_seq"],
        plan["already_running"],
        plan["offline_now"]
    );
    if let Some(skipped) = plan["skipped_no_variant"].as_object().filter(|m| !m.is_empty()) {
        println!("  skipped (no variant for their hardware): {}", Value::Object(skipped.clone()));
    }
    if let Some(unborn) = plan["skipped_no_birth"].as_u64().filter(|n| *n > 0) {
        println!("  skipped: {unborn} device(s) whose birth has not arrived (hardware unknown; asked to send it)");
    }
    for t in plan["tracks"].as_array().cloned().unwrap_or_default() {
        let stages: Vec<String> = t["stages"]
            .as_array()
            .map(|a| a.iter().map(|st| format!("{}%→{}", st["percent"], st["devices"])).collect())
            .unwrap_or_default();
        println!(
            "  track {:<11} {:>5} devices, stages {}",
            s(&t["hardware"]).to_lowercase(),
            s(&t["size"]),
            stages.join("  ")
        );
    }
    println!(
        "  transfer {} bytes; estimated {:.0}s ({})",
        plan["bytes_to_transfer"],
        plan["estimated_duration_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        s(&plan["estimate_assumes"])
    );
}

fn print_status(r: &Value) {
    println!("rollout {} {}@{}: {}", r["id"], s(&r["model"]), r["version_seq"], s(&r["status"]).to_lowercase());
    let p = &r["plan"];
    println!(
        "  stages {} bake {}ms, gate: failure ≤ {} (confidence {}), min sample {}, on fail {}",
        p["stages"],
        p["bake_ms"],
        p["max_failure_rate"],
        p["confidence"],
        p["min_sample"],
        s(&p["on_fail"])
    );
    for t in r["tracks"].as_array().cloned().unwrap_or_default() {
        let counts = t["counts"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        println!(
            "  {:<11} stage {}/{} ({}% = {} of {}), {}: {}",
            s(&t["hardware"]),
            t["stage"],
            t["stages"],
            t["stage_percent"],
            t["quota"],
            t["size"],
            s(&t["phase"]),
            counts
        );
        let d = &t["last_decision"];
        if !d.is_null() {
            let e = &d["evidence"];
            println!(
                "      last gate: {} — failed {} / completed {} (needs {}), failure rate in [{:.3}, {:.3}] vs ≤ {}, unreachable {}",
                s(&d["decision"]),
                e["failed"],
                e["committed"].as_u64().unwrap_or(0) + e["failed"].as_u64().unwrap_or(0),
                e["required_sample"],
                e["failure_lower"].as_f64().unwrap_or(0.0),
                e["failure_upper"].as_f64().unwrap_or(1.0),
                e["max_failure_rate"],
                e["unreachable"]
            );
            let h = &e["health"];
            if !h.is_null() {
                let fig = |c: &Value| {
                    if c.is_null() {
                        "none".to_string()
                    } else {
                        format!(
                            "{} devices, {} inferences, {} errors, p99 {}µs",
                            c["devices"],
                            c["inferences"],
                            c["errors"],
                            s(&c["p99_us"])
                        )
                    }
                };
                println!(
                    "      health gate: {} — new {} vs control {}; error rate new {:?} vs control {:?} (tolerance +{}), p99 ratio {} (max {})",
                    s(&h["verdict"]),
                    fig(&h["new"]),
                    fig(&h["control"]),
                    h["new_error_rate"],
                    h["control_error_rate"],
                    h["gate"]["max_error_rate_increase"],
                    s(&h["p99_ratio"]),
                    h["gate"]["max_p99_ratio"]
                );
            }
        }
    }
    if let Some(reasons) = r["failure_reasons"].as_object().filter(|m| !m.is_empty()) {
        println!("  failures:");
        for (reason, count) in reasons.iter().take(10) {
            println!("    {count} × {reason}");
        }
    }
}

fn terminal(status: &str) -> bool {
    matches!(status, "Completed" | "Stopped" | "Aborted" | "RolledBack")
}

/// `edgefleet rollout ...`
pub(crate) fn rollout(conn: &Conn, command: RolloutCommand) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        RolloutCommand::Create(args) => {
            let request = request_from(&args)?;
            let path = if args.dry_run { "/v1/rollouts?dry_run=true" } else { "/v1/rollouts" };
            let answer = client.post_json(path, &serde_json::to_value(&request)?)?;
            if conn.json {
                print_json(&answer);
            } else {
                if args.dry_run {
                    println!("dry run (nothing sent):");
                } else {
                    println!("rollout {} created and started", answer["id"]);
                }
                print_plan(&answer["plan"]);
                if !args.dry_run {
                    println!("  follow it: edgefleet rollout status {} --watch", answer["id"]);
                }
            }
        }
        RolloutCommand::List => {
            let list = client.get("/v1/rollouts")?;
            if conn.json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<4} {:<28} {:<8} {:<11} {:<8} {:<12} CREATED",
                "ID", "MODEL", "VERSION", "STATUS", "TARGETS", "BY"
            );
            for r in list.as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<4} {:<28} {:<8} {:<11} {:<8} {:<12} {}",
                    s(&r["id"]),
                    s(&r["model"]),
                    s(&r["version_seq"]),
                    s(&r["status"]).to_lowercase(),
                    s(&r["targets"]),
                    s(&r["created_by"]),
                    ms_ago(r["created_at_ms"].as_u64().unwrap_or(0))
                );
            }
        }
        RolloutCommand::Status { id, watch } => loop {
            let r = client.get(&format!("/v1/rollouts/{id}"))?;
            if conn.json {
                print_json(&r);
            } else {
                print_status(&r);
            }
            if !watch || terminal(&s(&r["status"])) {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            println!();
        },
        RolloutCommand::Pause(a) => op(conn, &client, "pause", a)?,
        RolloutCommand::Resume(a) => op(conn, &client, "resume", a)?,
        RolloutCommand::Abort(a) => op(conn, &client, "abort", a)?,
        RolloutCommand::Rollback(a) => op(conn, &client, "rollback", a)?,
        RolloutCommand::Promote { args, track } => {
            let r = client.post_json(
                &format!("/v1/rollouts/{}/promote", args.id),
                &json!({"reason": args.reason, "track": track}),
            )?;
            if conn.json {
                print_json(&r);
            } else {
                print_status(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn op(conn: &Conn, client: &Client, name: &str, args: OpArgs) -> Result<()> {
    let r = client.post_json(&format!("/v1/rollouts/{}/{name}", args.id), &json!({"reason": args.reason}))?;
    if conn.json {
        print_json(&r);
    } else {
        print_status(&r);
    }
    Ok(())
}

/// `edgefleet health`
pub(crate) fn health(conn: &Conn, device: Option<String>, model: Option<String>) -> Result<ExitCode> {
    let mut query = Vec::new();
    if let Some(d) = &device {
        query.push(format!("device={}", query_escape(d)));
    }
    if let Some(m) = &model {
        query.push(format!("model={}", query_escape(m)));
    }
    let list = conn.client().get(&format!("/v1/health?{}", query.join("&")))?;
    if conn.json {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let rows = list.as_array().cloned().unwrap_or_default();
    let mut by_state = std::collections::BTreeMap::new();
    println!("{:<24} {:<10} {:<28} WHY", "DEVICE", "STATE", "MODEL (inferences, p99)");
    for h in &rows {
        *by_state.entry(s(&h["state"])).or_insert(0) += 1;
        let models: Vec<String> = h["models"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        format!("{}@{} ({}, {}µs)", s(&m["model"]), m["version_seq"], m["inferences"], m["p99_us"])
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reasons: Vec<String> = h["reasons"].as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default();
        println!("{:<24} {:<10} {:<28} {}", s(&h["device"]), s(&h["state"]), models.join(" "), reasons.join("; "));
    }
    println!(
        "{} device(s): {}",
        rows.len(),
        by_state.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// `edgefleet audit ...`
pub(crate) fn audit(conn: &Conn, command: AuditCommand) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        AuditCommand::Verify => {
            let answer = client.get("/v1/audit/verify")?;
            if conn.json {
                print_json(&answer);
            }
            if answer["ok"].as_bool() == Some(true) {
                if !conn.json {
                    println!("audit chain intact: {} entries", answer["entries"]);
                }
                Ok(ExitCode::SUCCESS)
            } else {
                if !conn.json {
                    println!("audit chain BROKEN at entry {}: {}", answer["first_broken"], s(&answer["reason"]));
                }
                Ok(ExitCode::from(1))
            }
        }
        AuditCommand::List { from, limit } => {
            let entries = client.get(&format!("/v1/audit?from={from}&limit={limit}"))?;
            if conn.json {
                print_json(&entries);
                return Ok(ExitCode::SUCCESS);
            }
            for e in entries.as_array().cloned().unwrap_or_default() {
                println!(
                    "{:>5} {:<10} {:<14} {:<28} {:<16} {}",
                    s(&e["seq"]),
                    ms_ago(e["at_ms"].as_u64().unwrap_or(0)),
                    s(&e["actor"]),
                    s(&e["action"]),
                    s(&e["subject"]),
                    e["detail"]
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
