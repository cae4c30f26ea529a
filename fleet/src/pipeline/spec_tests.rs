//! The spec's checks: the issue's example is valid, and each kind of bad spec is refused with
//! its line and reason.
#![allow(clippy::unwrap_used)]

use super::spec::{PipelineSpec, SpecError};

const EXAMPLE: &str = r#"name: vibration-retrain
params: {epochs: 300, hidden: 16}
inputs:
  train: dataset:vibration-train@latest        # or @3, or @sha256:<digest>
steps:
  prepare:
    run: [python3, prepare.py, --in, "${inputs.train}", --out, "${outputs.table}"]
    outputs: [table]
  train:
    run: [python3, train.py, --data, "${steps.prepare.outputs.table}", --epochs, "${params.epochs}", --out, "${outputs.model}"]
    outputs: [model]
    retries: 2              # re-run on non-zero exit, with backoff
    timeout: 10m            # kill the whole process group, mark the step timed out
    cache: true             # default true
  package:
    uses: package           # built-in: build and sign a package from an ONNX output
    with: {model: "${steps.train.outputs.model}", name: vibration-mlp, label: "1.${run.number}.0"}
"#;

fn refused(text: &str) -> SpecError {
    PipelineSpec::parse(text).unwrap_err()
}

#[test]
fn the_issues_example_is_valid_and_ordered_by_its_references() {
    let p = PipelineSpec::parse(EXAMPLE).unwrap();
    assert_eq!(p.order, vec!["prepare", "train", "package"]);
    assert_eq!(p.deps["package"].iter().collect::<Vec<_>>(), vec!["train"]);
    assert_eq!(p.spec.params["epochs"].0, "300");
    assert_eq!(p.spec.steps["train"].retries, 2);
    assert!(p.spec.steps["prepare"].cache, "cache defaults to true");
}

#[test]
fn bad_specs_are_refused_with_the_line_and_the_reason() {
    let cases: &[(&str, &str, usize, &str)] = &[
        ("unknown key", "name: p\nsteps:\n  a:\n    run: [x]\n    retry: 2\n", 5, "unknown field `retry`"),
        ("unknown top key", "name: p\nstep:\n  a: {run: [x]}\n", 2, "unknown field `step`"),
        ("wrong type", "name: p\nsteps:\n  a:\n    run: [x]\n    retries: many\n", 5, "steps.a.retries"),
        ("unknown param", "name: p\nsteps:\n  a:\n    run: [x, \"${params.nope}\"]\n", 4, "no param \"nope\""),
        ("unknown step", "name: p\nsteps:\n  a:\n    run: [x, \"${steps.b.outputs.m}\"]\n", 4, "no step \"b\""),
        (
            "missing output",
            "name: p\nsteps:\n  a:\n    run: [x]\n    outputs: [m]\n  b:\n    run: [y, \"${steps.a.outputs.n}\"]\n",
            7,
            "step a declares no output \"n\"",
        ),
        ("undeclared own output", "name: p\nsteps:\n  a:\n    run: [x, \"${outputs.m}\"]\n", 4, "add it to `outputs`"),
        (
            "cycle",
            "name: p\nsteps:\n  a:\n    run: [x, \"${steps.b.outputs.m}\"]\n    outputs: [m]\n  b:\n    run: [y, \"${steps.a.outputs.m}\"]\n    outputs: [m]\n",
            3,
            "cycle: a → b → a",
        ),
        ("after unknown", "name: p\nsteps:\n  a:\n    run: [x]\n    after: [b]\n", 5, "after: no step \"b\""),
        (
            "after cycle",
            "name: p\nsteps:\n  a:\n    run: [x]\n    after: [b]\n  b:\n    run: [y]\n    after: [a]\n",
            3,
            "cycle: a → b → a",
        ),
        ("run and uses", "name: p\nsteps:\n  a:\n    run: [x]\n    uses: package\n", 3, "both `run` and `uses`"),
        ("unknown built-in", "name: p\nsteps:\n  a:\n    uses: deploy\n", 4, "unknown built-in \"deploy\""),
        (
            "built-in key",
            "name: p\nsteps:\n  a:\n    uses: package\n    with: {model: m, name: n, colour: red}\n",
            5,
            "takes no `colour`",
        ),
        (
            "built-in missing key",
            "name: p\nsteps:\n  a:\n    uses: package\n    with: {model: m}\n",
            5,
            "needs `with: {name: ...}`",
        ),
        ("bad timeout", "name: p\nsteps:\n  a:\n    run: [x]\n    timeout: soon\n", 5, "timeout \"soon\""),
        (
            "bad input",
            "name: p\ninputs:\n  d: s3://bucket\nsteps:\n  a: {run: [x]}\n",
            3,
            "expected dataset:NAME@VERSION or file:PATH",
        ),
        ("escaping file input", "name: p\ninputs:\n  d: file:../x\nsteps:\n  a: {run: [x]}\n", 3, "no `..`"),
        ("no steps", "name: p\nsteps: {}\n", 2, "at least one step"),
        ("bad yaml", "name: p\nsteps:\n  a: {run: [x]\n", 4, ""),
        ("duplicate step", "name: p\nsteps:\n  a: {run: [x]}\n  a: {run: [y]}\n", 4, "duplicate key \"a\""),
        ("empty run", "name: p\nsteps:\n  a: {run: []}\n", 3, "`run` is empty"),
        ("list as param", "name: p\nparams: {a: [1]}\nsteps:\n  s: {run: [x]}\n", 2, "expected a plain value"),
    ];
    for (what, text, line, reason) in cases {
        let e = refused(text);
        assert_eq!(e.line, Some(*line), "{what}: {e}");
        assert!(e.message.contains(reason), "{what}: {e}");
        assert!(e.to_string().starts_with(&format!("line {line}: ")), "{what}: {e}");
    }
}
