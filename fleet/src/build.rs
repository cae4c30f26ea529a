//! `edgefleet package build`: ONNX files in, one signed `.efpkg` out.
//!
//! The interface comes from the models (tract must load every variant, and all variants must
//! agree on it), golden vectors come from running the reference variant (CPU if present) on
//! seeded inputs, and every variant must reproduce them within its tolerance before the
//! package is written: a package that would fail validation on every device is never built.

use crate::golden::synthetic_inputs;
use crate::keys::{KeyError, load_signing_key};
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::{
    DriftReference, FORMAT_VERSION, GoldenVector, Lineage, Manifest, Variant, WriteError, hash_reader, write_package,
};
use edgefleet_protocol::tensor::{Comparison, ElemType, TensorSpec, Tolerance};
use edgefleet_protocol::{Digest, ModelName, SemVer};
use edgefleet_runtime::{InferenceError, LoadError, Model, TractModel};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One `--model CLASS[:PRECISION]=PATH` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelArg {
    /// Hardware class of the variant.
    pub class: HardwareClass,
    /// Its precision (default fp32).
    pub precision: Precision,
    /// The ONNX file.
    pub path: PathBuf,
}

impl FromStr for ModelArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (target, path) = s.split_once('=').ok_or_else(|| format!("expected CLASS[:PRECISION]=PATH, got {s:?}"))?;
        let (class, precision) = match target.split_once(':') {
            Some((class, precision)) => (
                class,
                precision.parse().map_err(|_| format!("unknown precision {precision:?} (fp32, fp16, bf16, int8)"))?,
            ),
            None => (target, Precision::Fp32),
        };
        let class = class.parse().map_err(|e| format!("{e}"))?;
        if path.is_empty() {
            return Err(format!("no model path in {s:?}"));
        }
        Ok(Self { class, precision, path: path.into() })
    }
}

/// Everything `package build` needs.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// Model name.
    pub name: ModelName,
    /// Version sequence.
    pub version_seq: u64,
    /// Human label.
    pub label: String,
    /// Variants.
    pub models: Vec<ModelArg>,
    /// Signing key file.
    pub key: PathBuf,
    /// Output file.
    pub out: PathBuf,
    /// Minimum agent version.
    pub min_agent_version: SemVer,
    /// Golden vectors to generate.
    pub golden_count: usize,
    /// Overrides every variant's default golden tolerance (abs and rel).
    pub tolerance: Option<f32>,
    /// Accelerator family, for an accelerator variant.
    pub accelerator_kind: Option<String>,
    /// Drift reference profile (JSON file).
    pub drift_reference: Option<PathBuf>,
    /// Lineage (its `created_at_ms` is filled in at build time when zero).
    pub lineage: Lineage,
}

/// Building failed; nothing was written at `out`.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No `--model` given.
    #[error("at least one --model CLASS=PATH is required")]
    NoModels,
    /// Two variants for one class.
    #[error("two models given for hardware class {0}: a package holds one variant per class")]
    DuplicateClass(HardwareClass),
    /// A model tract cannot load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Running a model on the golden inputs failed.
    #[error("running {path} on golden inputs: {source}")]
    Run {
        /// The model file.
        path: PathBuf,
        /// Why.
        source: InferenceError,
    },
    /// Variants disagree on the interface.
    #[error("{variant} variant {path} does not match the {reference} variant's interface: {detail}")]
    InterfaceMismatch {
        /// The disagreeing variant.
        variant: HardwareClass,
        /// Its file.
        path: PathBuf,
        /// The reference variant.
        reference: HardwareClass,
        /// What differs.
        detail: String,
    },
    /// A variant does not reproduce the golden outputs within its tolerance.
    #[error("{variant} variant misses golden vector {vector}: max abs diff {max_abs_diff} exceeds tolerance abs {} rel {} (pass --tolerance to loosen)", tolerance.abs, tolerance.rel)]
    GoldenSelfCheck {
        /// The variant.
        variant: HardwareClass,
        /// Vector index.
        vector: usize,
        /// Largest difference.
        max_abs_diff: f64,
        /// Tolerance applied.
        tolerance: Tolerance,
    },
    /// The signing key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A drift reference file is unreadable or invalid.
    #[error("drift reference {path}: {detail}")]
    DriftReference {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// Writing failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The output.
        path: PathBuf,
        /// Why.
        source: WriteError,
    },
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What was built.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// SHA-256 of the package head.
    pub package_id: Digest,
    /// Package file size.
    pub size: u64,
    /// The signed manifest.
    pub manifest: Manifest,
}

/// Default golden tolerance for a precision: fp32 results differ only by kernel order,
/// half precision by ~1e-3 relative, int8 by quantization steps.
pub fn default_tolerance(precision: Precision) -> Tolerance {
    match precision {
        Precision::Fp32 => Tolerance { abs: 1e-4, rel: 1e-4 },
        Precision::Fp16 | Precision::Bf16 => Tolerance { abs: 1e-2, rel: 1e-2 },
        Precision::Int8 => Tolerance { abs: 5e-2, rel: 5e-2 },
    }
}

fn interface_difference(reference: &[TensorSpec], other: &[TensorSpec], what: &str) -> Option<String> {
    if reference.len() != other.len() {
        return Some(format!("{} {what}s vs {}", other.len(), reference.len()));
    }
    let float = |e: ElemType| matches!(e, ElemType::F32 | ElemType::F16);
    reference.iter().zip(other).find_map(|(r, o)| {
        let elem_ok = r.elem == o.elem || (float(r.elem) && float(o.elem));
        (r.name != o.name || r.shape != o.shape || !elem_ok).then(|| format!("{what} {o} vs {r}"))
    })
}

fn now_ms() -> u64 {
    // SOURCE_DATE_EPOCH makes builds reproducible (same inputs, same package id).
    if let Some(seconds) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse::<u64>().ok()) {
        return seconds.saturating_mul(1000);
    }
    edgefleet_protocol::time::unix_now_ms()
}

/// Builds and signs the package described by `request`.
pub fn build_package(request: &BuildRequest) -> Result<BuildReport, BuildError> {
    if request.models.is_empty() {
        return Err(BuildError::NoModels);
    }
    for (i, m) in request.models.iter().enumerate() {
        if request.models[..i].iter().any(|o| o.class == m.class) {
            return Err(BuildError::DuplicateClass(m.class));
        }
    }
    let key = load_signing_key(&request.key)?;
    let mut loaded: Vec<TractModel> =
        request.models.iter().map(|m| TractModel::load(&m.path)).collect::<Result<_, _>>()?;

    // The CPU variant (or the first) defines the interface and the expected outputs.
    let reference = request.models.iter().position(|m| m.class == HardwareClass::Cpu).unwrap_or(0);
    let (inputs_spec, outputs_spec) = (loaded[reference].inputs().to_vec(), loaded[reference].outputs().to_vec());
    for (arg, model) in request.models.iter().zip(&loaded) {
        let detail = interface_difference(&inputs_spec, model.inputs(), "input")
            .or_else(|| interface_difference(&outputs_spec, model.outputs(), "output"));
        if let Some(detail) = detail {
            return Err(BuildError::InterfaceMismatch {
                variant: arg.class,
                path: arg.path.clone(),
                reference: request.models[reference].class,
                detail,
            });
        }
    }

    let mut golden = Vec::with_capacity(request.golden_count);
    for i in 0..request.golden_count {
        let inputs = synthetic_inputs(&inputs_spec, request.version_seq.wrapping_mul(1000).wrapping_add(i as u64));
        let reference_path = &request.models[reference].path;
        let expected = loaded[reference]
            .run(&inputs)
            .map_err(|source| BuildError::Run { path: reference_path.clone(), source })?;
        golden.push(GoldenVector { inputs, expected });
    }

    let mut variants = Vec::with_capacity(request.models.len());
    for (arg, model) in request.models.iter().zip(&mut loaded) {
        let tolerance =
            request.tolerance.map(|t| Tolerance { abs: t, rel: t }).unwrap_or_else(|| default_tolerance(arg.precision));
        for (vector, g) in golden.iter().enumerate() {
            let actual = model.run(&g.inputs).map_err(|source| BuildError::Run { path: arg.path.clone(), source })?;
            for (expected, actual) in g.expected.iter().zip(&actual) {
                if let Comparison::Outside { max_abs_diff } = tolerance.compare(expected, actual) {
                    return Err(BuildError::GoldenSelfCheck { variant: arg.class, vector, max_abs_diff, tolerance });
                }
            }
        }
        let file = File::open(&arg.path).map_err(|source| BuildError::Io { path: arg.path.clone(), source })?;
        let (digest, size) =
            hash_reader(BufReader::new(file)).map_err(|source| BuildError::Io { path: arg.path.clone(), source })?;
        variants.push(Variant {
            hardware: arg.class,
            precision: arg.precision,
            accelerator_kind: (arg.class == HardwareClass::Accelerator)
                .then(|| request.accelerator_kind.clone())
                .flatten(),
            digest,
            size,
            golden_tolerance: tolerance,
        });
    }

    let drift_reference = match &request.drift_reference {
        Some(path) => read_drift_reference(path)?,
        None => DriftReference::default(),
    };
    let mut lineage = request.lineage.clone();
    if lineage.created_at_ms == 0 {
        lineage.created_at_ms = now_ms();
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        name: request.name.clone(),
        version_seq: request.version_seq,
        label: request.label.clone(),
        min_agent_version: request.min_agent_version,
        inputs: inputs_spec,
        outputs: outputs_spec,
        variants,
        golden,
        drift_reference,
        lineage,
    };
    let package_id = write_atomically(&request.out, &manifest, &key, &request.models)?;
    let size = fs::metadata(&request.out).map_err(|source| BuildError::Io { path: request.out.clone(), source })?.len();
    Ok(BuildReport { package_id, size, manifest })
}

fn read_drift_reference(path: &Path) -> Result<DriftReference, BuildError> {
    let text = fs::read_to_string(path).map_err(|source| BuildError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text)
        .map_err(|e| BuildError::DriftReference { path: path.to_path_buf(), detail: e.to_string() })
}

/// Writes to `OUT.partial`, fsyncs, renames: a crash never leaves a half package at `OUT`.
fn write_atomically(
    out: &Path,
    manifest: &Manifest,
    key: &ed25519_dalek::SigningKey,
    models: &[ModelArg],
) -> Result<Digest, BuildError> {
    let partial = out.with_extension("efpkg.partial");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    let mut blobs = Vec::with_capacity(models.len());
    for m in models {
        blobs.push(BufReader::new(File::open(&m.path).map_err(io(&m.path))?));
    }
    let file = File::create(&partial).map_err(io(&partial))?;
    let mut writer = BufWriter::new(file);
    let result = write_package(&mut writer, manifest, key, &mut blobs);
    let package_id = match result {
        Ok(id) => id,
        Err(source) => {
            let _ = fs::remove_file(&partial);
            return Err(BuildError::Write { path: out.to_path_buf(), source });
        }
    };
    let file = writer.into_inner().map_err(|e| BuildError::Io { path: partial.clone(), source: e.into_error() })?;
    file.sync_all().map_err(io(&partial))?;
    fs::rename(&partial, out).map_err(io(out))?;
    Ok(package_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_args() {
        let arg: ModelArg = "gpu:fp16=m.onnx".parse().unwrap();
        assert_eq!(
            (arg.class, arg.precision, arg.path),
            (HardwareClass::Gpu, Precision::Fp16, PathBuf::from("m.onnx"))
        );
        assert_eq!("cpu=a=b.onnx".parse::<ModelArg>().unwrap().path, PathBuf::from("a=b.onnx"));
        assert_eq!("accelerator:int8=x".parse::<ModelArg>().unwrap().class, HardwareClass::Accelerator);
        let tpu = "tpu=x".parse::<ModelArg>().unwrap_err();
        assert!(tpu.contains("class \"accelerator\""), "{tpu}");
        assert!("tpu9=x".parse::<ModelArg>().is_err());
        assert!("cpu:fp8=x".parse::<ModelArg>().is_err());
        assert!("model.onnx".parse::<ModelArg>().is_err());
        assert!("cpu=".parse::<ModelArg>().is_err());
    }
}
