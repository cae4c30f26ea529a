//! Step cache keys. A step's key is the SHA-256 of: the executor kind, its command (or
//! built-in and its `with`), its environment and output names, all with references replaced
//! by what they stand for (a param by its value, an input or an earlier step's output by its
//! content digest), and, for a command, the code snapshot's digest. `${run.number}` and
//! `${run.id}` enter as written, not as values: they name the run, not the computation, so a
//! second run with unchanged inputs is served from the cache. A step whose result must differ
//! per run says `cache: false`.

use super::record::RunRecord;
use super::refs::{Reference, substitute};
use super::spec::StepSpec;
use edgefleet_protocol::Digest;
use serde_json::json;
use std::collections::BTreeMap;

/// The cache key of `step` in `run`, run by an executor of `kind` (`builtin` for `uses`).
pub fn step_key(kind: &str, code: &Digest, run: &RunRecord, step: &StepSpec) -> Result<Digest, String> {
    let value = |r: &Reference| -> Option<String> {
        match r {
            Reference::Param(p) => run.params.get(p).cloned(),
            Reference::Input(i) => run.inputs.get(i).map(|input| format!("sha256:{}", input.digest.to_hex())),
            Reference::StepOutput { step, output } => {
                run.steps.get(step).and_then(|s| s.outputs.get(output)).map(|d| format!("sha256:{}", d.to_hex()))
            }
            Reference::Output(_) | Reference::RunNumber | Reference::RunId => Some(r.text()),
        }
    };
    let keyed = |text: &str| substitute(text, value);
    let run_args = step.run.iter().flatten().map(|a| keyed(&a.0)).collect::<Result<Vec<_>, _>>()?;
    let with =
        step.with.iter().map(|(k, v)| Ok((k.clone(), keyed(&v.0)?))).collect::<Result<BTreeMap<_, _>, String>>()?;
    let env =
        step.env.iter().map(|(k, v)| Ok((k.clone(), keyed(&v.0)?))).collect::<Result<BTreeMap<_, _>, String>>()?;
    let code = if step.uses.is_some() { None } else { Some(code.to_hex()) };
    let doc = json!({
        "key": "edgefleet/step-cache/v1",
        "executor": kind,
        "run": run_args,
        "uses": step.uses,
        "with": with,
        "env": env,
        "outputs": step.outputs,
        "code": code,
    });
    let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    Ok(Digest::sha256(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::record::{RunInput, RunStatus, StepRun};
    use crate::pipeline::spec::PipelineSpec;

    fn run(epochs: &str, input: u8, number: u64) -> RunRecord {
        RunRecord {
            id: format!("p-{number}"),
            pipeline: "p".into(),
            version: 1,
            number,
            spec_digest: Digest([0; 32]),
            code_digest: Digest([1; 32]),
            params: [("epochs".to_string(), epochs.to_string())].into(),
            inputs: [(
                "train".to_string(),
                RunInput { source: "file:x".into(), digest: Digest([input; 32]), dataset: None },
            )]
            .into(),
            executor: "local".into(),
            status: RunStatus::Running,
            reason: None,
            steps: [("prep".to_string(), StepRun::pending())].into(),
            package: None,
            created_at_ms: 0,
            finished_at_ms: None,
            started_by: "t".into(),
            resumed: 0,
        }
    }

    #[test]
    fn keys_follow_params_inputs_code_and_executor_not_the_run_number() {
        let valid = PipelineSpec::parse(
            "name: p\nparams: {epochs: 3, unused: 1}\ninputs: {train: \"file:x\"}\nsteps:\n  prep:\n    run: [python3, t.py, \"${inputs.train}\", \"${params.epochs}\", \"${run.number}\", \"${outputs.m}\"]\n    outputs: [m]\n",
        )
        .expect("valid");
        let step = &valid.spec.steps["prep"];
        let code = Digest([1; 32]);
        let key = |r: &RunRecord, kind: &str, code: &Digest| step_key(kind, code, r, step).expect("key");
        let base = key(&run("3", 7, 1), "local", &code);
        assert_eq!(base, key(&run("3", 7, 2), "local", &code), "another run number, same key");
        let mut other_unused = run("3", 7, 1);
        other_unused.params.insert("unused".into(), "9".into());
        assert_eq!(base, key(&other_unused, "local", &code), "a param it does not reference");
        assert_ne!(base, key(&run("4", 7, 1), "local", &code), "a param it references");
        assert_ne!(base, key(&run("3", 8, 1), "local", &code), "an input's content");
        assert_ne!(base, key(&run("3", 7, 1), "ray", &code), "the executor");
        assert_ne!(base, key(&run("3", 7, 1), "local", &Digest([2; 32])), "the code");
    }
}
