//! The serial reader: owns the port, pushes every byte through the streaming frame decoder,
//! records each result in the [`LinkTracker`] and pushes samples into the [`SampleQueue`].
//! When the port fails or vanishes (a USB adapter unplugged), it closes it and re-opens the
//! same path with backoff until it comes back or shutdown.

use super::queue::SampleQueue;
use super::tracker::LinkTracker;
use edgefleet_protocol::backoff::Backoff;
use edgefleet_protocol::serial::{FrameDecoder, MAX_ENCODED_FRAME_LEN};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Opens serial ports: the I/O edge, so tests can hand in any byte stream.
pub trait PortOpener: Send + Sync + 'static {
    /// The open port.
    type Port: AsyncRead + Unpin + Send;
    /// Opens `path` at `baud`.
    fn open(&self, path: &Path, baud: u32) -> std::io::Result<Self::Port>;
}

/// Real serial ports (and ptys) through `tokio-serial`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSerial;

impl PortOpener for TokioSerial {
    type Port = tokio_serial::SerialStream;

    fn open(&self, path: &Path, baud: u32) -> std::io::Result<Self::Port> {
        let path = path.to_string_lossy();
        let builder = tokio_serial::new(path.as_ref(), baud)
            .data_bits(tokio_serial::DataBits::Eight)
            .parity(tokio_serial::Parity::None)
            .stop_bits(tokio_serial::StopBits::One)
            .flow_control(tokio_serial::FlowControl::None);
        let port = tokio_serial::SerialStream::open(&builder).map_err(std::io::Error::from)?;
        Ok(port)
    }
}

/// What the reader shares with the status reporter.
#[derive(Debug)]
pub struct Shared {
    /// The link's bookkeeping.
    pub tracker: Mutex<LinkTracker>,
    /// Samples for inference.
    pub queue: SampleQueue,
    /// Signalled when the port opens or closes and when the first frame after a silence
    /// arrives (the status reporter publishes at once).
    pub changed: Notify,
    /// The agent's monotonic clock origin for `now_ms`.
    pub epoch: Instant,
}

impl Shared {
    /// Milliseconds since `epoch`.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Locks the tracker (a poisoned lock still holds valid counters).
    pub fn tracker(&self) -> std::sync::MutexGuard<'_, LinkTracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads `path` until `shutdown`, re-opening it after failures.
pub(super) async fn run<O: PortOpener>(
    opener: O,
    path: PathBuf,
    baud: u32,
    shared: Arc<Shared>,
    mut backoff: Backoff,
    shutdown: CancellationToken,
) {
    let mut buf = [0u8; 512];
    loop {
        let mut port = match opener.open(&path, baud) {
            Ok(port) => {
                info!(port = %path.display(), baud, "sensor port open");
                backoff.reset();
                shared.tracker().on_open();
                shared.changed.notify_one();
                port
            }
            Err(e) => {
                let delay = backoff.next_delay();
                warn!(port = %path.display(), error = %e, retry_in_ms = delay.as_millis() as u64, "cannot open the sensor port");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        // A fresh decoder per open: bytes from before a disconnect are not a frame's start.
        let mut decoder = FrameDecoder::<MAX_ENCODED_FRAME_LEN>::new();
        let reason = loop {
            let read = tokio::select! {
                () = shutdown.cancelled() => return,
                read = port.read(&mut buf) => read,
            };
            let n = match read {
                Ok(0) => break "end of stream".to_string(),
                Ok(n) => n,
                Err(e) => break e.to_string(),
            };
            let now = shared.now_ms();
            let mut tracker = shared.tracker();
            let was_silent = tracker.silent(now);
            for result in decoder.feed(&buf[..n]) {
                if let Err(e) = &result {
                    debug!(error = %e, "bad sensor frame");
                }
                if let Some(values) = tracker.on_frame(result, now) {
                    shared.queue.push(values);
                }
            }
            tracker.set_queue_drops(shared.queue.drops());
            let back = was_silent && !tracker.silent(now);
            drop(tracker);
            if back {
                shared.changed.notify_one();
            }
        };
        shared.tracker().on_close();
        shared.changed.notify_one();
        let delay = backoff.next_delay();
        warn!(port = %path.display(), reason, retry_in_ms = delay.as_millis() as u64, "sensor port lost; re-opening");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// How long a reader waits before re-opening at most.
pub const MAX_REOPEN_DELAY: Duration = Duration::from_secs(5);
