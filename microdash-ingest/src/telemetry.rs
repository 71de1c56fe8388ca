//! The server's own metrics, exposed at `GET /metrics` in Prometheus text format.
//!
//! Every source (HTTP, MQTT) reports what it received, accepted and rejected through
//! [`Telemetry::record_received`] and friends, so logs and counters cannot disagree.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Where metrics came in.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Source {
    /// `POST /api/v1/metrics`.
    Http,
    /// MQTT: the bridge or the embedded endpoint.
    Mqtt,
}

/// Why metrics were turned away.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RejectReason {
    /// Failed validation or not JSON.
    Invalid,
    /// Over a size limit.
    TooLarge,
    /// The queue could not take them.
    QueueUnavailable,
    /// The publisher may not write there (an MQTT publish into another tenant's topics).
    Forbidden,
    /// Over the tenant's ingest rate or series limit.
    OverQuota,
}

impl Source {
    /// The label value: lowercase, as Prometheus labels usually are.
    pub fn name(self) -> &'static str {
        match self {
            Source::Http => "http",
            Source::Mqtt => "mqtt",
        }
    }
}

impl RejectReason {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::Invalid => "invalid",
            RejectReason::TooLarge => "too_large",
            RejectReason::QueueUnavailable => "queue_unavailable",
            RejectReason::Forbidden => "forbidden",
            RejectReason::OverQuota => "over_quota",
        }
    }
}

impl EncodeLabelValue for Source {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.name())
    }
}

impl EncodeLabelValue for RejectReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.name())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: Source,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    source: Source,
    reason: RejectReason,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    /// The tenant's id, not its slug: `/metrics` is unauthenticated and names no tenant.
    tenant_id: i64,
    limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

/// Counters, gauges and histograms of one server or worker process.
pub struct Telemetry {
    registry: Registry,
    http_requests: Family<StatusLabels, Counter>,
    received: Family<SourceLabels, Counter>,
    accepted: Family<SourceLabels, Counter>,
    rejected: Family<RejectLabels, Counter>,
    quota_rejected: Family<QuotaLabels, Counter>,
    persisted: Counter,
    duplicates: Counter,
    dead_lettered: Counter,
    store_retries: Counter,
    /// Why the workers' last write failed for an outage, until one succeeds: a database
    /// that answers a ping may still refuse every write (a full disk, a read-only file).
    write_failure: std::sync::Mutex<Option<String>>,
    queue_depth: Gauge,
    journal_bytes: Gauge,
    journal_segments: Gauge,
    worker_lag_seconds: Gauge<f64, AtomicU64>,
    batch_metrics: Histogram,
    insert_seconds: Histogram,
    ingest_to_persist_seconds: Histogram,
    streams_open: Gauge,
    streams_dropped_slow: Counter,
    connections_held: Gauge,
    streams_rejected: Family<LimitLabels, Counter>,
    connections_open: Gauge,
    connections_refused: Family<ReasonLabels, Counter>,
    mqtt_connections_refused: Family<ReasonLabels, Counter>,
    connections_closed: Family<ReasonLabels, Counter>,
    accept_errors: Counter,
    retention_deleted: Family<TableLabels, Counter>,
    retention_last_run: Gauge<f64, AtomicU64>,
    alert_transitions: Counter,
    alert_evaluator_leader: Gauge,
    notification_attempts: Family<DeliveryLabels, Counter>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("microdash");
        let http_requests = Family::<StatusLabels, Counter>::default();
        let received = Family::<SourceLabels, Counter>::default();
        let accepted = Family::<SourceLabels, Counter>::default();
        let rejected = Family::<RejectLabels, Counter>::default();
        let quota_rejected = Family::<QuotaLabels, Counter>::default();
        let persisted = Counter::default();
        let duplicates = Counter::default();
        let dead_lettered = Counter::default();
        let store_retries = Counter::default();
        let queue_depth = Gauge::default();
        let journal_bytes = Gauge::default();
        let journal_segments = Gauge::default();
        let worker_lag_seconds = Gauge::<f64, AtomicU64>::default();
        let batch_metrics = Histogram::new(exponential_buckets(1.0, 4.0, 9));
        let insert_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let ingest_to_persist_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let streams_open = Gauge::default();
        let streams_dropped_slow = Counter::default();
        let connections_held = Gauge::default();
        let streams_rejected = Family::<LimitLabels, Counter>::default();
        let connections_open = Gauge::default();
        let connections_refused = Family::<ReasonLabels, Counter>::default();
        let mqtt_connections_refused = Family::<ReasonLabels, Counter>::default();
        let connections_closed = Family::<ReasonLabels, Counter>::default();
        let accept_errors = Counter::default();
        let retention_deleted = Family::<TableLabels, Counter>::default();
        let retention_last_run = Gauge::<f64, AtomicU64>::default();
        let alert_transitions = Counter::default();
        let alert_evaluator_leader = Gauge::default();
        let notification_attempts = Family::<DeliveryLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by status", http_requests.clone());
        registry.register("metrics_received", "Metrics received, valid or not", received.clone());
        registry.register("metrics_accepted", "Metrics validated and handed to the queue", accepted.clone());
        registry.register(
            "metrics_rejected",
            "Metrics turned away, by reason (a whole request is rejected together; an unreadable body counts as one)",
            rejected.clone(),
        );
        registry.register(
            "quota_rejected_metrics",
            "Metrics refused for a tenant's quota, by tenant id and limit (max_ingest_metrics_per_s, max_series)",
            quota_rejected.clone(),
        );
        registry.register("metrics_persisted", "Metrics written to storage", persisted.clone());
        registry.register(
            "metrics_duplicate",
            "Metrics skipped because their dedupe_id was stored",
            duplicates.clone(),
        );
        registry.register("dead_lettered_batches", "Batches moved to the dead-letter store", dead_lettered.clone());
        registry.register("store_retries", "Failed storage attempts that were retried", store_retries.clone());
        registry.register("queue_depth", "Batches waiting in the queue", queue_depth.clone());
        registry.register(
            "queue_journal_bytes",
            "Bytes of the in-process queue's journal on disk (bounded by queue_max_bytes)",
            journal_bytes.clone(),
        );
        registry.register(
            "queue_journal_segments",
            "Segment files of the in-process queue's journal",
            journal_segments.clone(),
        );
        registry.register(
            "worker_lag_seconds",
            "Age of the last persisted batch when it was persisted",
            worker_lag_seconds.clone(),
        );
        registry.register("worker_batch_metrics", "Metrics per storage insert", batch_metrics.clone());
        registry.register("store_insert_seconds", "Duration of one storage insert", insert_seconds.clone());
        registry.register(
            "ingest_to_persist_seconds",
            "Time from acceptance to storage",
            ingest_to_persist_seconds.clone(),
        );
        registry.register("streams_open", "Open live streams (Server-Sent Events)", streams_open.clone());
        registry.register(
            "streams_dropped_slow",
            "Live streams closed because the client fell too far behind",
            streams_dropped_slow.clone(),
        );
        registry.register(
            "connections_held",
            "Open streams, waiting polls and MQTT connections, each ended when its credential is revoked",
            connections_held.clone(),
        );
        registry.register(
            "streams_rejected",
            "Live streams and waiting polls refused with 429, by the cap they would pass",
            streams_rejected.clone(),
        );
        registry.register("http_connections_open", "Open HTTP connections", connections_open.clone());
        registry.register(
            "http_connections_refused",
            "HTTP connections refused with 503 at a cap with every connection busy (and requests on the \
             connections kept for probes that are not probes or the token API), by cap",
            connections_refused.clone(),
        );
        registry.register(
            "mqtt_connections_refused",
            "Connections the embedded MQTT endpoint closed on arrival, every one at the cap having signed in, by cap",
            mqtt_connections_refused.clone(),
        );
        registry.register(
            "http_connections_closed",
            "HTTP connections the server closed: header_timeout, idle_timeout, write_timeout, \
             evicted (for a newcomer at a cap)",
            connections_closed.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Failed accepts of HTTP connections (out of file descriptors or memory)",
            accept_errors.clone(),
        );
        registry.register("retention_deleted_rows", "Rows deleted by retention, by table", retention_deleted.clone());
        registry.register(
            "retention_last_run_timestamp_seconds",
            "When the last retention pass finished (Unix seconds)",
            retention_last_run.clone(),
        );
        registry.register("alert_transitions", "Alert state changes recorded", alert_transitions.clone());
        registry.register(
            "alert_evaluator_leader",
            "1 while this process holds the alert evaluation lease",
            alert_evaluator_leader.clone(),
        );
        registry.register(
            "notification_attempts",
            "Notification delivery attempts, by channel kind and outcome (sent, retry, failed)",
            notification_attempts.clone(),
        );
        Self {
            registry,
            http_requests,
            received,
            accepted,
            rejected,
            quota_rejected,
            persisted,
            duplicates,
            dead_lettered,
            store_retries,
            write_failure: std::sync::Mutex::new(None),
            queue_depth,
            journal_bytes,
            journal_segments,
            worker_lag_seconds,
            batch_metrics,
            insert_seconds,
            ingest_to_persist_seconds,
            streams_open,
            streams_dropped_slow,
            connections_held,
            streams_rejected,
            connections_open,
            connections_refused,
            mqtt_connections_refused,
            connections_closed,
            accept_errors,
            retention_deleted,
            retention_last_run,
            alert_transitions,
            alert_evaluator_leader,
            notification_attempts,
        }
    }

    /// Count rows retention deleted from `table`.
    pub fn record_retention_deleted(&self, table: &'static str, rows: u64) {
        self.retention_deleted.get_or_create(&TableLabels { table }).inc_by(rows);
    }

    /// Note the end of a retention pass, at `now_ms`.
    pub fn record_retention_run(&self, now_ms: i64) {
        self.retention_last_run.set(now_ms as f64 / 1000.0);
    }

    /// Count recorded alert transitions.
    pub fn record_alert_transitions(&self, n: u64) {
        self.alert_transitions.inc_by(n);
    }

    /// Whether this process evaluates alerts now.
    pub fn record_alert_leader(&self, leader: bool) {
        self.alert_evaluator_leader.set(i64::from(leader));
    }

    /// Count one notification attempt: `channel` is `webhook` or `email`, `outcome` is
    /// `sent`, `retry` or `failed`.
    pub fn record_notification_attempt(&self, channel: &'static str, outcome: &'static str) {
        self.notification_attempts.get_or_create(&DeliveryLabels { channel, outcome }).inc();
    }

    /// Count an answered HTTP request.
    pub fn record_http(&self, status: u16) {
        self.http_requests.get_or_create(&StatusLabels { status }).inc();
    }

    /// Count metrics that arrived from `source`, before validation.
    pub fn record_received(&self, source: Source, count: usize) {
        self.received.get_or_create(&SourceLabels { source }).inc_by(count as u64);
    }

    /// Count metrics handed to the queue.
    pub fn record_accepted(&self, source: Source, count: usize) {
        self.accepted.get_or_create(&SourceLabels { source }).inc_by(count as u64);
    }

    /// Count metrics turned away.
    pub fn record_rejected(&self, source: Source, reason: RejectReason, count: usize) {
        self.rejected.get_or_create(&RejectLabels { source, reason }).inc_by(count as u64);
    }

    /// Count metrics of tenant `tenant_id` refused for its quota `limit`.
    pub fn record_quota_rejected(&self, tenant_id: i64, limit: &'static str, count: usize) {
        self.quota_rejected.get_or_create(&QuotaLabels { tenant_id, limit }).inc_by(count as u64);
    }

    /// Record one successful storage insert.
    pub fn record_insert(&self, metrics: usize, inserted: usize, seconds: f64, lag_seconds: &[f64]) {
        self.persisted.inc_by(inserted as u64);
        self.duplicates.inc_by(metrics.saturating_sub(inserted) as u64);
        self.batch_metrics.observe(metrics as f64);
        self.insert_seconds.observe(seconds);
        for lag in lag_seconds {
            self.ingest_to_persist_seconds.observe(*lag);
        }
        if let Some(last) = lag_seconds.last() {
            self.worker_lag_seconds.set(*last);
        }
    }

    /// Count a retried storage failure.
    pub fn record_retry(&self) {
        self.store_retries.inc();
    }

    /// Note that the workers' writes fail for an outage (`Some(why)`) or succeed again
    /// (`None`); `/api/v1/health` reports the database down meanwhile.
    pub fn record_write_failure(&self, failure: Option<String>) {
        *self.write_failure.lock().unwrap_or_else(|p| p.into_inner()) = failure;
    }

    /// Why the workers' writes are failing, if they are.
    pub fn write_failure(&self) -> Option<String> {
        self.write_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The number of open live streams, kept by the stream handler.
    pub fn streams_open(&self) -> &Gauge {
        &self.streams_open
    }

    /// Record how many connections hold a credential (see [`crate::revocation::Holds`]).
    pub fn record_connections_held(&self, held: usize) {
        self.connections_held.set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    /// Count a live stream closed for being too slow.
    pub fn record_stream_dropped_slow(&self) {
        self.streams_dropped_slow.inc();
    }

    /// Count a stream or waiting poll refused at the cap named `limit`.
    pub fn record_stream_rejected(&self, limit: &'static str) {
        self.streams_rejected.get_or_create(&LimitLabels { limit }).inc();
    }

    /// The number of open HTTP connections, kept by the server.
    pub fn connections_open(&self) -> &Gauge {
        &self.connections_open
    }

    /// Count an HTTP connection refused at the cap named `reason`.
    pub fn record_connection_refused(&self, reason: &'static str) {
        self.connections_refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Count a connection the embedded MQTT endpoint refused at the cap named `reason`.
    pub fn record_mqtt_connection_refused(&self, reason: &'static str) {
        self.mqtt_connections_refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Count an HTTP connection the server closed, and why.
    pub fn record_connection_closed(&self, reason: &'static str) {
        self.connections_closed.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Count a failed accept.
    pub fn record_accept_error(&self) {
        self.accept_errors.inc();
    }

    /// Count a dead-lettered batch.
    pub fn record_dead_letter(&self) {
        self.dead_lettered.inc();
    }

    /// The journal's size as sampled by the caller, before [`Telemetry::encode`].
    pub fn record_journal(&self, usage: crate::queue::JournalUsage) {
        self.journal_bytes.set(i64::try_from(usage.bytes).unwrap_or(i64::MAX));
        self.journal_segments.set(i64::try_from(usage.segments).unwrap_or(i64::MAX));
    }

    /// The text exposition, with the queue depth sampled by the caller just before.
    pub fn encode(&self, queue_depth: Option<u64>) -> String {
        if let Some(depth) = queue_depth {
            self.queue_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
