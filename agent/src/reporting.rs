//! Producers' side of the outbox: typed pushes per stream, and the link's view of it.

use crate::clock::Clock;
use crate::deploy::StatusSink;
use crate::link::UplinkQueue;
use crate::outbox::{Outbox, Store, Stream};
use edgefleet_protocol::command::{CommandId, DeploymentId};
use edgefleet_protocol::topic::TopicKind;
use edgefleet_protocol::uplink::{AckResult, CommandAck, DeploymentState, DeploymentStatus, Health};
use edgefleet_protocol::{ModelName, WireMessage, encode};
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::warn;

/// Milliseconds since the Unix epoch (the one definition, in `protocol`).
pub use edgefleet_protocol::time::unix_now_ms as now_ms;

fn stream_of(kind: TopicKind) -> Option<Stream> {
    Some(match kind {
        TopicKind::Deployment => Stream::Deployment,
        TopicKind::Health => Stream::Health,
        TopicKind::Ack => Stream::Ack,
        TopicKind::Drift => Stream::Drift,
        TopicKind::Samples => Stream::Samples,
        TopicKind::Labels => Stream::Labels,
        _ => return None,
    })
}

/// The outbox shared by producers and the MQTT link.
pub struct Reports<S: Store> {
    outbox: Arc<Outbox<S>>,
    wake: Arc<Notify>,
    clock: Clock,
}

impl<S: Store> Clone for Reports<S> {
    fn clone(&self) -> Self {
        Self { outbox: self.outbox.clone(), wake: self.wake.clone(), clock: self.clock }
    }
}

impl<S: Store> Reports<S> {
    /// Wraps `outbox`; `wake` is signalled after each push.
    pub fn new(outbox: Arc<Outbox<S>>, wake: Arc<Notify>) -> Self {
        Self { outbox, wake, clock: Clock::SYSTEM }
    }

    /// Stamps records and statuses with `clock` instead of the system clock.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// The clock records are stamped with.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<Outbox<S>> {
        &self.outbox
    }

    /// Tells the link that records are waiting (after pushing to [`Self::outbox`] directly).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Pushes a message built with its stream seq. Durable when this returns `true`.
    pub fn push<M: WireMessage>(&self, stream: Stream, build: impl FnOnce(u64) -> M) -> bool {
        let result = self.outbox.push(stream, self.clock.now_ms(), |seq| encode(&build(seq)).unwrap_or_default());
        match result {
            Ok(_) => {
                self.wake.notify_one();
                true
            }
            Err(e) => {
                warn!(stream = %stream, error = %e, "cannot queue report");
                false
            }
        }
    }

    /// Queues a command acknowledgement.
    pub fn ack(&self, command_id: CommandId, result: AckResult) {
        self.push(Stream::Ack, |seq| CommandAck { seq, command_id, result });
    }

    /// Queues a heartbeat (the closure fills everything but `seq`).
    pub fn health(&self, build: impl FnOnce(u64) -> Health) {
        self.push(Stream::Health, build);
    }
}

impl<S: Store> StatusSink for Reports<S> {
    fn report(&self, deployment_id: DeploymentId, model: &ModelName, version_seq: u64, state: DeploymentState) {
        self.push(Stream::Deployment, |seq| DeploymentStatus {
            seq,
            timestamp_ms: self.clock.now_ms(),
            deployment_id,
            model: model.clone(),
            version_seq,
            state,
        });
    }
}

impl<S: Store> UplinkQueue for Reports<S> {
    fn pending(&self, stream: TopicKind, after_seq: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        let Some(stream) = stream_of(stream) else { return Vec::new() };
        match self.outbox.pending(stream, after_seq, limit) {
            Ok(records) => records.into_iter().map(|r| (r.seq, r.payload)).collect(),
            Err(e) => {
                warn!(error = %e, "cannot read the outbox");
                Vec::new()
            }
        }
    }

    fn ack(&self, stream: TopicKind, seq: u64) {
        if let Some(stream) = stream_of(stream)
            && let Err(e) = self.outbox.ack(stream, seq)
        {
            warn!(error = %e, "cannot delete an acknowledged record");
        }
    }
}
