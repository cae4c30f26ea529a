//! `edgefleet pipeline ...`: training pipelines (fleet/PIPELINES.md).

use super::print_json;
use anyhow::{Context, Result};
use clap::Subcommand;
use edgefleet::pipeline::PipelineSpec;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// `edgefleet pipeline ...`
#[derive(Debug, Subcommand)]
pub(crate) enum PipelineCommand {
    /// Check a pipeline spec (YAML): its shape, names, references, built-ins and that its steps
    /// form no cycle; prints the order its steps would run in. Bad specs are refused with the
    /// line and the reason.
    Validate {
        /// The spec file.
        file: PathBuf,
    },
}

/// Runs a `pipeline` subcommand.
pub(crate) fn run(json: bool, command: PipelineCommand) -> Result<ExitCode> {
    match command {
        PipelineCommand::Validate { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let valid = PipelineSpec::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if json {
                print_json(&json!({
                    "valid": true,
                    "name": valid.spec.name,
                    "order": valid.order,
                    "deps": valid.deps,
                }));
            } else {
                println!(
                    "{}: pipeline {} is valid: {} step(s), in order {}",
                    file.display(),
                    valid.spec.name,
                    valid.order.len(),
                    valid.order.join(" → ")
                );
                for step in &valid.order {
                    let deps = &valid.deps[step];
                    let after = if deps.is_empty() {
                        "first".to_string()
                    } else {
                        format!("after {}", deps.iter().cloned().collect::<Vec<_>>().join(", "))
                    };
                    let s = &valid.spec.steps[step];
                    let what = match (&s.run, &s.uses) {
                        (_, Some(uses)) => format!("built-in {uses}"),
                        (Some(run), None) => run.iter().map(|a| a.0.as_str()).collect::<Vec<_>>().join(" "),
                        (None, None) => String::new(),
                    };
                    println!("  {step:<16} {after}: {what}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
