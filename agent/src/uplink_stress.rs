//! Test aid: `edgefleet-agent uplink-stress`, the outbox and the MQTT link together, as the
//! daemon runs them. Pushes health records (printing each seq once durable) while the link
//! drains them to the broker. `tests/uplink_kill.rs` SIGKILLs it with the broker reachable and
//! unreachable, and checks what a subscriber received.

use edgefleet_agent::config::{Overrides, load};
use edgefleet_agent::link::{self, LinkParts, LinkState};
use edgefleet_agent::outbox::{Outbox, OutboxLimits, RedbStore, Stream};
use edgefleet_agent::reporting::{Reports, now_ms};
use edgefleet_protocol::hardware::{HardwareClass, HardwareInfo};
use edgefleet_protocol::uplink::{Birth, Health};
use edgefleet_protocol::{SemVer, encode};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Flags of `uplink-stress`.
pub(crate) struct UplinkStressArgs {
    pub(crate) data_dir: PathBuf,
    pub(crate) broker_url: String,
    pub(crate) namespace: String,
    pub(crate) device_id: String,
    pub(crate) count: u64,
    pub(crate) interval_ms: u64,
}

pub(crate) fn run(args: UplinkStressArgs) -> anyhow::Result<()> {
    let env = vec![
        ("EDGEFLEET_AGENT__NAMESPACE".to_string(), args.namespace.clone()),
        ("EDGEFLEET_AGENT__MQTT__RECONNECT_MIN_MS".to_string(), "50".to_string()),
        ("EDGEFLEET_AGENT__MQTT__RECONNECT_MAX_MS".to_string(), "300".to_string()),
    ];
    let overrides = Overrides {
        device_id: Some(args.device_id.clone()),
        broker_url: Some(args.broker_url.clone()),
        data_dir: Some(args.data_dir.clone()),
        ..Overrides::default()
    };
    let settings = load(None, env, &overrides)?;
    std::fs::create_dir_all(&args.data_dir)?;
    let store = RedbStore::open(args.data_dir.join(RedbStore::FILE_NAME))?;
    let outbox = Arc::new(Outbox::open(store, OutboxLimits { max_bytes: u64::MAX, max_age_ms: u64::MAX })?);
    let wake = Arc::new(Notify::new());
    let reports = Reports::new(outbox, wake.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        let (inbound_tx, _inbound_rx) = mpsc::channel(8);
        let (_chunk_tx, chunk_rx) = mpsc::channel(1);
        let (state_tx, _state_rx) = watch::channel(LinkState::Disconnected);
        let device_id = settings.device_id.clone();
        let parts = LinkParts {
            uplink: Arc::new(reports.clone()),
            wake,
            rebirth: Arc::new(Notify::new()),
            birth: Box::new(move || Birth {
                device_id: device_id.clone(),
                boot_id: 1,
                agent_version: SemVer::new(0, 1, 0),
                hardware: HardwareInfo {
                    class: HardwareClass::Cpu,
                    cpu_arch: std::env::consts::ARCH.into(),
                    cpu_cores: 1,
                    memory_bytes: 0,
                    gpu: None,
                    accelerator: None,
                },
                free_disk_bytes: 0,
                free_memory_bytes: 0,
                active_models: vec![],
                seq: 1,
            }),
            inbound_tx,
            chunk_rx,
            state_tx,
            sensor_rx: None,
        };
        let link = tokio::spawn(link::run(settings, 1, parts, cancel.clone()));
        let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut stdout = std::io::stdout().lock();
            for _ in 0..args.count {
                let seq = reports.outbox().push(Stream::Health, now_ms(), |seq| {
                    encode(&Health {
                        seq,
                        boot_id: 1,
                        timestamp_ms: now_ms(),
                        uptime_ms: 0,
                        models: vec![],
                        outbox_depth: 0,
                        outbox_bytes: 0,
                        outbox_evictions: 0,
                        rss_bytes: 0,
                        cpu_percent: 0.0,
                        free_disk_bytes: 0,
                    })
                    .unwrap_or_default()
                })?;
                writeln!(stdout, "{seq}")?;
                stdout.flush()?;
                reports.wake();
                if args.interval_ms > 0 {
                    std::thread::sleep(Duration::from_millis(args.interval_ms));
                }
            }
            Ok(())
        });
        let produced = producer.await;
        // Keep draining until killed (the test decides when it has seen enough).
        let _ = link.await;
        produced.map_err(|e| anyhow::anyhow!("producer thread: {e}"))?
    })
}
