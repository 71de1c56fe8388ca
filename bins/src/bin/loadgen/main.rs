//! `microdash-loadgen`: a high-volume publisher and stream follower for benchmarks and demos.
//!
//! - `http` pushes bulk requests at a target rate (or as fast as the server takes them) and,
//!   in parallel, measures ingest-to-queryable latency: it writes a probe point, then polls
//!   the query API until the point is returned. It prints accepted metrics/s and percentiles.
//! - `sse` holds many live streams of one tenant open, pushes timestamped probe points, and
//!   measures how late each stream delivers them and whether any stream fell behind. Run it
//!   beside `http` to load the streams.
//! - `seed` fills a database with days of history (raw points and rollups); `query` times
//!   history queries over it.
//! - `alerts` times breaches to their webhooks (MTTD) under ingest load.
//! - `soak` runs HTTP, MQTT, live streams and history queries together for a long time, then
//!   reads every point back and reports what was sent, acknowledged, stored and missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use microdash_client::{Client, CreateToken, MetricsQuery};
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
#[command(name = "microdash-loadgen", about = "Load generator and latency probe for microdash")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Push over the HTTP API.
    Http(HttpArgs),
    /// Follow a tenant's live stream with many clients and measure delivery.
    Sse(SseArgs),
    /// Publish over MQTT (QoS 1) and measure publish-to-live latency.
    Mqtt(MqttArgs),
    /// Fill a database with history: raw points and the rollups older points left.
    Seed(history::SeedArgs),
    /// Time history queries.
    Query(history::QueryArgs),
    /// Time breaches to their webhooks (MTTD) under ingest load.
    Alerts(alerts::AlertArgs),
    /// Mixed load for a long run (HTTP, MQTT, live streams, history queries), then an account
    /// of every point: sent, acknowledged, stored, missing.
    Soak(soak::SoakArgs),
}

mod alerts;
mod history;
mod soak;

/// The server and the tenant the `sse`, `mqtt` and `soak` modes work with.
#[derive(Debug, Args)]
struct TenantArgs {
    /// Server base URL.
    #[arg(long, env = "MICRODASH_LOADGEN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A token of the tenant with ingest and read scopes.
    #[arg(long, env = "MICRODASH_LOADGEN_TOKEN")]
    token: String,
    /// The tenant's slug.
    #[arg(long)]
    tenant: String,
}

#[derive(Debug, Args)]
struct MqttArgs {
    /// Broker URL.
    #[arg(long, default_value = "tcp://127.0.0.1:1883")]
    broker: String,
    /// Sign in to the broker with `--token` (username: its prefix), as the embedded endpoint
    /// and brokers set up by `microdash mqtt-auth` want.
    #[arg(long)]
    broker_token: bool,
    #[command(flatten)]
    server: TenantArgs,
    /// First topic level.
    #[arg(long, default_value = "metrics")]
    topic_root: String,
    /// Target messages per second; 0 publishes as fast as the broker acknowledges.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// QoS 1 messages in flight at once.
    #[arg(long, default_value_t = 500)]
    window: usize,
    /// How long to publish.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Distinct agents.
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// Interval between latency probes.
    #[arg(long, default_value_t = 100)]
    probe_interval_ms: u64,
}

#[derive(Debug, Args)]
struct SseArgs {
    #[command(flatten)]
    server: TenantArgs,
    /// Concurrent streams.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// How long to measure, once every stream is open.
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// Interval between probe points.
    #[arg(long, default_value_t = 100)]
    probe_interval_ms: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct HttpArgs {
    /// Server base URL.
    #[arg(long, env = "MICRODASH_LOADGEN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A tenant token with ingest and read scopes (one tenant).
    #[arg(long, env = "MICRODASH_LOADGEN_TOKEN", required_unless_present = "admin_token")]
    token: Option<String>,
    /// An admin token: the generator creates `--tenants` tenants and tokens of its own.
    #[arg(long, env = "MICRODASH_LOADGEN_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Tenants to spread the load over (with --admin-token).
    #[arg(long, default_value_t = 1)]
    tenants: usize,
    /// Target metrics per second; 0 pushes as fast as the server accepts.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Metrics per request.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to push.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Distinct agents per tenant.
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// Interval between latency probes; 0 disables probing.
    #[arg(long, default_value_t = 100)]
    probe_interval_ms: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
struct Totals {
    accepted: AtomicU64,
    requests: AtomicU64,
    failed: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().mode {
        Mode::Http(args) => http(args).await,
        Mode::Sse(args) => sse::run(args).await,
        Mode::Mqtt(args) => mqtt_load::run(args).await,
        Mode::Seed(args) => history::seed(args).await,
        Mode::Query(args) => history::query(args).await,
        Mode::Alerts(args) => alerts::run(args).await,
        Mode::Soak(args) => soak::run(args).await,
    }
}

async fn http(args: HttpArgs) -> anyhow::Result<()> {
    if args.batch_size == 0 || args.concurrency == 0 {
        bail!("--batch-size and --concurrency must be at least 1");
    }
    let clients = tenant_clients(&args).await?;
    let bodies: Vec<Arc<Vec<Template>>> = (0..clients.len()).map(|_| Arc::new(templates(&args))).collect();
    let totals = Arc::new(Totals::default());
    let request_us = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_s);
    // Each task sends one request per period so that all tasks together hit the rate.
    let period = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 * args.batch_size as f64 / args.rate as f64));

    let concurrency = args.concurrency;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let (clients, bodies, totals, request_us) =
            (clients.clone(), bodies.clone(), totals.clone(), request_us.clone());
        tasks.spawn(async move {
            let mut ticker = period.map(|p| {
                // Stagger the tasks over one period so requests are spread evenly.
                let mut t = tokio::time::interval_at(
                    tokio::time::Instant::now() + p.mul_f64(task as f64 / concurrency as f64),
                    p,
                );
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            let mut n = task;
            while Instant::now() < deadline {
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let tenant = n % clients.len();
                let body = bodies[tenant][n % bodies[tenant].len()].stamped(wall_ms() as u64);
                n += 1;
                let sent = Instant::now();
                match clients[tenant].push_json(body).await {
                    Ok(accepted) => {
                        totals.accepted.fetch_add(accepted.accepted as u64, Ordering::Relaxed);
                        let us = sent.elapsed().as_micros() as u64;
                        let _ = request_us.lock().await.record(us.max(1));
                    }
                    Err(err) => {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        if err.is_retryable() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        } else {
                            eprintln!("request failed: {err}");
                        }
                    }
                }
                totals.requests.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let probe = (args.probe_interval_ms > 0)
        .then(|| tokio::spawn(probe(clients[0].clone(), deadline, Duration::from_millis(args.probe_interval_ms))));
    while let Some(joined) = tasks.join_next().await {
        joined.context("load task panicked")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let drained = wait_until_stored(&args.url).await?;
    let probe_us = match probe {
        Some(handle) => Some(handle.await.context("probe task panicked")??),
        None => None,
    };
    report(&args, &totals, elapsed, drained.map(|d| d.as_secs_f64()), &*request_us.lock().await, probe_us.as_ref())
}

/// After the load stops, wait until the server has stored everything it accepted: its queue
/// is empty and (in an all-in-one process) its persisted and duplicate counters have caught
/// up with the accepted one. Returns how long that took, or `None` if the server's
/// `/metrics` could not be read.
async fn wait_until_stored(url: &str) -> anyhow::Result<Option<Duration>> {
    let http = Client::default_http()?;
    let started = Instant::now();
    loop {
        let Ok(response) = http.get(format!("{url}/metrics")).send().await else { return Ok(None) };
        let text = response.text().await.unwrap_or_default();
        let value = |name: &str| -> Option<f64> {
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .reduce(|a, b| a + b)
        };
        let depth = value("microdash_queue_depth").unwrap_or(0.0);
        let accepted = value("microdash_metrics_accepted_total").unwrap_or(0.0);
        let stored = value("microdash_metrics_persisted_total").unwrap_or(0.0)
            + value("microdash_metrics_duplicate_total").unwrap_or(0.0);
        // A split API server stores nothing itself: its empty queue is the signal.
        let all_in_one = stored > 0.0;
        if depth == 0.0 && (!all_in_one || stored >= accepted) {
            return Ok(Some(started.elapsed()));
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the server had not stored its backlog after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One client per tenant: the given token, or tenants created with the admin token.
async fn tenant_clients(args: &HttpArgs) -> anyhow::Result<Vec<Client>> {
    let http = Client::default_http()?;
    if let Some(token) = &args.token {
        return Ok(vec![Client::with_http(&args.url, token, http)?]);
    }
    let admin = Client::with_http(&args.url, args.admin_token.as_deref().unwrap_or_default(), http.clone())?;
    let run = std::process::id();
    let mut clients = Vec::new();
    for i in 0..args.tenants.max(1) {
        let slug = format!("loadgen-{run}-{i}");
        admin.create_tenant(&slug, "loadgen").await.with_context(|| format!("creating tenant {slug}"))?;
        let request = CreateToken { tenant: Some(slug), scopes: "ingest,read".into(), name: Some("loadgen".into()) };
        let created = admin.create_token(&request).await.context("creating a token")?;
        clients.push(Client::with_http(&args.url, &created.token, http.clone())?);
    }
    Ok(clients)
}

/// A pre-serialised request body whose timestamps are stamped when it is sent, so the
/// generator spends its CPU on sending, not JSON, and every request carries the time it was
/// sent, as a real publisher's would. (Replaying fixed timestamps would pile each series'
/// new points onto old instants, into the middle of the time index, a load no fleet makes.)
struct Template {
    bytes: Vec<u8>,
    /// Where each metric's timestamp goes, and how many milliseconds before the send time it
    /// lies: the metrics of one request span its last `batch_size` milliseconds.
    slots: Vec<(usize, u64)>,
}

/// `1764374400.123`: Unix seconds with milliseconds, fixed width until the year 2286.
const TIMESTAMP_WIDTH: usize = 14;

impl Template {
    fn stamped(&self, now_ms: u64) -> Vec<u8> {
        use std::io::Write;
        let mut body = self.bytes.clone();
        for &(at, before_ms) in &self.slots {
            let ms = now_ms.saturating_sub(before_ms);
            let mut slot = &mut body[at..at + TIMESTAMP_WIDTH];
            // The slot is exactly as wide as what is written into it.
            let _ = write!(slot, "{:010}.{:03}", ms / 1000, ms % 1000);
        }
        body
    }
}

/// Sixteen templates per tenant, cycled through.
fn templates(args: &HttpArgs) -> Vec<Template> {
    (0..16)
        .map(|b| {
            let mut bytes = b"[".to_vec();
            let mut slots = Vec::with_capacity(args.batch_size);
            for i in 0..args.batch_size {
                let k = b * args.batch_size + i;
                if i > 0 {
                    bytes.push(b',');
                }
                bytes.extend_from_slice(
                    format!(r#"{{"metric_name":"load.metric{}","value":{},"timestamp":"#, k % 10, k % 1000).as_bytes(),
                );
                slots.push((bytes.len(), (args.batch_size - 1 - i) as u64));
                bytes.extend_from_slice(&[b'0'; TIMESTAMP_WIDTH]);
                bytes.extend_from_slice(
                    format!(r#","agent_id":"agent-{}","tags":{{"region":"r{}"}}}}"#, k % args.agents.max(1), k % 3)
                        .as_bytes(),
                );
            }
            bytes.push(b']');
            Template { bytes, slots }
        })
        .collect()
}

/// Milliseconds since the Unix epoch: what probes carry and templates are stamped with, so
/// that another process (the server) can compare them with its own clock.
fn wall_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0
}

/// Write a probe point, poll until it is queryable, record the delay; repeat until `deadline`.
async fn probe(client: Client, deadline: Instant, interval: Duration) -> anyhow::Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new(3)?;
    let query = MetricsQuery { metric_name: Some("loadgen.probe".into()), limit: Some(1), ..MetricsQuery::default() };
    let mut seq = 0u64;
    while Instant::now() < deadline {
        seq += 1;
        let body = format!(r#"{{"metric_name":"loadgen.probe","value":{seq},"agent_id":"probe"}}"#);
        let started = Instant::now();
        if client.push_json(body.into_bytes()).await.is_err() {
            tokio::time::sleep(interval).await;
            continue;
        }
        let give_up = started + Duration::from_secs(10);
        loop {
            let latest = client.query(&query).await.ok().and_then(|r| r.data.last().map(|p| p.value));
            if latest == Some(seq as f64) {
                let _ = hist.record((started.elapsed().as_micros() as u64).max(1));
                break;
            }
            if Instant::now() > give_up {
                eprintln!("probe {seq} not queryable after 10 s");
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(interval.saturating_sub(started.elapsed())).await;
    }
    Ok(hist)
}

fn report(
    args: &HttpArgs,
    totals: &Totals,
    elapsed: f64,
    drain_s: Option<f64>,
    request_us: &Histogram<u64>,
    probe_us: Option<&Histogram<u64>>,
) -> anyhow::Result<()> {
    let accepted = totals.accepted.load(Ordering::Relaxed);
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let percentiles = |h: &Histogram<u64>| serde_json::json!({"p50_ms": ms(h, 0.5), "p90_ms": ms(h, 0.9), "p99_ms": ms(h, 0.99), "max_ms": h.max() as f64 / 1000.0, "samples": h.len()});
    let summary = serde_json::json!({
        "target_rate": args.rate,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "tenants": args.tenants,
        "elapsed_s": elapsed,
        "requests": totals.requests.load(Ordering::Relaxed),
        "failed_requests": totals.failed.load(Ordering::Relaxed),
        "accepted_metrics": accepted,
        "accepted_per_s": accepted as f64 / elapsed,
        "drain_s": drain_s,
        "stored_per_s": drain_s.map(|d| accepted as f64 / (elapsed + d)),
        "request_latency": percentiles(request_us),
        "ingest_to_queryable": probe_us.map(percentiles),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!("accepted {accepted} metrics in {elapsed:.1} s: {:.0} metrics/s", accepted as f64 / elapsed);
    if let Some(drain) = drain_s {
        let sustained = accepted as f64 / (elapsed + drain);
        println!("all stored {drain:.2} s after the load stopped: {sustained:.0} metrics/s sustained end to end");
    }
    println!("requests {} ({} failed)", totals.requests.load(Ordering::Relaxed), totals.failed.load(Ordering::Relaxed));
    println!(
        "request latency    p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms",
        ms(request_us, 0.5),
        ms(request_us, 0.9),
        ms(request_us, 0.99)
    );
    if let Some(h) = probe_us {
        println!(
            "ingest-to-queryable p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} probes)",
            ms(h, 0.5),
            ms(h, 0.9),
            ms(h, 0.99),
            h.max() as f64 / 1000.0,
            h.len()
        );
    }
    Ok(())
}

/// Follow `tenant`'s live stream until `stop`, handing each event to `on_event`. Returns
/// whether the stream broke: it did not open, or failed or ended before `stop`.
async fn follow_stream(
    client: &Client,
    tenant: &str,
    stop: &tokio_util::sync::CancellationToken,
    mut on_event: impl FnMut(microdash_client::LiveEvent),
) -> bool {
    use futures_util::StreamExt;
    let stream = match client.stream(tenant, &microdash_client::StreamQuery::default()).await {
        Ok(stream) => stream,
        Err(err) => {
            eprintln!("stream failed to open: {err}");
            return true;
        }
    };
    let mut stream = std::pin::pin!(stream);
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return false,
            event = stream.next() => event,
        };
        match event {
            Some(Ok(event)) => on_event(event),
            Some(Err(err)) => {
                eprintln!("stream broke: {err}");
                return true;
            }
            None => return !stop.is_cancelled(),
        }
    }
}

mod sse {
    //! Many live streams of one tenant, and how promptly each delivers probe points.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use anyhow::Context;
    use hdrhistogram::Histogram;
    use microdash_client::{Client, LiveEvent};
    use tokio_util::sync::CancellationToken;

    use super::{SseArgs, wall_ms};

    const PROBE: &str = "loadgen.sse_probe";

    /// What one stream saw.
    struct Seen {
        points: u64,
        probes: u64,
        lag_us: Histogram<u64>,
        broken: bool,
    }

    async fn follow(client: Client, tenant: String, ready: Arc<AtomicUsize>, stop: CancellationToken) -> Seen {
        let mut seen = Seen { points: 0, probes: 0, lag_us: Histogram::new(3).expect("valid bounds"), broken: false };
        seen.broken = super::follow_stream(&client, &tenant, &stop, |event| match event {
            LiveEvent::Ready { .. } => {
                ready.fetch_add(1, Ordering::Relaxed);
            }
            LiveEvent::Points { points, .. } => {
                let now = wall_ms();
                seen.points += points.len() as u64;
                for point in points.iter().filter(|p| p.metric_name == PROBE) {
                    seen.probes += 1;
                    let _ = seen.lag_us.record(((now - point.value).max(0.001) * 1000.0) as u64);
                }
            }
            LiveEvent::Reset { .. } | LiveEvent::Cursor { .. } => {}
        })
        .await;
        seen
    }

    pub(super) async fn run(args: SseArgs) -> anyhow::Result<()> {
        let client = Client::new(&args.server.url, &args.server.token)?;
        let ready = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let mut followers = tokio::task::JoinSet::new();
        for _ in 0..args.clients {
            followers.spawn(follow(client.clone(), args.server.tenant.clone(), ready.clone(), stop.clone()));
        }
        let opening = Instant::now();
        while ready.load(Ordering::Relaxed) < args.clients {
            anyhow::ensure!(opening.elapsed() < Duration::from_secs(60), "streams did not all open within 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let open_s = opening.elapsed().as_secs_f64();

        let sent = Arc::new(AtomicU64::new(0));
        let interval = Duration::from_millis(args.probe_interval_ms.max(1));
        let deadline = Instant::now() + Duration::from_secs(args.duration_s);
        let mut ticker = tokio::time::interval(interval);
        while Instant::now() < deadline {
            ticker.tick().await;
            let body = format!(r#"{{"metric_name":"{PROBE}","value":{:.3}}}"#, wall_ms());
            if client.push_json(body.into_bytes()).await.is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Let the last probes arrive, then close every stream.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.cancel();
        let mut lag = Histogram::<u64>::new(3)?;
        let (mut points, mut broken) = (0u64, 0usize);
        let mut probes_per_client = Vec::with_capacity(args.clients);
        while let Some(seen) = followers.join_next().await {
            let seen = seen.context("a stream follower panicked")?;
            lag.add(&seen.lag_us)?;
            points += seen.points;
            broken += usize::from(seen.broken);
            probes_per_client.push(seen.probes);
        }
        let sent = sent.load(Ordering::Relaxed);
        let complete = probes_per_client.iter().filter(|p| **p >= sent).count();
        let ms = |q: f64| lag.value_at_quantile(q) as f64 / 1000.0;
        let summary = serde_json::json!({
            "clients": args.clients,
            "open_s": open_s,
            "probes_sent": sent,
            "clients_with_every_probe": complete,
            "fewest_probes_received": probes_per_client.iter().min(),
            "broken_streams": broken,
            "points_delivered": points,
            "points_delivered_per_s": points as f64 / (args.duration_s as f64 + 2.0),
            "delivery_lag": {"p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": lag.max() as f64 / 1000.0, "samples": lag.len()},
        });
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
            return Ok(());
        }
        println!("{} streams open in {open_s:.2} s; {broken} broke", args.clients);
        println!("{sent} probes sent; {complete} of {} streams received every one", args.clients);
        println!(
            "delivery lag (persisted and pushed to every stream) p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            lag.max() as f64 / 1000.0
        );
        println!("{points} points delivered in all");
        Ok(())
    }
}

mod mqtt_load {
    //! MQTT publishing at a rate, with probes timed from publish to the tenant's live stream.

    use std::collections::VecDeque;
    use std::time::{Duration, Instant};

    use futures_util::StreamExt;
    use hdrhistogram::Histogram;
    use microdash_client::{Client, LiveEvent, StreamQuery};
    use paho_mqtt as mqtt;

    use super::{MqttArgs, wait_until_stored, wall_ms};

    const PROBE: &str = "loadgen.mqtt_probe";

    /// The server's count of metrics received over MQTT.
    async fn mqtt_received(url: &str) -> Option<f64> {
        let text = Client::default_http().ok()?.get(format!("{url}/metrics")).send().await.ok()?.text().await.ok()?;
        text.lines()
            .find(|l| l.starts_with("microdash_metrics_received_total{source=\"mqtt\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .or(Some(0.0))
    }

    pub(super) async fn run(args: MqttArgs) -> anyhow::Result<()> {
        let client = mqtt::CreateOptionsBuilder::new()
            .server_uri(&args.broker)
            .client_id(format!("microdash-loadgen-{}", std::process::id()))
            .persistence(mqtt::PersistenceType::None)
            .max_buffered_messages(i32::try_from(args.window * 2).unwrap_or(i32::MAX))
            .create_client()?;
        let mut options = mqtt::ConnectOptionsBuilder::new_v5();
        options.clean_start(true);
        if args.broker_token {
            options
                .user_name(microdash_core::mqtt::token_username(&args.server.token))
                .password(args.server.token.as_str());
        }
        client.connect(options.finalize()).await?;

        // Probes are timed on the live stream: published -> bridged -> stored -> pushed.
        let http = Client::new(&args.server.url, &args.server.token)?;
        let mut live = Box::pin(
            http.stream(&args.server.tenant, &StreamQuery { metric_name: Some(PROBE.into()), ..Default::default() })
                .await?,
        );
        let Some(Ok(LiveEvent::Ready { .. })) = live.next().await else {
            anyhow::bail!("the live stream did not open")
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let follower = tokio::spawn(async move {
            let mut lag = Histogram::<u64>::new(3).expect("valid bounds");
            loop {
                let event = tokio::select! {
                    () = stopped.cancelled() => break,
                    event = live.next() => event,
                };
                let Some(Ok(event)) = event else { break };
                if let LiveEvent::Points { points, .. } = event {
                    let now = wall_ms();
                    for point in points {
                        let _ = lag.record(((now - point.value).max(0.001) * 1000.0) as u64);
                    }
                }
            }
            lag
        });

        let topics: Vec<String> = (0..args.agents.max(1))
            .flat_map(|a| (0..4).map(move |m| (a, m)))
            .map(|(a, m)| {
                microdash_core::mqtt::topic(
                    &args.topic_root,
                    &args.server.tenant,
                    &format!("agent-{a}"),
                    &format!("load.metric{m}"),
                )
            })
            .collect();
        let probe_topic = microdash_core::mqtt::topic(&args.topic_root, &args.server.tenant, "probe", PROBE);
        let received_before = mqtt_received(&args.server.url).await.unwrap_or(0.0);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.duration_s);
        let mut in_flight: VecDeque<mqtt::DeliveryToken> = VecDeque::with_capacity(args.window);
        let (mut sent, mut failed, mut probes) = (0u64, 0u64, 0u64);
        let probe_every = Duration::from_millis(args.probe_interval_ms.max(1));
        let mut next_probe = Instant::now();
        while Instant::now() < deadline {
            if args.rate > 0 {
                let due = started + Duration::from_secs_f64(sent as f64 / args.rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
            }
            let message = if Instant::now() >= next_probe {
                next_probe += probe_every;
                probes += 1;
                mqtt::Message::new(&probe_topic, format!("{:.3}", wall_ms()), mqtt::QOS_1)
            } else {
                let topic = &topics[sent as usize % topics.len()];
                mqtt::Message::new(topic, format!("{}", sent % 1000), mqtt::QOS_1)
            };
            in_flight.push_back(client.publish(message));
            sent += 1;
            while in_flight.len() >= args.window {
                if let Some(token) = in_flight.pop_front() {
                    failed += u64::from(token.await.is_err());
                }
            }
        }
        for token in in_flight {
            failed += u64::from(token.await.is_err());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let drained = wait_until_stored(&args.server.url).await?.map(|d| d.as_secs_f64());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let received = mqtt_received(&args.server.url).await.unwrap_or(0.0) - received_before;
        stop.cancel();
        let lag = follower.await?;
        let _ = client.disconnect(None).await;
        println!(
            "published {sent} messages in {elapsed:.1} s: {:.0}/s acknowledged by the broker ({failed} failed)",
            sent as f64 / elapsed
        );
        println!("the server received {received:.0} of them ({:.1} %)", received / sent.max(1) as f64 * 100.0);
        if let Some(drain) = drained {
            println!(
                "all received stored {drain:.2} s after publishing stopped: {:.0} metrics/s stored end to end",
                received / (elapsed + drain)
            );
        }
        let ms = |q: f64| lag.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "publish-to-live ({} of {probes} probes) p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            lag.len(),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            lag.max() as f64 / 1000.0
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_stamped_with_the_send_time() {
        let args = Cli::parse_from(["loadgen", "http", "--token", "t", "--batch-size", "5", "--agents", "2"]);
        let Mode::Http(args) = args.mode else { unreachable!("parsed as http") };
        let templates = templates(&args);
        assert_eq!(templates.len(), 16);
        let now_ms = 1_764_374_400_123;
        let body: Vec<serde_json::Value> = serde_json::from_slice(&templates[1].stamped(now_ms)).expect("valid JSON");
        let stamps: Vec<f64> = body.iter().map(|m| m["timestamp"].as_f64().expect("a number")).collect();
        assert_eq!(
            stamps,
            [1_764_374_400.119, 1_764_374_400.120, 1_764_374_400.121, 1_764_374_400.122, 1_764_374_400.123]
        );
        assert_eq!(body[0]["metric_name"], "load.metric5");
        assert_eq!(body[0]["agent_id"], "agent-1");
        // A template is stamped afresh each time, not once.
        let later: Vec<serde_json::Value> =
            serde_json::from_slice(&templates[1].stamped(now_ms + 1_000)).expect("valid JSON");
        assert_eq!(later[4]["timestamp"].as_f64(), Some(1_764_374_401.123));
    }
}
