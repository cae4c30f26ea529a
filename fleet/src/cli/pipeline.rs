//! `edgefleet pipeline ...`: training pipelines (fleet/PIPELINES.md), scheduled by the fleet
//! manager. `validate` works offline; everything else asks `edgefleet serve`.

use super::{Conn, EXIT_FAILED, ms_ago, print_json};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use edgefleet::api::pipelines::{
    LogChunk, PipelineDetail, PipelineSummary, PipelineVersion, RegisterRequest, RegisterResponse, RunRecord,
    RunRequest, RunStatus, StepStatus, UploadFile,
};
use edgefleet::client::{Client, query_escape};
use edgefleet::pipeline::{PipelineSpec, artifacts};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `edgefleet pipeline ...`
#[derive(Debug, Subcommand)]
pub(crate) enum PipelineCommand {
    /// Check a pipeline spec (YAML): its shape, names, references, built-ins and that its steps
    /// form no cycle; prints the order its steps would run in. Bad specs are refused with the
    /// line and the reason. Needs no fleet manager.
    Validate {
        /// The spec file.
        file: PathBuf,
    },
    /// Register a spec with a snapshot of its directory (content-addressed). Unchanged spec
    /// and code give back the version registered before.
    Register {
        /// The spec file.
        file: PathBuf,
    },
    /// Registered pipelines and their newest run.
    List,
    /// A pipeline's versions (digests, files) and its newest spec.
    Show {
        /// Pipeline name.
        name: String,
    },
    /// Differences between two specs: NAME[@VERSION] (registered) or a spec file.
    Diff {
        /// First spec.
        a: String,
        /// Second spec.
        b: String,
    },
    /// Run a registered pipeline (NAME) or a spec file (registered first). `pipeline run show
    /// ID` shows a run.
    Run {
        /// Pipeline name or spec file (or `show`, followed by a run id).
        target: String,
        /// With `show`: the run id.
        id: Option<String>,
        /// Override a param: `--param epochs=50` (repeatable).
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        /// Run this registered version instead of the newest.
        #[arg(long)]
        version: Option<u64>,
        /// Wait for the run to end, printing each step as it ends; exit 1 unless it succeeds.
        #[arg(long)]
        wait: bool,
    },
    /// Runs side by side: status, steps, duration and metrics.
    Runs {
        /// Only this pipeline's runs.
        #[arg(long)]
        name: Option<String>,
        /// Show this metric (repeatable; `step.metric` or `metric`, from any step).
        #[arg(long = "metric")]
        metrics: Vec<String>,
    },
    /// A step's output: its standard output and standard error.
    Logs {
        /// Run id.
        run: String,
        /// Step name.
        step: String,
        /// Keep printing as the step writes, until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a run: its running steps' process groups are killed.
    Cancel {
        /// Run id.
        run: String,
    },
}

/// Runs a `pipeline` subcommand.
pub(crate) fn run(conn: &Conn, command: PipelineCommand) -> Result<ExitCode> {
    let json = conn.json;
    match command {
        PipelineCommand::Validate { file } => validate(&file, json),
        PipelineCommand::Register { file } => {
            let answer = register(&conn.client(), &file)?;
            if json {
                print_json(&answer);
            } else {
                let v = &answer.version;
                let how = if answer.new { "registered" } else { "unchanged: already registered as" };
                println!("{how} {}@{} ({} files)", v.name, v.version, v.code.len());
                println!("  spec  sha256:{}", v.spec_digest);
                println!("  code  sha256:{}", v.code_digest);
            }
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::List => {
            let list: Vec<PipelineSummary> = conn.client().get("/v1/pipelines")?;
            if json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<28} {:<8} {:<6} {:<28} SPEC", "PIPELINE", "VERSION", "RUNS", "LAST RUN");
            for p in &list {
                let last = match (&p.last_run, p.last_status) {
                    (Some(id), Some(status)) => format!("{id} {}", status.word()),
                    _ => "-".into(),
                };
                println!("{:<28} {:<8} {:<6} {last:<28} {}", p.name, p.latest, p.runs, &p.spec_digest[..16]);
            }
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Show { name } => {
            let detail: PipelineDetail = conn.client().get(&format!("/v1/pipelines/{}", query_escape(&name)))?;
            if json {
                print_json(&detail);
                return Ok(ExitCode::SUCCESS);
            }
            for v in &detail.versions {
                println!(
                    "{}@{}  registered by {} {}  spec sha256:{}  code sha256:{} ({} files)",
                    v.name,
                    v.version,
                    v.registered_by,
                    ms_ago(v.registered_at_ms),
                    &v.spec_digest.to_hex()[..16],
                    &v.code_digest.to_hex()[..16],
                    v.code.len()
                );
            }
            if let Some(latest) = detail.versions.last() {
                println!("\n# {} ({}@{})", latest.spec_file, latest.name, latest.version);
                print!("{}", latest.spec);
            }
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Diff { a, b } => {
            let client = conn.client();
            let (left, right) = (spec_text(&client, &a)?, spec_text(&client, &b)?);
            let lines = diff_lines(&left, &right);
            if json {
                print_json(&json!({"a": a, "b": b, "same": lines.iter().all(|l| l.starts_with(' ')), "diff": lines}));
            } else {
                println!("--- {a}\n+++ {b}");
                for line in &lines {
                    println!("{line}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Run { target, id: Some(id), .. } if target == "show" => {
            let run: RunRecord = conn.client().get(&format!("/v1/runs/{}", query_escape(&id)))?;
            if json {
                print_json(&run);
            } else {
                print_run(&conn.client(), &run);
            }
            Ok(if run.status == RunStatus::Failed { ExitCode::from(EXIT_FAILED) } else { ExitCode::SUCCESS })
        }
        PipelineCommand::Run { target, id: Some(extra), .. } => {
            bail!("unexpected {extra:?} after {target:?} (`pipeline run NAME|FILE` or `pipeline run show ID`)")
        }
        PipelineCommand::Run { target, id: None, params, version, wait } => {
            let client = conn.client();
            let mut overrides = BTreeMap::new();
            for p in params {
                let (k, v) = p.split_once('=').with_context(|| format!("--param {p:?}: expected KEY=VALUE"))?;
                overrides.insert(k.trim().to_string(), v.to_string());
            }
            let path = Path::new(&target);
            let name = if path.is_file() {
                let registered = register(&client, path)?;
                if !json {
                    let v = &registered.version;
                    let how = if registered.new { "registered" } else { "unchanged" };
                    println!("{} {how}: {}@{}", path.display(), v.name, v.version);
                }
                registered.version.name
            } else {
                target
            };
            let request = RunRequest { version, params: overrides };
            let started: RunRecord =
                client.post_json(&format!("/v1/pipelines/{}/runs", query_escape(&name)), &request)?;
            if !wait {
                if json {
                    print_json(&started);
                } else {
                    println!("started run {} ({}@{})", started.id, started.pipeline, started.version);
                    println!("  edgefleet pipeline run show {}", started.id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !json {
                println!("run {} ({}@{}) started", started.id, started.pipeline, started.version);
            }
            let run = wait_for(&client, &started.id, !json)?;
            if json {
                print_json(&run);
            } else {
                print_run(&client, &run);
            }
            Ok(if run.status == RunStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
        }
        PipelineCommand::Runs { name, metrics } => {
            let path = match &name {
                Some(n) => format!("/v1/runs?pipeline={}", query_escape(n)),
                None => "/v1/runs".into(),
            };
            let runs: Vec<RunRecord> = conn.client().get(&path)?;
            if json {
                print_json(&runs);
                return Ok(ExitCode::SUCCESS);
            }
            print_runs(&runs, &metrics);
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Logs { run, step, follow } => {
            logs(&conn.client(), &run, &step, follow)?;
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Cancel { run } => {
            let answer: RunRecord =
                conn.client().post_json(&format!("/v1/runs/{}/cancel", query_escape(&run)), &json!({}))?;
            if json {
                print_json(&answer);
            } else {
                println!("cancelling run {} (was {})", answer.id, answer.status.word());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn validate(file: &Path, json: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let valid = PipelineSpec::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if json {
        print_json(&json!({"valid": true, "name": valid.spec.name, "order": valid.order, "deps": valid.deps}));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: pipeline {} is valid: {} step(s), in order {}",
        file.display(),
        valid.spec.name,
        valid.order.len(),
        valid.order.join(" → ")
    );
    for step in &valid.order {
        let deps = &valid.deps[step];
        let after = if deps.is_empty() {
            "first".to_string()
        } else {
            format!("after {}", deps.iter().cloned().collect::<Vec<_>>().join(", "))
        };
        let s = &valid.spec.steps[step];
        let what = match (&s.run, &s.uses) {
            (_, Some(uses)) => format!("built-in {uses}"),
            (Some(run), None) => run.iter().map(|a| a.0.as_str()).collect::<Vec<_>>().join(" "),
            (None, None) => String::new(),
        };
        println!("  {step:<16} {after}: {what}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Largest spec directory `register` uploads.
const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;

/// The files of a spec's directory ([`artifacts::list_files`]), read for upload.
fn snapshot(dir: &Path) -> Result<Vec<UploadFile>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut total = 0u64;
    for rel in artifacts::list_files(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = dir.join(&rel);
        let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        total += meta.len();
        if total > MAX_SNAPSHOT_BYTES {
            bail!(
                "{}: the spec's directory holds more than {} MiB; keep data in datasets (`edgefleet dataset create`) and the directory for code",
                dir.display(),
                MAX_SNAPSHOT_BYTES >> 20
            );
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        out.push(UploadFile { path: rel, hex: hex::encode(bytes), executable: meta.permissions().mode() & 0o111 != 0 });
    }
    Ok(out)
}

fn register(client: &Client, file: &Path) -> Result<RegisterResponse> {
    let spec = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    // Refused here with the line, before anything is uploaded.
    PipelineSpec::parse(&spec).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let spec_file = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let request = RegisterRequest { spec_file, spec, files: snapshot(dir)? };
    Ok(client.post_json("/v1/pipelines", &request)?)
}

fn spec_text(client: &Client, what: &str) -> Result<String> {
    if Path::new(what).is_file() {
        return std::fs::read_to_string(what).with_context(|| format!("reading {what}"));
    }
    let (name, version) = match what.split_once('@') {
        Some((n, v)) => (n, Some(v.parse::<u64>().with_context(|| format!("{what}: expected NAME@VERSION"))?)),
        None => (what, None),
    };
    let detail: PipelineDetail = client.get(&format!("/v1/pipelines/{}", query_escape(name)))?;
    let chosen: Option<&PipelineVersion> = match version {
        Some(v) => detail.versions.iter().find(|x| x.version == v),
        None => detail.versions.last(),
    };
    chosen.map(|v| v.spec.clone()).with_context(|| format!("pipeline {name} has no version {}", version.unwrap_or(0)))
}

/// A line diff (longest common subsequence): `  ` same, `- ` only in `a`, `+ ` only in `b`.
pub(crate) fn diff_lines(a: &str, b: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

fn wait_for(client: &Client, id: &str, progress: bool) -> Result<RunRecord> {
    let mut printed: BTreeMap<String, StepStatus> = BTreeMap::new();
    loop {
        let run: RunRecord = client.get(&format!("/v1/runs/{}", query_escape(id)))?;
        if progress {
            for (name, step) in in_run_order(&run) {
                let shown = printed.get(name).copied();
                if step.status.is_final() && shown != Some(step.status) && step.status != StepStatus::Skipped {
                    println!("  {name:<16} {}", step_words(step));
                    printed.insert(name.clone(), step.status);
                }
            }
        }
        if run.status.is_final() {
            return Ok(run);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn step_words(step: &edgefleet::api::pipelines::StepRun) -> String {
    let mut words = vec![if step.cached { "cached".to_string() } else { step.status.word().to_string() }];
    if step.attempts > 1 {
        words.push(format!("{} attempts", step.attempts));
    }
    if let Some(ms) = step.duration_ms(edgefleet_protocol::time::unix_now_ms()) {
        words.push(format!("{:.1} s", ms as f64 / 1000.0));
    }
    if let Some(reason) = &step.reason {
        words.push(reason.clone());
    }
    words.join(", ")
}

fn print_run(client: &Client, run: &RunRecord) {
    let now = edgefleet_protocol::time::unix_now_ms();
    let took = run.finished_at_ms.unwrap_or(now).saturating_sub(run.created_at_ms);
    println!(
        "run {} of {}@{}: {} ({:.1} s, {} executor, started by {})",
        run.id,
        run.pipeline,
        run.version,
        run.status.word(),
        took as f64 / 1000.0,
        run.executor,
        run.started_by
    );
    if let Some(reason) = &run.reason {
        println!("  {reason}");
    }
    println!("  spec sha256:{}  code sha256:{}", run.spec_digest, run.code_digest);
    for (name, input) in &run.inputs {
        println!("  input {name}: {} sha256:{}", input.source, input.digest);
    }
    if let Some(p) = &run.package {
        println!("  package {p}");
    }
    println!("  {:<16} {:<10} {:<8} {:<8} {:<9} OUTPUTS", "STEP", "STATUS", "CACHED", "ATTEMPTS", "TIME");
    for (name, step) in in_run_order(run) {
        let time = step.duration_ms(now).map_or("-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
        let outputs: Vec<String> = step.outputs.iter().map(|(k, d)| format!("{k}={}", &d.to_hex()[..12])).collect();
        println!(
            "  {name:<16} {:<10} {:<8} {:<8} {time:<9} {}",
            step.status.word(),
            if step.cached { "yes" } else { "no" },
            step.attempts,
            outputs.join(" ")
        );
        if let Some(reason) = &step.reason {
            println!("  {:<16} {reason}", "");
        }
    }
    if let Some((name, _)) = run.failed_step() {
        // The failed step's own words: the end of its log.
        for stream in ["stdout", "stderr"] {
            let path = format!("/v1/runs/{}/steps/{}/logs?stream={stream}", query_escape(&run.id), query_escape(name));
            if let Ok(chunk) = client.get::<LogChunk>(&path) {
                let tail: Vec<&str> = chunk.text.lines().collect();
                if !tail.is_empty() {
                    println!("  --- {name} {stream} (last lines) ---");
                    for line in &tail[tail.len().saturating_sub(20)..] {
                        println!("  {line}");
                    }
                }
            }
        }
    }
}

/// Steps in the order they started (those that never did last, by name).
fn in_run_order(run: &RunRecord) -> Vec<(&String, &edgefleet::api::pipelines::StepRun)> {
    let mut steps: Vec<_> = run.steps.iter().collect();
    steps.sort_by_key(|(name, s)| (s.started_at_ms.unwrap_or(u64::MAX), name.to_string()));
    steps
}

fn print_runs(runs: &[RunRecord], metrics: &[String]) {
    let now = edgefleet_protocol::time::unix_now_ms();
    let mut header = format!("{:<28} {:<10} {:<8} {:<12} {:<9}", "RUN", "STATUS", "VERSION", "STEPS", "TIME");
    for m in metrics {
        header.push_str(&format!(" {m:<14}"));
    }
    println!("{header}");
    for run in runs {
        let done = run.steps.values().filter(|s| s.status == StepStatus::Succeeded).count();
        let cached = run.steps.values().filter(|s| s.cached).count();
        let steps = format!("{done}/{} ({cached}c)", run.steps.len());
        let took = run.finished_at_ms.unwrap_or(now).saturating_sub(run.created_at_ms);
        let mut line = format!(
            "{:<28} {:<10} {:<8} {steps:<12} {:<9}",
            run.id,
            run.status.word(),
            run.version,
            format!("{:.1} s", took as f64 / 1000.0)
        );
        for m in metrics {
            line.push_str(&format!(" {:<14}", metric(run, m).map_or("-".into(), |v| format!("{v:.4}"))));
        }
        println!("{line}");
    }
}

/// `step.metric`, or `metric` from the first step (in name order) that has it.
fn metric(run: &RunRecord, name: &str) -> Option<f64> {
    if let Some((step, m)) = name.split_once('.')
        && let Some(v) = run.steps.get(step).and_then(|s| s.metrics.get(m))
    {
        return Some(*v);
    }
    run.steps.values().find_map(|s| s.metrics.get(name).copied())
}

fn logs(client: &Client, run: &str, step: &str, follow: bool) -> Result<()> {
    use std::io::Write;
    let mut offsets = [0u64, 0u64];
    loop {
        let mut complete = true;
        for (i, stream) in ["stdout", "stderr"].iter().enumerate() {
            let path = format!(
                "/v1/runs/{}/steps/{}/logs?stream={stream}&offset={}",
                query_escape(run),
                query_escape(step),
                offsets[i]
            );
            let chunk: LogChunk = client.get(&path)?;
            offsets[i] = chunk.next_offset;
            complete &= chunk.complete;
            if i == 0 {
                print!("{}", chunk.text);
                let _ = std::io::stdout().flush();
            } else {
                eprint!("{}", chunk.text);
            }
        }
        if !follow || complete {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `edgefleet lineage MODEL@SEQ | dataset NAME@V`.
pub(crate) fn lineage(conn: &Conn, target: &str, dataset: Option<&str>) -> Result<ExitCode> {
    use edgefleet::api::lineage::{DatasetLineage, ModelLineage};
    let client = conn.client();
    if target == "dataset" {
        let Some(what) = dataset else { bail!("`lineage dataset NAME@VERSION`: which dataset?") };
        let (name, version) = what.split_once('@').unwrap_or((what, "latest"));
        let answer: DatasetLineage =
            client.get(&format!("/v1/lineage/datasets/{}/{}", query_escape(name), query_escape(version)))?;
        if conn.json {
            print_json(&answer);
        } else {
            println!("dataset {}@{} sha256:{}", answer.dataset, answer.version, answer.digest);
            if answer.runs.is_empty() {
                println!("  no run has read it");
            }
            for r in &answer.runs {
                println!(
                    "  run {} ({}): {} → {}",
                    r.run,
                    r.pipeline,
                    r.status.word(),
                    r.package.as_deref().unwrap_or("no package")
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(extra) = dataset {
        bail!("unexpected {extra:?} after {target:?} (`lineage MODEL@SEQ` or `lineage dataset NAME@V`)");
    }
    let (name, seq) = target
        .split_once('@')
        .and_then(|(n, s)| s.parse::<u64>().ok().map(|s| (n, s)))
        .with_context(|| format!("{target:?}: expected MODEL@SEQ, e.g. vibration-mlp@3"))?;
    let l: ModelLineage = client.get(&format!("/v1/lineage/models/{}/{seq}", query_escape(name)))?;
    if conn.json {
        print_json(&l);
    } else {
        println!("{}@{} ({}) package {}", l.model, l.version_seq, l.label, l.package_id);
        println!("  signed by key {}, pushed by {}", l.key_id, l.pushed_by);
        if let Some(parent) = l.parent_version_seq {
            println!("  derived from {}@{parent}", l.model);
        }
        match &l.run {
            Some(run) => {
                println!("  built by run {} of {}@{} ({})", run.id, run.pipeline, run.version, run.status.word());
                for (k, v) in &run.params {
                    println!("    param {k} = {v}");
                }
                for (k, input) in &run.inputs {
                    let dataset =
                        input.dataset.as_ref().map(|d| format!(" = {}@{}", d.name, d.version)).unwrap_or_default();
                    println!("    input {k}: {}{dataset}", input.source);
                }
            }
            None => println!("  no pipeline run: pushed by hand"),
        }
        for r in &l.rollouts {
            println!("  rollout {}: {} to {} device(s)", r.id, r.status.words(), r.targets);
        }
        println!(
            "  running on {} device(s) now{}",
            l.devices.len(),
            if l.devices.is_empty() { String::new() } else { format!(": {}", l.devices.join(", ")) }
        );
        println!("  checks:");
        for c in &l.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            let detail = c.detail.as_deref().map(|d| format!(" — {d}")).unwrap_or_default();
            println!("    {mark} {} sha256:{}{detail}", c.what, c.digest.get(..16).unwrap_or(&c.digest));
        }
        println!("  {}", if l.verified { "verified: every digest matches the stored content" } else { "NOT VERIFIED" });
    }
    Ok(if l.verified { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
}

#[cfg(test)]
mod tests {
    use super::diff_lines;

    #[test]
    fn a_line_diff_marks_what_changed() {
        assert_eq!(diff_lines("a\nb\nc\n", "a\nx\nc\n"), vec!["  a", "- b", "+ x", "  c"]);
        assert_eq!(diff_lines("", "a"), vec!["+ a"]);
        assert!(diff_lines("a\nb", "a\nb").iter().all(|l| l.starts_with("  ")));
    }
}
