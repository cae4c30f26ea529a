//! YAML text to a JSON value, remembering the line of every key and item, so that errors found
//! after parsing (a type mismatch, an unknown reference, a cycle) can name the line. Built on
//! yaml-rust2's event parser (`serde_yaml` is archived by its author; yaml-rust2 is maintained
//! and already in the build through rumqttd's configuration loader).

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A parsed document: its value and, per path (`steps.train.run[2]`), the 1-based line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Document {
    /// The document as JSON (YAML 1.2 core schema scalars: `300` is a number, `true` a bool).
    pub(super) value: Value,
    /// Line of each mapping key and sequence item, by path.
    pub(super) lines: BTreeMap<String, usize>,
}

impl Document {
    /// The line of `path`, or of its nearest parent that has one.
    pub(super) fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path.to_string();
        loop {
            if let Some(line) = self.lines.get(&path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path.truncate(cut);
        }
    }
}

/// YAML that cannot be read, with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub(super) struct YamlError {
    /// 1-based line.
    pub(super) line: usize,
    /// What is wrong.
    pub(super) message: String,
}

/// Parses one YAML document (an empty text is `null`).
pub(super) fn load(text: &str) -> Result<Document, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|e| YamlError { line: e.marker().line(), message: e.info().to_string() })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(Document { value: builder.root.unwrap_or(Value::Null), lines: builder.lines })
}

enum Frame {
    Map { map: Map<String, Value>, key: Option<String>, path: String },
    Seq { items: Vec<Value>, path: String },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    lines: BTreeMap<String, usize>,
    error: Option<YamlError>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: impl Into<String>) {
        self.error.get_or_insert(YamlError { line, message: message.into() });
    }

    /// The path a new value takes in the innermost collection (and records its line).
    fn child_path(&mut self, line: usize) -> String {
        let path = match self.stack.last() {
            Some(Frame::Map { key: Some(key), path, .. }) => join(path, key),
            Some(Frame::Seq { items, path }) => format!("{path}[{}]", items.len()),
            _ => String::new(),
        };
        if matches!(self.stack.last(), Some(Frame::Seq { .. })) {
            self.lines.insert(path.clone(), line);
        }
        path
    }

    fn push_value(&mut self, value: Value, line: usize) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, .. }) => match key.take() {
                Some(k) => {
                    map.insert(k, value);
                }
                None => self.fail(line, "a mapping key must be a plain value, not a list or a mapping"),
            },
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// A scalar as the YAML core schema reads it (quoted scalars are always strings).
fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match yaml_rust2::Yaml::from_str(&text) {
        yaml_rust2::Yaml::Integer(i) => Value::from(i),
        yaml_rust2::Yaml::Real(r) => {
            r.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::String(text), Value::Number)
        }
        yaml_rust2::Yaml::Boolean(b) => Value::Bool(b),
        yaml_rust2::Yaml::Null => Value::Null,
        _ => Value::String(text),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match event {
            Event::Scalar(text, style, _, _) => {
                if let Some(Frame::Map { map, key: key @ None, path }) = self.stack.last_mut() {
                    if map.contains_key(&text) {
                        let message = format!("duplicate key {text:?}");
                        self.fail(line, message);
                        return;
                    }
                    self.lines.insert(join(path, &text), line);
                    *key = Some(text);
                    return;
                }
                self.child_path(line);
                self.push_value(scalar(text, style), line);
            }
            Event::MappingStart(..) => {
                if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
                    self.fail(line, "a mapping key must be a plain value, not a mapping");
                    return;
                }
                let path = self.child_path(line);
                self.stack.push(Frame::Map { map: Map::new(), key: None, path });
            }
            Event::SequenceStart(..) => {
                if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
                    self.fail(line, "a mapping key must be a plain value, not a list");
                    return;
                }
                let path = self.child_path(line);
                self.stack.push(Frame::Seq { items: Vec::new(), path });
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { map, .. }) = self.stack.pop() {
                    self.push_value(Value::Object(map), line);
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, .. }) = self.stack.pop() {
                    self.push_value(Value::Array(items), line);
                }
            }
            Event::Alias(_) => self.fail(line, "anchors and aliases (*name) are not supported; write the value out"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_the_line_of_every_key_and_item() {
        let doc = load("name: x\nparams: {epochs: 300, rate: 0.5, on: true, none: ~}\nsteps:\n  a:\n    run: [python3, \"300\", 7]\n").unwrap();
        assert_eq!(
            doc.value,
            json!({"name": "x", "params": {"epochs": 300, "rate": 0.5, "on": true, "none": null},
                   "steps": {"a": {"run": ["python3", "300", 7]}}})
        );
        assert_eq!(doc.lines["name"], 1);
        assert_eq!(doc.lines["params.epochs"], 2);
        assert_eq!(doc.lines["steps.a"], 4);
        assert_eq!(doc.lines["steps.a.run[1]"], 5);
        assert_eq!(doc.line_of("steps.a.run[1].deeper"), Some(5));
        assert_eq!(doc.line_of("nowhere"), None);
    }

    #[test]
    fn bad_yaml_names_its_line() {
        assert_eq!(load("a: 1\nb: [1, 2\n").unwrap_err().line, 3);
        let dup = load("a: 1\nsteps:\n  x: 1\n  x: 2\n").unwrap_err();
        assert_eq!((dup.line, dup.message.as_str()), (4, "duplicate key \"x\""));
        assert!(load("a: &x 1\nb: *x\n").unwrap_err().message.contains("aliases"));
        assert!(load("? [a]\n: 1\n").is_err());
        assert_eq!(load("").unwrap().value, Value::Null);
    }
}
