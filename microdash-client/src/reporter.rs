//! [`Reporter`]: batched, retried, exactly-once pushes for applications.
//!
//! An application records points as they happen ([`Reporter::record`], which never blocks
//! and never fails); a background task sends them in batches, when `max_batch` points are
//! buffered or every `flush_interval`, whichever comes first.
//!
//! - **Bounded.** Points wait in a channel of `capacity` points. When it is full (the server
//!   is slow or away and the buffer has filled up) the point being recorded is dropped and
//!   counted in [`Reporter::dropped`]: the application's memory stays bounded, and what is
//!   already buffered (older, so in time order) goes first.
//! - **Retried, stored once.** A batch that fails with a retryable error (no connection, a
//!   timeout, `503`, `429`) is sent again up to `max_retries` times, waiting exponentially
//!   longer (from 100 ms, with jitter, up to 10 s) or as long as the server's `Retry-After`
//!   says. Every point gets a `dedupe_id` before its first attempt (its own, or a
//!   process-unique prefix and a counter), so a batch the server stored but whose answer was
//!   lost is not stored twice when it is sent again.
//! - **Refusals.** When the server refuses some points (`422`, naming them), those are
//!   counted in [`Reporter::failed`] and logged, and the rest are sent again at once. A batch
//!   refused otherwise, or still failing after its retries, is counted there too.
//! - **Shutdown must be awaited.** [`Reporter::shutdown`] stops taking points and sends
//!   what is buffered, for at most `shutdown_timeout`. Dropping every clone of a reporter
//!   without it also makes the task send what is buffered, but nothing waits for that: when
//!   the runtime stops first (the end of `main`), those points are lost. Async work cannot
//!   run in `Drop`, so await `shutdown` before the program ends.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use backon::BackoffBuilder;
use microdash_core::api::MetricIn;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, MAX_RETRY_AFTER, Replay, backoff};
use crate::error::Error;

/// Most points in one push unless [`ReporterBuilder::max_batch`] says otherwise.
pub const DEFAULT_MAX_BATCH: usize = 1_000;
/// Longest a point waits to be sent unless [`ReporterBuilder::flush_interval`] says otherwise.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Points buffered unless [`ReporterBuilder::capacity`] says otherwise.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Retries of a batch unless [`ReporterBuilder::max_retries`] says otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// How long [`Reporter::shutdown`] may take unless [`ReporterBuilder::shutdown_timeout`]
/// says otherwise.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for a [`Reporter`]; every one has a default. Made by [`Reporter::builder`].
#[must_use = "a builder does nothing until `start`"]
#[derive(Debug)]
pub struct ReporterBuilder {
    client: Client,
    settings: Settings,
}

#[derive(Debug, Clone)]
struct Settings {
    max_batch: usize,
    flush_interval: Duration,
    capacity: usize,
    max_retries: u32,
    shutdown_timeout: Duration,
}

impl ReporterBuilder {
    /// Most points in one push (default [`DEFAULT_MAX_BATCH`]); a full batch is sent at
    /// once. Keep it within the server's `max_metrics_per_request` (10,000 by default).
    pub fn max_batch(mut self, points: usize) -> Self {
        self.settings.max_batch = points.max(1);
        self
    }

    /// Longest a point waits before it is sent (default [`DEFAULT_FLUSH_INTERVAL`]).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.settings.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Points buffered while earlier ones are sent (default [`DEFAULT_CAPACITY`]); beyond
    /// it new points are dropped and counted ([`Reporter::dropped`]).
    pub fn capacity(mut self, points: usize) -> Self {
        self.settings.capacity = points.max(1);
        self
    }

    /// How many times a failing batch is sent again (default [`DEFAULT_MAX_RETRIES`]).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.settings.max_retries = retries;
        self
    }

    /// How long [`Reporter::shutdown`] may spend sending what is buffered (default
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`]); what is left then is counted in [`Reporter::failed`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.settings.shutdown_timeout = timeout;
        self
    }

    /// Start the background task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn start(self) -> Reporter {
        let (tx, rx) = mpsc::channel(self.settings.capacity);
        let counts = Arc::new(Counts::default());
        let stop = CancellationToken::new();
        let finished = CancellationToken::new();
        let task = Task {
            client: self.client,
            settings: self.settings,
            counts: counts.clone(),
            stop: stop.clone(),
            deadline: None,
        };
        let guard = finished.clone().drop_guard();
        tokio::spawn(async move {
            // Whatever way the task ends, shutdown stops waiting.
            let _guard = guard;
            task.run(rx).await;
        });
        Reporter { shared: Arc::new(Shared { tx, counts, stop, finished }) }
    }
}

/// A batching sender of points for an application; see the [module documentation](self).
/// Cheap to clone: clones feed the same buffer and task.
///
/// ```no_run
/// # async fn demo(client: microdash_client::Client) {
/// use std::time::Duration;
/// use microdash_client::MetricIn;
/// use microdash_client::reporter::Reporter;
///
/// let reporter = Reporter::builder(client).max_batch(500).flush_interval(Duration::from_secs(2)).start();
/// reporter.record(MetricIn::new("orders.placed", 1.0).tag("shop", "eu"));
/// // ... at the end of the program:
/// reporter.shutdown().await;
/// assert_eq!(reporter.dropped(), 0);
/// # }
/// ```
#[derive(Clone)]
pub struct Reporter {
    shared: Arc<Shared>,
}

struct Shared {
    tx: mpsc::Sender<MetricIn>,
    counts: Arc<Counts>,
    stop: CancellationToken,
    /// Cancelled when the task has ended.
    finished: CancellationToken,
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("sent", &self.sent())
            .field("dropped", &self.dropped())
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// Start configuring a reporter that pushes through `client`.
    pub fn builder(client: Client) -> ReporterBuilder {
        ReporterBuilder {
            client,
            settings: Settings {
                max_batch: DEFAULT_MAX_BATCH,
                flush_interval: DEFAULT_FLUSH_INTERVAL,
                capacity: DEFAULT_CAPACITY,
                max_retries: DEFAULT_MAX_RETRIES,
                shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            },
        }
    }

    /// Buffer a point to be sent. Never blocks: when the buffer is full, or after
    /// [`Reporter::shutdown`], the point is dropped and counted in [`Reporter::dropped`].
    pub fn record(&self, metric: MetricIn) {
        if self.shared.tx.try_send(metric).is_err() {
            self.shared.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Points the server accepted.
    pub fn sent(&self) -> u64 {
        self.shared.counts.sent.load(Ordering::Relaxed)
    }

    /// Points dropped unsent because the buffer was full or the reporter shut down.
    pub fn dropped(&self) -> u64 {
        self.shared.counts.dropped.load(Ordering::Relaxed)
    }

    /// Points given up on: refused by the server, still failing after `max_retries`, or
    /// not sent within the shutdown timeout.
    pub fn failed(&self) -> u64 {
        self.shared.counts.failed.load(Ordering::Relaxed)
    }

    /// Stop taking points, send what is buffered (within the shutdown timeout) and wait
    /// for the task to end. Later calls, from any clone, wait for the same end.
    pub async fn shutdown(&self) {
        self.shared.stop.cancel();
        self.shared.finished.cancelled().await;
    }
}

/// The background task.
struct Task {
    client: Client,
    settings: Settings,
    counts: Arc<Counts>,
    stop: CancellationToken,
    /// Set once shutdown began: when sending must be over.
    deadline: Option<Instant>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<MetricIn>) {
        let max = self.settings.max_batch;
        let mut batch = Vec::with_capacity(max);
        // The first flush is an interval away (a plain `interval` ticks at once).
        let period = self.settings.flush_interval;
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = max - batch.len();
            tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                received = rx.recv_many(&mut batch, room) => {
                    if received == 0 {
                        // Every reporter was dropped: send what is left, as at shutdown.
                        break;
                    }
                    if batch.len() >= max {
                        self.flush(&mut batch).await;
                        tick.reset();
                    }
                }
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.flush(&mut batch).await;
                    }
                }
            }
        }
        if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.settings.shutdown_timeout);
        }
        // Closed, the channel hands out what it holds and then nothing: new points are
        // dropped by `record`.
        rx.close();
        loop {
            let room = max - batch.len();
            if room > 0 {
                rx.recv_many(&mut batch, room).await;
            }
            if batch.is_empty() {
                break;
            }
            self.flush(&mut batch).await;
        }
    }

    /// Send one batch until it is accepted or given up on; the batch is empty afterwards.
    async fn flush(&mut self, batch: &mut Vec<MetricIn>) {
        for metric in batch.iter_mut() {
            if metric.dedupe_id.is_none() {
                metric.dedupe_id = Some(next_dedupe_id());
            }
        }
        let mut delays = backoff(self.settings.max_retries).build();
        let mut pruned = false;
        loop {
            let result = match self.attempt(batch).await {
                Some(result) => result,
                None => {
                    self.counts.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    tracing::warn!(points = batch.len(), "shutdown timeout: giving up on a batch of points");
                    break;
                }
            };
            match result {
                Ok(accepted) => {
                    self.counts.sent.fetch_add(accepted as u64, Ordering::Relaxed);
                    break;
                }
                // Leave out the points the server named and send the others again, once:
                // a second refusal is not about single points.
                Err(Error::Api { status: 422, details, message, .. })
                    if !pruned && details.iter().any(|d| d.index.is_some()) =>
                {
                    pruned = true;
                    let before = batch.len();
                    let mut index = 0;
                    batch.retain(|_| {
                        let refused = details.iter().any(|d| d.index == Some(index));
                        index += 1;
                        !refused
                    });
                    let refused = before - batch.len();
                    self.counts.failed.fetch_add(refused as u64, Ordering::Relaxed);
                    tracing::warn!(refused, first = ?details.first(), %message, "the server refused points");
                    if batch.is_empty() {
                        break;
                    }
                }
                Err(err) if err.is_retryable() => {
                    let wait =
                        delays.next().map(|delay| err.retry_after().map_or(delay, |after| after.min(MAX_RETRY_AFTER)));
                    let waited = match wait {
                        Some(wait) => self.wait(wait).await,
                        None => false,
                    };
                    if !waited {
                        self.give_up(batch.len(), &err);
                        break;
                    }
                }
                Err(err) => {
                    self.give_up(batch.len(), &err);
                    break;
                }
            }
        }
        batch.clear();
    }

    /// One push; `None` when the shutdown deadline passed first.
    async fn attempt(&mut self, batch: &[MetricIn]) -> Option<Result<usize, Error>> {
        let deadline = self.deadline();
        let push = async {
            let body = serde_json::to_vec(batch)?;
            Ok(self.client.push_bytes(body, Replay::Safe, 0).await?.accepted)
        };
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, push).await.ok(),
            None => Some(push.await),
        }
    }

    /// Wait before the next attempt; `false` when that would pass the shutdown deadline.
    /// A shutdown while waiting cuts the wait short: the next attempt is made at once.
    async fn wait(&mut self, wait: Duration) -> bool {
        match self.deadline() {
            Some(deadline) if Instant::now() + wait > deadline => false,
            Some(_) => {
                tokio::time::sleep(wait).await;
                true
            }
            None => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.stop.cancelled() => {}
                }
                true
            }
        }
    }

    /// When sending must be over: set when shutdown begins.
    fn deadline(&mut self) -> Option<Instant> {
        if self.deadline.is_none() && self.stop.is_cancelled() {
            self.deadline = Some(Instant::now() + self.settings.shutdown_timeout);
        }
        self.deadline
    }

    fn give_up(&self, points: usize, err: &Error) {
        self.counts.failed.fetch_add(points as u64, Ordering::Relaxed);
        tracing::warn!(points, error = %err, "giving up on a batch of points");
    }
}

/// A `dedupe_id` unique to this point: a prefix drawn at random once per process (so no
/// other process, nor this program's next run, draws it) and a counter.
fn next_dedupe_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 12];
        if getrandom::fill(&mut bytes).is_err() {
            // No OS randomness (exotic targets): the time and the process id still differ
            // from run to run.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            bytes[..8].copy_from_slice(&(nanos as u64).to_le_bytes());
            bytes[8..].copy_from_slice(&std::process::id().to_le_bytes());
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("mdr-{hex}")
    });
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn dedupe_ids_are_unique_and_short() {
        let ids: Vec<String> = (0..1000).map(|_| next_dedupe_id()).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        let prefix = ids[0].rsplit_once('-').map(|(p, _)| p.to_owned()).unwrap_or_default();
        assert!(ids.iter().all(|id| id.starts_with(&prefix)), "one prefix per process");
        assert_eq!(prefix.len(), "mdr-".len() + 24);
        // The server's default max_dedupe_id_bytes.
        assert!(ids.iter().all(|id| id.len() <= 128));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_buffer_drops_the_newest_and_counts_it() {
        // Nothing listens on port 9: every attempt fails, so nothing leaves the buffer
        // while the test fills it (the flush interval never passes: time is paused).
        let client = Client::builder("http://127.0.0.1:9").retries(0).build().expect("a valid client");
        let reporter = Reporter::builder(client)
            .capacity(3)
            .max_batch(100)
            .flush_interval(Duration::from_secs(3600))
            .shutdown_timeout(Duration::ZERO)
            .start();
        for value in 0..5 {
            reporter.record(MetricIn::new("m", f64::from(value)));
        }
        assert_eq!(reporter.dropped(), 2);
        reporter.shutdown().await;
        reporter.record(MetricIn::new("m", 9.0));
        assert_eq!(reporter.dropped(), 3, "a point recorded after shutdown is dropped");
        assert_eq!(reporter.failed(), 3, "the buffered points could not be sent in time");
        assert_eq!(reporter.sent(), 0);
    }
}
