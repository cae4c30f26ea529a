use super::error::PackageError;
use super::head::FORMAT_VERSION;
use crate::drift::DriftReference;
use crate::hardware::{HardwareClass, Precision};
use crate::ids::{Digest, ModelName};
use crate::tensor::{Tensor, TensorSpec, Tolerance};
use crate::version::SemVer;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Most variants in one package.
pub const MAX_VARIANTS: usize = 8;

/// One model file for one hardware class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Class it targets (at most one variant per class).
    pub hardware: HardwareClass,
    /// Numeric precision.
    pub precision: Precision,
    /// For accelerator variants, the accelerator family it was compiled for.
    pub accelerator_kind: Option<String>,
    /// SHA-256 of the ONNX blob.
    pub digest: Digest,
    /// Blob size in bytes.
    pub size: u64,
    /// Tolerance for the golden vectors on this variant (fp16/int8 need looser ones).
    pub golden_tolerance: Tolerance,
}

/// Inputs and the outputs they must produce, run before a version is activated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenVector {
    /// One tensor per manifest input, in order.
    pub inputs: Vec<Tensor>,
    /// One tensor per manifest output, in order.
    pub expected: Vec<Tensor>,
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lineage {
    /// Training run that produced it.
    pub training_run_id: Option<String>,
    /// SHA-256 of the training dataset.
    pub dataset_digest: Option<Digest>,
    /// SHA-256 of the pipeline spec.
    pub pipeline_spec_digest: Option<Digest>,
    /// Source revision of the training code.
    pub code_revision: Option<String>,
    /// Version sequence this one was derived from.
    pub parent_version_seq: Option<u64>,
    /// Build time, ms since the Unix epoch.
    pub created_at_ms: u64,
}

/// Everything the signature covers. Field order is the wire order (see PACKAGE.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Equals the header's format version (so the signature binds it).
    pub format_version: u16,
    /// Model name.
    pub name: ModelName,
    /// Monotonically increasing version (anti-rollback).
    pub version_seq: u64,
    /// Human label, e.g. `1.4.0`.
    pub label: String,
    /// Oldest agent that may install it.
    pub min_agent_version: SemVer,
    /// Model inputs.
    pub inputs: Vec<TensorSpec>,
    /// Model outputs.
    pub outputs: Vec<TensorSpec>,
    /// Model files, in blob order.
    pub variants: Vec<Variant>,
    /// Validation vectors.
    pub golden: Vec<GoldenVector>,
    /// Drift reference profile.
    pub drift_reference: DriftReference,
    /// Provenance.
    pub lineage: Lineage,
}

impl Manifest {
    /// The variant a device of `class` installs: its own class, else the CPU variant.
    pub fn select_variant(&self, class: HardwareClass) -> Result<(usize, &Variant), PackageError> {
        let find = |c: HardwareClass| self.variants.iter().enumerate().find(|(_, v)| v.hardware == c);
        find(class).or_else(|| find(HardwareClass::Cpu)).ok_or(PackageError::NoVariant(class))
    }

    /// Sum of blob sizes.
    pub fn total_blob_size(&self) -> u64 {
        self.variants.iter().map(|v| v.size).fold(0, u64::saturating_add)
    }

    /// Checks the rules PACKAGE.md states beyond the encoding.
    pub fn validate(&self) -> Result<(), PackageError> {
        let invalid = |detail: String| Err(PackageError::InvalidManifest(detail));
        if self.format_version != FORMAT_VERSION {
            return invalid(format!(
                "format_version {} differs from header version {FORMAT_VERSION}",
                self.format_version
            ));
        }
        if self.variants.is_empty() || self.variants.len() > MAX_VARIANTS {
            return invalid(format!("needs 1 to {MAX_VARIANTS} variants, has {}", self.variants.len()));
        }
        for (i, v) in self.variants.iter().enumerate() {
            if self.variants[..i].iter().any(|w| w.hardware == v.hardware) {
                return invalid(format!("two variants for hardware class {}", v.hardware));
            }
            if !(v.golden_tolerance.abs >= 0.0 && v.golden_tolerance.rel >= 0.0) {
                return invalid(format!("negative or NaN golden tolerance on {} variant", v.hardware));
            }
        }
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return invalid("a model needs at least one input and one output".into());
        }
        for (i, g) in self.golden.iter().enumerate() {
            if g.inputs.len() != self.inputs.len() || g.expected.len() != self.outputs.len() {
                return invalid(format!("golden vector {i} does not match the input/output count"));
            }
            if !g.inputs.iter().chain(&g.expected).all(Tensor::is_consistent) {
                return invalid(format!("golden vector {i} has a tensor whose shape and data disagree"));
            }
        }
        for f in self.drift_reference.all() {
            if !f.is_valid() {
                return invalid(format!(
                    "drift reference for {:?} needs finite increasing edges (or distinct codes) and one count per bucket",
                    f.name
                ));
            }
        }
        Ok(())
    }
}
