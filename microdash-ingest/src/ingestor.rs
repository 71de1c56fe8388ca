//! The one entry point every source (HTTP, MQTT) feeds: validate, count, check the tenant's
//! quotas, enqueue.

use std::sync::Arc;

use microdash_core::metric::{PayloadError, parse_metrics};
use microdash_core::quota::{MAX_SERIES, Quota};
use microdash_core::{Batch, Limits, Metric};
use microdash_store::Store;
use tracing::Instrument;

use crate::clock::now_ms;
use crate::queue::{Queue, QueueError};
use crate::quota::{Mode, QuotaConfig, QuotaError, Quotas};
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
    /// The tenant is over a quota; the client should retry after
    /// [`QuotaError::retry_after`].
    #[error(transparent)]
    Quota(#[from] QuotaError),
}

/// What became of metrics submitted with [`Ingestor::submit_each`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submitted {
    /// Metrics queued.
    pub accepted: usize,
    /// Positions of the metrics refused because they would have added a series beyond the
    /// tenant's `max_series`; everything else was queued.
    pub over_series_quota: Vec<usize>,
}

/// Validates and enqueues metrics for one process. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    queue: Queue,
    limits: Arc<Limits>,
    quotas: Arc<Quotas>,
    telemetry: Arc<Telemetry>,
}

impl Ingestor {
    /// An ingestor feeding `queue`, holding each tenant of `store` to its quotas.
    pub(crate) fn new(
        queue: Queue,
        limits: Limits,
        store: Store,
        quotas: QuotaConfig,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let quotas = Arc::new(Quotas::new(store, quotas, limits.max_metrics_per_request));
        Self { queue, limits: Arc::new(limits), quotas, telemetry }
    }

    /// Where what passes through is counted.
    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The limits applied to every submission.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The quotas tenants get unless they have their own.
    pub fn quota_defaults(&self) -> Quota {
        self.quotas.defaults()
    }

    /// Read a tenant's quotas from the store again now (after an admin changed them), rather
    /// than at the next refresh.
    pub async fn reload_quotas(&self, tenant_id: i64) {
        self.quotas.reload(tenant_id).await;
    }

    /// How many series this process counts for the tenant against its `max_series`
    /// (`None` while it has no series limit, or has not sent anything here yet).
    pub fn series_counted(&self, tenant_id: i64) -> Option<u64> {
        self.quotas.series_known(tenant_id)
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

    /// Enqueue already-validated metrics as one batch: all of them, or (over a quota, or
    /// when the queue refuses) none.
    pub async fn submit(
        &self,
        source: Source,
        tenant_id: i64,
        metrics: Vec<Metric>,
        received_at_ms: i64,
    ) -> Result<usize, IngestError> {
        let mode = Mode { each: false, metered: true };
        Ok(self.submit_with(source, tenant_id, metrics, received_at_ms, mode).await?.accepted)
    }

    /// Enqueue already-validated metrics as one batch, for sources that answer each metric on
    /// its own (an MQTT publish): metrics that would add a series beyond the tenant's
    /// `max_series` are left out (and named in the answer) while the others are queued. Over
    /// the rate, or when the queue refuses, nothing is queued.
    pub async fn submit_each(
        &self,
        source: Source,
        tenant_id: i64,
        metrics: Vec<Metric>,
        received_at_ms: i64,
    ) -> Result<Submitted, IngestError> {
        self.submit_with(source, tenant_id, metrics, received_at_ms, Mode { each: true, metered: true }).await
    }

    /// Submit as `mode` says: [`Ingestor::submit`] and [`Ingestor::submit_each`] are the two
    /// modes sources use; the bridge at shutdown also queues what it holds unmetered.
    pub(crate) async fn submit_with(
        &self,
        source: Source,
        tenant_id: i64,
        mut metrics: Vec<Metric>,
        received_at_ms: i64,
        mode: Mode,
    ) -> Result<Submitted, IngestError> {
        let count = metrics.len();
        self.telemetry.record_received(source, count);
        let mut admission = match self.quotas.admit(tenant_id, &metrics, mode).await {
            Ok(admission) => admission,
            Err(err) => {
                tracing::debug!(tenant_id, count, error = %err, "over quota");
                self.telemetry.record_rejected(source, RejectReason::OverQuota, count);
                self.telemetry.record_quota_rejected(tenant_id, err.limit(), count);
                return Err(err.into());
            }
        };
        if !admission.refused.is_empty() {
            let refused = admission.refused.len();
            self.telemetry.record_rejected(source, RejectReason::OverQuota, refused);
            self.telemetry.record_quota_rejected(tenant_id, MAX_SERIES, refused);
            let mut position = 0;
            let mut skip = admission.refused.iter().peekable();
            metrics.retain(|_| {
                let keep = skip.next_if_eq(&&position).is_none();
                position += 1;
                keep
            });
            if metrics.is_empty() {
                return Ok(Submitted { accepted: 0, over_series_quota: admission.refused });
            }
        }
        let accepted = metrics.len();
        let batch = Batch { tenant_id, received_at_ms, metrics };
        let span = tracing::debug_span!("enqueue", source = source.name(), tenant_id, metrics = count);
        // Queueing, and then counting the batch and confirming its series, run as a task of
        // their own: a caller cancelled meanwhile (a client gone, a request timeout, a revoked
        // MQTT connection) stops waiting, but a batch that reaches the queue is still counted
        // and its new series still held against the tenant's limit.
        let (queue, telemetry) = (self.queue.clone(), self.telemetry.clone());
        let queueing = async move {
            match queue.enqueue(batch).await {
                Ok(()) => {
                    telemetry.record_accepted(source, accepted);
                    let over_series_quota = std::mem::take(&mut admission.refused);
                    admission.confirm();
                    Ok(Submitted { accepted, over_series_quota })
                }
                Err(err) => {
                    tracing::warn!(tenant_id, count = accepted, error = %err, "queue refused a batch");
                    telemetry.record_rejected(source, RejectReason::QueueUnavailable, accepted);
                    Err(err.into())
                }
            }
        };
        tokio::spawn(queueing.instrument(span))
            .await
            .unwrap_or_else(|e| Err(QueueError::Journal(std::io::Error::other(e.to_string())).into()))
    }
}
