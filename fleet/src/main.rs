//! `edgefleet` command line: parse, dispatch ([`cli::run`]), exit code.

use clap::Parser;
use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Operator commands end quietly when their output is piped into `head` (Rust ignores
    // SIGPIPE and println! would panic). Not for `serve`: a long-running server must see a
    // closed socket as an error, not die of a signal.
    if !matches!(cli.command, cli::Command::Serve(_)) {
        sigpipe::reset();
    }
    let json = cli.conn.json;
    match cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            if json {
                eprintln!("{}", serde_json::json!({ "error": format!("{error:#}") }));
            } else {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(cli::EXIT_FAILED)
        }
    }
}
