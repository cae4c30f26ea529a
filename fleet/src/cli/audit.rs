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
    /// Show entries, newest first, a page at a time (`--page 2` for older ones); `--from N`
    /// lists oldest first from entry N.
    List {
        /// Oldest first, from this entry.
        #[arg(long)]
        from: Option<u64>,
        /// At most this many (a page).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Newest first: this page (1 is the newest entries).
        #[arg(long, default_value_t = 1, conflicts_with = "from")]
        page: u64,
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
        AuditCommand::List { from, limit, page } => {
            let (entries, footer) = match from {
                Some(from) => (client.audit(from, limit)?, None),
                None => {
                    let total = client.status()?.audit_entries;
                    let skip = (page.max(1) - 1).saturating_mul(limit as u64);
                    let end = total.saturating_sub(skip);
                    let start = end.saturating_sub(limit as u64);
                    let mut entries = client.audit(start, (end - start) as usize)?;
                    entries.reverse();
                    let footer = if entries.is_empty() {
                        format!("no entries on page {page} ({total} in all)")
                    } else if start > 0 {
                        format!(
                            "entries {start}–{} of {total}, newest first; older: --page {}",
                            end.saturating_sub(1),
                            page.max(1) + 1
                        )
                    } else {
                        format!("entries {start}–{} of {total}, newest first", end.saturating_sub(1))
                    };
                    (entries, Some(footer))
                }
            };
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
            if let Some(footer) = footer {
                println!("{footer}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
