//! `edgefleet-agent infer` on the committed fixtures: a bare ONNX model and the signed
//! package (verified, its CPU variant run), JSON and `.npy` in and out, golden vectors
//! reproduced through the agent's runtime, and clear refusals.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet_agent::inference::npy::{self, NpyArray, NpyData};
use edgefleet_agent::inference::package::{check_golden, read_package_variant};
use edgefleet_agent::inference::{Model, TractModel};
use edgefleet_agent::verify::VerifyRequest;
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::tensor::{Comparison, Tensor, TensorData};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(path)
}

fn model() -> String {
    fixture("models/vibration_mlp.onnx").display().to_string()
}

fn package() -> String {
    fixture("packages/vibration-mlp-1.efpkg").display().to_string()
}

fn trust() -> String {
    fixture("packages/fixture.pub").display().to_string()
}

/// Runs the agent; returns exit code, stdout, stderr.
fn agent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgefleet-agent")).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap(), text(&out.stdout), text(&out.stderr))
}

fn features() -> Vec<f32> {
    vec![0.3, -0.2, 0.9, 0.1, -0.7, 0.4, 0.05, -0.5]
}

fn request_json(data: &[f32], shape: &[u64]) -> String {
    json!({"inputs": [{"name": "features", "shape": shape, "data": data}]}).to_string()
}

fn scores(response: &Value) -> Vec<f64> {
    response["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

#[test]
fn json_in_json_out_on_the_bare_model_and_the_package_agree() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.json");
    std::fs::write(&input, request_json(&features(), &[1, 8])).unwrap();
    let input = input.to_str().unwrap();

    let (code, stdout, stderr) = agent(&["infer", "--model", &model(), "--input", input, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let bare: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(bare["outputs"][0]["name"], "scores");
    assert_eq!(bare["outputs"][0]["shape"], json!([1, 4]));
    let sum: f64 = scores(&bare).iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "{sum}");

    let (code, stdout, stderr) =
        agent(&["infer", "--package", &package(), "--trust", &trust(), "--input", input, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let packaged: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(packaged["model"], json!({"name": "vibration-mlp", "version_seq": 1, "label": "1.0.0"}));
    assert_eq!(scores(&packaged), scores(&bare), "the package's CPU variant is the same model");

    // Human output names the model and the output.
    let (code, stdout, _) = agent(&["infer", "--package", &package(), "--trust", &trust(), "--input", input]);
    assert_eq!(code, 0);
    assert!(stdout.contains("model vibration-mlp v1 (1.0.0)") && stdout.contains("scores [1, 4] f32: ["), "{stdout}");
}

#[test]
fn npy_in_npy_and_json_out_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    // f64 input: narrowed to f32 on the way in, like the model's own inputs.
    let values: Vec<f64> = (0..16).map(|i| (i as f64 * 0.21).cos()).collect();
    std::fs::write(&x, npy::encode(&NpyArray { shape: vec![2, 8], data: NpyData::F64(values.clone()) })).unwrap();
    let y_npy = dir.path().join("y.npy");
    let y_json = dir.path().join("y.json");
    for y in [&y_npy, &y_json] {
        let (code, _, stderr) = agent(&[
            "infer",
            "--package",
            &package(),
            "--trust",
            &trust(),
            "--input",
            x.to_str().unwrap(),
            "--output",
            y.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stderr}");
    }
    let out = npy::decode(&std::fs::read(&y_npy).unwrap()).unwrap();
    assert_eq!(out.shape, vec![2, 4]);
    let NpyData::F32(npy_scores) = &out.data else { panic!("{:?}", out.data) };
    for row in npy_scores.chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
    let json: Value = serde_json::from_slice(&std::fs::read(&y_json).unwrap()).unwrap();
    let json_scores: Vec<f32> = scores(&json).iter().map(|v| *v as f32).collect();
    assert_eq!(&json_scores, npy_scores);

    // The same values through the library give the same numbers.
    let mut model = TractModel::load(Path::new(&model())).unwrap();
    let input = NpyArray { shape: vec![2, 8], data: NpyData::F64(values) }.into_tensor();
    assert_eq!(model.run(&[input]).unwrap()[0].data, TensorData::F32(npy_scores.clone()));
}

#[test]
fn golden_vectors_reproduce_through_the_runtime() {
    let (package_path, trust_path) = (package(), trust());
    let request =
        VerifyRequest { package: Path::new(&package_path), trust: Path::new(&trust_path), installed_seq: None };
    let cpu = read_package_variant(&request, HardwareClass::Cpu).unwrap();
    let golden = &cpu.verified.manifest.golden;
    assert!(!golden.is_empty(), "the fixture carries golden vectors");
    let mut model = TractModel::from_bytes(&cpu.blob).unwrap();
    let worst = check_golden(&mut model, golden, cpu.tolerance()).unwrap();
    assert!(worst <= f64::from(cpu.tolerance().abs), "{worst}");

    // The fp16 GPU variant, run on tract's CPU runtime, meets its own (looser) tolerance too.
    let gpu = read_package_variant(&request, HardwareClass::Gpu).unwrap();
    assert_ne!(gpu.variant_index, cpu.variant_index);
    check_golden(&mut TractModel::from_bytes(&gpu.blob).unwrap(), golden, gpu.tolerance()).unwrap();

    // And through the CLI, vector by vector, within the CPU variant's tolerance.
    let dir = tempfile::tempdir().unwrap();
    for (i, g) in golden.iter().enumerate() {
        let TensorData::F32(data) = &g.inputs[0].data else { panic!("f32 inputs") };
        let input = dir.path().join(format!("g{i}.json"));
        std::fs::write(&input, request_json(data, &g.inputs[0].shape)).unwrap();
        let (code, stdout, stderr) = agent(&[
            "infer",
            "--package",
            &package(),
            "--trust",
            &trust(),
            "--input",
            input.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let response: Value = serde_json::from_str(&stdout).unwrap();
        let actual = Tensor {
            shape: g.expected[0].shape.clone(),
            data: TensorData::F32(scores(&response).iter().map(|v| *v as f32).collect()),
        };
        let comparison = cpu.tolerance().compare(&g.expected[0], &actual);
        assert!(matches!(comparison, Comparison::Within { .. }), "vector {i}: {comparison:?}");
    }
}

#[test]
fn bad_inputs_and_bad_packages_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, request_json(&[0.0; 7], &[1, 7])).unwrap();
    let (code, stdout, stderr) = agent(&["infer", "--model", &model(), "--input", bad_json.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr
            .contains("input \"features\" has shape [1, 7], the model expects [batch,8]: dimension 1 is 7, must be 8"),
        "{stderr}"
    );

    let bad_npy = dir.path().join("bad.npy");
    std::fs::write(&bad_npy, npy::encode(&NpyArray { shape: vec![8], data: NpyData::F32(vec![0.0; 8]) })).unwrap();
    let (code, _, stderr) = agent(&["infer", "--model", &model(), "--input", bad_npy.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("rank 1 instead of 2"), "{stderr}");

    let short = dir.path().join("short.json");
    std::fs::write(&short, request_json(&[0.0; 3], &[1, 8])).unwrap();
    let (code, _, stderr) = agent(&["infer", "--model", &model(), "--input", short.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("shape [1, 8] does not hold 3 values"), "{stderr}");

    let input = dir.path().join("x.json");
    std::fs::write(&input, request_json(&features(), &[1, 8])).unwrap();
    let input = input.to_str().unwrap();

    // A tampered package is rejected with the verifier's reason, before anything runs.
    let mut bytes = std::fs::read(package()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = dir.path().join("tampered.efpkg");
    std::fs::write(&tampered, bytes).unwrap();
    let (code, _, stderr) =
        agent(&["infer", "--package", tampered.to_str().unwrap(), "--trust", &trust(), "--input", input]);
    assert_eq!(code, 2);
    assert!(stderr.contains("rejected") && stderr.contains("digest"), "{stderr}");

    let (code, _, stderr) =
        agent(&["infer", "--model", &fixture("models/not_a_model.onnx").display().to_string(), "--input", input]);
    assert_eq!(code, 2);
    assert!(stderr.contains("tract cannot load"), "{stderr}");

    let (code, _, stderr) = agent(&["infer", "--package", &package(), "--input", input]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--trust"), "{stderr}");

    let (code, _, stderr) = agent(&["infer", "--model", &model(), "--input", input, "--output", "y.txt"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("use a .npy or .json file"), "{stderr}");
}
