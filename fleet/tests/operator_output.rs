//! What an operator sees: a scripted session of the real `edgefleet` binary against a running
//! `edgefleet serve` with real agents, in text and `--json`. Every output is scanned for Rust
//! debug renderings (`Some(`, `Number(`, `Array [`, `{"Accelerator":2}`, CamelCase enum words in
//! sentences or as JSON values), and the documented exit codes are checked: a rollout that completed 0, failed or
//! rolled back 1, usage 2, aborted 3; an unknown model is the same error and code in every
//! command, and `--json` errors are `{"error": ...}` on stderr.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use edgefleet::client::Client;
use edgefleet_protocol::hardware::HardwareClass::Cpu;
use std::process::Output;

async fn run(server: &str, args: &[&str]) -> Output {
    let (s, a): (String, Vec<String>) = (server.to_string(), args.iter().map(|x| x.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_edgefleet"))
            .args(["--server", &s, "--as", "frank"])
            .args(&a)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn out(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Words a Rust `{:?}` of our enums would put into a sentence.
const ENUM_WORDS: &[&str] = &[
    "RolledBack",
    "Rollback",
    "Paused",
    "Running",
    "Completed",
    "Stopped",
    "Aborted",
    "InsufficientSample",
    "InsufficientInferences",
    "Inconclusive",
    "UnreachableBudget",
    "Regressed",
    "NoControl",
    "Cpu",
    "Gpu",
    "Accelerator",
    "Null",
];

/// The debug renderings found in `text` (`json`: the output is JSON, where enum values are
/// quoted strings and only tagged enums and debug forms count).
fn debug_renderings(text: &str, json: bool) -> Vec<String> {
    let mut found = Vec::new();
    for pat in ["Number(", "Array [", "String(", "Object {", "Some(", "None)", "Ok(", "Err("] {
        if text.contains(pat) {
            found.push(pat.to_string());
        }
    }
    // `Word(`: a capitalized identifier straight before a parenthesis.
    for (i, _) in text.match_indices('(') {
        let word: String = text[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let mut chars = word.chars();
        if chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.any(|c| c.is_ascii_lowercase()) {
            found.push(format!("{word}("));
        }
    }
    // `{"Word":`: an externally tagged enum.
    for (i, _) in text.match_indices("{\"") {
        let rest = &text[i + 2..];
        let word: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        if word.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && rest[word.len()..].starts_with("\":") {
            found.push(format!("{{\"{word}\":"));
        }
    }
    if json {
        // One casing for enum values in JSON: `"cpu"`, `"rolled_back"`, never `"Cpu"`.
        for word in ENUM_WORDS {
            if text.contains(&format!("\"{word}\"")) {
                found.push(format!("\"{word}\" (JSON enum values are lower case)"));
            }
        }
    } else {
        // Words in sentences: quoted JSON strings (an audit entry's stored detail) are values,
        // not sentences.
        let mut bare = String::new();
        let mut quoted = false;
        for c in text.chars() {
            if c == '"' {
                quoted = !quoted;
            } else if !quoted {
                bare.push(c);
            }
        }
        for word in bare.split(|c: char| !c.is_ascii_alphanumeric()) {
            if ENUM_WORDS.contains(&word) {
                found.push(word.to_string());
            }
        }
    }
    found
}

struct Session {
    server: String,
    seen: Vec<(String, String)>,
}

impl Session {
    /// Runs a command, records its output for the scan, and returns (code, stdout, stderr).
    async fn cmd(&mut self, args: &[&str]) -> (i32, String, String) {
        let o = run(&self.server, args).await;
        let (stdout, stderr) = out(&o);
        self.seen.push((args.join(" "), stdout.clone() + &stderr));
        (o.status.code().unwrap_or(-1), stdout, stderr)
    }

    async fn ok(&mut self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.cmd(args).await;
        assert_eq!(code, 0, "edgefleet {args:?}: {stdout}{stderr}");
        stdout
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_output_has_no_debug_renderings_and_exit_codes_are_documented() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = ServeProcess::start(dir.path());
    let namespace = serve.namespace.clone();
    let client = Client::new(&serve.http, "frank");
    serve.ready(&client).await;
    let mut s = Session { server: serve.http.clone(), seen: Vec::new() };

    let fleet = devices("box", 3, Cpu);
    let agents = Agents::start(dir.path(), &serve.mqtt, &namespace, &fleet);
    wait_for(&client, "/v1/devices", 60, |d| d.as_array().unwrap().len() == 3).await;
    let good = model("vibration_mlp.onnx");
    for seq in [2, 3, 4] {
        let pkg = dir.path().join(format!("v{seq}.efpkg"));
        std::fs::write(&pkg, package(seq, &[(Cpu, &good)])).unwrap();
        s.ok(&["model", "push", pkg.to_str().unwrap()]).await;
    }

    // Usage: 2.
    let (code, _, _) = s.cmd(&["rollout", "status"]).await;
    assert_eq!(code, 2, "a missing argument is a usage error");

    // A rollout that completes: 0, with units as given.
    let create = [
        "rollout",
        "create",
        "--model",
        "vibration-mlp",
        "--version-seq",
        "2",
        "--stages",
        "50%,100%",
        "--bake",
        "0s",
        "--max-failure-rate",
        "50%",
        "--confidence",
        "80%",
        "--min-sample",
        "1",
        "--probation",
        "1s",
    ];
    s.ok(&create).await;
    let watched = s.ok(&["rollout", "status", "1", "--watch"]).await;
    assert!(
        watched.contains("completed") && watched.contains("failure ≤ 50%") && watched.contains("bake 0s"),
        "{watched}"
    );

    // A rollout aborted: 3.
    let mut later: Vec<&str> = create.to_vec();
    later[5] = "3";
    later[9] = "1h";
    s.ok(&later).await;
    s.ok(&["rollout", "abort", "2", "--reason", "test"]).await;
    let (code, text, _) = s.cmd(&["rollout", "status", "2"]).await;
    assert_eq!(code, 3, "aborted: {text}");
    assert!(text.contains("bake 1h") && text.contains("aborted"), "{text}");
    let (code, _, _) = s.cmd(&["rollout", "status", "2", "--watch", "--json"]).await;
    assert_eq!(code, 3);

    // A rollout rolled back: 1.
    later[5] = "4";
    s.ok(&later).await;
    s.ok(&["rollout", "rollback", "3", "--reason", "test"]).await;
    let (code, text, _) = s.cmd(&["rollout", "status", "3", "--watch"]).await;
    assert_eq!(code, 1, "rolled back: {text}");
    assert!(text.contains("rolled back"), "{text}");

    // An unknown model: the same message and code everywhere; with --json, {"error"} on stderr.
    let csv = dir.path().join("samples.csv");
    let unknown: [Vec<&str>; 3] = [
        vec!["health", "--model", "nope"],
        vec!["samples", "export", "--model", "nope", "--out", csv.to_str().unwrap()],
        vec!["drift", "report", "--model", "nope"],
    ];
    let mut messages = Vec::new();
    for args in &unknown {
        let (code, _, stderr) = s.cmd(args).await;
        assert_eq!(code, 1, "edgefleet {args:?}: {stderr}");
        messages.push(stderr);
        let mut json = args.clone();
        json.push("--json");
        let (code, stdout, stderr) = s.cmd(&json).await;
        assert_eq!(code, 1, "edgefleet {json:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        let body: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
        assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
    }
    assert!(messages.iter().all(|m| m == &messages[0] && m.contains("unknown model")), "{messages:?}");
    assert!(!csv.exists(), "no CSV for an unknown model");

    // Everything else an operator reads, in text and JSON.
    for args in [
        vec!["devices", "list"],
        vec!["devices", "show", "box-00"],
        vec!["model", "list"],
        vec!["model", "show", "vibration-mlp"],
        vec!["rollout", "list"],
        vec!["rollout", "status", "1"],
        vec!["health"],
        vec!["health", "--model", "vibration-mlp"],
        vec!["audit", "list"],
        vec!["scorecard", "1"],
    ] {
        s.ok(&args).await;
        let mut json = args.clone();
        json.push("--json");
        let answer = s.ok(&json).await;
        serde_json::from_str::<serde_json::Value>(&answer).unwrap_or_else(|e| panic!("{json:?}: {e}: {answer}"));
    }
    // The audit log: newest first, paged; --from lists oldest first as before.
    let newest = s.ok(&["audit", "list", "--limit", "2"]).await;
    let seqs: Vec<u64> = newest.lines().filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect();
    assert!(seqs.len() == 2 && seqs[0] > seqs[1], "{newest}");
    assert!(newest.contains("--page 2"), "{newest}");
    let older = s.ok(&["audit", "list", "--limit", "2", "--page", "2"]).await;
    assert!(older.lines().next().unwrap().trim().starts_with(&(seqs[1] - 1).to_string()), "{older}");
    let oldest = s.ok(&["audit", "list", "--from", "0", "--limit", "1"]).await;
    assert!(oldest.trim_start().starts_with('0'), "{oldest}");

    // Selectors with `!=` and `in (...)`, labels by selector, health by selector and state.
    let labelled = s.ok(&["devices", "label", "--select", "device in (box-00,box-01)", "site=plant-3"]).await;
    assert!(labelled.contains("2 device(s) labelled"), "{labelled}");
    let listed = s.ok(&["devices", "list", "--select", "site!=plant-3"]).await;
    assert!(listed.contains("box-02") && !listed.contains("box-00"), "{listed}");
    let health = s.ok(&["health", "--select", "site in (plant-3)", "--state", "healthy", "--json"]).await;
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert!(health.as_array().unwrap().iter().all(|h| h["device"] != "box-02"), "{health}");
    let (code, _, _) = s.cmd(&["health", "--state", "sideways"]).await;
    assert_eq!(code, 2, "an unknown state is a usage error");

    let shown = s.ok(&["devices", "show", "box-00"]).await;
    assert!(shown.starts_with("device box-00") && shown.contains("hardware   cpu"), "{shown}");
    let quick = s.ok(&["quickstart", "--json", "--dir", dir.path().join("qs").to_str().unwrap()]).await;
    let quick: serde_json::Value = serde_json::from_str(&quick).unwrap();
    assert_eq!(quick["verify"]["original"], "accepted");

    let mut bad = Vec::new();
    for (command, text) in &s.seen {
        let json = command.contains("--json");
        for found in debug_renderings(text, json) {
            bad.push(format!("edgefleet {command}: {found}\n{text}"));
        }
    }
    assert!(bad.is_empty(), "debug renderings in operator output:\n{}", bad.join("\n---\n"));
    agents.stop().await;
}

#[test]
fn the_scan_catches_debug_renderings() {
    assert!(!debug_renderings("error rate new Array [Number(0.0)]", false).is_empty());
    assert!(!debug_renderings("phase failed (Rollback)", false).is_empty());
    assert!(!debug_renderings("{\"Accelerator\":2}", true).is_empty());
    assert!(!debug_renderings("rollout 3 is Paused: cannot pause it", false).is_empty());
    assert!(!debug_renderings("held (InsufficientInferences)", false).is_empty());
    assert!(debug_renderings("rollout 1 vibration-mlp@2: rolled back (3 devices)", false).is_empty());
    assert!(!debug_renderings("{\"hardware\": \"Cpu\", \"status\": \"RolledBack\"}", true).is_empty());
    assert!(debug_renderings("{\"hardware\": \"cpu\", \"status\": \"rolled_back\"}", true).is_empty());
}

#[test]
fn completion_scripts_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let o =
            std::process::Command::new(env!("CARGO_BIN_EXE_edgefleet")).args(["completion", shell]).output().unwrap();
        assert!(o.status.success(), "{shell}");
        let script = String::from_utf8(o.stdout).unwrap();
        assert!(script.contains("edgefleet") && script.contains("rollout"), "{shell}: {script}");
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_edgefleet")).args(["completion", "tcsh9"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "an unknown shell is a usage error");
}
