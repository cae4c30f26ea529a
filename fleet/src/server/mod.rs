//! `edgefleet serve`: the fleet manager.
//!
//! ```text
//!  devices ──MQTT──▶ broker (embedded rumqttd, or external) ──▶ link ──Input──▶ core ──▶ redb
//!     ▲                                                          │ chunk requests   │ commit, then:
//!     └──────────── commands, chunk responses ◀── publisher ◀────┴──────────────────┤ PUBACK devices,
//!  operators ──HTTP──▶ http ──Input──▶ core                                         │ answer operators,
//!                                                                                   └ send commands
//! ```
//!
//! - [`config`]: settings. [`broker`]: the embedded broker.
//! - [`core`]: the single owner of state, batching inputs into storage transactions; a thin
//!   async loop around [`core::Core::apply_batch`].
//! - [`driver`]: the rollout driver (owns the rollout records, returns effects given `now`).
//! - [`registry`], [`models`], [`rollouts`], [`selector`], [`audit`], [`rebirth`], [`quarantine`]:
//!   the pure parts.
//! - [`store`]: the storage edge ([`store::FleetStore`]: redb, memory). [`clock`]: time,
//!   passed in. [`link`]: MQTT. [`http`]: the operator API, [`requests`]: its requests
//!   answered by the core, [`reads`]: the large reads answered off the core loop, [`views`]: the typed answers ([`crate::api`]). Drift state and
//!   views live in [`crate::drift`].

pub mod audit;
pub mod broker;
pub mod clock;
pub mod command_ids;
pub mod config;
pub mod core;
pub mod decision_log;
pub mod driver;
pub mod duplicates;
pub mod http;
pub mod http_datasets;
pub mod http_pipelines;
pub mod link;
pub mod models;
pub mod pipelines;
pub mod quarantine;
pub mod reads;
pub mod rebirth;
pub mod registry;
pub mod requests;
pub mod rollouts;
pub mod selector;
pub mod sensor_health;
pub mod store;
pub mod views;

use crate::transfer::ObjectStore;
use anyhow::Context;
use config::{BrokerChoice, ServeConfig};
use core::{Core, CoreConfig, Outbound};
use registry::Retention;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A started fleet manager.
#[derive(Debug)]
pub struct Running {
    /// The HTTP API address.
    pub http_addr: SocketAddr,
    /// The broker devices connect to (`mqtt://host:port`).
    pub mqtt_url: String,
    /// True when the broker is the embedded one.
    pub embedded_broker: bool,
    /// Ends with the first failure of any part, or `Ok` after shutdown.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// What `server.json` in the data dir says (for scripts and the CLI).
pub const SERVER_FILE: &str = "server.json";

/// How long `start` waits for the uplink subscriptions on its own broker (it is up: this is
/// only the broker thread's scheduling) and on an external one (which may be down).
const SUBSCRIBE_WAIT_EMBEDDED: Duration = Duration::from_secs(10);
const SUBSCRIBE_WAIT_EXTERNAL: Duration = Duration::from_secs(3);

/// Starts everything; returns once the broker and the API are listening.
pub async fn start(cfg: ServeConfig, shutdown: CancellationToken) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let db = store::FleetDb::open(&cfg.data_dir.join("fleet.redb")).with_context(|| {
        format!("opening the fleet database in {} (is another `edgefleet serve` using it?)", cfg.data_dir.display())
    })?;
    let store: Arc<dyn store::FleetStore> = Arc::new(db);

    let mut objects = ObjectStore::default();
    let packages = models::load_objects(&cfg.data_dir, &mut objects).context("loading stored packages")?;
    let objects = Arc::new(RwLock::new(objects));

    let (host, port, embedded) = match &cfg.broker {
        BrokerChoice::Embedded(listen) => {
            let broker = broker::start(*listen, cfg.namespace.as_str(), cfg.max_packet_bytes)?;
            (broker.addr.ip().to_string(), broker.addr.port(), true)
        }
        BrokerChoice::External(url) => (url.host.clone(), url.port, false),
    };
    let mqtt_url = format!("mqtt://{host}:{port}");

    let listener = tokio::net::TcpListener::bind(cfg.http_listen)
        .await
        .with_context(|| format!("binding the HTTP API on {}", cfg.http_listen))?;
    let http_addr = listener.local_addr()?;

    let info = crate::api::status::ServerInfo {
        http: format!("http://{http_addr}"),
        mqtt: mqtt_url.clone(),
        embedded_broker: embedded,
        namespace: cfg.namespace.as_str().to_string(),
        data_dir: cfg.data_dir.display().to_string(),
        pid: std::process::id(),
    };
    // Through a JSON value: the keys stay sorted, as they always were in server.json.
    let info_bytes = serde_json::to_vec_pretty(&serde_json::to_value(&info)?)?;
    std::fs::write(cfg.data_dir.join(SERVER_FILE), info_bytes).context("writing server.json")?;

    let core_cfg = CoreConfig {
        namespace: cfg.namespace.clone(),
        unreachable_after_ms: cfg.unreachable_after.as_millis() as u64,
        retention: Retention { health: cfg.health_retention, history: cfg.history_retention },
        probation: cfg.probation,
        drift: cfg.drift,
        drift_retention: cfg.drift_retention,
        info,
    };
    let clock: Arc<dyn clock::Clock> = Arc::new(clock::SystemClock);
    let core = Core::open(core_cfg, store.clone(), clock.clone(), command_ids::CommandIds::random())?;
    info!(%http_addr, %mqtt_url, embedded, packages, data_dir = %cfg.data_dir.display(), "fleet manager starting");

    let (inputs_tx, inputs_rx) = mpsc::channel(8192);
    let (client, eventloop) = link::client(&host, port, &cfg.namespace, cfg.max_packet_bytes);
    let (out_tx, out_rx) = mpsc::channel::<Outbound>(link::OUTBOUND_QUEUE);

    let give_up = embedded.then_some(Duration::from_secs(30));
    let (subscribed_tx, mut subscribed) = tokio::sync::watch::channel(false);
    let link_task = tokio::spawn(link::run(
        eventloop,
        client.clone(),
        cfg.namespace.clone(),
        objects.clone(),
        inputs_tx.clone(),
        shutdown.clone(),
        give_up,
        subscribed_tx,
    ));
    let publisher = tokio::spawn(link::publisher(client.clone(), out_rx));

    let ack_client = client.clone();
    let core_task = tokio::spawn(core.run(
        inputs_rx,
        move |publish| {
            let _ = ack_client.try_ack(&publish);
        },
        move |out| out_tx.try_send(out).is_ok(),
    ));

    let tick_inputs = inputs_tx.clone();
    let tick_shutdown = shutdown.clone();
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                () = tick_shutdown.cancelled() => break,
                _ = interval.tick() => { let _ = tick_inputs.try_send(core::Input::Tick); }
            }
        }
    });

    let push = models::Push {
        trust_store: cfg.trust_store.clone(),
        data_dir: cfg.data_dir.clone(),
        objects: objects.clone(),
        inputs: inputs_tx.clone(),
    };
    let pipelines = pipelines::start(&cfg.pipelines, &cfg.data_dir, push).context("starting the pipeline service")?;
    let state = http::HttpState {
        inputs: inputs_tx,
        trust_store: cfg.trust_store.clone(),
        data_dir: cfg.data_dir.clone(),
        objects,
        store,
        clock,
        pipelines: Some(pipelines),
    };
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(listener, http::router(state)).with_graceful_shutdown(http_shutdown.cancelled_owned()).await
    });

    // Ready means subscribed: a device that connects earlier has its birth missed (births are
    // not retained) until the fleet asks for it again. An external broker that is down does not
    // hold the start up for long; the link keeps trying.
    let wait = if embedded { SUBSCRIBE_WAIT_EMBEDDED } else { SUBSCRIBE_WAIT_EXTERNAL };
    if tokio::time::timeout(wait, subscribed.wait_for(|s| *s)).await.is_err() {
        warn!(broker = %mqtt_url, waited_ms = wait.as_millis() as u64, "not subscribed to device messages yet; starting anyway");
    }

    let task = tokio::spawn(async move {
        let mut link_task = link_task;
        let mut core_task = core_task;
        let outcome: anyhow::Result<()> = tokio::select! {
            r = &mut link_task => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow::anyhow!(e)),
                Err(e) => Err(anyhow::anyhow!("MQTT link task failed: {e}")),
            },
            r = &mut core_task => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow::anyhow!("storage failed, stopping so nothing is acknowledged unstored: {e}")),
                Err(e) => Err(anyhow::anyhow!("core task failed: {e}")),
            },
        };
        shutdown.cancel();
        ticker.abort();
        publisher.abort();
        let _ = client.try_disconnect();
        let _ = http_task.await;
        outcome
    });
    Ok(Running { http_addr, mqtt_url, embedded_broker: embedded, task })
}
