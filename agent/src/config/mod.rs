//! Agent configuration: an embedded default, then a file, then environment, then flags,
//! validated once into [`Settings`] (typed values; errors name the field).

mod layers;

use edgefleet_protocol::DeviceId;
use edgefleet_protocol::hardware::HardwareClass;
use edgefleet_protocol::topic::Namespace;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use edgefleet_protocol::BrokerUrl;
pub use layers::{ENV_PREFIX, Overrides, load};

/// The embedded default configuration (also `print-default-config`).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Configuration could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown/mistyped field (the message names it).
    #[error("{origin}: {detail}")]
    Parse {
        /// Where the bad value came from (file, environment variable, flag).
        origin: String,
        /// What is wrong.
        detail: String,
    },
    /// A field's value is not acceptable.
    #[error("invalid {field}: {detail}")]
    Invalid {
        /// Dotted field name, e.g. `mqtt.keep_alive_secs`.
        field: &'static str,
        /// What is wrong and what is expected.
        detail: String,
    },
}

/// The file/env/flag layer, as written (strings and numbers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    device_id: String,
    namespace: String,
    broker_url: String,
    data_dir: PathBuf,
    trust_store: PathBuf,
    api_listen: String,
    log_format: String,
    hardware: RawHardware,
    mqtt: RawMqtt,
    outbox: RawOutbox,
    sampling: RawSampling,
    health: RawHealth,
    input: RawInput,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHardware {
    class: String,
    accelerator_kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    keep_alive_secs: u64,
    max_packet_bytes: usize,
    reconnect_min_ms: u64,
    reconnect_max_ms: u64,
    ca_file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    max_bytes: u64,
    max_age_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSampling {
    sample_rate: f32,
    max_sample_bytes_per_hour: u64,
    drift_window_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    source: String,
    rate_hz: f64,
    seed: u64,
    device: String,
    baud: u32,
    silence_ms: u64,
    queue: usize,
}

/// Where inference inputs come from besides the local API.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSetting {
    /// Only the local API.
    None,
    /// Seeded random tensors shaped like the active model's inputs.
    Synthetic {
        /// Inferences per second.
        rate_hz: f64,
        /// Generator seed.
        seed: u64,
    },
    /// Feature frames from sensor firmware on a serial port (WIRE.md §7), pushed into the
    /// active model as they arrive.
    Serial(SerialSettings),
}

/// `[input] source = "serial"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    /// The port, e.g. `/dev/ttyUSB0` (re-opened when it disappears and comes back).
    pub device: PathBuf,
    /// Line speed.
    pub baud: u32,
    /// A sensor without a valid frame for this long makes the device unhealthy.
    pub silence: Duration,
    /// Decoded samples waiting for inference; the oldest is dropped (and counted) beyond.
    pub queue: usize,
}

/// How hardware was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct HardwareSetting {
    /// The class models are selected for.
    pub class: HardwareClass,
    /// Accelerator family, for the accelerator class.
    pub accelerator_kind: Option<String>,
}

/// MQTT link settings.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Largest packet in or out.
    pub max_packet_bytes: usize,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// CA certificate for TLS.
    pub ca_file: Option<PathBuf>,
}

/// Outbox limits.
#[derive(Debug, Clone, Copy)]
pub struct OutboxSettings {
    /// Disk budget in bytes.
    pub max_bytes: u64,
    /// Age limit.
    pub max_age: Duration,
}

/// Sampling settings.
#[derive(Debug, Clone, Copy)]
pub struct SamplingSettings {
    /// Fraction of inferences sampled as raw records (0.0 to 1.0).
    pub sample_rate: f32,
    /// Byte budget for sampled records per hour.
    pub max_sample_bytes_per_hour: u64,
    /// Drift summary window (100 ms to one day).
    pub drift_window: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This device.
    pub device_id: DeviceId,
    /// Fleet namespace.
    pub namespace: Namespace,
    /// Broker.
    pub broker: BrokerUrl,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Trust store path.
    pub trust_store: PathBuf,
    /// Local API address; `None` (`api_listen = "off"`) runs without a local API (e.g. a
    /// device fed only by its sensors, or thousands of simulated agents in one process).
    pub api_listen: Option<SocketAddr>,
    /// Log format.
    pub log_format: LogFormat,
    /// Hardware.
    pub hardware: HardwareSetting,
    /// MQTT.
    pub mqtt: MqttSettings,
    /// Outbox.
    pub outbox: OutboxSettings,
    /// Sampling.
    pub sampling: SamplingSettings,
    /// Heartbeat interval.
    pub health_interval: Duration,
    /// Input source.
    pub input: InputSetting,
}

fn invalid(field: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, detail: detail.into() }
}

fn host_name() -> String {
    let raw = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let cleaned: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    if cleaned.is_empty() { "edge-device".into() } else { cleaned.chars().take(64).collect() }
}

/// True when an NVIDIA CUDA device is visible (driver loaded).
fn cuda_device_present() -> bool {
    std::path::Path::new("/proc/driver/nvidia/gpus").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false)
        || std::path::Path::new("/dev/nvidia0").exists()
}

impl RawConfig {
    /// Checks every field and converts to typed values.
    pub(crate) fn validate(self) -> Result<Settings, ConfigError> {
        let device_id = if self.device_id.is_empty() { host_name() } else { self.device_id };
        let device_id = DeviceId::new(device_id).map_err(|e| invalid("device_id", e.to_string()))?;
        let namespace = Namespace::new(self.namespace).map_err(|e| invalid("namespace", e.to_string()))?;
        let broker = self.broker_url.parse().map_err(|e| invalid("broker_url", e))?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let api_listen = match self.api_listen.as_str() {
            "off" => None,
            text => Some(text.parse().map_err(|_| {
                invalid("api_listen", format!("{text:?} is not an address like 127.0.0.1:8181 (or \"off\")"))
            })?),
        };
        let log_format = match self.log_format.as_str() {
            "plain" => LogFormat::Plain,
            "json" => LogFormat::Json,
            other => return Err(invalid("log_format", format!("{other:?}: expected plain or json"))),
        };
        let class = match self.hardware.class.as_str() {
            "auto" => {
                if cuda_device_present() {
                    HardwareClass::Gpu
                } else {
                    HardwareClass::Cpu
                }
            }
            other => other.parse().map_err(|e: edgefleet_protocol::hardware::UnknownHardwareClass| {
                invalid("hardware.class", format!("{e}; or auto"))
            })?,
        };
        let accelerator_kind = Some(self.hardware.accelerator_kind).filter(|k| !k.is_empty());
        if class == HardwareClass::Accelerator && accelerator_kind.is_none() {
            return Err(invalid("hardware.accelerator_kind", "required when hardware.class = \"accelerator\""));
        }
        let m = self.mqtt;
        if m.keep_alive_secs == 0 || m.keep_alive_secs > 3600 {
            return Err(invalid("mqtt.keep_alive_secs", "must be 1 to 3600"));
        }
        let min_packet = edgefleet_protocol::transfer::MAX_CHUNK_LEN as usize + 1024;
        if m.max_packet_bytes < min_packet {
            return Err(invalid(
                "mqtt.max_packet_bytes",
                format!("must be at least {min_packet} so package chunks fit"),
            ));
        }
        if m.reconnect_min_ms == 0 || m.reconnect_min_ms > m.reconnect_max_ms {
            return Err(invalid("mqtt.reconnect_min_ms", "must be positive and at most mqtt.reconnect_max_ms"));
        }
        if self.outbox.max_bytes < 64 * 1024 {
            return Err(invalid("outbox.max_bytes", "must be at least 65536"));
        }
        let s = self.sampling;
        if !(0.0..=1.0).contains(&s.sample_rate) {
            return Err(invalid("sampling.sample_rate", "must be between 0.0 and 1.0"));
        }
        if !(crate::drift::policy::MIN_WINDOW_MS..=crate::drift::policy::MAX_WINDOW_MS).contains(&s.drift_window_ms) {
            return Err(invalid("sampling.drift_window_ms", "must be 100 (0.1 s) to 86400000 (one day)"));
        }
        if self.health.interval_secs == 0 {
            return Err(invalid("health.interval_secs", "must be positive"));
        }
        let input = match self.input.source.as_str() {
            "none" => InputSetting::None,
            "synthetic" if self.input.rate_hz > 0.0 && self.input.rate_hz <= 10_000.0 => {
                InputSetting::Synthetic { rate_hz: self.input.rate_hz, seed: self.input.seed }
            }
            "synthetic" => return Err(invalid("input.rate_hz", "must be above 0 and at most 10000")),
            "serial" => {
                let i = &self.input;
                if i.device.is_empty() {
                    return Err(invalid("input.device", "must name the serial port, e.g. /dev/ttyUSB0"));
                }
                if !(300..=4_000_000).contains(&i.baud) {
                    return Err(invalid("input.baud", "must be 300 to 4000000"));
                }
                if i.silence_ms < 100 {
                    return Err(invalid("input.silence_ms", "must be at least 100"));
                }
                if !(1..=100_000).contains(&i.queue) {
                    return Err(invalid("input.queue", "must be 1 to 100000"));
                }
                InputSetting::Serial(SerialSettings {
                    device: PathBuf::from(&i.device),
                    baud: i.baud,
                    silence: Duration::from_millis(i.silence_ms),
                    queue: i.queue,
                })
            }
            other => return Err(invalid("input.source", format!("{other:?}: expected none, synthetic or serial"))),
        };
        Ok(Settings {
            device_id,
            namespace,
            broker,
            data_dir: self.data_dir,
            trust_store: self.trust_store,
            api_listen,
            log_format,
            hardware: HardwareSetting { class, accelerator_kind },
            mqtt: MqttSettings {
                keep_alive: Duration::from_secs(m.keep_alive_secs),
                max_packet_bytes: m.max_packet_bytes,
                reconnect_min: Duration::from_millis(m.reconnect_min_ms),
                reconnect_max: Duration::from_millis(m.reconnect_max_ms),
                ca_file: Some(PathBuf::from(m.ca_file)).filter(|p| !p.as_os_str().is_empty()),
            },
            outbox: OutboxSettings {
                max_bytes: self.outbox.max_bytes,
                max_age: Duration::from_secs(self.outbox.max_age_secs),
            },
            sampling: SamplingSettings {
                sample_rate: s.sample_rate,
                max_sample_bytes_per_hour: s.max_sample_bytes_per_hour,
                drift_window: Duration::from_millis(s.drift_window_ms),
            },
            health_interval: Duration::from_secs(self.health.interval_secs),
            input,
        })
    }
}
