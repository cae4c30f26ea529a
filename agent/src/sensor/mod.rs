//! Serial sensor input (`[input] source = "serial"`): feature frames from sensor firmware
//! (WIRE.md §7) read from a UART or USB serial adapter, pushed into the active model.
//!
//! ```text
//! port ─bytes─▶ reader (FrameDecoder, LinkTracker) ─samples─▶ SampleQueue (bounded,
//!   drop-oldest) ─▶ daemon's push feeder ─▶ inference
//!                    └─ counters, hello, silence ─▶ reporter ─watch─▶ link ─▶ …/sensor
//! ```
//!
//! A UART pushes: the reader never waits on inference, so when inference falls behind the
//! queue drops its oldest sample and counts it. The reporter task turns the tracker into a
//! [`SensorStatus`] with every heartbeat and at once when the port opens or closes or the
//! sensor falls silent or comes back; the MQTT link publishes it (retained) after every birth
//! and on each change.

mod queue;
mod reader;
mod tracker;

pub use queue::SampleQueue;
pub use reader::{MAX_REOPEN_DELAY, PortOpener, Shared, TokioSerial};
pub use tracker::LinkTracker;

use crate::clock::Clock;
use crate::config::SerialSettings;
use edgefleet_protocol::backoff::Backoff;
use edgefleet_protocol::uplink::SensorStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running serial input: the queue the feeder drains and the status the link publishes.
pub struct SerialInput {
    /// Shared with the reader.
    pub shared: Arc<Shared>,
    /// Latest status, for the link and the local API.
    pub status_rx: watch::Receiver<SensorStatus>,
    /// The reader and reporter tasks.
    pub tasks: Vec<JoinHandle<()>>,
}

impl SerialInput {
    /// A live reading for the local API: the counters as of now, numbered like the last
    /// published report (whose counters may be up to a heartbeat old).
    pub fn live(&self) -> impl Fn(u64, u64) -> SensorStatus + Send + Sync + 'static {
        let shared = self.shared.clone();
        let status_rx = self.status_rx.clone();
        move |boot_id, wall_ms| {
            let seq = status_rx.borrow().seq;
            let mut tracker = shared.tracker();
            tracker.set_queue_drops(shared.queue.drops());
            tracker.status(shared.now_ms(), seq, boot_id, wall_ms)
        }
    }
}

/// Starts the reader on `settings.device` and the reporter (a status every `interval`).
pub fn start<O: PortOpener>(
    opener: O,
    settings: &SerialSettings,
    boot_id: u64,
    interval: Duration,
    clock: Clock,
    shutdown: CancellationToken,
) -> SerialInput {
    let epoch = Instant::now();
    let silence_ms = settings.silence.as_millis() as u64;
    let shared = Arc::new(Shared {
        tracker: std::sync::Mutex::new(LinkTracker::new(0, silence_ms)),
        queue: SampleQueue::new(settings.queue),
        changed: tokio::sync::Notify::new(),
        epoch,
    });
    let first = shared.tracker().status(0, 1, boot_id, clock.now_ms());
    let (status_tx, status_rx) = watch::channel(first);
    let backoff = Backoff::new(Duration::from_millis(100), MAX_REOPEN_DELAY);
    let reader = tokio::spawn(reader::run(
        opener,
        settings.device.clone(),
        settings.baud,
        shared.clone(),
        backoff,
        shutdown.clone(),
    ));
    let reporter = tokio::spawn(reporter(shared.clone(), status_tx, boot_id, interval, clock, shutdown));
    SerialInput { shared, status_rx, tasks: vec![reader, reporter] }
}

/// Publishes a status every `interval`, and at once on a port or silence change.
async fn reporter(
    shared: Arc<Shared>,
    status_tx: watch::Sender<SensorStatus>,
    boot_id: u64,
    interval: Duration,
    clock: Clock,
    shutdown: CancellationToken,
) {
    let mut seq = 1;
    let mut heartbeat = tokio::time::interval(interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Silence begins without any event: look for it often.
    let mut check = tokio::time::interval(Duration::from_millis(100));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reported_silent = false;
    loop {
        let due = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = heartbeat.tick() => true,
            () = shared.changed.notified() => true,
            _ = check.tick() => false,
        };
        let now = shared.now_ms();
        let status = {
            let mut tracker = shared.tracker();
            tracker.set_queue_drops(shared.queue.drops());
            let silent = tracker.silent(now);
            if !due && silent == reported_silent {
                continue;
            }
            if silent && !reported_silent {
                tracing::warn!(limit_ms = tracker.status(now, 0, 0, 0).silence_limit_ms, "sensor silent");
            }
            reported_silent = silent;
            seq += 1;
            tracker.status(now, seq, boot_id, clock.now_ms())
        };
        status_tx.send_replace(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Mutex;
    use tokio::io::DuplexStream;

    /// Hands out the reading ends of duplex pipes; the test keeps the writing ends.
    struct Pipes(Mutex<Vec<DuplexStream>>);

    impl PortOpener for Arc<Pipes> {
        type Port = DuplexStream;
        fn open(&self, _: &Path, _: u32) -> std::io::Result<DuplexStream> {
            self.0.lock().unwrap().pop().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    fn settings(silence_ms: u64) -> SerialSettings {
        SerialSettings {
            device: "/dev/null".into(),
            baud: 115_200,
            silence: Duration::from_millis(silence_ms),
            queue: 4,
        }
    }

    #[tokio::test]
    async fn a_port_that_never_speaks_turns_silent() {
        let (_writer, reader) = tokio::io::duplex(64);
        let pipes = Arc::new(Pipes(Mutex::new(vec![reader])));
        let shutdown = CancellationToken::new();
        let mut input = start(pipes, &settings(200), 7, Duration::from_secs(60), Clock::SYSTEM, shutdown.clone());
        let silent = tokio::time::timeout(Duration::from_secs(2), input.status_rx.wait_for(|s| s.silent)).await.is_ok();
        assert!(silent, "never silent: {:?}", *input.status_rx.borrow());
        assert!(input.status_rx.borrow().port_open);
        shutdown.cancel();
    }
}
