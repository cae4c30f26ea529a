//! The pipeline spec (fleet/PIPELINES.md is normative): its types, read from YAML with the line
//! of every key, and every check `edgefleet pipeline validate` makes before anything runs.

use super::refs::{Reference, references};
use super::yaml;
use crate::rollout::plan::parse_duration_ms;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A pipeline as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Its name (`[a-z0-9._-]`, registered runs are grouped by it).
    pub name: String,
    /// Parameters with their defaults (scalars), referenced as `${params.NAME}`.
    #[serde(default)]
    pub params: BTreeMap<String, Scalar>,
    /// Named inputs: `dataset:NAME@latest|@N|@sha256:HEX` or `file:PATH` (relative to the
    /// spec's directory), referenced as `${inputs.NAME}`.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// The steps by name; their order comes from their references.
    pub steps: BTreeMap<String, StepSpec>,
}

/// One step: a command (`run`) or a built-in (`uses`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The command and its arguments (no shell), run in a snapshot of the spec's directory.
    #[serde(default)]
    pub run: Option<Vec<Scalar>>,
    /// A built-in step: `package`, `evaluate` or `train-tabular`.
    #[serde(default)]
    pub uses: Option<String>,
    /// The built-in's arguments.
    #[serde(default)]
    pub with: BTreeMap<String, Scalar>,
    /// Files the step writes, each at the path `${outputs.NAME}` gives it.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Extra environment (the step's environment is otherwise only `PATH`, `HOME`, `LANG`).
    #[serde(default)]
    pub env: BTreeMap<String, Scalar>,
    /// Re-runs after a non-zero exit, with backoff (at most 10).
    #[serde(default)]
    pub retries: u32,
    /// Longest one attempt may run (`10m`); over it the whole process group is killed.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Reuse the outputs of an identical earlier step (default true).
    #[serde(default = "yes")]
    pub cache: bool,
    /// Steps this one runs after although it uses none of their outputs (a gate: `package`
    /// after `evaluate`).
    #[serde(default)]
    pub after: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A YAML scalar kept as the text it stands for (`300`, `0.5`, `true`, `fast`), so numbers can
/// be written bare in `run`, `params` and `with`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Scalar(s)),
            serde_json::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_json::Value::Bool(b) => Ok(Scalar(b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a plain value (text, number or true/false), found {}",
                match other {
                    serde_json::Value::Null => "nothing",
                    serde_json::Value::Array(_) => "a list",
                    _ => "a mapping",
                }
            ))),
        }
    }
}

/// The built-in steps and the `with` keys each takes (required ones first, then `?` optional).
pub const BUILTINS: &[(&str, &[&str], &[&str])] = &[
    ("package", &["model", "name"], &["label", "version_seq", "drift_reference"]),
    ("evaluate", &["candidate", "data"], &["baseline", "min_accuracy", "label_column"]),
    ("train-tabular", &["data"], &["label_column", "alpha"]),
];

/// A spec that cannot run, with the line at fault where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct SpecError {
    /// 1-based line in the spec file.
    pub line: Option<usize>,
    /// What is wrong and what would be right.
    pub message: String,
}

/// A checked pipeline: its spec, the steps each depends on, and an order that respects them.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPipeline {
    /// The spec.
    pub spec: PipelineSpec,
    /// Per step, the steps whose outputs it references.
    pub deps: BTreeMap<String, BTreeSet<String>>,
    /// Every step once, each after the steps it depends on (ties by name).
    pub order: Vec<String>,
}

/// What an input names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// A dataset version: `latest`, a number or a digest.
    Dataset {
        /// Dataset name.
        name: String,
        /// `latest`, `3` or `sha256:<hex>`.
        version: String,
    },
    /// A file in the spec's directory.
    File(String),
}

/// Parses `dataset:NAME@VERSION` or `file:PATH`.
pub fn parse_input(text: &str) -> Result<InputSource, String> {
    if let Some(rest) = text.strip_prefix("dataset:") {
        let (name, version) = rest.split_once('@').unwrap_or((rest, "latest"));
        let digest_ok = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        let version_ok = version == "latest"
            || version.parse::<u64>().is_ok_and(|n| n > 0)
            || version.strip_prefix("sha256:").is_some_and(digest_ok);
        if !valid_name(name) || !version_ok {
            return Err(format!(
                "input {text:?}: expected dataset:NAME@latest, dataset:NAME@3 or dataset:NAME@sha256:<64 hex digits>"
            ));
        }
        return Ok(InputSource::Dataset { name: name.to_string(), version: version.to_string() });
    }
    if let Some(path) = text.strip_prefix("file:") {
        let p = std::path::Path::new(path);
        if path.is_empty() || p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(format!(
                "input {text:?}: a file input is a path inside the spec's directory (no `..`, not absolute)"
            ));
        }
        return Ok(InputSource::File(path.to_string()));
    }
    Err(format!("input {text:?}: expected dataset:NAME@VERSION or file:PATH"))
}

/// Names of pipelines, steps, params, inputs and outputs: letters, digits, `_`, `-`, `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl PipelineSpec {
    /// Reads and checks a spec: YAML, shape, names, references, built-ins, cycles.
    pub fn parse(text: &str) -> Result<ValidPipeline, SpecError> {
        let doc = yaml::load(text).map_err(|e| SpecError { line: Some(e.line), message: e.message })?;
        let spec: PipelineSpec = serde_path_to_error::deserialize(doc.value.clone()).map_err(|e| {
            let path = e.path().to_string();
            let line = unknown_key_line(&doc, &path, &e.inner().to_string()).or_else(|| doc.line_of(&path));
            let at = if path == "." { String::new() } else { format!("{path}: ") };
            SpecError { line, message: format!("{at}{}", e.into_inner()) }
        })?;
        spec.check(&doc)
    }

    fn check(self, doc: &yaml::Document) -> Result<ValidPipeline, SpecError> {
        let fail = |path: &str, message: String| SpecError { line: doc.line_of(path), message };
        if !valid_name(&self.name) {
            return Err(fail(
                "name",
                format!("name {:?}: use letters, digits, `_`, `-` or `.` (at most 64)", self.name),
            ));
        }
        if self.steps.is_empty() {
            return Err(fail("steps", "steps: a pipeline needs at least one step".into()));
        }
        for name in self.params.keys() {
            if !valid_name(name) {
                return Err(fail(
                    &format!("params.{name}"),
                    format!("param {name:?}: use letters, digits, `_`, `-` or `.`"),
                ));
            }
        }
        for (name, text) in &self.inputs {
            if !valid_name(name) {
                return Err(fail(
                    &format!("inputs.{name}"),
                    format!("input {name:?}: use letters, digits, `_`, `-` or `.`"),
                ));
            }
            parse_input(text).map_err(|m| fail(&format!("inputs.{name}"), m))?;
        }
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, step) in &self.steps {
            let at = format!("steps.{name}");
            if !valid_name(name) {
                return Err(fail(&at, format!("step {name:?}: use letters, digits, `_`, `-` or `.`")));
            }
            deps.insert(name.clone(), self.check_step(name, step, doc)?);
        }
        let order = topological(&deps).map_err(|cycle| {
            let first = cycle.first().cloned().unwrap_or_default();
            fail(&format!("steps.{first}"), format!("steps form a cycle: {}", cycle.join(" → ")))
        })?;
        Ok(ValidPipeline { spec: self, deps, order })
    }

    /// Checks one step; returns the steps it depends on.
    fn check_step(&self, name: &str, step: &StepSpec, doc: &yaml::Document) -> Result<BTreeSet<String>, SpecError> {
        let at = format!("steps.{name}");
        let fail = |path: &str, message: String| SpecError { line: doc.line_of(path), message };
        let mut seen = BTreeSet::new();
        for (i, output) in step.outputs.iter().enumerate() {
            if !valid_name(output) {
                return Err(fail(
                    &format!("{at}.outputs[{i}]"),
                    format!("step {name}: output {output:?}: use letters, digits, `_`, `-` or `.`"),
                ));
            }
            if !seen.insert(output) {
                return Err(fail(
                    &format!("{at}.outputs[{i}]"),
                    format!("step {name}: output {output:?} is declared twice"),
                ));
            }
        }
        match (&step.run, &step.uses) {
            (Some(_), Some(_)) => return Err(fail(&at, format!("step {name}: has both `run` and `uses`; give one"))),
            (None, None) => {
                return Err(fail(&at, format!("step {name}: needs `run: [command, args...]` or `uses: <built-in>`")));
            }
            (Some(run), None) => {
                if run.is_empty() {
                    return Err(fail(&format!("{at}.run"), format!("step {name}: `run` is empty")));
                }
                if !step.with.is_empty() {
                    return Err(fail(
                        &format!("{at}.with"),
                        format!("step {name}: `with` is for built-in steps (`uses`); pass arguments in `run`"),
                    ));
                }
            }
            (None, Some(uses)) => {
                let Some((_, required, optional)) = BUILTINS.iter().find(|(b, _, _)| b == uses) else {
                    let known: Vec<&str> = BUILTINS.iter().map(|b| b.0).collect();
                    return Err(fail(
                        &format!("{at}.uses"),
                        format!("step {name}: unknown built-in {uses:?} (known: {})", known.join(", ")),
                    ));
                };
                for key in step.with.keys() {
                    if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
                        return Err(fail(
                            &format!("{at}.with.{key}"),
                            format!(
                                "step {name}: `{uses}` takes no `{key}` (it takes {})",
                                required.iter().chain(optional.iter()).copied().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
                if uses == "train-tabular" && !step.outputs.iter().any(|o| o == "model") {
                    return Err(fail(
                        &at,
                        format!(
                            "step {name}: `train-tabular` writes its model to the output `model`: add `outputs: [model]`"
                        ),
                    ));
                }
                if let Some(missing) = required.iter().find(|k| !step.with.contains_key(**k)) {
                    return Err(fail(
                        &format!("{at}.with"),
                        format!("step {name}: `{uses}` needs `with: {{{missing}: ...}}`"),
                    ));
                }
            }
        }
        if step.retries > 10 {
            return Err(fail(
                &format!("{at}.retries"),
                format!("step {name}: retries {} is more than 10", step.retries),
            ));
        }
        if let Some(t) = &step.timeout {
            match parse_duration_ms(t) {
                Ok(ms) if ms > 0 => {}
                _ => {
                    return Err(fail(
                        &format!("{at}.timeout"),
                        format!("step {name}: timeout {t:?}: expected a duration such as 90s, 10m or 2h"),
                    ));
                }
            }
        }
        let mut texts: Vec<(String, &str)> = Vec::new();
        for (i, arg) in step.run.iter().flatten().enumerate() {
            texts.push((format!("{at}.run[{i}]"), arg.0.as_str()));
        }
        for (key, value) in &step.with {
            texts.push((format!("{at}.with.{key}"), value.0.as_str()));
        }
        for (key, value) in &step.env {
            texts.push((format!("{at}.env.{key}"), value.0.as_str()));
        }
        let mut deps = BTreeSet::new();
        for (i, other) in step.after.iter().enumerate() {
            let path = format!("{at}.after[{i}]");
            if other == name {
                return Err(fail(&path, format!("step {name}: cannot run after itself")));
            }
            if !self.steps.contains_key(other) {
                return Err(fail(
                    &path,
                    format!("step {name}: after: no step {other:?} (steps: {})", keys(&self.steps)),
                ));
            }
            deps.insert(other.clone());
        }
        for (path, text) in texts {
            let refs = references(text).map_err(|m| fail(&path, format!("step {name}: {m}")))?;
            for r in refs {
                let problem = match &r {
                    Reference::Param(p) if !self.params.contains_key(p) => {
                        Some(format!("no param {p:?} (params: {})", keys(&self.params)))
                    }
                    Reference::Input(i) if !self.inputs.contains_key(i) => {
                        Some(format!("no input {i:?} (inputs: {})", keys(&self.inputs)))
                    }
                    Reference::Output(o) if !step.outputs.contains(o) => Some(format!(
                        "${{outputs.{o}}} is not among this step's outputs ({}); add it to `outputs`",
                        list(&step.outputs)
                    )),
                    Reference::StepOutput { step: s, .. } if s == name => {
                        Some("a step cannot use its own outputs through `steps.`; use ${outputs.NAME}".into())
                    }
                    Reference::StepOutput { step: s, .. } if !self.steps.contains_key(s) => {
                        Some(format!("no step {s:?} (steps: {})", keys(&self.steps)))
                    }
                    Reference::StepOutput { step: s, output } if !self.steps[s].outputs.contains(output) => {
                        Some(format!(
                            "step {s} declares no output {output:?} (its outputs: {})",
                            list(&self.steps[s].outputs)
                        ))
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    return Err(fail(&path, format!("step {name}: {}: {problem}", r.text())));
                }
                if let Reference::StepOutput { step: s, .. } = r {
                    deps.insert(s);
                }
            }
        }
        Ok(deps)
    }
}

fn keys<V>(map: &BTreeMap<String, V>) -> String {
    if map.is_empty() { "none".into() } else { map.keys().cloned().collect::<Vec<_>>().join(", ") }
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// The line of an unknown key serde refused (its path ends at the struct holding it).
fn unknown_key_line(doc: &yaml::Document, path: &str, message: &str) -> Option<usize> {
    let key = message.strip_prefix("unknown field `")?.split('`').next()?;
    let full = if path == "." { key.to_string() } else { format!("{path}.{key}") };
    doc.lines.get(&full).copied()
}

/// Kahn's algorithm, ties by name; on a cycle, the steps of one cycle in order (first repeated).
fn topological(deps: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>, Vec<String>> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < deps.len() {
        let next =
            deps.iter().find(|(name, d)| !done.contains(name.as_str()) && d.iter().all(|x| done.contains(x.as_str())));
        match next {
            Some((name, _)) => {
                done.insert(name);
                order.push(name.clone());
            }
            None => {
                // Every remaining step waits on another remaining one: walk until one repeats.
                let mut path: Vec<String> = Vec::new();
                let mut at = deps.keys().find(|k| !done.contains(k.as_str())).cloned().unwrap_or_default();
                while !path.contains(&at) {
                    path.push(at.clone());
                    at = deps[&at].iter().find(|x| !done.contains(x.as_str())).cloned().unwrap_or_default();
                }
                let start = path.iter().position(|p| *p == at).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(at);
                return Err(cycle);
            }
        }
    }
    Ok(order)
}
