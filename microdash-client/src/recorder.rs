//! [`MicrodashRecorder`]: a recorder for the [`metrics`] facade that reports to microdash.
//!
//! An application instruments itself with `metrics::counter!`, `gauge!` and `histogram!`
//! (as libraries it uses may already do) and installs this recorder once, as it would
//! `metrics-exporter-prometheus`. Every `interval` the recorder turns what was recorded into
//! points and hands them to a [`Reporter`], which batches and retries them:
//!
//! - a counter is reported as its total since the start (`name`);
//! - a gauge as its current value (`name`);
//! - a histogram as a summary of the values observed during the interval: `name.count` and
//!   `name.sum` (0 when nothing was observed), and, when something was, `name.min`,
//!   `name.max`, `name.p50`, `name.p90` and `name.p99` (exact nearest-rank quantiles of the
//!   interval's values, which are kept until then).
//!
//! Labels become tags (beside the builder's own [`MicrodashRecorderBuilder::tag`]s); names
//! get the builder's prefix (`prefix.name`), and characters the server does not allow in a
//! metric name (anything but letters, digits, `_ . : -`) become `_`. Non-finite values are
//! left out. Behind the cargo feature `metrics` (on by default).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::RecoverableRecorder;
use metrics_util::registry::{AtomicStorage, Registry};
use microdash_core::api::MetricIn;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::client::Client;
use crate::reporter::Reporter;

/// How often the recorder reports unless [`MicrodashRecorderBuilder::interval`] says
/// otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Settings for a [`MicrodashRecorder`]. Made by [`MicrodashRecorder::builder`].
///
/// ```no_run
/// # async fn demo(client: microdash_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use microdash_client::recorder::MicrodashRecorder;
/// let handle = MicrodashRecorder::builder(client).agent_id("billing-1").prefix("billing").install()?;
/// metrics::counter!("invoices_sent", "currency" => "eur").increment(1);
/// metrics::histogram!("render_ms").record(12.5);
/// // ... at the end of the program:
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `install` or `build`"]
#[derive(Debug)]
pub struct MicrodashRecorderBuilder {
    client: Client,
    reporter: Option<Reporter>,
    interval: Duration,
    labels: Labels,
}

/// What every reported point carries besides its own name, value and labels.
#[derive(Debug, Clone, Default)]
struct Labels {
    prefix: Option<String>,
    agent_id: Option<String>,
    tags: BTreeMap<String, String>,
}

impl MicrodashRecorderBuilder {
    /// The `agent_id` of every point (the host or instance; none by default).
    pub fn agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.labels.agent_id = Some(agent_id.into());
        self
    }

    /// Put `prefix.` before every metric name.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let prefix = prefix.trim_end_matches('.');
        self.labels.prefix = (!prefix.is_empty()).then(|| prefix.to_owned());
        self
    }

    /// How often to report (default [`DEFAULT_INTERVAL`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// A tag on every point; a label of the same name on a metric wins.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.tags.insert(key.into(), value.into());
        self
    }

    /// Report through this reporter (with its own batching settings) rather than one
    /// started with the defaults. [`RecorderHandle::shutdown`] shuts it down.
    pub fn reporter(mut self, reporter: Reporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Install the recorder as the process's global `metrics` recorder and start
    /// reporting. Fails when a global recorder is already installed (there can be one per
    /// process); nothing is started then.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn install(self) -> Result<RecorderHandle, InstallError> {
        let registry = Arc::new(Registry::atomic());
        let recovery = RecoverableRecorder::new(MicrodashRecorder { registry: registry.clone() })
            .install()
            .map_err(|_| InstallError)?;
        let mut handle = self.start(registry);
        handle.installed = Some(Box::new(recovery));
        Ok(handle)
    }

    /// The recorder, not installed, and its reporting started: for
    /// `metrics::with_local_recorder`, or to wrap in layers before installing it yourself.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn build(self) -> (MicrodashRecorder, RecorderHandle) {
        let registry = Arc::new(Registry::atomic());
        let recorder = MicrodashRecorder { registry: registry.clone() };
        (recorder, self.start(registry))
    }

    fn start(self, registry: Arc<Registry<Key, AtomicStorage>>) -> RecorderHandle {
        let reporter = self.reporter.unwrap_or_else(|| Reporter::builder(self.client).start());
        let stop = CancellationToken::new();
        let finished = CancellationToken::new();
        let ticker = Ticker { registry, labels: self.labels, reporter: reporter.clone(), interval: self.interval };
        let (stopped, done) = (stop.clone(), finished.clone().drop_guard());
        tokio::spawn(async move {
            let _done = done;
            ticker.run(stopped).await;
        });
        RecorderHandle { stop: stop.drop_guard(), finished, reporter, installed: None }
    }
}

/// A global recorder is already installed.
#[derive(Debug, thiserror::Error)]
#[error("a metrics recorder is already installed in this process")]
pub struct InstallError;

/// The `metrics` recorder. Made by [`MicrodashRecorder::builder`].
pub struct MicrodashRecorder {
    registry: Arc<Registry<Key, AtomicStorage>>,
}

impl fmt::Debug for MicrodashRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicrodashRecorder").finish_non_exhaustive()
    }
}

impl MicrodashRecorder {
    /// Start configuring a recorder that reports through `client`.
    pub fn builder(client: Client) -> MicrodashRecorderBuilder {
        MicrodashRecorderBuilder { client, reporter: None, interval: DEFAULT_INTERVAL, labels: Labels::default() }
    }
}

impl Recorder for MicrodashRecorder {
    // Descriptions and units are not part of microdash's model: a metric is a name.
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry.get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry.get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registry.get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

/// Owns the recorder's reporting. Await [`RecorderHandle::shutdown`] before the program
/// ends so the last interval is sent; dropping the handle stops reporting (and uninstalls
/// the recorder [`MicrodashRecorderBuilder::install`] installed) without waiting.
pub struct RecorderHandle {
    stop: DropGuard,
    finished: CancellationToken,
    reporter: Reporter,
    /// The installed recorder's `RecoveryHandle`; dropping it makes the global recorder a
    /// no-op. Boxed because metrics-util does not export that type's name.
    installed: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl fmt::Debug for RecorderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecorderHandle")
            .field("reporter", &self.reporter)
            .field("installed", &self.installed.is_some())
            .finish_non_exhaustive()
    }
}

impl RecorderHandle {
    /// The reporter the points go through (its counts of sent, dropped and failed points).
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Report one last time, send everything (see [`Reporter::shutdown`]), and uninstall
    /// the recorder: later `metrics` calls do nothing.
    pub async fn shutdown(self) {
        let RecorderHandle { stop, finished, reporter, installed } = self;
        drop(stop);
        finished.cancelled().await;
        reporter.shutdown().await;
        drop(installed);
    }
}

/// The reporting task.
struct Ticker {
    registry: Arc<Registry<Key, AtomicStorage>>,
    labels: Labels,
    reporter: Reporter,
    interval: Duration,
}

impl Ticker {
    async fn run(self, stop: CancellationToken) {
        let start = tokio::time::Instant::now() + self.interval;
        let mut tick = tokio::time::interval_at(start, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.report(),
                () = stop.cancelled() => break,
            }
        }
        // What was recorded since the last tick.
        self.report();
    }

    fn report(&self) {
        for point in snapshot(&self.registry, &self.labels, wall_ms()) {
            self.reporter.record(point);
        }
    }
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The points for everything in `registry` now; histograms are emptied.
fn snapshot(registry: &Registry<Key, AtomicStorage>, labels: &Labels, now_ms: i64) -> Vec<MetricIn> {
    let mut points = Vec::new();
    let mut add = |key: &Key, suffix: Option<&str>, value: f64| {
        if value.is_finite() {
            points.push(labels.point(key, suffix, value, now_ms));
        }
    };
    registry.visit_counters(|key, counter| add(key, None, counter.load(Ordering::Acquire) as f64));
    registry.visit_gauges(|key, gauge| add(key, None, f64::from_bits(gauge.load(Ordering::Acquire))));
    registry.visit_histograms(|key, histogram| {
        let mut values = Vec::new();
        histogram.clear_with(|chunk| values.extend(chunk.iter().copied().filter(|v| v.is_finite())));
        for (suffix, value) in summary(values) {
            add(key, Some(suffix), value);
        }
    });
    points
}

/// Count and sum, and when there are values their min, max and quantiles.
fn summary(mut values: Vec<f64>) -> Vec<(&'static str, f64)> {
    // A fold from +0.0: an empty `Sum` of floats is -0.0.
    let sum = values.iter().fold(0.0, |sum, v| sum + v);
    let mut out = vec![("count", values.len() as f64), ("sum", sum)];
    if values.is_empty() {
        return out;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    // Nearest rank: the smallest value with at least q of the values at or below it.
    let quantile = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    out.extend([
        ("min", values[0]),
        ("max", values[n - 1]),
        ("p50", quantile(0.5)),
        ("p90", quantile(0.9)),
        ("p99", quantile(0.99)),
    ]);
    out
}

impl Labels {
    fn point(&self, key: &Key, suffix: Option<&str>, value: f64, now_ms: i64) -> MetricIn {
        let mut name = String::new();
        if let Some(prefix) = &self.prefix {
            name.push_str(prefix);
            name.push('.');
        }
        name.push_str(key.name());
        if let Some(suffix) = suffix {
            name.push('.');
            name.push_str(suffix);
        }
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') { c } else { '_' })
            .collect();
        let mut tags = self.tags.clone();
        for label in key.labels() {
            tags.insert(label.key().to_owned(), label.value().to_owned());
        }
        let mut point = MetricIn::new(name, value).at_millis(now_ms);
        point.agent_id = self.agent_id.clone();
        point.tags = (!tags.is_empty()).then_some(tags);
        point
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_with(record: impl FnOnce()) -> Arc<Registry<Key, AtomicStorage>> {
        let registry = Arc::new(Registry::atomic());
        let recorder = MicrodashRecorder { registry: registry.clone() };
        metrics::with_local_recorder(&recorder, record);
        registry
    }

    /// `name{tags}=value` of every point, sorted.
    fn lines(points: &[MetricIn]) -> Vec<String> {
        let mut lines: Vec<String> = points
            .iter()
            .map(|p| {
                let tags: Vec<String> = p.tags.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "{}{{{}}}={}",
                    p.metric_name.as_deref().unwrap_or(""),
                    tags.join(","),
                    p.value.unwrap_or(f64::NAN)
                )
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn counters_gauges_and_histograms_become_points() {
        let registry = registry_with(|| {
            metrics::counter!("jobs", "queue" => "mail").increment(3);
            metrics::counter!("jobs", "queue" => "mail").increment(2);
            metrics::gauge!("workers").set(4.0);
            metrics::gauge!("bad").set(f64::NAN);
            for v in 1..=100 {
                metrics::histogram!("latency ms").record(f64::from(v));
            }
        });
        let labels = Labels {
            prefix: Some("app".into()),
            agent_id: Some("web-1".into()),
            tags: BTreeMap::from([("env".into(), "test".into()), ("queue".into(), "default".into())]),
        };
        let points = snapshot(&registry, &labels, 1_700_000_000_000);
        assert_eq!(
            lines(&points),
            [
                "app.jobs{env=test,queue=mail}=5",
                "app.latency_ms.count{env=test,queue=default}=100",
                "app.latency_ms.max{env=test,queue=default}=100",
                "app.latency_ms.min{env=test,queue=default}=1",
                "app.latency_ms.p50{env=test,queue=default}=50",
                "app.latency_ms.p90{env=test,queue=default}=90",
                "app.latency_ms.p99{env=test,queue=default}=99",
                "app.latency_ms.sum{env=test,queue=default}=5050",
                "app.workers{env=test,queue=default}=4",
            ]
        );
        assert!(points.iter().all(|p| p.agent_id.as_deref() == Some("web-1") && p.timestamp.is_some()));

        // The next interval: counters keep their totals, histograms start again.
        let points = snapshot(&registry, &Labels::default(), 1_700_000_010_000);
        assert_eq!(lines(&points), ["jobs{queue=mail}=5", "latency_ms.count{}=0", "latency_ms.sum{}=0", "workers{}=4"]);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        fn check(values: &[f64], want: &[(&str, f64)]) {
            assert_eq!(summary(values.to_vec()), want);
        }
        check(&[], &[("count", 0.0), ("sum", 0.0)]);
        check(
            &[7.0],
            &[("count", 1.0), ("sum", 7.0), ("min", 7.0), ("max", 7.0), ("p50", 7.0), ("p90", 7.0), ("p99", 7.0)],
        );
        check(
            &[4.0, 1.0, 3.0, 2.0],
            &[("count", 4.0), ("sum", 10.0), ("min", 1.0), ("max", 4.0), ("p50", 2.0), ("p90", 4.0), ("p99", 4.0)],
        );
    }
}
