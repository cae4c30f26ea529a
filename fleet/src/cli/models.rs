//! `edgefleet model push|list|show`.

use super::{Conn, ms_ago, print_json, s};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// `edgefleet model ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ModelCommand {
    /// Upload a signed package; the fleet verifies it against its trusted keys.
    Push {
        /// The `.efpkg` file.
        file: PathBuf,
    },
    /// Every model version and how many devices run it.
    List,
    /// One model's versions and which devices run each.
    Show {
        /// Model name.
        name: String,
    },
}

/// `edgefleet model ...`
pub(crate) fn run(conn: &Conn, command: ModelCommand) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        ModelCommand::Push { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let answer = client.push_model(&bytes)?;
            if conn.json {
                print_json(&answer);
            } else {
                let m = &answer.model;
                let again = if answer.already_registered { " (already registered)" } else { "" };
                println!("pushed {}@{} ({}){again}", m.name, m.version_seq, m.label);
                println!("  package id  {}", m.package_id);
                println!("  signed by   {} (verified)", m.key_id);
                let variants: Vec<String> =
                    m.variants.iter().map(|v| format!("{} {} bytes", s(&v.hardware).to_lowercase(), v.size)).collect();
                println!("  variants    {}", variants.join(", "));
            }
        }
        ModelCommand::List => {
            let list = client.models()?;
            if conn.json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<28} {:<8} {:<14} {:<22} {:<8} PACKAGE", "MODEL", "VERSION", "LABEL", "VARIANTS", "DEVICES");
            for m in &list {
                let variants = m.variants.iter().map(|v| v.to_lowercase()).collect::<Vec<_>>().join(",");
                println!(
                    "{:<28} {:<8} {:<14} {:<22} {:<8} {}",
                    m.name,
                    m.version_seq,
                    m.label,
                    variants,
                    m.devices,
                    m.package_id.get(..16).unwrap_or(&m.package_id)
                );
            }
        }
        ModelCommand::Show { name } => {
            let answer = client.model(&name)?;
            if conn.json {
                print_json(&answer);
                return Ok(ExitCode::SUCCESS);
            }
            for v in &answer.versions {
                let r = &v.record;
                println!("{}@{} ({}) package {}", r.name, r.version_seq, r.label, r.package_id);
                println!("  pushed by {} {}", r.pushed_by, ms_ago(r.pushed_at_ms));
                println!(
                    "  running on {} device(s){}",
                    v.devices.len(),
                    if v.devices.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", v.devices.iter().take(20).map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
