//! The scheduler with the local executor on real processes: order through references, the
//! step cache, retries, timeouts, missing outputs, cancel, and resuming after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::artifacts::DirStore;
use super::executor::LocalExecutor;
use super::record::{DatasetRef, RunRecord, RunStatus, StepStatus};
use super::runner::{Backoff, BuiltinCall, BuiltinFuture, BuiltinOutcome, Builtins, Runner};
use super::service::{AuditSink, DatasetLookup, PipelineService, UploadedFile};
use super::store::PipelineStore;
use edgefleet_protocol::Digest;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Default)]
struct Audit(Mutex<Vec<String>>);

impl AuditSink for Audit {
    fn record(&self, _actor: &str, action: &str, subject: String, _detail: Value) {
        self.0.lock().unwrap().push(format!("{action} {subject}"));
    }
}

struct NoDatasets;

impl DatasetLookup for NoDatasets {
    fn resolve(&self, name: &str, _version: &str) -> Result<(DatasetRef, Digest), String> {
        Err(format!("no dataset {name:?}"))
    }
}

/// `package` copies its model to its log and says it registered `m@1`.
struct FakeBuiltins;

impl Builtins for FakeBuiltins {
    fn run(&self, call: BuiltinCall) -> BuiltinFuture<'_> {
        Box::pin(async move {
            let model = std::fs::read(&call.with["model"]).map_err(|e| e.to_string())?;
            std::fs::write(&call.log, &model).map_err(|e| e.to_string())?;
            Ok(BuiltinOutcome { package: Some(format!("{}@1", call.with["name"])) })
        })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    service: Arc<PipelineService<LocalExecutor>>,
    audit: Arc<Audit>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PipelineStore::open(dir.path()));
    let runner = Runner {
        store,
        artifacts: Arc::new(DirStore::new(dir.path().join("artifacts"))),
        executor: Arc::new(LocalExecutor),
        builtins: Arc::new(FakeBuiltins),
        slots: Arc::new(Semaphore::new(4)),
        backoff: Backoff { base: Duration::from_millis(10), max: Duration::from_millis(40) },
    };
    let audit = Arc::new(Audit::default());
    let service = PipelineService::new(runner, audit.clone(), Arc::new(NoDatasets));
    Fixture { _dir: dir, service, audit }
}

fn file(path: &str, text: &str) -> UploadedFile {
    UploadedFile { path: path.into(), bytes: text.as_bytes().to_vec(), executable: false }
}

async fn wait(service: &PipelineService<LocalExecutor>, id: &str) -> RunRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = service.run(id).unwrap();
        if run.status.is_final() {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} did not end: {run:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const CHAIN: &str = r#"name: chain
params: {scale: 2}
inputs:
  raw: file:data/raw.txt
steps:
  prepare:
    run: [sh, prep.sh, "${inputs.raw}", "${outputs.table}"]
    outputs: [table]
  train:
    run: [sh, -c, 'cat "$1" "$1" > "$2"; echo "{\"accuracy\": 0.5, \"loss\": {\"train\": 1.5}, \"note\": \"x\"}" > metrics.json', train, "${steps.prepare.outputs.table}", "${outputs.model}"]
    outputs: [model]
  package:
    uses: package
    with: {model: "${steps.train.outputs.model}", name: chain-model, label: "1.${run.number}.0"}
"#;

fn chain_files() -> Vec<UploadedFile> {
    vec![file("pipeline.yaml", CHAIN), file("prep.sh", "tr a-z A-Z < \"$1\" > \"$2\"\n"), file("data/raw.txt", "abc\n")]
}

#[tokio::test]
async fn a_chain_runs_in_order_and_a_second_run_is_served_from_the_cache() {
    let f = fixture();
    let (version, new) = f.service.register("pipeline.yaml", CHAIN, chain_files(), "alice").unwrap();
    assert!(new);
    let (again, new_again) = f.service.register("pipeline.yaml", CHAIN, chain_files(), "alice").unwrap();
    assert_eq!((again.version, new_again), (version.version, false), "unchanged spec and code: same version");

    let first = f.service.start_run("chain", None, BTreeMap::new(), "alice").unwrap();
    let first = wait(&f.service, &first.id).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");
    assert_eq!(first.package.as_deref(), Some("chain-model@1"));
    let model = first.steps["train"].outputs["model"];
    assert_eq!(model, Digest::sha256(b"ABC\nABC\n"), "train read prepare's output");
    assert_eq!(first.steps["train"].metrics, BTreeMap::from([("accuracy".into(), 0.5), ("loss.train".into(), 1.5)]));
    assert!(first.steps.values().all(|s| !s.cached && s.attempts == 1));

    let started = Instant::now();
    let second = f.service.start_run("chain", None, BTreeMap::new(), "bob").unwrap();
    let second = wait(&f.service, &second.id).await;
    assert_eq!(second.status, RunStatus::Succeeded);
    assert_eq!(second.number, 2);
    for (name, step) in &second.steps {
        assert!(step.cached, "{name} served from the cache");
        assert_eq!(step.cached_from.as_deref(), Some(first.id.as_str()));
        assert_eq!(step.outputs, first.steps[name].outputs);
        assert_eq!(step.attempts, 0);
    }
    assert_eq!(second.package, first.package, "the cached package step names the version it registered");
    assert!(started.elapsed() < Duration::from_secs(1), "cached run took {:?}", started.elapsed());

    let third = f.service.start_run("chain", None, BTreeMap::from([("scale".into(), "3".into())]), "bob").unwrap();
    let third = wait(&f.service, &third.id).await;
    assert!(third.steps.values().all(|s| s.cached), "scale is referenced by no step");
    let refused = f.service.start_run("chain", None, BTreeMap::from([("epochs".into(), "3".into())]), "bob");
    assert!(refused.unwrap_err().to_string().contains("no param \"epochs\""));
    let audit = f.audit.0.lock().unwrap().clone();
    assert!(audit.contains(&"pipeline.register pipeline/chain@1".to_string()), "{audit:?}");
    assert!(audit.contains(&format!("pipeline.run_succeeded run/{}", first.id)), "{audit:?}");
}

#[tokio::test]
async fn retries_then_success_and_retries_exhausted_with_the_log() {
    let f = fixture();
    let spec = r#"name: flaky
steps:
  twice:
    run: [sh, -c, 'n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; echo "try $n" >&2; [ $n -ge 3 ]']
    retries: 2
  never:
    run: [sh, -c, 'echo "bad row 17" >&2; exit 3']
    retries: 1
"#;
    f.service.register("p.yaml", spec, vec![file("p.yaml", spec)], "t").unwrap();
    let run = f.service.start_run("flaky", None, BTreeMap::new(), "t").unwrap();
    let run = wait(&f.service, &run.id).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.steps["twice"].status, StepStatus::Succeeded);
    assert_eq!(run.steps["twice"].attempts, 3);
    let never = &run.steps["never"];
    assert_eq!((never.status, never.attempts, never.exit_code), (StepStatus::Failed, 2, Some(3)));
    assert_eq!(run.reason.as_deref(), Some("step never failed: exit code 3 after 2 attempt(s)"));
    let log = std::fs::read_to_string(f.service.log_path(&run.id, "never", "stderr").unwrap()).unwrap();
    assert_eq!(log.matches("bad row 17").count(), 2, "{log}");
    assert!(log.contains("retrying in"), "{log}");
}

#[tokio::test]
async fn a_timeout_fails_the_run_and_skips_what_depends_on_it() {
    let f = fixture();
    let spec = r#"name: slow
steps:
  slow:
    run: [sh, -c, 'sleep 30']
    outputs: [x]
    timeout: 300ms
    retries: 3
  after:
    run: [cat, "${steps.slow.outputs.x}"]
"#;
    f.service.register("p.yaml", spec, vec![file("p.yaml", spec)], "t").unwrap();
    let started = Instant::now();
    let run = f.service.start_run("slow", None, BTreeMap::new(), "t").unwrap();
    let run = wait(&f.service, &run.id).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.steps["slow"].status, StepStatus::TimedOut);
    assert_eq!(run.steps["slow"].attempts, 1, "a timeout is not retried");
    assert_eq!(run.steps["after"].status, StepStatus::Skipped);
    assert!(run.reason.as_deref().unwrap().starts_with("step slow timed out: ran past its timeout of 300ms"));
}

#[tokio::test]
async fn a_missing_output_fails_the_step_and_cancel_stops_a_run() {
    let f = fixture();
    let spec = "name: lazy\nsteps:\n  s:\n    run: [\"true\"]\n    outputs: [model]\n";
    f.service.register("p.yaml", spec, vec![file("p.yaml", spec)], "t").unwrap();
    let run = f.service.start_run("lazy", None, BTreeMap::new(), "t").unwrap();
    let run = wait(&f.service, &run.id).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.steps["s"].reason.as_deref().unwrap().contains("did not write its output \"model\""));

    let spec = "name: long\nsteps:\n  s:\n    run: [sleep, \"30\"]\n";
    f.service.register("p.yaml", spec, vec![file("p.yaml", spec)], "t").unwrap();
    let run = f.service.start_run("long", None, BTreeMap::new(), "t").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.service.cancel(&run.id, "t").unwrap();
    let run = wait(&f.service, &run.id).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.steps["s"].status, StepStatus::Cancelled);
    assert!(f.service.cancel(&run.id, "t").unwrap_err().to_string().contains("already cancelled"));
}

#[tokio::test]
async fn a_run_left_running_by_a_stopped_fleet_manager_is_resumed() {
    let f = fixture();
    f.service.register("pipeline.yaml", CHAIN, chain_files(), "t").unwrap();
    // As a crashed fleet manager leaves it: prepare done, train running, never finished.
    let first = f.service.start_run("chain", None, BTreeMap::new(), "t").unwrap();
    let done = wait(&f.service, &first.id).await;
    let id = "chain-9";
    let left = f
        .service
        .store()
        .create_run("chain", |_| {
            let mut r = done.clone();
            r.id = id.into();
            r.number = 9;
            r.status = RunStatus::Running;
            r.finished_at_ms = None;
            r.package = None;
            r.steps.get_mut("train").unwrap().status = StepStatus::Running;
            r.steps.get_mut("package").unwrap().status = StepStatus::Pending;
            r
        })
        .unwrap();
    assert_eq!(left.id, id);
    let picked = f.service.recover().unwrap();
    assert_eq!(picked, vec![id.to_string()]);
    let run = wait(&f.service, id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.resumed, 1);
    assert_eq!(run.reason.as_deref(), Some("resumed after the fleet manager stopped during step train"));
    assert_eq!(run.package.as_deref(), Some("chain-model@1"));
}
