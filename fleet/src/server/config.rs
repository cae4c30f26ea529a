//! `edgefleet serve` settings: an embedded default, then a TOML file, then
//! `EDGEFLEET_SERVE__KEY` (or `EDGEFLEET_SERVE__PROBATION__KEY`) environment variables, then
//! flags; checked once into [`ServeConfig`], with errors naming the field.

use crate::drift::DetectorSettings;
use crate::rollout::plan::{parse_duration_ms, parse_rate};
use edgefleet_protocol::BrokerUrl;
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::topic::Namespace;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default configuration (what `print-default-config` prints).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// A setting that cannot be used, with the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct ConfigError {
    /// Dotted field name, as in the TOML file.
    pub field: String,
    /// What is wrong.
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
    /// Layers the default, `file`, the environment (`env` pairs) and `flags`, then checks.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = DEFAULT_CONFIG.parse().map_err(|e| err("default config", e))?;
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| err("--config", format!("{}: {e}", path.display())))?;
            let overlay: toml::Table = text.parse().map_err(|e| err("--config", format!("{}: {e}", path.display())))?;
            merge(&mut table, overlay, "")?;
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("EDGEFLEET_SERVE__") else { continue };
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(&mut table, &path, &value)?;
        }
        let mut put = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                table.insert(key.into(), toml::Value::String(v));
            }
        };
        put("data_dir", flags.data_dir.as_ref().map(|p| p.display().to_string()));
        put("http_listen", flags.http_listen.clone());
        put("mqtt_listen", flags.mqtt_listen.clone());
        put("mqtt_url", flags.mqtt_url.clone());
        put("trust_store", flags.trust_store.as_ref().map(|p| p.display().to_string()));
        Self::from_table(&table)
    }

    fn from_table(t: &toml::Table) -> Result<Self, ConfigError> {
        let text = |key: &str| -> Result<String, ConfigError> {
            match t.get(key) {
                Some(toml::Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(err(key, format!("expected a string, found {}", other.type_str()))),
                None => Err(err(key, "missing")),
            }
        };
        let int = |table: &toml::Table, key: &str, field: &str| -> Result<u64, ConfigError> {
            match table.get(key) {
                Some(toml::Value::Integer(i)) if *i >= 0 => Ok(*i as u64),
                Some(toml::Value::String(s)) => {
                    s.trim().parse().map_err(|_| err(field, format!("{s:?} is not a number")))
                }
                Some(other) => Err(err(field, format!("expected a non-negative integer, found {other}"))),
                None => Err(err(field, "missing")),
            }
        };
        let addr = |key: &str| -> Result<SocketAddr, ConfigError> {
            let s = text(key)?;
            s.parse().map_err(|_| err(key, format!("{s:?} is not an address like 127.0.0.1:8080")))
        };
        let data_dir = PathBuf::from(text("data_dir")?);
        if data_dir.as_os_str().is_empty() {
            return Err(err("data_dir", "must not be empty"));
        }
        let mqtt_url = text("mqtt_url")?;
        let broker = if mqtt_url.trim().is_empty() {
            BrokerChoice::Embedded(addr("mqtt_listen")?)
        } else {
            let url: BrokerUrl = mqtt_url.parse().map_err(|e| err("mqtt_url", e))?;
            if url.tls {
                return Err(err("mqtt_url", "mqtts:// is not supported by the fleet manager yet; use mqtt://"));
            }
            BrokerChoice::External(url)
        };
        let namespace = Namespace::new(text("namespace")?).map_err(|e| err("namespace", format!("{e:?}")))?;
        let trust_store = match text("trust_store")? {
            s if s.trim().is_empty() => data_dir.join("trust.toml"),
            s => PathBuf::from(s),
        };
        let duration = |field: &str, s: String| -> Result<Duration, ConfigError> {
            parse_duration_ms(&s).map(Duration::from_millis).map_err(|e| err(field, e))
        };
        let probation_table = match t.get("probation") {
            Some(toml::Value::Table(p)) => p.clone(),
            _ => return Err(err("probation", "missing table")),
        };
        let p_text = |key: &str| -> Result<String, ConfigError> {
            match probation_table.get(key) {
                Some(toml::Value::String(s)) => Ok(s.clone()),
                Some(other) => Ok(other.to_string()),
                None => Err(err(&format!("probation.{key}"), "missing")),
            }
        };
        let probation_duration = duration("probation.duration", p_text("duration")?)?;
        let error_rate = parse_rate("probation.max_error_rate", &p_text("max_error_rate")?)
            .map_err(|e| err("probation.max_error_rate", e))?;
        let probation = ProbationBudget {
            duration_ms: probation_duration.as_millis() as u64,
            min_inferences: u32::try_from(int(&probation_table, "min_inferences", "probation.min_inferences")?)
                .map_err(|_| err("probation.min_inferences", "too large"))?,
            max_error_rate_ppm: (error_rate * 1e6).round() as u32,
            max_p99_latency_us: int(&probation_table, "max_p99_us", "probation.max_p99_us")?,
        };
        let drift_table = match t.get("drift") {
            Some(toml::Value::Table(d)) => d.clone(),
            _ => return Err(err("drift", "missing table")),
        };
        let real = |key: &str| -> Result<f64, ConfigError> {
            let field = format!("drift.{key}");
            match drift_table.get(key) {
                Some(toml::Value::Float(f)) => Ok(*f),
                Some(toml::Value::Integer(i)) => Ok(*i as f64),
                Some(toml::Value::String(s)) => {
                    s.trim().parse().map_err(|_| err(&field, format!("{s:?} is not a number")))
                }
                Some(other) => Err(err(&field, format!("expected a number, found {other}"))),
                None => Err(err(&field, "missing")),
            }
        };
        let drift = DetectorSettings {
            fdr: real("fdr")?,
            min_rows: int(&drift_table, "min_rows", "drift.min_rows")?,
            min_psi: real("min_psi")?,
            max_missing_rate: real("max_missing_rate")?,
            persist_k: int(&drift_table, "persist_k", "drift.persist_k")? as usize,
            persist_n: int(&drift_table, "persist_n", "drift.persist_n")? as usize,
        };
        drift.validate().map_err(|(field, detail)| err(field, detail))?;
        let drift_retention = int(&drift_table, "retention", "drift.retention")?.clamp(1, 1024) as usize;
        if drift_retention < drift.persist_n {
            return Err(err("drift.retention", format!("must keep at least persist_n = {} windows", drift.persist_n)));
        }
        let max_packet_bytes = int(t, "max_packet_bytes", "max_packet_bytes")? as usize;
        if max_packet_bytes < 80 * 1024 {
            return Err(err("max_packet_bytes", "must be at least 81920 (a 64 KiB chunk plus framing)"));
        }
        Ok(ServeConfig {
            http_listen: addr("http_listen")?,
            broker,
            namespace,
            trust_store,
            unreachable_after: duration("unreachable_after", text("unreachable_after")?)?,
            health_retention: int(t, "health_retention", "health_retention")?.max(1) as usize,
            history_retention: int(t, "history_retention", "history_retention")?.max(1) as usize,
            max_packet_bytes,
            probation,
            drift,
            drift_retention,
            data_dir,
        })
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table, prefix: &str) -> Result<(), ConfigError> {
    for (key, value) in overlay {
        let field = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, &field)?,
            (Some(_), v) => {
                base.insert(key, v);
            }
            (None, _) => return Err(err(&field, "unknown setting (see `edgefleet serve --print-default-config`)")),
        }
    }
    Ok(())
}

fn set_path(table: &mut toml::Table, path: &[String], value: &str) -> Result<(), ConfigError> {
    let field = path.join(".");
    match path {
        [key] if table.contains_key(key) => {
            table.insert(key.clone(), toml::Value::String(value.to_string()));
            Ok(())
        }
        [head, rest @ ..] if !rest.is_empty() => match table.get_mut(head) {
            Some(toml::Value::Table(inner)) => set_path(inner, rest, value),
            _ => Err(err(&field, "unknown setting in the environment")),
        },
        _ => Err(err(&field, "unknown setting in the environment")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_default_file_env_and_flags_and_names_bad_fields() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(&file, "namespace = \"plant\"\n[probation]\nduration = \"5s\"\n").unwrap();
        let env = [("EDGEFLEET_SERVE__PROBATION__MIN_INFERENCES".to_string(), "3".to_string())];
        let flags = Overrides { mqtt_listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
        let c = ServeConfig::load(Some(&file), env, &flags).unwrap();
        assert_eq!(c.namespace.as_str(), "plant");
        assert_eq!(c.probation.duration_ms, 5000);
        assert_eq!(c.probation.min_inferences, 3);
        assert_eq!(c.probation.max_error_rate_ppm, 10_000);
        assert_eq!(c.broker, BrokerChoice::Embedded("127.0.0.1:0".parse().unwrap()));
        assert_eq!(c.trust_store, PathBuf::from("edgefleet-data/trust.toml"));

        std::fs::write(&file, "http_listn = \"x\"\n").unwrap();
        let e = ServeConfig::load(Some(&file), [], &Overrides::default()).unwrap_err();
        assert_eq!(e.field, "http_listn");
        let flags = Overrides { http_listen: Some("localhost".into()), ..Overrides::default() };
        assert_eq!(ServeConfig::load(None, [], &flags).unwrap_err().field, "http_listen");
        let flags = Overrides { mqtt_url: Some("mqtt://127.0.0.1:1883".into()), ..Overrides::default() };
        assert!(matches!(ServeConfig::load(None, [], &flags).unwrap().broker, BrokerChoice::External(_)));
    }
}
