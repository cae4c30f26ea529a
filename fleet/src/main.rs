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
    match cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
