//! `edgefleet keys generate`, `edgefleet package build|inspect`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use edgefleet::build::{BuildRequest, ModelArg, build_package};
use edgefleet::inspect::inspect;
use edgefleet::keys;
use edgefleet_protocol::package::{Lineage, ManifestSummary, TrustStore};
use edgefleet_protocol::{Digest, ModelName, SemVer};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate an ed25519 signing key (mode 0600), its public key and a one-key trust store.
    Generate {
        /// Directory to write into (created if missing); existing keys are never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Name recorded in the trust store.
        #[arg(long, default_value = "release")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PackageCommand {
    /// Build and sign a package from one ONNX model per hardware class.
    Build(Box<BuildArgs>),
    /// Show what a package holds; checks every blob, and the signature with --trust.
    Inspect {
        /// The `.efpkg` file.
        file: PathBuf,
        /// Also verify the signature against this public key or trust store.
        #[arg(long, value_name = "PUBKEY_OR_TRUSTSTORE")]
        trust: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Model name (letters, digits, '.', '_', '-').
    #[arg(long)]
    name: ModelName,
    /// Version sequence: must increase with every release (anti-rollback).
    #[arg(long)]
    version_seq: u64,
    /// Human label, e.g. 1.2.0.
    #[arg(long)]
    label: String,
    /// A variant: CLASS[:PRECISION]=PATH, CLASS one of cpu, gpu, accelerator, PRECISION one
    /// of fp32 (default), fp16, bf16, int8. Repeat per class.
    #[arg(long = "model", value_name = "CLASS[:PRECISION]=PATH", required = true)]
    models: Vec<ModelArg>,
    /// Signing key file (from `edgefleet keys generate`).
    #[arg(long)]
    key: PathBuf,
    /// Output package file.
    #[arg(long)]
    out: PathBuf,
    /// Oldest agent allowed to install it.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    min_agent_version: SemVer,
    /// Golden validation vectors to generate (run on devices before activation).
    #[arg(long, default_value_t = 4)]
    golden_count: usize,
    /// Golden tolerance (abs and rel) for every variant, instead of the per-precision default.
    #[arg(long)]
    tolerance: Option<f32>,
    /// Accelerator family of the accelerator variant (e.g. hailo-8).
    #[arg(long)]
    accelerator_kind: Option<String>,
    /// Drift reference profile (JSON, as written by `edgefleet drift profile`).
    #[arg(long)]
    drift_reference: Option<PathBuf>,
    /// Lineage: training run id.
    #[arg(long)]
    training_run: Option<String>,
    /// Lineage: SHA-256 of the training dataset.
    #[arg(long)]
    dataset_digest: Option<Digest>,
    /// Lineage: SHA-256 of the pipeline spec.
    #[arg(long)]
    pipeline_digest: Option<Digest>,
    /// Lineage: source revision of the training code.
    #[arg(long)]
    code_revision: Option<String>,
    /// Lineage: version sequence this model derives from.
    #[arg(long)]
    parent_version_seq: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `edgefleet keys ...`
pub(crate) fn keys(command: KeysCommand) -> Result<ExitCode> {
    match command {
        KeysCommand::Generate { out, name } => {
            let key = keys::generate(&out, &name)?;
            println!("generated key {}", key.key_id);
            println!("  signing key  {} (mode 0600: keep it secret)", key.signing_key_path.display());
            println!("  public key   {}", key.public_key_path.display());
            println!("  trust store  {} (copy to devices)", key.trust_store_path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `edgefleet package ...`
pub(crate) fn run(command: PackageCommand) -> Result<ExitCode> {
    match command {
        PackageCommand::Build(args) => {
            let args = *args;
            let json = args.json;
            let request = BuildRequest {
                name: args.name,
                version_seq: args.version_seq,
                label: args.label,
                models: args.models,
                key: args.key,
                out: args.out.clone(),
                min_agent_version: args.min_agent_version,
                golden_count: args.golden_count,
                tolerance: args.tolerance,
                accelerator_kind: args.accelerator_kind,
                drift_reference: args.drift_reference,
                lineage: Lineage {
                    training_run_id: args.training_run,
                    dataset_digest: args.dataset_digest,
                    pipeline_spec_digest: args.pipeline_digest,
                    code_revision: args.code_revision,
                    parent_version_seq: args.parent_version_seq,
                    created_at_ms: 0,
                },
            };
            let report = build_package(&request).context("package build failed")?;
            if json {
                let out = serde_json::json!({ "path": args.out, "package_id": report.package_id, "size": report.size, "manifest": report.manifest });
                println!("{out:#}");
            } else {
                println!("built {} ({} bytes)", args.out.display(), report.size);
                println!("  package id   {}", report.package_id);
                print!("{}", ManifestSummary(&report.manifest));
            }
        }
        PackageCommand::Inspect { file, trust, json } => {
            let trust = trust.map(|path| TrustStore::load(&path)).transpose()?;
            match inspect(&file, trust.as_ref()) {
                Ok(found) => {
                    if json {
                        println!("{:#}", serde_json::to_value(&found)?);
                    } else {
                        println!("{}", file.display());
                        println!("  package id   {}", found.package_id);
                        let checked = if found.signature_checked { "verified" } else { "NOT checked (pass --trust)" };
                        println!("  signed by    {} (signature {checked})", found.key_id);
                        println!("  blobs        all digests match");
                        print!("{}", ManifestSummary(&found.manifest));
                    }
                }
                Err(error) => {
                    if json {
                        println!("{:#}", serde_json::json!({ "valid": false, "reason": error.to_string() }));
                    }
                    eprintln!("invalid package {}: {error}", file.display());
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
