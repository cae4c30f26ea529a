//! `edgefleet keys` / `package build` / `package inspect` / `quickstart`, run as a user would.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn model(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models").join(name).display().to_string()
}

fn edgefleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgefleet")).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        let ws = Self { dir: tempfile::tempdir().unwrap() };
        let out = edgefleet(&["keys", "generate", "--out", ws.path("keys").to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        ws
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn build(&self, out: &str, models: &[String], extra: &[&str]) -> Output {
        let key = self.path("keys/signing.key");
        let out = self.path(out);
        let mut args = vec!["package", "build", "--name", "vibration-mlp", "--version-seq", "3", "--label", "1.2.0"];
        for m in models {
            args.extend(["--model", m.as_str()]);
        }
        args.extend(["--key", key.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        edgefleet(&args)
    }
}

#[test]
fn keys_generate_refuses_to_overwrite() {
    let ws = Workspace::new();
    let again = edgefleet(&["keys", "generate", "--out", ws.path("keys").to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("refusing to overwrite"), "{}", text(&again));
}

#[test]
fn build_then_inspect_with_trust() {
    let ws = Workspace::new();
    let models =
        [format!("cpu={}", model("vibration_mlp.onnx")), format!("gpu:fp16={}", model("vibration_mlp_fp16.onnx"))];
    let out = ws.build("m.efpkg", &models, &["--golden-count", "3", "--code-revision", "abc123", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let built: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(built["manifest"]["inputs"][0]["name"], "features");
    assert_eq!(built["manifest"]["inputs"][0]["shape"][0]["Symbolic"], "batch");
    assert_eq!(built["manifest"]["outputs"][0]["shape"][1]["Fixed"], 4);
    assert_eq!(built["manifest"]["golden"].as_array().unwrap().len(), 3);
    assert_eq!(built["manifest"]["lineage"]["code_revision"], "abc123");

    let package = ws.path("m.efpkg");
    let trust = ws.path("keys/signing.pub");
    let inspected =
        edgefleet(&["package", "inspect", package.to_str().unwrap(), "--trust", trust.to_str().unwrap(), "--json"]);
    assert!(inspected.status.success(), "{}", text(&inspected));
    let value: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(value["signature_checked"], true);
    assert_eq!(value["package_id"], built["package_id"]);
    assert_eq!(value["manifest"]["variants"][1]["precision"], "fp16");

    let plain = edgefleet(&["package", "inspect", package.to_str().unwrap()]);
    assert!(text(&plain).contains("NOT checked"), "{}", text(&plain));

    // A flipped blob byte is caught by inspect even without a trust source.
    let mut bytes = std::fs::read(&package).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    std::fs::write(&package, bytes).unwrap();
    let bad = edgefleet(&["package", "inspect", package.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("digest mismatch for variant gpu"), "{}", text(&bad));
}

#[test]
fn build_refuses_what_tract_cannot_load_naming_the_reason() {
    let ws = Workspace::new();
    let out = ws.build("bad.efpkg", &[format!("cpu={}", model("not_a_model.onnx"))], &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out);
    assert!(message.contains("tract cannot load") && message.contains("not_a_model.onnx"), "{message}");
    assert!(!ws.path("bad.efpkg").exists());
}

#[test]
fn build_refuses_a_variant_that_disagrees_with_the_reference() {
    let ws = Workspace::new();
    let models =
        [format!("cpu={}", model("vibration_mlp.onnx")), format!("gpu={}", model("vibration_mlp_v2_faulty.onnx"))];
    let out = ws.build("bad.efpkg", &models, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("gpu variant misses golden vector 0"), "{}", text(&out));
    assert!(!ws.path("bad.efpkg").exists());
}

#[test]
fn build_refuses_bad_arguments_and_unsafe_keys() {
    let ws = Workspace::new();
    let cpu = format!("cpu={}", model("vibration_mlp.onnx"));
    let dup = ws.build("x.efpkg", &[cpu.clone(), cpu.clone()], &[]);
    assert!(text(&dup).contains("two models given for hardware class cpu"), "{}", text(&dup));
    let bad_class = ws.build("x.efpkg", &[format!("fpga={}", model("vibration_mlp.onnx"))], &[]);
    assert_eq!(bad_class.status.code(), Some(2), "clap rejects it as usage: {}", text(&bad_class));
    assert!(text(&bad_class).contains("unknown hardware class"), "{}", text(&bad_class));

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ws.path("keys/signing.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let open_key = ws.build("x.efpkg", &[cpu], &[]);
    assert!(text(&open_key).contains("chmod 600"), "{}", text(&open_key));
}

#[test]
fn quickstart_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = edgefleet(&["quickstart", "--dir", dir.path().to_str().unwrap()]);
    let message = text(&out);
    assert!(out.status.success(), "{message}");
    assert!(message.contains("original package:             accepted"), "{message}");
    assert!(message.contains("refused: digest mismatch for variant gpu"), "{message}");
    assert!(message.contains("refused: version sequence 1 is not newer"), "{message}");
    assert!(message.contains("refused: signed by unknown key"), "{message}");
    // Running it again reuses the key.
    let again = edgefleet(&["quickstart", "--dir", dir.path().to_str().unwrap()]);
    assert!(again.status.success() && text(&again).contains("reusing"), "{}", text(&again));
}
