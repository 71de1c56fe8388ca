//! Workers: take batches off the queue, store them, acknowledge them.
//!
//! A failed insert is retried with exponential backoff. When the database is unavailable
//! the worker keeps retrying (the queue absorbs the backlog and, once full, HTTP answers
//! `503`), so an outage loses nothing. Any other failure that survives every attempt moves
//! the batch to the dead-letter store, after splitting a multi-batch insert so that one bad
//! batch does not take good ones with it. A panic while storing (a bug) is treated the same
//! way instead of taking the worker down with its batches: in-process, those would stay
//! unacknowledged in the journal, which would then fill until the next restart.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures_util::FutureExt;
use microdash_core::{Batch, ErrorKind};
use microdash_store::{InsertStats, Store, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::now_ms;
use crate::live::LivePublisher;
use crate::queue::{Consumer, Delivery, Queue};
use crate::telemetry::Telemetry;

/// Worker tuning.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Concurrent workers in this process.
    pub workers: usize,
    /// Most metrics written in one insert (several queued batches are merged up to this).
    pub max_batch_metrics: usize,
    /// How long one receive waits for work before checking for shutdown.
    pub receive_wait: Duration,
    /// Attempts at storing a batch before it is dead-lettered (database outages excepted).
    pub max_attempts: usize,
    /// First retry delay.
    pub retry_initial_delay: Duration,
    /// Longest retry delay.
    pub retry_max_delay: Duration,
    /// A batch delivered more often than this (workers crashed or stalled on it) is
    /// dead-lettered without another attempt.
    pub max_deliveries: u32,
    /// Name prefix of this process's consumers (Redis), unique per process.
    pub consumer_prefix: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            max_batch_metrics: 50_000,
            receive_wait: Duration::from_millis(250),
            max_attempts: 5,
            retry_initial_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(5),
            max_deliveries: 10,
            consumer_prefix: unique_consumer_prefix(),
        }
    }
}

/// Host, process id and start time: unique even across containers where every process is
/// pid 1, and across restarts.
pub(crate) fn unique_consumer_prefix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".into());
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{host}-{}-{:x}", std::process::id(), started % 0xffff_ffff)
}

/// Run `config.workers` workers until `shutdown` is cancelled. In-process queues are
/// drained first (close the queue after cancelling); Redis workers finish and acknowledge
/// the batch in hand and leave the rest for other workers. What they store is announced
/// on `live`.
pub(crate) async fn run_workers(
    queue: Queue,
    store: Store,
    telemetry: Arc<Telemetry>,
    live: LivePublisher,
    config: WorkerConfig,
    shutdown: CancellationToken,
) {
    let config = Arc::new(config);
    let mut tasks = tokio::task::JoinSet::new();
    let spawn = |tasks: &mut tokio::task::JoinSet<()>, n: usize, delay: Duration| {
        let worker = Worker {
            queue: queue.clone(),
            store: store.clone(),
            telemetry: telemetry.clone(),
            live: live.clone(),
            config: config.clone(),
        };
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            // A replacement waits a moment, so a worker that panics at once cannot spin.
            tokio::time::sleep(delay).await;
            worker.run(n, shutdown).await;
        });
    };
    for n in 0..config.workers.max(1) {
        spawn(&mut tasks, n, Duration::ZERO);
    }
    let mut next = config.workers.max(1);
    while let Some(result) = tasks.join_next().await {
        // A panicking worker is a bug, but the process must keep storing what it accepted:
        // replace it (what it held is redelivered by Redis, or lost with it in-process).
        if let Err(err) = result {
            tracing::error!(error = %err, "worker task failed; starting a replacement");
            if !shutdown.is_cancelled() || !queue.is_durable() {
                spawn(&mut tasks, next, config.retry_max_delay);
                next += 1;
            }
        }
    }
}

/// The span one received set of batches is stored, acknowledged and published in: which
/// worker, how many batches and metrics, and the tenant when they are all one tenant's.
/// Per receive (up to `max_batch_metrics` metrics), not per metric, so it costs nothing
/// measurable; the stages inside (`insert`, `ack`, `publish`) are debug spans.
fn batch_span(worker: usize, deliveries: &[Delivery]) -> tracing::Span {
    let metrics: usize = deliveries.iter().map(|d| d.batch.metrics.len()).sum();
    let span =
        tracing::info_span!("batch", worker, batches = deliveries.len(), metrics, tenant_id = tracing::field::Empty);
    if let Some(first) = deliveries.first().map(|d| d.batch.tenant_id)
        && deliveries.iter().all(|d| d.batch.tenant_id == first)
    {
        span.record("tenant_id", first);
    }
    span
}

/// A worker's number as the journal's marks name it: its own rows, so workers never wait
/// for each other's.
fn writer(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

struct Worker {
    queue: Queue,
    store: Store,
    telemetry: Arc<Telemetry>,
    live: LivePublisher,
    config: Arc<WorkerConfig>,
}

impl Worker {
    async fn run(&self, n: usize, shutdown: CancellationToken) {
        let name = format!("{}-{n}", self.config.consumer_prefix);
        let mut consumer = loop {
            match self.queue.consumer(&name).await {
                Ok(consumer) => break consumer,
                Err(err) => {
                    tracing::warn!(worker = %name, error = %err, "queue unreachable, retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(self.config.retry_max_delay) => {}
                    }
                }
            }
        };
        tracing::debug!(worker = %name, "worker started");
        loop {
            // A durable queue keeps what is left for the next worker; an in-process one is
            // drained until it reports closed.
            if shutdown.is_cancelled() && self.queue.is_durable() {
                break;
            }
            let receive = self.queue.receive(&mut consumer, self.config.max_batch_metrics, self.config.receive_wait);
            let received = if self.queue.is_durable() {
                // Redis: stop waiting at shutdown; anything delivered but dropped here stays
                // pending and is claimed by another worker.
                tokio::select! {
                    received = receive => received,
                    () = shutdown.cancelled() => break,
                }
            } else {
                receive.await
            };
            match received {
                Ok(deliveries) if deliveries.is_empty() => {}
                Ok(deliveries) => {
                    let span = batch_span(n, &deliveries);
                    self.process(writer(n), deliveries, &consumer, &shutdown).instrument(span).await;
                }
                Err(crate::queue::QueueError::Closed) => break,
                Err(err) => {
                    tracing::warn!(worker = %name, error = %err, "receive failed");
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(self.config.retry_initial_delay) => {}
                    }
                    if let Consumer::Redis(_) = consumer {
                        // Reconnect: the dedicated connection may be the broken part.
                        if let Ok(fresh) = self.queue.consumer(&name).await {
                            consumer = fresh;
                        }
                    }
                }
            }
        }
        tracing::debug!(worker = %name, "worker stopped");
    }

    async fn process(&self, writer: i32, deliveries: Vec<Delivery>, consumer: &Consumer, shutdown: &CancellationToken) {
        // A batch delivered this often has already taken down or stalled other workers:
        // set it aside instead of letting it do so again.
        let (poison, deliveries): (Vec<_>, Vec<_>) =
            deliveries.into_iter().partition(|d| d.deliveries > self.config.max_deliveries);
        for delivery in &poison {
            let error = format!("delivered {} times without being stored", delivery.deliveries);
            self.dead_letter(writer, delivery, &error, shutdown).await;
        }
        if deliveries.is_empty() {
            return;
        }
        // The store's own state survives a panic: its locks are tokio's (not poisoned) or
        // recover from poisoning, and the connection of a transaction that did not commit
        // is discarded (SQLite's writer by the store, MariaDB's by its pool).
        let stored = AssertUnwindSafe(self.store_with_retries(writer, &deliveries, consumer, shutdown))
            .catch_unwind()
            .await
            .map_err(|panic| format!("storing the batch panicked: {}", panic_message(&*panic)));
        let stored = match stored {
            Ok(stored) => stored,
            Err(error) if deliveries.len() > 1 => {
                tracing::error!(
                    batches = deliveries.len(),
                    error,
                    "storing merged batches panicked; storing them one by one"
                );
                return self.one_by_one(writer, deliveries, consumer, shutdown).await;
            }
            Err(error) => return self.dead_letter(writer, &deliveries[0], &error, shutdown).await,
        };
        match stored {
            Ok((stats, seconds)) => {
                // Outside the catch above: the batch is committed, so nothing here may send
                // it to the dead letters as well.
                self.record(&deliveries, stats, seconds);
                self.ack(&deliveries).await;
                let batches = deliveries.into_iter().map(|d| d.batch).collect();
                self.live.publish(batches).instrument(tracing::debug_span!("publish")).await;
            }
            Err(err) if err.kind() == ErrorKind::Unavailable => {
                // Only reached on shutdown: the database never came back. Redis keeps the
                // batches pending for the next worker, and a journal replays them at the
                // next start; in-process ones without a journal are lost, and said so.
                if !self.queue.is_durable() {
                    let metrics: usize = deliveries.iter().map(|d| d.batch.metrics.len()).sum();
                    match self.queue.journal_usage() {
                        Some(_) => {
                            tracing::warn!(metrics, error = %err, "shutting down with the database unavailable: batches kept in the journal for the next start")
                        }
                        None => {
                            tracing::error!(metrics, error = %err, "shutting down with the database unavailable: batches not stored")
                        }
                    }
                }
            }
            Err(err) if deliveries.len() > 1 => {
                tracing::warn!(batches = deliveries.len(), error = %err, "merged insert failed, storing batches one by one");
                self.one_by_one(writer, deliveries, consumer, shutdown).await;
            }
            Err(err) => self.dead_letter(writer, &deliveries[0], &err.to_string(), shutdown).await,
        }
    }

    /// Process merged batches that failed together one at a time, so that only the bad one
    /// goes to the dead letters.
    async fn one_by_one(
        &self,
        writer: i32,
        deliveries: Vec<Delivery>,
        consumer: &Consumer,
        shutdown: &CancellationToken,
    ) {
        for delivery in deliveries {
            Box::pin(self.process(writer, vec![delivery], consumer, shutdown)).await;
        }
    }

    /// Move a batch to the dead-letter store, then acknowledge it. A journalled batch's mark
    /// is recorded with its dead letter, so a crash before the acknowledgement does not
    /// dead-letter it again at the replay. If even that fails, a durable queue keeps the
    /// batch for a later delivery; an in-process one has nowhere else to keep it, so the
    /// worker keeps trying until shutdown.
    async fn dead_letter(&self, writer: i32, delivery: &Delivery, error: &str, shutdown: &CancellationToken) {
        let attempts = i32::try_from(self.config.max_attempts).unwrap_or(i32::MAX);
        let mark = self.queue.journal_mark(writer, std::slice::from_ref(delivery));
        loop {
            match self.store.add_dead_letter(&delivery.batch, error, attempts, now_ms(), mark.as_ref()).await {
                Ok(written) => {
                    if written {
                        tracing::error!(tenant_id = delivery.batch.tenant_id, error, "batch dead-lettered");
                        self.telemetry.record_dead_letter();
                    }
                    self.ack(std::slice::from_ref(delivery)).await;
                    return;
                }
                Err(dl_err) => {
                    tracing::error!(error, dead_letter_error = %dl_err, "batch could not be stored nor dead-lettered");
                    if self.queue.is_durable() || shutdown.is_cancelled() {
                        return;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(self.config.retry_max_delay) => {}
                    }
                }
            }
        }
    }

    /// Store the batches, retrying with backoff. Unavailability is retried until shutdown;
    /// other errors up to `max_attempts` times. Journalled batches are stored with their
    /// mark, in one transaction, so a replay after a crash skips them.
    async fn store_with_retries(
        &self,
        writer: i32,
        deliveries: &[Delivery],
        consumer: &Consumer,
        shutdown: &CancellationToken,
    ) -> Result<(InsertStats, f64), StoreError> {
        let batches: Vec<&Batch> = deliveries.iter().map(|d| &d.batch).collect();
        let mark = self.queue.journal_mark(writer, deliveries);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_initial_delay)
            .with_max_delay(self.config.retry_max_delay)
            .with_max_times(self.config.max_attempts.saturating_sub(1))
            .with_jitter();
        let tried = AtomicBool::new(false);
        loop {
            let attempt = || async {
                if tried.swap(true, Ordering::Relaxed) {
                    // A retry: keep the batch this worker's for as long as the database keeps
                    // it waiting, or Redis would hand it to another worker as a dead one's.
                    if let Err(err) = self.queue.keep(consumer, deliveries).await {
                        tracing::warn!(error = %err, "could not renew the hold on a batch being retried");
                    }
                }
                #[cfg(test)]
                tests::panic_if_injected(&batches);
                // The insert alone is timed: backoff between attempts is not insert latency.
                let started = Instant::now();
                let span = tracing::debug_span!("insert", inserted = tracing::field::Empty);
                let stats = self
                    .store
                    .insert_batches_marked(&batches, now_ms(), mark.as_ref())
                    .instrument(span.clone())
                    .await?;
                span.record("inserted", stats.inserted);
                Ok::<_, StoreError>((stats, started.elapsed()))
            };
            let result = attempt
                .retry(backoff)
                .sleep(tokio::time::sleep)
                .when(|err| {
                    // After shutdown: Redis keeps the batch for another worker, and an
                    // in-process drain does not wait out a database that is down.
                    !shutdown.is_cancelled() || (!self.queue.is_durable() && err.kind() != ErrorKind::Unavailable)
                })
                .notify(|err, delay| {
                    self.telemetry.record_retry();
                    if err.kind() == ErrorKind::Unavailable {
                        self.telemetry.record_write_failure(Some(err.to_string()));
                    }
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "storing a batch failed");
                })
                .await;
            match result {
                Ok((stats, took)) => {
                    self.telemetry.record_write_failure(None);
                    return Ok((stats, took.as_secs_f64()));
                }
                Err(err) if err.kind() == ErrorKind::Unavailable && !shutdown.is_cancelled() => {
                    self.telemetry.record_write_failure(Some(err.to_string()));
                    tracing::error!(error = %err, "database unavailable; holding the batch and retrying");
                }
                Err(err) => {
                    // Not an outage (or shutting down): the batch goes to the dead letters,
                    // and the database is no longer reported down for it.
                    self.telemetry.record_write_failure(None);
                    return Err(err);
                }
            }
        }
    }

    fn record(&self, deliveries: &[Delivery], stats: InsertStats, seconds: f64) {
        let now = now_ms();
        let lags: Vec<f64> = deliveries.iter().map(|d| (now - d.batch.received_at_ms).max(0) as f64 / 1000.0).collect();
        self.telemetry.record_insert(stats.metrics, stats.inserted, seconds, &lags);
    }

    async fn ack(&self, deliveries: &[Delivery]) {
        if let Err(err) = self.queue.ack(deliveries).instrument(tracing::debug_span!("ack")).await {
            // Harmless beyond a redelivery: dedupe_id makes the second store a no-op.
            tracing::warn!(error = %err, "acknowledging batches failed; they may be delivered again");
        }
    }
}

/// What a caught panic said, for the dead letter and the log.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{LiveConfig, LiveHub};
    use crate::queue::{JournalConfig, MemoryQueue};
    use microdash_core::Limits;
    use microdash_core::metric::parse_metrics;
    use microdash_store::{Backend, PointQuery};

    /// A metric by this name makes storing its batch panic, standing in for a bug.
    const PANICS: &str = "worker_test_injected_panic";

    pub(super) fn panic_if_injected(batches: &[&Batch]) {
        if batches.iter().any(|b| b.metrics.iter().any(|m| m.name == PANICS)) {
            panic!("injected panic");
        }
    }

    fn batch(tenant_id: i64, name: &str) -> Batch {
        let json = format!(r#"{{"metric_name":"{name}","value":1}}"#);
        Batch { tenant_id, received_at_ms: 0, metrics: parse_metrics(json.as_bytes(), &Limits::default(), 0).unwrap() }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_whose_storing_panics_is_dead_lettered_and_the_rest_are_stored() {
        let db = microdash_store::testing::TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let tenant = store.create_tenant("t", "", 0).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let journal = JournalConfig::new(dir.path());
        let queue =
            Queue::Memory(MemoryQueue::with_journal(1_000, Duration::from_secs(1), &journal, &store).await.unwrap());
        // Queued before the worker starts, so it receives them as one merged insert.
        for name in ["before", PANICS, "after"] {
            queue.enqueue(batch(tenant.id, name)).await.unwrap();
        }
        let config = WorkerConfig {
            workers: 1,
            retry_initial_delay: Duration::from_millis(1),
            retry_max_delay: Duration::from_millis(10),
            ..WorkerConfig::default()
        };
        let live = LivePublisher::Local(Arc::new(LiveHub::new(LiveConfig::default())));
        let shutdown = CancellationToken::new();
        let workers = tokio::spawn(run_workers(
            queue.clone(),
            store.clone(),
            Arc::new(Telemetry::new()),
            live,
            config,
            shutdown.clone(),
        ));
        // Closing drains what is queued, then the worker stops: had the panic taken it down,
        // its replacement would have nothing left to store.
        queue.close();
        shutdown.cancel();
        workers.await.unwrap();

        let dead = store.list_dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].batch.metrics[0].name, PANICS);
        assert!(dead[0].error.contains("injected panic"), "{}", dead[0].error);
        for name in ["before", "after"] {
            let query = PointQuery { metric_name: Some(name.into()), limit: 10, ..PointQuery::default() };
            assert_eq!(store.query_points(tenant.id, &query).await.unwrap().len(), 1, "{name} stored");
        }
        // Everything was acknowledged and marked: reopening the journal replays nothing.
        drop(queue);
        let reopened = MemoryQueue::with_journal(1_000, Duration::from_secs(1), &journal, &store).await.unwrap();
        assert_eq!(Queue::Memory(reopened).depth().await.unwrap(), 0);
    }
}
