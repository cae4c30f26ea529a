//! `edgefleet audit verify|list`: the hash-chained audit log.

use super::{Conn, j, ms_ago, print_json, s};
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

/// `edgefleet audit ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain; names the first broken entry.
    Verify,
    /// Show entries.
    List {
        /// From this entry.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `edgefleet audit ...`
pub(crate) fn run(conn: &Conn, command: AuditCommand) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        AuditCommand::Verify => {
            let answer = client.verify_audit()?;
            if conn.json {
                print_json(&answer);
            }
            if answer.ok {
                if !conn.json {
                    println!("audit chain intact: {} entries", j(&answer.entries));
                }
                Ok(ExitCode::SUCCESS)
            } else {
                if !conn.json {
                    println!("audit chain BROKEN at entry {}: {}", j(&answer.first_broken), s(&answer.reason));
                }
                Ok(ExitCode::from(1))
            }
        }
        AuditCommand::List { from, limit } => {
            let entries = client.audit(from, limit)?;
            if conn.json {
                print_json(&entries);
                return Ok(ExitCode::SUCCESS);
            }
            for e in &entries {
                println!(
                    "{:>5} {:<10} {:<14} {:<28} {:<16} {}",
                    e.seq,
                    ms_ago(e.at_ms),
                    e.actor,
                    e.action,
                    e.subject,
                    e.detail
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
