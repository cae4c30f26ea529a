//! The thin loop around [`DriftHub`]: polls it every quarter window and carries closed
//! windows and sample batches to the outbox.

use super::Drift;
use super::hub::Report;
use crate::outbox::{Store, Stream};
use crate::reporting::Reports;
use edgefleet_protocol::uplink::{DriftSummary, SampleLabels};
use tokio_util::sync::CancellationToken;

fn push<S: Store>(reports: &Reports<S>, due: Vec<Report>) {
    for report in due {
        match report {
            Report::Drift(window) => {
                tracing::debug!(model = %window.model, version = window.version_seq, rows = window.rows, "drift window closed");
                reports.push(Stream::Drift, |seq| DriftSummary { seq, ..*window });
            }
            Report::Samples(mut batch) => {
                let labels = std::mem::take(&mut batch.labels);
                reports.push(Stream::Samples, |seq| batch.into_message(seq));
                if !labels.is_empty() {
                    reports.push(Stream::Labels, |seq| SampleLabels { seq, labels });
                }
            }
            Report::Labels(labels) => {
                tracing::debug!(labels = labels.len(), "labels of sent samples");
                reports.push(Stream::Labels, |seq| SampleLabels { seq, labels });
            }
        }
    }
}

/// Runs until `shutdown`, then closes the open window and sends it too.
pub async fn run<S: Store>(drift: Drift, reports: Reports<S>, shutdown: CancellationToken) {
    loop {
        let interval = drift.lock().poll_interval();
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        let now = drift.now_ms();
        let due = drift.lock().poll(now);
        push(&reports, due);
    }
    let now = drift.now_ms();
    let last = drift.lock().flush(now);
    push(&reports, last);
}
