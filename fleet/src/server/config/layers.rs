//! Merging the layers (default → file → environment → flags) into one TOML table, and
//! remembering which layer set each key so that an error can say where a bad value came from.

use super::{ConfigError, DEFAULT_CONFIG, ENV_PREFIX, Overrides, err};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;
use toml::{Table, Value};

/// The merged layers, and per dotted key the layer that set it last (absent: the default).
pub(super) struct Layered {
    table: Table,
    origins: BTreeMap<String, String>,
}

impl Layered {
    /// Reads the embedded default and `file`, then overlays `env` and `flags`.
    pub(super) fn new(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut table: Table = DEFAULT_CONFIG.parse().map_err(|e| err("default config", e))?;
        let mut origins = BTreeMap::new();
        if let Some(path) = file {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| err("--config", format!("{name}: {e}")))?;
            let overlay: Table = text.parse().map_err(|e| err("--config", format!("{name}: {e}")))?;
            record(&overlay, "", &name, &mut origins);
            merge(&mut table, overlay);
        }

        let mut from_env = Table::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            origins.insert(path.join("."), name.clone());
            set_path(&mut from_env, &path, Value::String(value));
        }
        merge(&mut table, from_env);

        let display = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let from_flags = [
            ("data_dir", "--data-dir", display(&flags.data_dir)),
            ("http_listen", "--http-listen", flags.http_listen.clone()),
            ("mqtt_listen", "--mqtt-listen", flags.mqtt_listen.clone()),
            ("mqtt_url", "--mqtt-url", flags.mqtt_url.clone()),
            ("trust_store", "--trust-store", display(&flags.trust_store)),
        ];
        for (key, flag, value) in from_flags {
            if let Some(value) = value {
                table.insert(key.into(), Value::String(value));
                origins.insert(key.into(), flag.into());
            }
        }
        Ok(Self { table, origins })
    }

    /// Reads the merged table into `T` (which refuses unknown keys); the error names the key.
    pub(super) fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(Value::Table(self.table.clone())).map_err(|e| {
            let field = e.path().to_string();
            self.annotate(err(&field, e.inner().message()))
        })
    }

    /// Adds to `e` the layer that set its field, when that was not the embedded default.
    pub(super) fn annotate(&self, mut e: ConfigError) -> ConfigError {
        if let Some(origin) = self.origin(&e.field) {
            e.detail = format!("{} (set by {origin})", e.detail);
        }
        e
    }

    /// The layer that set `field`: the field itself, a key inside it (an unknown section), or
    /// the nearest enclosing key a layer replaced.
    fn origin(&self, field: &str) -> Option<&str> {
        if let Some(origin) = self.origins.get(field) {
            return Some(origin);
        }
        let inside = format!("{field}.");
        if let Some((_, origin)) = self.origins.range(inside.clone()..).next().filter(|(k, _)| k.starts_with(&inside)) {
            return Some(origin);
        }
        let mut key = field;
        while let Some((parent, _)) = key.rsplit_once('.') {
            if let Some(origin) = self.origins.get(parent) {
                return Some(origin);
            }
            key = parent;
        }
        None
    }
}

/// Notes `origin` as the layer of every value in `table` (its leaves: a section the layer only
/// touches keeps the default's other keys).
fn record(table: &Table, prefix: &str, origin: &str, origins: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            Value::Table(inner) => record(inner, &path, origin, origins),
            _ => {
                origins.insert(path, origin.to_string());
            }
        }
    }
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
