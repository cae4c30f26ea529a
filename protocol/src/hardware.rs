//! Hardware classes and the capabilities a device reports at birth.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

/// The class of compute a model variant targets and a device offers.
///
/// Wire form: varint variant index (`Cpu` = 0, `Gpu` = 1, `Accelerator` = 2).
/// Text form (and JSON form): `cpu`, `gpu`, `accelerator`; one name each, so what an operator
/// types is what every table and document shows (`npu` or `tpu` is refused with a hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HardwareClass {
    /// General-purpose CPU (every device has one).
    // The capitalised aliases read records written before the JSON form was lowercased.
    #[serde(rename = "cpu", alias = "Cpu")]
    Cpu,
    /// A CUDA-capable GPU.
    #[serde(rename = "gpu", alias = "Gpu")]
    Gpu,
    /// A neural accelerator (NPU, TPU, DSP), identified by [`AcceleratorInfo::kind`].
    #[serde(rename = "accelerator", alias = "Accelerator")]
    Accelerator,
}

impl HardwareClass {
    /// Every class, in wire order.
    pub const ALL: [HardwareClass; 3] = [HardwareClass::Cpu, HardwareClass::Gpu, HardwareClass::Accelerator];

    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            HardwareClass::Cpu => "cpu",
            HardwareClass::Gpu => "gpu",
            HardwareClass::Accelerator => "accelerator",
        }
    }
}

impl fmt::Display for HardwareClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that is not a hardware class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHardwareClass(pub String);

impl fmt::Display for UnknownHardwareClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.trim().to_ascii_lowercase().as_str() {
            "npu" | "tpu" | "dsp" | "vpu" => write!(
                f,
                "unknown hardware class {:?}: neural accelerators (NPU, TPU, DSP) are class \"accelerator\" (expected cpu, gpu or accelerator)",
                self.0
            ),
            "cuda" => write!(
                f,
                "unknown hardware class {:?}: CUDA GPUs are class \"gpu\" (expected cpu, gpu or accelerator)",
                self.0
            ),
            _ => write!(f, "unknown hardware class {:?} (expected cpu, gpu or accelerator)", self.0),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownHardwareClass {}

impl FromStr for HardwareClass {
    type Err = UnknownHardwareClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(HardwareClass::Cpu),
            "gpu" => Ok(HardwareClass::Gpu),
            "accelerator" => Ok(HardwareClass::Accelerator),
            _ => Err(UnknownHardwareClass(s.into())),
        }
    }
}

/// Numeric precision of a model variant.
///
/// Wire form: varint variant index in declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit float.
    #[serde(alias = "Fp32")]
    Fp32,
    /// 16-bit float.
    #[serde(alias = "Fp16")]
    Fp16,
    /// bfloat16.
    #[serde(alias = "Bf16")]
    Bf16,
    /// 8-bit integer (quantized).
    #[serde(alias = "Int8")]
    Int8,
}

impl Precision {
    /// The text form (`fp32`, `fp16`, `bf16`, `int8`).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = UnknownHardwareClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" => Ok(Precision::Fp32),
            "fp16" | "f16" => Ok(Precision::Fp16),
            "bf16" => Ok(Precision::Bf16),
            "int8" | "i8" => Ok(Precision::Int8),
            _ => Err(UnknownHardwareClass(s.into())),
        }
    }
}

/// A GPU as seen by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Marketing name, e.g. `NVIDIA Jetson Orin Nano`.
    pub name: String,
    /// CUDA compute capability major version (e.g. 8 for 8.7).
    pub compute_capability_major: u8,
    /// CUDA compute capability minor version.
    pub compute_capability_minor: u8,
    /// Device memory in bytes.
    pub memory_bytes: u64,
}

/// A neural accelerator, declared in the agent's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceleratorInfo {
    /// Accelerator family, e.g. `hailo-8`, `coral-edgetpu`, `rk3588-npu`.
    pub kind: String,
    /// Peak throughput in tera-operations per second, if known.
    pub tops: Option<f32>,
}

/// What a device can run. Sent in [`crate::uplink::Birth`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardwareInfo {
    /// The best class the device offers (it can always fall back to CPU).
    pub class: HardwareClass,
    /// CPU architecture as Rust names it (`x86_64`, `aarch64`, `arm`).
    pub cpu_arch: String,
    /// Logical CPU cores.
    pub cpu_cores: u16,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// Present when `class` is [`HardwareClass::Gpu`].
    pub gpu: Option<GpuInfo>,
    /// Present when `class` is [`HardwareClass::Accelerator`].
    pub accelerator: Option<AcceleratorInfo>,
}
