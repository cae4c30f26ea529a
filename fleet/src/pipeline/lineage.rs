//! Lineage: where a model version came from and where it went. dataset(s) → run → package →
//! signature → rollouts → devices, with every digest on the way re-computed from the stored
//! content (the package file, the code snapshot, the inputs, the step outputs), so a record
//! that no longer matches what is stored shows as a failed check, never as a silent answer.

use super::artifacts::{DirStore, digest_file};
use super::record::{RunInput, RunRecord};
use super::service::{DatasetLookup, code_digest};
use super::store::PipelineStore;
use crate::api::lineage::{Check, DatasetLineage, DatasetUse, ModelLineage};
use crate::api::rollouts::RolloutSummary;
use crate::server::models::ModelRecord;
use edgefleet_protocol::Digest;
use edgefleet_protocol::package::{TrustStore, verify_package};
use std::path::Path;

fn check(what: impl Into<String>, digest: impl Into<String>, ok: bool, detail: Option<String>) -> Check {
    Check { what: what.into(), digest: digest.into(), ok, detail }
}

/// Re-hashes an artifact: is it stored, with the content its digest names?
fn artifact(artifacts: &DirStore, what: String, digest: &Digest) -> Check {
    let path = artifacts.path_of(digest);
    match digest_file(&path) {
        Ok(d) if d == *digest => check(what, digest.to_hex(), true, None),
        Ok(d) => check(what, digest.to_hex(), false, Some(format!("stored content hashes to {d}"))),
        Err(e) => check(what, digest.to_hex(), false, Some(format!("not in the artifact store: {e}"))),
    }
}

/// The lineage of `record`, given the package file's directory, the trust store, what the
/// registry says of its rollouts and devices.
#[allow(clippy::too_many_arguments)]
pub fn model_lineage(
    record: &ModelRecord,
    packages_dir: &Path,
    trust_path: &Path,
    store: &PipelineStore,
    artifacts: &DirStore,
    datasets: &dyn DatasetLookup,
    rollouts: Vec<RolloutSummary>,
    devices: Vec<String>,
) -> ModelLineage {
    let mut checks = Vec::new();
    let file = packages_dir.join(format!("{}.efpkg", record.package_id));
    let mut manifest = None;
    match (std::fs::File::open(&file), TrustStore::load(trust_path)) {
        (Ok(f), Ok(trust)) => match verify_package(std::io::BufReader::new(f), &trust, None) {
            Ok(verified) => {
                let same = verified.package_id.to_hex() == record.package_id;
                checks.push(check(
                    "package (signature, manifest, every blob)",
                    verified.package_id.to_hex(),
                    same,
                    (!same).then(|| format!("the registry says {}", record.package_id)),
                ));
                manifest = Some(verified.manifest);
            }
            Err(e) => checks.push(check("package", record.package_id.clone(), false, Some(e.to_string()))),
        },
        (Err(e), _) => {
            checks.push(check("package", record.package_id.clone(), false, Some(format!("{}: {e}", file.display()))))
        }
        (_, Err(e)) => {
            checks.push(check("package", record.package_id.clone(), false, Some(format!("trust store: {e}"))))
        }
    }
    let lineage = manifest.as_ref().map(|m| m.lineage.clone());
    let run_id = lineage.as_ref().and_then(|l| l.training_run_id.clone());
    let run: Option<RunRecord> = run_id.as_deref().and_then(|id| store.run(id).ok().flatten());
    if let (Some(id), None) = (&run_id, &run) {
        checks.push(check("run", id.clone(), false, Some("no such run in this fleet manager's records".into())));
    }
    if let (Some(run), Some(lineage)) = (&run, &lineage) {
        let version = store.versions(&run.pipeline).ok().and_then(|v| v.into_iter().find(|v| v.version == run.version));
        match &version {
            Some(v) => {
                let spec = Digest::sha256(v.spec.as_bytes());
                let ok = spec == run.spec_digest && lineage.pipeline_spec_digest == Some(spec);
                checks.push(check(
                    format!("spec {}@{}", v.name, v.version),
                    spec.to_hex(),
                    ok,
                    (!ok).then(|| "the package, the run and the registered spec disagree".into()),
                ));
                let code = code_digest(&v.code);
                let named = lineage.code_revision.as_deref() == Some(&format!("sha256:{}", code.to_hex()));
                let damaged: Vec<String> = v
                    .code
                    .iter()
                    .map(|f| artifact(artifacts, f.path.clone(), &f.digest))
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.what, c.detail.unwrap_or_default()))
                    .collect();
                let ok = code == run.code_digest && named && damaged.is_empty();
                let detail = if !damaged.is_empty() {
                    Some(damaged.join("; "))
                } else {
                    (!ok).then(|| "the package, the run and the snapshot disagree".into())
                };
                checks.push(check(
                    format!("code snapshot ({} files re-hashed)", v.code.len()),
                    code.to_hex(),
                    ok,
                    detail,
                ));
            }
            None => checks.push(check(
                "spec",
                run.spec_digest.to_hex(),
                false,
                Some(format!("{}@{} is not registered", run.pipeline, run.version)),
            )),
        }
        for (name, input) in &run.inputs {
            checks.push(input_check(artifacts, datasets, name, input));
        }
        for (step, s) in &run.steps {
            for (output, digest) in &s.outputs {
                checks.push(artifact(artifacts, format!("output {step}.{output}"), digest));
            }
        }
        for variant in &record.variants {
            let written_by = run.steps.iter().find_map(|(step, s)| {
                s.outputs.iter().find(|(_, d)| d.to_hex() == variant.digest).map(|(o, _)| format!("{step}.{o}"))
            });
            checks.push(check(
                format!("{} model blob = {}", variant.hardware, written_by.as_deref().unwrap_or("a step output")),
                variant.digest.clone(),
                written_by.is_some(),
                written_by.is_none().then(|| "no step of the run wrote this model".into()),
            ));
        }
    }
    let verified = checks.iter().all(|c| c.ok);
    ModelLineage {
        model: record.name.clone(),
        version_seq: record.version_seq,
        label: record.label.clone(),
        package_id: record.package_id.clone(),
        key_id: record.key_id.clone(),
        pushed_by: record.pushed_by.clone(),
        parent_version_seq: lineage.as_ref().and_then(|l| l.parent_version_seq),
        run,
        rollouts,
        devices,
        checks,
        verified,
    }
}

fn input_check(artifacts: &DirStore, datasets: &dyn DatasetLookup, name: &str, input: &RunInput) -> Check {
    let content = artifact(artifacts, format!("input {name} ({})", input.source), &input.digest);
    let Some(dataset) = &input.dataset else { return content };
    if !content.ok {
        return content;
    }
    match datasets.resolve(&dataset.name, &format!("sha256:{}", dataset.digest.to_hex())) {
        Ok((found, data)) if found.version == dataset.version && data == input.digest => check(
            format!("input {name}: dataset {}@{}", dataset.name, dataset.version),
            dataset.digest.to_hex(),
            true,
            None,
        ),
        Ok((found, data)) => check(
            format!("input {name}: dataset {}@{}", dataset.name, dataset.version),
            dataset.digest.to_hex(),
            false,
            Some(format!("the store has it as version {} with data {data}", found.version)),
        ),
        Err(e) => check(format!("input {name}: dataset {}", dataset.name), dataset.digest.to_hex(), false, Some(e)),
    }
}

/// What was trained from a dataset version: the runs that read it and the packages they made.
pub fn dataset_lineage(store: &PipelineStore, name: &str, version: u64, digest: Digest) -> DatasetLineage {
    let runs = store
        .runs()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.inputs.values().any(|i| i.dataset.as_ref().is_some_and(|d| d.digest == digest)))
        .map(|r| DatasetUse {
            run: r.id.clone(),
            pipeline: r.pipeline.clone(),
            status: r.status,
            package: r.package.clone(),
        })
        .collect();
    DatasetLineage { dataset: name.to_string(), version, digest: digest.to_hex(), runs }
}
