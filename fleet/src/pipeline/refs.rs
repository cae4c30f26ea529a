//! `${...}` references in a step's arguments: what they name, and their substitution. `$${`
//! writes a literal `${`.

use super::spec::valid_name;

/// What a `${...}` names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    /// `${params.NAME}`
    Param(String),
    /// `${inputs.NAME}`: the input's file.
    Input(String),
    /// `${outputs.NAME}`: where this step writes its output.
    Output(String),
    /// `${steps.STEP.outputs.NAME}`: an earlier step's output file.
    StepOutput {
        /// The step.
        step: String,
        /// Its output.
        output: String,
    },
    /// `${run.number}`: the run's number among the pipeline's runs, from 1.
    RunNumber,
    /// `${run.id}`
    RunId,
}

impl Reference {
    /// As written.
    pub fn text(&self) -> String {
        match self {
            Reference::Param(p) => format!("${{params.{p}}}"),
            Reference::Input(i) => format!("${{inputs.{i}}}"),
            Reference::Output(o) => format!("${{outputs.{o}}}"),
            Reference::StepOutput { step, output } => format!("${{steps.{step}.outputs.{output}}}"),
            Reference::RunNumber => "${run.number}".into(),
            Reference::RunId => "${run.id}".into(),
        }
    }

    fn parse(inner: &str) -> Result<Reference, String> {
        let parts: Vec<&str> = inner.split('.').collect();
        let named = |n: &str, r: Reference| {
            if valid_name(n) { Ok(r) } else { Err(format!("${{{inner}}}: {n:?} is not a name")) }
        };
        match parts.as_slice() {
            ["params", p] => named(p, Reference::Param(p.to_string())),
            ["inputs", i] => named(i, Reference::Input(i.to_string())),
            ["outputs", o] => named(o, Reference::Output(o.to_string())),
            ["steps", s, "outputs", o] if valid_name(s) => {
                named(o, Reference::StepOutput { step: s.to_string(), output: o.to_string() })
            }
            ["run", "number"] => Ok(Reference::RunNumber),
            ["run", "id"] => Ok(Reference::RunId),
            _ => Err(format!(
                "${{{inner}}}: unknown reference (expected params.NAME, inputs.NAME, outputs.NAME, steps.STEP.outputs.NAME, run.number or run.id)"
            )),
        }
    }
}

/// One piece of an argument: literal text or a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Ref(Reference),
}

fn pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| format!("{text:?}: `${{` without its closing `}}`"))?;
            if !literal.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut literal)));
            }
            out.push(Piece::Ref(Reference::parse(tail[..end].trim())?));
            rest = &tail[end + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        out.push(Piece::Text(literal));
    }
    Ok(out)
}

/// The references in `text`, in order.
pub fn references(text: &str) -> Result<Vec<Reference>, String> {
    Ok(pieces(text)?.into_iter().filter_map(|p| if let Piece::Ref(r) = p { Some(r) } else { None }).collect())
}

/// `text` with every reference replaced by `value(reference)` (a validated spec only has
/// references its pipeline can answer; `value` returning None leaves the reference written).
pub fn substitute(text: &str, value: impl Fn(&Reference) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces(text)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Ref(r) => out.push_str(&value(&r).unwrap_or_else(|| r.text())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_and_substituted() {
        let text = "--data=${steps.prepare.outputs.table},epochs=${params.epochs}/$${literal}/$HOME";
        assert_eq!(
            references(text).unwrap(),
            vec![
                Reference::StepOutput { step: "prepare".into(), output: "table".into() },
                Reference::Param("epochs".into())
            ]
        );
        let out = substitute(text, |r| match r {
            Reference::Param(_) => Some("300".into()),
            _ => Some("/a/table".into()),
        })
        .unwrap();
        assert_eq!(out, "--data=/a/table,epochs=300/${literal}/$HOME");
        assert_eq!(substitute("1.${run.number}.0", |_| Some("4".into())).unwrap(), "1.4.0");
    }

    #[test]
    fn bad_references_say_what_is_expected() {
        assert!(references("${params}").unwrap_err().contains("unknown reference"));
        assert!(references("${steps.a.out.b}").unwrap_err().contains("unknown reference"));
        assert!(references("${inputs.a b}").unwrap_err().contains("is not a name"));
        assert!(references("x ${params.a").unwrap_err().contains("without its closing"));
        assert_eq!(references("no refs: $ and $$").unwrap(), vec![]);
    }
}
