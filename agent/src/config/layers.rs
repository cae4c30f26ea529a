//! Merging the layers: default → file → environment → flags.

use super::{ConfigError, DEFAULT_CONFIG, RawConfig, Settings};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Environment variables `EDGEFLEET_AGENT__KEY` or `EDGEFLEET_AGENT__SECTION__KEY` override
/// the file (double underscores separate levels; keys are lower-cased).
pub const ENV_PREFIX: &str = "EDGEFLEET_AGENT__";

/// Command-line flags that override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--device-id`.
    pub device_id: Option<String>,
    /// `--broker-url`.
    pub broker_url: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--trust-store`.
    pub trust_store: Option<PathBuf>,
    /// `--api-listen`.
    pub api_listen: Option<String>,
}

fn parse(origin: &str, text: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| ConfigError::Parse { origin: origin.into(), detail: e.to_string() })
}

/// Overlays `top` onto `base`, table by table.
fn merge(base: &mut Table, top: Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(base_table)), Value::Table(top_table)) => merge(base_table, top_table),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A scalar from the environment: a TOML literal (number, bool, quoted string) if it parses as
/// one, else the raw text as a string.
fn env_value(text: &str) -> Value {
    format!("v = {text}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.into()))
}

fn set_path(table: &mut Table, path: &[String], value: Value) {
    match path {
        [] => {}
        [key] => {
            table.insert(key.clone(), value);
        }
        [section, rest @ ..] => {
            let entry = table.entry(section.clone()).or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(inner) = entry {
                set_path(inner, rest, value);
            }
        }
    }
}

/// Loads and validates the configuration: embedded default, then `file`, then `env` (pairs
/// of variable name and value, normally `std::env::vars()`), then `flags`.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut table = parse("embedded default config", DEFAULT_CONFIG)?;
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        merge(&mut table, parse(&path.display().to_string(), &text)?);
    }
    let mut from_env = Table::new();
    let mut env_names = Vec::new();
    for (name, value) in env {
        if let Some(key) = name.strip_prefix(ENV_PREFIX) {
            let path: Vec<String> = key.split("__").map(str::to_lowercase).collect();
            set_path(&mut from_env, &path, env_value(&value));
            env_names.push(name);
        }
    }
    merge(&mut table, from_env);
    let mut from_flags = Table::new();
    let string = |v: &str| Value::String(v.into());
    if let Some(v) = &flags.device_id {
        from_flags.insert("device_id".into(), string(v));
    }
    if let Some(v) = &flags.broker_url {
        from_flags.insert("broker_url".into(), string(v));
    }
    if let Some(v) = &flags.data_dir {
        from_flags.insert("data_dir".into(), string(&v.display().to_string()));
    }
    if let Some(v) = &flags.trust_store {
        from_flags.insert("trust_store".into(), string(&v.display().to_string()));
    }
    if let Some(v) = &flags.api_listen {
        from_flags.insert("api_listen".into(), string(v));
    }
    merge(&mut table, from_flags);
    let origin = match (file, env_names.is_empty()) {
        (Some(path), true) => path.display().to_string(),
        (Some(path), false) => format!("{} (with {})", path.display(), env_names.join(", ")),
        (None, false) => format!("configuration (with {})", env_names.join(", ")),
        (None, true) => "configuration".into(),
    };
    let raw: RawConfig = Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse { origin, detail: e.to_string() })?;
    raw.validate()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::hardware::HardwareClass;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "device_id = \"from-file\"\nbroker_url = \"mqtt://file:1884\"\n[mqtt]\nkeep_alive_secs = 5\n",
        )
        .unwrap();
        let settings = load(
            Some(&file),
            env(&[
                ("EDGEFLEET_AGENT__BROKER_URL", "mqtts://env-host"),
                ("EDGEFLEET_AGENT__MQTT__KEEP_ALIVE_SECS", "7"),
            ]),
            &Overrides { device_id: Some("from-flag".into()), ..Overrides::default() },
        )
        .unwrap();
        assert_eq!(settings.device_id.as_str(), "from-flag");
        assert_eq!(settings.broker.host, "env-host");
        assert_eq!(settings.broker.port, 8883);
        assert!(settings.broker.tls);
        assert_eq!(settings.mqtt.keep_alive.as_secs(), 7);
        assert_eq!(settings.outbox.max_bytes, 16 * 1024 * 1024);
    }

    #[test]
    fn errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, "[mqtt]\nkeep_alive_sec = 5\n").unwrap();
        let err = load(Some(&file), env(&[]), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("keep_alive_sec"), "{err}");

        let err = load(None, env(&[("EDGEFLEET_AGENT__MQTT__KEEP_ALIVE_SECS", "soon")]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("keep_alive_secs") && err.contains("EDGEFLEET_AGENT__MQTT__KEEP_ALIVE_SECS"), "{err}");

        let err = load(None, env(&[]), &Overrides { broker_url: Some("http://x".into()), ..Overrides::default() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("broker_url") && err.contains("mqtt://"), "{err}");

        let err = load(None, env(&[("EDGEFLEET_AGENT__HARDWARE__CLASS", "accelerator")]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("hardware.accelerator_kind"), "{err}");
    }

    #[test]
    fn defaults_validate_and_hardware_parses() {
        let settings = load(
            None,
            env(&[("EDGEFLEET_AGENT__DEVICE_ID", "d-1"), ("EDGEFLEET_AGENT__HARDWARE__CLASS", "gpu")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(settings.hardware.class, HardwareClass::Gpu);
        assert_eq!(settings.broker, "mqtt://127.0.0.1:1883".parse().unwrap());
        assert!("mqtt://h:99999".parse::<crate::config::BrokerUrl>().is_err());
    }
}
