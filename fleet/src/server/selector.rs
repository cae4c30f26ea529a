//! Device selectors: `hw=gpu,site=plant-3` — every term must match (AND). `hw` (or
//! `hardware`) matches the hardware class, `device` the device id, `model` a served model
//! name; any other key matches an operator label. An empty selector matches every device.
//!
//! A term is `key=value`, `key!=value`, `key in (a,b)` or `key notin (a,b)` (as Kubernetes
//! label selectors): `!=` and `notin` also match devices without the label.

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
    /// `in (` without its `)`, or an empty list.
    #[error("selector term {0:?}: expected a list like `key in (a,b)`")]
    BadList(String),
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

/// One selector term: alternatives for one key (`key=a`, `key in (a,b)`), or their negation
/// (`key!=a`, `key notin (a,b)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clause {
    /// Matches when any of these does (or, `negated`, when none does).
    pub any_of: Vec<Term>,
    /// `!=` / `notin`.
    pub negated: bool,
    /// Written as a list (`in (...)`), for display.
    pub list: bool,
}

/// A parsed selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    terms: Vec<Clause>,
}

/// Splits at commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// `raw` as (key, negated, list, values).
fn split_term(raw: &str) -> Result<(&str, bool, bool, Vec<&str>), SelectorError> {
    let list_at = |word: &str| -> Option<(usize, usize)> {
        let lower = raw.find(&format!(" {word} ")).or_else(|| raw.find(&format!(" {word}(")))?;
        Some((lower, lower + word.len() + 1))
    };
    for (word, negated) in [("notin", true), ("in", false)] {
        if let Some((key_end, rest_at)) = list_at(word) {
            let key = raw[..key_end].trim();
            let rest = raw[rest_at..].trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| SelectorError::BadList(raw.into()))?;
            let values: Vec<&str> = inner.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
            if values.is_empty() {
                return Err(SelectorError::BadList(raw.into()));
            }
            return Ok((key, negated, true, values));
        }
    }
    if let Some((key, value)) = raw.split_once("!=") {
        return Ok((key.trim(), true, false, vec![value.trim()]));
    }
    let (key, value) = raw.split_once('=').ok_or_else(|| SelectorError::NotKeyValue(raw.into()))?;
    Ok((key.trim(), false, false, vec![value.trim()]))
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
        for raw in split_terms(text).into_iter().map(str::trim).filter(|t| !t.is_empty()) {
            let (key, negated, list, values) = split_term(raw)?;
            if !valid_label_key(key) || values.iter().any(|v| v.is_empty()) {
                return Err(if values.iter().any(|v| v.is_empty()) {
                    SelectorError::NotKeyValue(raw.into())
                } else {
                    SelectorError::BadKey(key.into())
                });
            }
            if keys.contains(&key) {
                return Err(SelectorError::Repeated(key.into()));
            }
            keys.push(key);
            let mut any_of = Vec::new();
            for value in values {
                any_of.push(match key {
                    "hw" | "hardware" => Term::Hardware(value.parse().map_err(
                        |e: edgefleet_protocol::hardware::UnknownHardwareClass| SelectorError::Hardware(e.to_string()),
                    )?),
                    "device" => Term::Device(value.into()),
                    "model" => Term::Model(value.into()),
                    _ => Term::Label(key.into(), value.into()),
                });
            }
            terms.push(Clause { any_of, negated, list });
        }
        Ok(Selector { terms })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("(all devices)");
        }
        for (i, clause) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let (key, values): (String, Vec<String>) = {
                let key = match clause.any_of.first() {
                    Some(Term::Hardware(_)) => "hw".to_string(),
                    Some(Term::Device(_)) => "device".to_string(),
                    Some(Term::Model(_)) => "model".to_string(),
                    Some(Term::Label(k, _)) => k.clone(),
                    None => String::new(),
                };
                let values = clause
                    .any_of
                    .iter()
                    .map(|term| match term {
                        Term::Hardware(hw) => hw.to_string(),
                        Term::Device(v) | Term::Model(v) | Term::Label(_, v) => v.clone(),
                    })
                    .collect();
                (key, values)
            };
            match (clause.list, clause.negated) {
                (true, false) => write!(f, "{key} in ({})", values.join(","))?,
                (true, true) => write!(f, "{key} notin ({})", values.join(","))?,
                (false, false) => write!(f, "{key}={}", values.join(","))?,
                (false, true) => write!(f, "{key}!={}", values.join(","))?,
            }
        }
        Ok(())
    }
}

impl Selector {
    /// True when every term matches `device` (devices without a birth never match).
    pub fn matches(&self, device: &DeviceRecord) -> bool {
        let Some(hw) = device.hardware else { return false };
        self.terms.iter().all(|clause| {
            let any = clause.any_of.iter().any(|term| match term {
                Term::Hardware(want) => hw == *want,
                Term::Device(id) => device.id.as_str() == id,
                Term::Model(name) => device.active_models.iter().any(|m| &m.name == name),
                Term::Label(k, v) => device.labels.get(k) == Some(v),
            });
            any != clause.negated
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

    #[test]
    fn not_equal_and_set_terms() {
        let mut d = DeviceRecord::new("d".parse().unwrap(), 0);
        d.hardware = Some(HardwareClass::Gpu);
        d.labels.insert("site".into(), "plant-3".into());
        let ok = |text: &str, d: &DeviceRecord| text.parse::<Selector>().unwrap().matches(d);
        assert!(ok("hw!=cpu", &d) && !ok("hw!=gpu", &d));
        assert!(ok("site in (plant-1, plant-3),hw=gpu", &d) && !ok("site in (plant-1,plant-2)", &d));
        assert!(ok("site notin (plant-1)", &d) && !ok("site notin (plant-3,plant-4)", &d));
        assert!(ok("line!=2", &d), "!= matches a device without the label");
        assert!(ok("hw in (cpu,gpu)", &d));
        let s: Selector = "hw in (cpu,gpu), site!=plant-1".parse().unwrap();
        assert_eq!(s.to_string(), "hw in (cpu,gpu),site!=plant-1");
        assert!(matches!("site in (a,b".parse::<Selector>(), Err(SelectorError::BadList(_))));
        assert!(matches!("site in ()".parse::<Selector>(), Err(SelectorError::BadList(_))));
        assert!(matches!("hw in (cpu,tpu9)".parse::<Selector>(), Err(SelectorError::Hardware(_))));
    }
}
