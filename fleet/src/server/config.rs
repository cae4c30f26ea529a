//! `edgefleet serve` settings, loaded like the agent's: an embedded default
//! ([`DEFAULT_CONFIG`], `default.toml`), then a TOML file, then `EDGEFLEET_SERVE__KEY` (or
//! `EDGEFLEET_SERVE__PROBATION__KEY`) environment variables, then flags. The merged layers are
//! read once into serde structs that refuse unknown keys, then checked into [`ServeConfig`]
//! (typed values); every error names the field and the layer that set it.

mod layers;
mod raw;
#[cfg(test)]
mod tests;

use crate::drift::DetectorSettings;
use edgefleet_protocol::BrokerUrl;
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::topic::Namespace;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default configuration (what `edgefleet serve --print-default-config` prints).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Environment variables `EDGEFLEET_SERVE__KEY` or `EDGEFLEET_SERVE__SECTION__KEY` override the
/// file (double underscores separate levels; keys are lower-cased; values are strings).
pub const ENV_PREFIX: &str = "EDGEFLEET_SERVE__";

/// A setting that cannot be used, with the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct ConfigError {
    /// Dotted field name, as in the TOML file (`--config` when the file itself is unreadable).
    pub field: String,
    /// What is wrong, and which layer set the value when it was not the default.
    pub detail: String,
}

fn err(field: &str, detail: impl std::fmt::Display) -> ConfigError {
    ConfigError { field: field.to_string(), detail: detail.to_string() }
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Registry, packages, audit log.
    pub data_dir: PathBuf,
    /// HTTP API listener.
    pub http_listen: SocketAddr,
    /// Where the broker is: embedded on a listener, or external.
    pub broker: BrokerChoice,
    /// Topic namespace.
    pub namespace: Namespace,
    /// Trusted signing keys for `model push`.
    pub trust_store: PathBuf,
    /// Silence after dispatch that makes a device unreachable.
    pub unreachable_after: Duration,
    /// Health reports kept per device.
    pub health_retention: usize,
    /// Deployment history kept per device.
    pub history_retention: usize,
    /// Largest MQTT packet.
    pub max_packet_bytes: usize,
    /// Default probation budget for deploy commands.
    pub probation: ProbationBudget,
    /// Drift detector thresholds.
    pub drift: DetectorSettings,
    /// Drift windows kept per device.
    pub drift_retention: usize,
    /// Training pipelines.
    pub pipelines: PipelinesConfig,
}

/// `[pipelines]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelinesConfig {
    /// Where steps run.
    pub executor: ExecutorChoice,
    /// Step attempts at once, across runs.
    pub concurrency: usize,
    /// The key `uses: package` signs with (made on first start when missing).
    pub signing_key: PathBuf,
}

/// `pipelines.executor`.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorChoice {
    /// A subprocess per step.
    Local,
    /// A job per step on the Ray cluster whose dashboard is at `address`.
    Ray {
        /// `http://HOST:8265`.
        address: String,
    },
}

/// Which broker the fleet manager uses.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerChoice {
    /// Run the embedded broker on this address.
    Embedded(SocketAddr),
    /// Connect to an external broker.
    External(BrokerUrl),
}

/// Flag values that override the file and environment (None: not given).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--http-listen`.
    pub http_listen: Option<String>,
    /// `--mqtt-listen`.
    pub mqtt_listen: Option<String>,
    /// `--mqtt-url`.
    pub mqtt_url: Option<String>,
    /// `--trust-store`.
    pub trust_store: Option<PathBuf>,
}

impl Overrides {
    /// A fleet manager on embedded defaults keeping its data in `data_dir`, its HTTP API and
    /// broker on ephemeral loopback ports (tests, benchmarks, the demo).
    pub fn ephemeral(data_dir: PathBuf, trust_store: PathBuf) -> Overrides {
        Overrides {
            data_dir: Some(data_dir),
            http_listen: Some("127.0.0.1:0".into()),
            mqtt_listen: Some("127.0.0.1:0".into()),
            mqtt_url: None,
            trust_store: Some(trust_store),
        }
    }
}

impl ServeConfig {
    /// Layers the default, `file`, the environment (`env` pairs, normally `std::env::vars()`)
    /// and `flags`, then checks every field once.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Self, ConfigError> {
        let layered = layers::Layered::new(file, env, flags)?;
        let raw: raw::RawConfig = layered.deserialize()?;
        raw.validate().map_err(|e| layered.annotate(e))
    }
}
