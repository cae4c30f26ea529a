//! `edgefleet-agent` command line.

use clap::{Parser, Subcommand};
use edgefleet_agent::verify::{VerifyError, VerifyRequest, verify_file};
use edgefleet_protocol::package::ManifestSummary;
use std::path::PathBuf;
use std::process::ExitCode;

/// The Edgefleet device agent.
#[derive(Debug, Parser)]
#[command(name = "edgefleet-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify a model package: exit 0 and a summary if valid, 1 and the precise reason if not.
    Verify {
        /// The `.efpkg` file.
        file: PathBuf,
        /// A public key file (`signing.pub`) or a TOML trust store.
        #[arg(long, value_name = "PUBKEY_OR_TRUSTSTORE")]
        trust: PathBuf,
        /// Refuse packages whose version sequence is not above this one (anti-rollback).
        #[arg(long, value_name = "N")]
        installed_seq: Option<u64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify { file, trust, installed_seq, json } => {
            let request = VerifyRequest { package: &file, trust: &trust, installed_seq };
            match verify_file(&request) {
                Ok(verified) => {
                    if json {
                        let report = serde_json::json!({
                            "valid": true,
                            "package_id": verified.package_id,
                            "key_id": verified.signature.key_id,
                            "manifest": verified.manifest,
                        });
                        println!("{report:#}");
                    } else {
                        println!("OK {}: valid package", file.display());
                        println!("  package id   {}", verified.package_id);
                        println!("  signed by    {}", verified.signature.key_id);
                        print!("{}", ManifestSummary(&verified.manifest));
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    if json {
                        let kind = match &error {
                            VerifyError::Rejected(_) => "rejected",
                            VerifyError::Trust(_) => "trust",
                            VerifyError::Io { .. } => "io",
                        };
                        println!(
                            "{:#}",
                            serde_json::json!({ "valid": false, "error": kind, "reason": error.to_string() })
                        );
                    }
                    eprintln!("REJECTED {}: {error}", file.display());
                    match error {
                        VerifyError::Rejected(_) => ExitCode::from(1),
                        _ => ExitCode::from(2),
                    }
                }
            }
        }
    }
}
