//! The operator CLI against a running `edgefleet serve`, as a user types it: devices, labels,
//! model push (refusing untrusted packages), rollout create from flags and from a TOML plan
//! (with dry run and every kind of bad input refused without changing anything), status,
//! pause/resume, health, and `audit verify` naming the first tampered entry.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use edgefleet::client::Client;
use edgefleet::server::store::{FleetDb, FleetStore};
use edgefleet_protocol::hardware::HardwareClass::{Cpu, Gpu};
use std::process::{Command, Output};

fn cli(server: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgefleet"))
        .args(["--server", server, "--as", "frank"])
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

async fn run(server: &str, args: &[&str]) -> Output {
    let (s, a): (String, Vec<String>) = (server.to_string(), args.iter().map(|x| x.to_string()).collect());
    tokio::task::spawn_blocking(move || cli(&s, &a.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

async fn ok(server: &str, args: &[&str]) -> String {
    let out = run(server, args).await;
    assert!(out.status.success(), "edgefleet {args:?}: {}", text(&out));
    text(&out)
}

async fn refused(server: &str, args: &[&str], expect: &str) {
    let out = run(server, args).await;
    assert_eq!(out.status.code(), Some(1), "edgefleet {args:?} should fail: {}", text(&out));
    assert!(text(&out).contains(expect), "edgefleet {args:?}: expected {expect:?} in {}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_work_refuse_bad_input_and_audit_verify_finds_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = ServeProcess::start(dir.path());
    let (data, namespace) = (serve.data_dir.clone(), serve.namespace.clone());
    let client = Client::new(&serve.http, "frank");
    serve.ready(&client).await;
    let server = serve.http.clone();
    let server_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("server.json")).unwrap()).unwrap();
    assert_eq!(server_json["mqtt"], serve.mqtt);

    let mut fleet = devices("box", 4, Cpu);
    fleet.extend(devices("gx", 2, Gpu));
    let agents = Agents::start(dir.path(), &serve.mqtt, &namespace, &fleet);
    wait_for(&client, "/v1/devices", 60, |d| d.as_array().unwrap().len() == 6).await;

    let listed = ok(&server, &["devices", "list", "--select", "hw=gpu"]).await;
    assert!(listed.contains("gx-00") && !listed.contains("box-00"), "{listed}");
    ok(&server, &["devices", "label", "box-01", "site=plant-3", "line=2"]).await;
    let shown = ok(&server, &["devices", "show", "box-01", "--json"]).await;
    assert!(shown.contains("plant-3"), "{shown}");
    refused(&server, &["devices", "label", "box-01", "hw=gpu"], "reserved").await;
    refused(&server, &["devices", "show", "nope"], "unknown device").await;

    // Packages: a trusted one is registered; an untrusted one is refused.
    let good = model("vibration_mlp.onnx");
    let pkg = dir.path().join("v2.efpkg");
    std::fs::write(&pkg, package(2, &[(Cpu, &good), (Gpu, &good)])).unwrap();
    let pushed = ok(&server, &["model", "push", pkg.to_str().unwrap()]).await;
    assert!(pushed.contains("pushed vibration-mlp@2"), "{pushed}");
    let stranger = dir.path().join("stranger.efpkg");
    let mut bytes = Vec::new();
    edgefleet_protocol::package::write_package(
        &mut bytes,
        &{
            let p = package(5, &[(Cpu, &good)]);
            let m = u32::from_le_bytes(p[12..16].try_into().unwrap()) as usize;
            edgefleet_protocol::package::PackageHead::from_bytes(&p[..16 + m + 72])
                .unwrap()
                .manifest_unverified()
                .unwrap()
        },
        &ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        &mut [&good[..]],
    )
    .unwrap();
    std::fs::write(&stranger, bytes).unwrap();
    refused(&server, &["model", "push", stranger.to_str().unwrap()], "unknown key").await;
    let models = ok(&server, &["model", "list", "--json"]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&models).unwrap().as_array().unwrap().len(), 1);

    // Bad rollout input: clear errors, nothing created.
    let base = ["rollout", "create", "--model", "vibration-mlp", "--version-seq", "2"];
    let with =
        |extra: &[&'static str]| -> Vec<&'static str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    refused(&server, &with(&["--stages", "10%,50%"]), "must be 100%").await;
    refused(&server, &with(&["--select", "site"]), "not key=value").await;
    refused(&server, &with(&["--max-failure-rate", "150%"]), "max_failure_rate").await;
    refused(&server, &with(&["--select", "site=nowhere"]), "no target devices").await;
    refused(&server, &["rollout", "create", "--model", "vibration-mlp", "--version-seq", "9"], "unknown model").await;
    assert!(ok(&server, &["rollout", "list", "--json"]).await.trim() == "[]");

    // A TOML plan with a dry run, then for real.
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "model = \"vibration-mlp\"\nversion_seq = 2\nstages = \"50%,100%\"\nbake = \"0s\"\n\
         max_failure_rate = \"60%\"\nconfidence = \"80%\"\nmin_sample = 2\nprobation = \"1s\"\n",
    )
    .unwrap();
    let dry = ok(&server, &["rollout", "create", "--plan", plan.to_str().unwrap(), "--dry-run"]).await;
    assert!(dry.contains("dry run") && dry.contains("6 target(s)"), "{dry}");
    assert!(ok(&server, &["rollout", "list", "--json"]).await.trim() == "[]");
    let created = ok(&server, &["rollout", "create", "--plan", plan.to_str().unwrap(), "--select", "hw=cpu"]).await;
    assert!(created.contains("rollout 1 created") && created.contains("4 target(s)"), "{created}");
    let watched = ok(&server, &["rollout", "status", "1", "--watch"]).await;
    assert!(watched.contains("completed"), "{watched}");
    refused(&server, &["rollout", "pause", "1"], ": cannot pause it").await;
    let shown = ok(&server, &["model", "show", "vibration-mlp"]).await;
    assert!(shown.contains("running on 4 device(s)"), "{shown}");
    let health = ok(&server, &["health", "--model", "vibration-mlp"]).await;
    assert!(health.contains("box-00"), "{health}");

    // Audit: intact, then tampered with while the server is down, then named.
    let verified = ok(&server, &["audit", "verify"]).await;
    assert!(verified.contains("intact"), "{verified}");
    let listed = ok(&server, &["audit", "list"]).await;
    assert!(listed.contains("frank") && listed.contains("rollout.create"), "{listed}");
    serve.sigkill();
    {
        let db = FleetDb::open(&data.join("fleet.redb")).unwrap();
        let mut entry = db.audit(1, 1).unwrap().remove(0);
        entry.actor = "mallory".into();
        db.overwrite_audit_entry(&entry).unwrap();
    }
    serve.respawn();
    serve.ready(&client).await;
    refused(&server, &["audit", "verify"], "BROKEN at entry 1").await;
    agents.stop().await;
}
