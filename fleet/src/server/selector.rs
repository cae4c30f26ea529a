//! Device selectors: `hw=gpu,site=plant-3` — every term must match (AND). `hw` (or
//! `hardware`) matches the hardware class, `device` the device id, `model` a served model
//! name; any other key matches an operator label. An empty selector matches every device.

use super::registry::DeviceRecord;
use edgefleet_protocol::hardware::HardwareClass;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A selector that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A term is not `key=value`.
    #[error("selector term {0:?} is not key=value (e.g. hw=gpu,site=plant-3)")]
    NotKeyValue(String),
    /// A key is not a label name.
    #[error("selector key {0:?} is not a valid label name (letters, digits, '-', '_', '.', '/')")]
    BadKey(String),
    /// `hw=` names no hardware class.
    #[error("selector: {0}")]
    Hardware(String),
    /// The same key twice.
    #[error("selector key {0:?} appears twice")]
    Repeated(String),
}

/// One `key=value` term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Term {
    /// Hardware class.
    Hardware(HardwareClass),
    /// Device id.
    Device(String),
    /// Serves this model.
    Model(String),
    /// Operator label.
    Label(String, String),
}

/// A parsed selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    terms: Vec<Term>,
}

/// True for a label name: 1–63 of letters, digits, `-`, `_`, `.`, `/`.
pub fn valid_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 63
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(text: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        let mut keys = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, value) = raw.split_once('=').ok_or_else(|| SelectorError::NotKeyValue(raw.into()))?;
            let (key, value) = (key.trim(), value.trim());
            if !valid_label_key(key) || value.is_empty() {
                return Err(if value.is_empty() {
                    SelectorError::NotKeyValue(raw.into())
                } else {
                    SelectorError::BadKey(key.into())
                });
            }
            if keys.contains(&key) {
                return Err(SelectorError::Repeated(key.into()));
            }
            keys.push(key);
            terms.push(match key {
                "hw" | "hardware" => {
                    Term::Hardware(value.parse().map_err(|e: edgefleet_protocol::hardware::UnknownHardwareClass| {
                        SelectorError::Hardware(e.to_string())
                    })?)
                }
                "device" => Term::Device(value.into()),
                "model" => Term::Model(value.into()),
                _ => Term::Label(key.into(), value.into()),
            });
        }
        Ok(Selector { terms })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("(all devices)");
        }
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match term {
                Term::Hardware(hw) => write!(f, "hw={hw}")?,
                Term::Device(d) => write!(f, "device={d}")?,
                Term::Model(m) => write!(f, "model={m}")?,
                Term::Label(k, v) => write!(f, "{k}={v}")?,
            }
        }
        Ok(())
    }
}

impl Selector {
    /// True when every term matches `device` (devices without a birth never match).
    pub fn matches(&self, device: &DeviceRecord) -> bool {
        let Some(hw) = device.hardware else { return false };
        self.terms.iter().all(|term| match term {
            Term::Hardware(want) => hw == *want,
            Term::Device(id) => device.id.as_str() == id,
            Term::Model(name) => device.active_models.iter().any(|m| &m.name == name),
            Term::Label(k, v) => device.labels.get(k) == Some(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_matches_and_rejects_clearly() {
        let s: Selector = "hw=gpu, site=plant-3".parse().unwrap();
        assert_eq!(s.to_string(), "hw=gpu,site=plant-3");
        let mut d = DeviceRecord::new("d".parse().unwrap(), 0);
        assert!(!s.matches(&d), "no birth yet");
        d.hardware = Some(HardwareClass::Gpu);
        assert!(!s.matches(&d));
        d.labels.insert("site".into(), "plant-3".into());
        assert!(s.matches(&d));
        assert!("".parse::<Selector>().unwrap().matches(&d));
        assert_eq!("site".parse::<Selector>(), Err(SelectorError::NotKeyValue("site".into())));
        assert!(matches!("hw=tpu9".parse::<Selector>(), Err(SelectorError::Hardware(_))));
        assert_eq!("a b=c".parse::<Selector>(), Err(SelectorError::BadKey("a b".into())));
        assert_eq!("x=1,x=2".parse::<Selector>(), Err(SelectorError::Repeated("x".into())));
    }
}
