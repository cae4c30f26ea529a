//! The pipeline service inside `edgefleet serve`: registers pipeline versions (spec and code,
//! content-addressed), starts runs (inputs resolved to content first), cancels them, answers
//! reads, and at start-up picks up the runs a stopped fleet manager left unfinished. It sits
//! beside the core, not in it: it reaches the audit chain and the model registry only through
//! the seams it is given ([`AuditSink`], [`Builtins`](super::runner::Builtins), [`DatasetLookup`]).

use super::artifacts::{DirStore, ObjectStore};
use super::executor::{Executor, kill_leftover};
use super::record::{CodeFile, DatasetRef, PipelineVersion, RunInput, RunRecord, RunStatus, StepRun, StepStatus};
use super::runner::{Runner, StepDirs};
use super::spec::{InputSource, PipelineSpec, SpecError, valid_name};
use super::store::{PipelineStore, StoreError};
use edgefleet_protocol::Digest;
use edgefleet_protocol::time::unix_now_ms;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Why a pipeline request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The spec does not validate.
    #[error("{file}: {error}")]
    Spec {
        /// The spec's file name.
        file: String,
        /// Line and reason.
        error: SpecError,
    },
    /// No pipeline of that name.
    #[error("unknown pipeline {name:?}; `edgefleet pipeline list` shows the registered ones")]
    UnknownPipeline {
        /// The name asked for.
        name: String,
    },
    /// No such version.
    #[error("pipeline {name} has versions 1..{latest}, not {version}")]
    UnknownVersion {
        /// Pipeline.
        name: String,
        /// Asked for.
        version: u64,
        /// The newest.
        latest: u64,
    },
    /// No run of that id.
    #[error("unknown run {id:?}; `edgefleet pipeline runs` lists them")]
    UnknownRun {
        /// The id asked for.
        id: String,
    },
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The run has already ended.
    #[error("run {id} has already {status}")]
    Ended {
        /// Run.
        id: String,
        /// How it ended.
        status: &'static str,
    },
    /// Records or artifacts could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An artifact could not be stored or read.
    #[error("artifact store: {0}")]
    Artifacts(std::io::Error),
}

/// Entries for the audit chain (the fleet manager's goes through its core).
pub trait AuditSink: Send + Sync {
    /// Records one action.
    fn record(&self, actor: &str, action: &str, subject: String, detail: Value);
}

/// Resolves `dataset:NAME@VERSION` inputs.
pub trait DatasetLookup: Send + Sync {
    /// The dataset version and the digest of its data file (an artifact).
    fn resolve(&self, name: &str, version: &str) -> Result<(DatasetRef, Digest), String>;
}

/// A file to register with a spec.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// Relative path (`/`-separated).
    pub path: String,
    /// Content.
    pub bytes: Vec<u8>,
    /// Executable bit.
    pub executable: bool,
}

/// Most resumes of one run after restarts (a step that crashes the fleet manager each time
/// must not crash it forever).
pub const MAX_RESUMES: u32 = 3;

/// The service.
pub struct PipelineService<E: Executor> {
    store: Arc<PipelineStore>,
    artifacts: Arc<DirStore>,
    runner: Runner<E>,
    audit: Arc<dyn AuditSink>,
    datasets: Arc<dyn DatasetLookup>,
    active: Mutex<HashMap<String, CancellationToken>>,
}

/// The digest of a code snapshot: its files' paths, executable bits and digests, by path.
pub fn code_digest(files: &[CodeFile]) -> Digest {
    use sha2::Digest as _;
    let mut sorted: Vec<&CodeFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = sha2::Sha256::new();
    for f in sorted {
        hasher.update(f.path.as_bytes());
        hasher.update([0, u8::from(f.executable)]);
        hasher.update(f.digest.0);
    }
    Digest(hasher.finalize().into())
}

fn safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.is_relative()
        && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        && !p.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

impl<E: Executor> PipelineService<E> {
    /// A service over `store`, `artifacts`, running steps with `runner`.
    pub fn new(runner: Runner<E>, audit: Arc<dyn AuditSink>, datasets: Arc<dyn DatasetLookup>) -> Arc<Self> {
        Arc::new(PipelineService {
            store: runner.store.clone(),
            artifacts: runner.artifacts.clone(),
            runner,
            audit,
            datasets,
            active: Mutex::new(HashMap::new()),
        })
    }

    /// The records.
    pub fn store(&self) -> &PipelineStore {
        &self.store
    }

    /// The artifacts.
    pub fn artifacts(&self) -> &DirStore {
        &self.artifacts
    }

    /// The dataset lookup.
    pub fn datasets(&self) -> &dyn DatasetLookup {
        &*self.datasets
    }

    /// Registers a spec with its directory's files. Unchanged spec and code return the version
    /// registered before (the bool is false).
    pub fn register(
        &self,
        spec_file: &str,
        spec_text: &str,
        files: Vec<UploadedFile>,
        actor: &str,
    ) -> Result<(PipelineVersion, bool), PipelineError> {
        let valid = PipelineSpec::parse(spec_text)
            .map_err(|error| PipelineError::Spec { file: spec_file.to_string(), error })?;
        let mut code = Vec::new();
        for file in &files {
            if !safe_relative(&file.path) {
                return Err(PipelineError::Invalid(format!(
                    "file {:?}: expected a relative path inside the spec's directory",
                    file.path
                )));
            }
            let digest = self.artifacts.put_bytes(&file.bytes).map_err(PipelineError::Artifacts)?;
            code.push(CodeFile { path: file.path.clone(), digest, executable: file.executable });
        }
        code.sort_by(|a, b| a.path.cmp(&b.path));
        code.dedup_by(|a, b| a.path == b.path);
        for (name, source) in &valid.spec.inputs {
            if let Ok(InputSource::File(path)) = super::spec::parse_input(source)
                && !code.iter().any(|f| f.path == path)
            {
                return Err(PipelineError::Invalid(format!(
                    "input {name}: {source} is not a file of the spec's directory"
                )));
            }
        }
        let spec_digest = Digest::sha256(spec_text.as_bytes());
        let code_digest = code_digest(&code);
        let name = valid.spec.name.clone();
        let (version, new) = self.store.register(&name, &spec_digest, &code_digest, |v| PipelineVersion {
            name: name.clone(),
            version: v,
            spec_digest,
            code_digest,
            spec_file: spec_file.to_string(),
            spec: spec_text.to_string(),
            code,
            registered_at_ms: unix_now_ms(),
            registered_by: actor.to_string(),
        })?;
        if new {
            self.audit.record(
                actor,
                "pipeline.register",
                format!("pipeline/{}@{}", version.name, version.version),
                json!({"spec_digest": version.spec_digest.to_hex(), "code_digest": version.code_digest.to_hex(),
                       "files": version.code.len()}),
            );
        }
        Ok((version, new))
    }

    /// A version of `name` (the newest when `version` is None).
    pub fn version(&self, name: &str, version: Option<u64>) -> Result<PipelineVersion, PipelineError> {
        let versions = self.store.versions(name)?;
        let latest = versions
            .last()
            .map(|v| v.version)
            .ok_or_else(|| PipelineError::UnknownPipeline { name: name.to_string() })?;
        match version {
            None => Ok(versions.last().cloned().ok_or(PipelineError::UnknownPipeline { name: name.to_string() })?),
            Some(v) => versions.into_iter().find(|x| x.version == v).ok_or(PipelineError::UnknownVersion {
                name: name.to_string(),
                version: v,
                latest,
            }),
        }
    }

    /// Starts a run of `name` (its newest version unless `version`), params overridden.
    pub fn start_run(
        self: &Arc<Self>,
        name: &str,
        version: Option<u64>,
        overrides: BTreeMap<String, String>,
        actor: &str,
    ) -> Result<RunRecord, PipelineError> {
        let version = self.version(name, version)?;
        let valid = PipelineSpec::parse(&version.spec)
            .map_err(|error| PipelineError::Spec { file: version.spec_file.clone(), error })?;
        let mut params: BTreeMap<String, String> =
            valid.spec.params.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        for (k, v) in overrides {
            if !params.contains_key(&k) {
                let known: Vec<&String> = params.keys().collect();
                return Err(PipelineError::Invalid(format!(
                    "--param {k}: pipeline {name} has no param {k:?} (params: {known:?})"
                )));
            }
            params.insert(k, v);
        }
        let mut inputs = BTreeMap::new();
        for (input, source) in &valid.spec.inputs {
            let resolved = match super::spec::parse_input(source).map_err(PipelineError::Invalid)? {
                InputSource::File(path) => {
                    let file = version.code.iter().find(|f| f.path == path).ok_or_else(|| {
                        PipelineError::Invalid(format!("input {input}: {source} is not in the registered snapshot"))
                    })?;
                    RunInput { source: source.clone(), digest: file.digest, dataset: None }
                }
                InputSource::Dataset { name: dataset, version: v } => {
                    let (dataset, data) = self
                        .datasets
                        .resolve(&dataset, &v)
                        .map_err(|e| PipelineError::Invalid(format!("input {input}: {e}")))?;
                    RunInput { source: source.clone(), digest: data, dataset: Some(dataset) }
                }
            };
            inputs.insert(input.clone(), resolved);
        }
        let now = unix_now_ms();
        let executor = self.runner.executor.kind().to_string();
        let run = self.store.create_run(name, |number| RunRecord {
            id: format!("{name}-{number}"),
            pipeline: name.to_string(),
            version: version.version,
            number,
            spec_digest: version.spec_digest,
            code_digest: version.code_digest,
            params,
            inputs,
            executor,
            status: RunStatus::Queued,
            reason: None,
            steps: valid.order.iter().map(|s| (s.clone(), StepRun::pending())).collect(),
            package: None,
            created_at_ms: now,
            finished_at_ms: None,
            started_by: actor.to_string(),
            resumed: 0,
        })?;
        self.audit.record(
            actor,
            "pipeline.run",
            format!("run/{}", run.id),
            json!({"pipeline": format!("{}@{}", run.pipeline, run.version), "params": run.params,
                   "inputs": run.inputs.iter().map(|(k, v)| (k.clone(), v.digest.to_hex())).collect::<BTreeMap<_, _>>()}),
        );
        self.spawn(version, run.id.clone());
        Ok(run)
    }

    fn spawn(self: &Arc<Self>, version: PipelineVersion, id: String) {
        let cancel = CancellationToken::new();
        if let Ok(mut active) = self.active.lock() {
            active.insert(id.clone(), cancel.clone());
        }
        let this = self.clone();
        tokio::spawn(async move {
            let run = this.runner.execute(&version, &id, cancel).await;
            if let Ok(mut active) = this.active.lock() {
                active.remove(&id);
            }
            let mut detail = json!({"status": run.status.word(), "reason": run.reason,
                "steps": run.steps.iter().map(|(k, s)| (k.clone(), json!({"status": s.status.word(), "cached": s.cached, "attempts": s.attempts}))).collect::<BTreeMap<_, _>>()});
            if let Some(p) = &run.package {
                detail["package"] = json!(p);
            }
            this.audit.record("edgefleet", &format!("pipeline.run_{}", run.status.word()), format!("run/{id}"), detail);
        });
    }

    /// Cancels a run that has not ended.
    pub fn cancel(&self, id: &str, actor: &str) -> Result<RunRecord, PipelineError> {
        let run = self.store.run(id)?.ok_or_else(|| PipelineError::UnknownRun { id: id.to_string() })?;
        if run.status.is_final() {
            return Err(PipelineError::Ended { id: id.to_string(), status: run.status.word() });
        }
        let token = self.active.lock().ok().and_then(|a| a.get(id).cloned());
        match token {
            Some(token) => token.cancel(),
            None => {
                // Not scheduled by this process (it was never picked up): end it here.
                self.store.update_run(id, |r| {
                    r.status = RunStatus::Cancelled;
                    r.reason = Some("cancelled".into());
                    r.finished_at_ms = Some(unix_now_ms());
                })?;
            }
        }
        self.audit.record(actor, "pipeline.cancel", format!("run/{id}"), json!({}));
        Ok(self.store.run(id)?.unwrap_or(run))
    }

    /// A run.
    pub fn run(&self, id: &str) -> Result<RunRecord, PipelineError> {
        self.store.run(id)?.ok_or_else(|| PipelineError::UnknownRun { id: id.to_string() })
    }

    /// Runs, oldest first, of one pipeline or all.
    pub fn runs(&self, pipeline: Option<&str>) -> Result<Vec<RunRecord>, PipelineError> {
        Ok(self.store.runs()?.into_iter().filter(|r| pipeline.is_none_or(|p| r.pipeline == p)).collect())
    }

    /// The log file of a step: `stdout` or `stderr`.
    pub fn log_path(&self, id: &str, step: &str, stream: &str) -> Result<std::path::PathBuf, PipelineError> {
        let run = self.run(id)?;
        if !run.steps.contains_key(step) || !valid_name(step) {
            return Err(PipelineError::Invalid(format!(
                "run {id} has no step {step:?} (steps: {})",
                run.steps.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let dirs = StepDirs::new(&self.store.run_dir(id), step);
        match stream {
            "stdout" => Ok(dirs.stdout()),
            "stderr" => Ok(dirs.stderr()),
            other => Err(PipelineError::Invalid(format!("log stream {other:?}: expected stdout or stderr"))),
        }
    }

    /// At start-up: the runs a stopped fleet manager left queued or running are resumed (what
    /// their attempts left running is killed first; steps that had succeeded are kept), or
    /// failed with the reason once resumed [`MAX_RESUMES`] times. Returns their ids.
    pub fn recover(self: &Arc<Self>) -> Result<Vec<String>, PipelineError> {
        let mut picked = Vec::new();
        for run in self.store.runs()? {
            if run.status.is_final() {
                continue;
            }
            let run_dir = self.store.run_dir(&run.id);
            let interrupted: Vec<String> =
                run.steps.iter().filter(|(_, s)| s.status == StepStatus::Running).map(|(k, _)| k.clone()).collect();
            let mut killed = Vec::new();
            for step in &interrupted {
                if kill_leftover(&StepDirs::new(&run_dir, step).pid_file()) {
                    killed.push(step.clone());
                }
            }
            let during = if interrupted.is_empty() {
                "before its first step".to_string()
            } else {
                format!("during step {}", interrupted.join(", "))
            };
            let version = self.version(&run.pipeline, Some(run.version));
            if run.resumed >= MAX_RESUMES || version.is_err() {
                let reason = match &version {
                    Err(e) => format!("the fleet manager stopped {during} and the run cannot go on: {e}"),
                    Ok(_) => format!(
                        "the fleet manager stopped {during}; it had been resumed {} times already, so it is not resumed again",
                        run.resumed
                    ),
                };
                self.store.update_run(&run.id, |r| {
                    r.status = RunStatus::Failed;
                    r.reason = Some(reason.clone());
                    r.finished_at_ms = Some(unix_now_ms());
                    for s in r.steps.values_mut() {
                        if !s.status.is_final() {
                            s.status =
                                if s.status == StepStatus::Running { StepStatus::Failed } else { StepStatus::Skipped };
                            s.reason = Some("the fleet manager stopped".into());
                        }
                    }
                })?;
                self.audit.record(
                    "edgefleet",
                    "pipeline.run_failed",
                    format!("run/{}", run.id),
                    json!({"reason": reason}),
                );
                continue;
            }
            let reason = format!("resumed after the fleet manager stopped {during}");
            self.store.update_run(&run.id, |r| {
                r.resumed += 1;
                r.reason = Some(reason.clone());
            })?;
            self.audit.record(
                "edgefleet",
                "pipeline.run_resumed",
                format!("run/{}", run.id),
                json!({"reason": reason, "killed_leftover_groups": killed}),
            );
            if let Ok(version) = version {
                self.spawn(version, run.id.clone());
            }
            picked.push(run.id);
        }
        Ok(picked)
    }
}
