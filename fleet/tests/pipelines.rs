//! Training pipelines as a user runs them: the `edgefleet` CLI against a real `edgefleet serve`
//! process. A pipeline registers and runs to a signed package in the model registry (lineage
//! filled in); a second run is served from the cache; a failing step is retried and the run
//! fails with its log; a step over its timeout is killed with its children; and a fleet
//! manager SIGKILLed mid-run resumes the run after its restart, killing what the dead one left.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use edgefleet::client::Client;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn cli(server: &str, args: &[&str]) -> Output {
    cli_as("mlops", server, args)
}

fn text(out: &Output) -> String {
    output_text(out)
}

async fn run(server: &str, args: &[&str]) -> Output {
    cli_async("mlops", server, args).await
}

async fn json_of(server: &str, args: &[&str]) -> (Option<i32>, Value) {
    let out = run(server, args).await;
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{args:?}: not JSON: {}", text(&out)));
    (out.status.code(), value)
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A pipeline directory: a "training" step that writes the trained fixture model, the
/// built-in `evaluate` on a labelled table, and the built-in `package`.
fn train_pipeline(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(fixture("models/vibration_mlp_trained.onnx"), dir.join("model.onnx")).unwrap();
    write(dir, "train.sh", "# stands in for a trainer: writes the model\ncp model.onnx \"$1\"\necho trained\n");
    let mut csv = String::from("f0,f1,f2,f3,f4,f5,f6,f7,label\n");
    for i in 0..40 {
        let x = i as f32 / 10.0;
        csv += &format!("{x},{},{},0.5,1,2,3,{},{}\n", x * 2.0, 1.0 - x, x * x, i % 4);
    }
    write(dir, "data/eval.csv", &csv);
    write(
        dir,
        "pipeline.yaml",
        r#"name: fixture-train
params: {min_accuracy: 0.0}
inputs:
  table: file:data/eval.csv
steps:
  train:
    run: [sh, train.sh, "${outputs.model}"]
    outputs: [model]
  evaluate:
    uses: evaluate
    with: {candidate: "${steps.train.outputs.model}", data: "${inputs.table}", min_accuracy: "${params.min_accuracy}"}
  package:
    uses: package
    with: {model: "${steps.train.outputs.model}", name: fixture-model, label: "1.${run.number}.0"}
    after: [evaluate]
"#,
    );
    dir.join("pipeline.yaml")
}

/// `[pipelines] signing_key` default, holding the key the fleet's trust store trusts.
fn install_pipeline_key(data_dir: &Path) {
    let dir = data_dir.join("keys/pipeline");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("signing.key");
    std::fs::write(&path, format!("{}\n", hex::encode(key().to_bytes()))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

async fn wait_run(client: &Client, id: &str, secs: u64) -> Value {
    wait_for(client, &format!("/v1/runs/{id}"), secs, |r| {
        matches!(r["status"].as_str(), Some("succeeded" | "failed" | "cancelled"))
    })
    .await
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks for existence; a zombie of an exited group still answers, so also look
    // at its state.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_run_to_a_signed_package_cache_retry_time_out_and_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    install_pipeline_key(&dir.path().join("fleet"));
    let mut serve = ServeProcess::start(dir.path());
    let client = Client::new(&serve.http, "test");
    serve.ready(&client).await;
    let server = serve.http.clone();

    // Registers and runs to a signed, registered package.
    let spec = train_pipeline(&dir.path().join("train"));
    let spec = spec.to_str().unwrap();
    let (code, first) = json_of(&server, &["--json", "pipeline", "run", spec, "--wait"]).await;
    assert_eq!(code, Some(0), "{first:#}");
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["package"], "fixture-model@1");
    for step in ["train", "evaluate", "package"] {
        assert_eq!(first["steps"][step]["status"], "succeeded", "{first:#}");
        assert_eq!(first["steps"][step]["cached"], false);
    }
    let model_digest = first["steps"]["train"]["outputs"]["model"].as_str().unwrap();
    assert_eq!(model_digest, edgefleet_protocol::Digest::sha256(&model("vibration_mlp_trained.onnx")).to_hex());
    let accuracy = first["steps"]["evaluate"]["metrics"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    assert!(first["steps"]["evaluate"]["metrics"]["latency_p99_us"].as_f64().unwrap() > 0.0);
    let registered = get(&client, "/v1/models/fixture-model").await;
    let record = &registered["versions"][0]["record"];
    assert_eq!(record["version_seq"], 1);
    assert_eq!(record["label"], "1.1.0");
    assert_eq!(record["pushed_by"], "pipeline:fixture-train-1");
    let package = serve.data_dir.join(format!("packages/{}.efpkg", record["package_id"].as_str().unwrap()));
    let (code, inspected) = json_of(
        &server,
        &["--json", "package", "inspect", package.to_str().unwrap(), "--trust", serve.trust.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(0), "{inspected:#}");
    let lineage = &inspected["manifest"]["lineage"];
    assert_eq!(lineage["training_run_id"], "fixture-train-1", "{inspected:#}");
    assert_eq!(lineage["pipeline_spec_digest"], first["spec_digest"]);
    assert_eq!(lineage["code_revision"], format!("sha256:{}", first["code_digest"].as_str().unwrap()));

    // Lineage: run → package → signature, each digest re-verified against what is stored.
    let (code, lineage) = json_of(&server, &["--json", "lineage", "fixture-model@1"]).await;
    assert_eq!(code, Some(0), "{lineage:#}");
    assert_eq!(lineage["verified"], true);
    assert_eq!(lineage["run"]["id"], "fixture-train-1");
    let checks: Vec<String> =
        lineage["checks"].as_array().unwrap().iter().map(|c| c["what"].as_str().unwrap().to_string()).collect();
    assert!(checks.contains(&"cpu model blob = train.model".to_string()), "{checks:?}");
    assert!(checks.iter().any(|c| c.starts_with("code snapshot (4 files")), "{checks:?}");
    let said = text(&run(&server, &["lineage", "fixture-model@1"]).await);
    assert!(said.contains("built by run fixture-train-1") && said.contains("verified"), "{said}");

    // Unchanged inputs: every step from the cache, in well under a second of scheduling.
    let (code, second) = json_of(&server, &["--json", "pipeline", "run", "fixture-train", "--wait"]).await;
    assert_eq!(code, Some(0), "{second:#}");
    for step in ["train", "evaluate", "package"] {
        assert_eq!(second["steps"][step]["cached"], true, "{second:#}");
        assert_eq!(second["steps"][step]["attempts"], 0);
        assert_eq!(second["steps"][step]["outputs"], first["steps"][step]["outputs"]);
    }
    // A damaged artifact shows in lineage (exit 1).
    let stored = serve.data_dir.join(format!("artifacts/sha256/{model_digest}"));
    let good = std::fs::read(&stored).unwrap();
    std::fs::write(&stored, b"tampered").unwrap();
    let out = run(&server, &["lineage", "fixture-model@1"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAIL output train.model"), "{}", text(&out));
    std::fs::write(&stored, good).unwrap();
    let took = second["finished_at_ms"].as_u64().unwrap() - second["created_at_ms"].as_u64().unwrap();
    assert!(took < 1000, "a fully cached run took {took} ms");
    assert_eq!(second["package"], "fixture-model@1", "no new version for the same model");
    let shown = text(&run(&server, &["pipeline", "run", "show", "fixture-train-2"]).await);
    assert!(shown.contains("succeeded") && shown.contains("yes"), "{shown}");
    let runs = text(&run(&server, &["pipeline", "runs", "--name", "fixture-train", "--metric", "accuracy"]).await);
    assert!(runs.contains("fixture-train-1") && runs.contains("fixture-train-2"), "{runs}");
    assert!(runs.contains(&format!("{accuracy:.4}")), "{runs}");

    // Nothing but the edgefleet binary: train-tabular trains, evaluate gates, package ships.
    let tabular = dir.path().join("tabular");
    let mut csv = String::from("a,b,label\n");
    for i in 0..60 {
        let (x, y) = [(0.0, 0.0), (6.0, 0.0), (0.0, 6.0)][i % 3];
        let j = ((i * 7) % 5) as f32 / 10.0;
        csv += &format!("{},{},{}\n", x + j, y - j, i % 3);
    }
    write(&tabular, "data.csv", &csv);
    write(
        &tabular,
        "pipeline.yaml",
        "name: tabular\ninputs: {data: \"file:data.csv\"}\nsteps:\n  train:\n    uses: train-tabular\n    with: {data: \"${inputs.data}\"}\n    outputs: [model]\n  evaluate:\n    uses: evaluate\n    with: {candidate: \"${steps.train.outputs.model}\", data: \"${inputs.data}\", min_accuracy: 95%}\n  package:\n    uses: package\n    with: {model: \"${steps.train.outputs.model}\", name: tabular-model}\n    after: [evaluate]\n",
    );
    let (code, tab) =
        json_of(&server, &["--json", "pipeline", "run", tabular.join("pipeline.yaml").to_str().unwrap(), "--wait"])
            .await;
    assert_eq!(code, Some(0), "{tab:#}");
    assert_eq!(tab["steps"]["evaluate"]["metrics"]["accuracy"], 1.0, "{tab:#}");
    assert_eq!(tab["package"], "tabular-model@1");

    // A failing step is retried as configured; the run fails with that step's log.
    let flaky = dir.path().join("flaky");
    write(
        &flaky,
        "pipeline.yaml",
        "name: flaky\nsteps:\n  load:\n    run: [sh, -c, 'echo \"bad row 17 in input\" >&2; exit 4']\n    retries: 1\n",
    );
    let out = run(&server, &["pipeline", "run", flaky.join("pipeline.yaml").to_str().unwrap(), "--wait"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("step load failed: exit code 4 after 2 attempt(s)"), "{said}");
    assert!(said.contains("bad row 17 in input"), "the step's log is shown: {said}");
    let logs = text(&run(&server, &["pipeline", "logs", "flaky-1", "load"]).await);
    assert_eq!(logs.matches("bad row 17").count(), 2, "{logs}");

    // Past its timeout the step's whole process group is killed, children included.
    let slow = dir.path().join("slow");
    write(
        &slow,
        "pipeline.yaml",
        "name: slow\nsteps:\n  wait:\n    run: [sh, -c, '(sleep 3; touch \"$HOME/../survived\") & sleep 60']\n    timeout: 1s\n",
    );
    let out = run(&server, &["pipeline", "run", slow.join("pipeline.yaml").to_str().unwrap(), "--wait"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("step wait timed out: ran past its timeout of 1s"), "{}", text(&out));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let step_dir = serve.data_dir.join("pipelines/work/slow-1/steps/wait");
    assert!(step_dir.is_dir());
    assert!(!step_dir.join("survived").exists(), "the background child was killed with its group");

    // SIGKILL mid-run: the restarted fleet manager kills the leftover attempt and resumes.
    let long = dir.path().join("long");
    write(
        &long,
        "pipeline.yaml",
        "name: long\nsteps:\n  work:\n    run: [sh, -c, 'echo $$ >> \"$HOME/../pids\"; sleep 4; echo done > \"$1\"', work, \"${outputs.out}\"]\n    outputs: [out]\n",
    );
    let out = run(&server, &["pipeline", "run", long.join("pipeline.yaml").to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    let pids = serve.data_dir.join("pipelines/work/long-1/steps/work/pids");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pids.exists() {
        assert!(Instant::now() < deadline, "the step never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_pid: i32 = std::fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
    serve.sigkill();
    assert!(alive(first_pid), "the attempt outlives a SIGKILLed fleet manager (its own process group)");
    serve.respawn();
    serve.ready(&client).await;
    let resumed = wait_run(&client, "long-1", 60).await;
    assert_eq!(resumed["status"], "succeeded", "{resumed:#}");
    assert_eq!(resumed["resumed"], 1);
    assert_eq!(resumed["reason"], "resumed after the fleet manager stopped during step work");
    assert!(!alive(first_pid), "the restarted fleet manager killed the leftover attempt");
    assert_eq!(resumed["steps"]["work"]["attempts"], 2);
    let audit = get(&client, "/v1/audit?limit=200").await;
    let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for expected in
        ["pipeline.register", "pipeline.run", "pipeline.run_succeeded", "pipeline.run_failed", "pipeline.run_resumed"]
    {
        assert!(actions.contains(&expected), "{expected} audited: {actions:?}");
    }
    assert_eq!(get(&client, "/v1/audit/verify").await["ok"], true);
}

#[test]
fn bad_specs_are_refused_with_the_line_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.yaml", "name: p\nsteps:\n  a:\n    run: [x, \"${steps.b.outputs.m}\"]\n");
    let out = Command::new(env!("CARGO_BIN_EXE_edgefleet"))
        .args(["pipeline", "validate", dir.path().join("p.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("p.yaml: line 4: step a: ${steps.b.outputs.m}: no step \"b\""), "{}", text(&out));
    // `run FILE` refuses it the same way, without a fleet manager to ask.
    let out = cli("http://127.0.0.1:9", &["pipeline", "run", dir.path().join("p.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("line 4"), "{}", text(&out));
}
