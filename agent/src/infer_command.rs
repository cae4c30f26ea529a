//! `edgefleet-agent infer`: run a model once from the command line (binary-only module).

use anyhow::{Context, anyhow, bail};
use edgefleet_agent::inference::json::{InferRequest, InferResponse, JsonTensorError};
use edgefleet_agent::inference::model::arrange_inputs;
use edgefleet_agent::inference::npy::{self, NpyArray};
use edgefleet_agent::inference::package::read_package_variant;
use edgefleet_agent::inference::{InferenceError, InferenceOutcome, Model, ModelInfo, NamedTensor, TractModel};
use edgefleet_agent::verify::VerifyRequest;
use edgefleet_protocol::ModelName;
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::tensor::{Tensor, TensorData};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Where the model comes from.
pub(crate) enum ModelArg {
    /// A package, verified against a trust source; its CPU variant runs.
    Package { package: PathBuf, trust: PathBuf },
    /// A bare ONNX file.
    Onnx(PathBuf),
}

/// Everything `infer` needs.
pub(crate) struct InferArgs {
    pub(crate) model: ModelArg,
    pub(crate) input: PathBuf,
    pub(crate) output: Option<PathBuf>,
    pub(crate) json: bool,
}

enum Format {
    Npy,
    Json,
}

fn format_of(path: &Path) -> anyhow::Result<Format> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("npy") => Ok(Format::Npy),
        Some("json") => Ok(Format::Json),
        _ => bail!("{}: use a .npy or .json file", path.display()),
    }
}

/// Runs the command; exit 0 on success, 1 when the input does not fit the model or the model
/// fails on it, 2 when the model, package or files cannot be used.
pub(crate) fn run(args: InferArgs) -> ExitCode {
    match infer(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let bad_input =
                error.downcast_ref::<InferenceError>().is_some() || error.downcast_ref::<JsonTensorError>().is_some();
            if bad_input { ExitCode::from(1) } else { ExitCode::from(2) }
        }
    }
}

fn load(model: &ModelArg) -> anyhow::Result<(TractModel, ModelInfo)> {
    match model {
        ModelArg::Package { package, trust } => {
            let request = VerifyRequest { package, trust, installed_seq: None };
            let variant = read_package_variant(&request, HardwareClass::Cpu)
                .with_context(|| format!("package {} rejected", package.display()))?;
            let manifest = &variant.verified.manifest;
            let model = TractModel::from_bytes(&variant.blob)?;
            let info = ModelInfo {
                name: manifest.name.clone(),
                version_seq: manifest.version_seq,
                label: manifest.label.clone(),
            };
            Ok((model, info))
        }
        ModelArg::Onnx(path) => {
            let model = TractModel::load(path)?;
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let name = ModelName::new(stem).or_else(|_| ModelName::new("model"))?;
            Ok((model, ModelInfo { name, version_seq: 0, label: "unpackaged".into() }))
        }
    }
}

fn read_inputs(path: &Path, model: &dyn Model) -> anyhow::Result<Vec<NamedTensor>> {
    let format = format_of(path)?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    match format {
        Format::Npy => {
            if model.inputs().len() != 1 {
                bail!("the model takes {} inputs; a .npy file holds one: use a .json input", model.inputs().len());
            }
            let array = npy::decode(&bytes).with_context(|| path.display().to_string())?;
            Ok(vec![NamedTensor { name: None, tensor: array.into_tensor() }])
        }
        Format::Json => {
            let request: InferRequest =
                serde_json::from_slice(&bytes).with_context(|| format!("{}: not an infer request", path.display()))?;
            Ok(request.into_named().with_context(|| path.display().to_string())?)
        }
    }
}

fn infer(args: &InferArgs) -> anyhow::Result<()> {
    let (mut model, info) = load(&args.model)?;
    // Check the output path before spending time on inference.
    let output_format = args.output.as_deref().map(format_of).transpose()?;
    let named = read_inputs(&args.input, &model)?;
    let inputs = arrange_inputs(model.inputs(), named)?;
    let start = Instant::now();
    let outputs = model.run(&inputs)?;
    let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let output_names = model.outputs().iter().map(|s| s.name.clone()).collect();
    let outcome = InferenceOutcome { outputs, output_names, latency_us, inference_id: 1, model: info };
    if let (Some(path), Some(format)) = (&args.output, output_format) {
        write_outputs(path, format, &outcome)?;
    }
    let response = InferResponse::from(outcome);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&response)?);
    } else {
        let m = &response.model;
        println!("model {} v{} ({}), {} µs", m.name, m.version_seq, m.label, response.latency_us);
        for output in &response.outputs {
            println!("  {} {:?} {}: {}", output.name, output.shape, output.dtype, preview(&output.data));
        }
    }
    Ok(())
}

/// The first values of a tensor, in their shortest exact form.
fn preview(data: &TensorData) -> String {
    const SHOWN: usize = 32;
    fn list<T: std::fmt::Display>(v: &[T]) -> String {
        let mut text = v.iter().take(SHOWN).map(T::to_string).collect::<Vec<_>>().join(", ");
        if v.len() > SHOWN {
            text.push_str(&format!(", … ({} more)", v.len() - SHOWN));
        }
        format!("[{text}]")
    }
    match data {
        TensorData::F32(v) => list(v),
        TensorData::I64(v) => list(v),
        TensorData::I32(v) => list(v),
        TensorData::U8(v) => list(v),
        TensorData::I8(v) => list(v),
        TensorData::Bool(v) => list(v),
    }
}

fn write_outputs(path: &Path, format: Format, outcome: &InferenceOutcome) -> anyhow::Result<()> {
    let bytes = match format {
        Format::Npy => {
            let first: &Tensor = outcome.outputs.first().ok_or_else(|| anyhow!("the model returned no output"))?;
            if outcome.outputs.len() > 1 {
                eprintln!(
                    "note: {} holds the first of {} outputs; use .json for all",
                    path.display(),
                    outcome.outputs.len()
                );
            }
            npy::encode(&NpyArray::from(first.clone()))
        }
        Format::Json => {
            let response = InferResponse::from(outcome.clone());
            let mut text = serde_json::to_vec_pretty(&response)?;
            text.push(b'\n');
            text
        }
    };
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
