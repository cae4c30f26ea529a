//! The scheduler: runs one pipeline run's steps as a DAG (a step starts once every step it
//! references has succeeded), at most `concurrency` attempts at a time across all runs, with
//! the step cache, retries with backoff, timeouts and cancel. Every change to a step is written
//! to the run's record before the next thing happens, so a fleet manager killed mid-run finds
//! the run where it was ([`super::service`] resumes it).

use super::artifacts::{DirStore, ObjectStore};
use super::cache;
use super::executor::{Attempt, Executor, Job};
use super::record::{CacheEntry, PipelineVersion, RunRecord, RunStatus, StepRun, StepStatus};
use super::refs::{Reference, substitute};
use super::spec::{PipelineSpec, StepSpec};
use super::store::{PipelineStore, StoreError};
use edgefleet_protocol::Digest;
use edgefleet_protocol::time::unix_now_ms;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A built-in step's call: its `with` values substituted (paths for references to files).
#[derive(Debug, Clone)]
pub struct BuiltinCall {
    /// `package`, `evaluate`, `train-tabular`.
    pub uses: String,
    /// Its arguments.
    pub with: BTreeMap<String, String>,
    /// Where each declared output goes.
    pub outputs: BTreeMap<String, PathBuf>,
    /// A scratch directory (metrics.json is read from it afterwards).
    pub work: PathBuf,
    /// The step's log: what the built-in did, for `pipeline logs`.
    pub log: PathBuf,
    /// The run, for lineage.
    pub run: RunRecord,
}

/// What a built-in reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuiltinOutcome {
    /// The model version a `package` step registered (`name@seq`).
    pub package: Option<String>,
}

/// Future of a built-in step.
pub type BuiltinFuture<'a> = Pin<Box<dyn Future<Output = Result<BuiltinOutcome, String>> + Send + 'a>>;

/// Runs the built-in steps (`package` needs the model registry, so the fleet manager supplies
/// this; tests can supply their own).
pub trait Builtins: Send + Sync {
    /// Runs one built-in step to its end; an error fails the step with that reason.
    fn run(&self, call: BuiltinCall) -> BuiltinFuture<'_>;
}

/// Retry backoff: `base`, doubling, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Wait before the first retry.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Backoff {
    /// PIPELINES.md's: 1 s, 2 s, 4 s, ... at most 30 s.
    pub const DEFAULT: Backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(30) };

    /// The wait before retry `n` (from 1).
    pub fn before_retry(&self, n: u32) -> Duration {
        self.base.saturating_mul(1u32 << n.saturating_sub(1).min(16)).min(self.max)
    }
}

/// What the scheduler needs.
pub struct Runner<E: Executor> {
    /// Run records.
    pub store: Arc<PipelineStore>,
    /// Artifacts (outputs, inputs, code).
    pub artifacts: Arc<DirStore>,
    /// Where command steps run.
    pub executor: Arc<E>,
    /// The built-in steps.
    pub builtins: Arc<dyn Builtins>,
    /// Attempts running at once, across runs.
    pub slots: Arc<Semaphore>,
    /// Retry backoff.
    pub backoff: Backoff,
}

impl<E: Executor> Clone for Runner<E> {
    fn clone(&self) -> Self {
        Runner {
            store: self.store.clone(),
            artifacts: self.artifacts.clone(),
            executor: self.executor.clone(),
            builtins: self.builtins.clone(),
            slots: self.slots.clone(),
            backoff: self.backoff,
        }
    }
}

/// Where a step's files go inside its run's directory.
pub struct StepDirs {
    /// The step's directory.
    pub root: PathBuf,
}

impl StepDirs {
    /// For `step` of the run in `run_dir`.
    pub fn new(run_dir: &Path, step: &str) -> Self {
        StepDirs { root: run_dir.join("steps").join(step) }
    }
    /// Its working directory (a copy of the code snapshot).
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
    /// Where its outputs are written.
    pub fn output(&self, name: &str) -> PathBuf {
        self.root.join("outputs").join(name)
    }
    /// Standard output of its attempts.
    pub fn stdout(&self) -> PathBuf {
        self.root.join("stdout.log")
    }
    /// Standard error of its attempts.
    pub fn stderr(&self) -> PathBuf {
        self.root.join("stderr.log")
    }
    /// The running attempt's process group.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("pid")
    }
}

/// A finished step: its name, its record, the model version it registered.
type Ended = (String, StepRun, Option<String>);

impl<E: Executor> Runner<E> {
    /// Runs `run_id` (a stored run of a stored version) until it ends or `cancel` fires.
    /// Steps that already succeeded (a resumed run) are kept.
    pub async fn execute(&self, version: &PipelineVersion, run_id: &str, cancel: CancellationToken) -> RunRecord {
        match self.execute_inner(version, run_id, cancel).await {
            Ok(run) => run,
            Err(e) => self.finish(run_id, RunStatus::Failed, Some(format!("the run's records failed: {e}"))),
        }
    }

    fn finish(&self, run_id: &str, status: RunStatus, reason: Option<String>) -> RunRecord {
        let now = unix_now_ms();
        let finished = self.store.update_run(run_id, |r| {
            r.status = status;
            if reason.is_some() {
                // A success keeps what happened on the way (resumed after a restart).
                r.reason.clone_from(&reason);
            }
            r.finished_at_ms = Some(now);
            for step in r.steps.values_mut() {
                if !step.status.is_final() {
                    step.status = StepStatus::Skipped;
                    step.reason.get_or_insert_with(|| "not run: the run ended first".into());
                }
            }
        });
        match finished {
            Ok(run) => run,
            // The record cannot be written: answer what is known; the next start fails it.
            Err(_) => match self.store.run(run_id) {
                Ok(Some(mut run)) => {
                    run.status = status;
                    run.reason = reason;
                    run
                }
                _ => placeholder(run_id, status, reason),
            },
        }
    }

    async fn execute_inner(
        &self,
        version: &PipelineVersion,
        run_id: &str,
        cancel: CancellationToken,
    ) -> Result<RunRecord, StoreError> {
        let valid = match PipelineSpec::parse(&version.spec) {
            Ok(v) => v,
            Err(e) => {
                return Ok(self.finish(run_id, RunStatus::Failed, Some(format!("its spec no longer parses: {e}"))));
            }
        };
        let mut run = self.store.update_run(run_id, |r| {
            r.status = RunStatus::Running;
            for name in &valid.order {
                let step = r.steps.entry(name.clone()).or_insert_with(StepRun::pending);
                if step.status != StepStatus::Succeeded {
                    // A resumed run re-runs what had not finished; its attempts count on.
                    step.status = StepStatus::Pending;
                    step.finished_at_ms = None;
                }
            }
        })?;
        let run_dir = self.store.run_dir(run_id);
        let mut tasks = tokio::task::JoinSet::new();
        let mut running: usize = 0;
        let mut failure: Option<String> = None;
        loop {
            if failure.is_none() && !cancel.is_cancelled() {
                let ready: Vec<String> = valid
                    .order
                    .iter()
                    .filter(|s| run.steps[*s].status == StepStatus::Pending)
                    .filter(|s| valid.deps[*s].iter().all(|d| run.steps[d].status == StepStatus::Succeeded))
                    .cloned()
                    .collect();
                for name in ready {
                    run = self.store.update_run(run_id, |r| {
                        if let Some(s) = r.steps.get_mut(&name) {
                            s.status = StepStatus::Running;
                        }
                    })?;
                    let this = self.clone();
                    let (spec, snapshot, version, dirs) =
                        (valid.spec.steps[&name].clone(), run.clone(), version.clone(), StepDirs::new(&run_dir, &name));
                    let cancel = cancel.clone();
                    tasks.spawn(async move {
                        let (step, package) = this.run_step(&version, &snapshot, &name, &spec, &dirs, cancel).await;
                        (name, step, package)
                    });
                    running += 1;
                }
            }
            if running == 0 {
                break;
            }
            let Some(joined) = tasks.join_next().await else { break };
            running -= 1;
            let (name, step, package): Ended = match joined {
                Ok(ended) => ended,
                Err(e) => {
                    failure.get_or_insert(format!("a step's task failed: {e}"));
                    continue;
                }
            };
            if failure.is_none() && !matches!(step.status, StepStatus::Succeeded | StepStatus::Cancelled) {
                failure = Some(failure_reason(&name, &step));
            }
            run = self.store.update_run(run_id, |r| {
                if package.is_some() {
                    r.package.clone_from(&package);
                }
                r.steps.insert(name.clone(), step.clone());
            })?;
        }
        let (status, reason) = if let Some(reason) = failure {
            (RunStatus::Failed, Some(reason))
        } else if cancel.is_cancelled() && run.steps.values().any(|s| s.status != StepStatus::Succeeded) {
            (RunStatus::Cancelled, Some("cancelled".to_string()))
        } else {
            (RunStatus::Succeeded, None)
        };
        Ok(self.finish(run_id, status, reason))
    }

    /// Runs one step to its end (from the cache when it can); returns its final record.
    async fn run_step(
        &self,
        version: &PipelineVersion,
        run: &RunRecord,
        name: &str,
        spec: &StepSpec,
        dirs: &StepDirs,
        cancel: CancellationToken,
    ) -> (StepRun, Option<String>) {
        let mut step = run.steps.get(name).cloned().unwrap_or_else(StepRun::pending);
        step.reason = None;
        step.exit_code = None;
        let now = unix_now_ms();
        step.started_at_ms.get_or_insert(now);
        let kind = if spec.uses.is_some() { "builtin" } else { self.executor.kind() };
        let key = cache::step_key(kind, &version.code_digest, run, spec);
        step.cache_key = key.as_ref().ok().copied();
        let key = match key {
            Ok(k) => k,
            Err(e) => return (self.end(step, StepStatus::Failed, Some(e)), None),
        };
        if spec.cache
            && let Ok(Some(hit)) = self.store.cached(&key)
            // Re-hashed, not only present: a damaged artifact is re-made, never reused.
            && hit.outputs.values().all(|d| {
                super::artifacts::digest_file(&self.artifacts.path_of(d)).is_ok_and(|found| found == *d)
            })
        {
            step.status = StepStatus::Succeeded;
            step.cached = true;
            step.cached_from = Some(hit.run.clone());
            step.outputs = hit.outputs;
            step.metrics = hit.metrics;
            step.finished_at_ms = Some(unix_now_ms());
            return (step, hit.package);
        }
        step.cached = false;
        step.cached_from = None;
        if let Err(e) = self.prepare(version, spec, dirs) {
            return (self.end(step, StepStatus::Failed, Some(format!("preparing its working directory: {e}"))), None);
        }
        let values = |r: &Reference| self.value(run, dirs, r);
        let substituted = |text: &str| substitute(text, values);
        let mut package = None;
        if let Some(uses) = &spec.uses {
            let mut with = BTreeMap::new();
            for (k, v) in &spec.with {
                match substituted(&v.0) {
                    Ok(text) => with.insert(k.clone(), text),
                    Err(e) => return (self.end(step, StepStatus::Failed, Some(e)), None),
                };
            }
            let call = BuiltinCall {
                uses: uses.clone(),
                with,
                outputs: spec.outputs.iter().map(|o| (o.clone(), dirs.output(o))).collect(),
                work: dirs.work(),
                log: dirs.stdout(),
                run: run.clone(),
            };
            let Ok(_permit) = self.slots.acquire().await else {
                return (self.end(step, StepStatus::Cancelled, Some("the scheduler stopped".into())), None);
            };
            step.attempts += 1;
            match self.builtins.run(call).await {
                Ok(outcome) => package = outcome.package,
                Err(reason) => {
                    append_line(&dirs.stderr(), &reason);
                    return (self.end(step, StepStatus::Failed, Some(reason)), None);
                }
            }
        } else {
            let mut argv = Vec::new();
            for arg in spec.run.iter().flatten() {
                match substituted(&arg.0) {
                    Ok(text) => argv.push(text),
                    Err(e) => return (self.end(step, StepStatus::Failed, Some(e)), None),
                }
            }
            // A relative program path names a file of the snapshot, not of the fleet's cwd.
            if let Some(program) = argv.first_mut()
                && program.contains('/')
                && Path::new(program.as_str()).is_relative()
            {
                *program = dirs.work().join(&*program).to_string_lossy().into_owned();
            }
            let mut env: BTreeMap<String, String> = BTreeMap::new();
            env.insert("PATH".into(), std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()));
            env.insert("HOME".into(), dirs.work().to_string_lossy().into_owned());
            env.insert("LANG".into(), "C.UTF-8".into());
            env.insert("EDGEFLEET_RUN_ID".into(), run.id.clone());
            env.insert("EDGEFLEET_STEP".into(), name.to_string());
            for (k, v) in &spec.env {
                match substituted(&v.0) {
                    Ok(text) => env.insert(k.clone(), text),
                    Err(e) => return (self.end(step, StepStatus::Failed, Some(e)), None),
                };
            }
            let timeout = spec
                .timeout
                .as_deref()
                .and_then(|t| crate::rollout::plan::parse_duration_ms(t).ok())
                .map(Duration::from_millis);
            let job = Job {
                argv,
                cwd: dirs.work(),
                env,
                stdout: dirs.stdout(),
                stderr: dirs.stderr(),
                timeout,
                pid_file: Some(dirs.pid_file()),
            };
            let mut retries_left = spec.retries;
            loop {
                let attempt = {
                    let Ok(_permit) = self.slots.acquire().await else {
                        return (self.end(step, StepStatus::Cancelled, Some("the scheduler stopped".into())), None);
                    };
                    step.attempts += 1;
                    self.note_attempt(&run.id, name, step.attempts);
                    append_line(&dirs.stderr(), &format!("--- edgefleet: attempt {} ---", step.attempts));
                    self.executor.run(job.clone(), cancel.clone()).await
                };
                let _ = std::fs::remove_file(dirs.pid_file());
                match attempt {
                    Attempt::Exited(0) => break,
                    Attempt::Exited(code) | Attempt::Signalled(code) => {
                        let exited = matches!(attempt, Attempt::Exited(_));
                        step.exit_code = exited.then_some(code);
                        let what =
                            if exited { format!("exit code {code}") } else { format!("killed by signal {code}") };
                        if retries_left == 0 || cancel.is_cancelled() {
                            let reason = format!("{what} after {} attempt(s)", step.attempts);
                            return (self.end(step, StepStatus::Failed, Some(reason)), None);
                        }
                        retries_left -= 1;
                        let wait = self.backoff.before_retry(spec.retries - retries_left);
                        append_line(
                            &dirs.stderr(),
                            &format!("--- edgefleet: {what}; retrying in {:.1} s ---", wait.as_secs_f64()),
                        );
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = cancel.cancelled() => {
                                return (self.end(step, StepStatus::Cancelled, Some("cancelled".into())), None);
                            }
                        }
                    }
                    Attempt::TimedOut => {
                        let limit = spec.timeout.clone().unwrap_or_default();
                        let reason = format!("ran past its timeout of {limit}; its process group was killed");
                        append_line(&dirs.stderr(), &format!("--- edgefleet: {reason} ---"));
                        return (self.end(step, StepStatus::TimedOut, Some(reason)), None);
                    }
                    Attempt::Cancelled => {
                        return (self.end(step, StepStatus::Cancelled, Some("cancelled".into())), None);
                    }
                    Attempt::CannotStart(reason) => {
                        append_line(&dirs.stderr(), &format!("--- edgefleet: {reason} ---"));
                        return (self.end(step, StepStatus::Failed, Some(reason)), None);
                    }
                }
            }
        }
        match self.collect(spec, dirs) {
            Ok((outputs, metrics)) => {
                step.outputs = outputs;
                step.metrics = metrics;
            }
            Err(reason) => {
                append_line(&dirs.stderr(), &format!("--- edgefleet: {reason} ---"));
                return (self.end(step, StepStatus::Failed, Some(reason)), None);
            }
        }
        if spec.cache {
            let entry = CacheEntry {
                outputs: step.outputs.clone(),
                metrics: step.metrics.clone(),
                run: run.id.clone(),
                package: package.clone(),
            };
            // A cache that cannot be written costs a re-run later, not this run.
            let _ = self.store.put_cached(&key, &entry);
        }
        (self.end(step, StepStatus::Succeeded, None), package)
    }

    fn note_attempt(&self, run_id: &str, step: &str, attempts: u32) {
        let now = unix_now_ms();
        let _ = self.store.update_run(run_id, |r| {
            if let Some(s) = r.steps.get_mut(step) {
                s.status = StepStatus::Running;
                s.attempts = attempts;
                s.started_at_ms.get_or_insert(now);
            }
        });
    }

    fn end(&self, mut step: StepRun, status: StepStatus, reason: Option<String>) -> StepRun {
        step.status = status;
        step.reason = reason;
        step.finished_at_ms = Some(unix_now_ms());
        step
    }

    /// Lays the code snapshot out as the step's working directory and makes its outputs' one.
    fn prepare(&self, version: &PipelineVersion, spec: &StepSpec, dirs: &StepDirs) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let work = dirs.work();
        if work.exists() {
            // A fresh copy for every (re)started step: a crashed attempt's leftovers go.
            std::fs::remove_dir_all(&work)?;
        }
        std::fs::create_dir_all(&work)?;
        if spec.uses.is_none() {
            for file in &version.code {
                let to = work.join(&file.path);
                self.artifacts.get_file(&file.digest, &to)?;
                let mode = if file.executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))?;
            }
        }
        let outputs = dirs.root.join("outputs");
        if outputs.exists() {
            std::fs::remove_dir_all(&outputs)?;
        }
        std::fs::create_dir_all(outputs)?;
        Ok(())
    }

    /// The value a reference takes in this step.
    fn value(&self, run: &RunRecord, dirs: &StepDirs, r: &Reference) -> Option<String> {
        let path = |d: &Digest| self.artifacts.path_of(d).to_string_lossy().into_owned();
        match r {
            Reference::Param(p) => run.params.get(p).cloned(),
            Reference::Input(i) => run.inputs.get(i).map(|input| path(&input.digest)),
            Reference::Output(o) => Some(dirs.output(o).to_string_lossy().into_owned()),
            Reference::StepOutput { step: s, output } => run.steps.get(s).and_then(|s| s.outputs.get(output)).map(path),
            Reference::RunNumber => Some(run.number.to_string()),
            Reference::RunId => Some(run.id.clone()),
        }
    }

    /// Stores the step's outputs as artifacts and reads its metrics.
    #[allow(clippy::type_complexity)]
    fn collect(
        &self,
        spec: &StepSpec,
        dirs: &StepDirs,
    ) -> Result<(BTreeMap<String, Digest>, BTreeMap<String, f64>), String> {
        let mut outputs = BTreeMap::new();
        for name in &spec.outputs {
            let path = dirs.output(name);
            if !path.is_file() {
                return Err(format!("it exited 0 but did not write its output {name:?} (at {})", path.display()));
            }
            let digest = self.artifacts.put_file(&path).map_err(|e| format!("storing output {name:?}: {e}"))?;
            outputs.insert(name.clone(), digest);
        }
        let metrics_path = dirs.work().join("metrics.json");
        let metrics = if metrics_path.is_file() {
            let bytes = std::fs::read(&metrics_path).map_err(|e| format!("reading metrics.json: {e}"))?;
            read_metrics(&bytes)?
        } else {
            BTreeMap::new()
        };
        Ok((outputs, metrics))
    }
}

/// The numbers of a `metrics.json` (nested objects flatten to `a.b`; other values are not
/// metrics and are left out).
pub fn read_metrics(bytes: &[u8]) -> Result<BTreeMap<String, f64>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("metrics.json is not JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("metrics.json must be a JSON object of numbers".into());
    };
    let mut out = BTreeMap::new();
    fn walk(prefix: &str, map: &serde_json::Map<String, serde_json::Value>, out: &mut BTreeMap<String, f64>) {
        for (k, v) in map {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                serde_json::Value::Number(n) => {
                    if let Some(f) = n.as_f64() {
                        out.insert(key, f);
                    }
                }
                serde_json::Value::Object(inner) => walk(&key, inner, out),
                _ => {}
            }
        }
    }
    walk("", &map, &mut out);
    Ok(out)
}

fn append_line(path: &Path, line: &str) {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

fn failure_reason(name: &str, step: &StepRun) -> String {
    let why = step.reason.clone().unwrap_or_else(|| step.status.word().to_string());
    match step.status {
        StepStatus::TimedOut => format!("step {name} timed out: {why}"),
        _ => format!("step {name} failed: {why}"),
    }
}

fn placeholder(id: &str, status: RunStatus, reason: Option<String>) -> RunRecord {
    RunRecord {
        id: id.to_string(),
        pipeline: String::new(),
        version: 0,
        number: 0,
        spec_digest: Digest([0; 32]),
        code_digest: Digest([0; 32]),
        params: BTreeMap::new(),
        inputs: BTreeMap::new(),
        executor: String::new(),
        status,
        reason,
        steps: BTreeMap::new(),
        package: None,
        created_at_ms: 0,
        finished_at_ms: None,
        started_by: String::new(),
        resumed: 0,
    }
}
