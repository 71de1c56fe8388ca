//! The one entry point every source (HTTP, MQTT) feeds: validate, count, enqueue.

use std::sync::Arc;

use microdash_core::metric::{PayloadError, parse_metrics};
use microdash_core::{Batch, Limits, Metric};
use tracing::Instrument;

use crate::clock::now_ms;
use crate::queue::{Queue, QueueError};
use crate::telemetry::{RejectReason, Source, Telemetry};

/// Why a submission was not accepted. Nothing of a rejected submission is enqueued.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The payload is malformed, too large or invalid.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The queue could not take the batch; the client should retry.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Validates and enqueues metrics for one process. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    queue: Queue,
    limits: Arc<Limits>,
    telemetry: Arc<Telemetry>,
}

impl Ingestor {
    /// An ingestor feeding `queue`.
    pub(crate) fn new(queue: Queue, limits: Limits, telemetry: Arc<Telemetry>) -> Self {
        Self { queue, limits: Arc::new(limits), telemetry }
    }

    /// The limits applied to every submission.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parse a JSON body (one metric or an array), validate it, and enqueue it as one batch
    /// for `tenant_id`. Returns how many metrics were accepted.
    pub async fn submit_json(&self, source: Source, tenant_id: i64, body: &[u8]) -> Result<usize, IngestError> {
        let received_at_ms = now_ms();
        match parse_metrics(body, &self.limits, received_at_ms) {
            Ok(metrics) => self.submit(source, tenant_id, metrics, received_at_ms).await,
            Err(err) => {
                let count = err.rejected_metrics();
                let reason = match &err {
                    PayloadError::TooMany { .. } => RejectReason::TooLarge,
                    PayloadError::Invalid { .. } | PayloadError::Malformed(_) => RejectReason::Invalid,
                };
                self.telemetry.record_received(source, count);
                self.telemetry.record_rejected(source, reason, count);
                Err(err.into())
            }
        }
    }

    /// Count metrics a source turned away before they could be submitted (an MQTT message
    /// that is not a metric), so every rejection is counted here.
    pub fn reject(&self, source: Source, reason: RejectReason, count: usize) {
        self.telemetry.record_received(source, count);
        self.telemetry.record_rejected(source, reason, count);
    }

    /// Enqueue already-validated metrics as one batch.
    pub async fn submit(
        &self,
        source: Source,
        tenant_id: i64,
        metrics: Vec<Metric>,
        received_at_ms: i64,
    ) -> Result<usize, IngestError> {
        let count = metrics.len();
        self.telemetry.record_received(source, count);
        let batch = Batch { tenant_id, received_at_ms, metrics };
        let span = tracing::debug_span!("enqueue", source = source.name(), tenant_id, metrics = count);
        match self.queue.enqueue(batch).instrument(span).await {
            Ok(()) => {
                self.telemetry.record_accepted(source, count);
                Ok(count)
            }
            Err(err) => {
                tracing::warn!(tenant_id, count, error = %err, "queue refused a batch");
                self.telemetry.record_rejected(source, RejectReason::QueueUnavailable, count);
                Err(err.into())
            }
        }
    }
}
