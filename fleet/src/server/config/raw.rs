//! The configuration as written (serde structs that refuse unknown keys), and its check into
//! [`ServeConfig`].
//!
//! Environment variables and flags arrive as strings, so numeric settings accept a number or
//! a string holding one (`EDGEFLEET_SERVE__DRIFT__MIN_ROWS=60`).

use super::{BrokerChoice, ConfigError, ExecutorChoice, PipelinesConfig, ServeConfig, err};
use crate::drift::DetectorSettings;
use crate::rollout::plan::{parse_duration_ms, parse_rate};
use edgefleet_protocol::BrokerUrl;
use edgefleet_protocol::command::ProbationBudget;
use edgefleet_protocol::topic::Namespace;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Every key of `default.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    data_dir: PathBuf,
    http_listen: String,
    mqtt_listen: String,
    mqtt_url: String,
    namespace: String,
    trust_store: String,
    unreachable_after: String,
    #[serde(deserialize_with = "count")]
    health_retention: u64,
    #[serde(deserialize_with = "count")]
    history_retention: u64,
    #[serde(deserialize_with = "count")]
    max_packet_bytes: u64,
    probation: RawProbation,
    drift: RawDrift,
    pipelines: RawPipelines,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipelines {
    executor: String,
    ray_address: String,
    #[serde(deserialize_with = "count")]
    concurrency: u64,
    signing_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbation {
    #[serde(deserialize_with = "scalar_text")]
    duration: String,
    #[serde(deserialize_with = "count")]
    min_inferences: u64,
    #[serde(deserialize_with = "scalar_text")]
    max_error_rate: String,
    #[serde(deserialize_with = "count")]
    max_p99_us: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrift {
    #[serde(deserialize_with = "real")]
    fdr: f64,
    #[serde(deserialize_with = "count")]
    min_rows: u64,
    #[serde(deserialize_with = "real")]
    min_psi: f64,
    #[serde(deserialize_with = "real")]
    max_missing_rate: f64,
    #[serde(deserialize_with = "count")]
    persist_k: u64,
    #[serde(deserialize_with = "count")]
    persist_n: u64,
    #[serde(deserialize_with = "count")]
    retention: u64,
}

impl RawConfig {
    /// Checks every field and converts to typed values.
    pub(super) fn validate(self) -> Result<ServeConfig, ConfigError> {
        let addr = |field: &str, text: &str| -> Result<SocketAddr, ConfigError> {
            text.parse().map_err(|_| err(field, format!("{text:?} is not an address like 127.0.0.1:8080")))
        };
        let duration = |field: &str, text: &str| -> Result<Duration, ConfigError> {
            parse_duration_ms(text).map(Duration::from_millis).map_err(|e| err(field, e))
        };
        if self.data_dir.as_os_str().is_empty() {
            return Err(err("data_dir", "must not be empty"));
        }
        let broker = if self.mqtt_url.trim().is_empty() {
            BrokerChoice::Embedded(addr("mqtt_listen", &self.mqtt_listen)?)
        } else {
            let url: BrokerUrl = self.mqtt_url.parse().map_err(|e| err("mqtt_url", e))?;
            if url.tls {
                return Err(err("mqtt_url", "mqtts:// is not supported by the fleet manager yet; use mqtt://"));
            }
            BrokerChoice::External(url)
        };
        let namespace = Namespace::new(self.namespace).map_err(|e| err("namespace", format!("{e:?}")))?;
        let trust_store = match self.trust_store {
            s if s.trim().is_empty() => self.data_dir.join("trust.toml"),
            s => PathBuf::from(s),
        };

        let p = self.probation;
        let probation_duration = duration("probation.duration", &p.duration)?;
        let error_rate = parse_rate("probation.max_error_rate", &p.max_error_rate)
            .map_err(|e| err("probation.max_error_rate", e))?;
        let probation = ProbationBudget {
            duration_ms: probation_duration.as_millis() as u64,
            min_inferences: u32::try_from(p.min_inferences)
                .map_err(|_| err("probation.min_inferences", "too large"))?,
            max_error_rate_ppm: (error_rate * 1e6).round() as u32,
            max_p99_latency_us: p.max_p99_us,
        };

        let d = self.drift;
        let drift = DetectorSettings {
            fdr: d.fdr,
            min_rows: d.min_rows,
            min_psi: d.min_psi,
            max_missing_rate: d.max_missing_rate,
            persist_k: d.persist_k as usize,
            persist_n: d.persist_n as usize,
        };
        drift.validate().map_err(|(field, detail)| err(field, detail))?;
        let drift_retention = d.retention.clamp(1, 1024) as usize;
        if drift_retention < drift.persist_n {
            return Err(err("drift.retention", format!("must keep at least persist_n = {} windows", drift.persist_n)));
        }

        let pl = self.pipelines;
        let executor = match pl.executor.trim() {
            "local" => ExecutorChoice::Local,
            "ray" => {
                let address = pl.ray_address.trim().trim_end_matches('/').to_string();
                if !(address.starts_with("http://") || address.starts_with("https://")) {
                    return Err(err(
                        "pipelines.ray_address",
                        "executor = \"ray\" needs the Ray dashboard's address, e.g. \"http://127.0.0.1:8265\"",
                    ));
                }
                ExecutorChoice::Ray { address }
            }
            other => return Err(err("pipelines.executor", format!("{other:?}: expected \"local\" or \"ray\""))),
        };
        if !(1..=256).contains(&pl.concurrency) {
            return Err(err("pipelines.concurrency", "must be 1 to 256"));
        }
        let pipelines = PipelinesConfig {
            executor,
            concurrency: pl.concurrency as usize,
            signing_key: match pl.signing_key.trim() {
                "" => self.data_dir.join("keys").join("pipeline").join("signing.key"),
                s => PathBuf::from(s),
            },
        };

        let max_packet_bytes = self.max_packet_bytes as usize;
        if max_packet_bytes < 80 * 1024 {
            return Err(err("max_packet_bytes", "must be at least 81920 (a 64 KiB chunk plus framing)"));
        }
        Ok(ServeConfig {
            http_listen: addr("http_listen", &self.http_listen)?,
            broker,
            namespace,
            trust_store,
            unreachable_after: duration("unreachable_after", &self.unreachable_after)?,
            health_retention: self.health_retention.max(1) as usize,
            history_retention: self.history_retention.max(1) as usize,
            max_packet_bytes,
            probation,
            drift,
            drift_retention,
            pipelines,
            data_dir: self.data_dir,
        })
    }
}

/// A non-negative integer, or a string holding one.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Count;
    impl Visitor<'_> for Count {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("expected a non-negative integer, found {v}")))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
            s.trim().parse().map_err(|_| E::custom(format!("{s:?} is not a number")))
        }
    }
    deserializer.deserialize_any(Count)
}

/// A number, or a string holding one.
fn real<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    struct Real;
    impl Visitor<'_> for Real {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<f64, E> {
            s.trim().parse().map_err(|_| E::custom(format!("{s:?} is not a number")))
        }
    }
    deserializer.deserialize_any(Real)
}

/// Text parsed later (a duration like `30s`, a rate like `1%` or `0.01`): a string, or a bare
/// number or boolean taken as its text.
fn scalar_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Text;
    impl Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string such as \"30s\" or \"1%\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
            Ok(s.to_owned())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(Text)
}
