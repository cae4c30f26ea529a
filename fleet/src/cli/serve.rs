//! `edgefleet serve`: the fleet manager, until SIGINT/SIGTERM.

use anyhow::{Context, Result};
use clap::Args;
use edgefleet::server::config::{DEFAULT_CONFIG, Overrides, ServeConfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// `edgefleet serve` flags.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML settings file (layered over the embedded default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Registry, packages and audit log.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Embedded MQTT broker listener (port 0: any free port).
    #[arg(long)]
    mqtt_listen: Option<String>,
    /// HTTP API listener (port 0: any free port).
    #[arg(long)]
    http_listen: Option<String>,
    /// Use this external broker instead of the embedded one (mqtt://HOST:PORT).
    #[arg(long)]
    mqtt_url: Option<String>,
    /// Trusted package signing keys (a public key file or a trust store).
    #[arg(long)]
    trust_store: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Log format.
    #[arg(long, default_value = "plain", value_parser = ["plain", "json"])]
    log_format: String,
}

/// Runs the fleet manager until SIGINT/SIGTERM.
pub(crate) fn serve(args: ServeArgs) -> Result<ExitCode> {
    if args.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return Ok(ExitCode::SUCCESS);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
    let flags = Overrides {
        data_dir: args.data_dir,
        http_listen: args.http_listen,
        mqtt_listen: args.mqtt_listen,
        mqtt_url: args.mqtt_url,
        trust_store: args.trust_store,
    };
    let config = ServeConfig::load(args.config.as_deref(), std::env::vars(), &flags).context("configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running = edgefleet::server::start(config.clone(), shutdown.clone()).await?;
        println!("edgefleet fleet manager");
        println!("  HTTP API   http://{}   (edgefleet --server http://{} ...)", running.http_addr, running.http_addr);
        println!(
            "  MQTT       {}   ({})",
            running.mqtt_url,
            if running.embedded_broker { "embedded broker" } else { "external broker" }
        );
        println!("  data       {}", config.data_dir.display());
        println!("  trust      {}", config.trust_store.display());
        let signal_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            signal_shutdown.cancel();
        });
        running.task.await.context("fleet manager task")??;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
