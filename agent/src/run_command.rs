//! `edgefleet-agent run`: configuration, logging, signals, then the daemon.

use anyhow::Context;
use edgefleet_agent::config::{LogFormat, Overrides, load};
use edgefleet_agent::daemon;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flags of `run`.
pub(crate) struct RunArgs {
    pub(crate) config: Option<PathBuf>,
    pub(crate) overrides: Overrides,
}

pub(crate) fn run(args: RunArgs) -> ExitCode {
    let settings = match load(args.config.as_deref(), std::env::vars(), &args.overrides) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match log_filter(std::env::var("RUST_LOG").ok().as_deref()) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("error: RUST_LOG: {e}");
            return ExitCode::from(2);
        }
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match settings.log_format {
        LogFormat::Json => registry.with(layer.json()).init(),
        LogFormat::Plain => registry.with(layer).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            signals.cancel();
        });
        daemon::run(settings, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The log filter from `RUST_LOG`: comma-separated `target=level` directives and an optional bare
/// default level (`info`, `warn,edgefleet_agent::deploy=debug`); `info` when unset. Unlike
/// `EnvFilter` it takes no span or field filters: the regex engine those need is ~0.5 MiB of a
/// device binary.
fn log_filter(rust_log: Option<&str>) -> Result<Targets, String> {
    match rust_log.map(str::trim) {
        None | Some("") => Ok(Targets::new().with_default(LevelFilter::INFO)),
        Some(directives) => Targets::from_str(directives)
            .map_err(|e| format!("{e} in {directives:?} (expected e.g. `info` or `warn,edgefleet_agent=debug`)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_directives_set_levels_per_target() {
        let default = log_filter(None).unwrap();
        assert!(default.would_enable("rumqttc::state", &tracing::Level::INFO));
        assert!(!default.would_enable("rumqttc::state", &tracing::Level::DEBUG));

        let filter = log_filter(Some("warn,edgefleet_agent::deploy=debug")).unwrap();
        assert!(filter.would_enable("edgefleet_agent::deploy::manager", &tracing::Level::DEBUG));
        assert!(!filter.would_enable("edgefleet_agent::link", &tracing::Level::INFO));
        assert!(filter.would_enable("edgefleet_agent::link", &tracing::Level::WARN));

        assert!(log_filter(Some("edgefleet_agent=loud")).is_err());
    }
}
