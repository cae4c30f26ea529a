//! `uses: package`: builds a package from the step's ONNX model (schema from the file, golden
//! vectors through the shared runtime: [`crate::build::build_package`]), signs it with the
//! fleet manager's pipeline key, takes the next version sequence from the model registry,
//! fills in its lineage from the run, and pushes it as `model push` would (verified against
//! the fleet's trust store, stored, registered in the core).

use super::runner::{BuiltinCall, BuiltinOutcome};
use crate::api::ApiResponse;
use crate::build::{BuildRequest, ModelArg, build_package};
use crate::server::models::Push;
use crate::server::requests::{ApiError, ApiRequest, ask_core};
use edgefleet_protocol::SemVer;
use edgefleet_protocol::hardware::{HardwareClass, Precision};
use edgefleet_protocol::package::Lineage;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the `package` step needs from the fleet manager.
#[derive(Clone)]
pub struct PackageStep {
    /// Pushes into the registry.
    pub push: Push,
    /// The pipeline signing key.
    pub signing_key: PathBuf,
}

fn log(path: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// Makes the pipeline signing key when it does not exist yet; returns its public key file.
pub fn ensure_signing_key(signing_key: &Path) -> Result<PathBuf, String> {
    let dir = signing_key.parent().unwrap_or(Path::new("."));
    let public = dir.join(crate::keys::PUBLIC_KEY_FILE);
    if signing_key.exists() {
        return Ok(public);
    }
    if signing_key.file_name().is_some_and(|n| n != crate::keys::SIGNING_KEY_FILE) {
        return Err(format!(
            "pipeline signing key {} does not exist (make one with `edgefleet keys generate --out DIR`)",
            signing_key.display()
        ));
    }
    crate::keys::generate(dir, "edgefleet-pipelines").map_err(|e| format!("making the pipeline signing key: {e}"))?;
    Ok(public)
}

impl PackageStep {
    /// Runs the step.
    pub async fn run(&self, call: BuiltinCall) -> Result<BuiltinOutcome, String> {
        let name = call.with.get("name").cloned().unwrap_or_default();
        let model_path = PathBuf::from(call.with.get("model").cloned().unwrap_or_default());
        let model_name = name.parse().map_err(|e| format!("name {name:?}: {e}"))?;
        let label = call.with.get("label").cloned().unwrap_or_else(|| call.run.id.clone());
        let latest = match ask_core(&self.push.inputs, ApiRequest::ShowModel { name: name.clone() }).await {
            Ok(ApiResponse::Model(detail)) => detail.versions.iter().map(|v| v.record.version_seq).max(),
            Ok(_) | Err(ApiError::UnknownModel { .. }) => None,
            Err(e) => return Err(format!("asking the model registry for {name}'s versions: {e}")),
        };
        let version_seq = match call.with.get("version_seq") {
            Some(v) => v.parse::<u64>().map_err(|_| format!("version_seq {v:?} is not a number"))?,
            None => latest.map_or(1, |l| l + 1),
        };
        let dataset = call.run.inputs.values().find_map(|i| i.dataset.as_ref().map(|d| d.digest));
        let lineage = Lineage {
            training_run_id: Some(call.run.id.clone()),
            dataset_digest: dataset,
            pipeline_spec_digest: Some(call.run.spec_digest),
            code_revision: Some(format!("sha256:{}", call.run.code_digest.to_hex())),
            parent_version_seq: latest,
            created_at_ms: 0,
        };
        let out = call.outputs.get("package").cloned().unwrap_or_else(|| call.work.join("package.efpkg"));
        let request = BuildRequest {
            name: model_name,
            version_seq,
            label: label.clone(),
            models: vec![ModelArg { class: HardwareClass::Cpu, precision: Precision::Fp32, path: model_path.clone() }],
            key: self.signing_key.clone(),
            out: out.clone(),
            min_agent_version: env!("CARGO_PKG_VERSION").parse::<SemVer>().map_err(|e| format!("{e:?}"))?,
            golden_count: 4,
            tolerance: None,
            accelerator_kind: None,
            drift_reference: call.with.get("drift_reference").map(PathBuf::from),
            lineage,
        };
        log(&call.log, &format!("building {name}@{version_seq} ({label}) from {}", model_path.display()));
        ensure_signing_key(&self.signing_key)?;
        let report = tokio::task::spawn_blocking(move || build_package(&request))
            .await
            .map_err(|e| format!("the build's thread failed: {e}"))?
            .map_err(|e| format!("package build: {e}"))?;
        log(&call.log, &format!("built package {} ({} bytes)", report.package_id, report.size));
        let bytes = std::fs::read(&out).map_err(|e| format!("reading {}: {e}", out.display()))?;
        let actor = format!("pipeline:{}", call.run.id);
        match self.push.push(bytes, edgefleet_protocol::time::unix_now_ms(), &actor).await {
            Ok(_) => {
                let key = format!("{name}@{version_seq}");
                log(&call.log, &format!("registered {key}, signed by the pipeline key"));
                Ok(BuiltinOutcome { package: Some(key) })
            }
            Err(ApiError::Invalid { message }) if message.contains("unknown key") || message.contains("no trusted") => {
                Err(format!(
                    "{message}: the pipeline signing key must be in the fleet's trust store ({}) and the devices'; add its public key {}",
                    self.push.trust_store.display(),
                    self.signing_key.with_file_name(crate::keys::PUBLIC_KEY_FILE).display()
                ))
            }
            Err(e) => Err(format!("registering {name}@{version_seq}: {e}")),
        }
    }
}
