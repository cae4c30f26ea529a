//! Versioned datasets against a running `edgefleet serve`, as an operator types them: create
//! from CSV (the same content twice is one version), list, show by latest / number / digest,
//! diff, export byte for byte, refusals with their reasons, and every create in the audit
//! chain.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use edgefleet::api::datasets::{CreateDatasetResponse, DatasetDiff, DatasetVersion};
use edgefleet::client::Client;
use edgefleet_protocol::Digest;
use std::process::Output;

fn text(out: &Output) -> String {
    output_text(out)
}

async fn run(server: &str, args: &[&str]) -> Output {
    cli_async("dana", server, args).await
}

async fn ok(server: &str, args: &[&str]) -> String {
    let out = run(server, args).await;
    assert!(out.status.success(), "edgefleet {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn refused(server: &str, args: &[&str], expect: &str) {
    let out = run(server, args).await;
    assert_eq!(out.status.code(), Some(1), "edgefleet {args:?} should fail: {}", text(&out));
    assert!(text(&out).contains(expect), "edgefleet {args:?}: expected {expect:?} in {}", text(&out));
}

fn csv(shift: f64) -> String {
    let mut out = String::from("x,y,site\n");
    for i in 0..400 {
        let site = ["plant-1", "plant-2", "plant-3"][i % 3];
        out.push_str(&format!("{},{},{site}\n", (i % 40) as f64 + shift, (i % 7) as f64 * 0.5));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_round_trip_through_the_cli_and_the_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = ServeProcess::start(dir.path());
    let client = Client::new(&serve.http, "dana");
    serve.ready(&client).await;
    let server = serve.http.clone();
    let (a, b, bad) = (dir.path().join("a.csv"), dir.path().join("b.csv"), dir.path().join("bad.csv"));
    std::fs::write(&a, csv(0.0)).unwrap();
    std::fs::write(
        &b,
        csv(25.0)
            .replace(",site\n", ",site,extra\n")
            .replace("plant-1\n", "plant-1,1\n")
            .replace("plant-2\n", "plant-2,2\n")
            .replace("plant-3\n", "plant-3,3\n"),
    )
    .unwrap();

    // Create, then the same bytes again: one version, said so.
    let first: CreateDatasetResponse = serde_json::from_str(
        &ok(&server, &["dataset", "create", "vib", "--from-csv", a.to_str().unwrap(), "--json"]).await,
    )
    .unwrap();
    assert!(first.created);
    assert_eq!((first.dataset.version, first.dataset.rows, first.dataset.schema.len()), (1, 400, 3));
    assert_eq!(first.dataset.data, Digest::sha256(&std::fs::read(&a).unwrap()));
    assert_eq!(first.dataset.provenance.created_by, "dana");
    assert_eq!(first.dataset.provenance.file.as_deref(), Some("a.csv"));
    let again = ok(&server, &["dataset", "create", "vib", "--from-csv", a.to_str().unwrap()]).await;
    assert!(again.contains("unchanged") && again.contains("vib@1"), "{again}");
    let second = ok(&server, &["dataset", "create", "vib", "--from-csv", b.to_str().unwrap()]).await;
    assert!(second.contains("created vib@2"), "{second}");
    // Another name, the same bytes: its own version 1, the same digest.
    let other: CreateDatasetResponse = serde_json::from_str(
        &ok(&server, &["dataset", "create", "copy", "--from-csv", a.to_str().unwrap(), "--json"]).await,
    )
    .unwrap();
    assert_eq!((other.dataset.version, other.dataset.digest), (1, first.dataset.digest));

    // List, show by latest, number and digest.
    let list = ok(&server, &["dataset", "list"]).await;
    assert!(list.contains("vib@2") && list.contains("copy@1"), "{list}");
    let shown = ok(&server, &["dataset", "show", "vib"]).await;
    assert!(shown.contains("vib@2") && shown.contains("extra") && shown.contains("categorical"), "{shown}");
    let v1: DatasetVersion = serde_json::from_str(&ok(&server, &["dataset", "show", "vib@1", "--json"]).await).unwrap();
    assert_eq!(v1, first.dataset);
    let by_digest = format!("vib@sha256:{}", first.dataset.digest);
    let v1_again: DatasetVersion =
        serde_json::from_str(&ok(&server, &["dataset", "show", &by_digest, "--json"]).await).unwrap();
    assert_eq!(v1_again, first.dataset);

    // Diff: a column added, x shifted, y and site unchanged.
    let d: DatasetDiff =
        serde_json::from_str(&ok(&server, &["dataset", "diff", "vib@1", "vib@2", "--json"]).await).unwrap();
    assert_eq!(d.added.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["extra"]);
    let drifting: Vec<&str> = d.columns.iter().filter(|c| c.drifting).map(|c| c.name.as_str()).collect();
    assert_eq!(drifting, ["x"], "{d:?}");
    let diff_text = ok(&server, &["dataset", "diff", "vib@1", "vib"]).await;
    assert!(diff_text.contains("+ column extra") && diff_text.contains("PSI"), "{diff_text}");

    // Export: the exact bytes.
    let out = dir.path().join("out/v1.csv");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let exported = ok(&server, &["dataset", "export", "vib@1", "--out", out.to_str().unwrap()]).await;
    assert!(exported.contains("verified"), "{exported}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&a).unwrap());

    // Refusals, with the reason and exit code 1.
    std::fs::write(&bad, "x,y\n1,2\n3\n").unwrap();
    refused(
        &server,
        &["dataset", "create", "vib", "--from-csv", bad.to_str().unwrap()],
        "line 3 has 1 cell(s), the header has 2",
    )
    .await;
    std::fs::write(&bad, b"x\n\xff\n").unwrap();
    refused(&server, &["dataset", "create", "vib", "--from-csv", bad.to_str().unwrap()], "not UTF-8").await;
    refused(&server, &["dataset", "create", ".hidden", "--from-csv", a.to_str().unwrap()], "not a dataset name").await;
    refused(&server, &["dataset", "show", "vib@7"], "vib has versions 1..2, not 7").await;
    refused(&server, &["dataset", "show", "nope"], "no dataset \"nope\"").await;
    refused(&server, &["dataset", "export", "nope@1", "--out", out.to_str().unwrap()], "no dataset \"nope\"").await;
    refused(&server, &["dataset", "create", "s", "--from-samples", "--model", "unknown-model"], "unknown model").await;
    let out = run(&server, &["dataset", "show", "nope", "--json"]).await;
    let error: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(error["error"].as_str().unwrap().contains("edgefleet dataset list"), "{error}");

    // The audit chain has every create (the unchanged one too) and the export, and verifies.
    let audit = ok(&server, &["audit", "list", "--from", "0", "--limit", "1000", "--json"]).await;
    let entries: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    let creates: Vec<&str> =
        entries.iter().filter(|e| e["action"] == "dataset.create").map(|e| e["subject"].as_str().unwrap()).collect();
    assert_eq!(creates, ["dataset/vib@1", "dataset/vib@1", "dataset/vib@2", "dataset/copy@1"]);
    assert!(entries.iter().any(|e| e["action"] == "dataset.export" && e["actor"] == "dana"));
    let verified = ok(&server, &["audit", "verify"]).await;
    assert!(verified.contains("audit chain intact"), "{verified}");
}

/// A real agent samples every inference; a label posted on the device after its sample was
/// sent follows on its own (`SampleLabels`), the fleet joins it to the stored sample by
/// (device, inference id, timestamp), and `dataset create --from-samples --labelled-only`
/// takes the labelled rows only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_label_is_joined_to_its_sample_and_a_labelled_dataset_takes_it() {
    use edgefleet_protocol::hardware::HardwareClass::Cpu;
    use serde_json::{Value, json};

    let dir = tempfile::tempdir().unwrap();
    let namespace = unique_namespace();
    let (server, shutdown) = start_server(dir.path(), &namespace, None).await;
    let http = format!("http://{}", server.http_addr);
    let client = Client::new(&http, "lena");
    let sampling =
        [("EDGEFLEET_AGENT__SAMPLING__SAMPLE_RATE", "1.0"), ("EDGEFLEET_AGENT__SAMPLING__DRIFT_WINDOW_MS", "300")];
    let agents = Agents::start_with(dir.path(), &server.mqtt_url, &namespace, &devices("lab", 1, Cpu), &sampling);
    wait_for(&client, "/v1/devices", 60, |d| d.as_array().is_some_and(|a| a.len() == 1 && !a[0]["hardware"].is_null()))
        .await;
    push(&client, package(1, &[(Cpu, &model("vibration_mlp.onnx"))])).await.unwrap();
    let plan = json!({
        "model": "vibration-mlp", "version_seq": 1, "stages": "100%", "bake": "0s",
        "max_failure_rate": "90%", "confidence": "80%", "min_sample": 1,
        "probation": "1s", "probation_min_inferences": 0,
    });
    let id = post(&client, "/v1/rollouts", plan).await.unwrap()["id"].as_u64().unwrap();
    let done = wait_for(&client, &format!("/v1/rollouts/{id}"), 120, |r| status(r) != "running").await;
    assert_eq!(status(&done), "completed", "{done:#}");

    let api = std::fs::read_to_string(dir.path().join("agents/lab-00/api.addr")).unwrap();
    let agent = Client::new(&format!("http://{}", api.trim()), "app");
    let infer = |x: f32| {
        let agent = agent.clone();
        async move {
            let body = json!({"inputs": [{"shape": [1, 8], "data": vec![x; 8]}]});
            let out: Value =
                tokio::task::spawn_blocking(move || agent.post_json("/v1/infer", &body)).await.unwrap().unwrap();
            out["inference_id"].as_u64().unwrap()
        }
    };
    let label = |id: u64, label: i64| {
        let agent = agent.clone();
        async move {
            let body = json!({"inference_id": id, "label": label});
            let _: Value =
                tokio::task::spawn_blocking(move || agent.post_json("/v1/feedback", &body)).await.unwrap().unwrap();
        }
    };
    let sample =
        |samples: &Value, id: u64| samples.as_array().and_then(|a| a.iter().find(|s| s["inference_id"] == id).cloned());

    // Labelled at once (it travels with its batch, or right after it), and one never labelled.
    let early = infer(0.1).await;
    label(early, 3).await;
    let unlabelled = infer(0.2).await;
    // Labelled only once the fleet has stored its sample: the label follows on its own.
    let late = infer(0.3).await;
    let samples = "/v1/samples?model=vibration-mlp";
    let before = wait_for(&client, samples, 30, |s| sample(s, late).is_some()).await;
    assert!(sample(&before, late).unwrap().get("label").is_none(), "not labelled yet: {before:#}");
    label(late, 2).await;
    let after = wait_for(&client, samples, 30, |s| sample(s, late).is_some_and(|r| r["label"] == 2)).await;
    assert_eq!(sample(&after, early).unwrap()["label"], 3, "{after:#}");
    assert!(sample(&after, unlabelled).unwrap().get("label").is_none(), "{after:#}");

    let created = ok(
        &http,
        &[
            "dataset",
            "create",
            "lab-labelled",
            "--from-samples",
            "--model",
            "vibration-mlp",
            "--labelled-only",
            "--since",
            "1h",
            "--json",
        ],
    )
    .await;
    let created: CreateDatasetResponse = serde_json::from_str(&created).unwrap();
    let d = &created.dataset;
    assert_eq!(d.rows, 2, "{d:#?}");
    assert_eq!(d.schema.last().map(|c| c.name.as_str()), Some("label"));
    assert_eq!((d.provenance.source.as_str(), d.provenance.labelled_only), ("samples", true));
    assert_eq!(d.provenance.devices, ["lab-00"]);
    assert_eq!(
        d.provenance.model_versions.iter().map(|m| (m.model.as_str(), m.version_seq)).collect::<Vec<_>>(),
        [("vibration-mlp", 1)]
    );
    assert_eq!(d.provenance.created_by, "dana");
    let out = dir.path().join("labelled.csv");
    ok(&http, &["dataset", "export", "lab-labelled", "--out", out.to_str().unwrap()]).await;
    let csv = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(rows.iter().any(|r| r.starts_with(&format!("lab-00,1,{late},")) && r.ends_with(",2")), "{csv}");
    assert!(rows.iter().any(|r| r.starts_with(&format!("lab-00,1,{early},")) && r.ends_with(",3")), "{csv}");
    // The same stored samples again: the same content, so the same version.
    let again = ok(
        &http,
        &["dataset", "create", "lab-labelled", "--from-samples", "--model", "vibration-mlp", "--labelled-only"],
    )
    .await;
    assert!(again.contains("unchanged") && again.contains("lab-labelled@1"), "{again}");
    let everything = ok(
        &http,
        &[
            "dataset",
            "create",
            "lab-all",
            "--from-samples",
            "--model",
            "vibration-mlp",
            "--select",
            "device=lab-00",
            "--json",
        ],
    )
    .await;
    let everything: CreateDatasetResponse = serde_json::from_str(&everything).unwrap();
    assert!(everything.dataset.rows >= 3, "{everything:#?}");

    agents.stop().await;
    shutdown.cancel();
    let _ = server.task.await;
}
