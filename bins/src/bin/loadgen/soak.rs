//! `soak`: mixed load for a long run, then an account of every point.
//!
//! For `--duration-s` it pushes bulk HTTP requests and publishes MQTT QoS 1 messages (to the
//! embedded endpoint, or to a broker a bridge reads) at steady rates, keeps live streams of
//! the tenant open, and runs history queries. Every point carries a unique value (its id
//! within its source), the time it was sent and a `dedupe_id`, under metric names of this
//! run (`soak.{run}.http`, `soak.{run}.mqtt`). After the load it waits for the pipeline to
//! drain, reads every point of the run back through the query API, and reports per source
//! what was sent, acknowledged (`202`, `PUBACK`), stored, missing (acknowledged and not
//! stored) and stored twice, with latency percentiles. It fails when a point is missing or
//! stored twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{ArgAction, Args};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use microdash_client::{Client, LiveEvent, MetricsQuery, ResolutionRequest};
use paho_mqtt as mqtt;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{TenantArgs, wait_until_stored, wall_ms};

#[derive(Debug, Args)]
pub(super) struct SoakArgs {
    #[command(flatten)]
    server: TenantArgs,
    /// MQTT endpoint: the all-in-one server's embedded one, or a broker a bridge reads.
    #[arg(long, default_value = "tcp://127.0.0.1:1884")]
    broker: String,
    /// Sign in to the broker with the token (username: its prefix), as the embedded endpoint
    /// wants; `--broker-token false` for an anonymous broker.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    broker_token: bool,
    /// How long to load.
    #[arg(long, default_value_t = 600)]
    duration_s: u64,
    /// HTTP points per second.
    #[arg(long, default_value_t = 10_000)]
    http_rate: u64,
    /// Points per HTTP request.
    #[arg(long, default_value_t = 500)]
    batch_size: u64,
    /// HTTP requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: u64,
    /// MQTT messages (one point each) per second.
    #[arg(long, default_value_t = 2_000)]
    mqtt_rate: u64,
    /// QoS 1 messages in flight at once.
    #[arg(long, default_value_t = 200)]
    window: usize,
    /// Live streams held open.
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Interval between history queries.
    #[arg(long, default_value_t = 200)]
    query_interval_ms: u64,
    /// Series per source.
    #[arg(long, default_value_t = 20)]
    agents: u64,
    /// Longest wait, after the load, for every acknowledged point to be stored.
    #[arg(long, default_value_t = 300)]
    drain_timeout_s: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Most points one read-back query asks for (below the server's `max_query_limit`).
const READ_BACK_LIMIT: usize = 50_000;

/// What one source sent and which of its points were acknowledged.
struct Source {
    name: &'static str,
    metric: String,
    next: AtomicU64,
    acked: Mutex<Vec<u64>>,
    refused: AtomicU64,
    /// Request (HTTP) or publish-to-`PUBACK` (MQTT) latency.
    latency_us: Mutex<Histogram<u64>>,
}

impl Source {
    fn new(name: &'static str, run: &str) -> anyhow::Result<Arc<Source>> {
        Ok(Arc::new(Source {
            name,
            metric: format!("soak.{run}.{name}"),
            next: AtomicU64::new(0),
            acked: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
            latency_us: Mutex::new(Histogram::new(3)?),
        }))
    }

    async fn record(&self, sent: Instant) {
        let _ = self.latency_us.lock().await.record((sent.elapsed().as_micros() as u64).max(1));
    }
}

/// `{"value": id, "timestamp": now, "dedupe_id": ...}` plus `extra` fields.
fn point(run: &str, source: &str, id: u64, now_ms: u64, extra: &str) -> String {
    format!(
        r#"{{{extra}"value":{id},"timestamp":{}.{:03},"dedupe_id":"{run}-{source}-{id}"}}"#,
        now_ms / 1000,
        now_ms % 1000
    )
}

pub(super) async fn run(args: SoakArgs) -> anyhow::Result<()> {
    ensure!(
        args.batch_size > 0 && args.concurrency > 0 && args.window > 0,
        "batch size, concurrency and window must be at least 1"
    );
    let run = format!("r{:x}", wall_ms() as u64);
    let client = Client::builder(&args.server.url).token(&args.server.token).retries(0).build()?;
    let (http, mqtt) = (Source::new("http", &run)?, Source::new("mqtt", &run)?);
    let stop = CancellationToken::new();
    let started_ms = wall_ms() as i64;

    let streams: Vec<_> = (0..args.streams)
        .map(|_| tokio::spawn(follow(client.clone(), args.server.tenant.clone(), run.clone(), stop.clone())))
        .collect();
    let mut load = tokio::task::JoinSet::new();
    if args.http_rate > 0 {
        for task in 0..args.concurrency {
            load.spawn(push(client.clone(), http.clone(), run.clone(), task, args_http(&args), stop.clone()));
        }
    }
    let publisher =
        (args.mqtt_rate > 0).then(|| tokio::spawn(publish(args_mqtt(&args), mqtt.clone(), run.clone(), stop.clone())));
    let queries = tokio::spawn(query(
        client.clone(),
        http.metric.clone(),
        mqtt.metric.clone(),
        args.agents,
        args.query_interval_ms,
        stop.clone(),
    ));

    tokio::time::sleep(Duration::from_secs(args.duration_s)).await;
    stop.cancel();
    let load_stopped = Instant::now();
    while let Some(joined) = load.join_next().await {
        joined.context("an HTTP task panicked")?;
    }
    if let Some(publisher) = publisher {
        publisher.await.context("the MQTT task panicked")??;
    }
    let ended_ms = wall_ms() as i64;
    let elapsed = (ended_ms - started_ms) as f64 / 1000.0;
    let queries = queries.await.context("the query task panicked")??;

    // Drain: the server's queue first, then until every acknowledged point reads back (a
    // bridge may still hold messages the queue has not seen), or the timeout.
    wait_until_stored(&args.server.url).await?;
    let drain_s = load_stopped.elapsed().as_secs_f64();
    let drain_deadline = load_stopped + Duration::from_secs(args.drain_timeout_s);
    let (from_ms, to_ms) = (started_ms - 1_000, ended_ms + 1_000);
    let mut accounts = Vec::new();
    for source in [&http, &mqtt] {
        let acked = source.acked.lock().await.clone();
        let sent = source.next.load(Ordering::Relaxed);
        let counts = loop {
            let counts = read_back(&client, &source.metric, from_ms, to_ms, sent).await?;
            if acked.iter().all(|id| counts[*id as usize] > 0) || Instant::now() > drain_deadline {
                break counts;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        accounts.push(Account::new(source, sent, &acked, &counts).await);
    }
    let read_back_s = load_stopped.elapsed().as_secs_f64();
    let mut followers = Vec::new();
    for stream in streams {
        followers.push(stream.await.context("a stream follower panicked")?);
    }
    let report = Report { run, elapsed, drain_s, read_back_s, accounts, streams: followers, queries };
    report.print(args.json)?;
    let (missing, twice): (u64, u64) =
        report.accounts.iter().map(|a| (a.missing, a.twice)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    if missing > 0 || twice > 0 {
        bail!("{missing} acknowledged points missing, {twice} stored twice");
    }
    Ok(())
}

/// What the HTTP tasks need of the arguments.
#[derive(Clone, Copy)]
struct HttpLoad {
    period: Duration,
    batch_size: u64,
    agents: u64,
    concurrency: u64,
}

fn args_http(args: &SoakArgs) -> HttpLoad {
    let per_s = args.http_rate.max(1) as f64;
    HttpLoad {
        period: Duration::from_secs_f64((args.concurrency * args.batch_size) as f64 / per_s),
        batch_size: args.batch_size,
        agents: args.agents.max(1),
        concurrency: args.concurrency,
    }
}

/// One HTTP task: a request every `period`, staggered with the other tasks; refused
/// requests are counted and not sent again.
async fn push(client: Client, source: Arc<Source>, run: String, task: u64, load: HttpLoad, stop: CancellationToken) {
    let offset = load.period.mul_f64(task as f64 / load.concurrency as f64);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, load.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let first = source.next.fetch_add(load.batch_size, Ordering::Relaxed);
        let now = wall_ms() as u64;
        let agent = format!("soak-{}", (first / load.batch_size) % load.agents);
        let extra = format!(r#""metric_name":"{}","agent_id":"{agent}","#, source.metric);
        let items: Vec<String> = (first..first + load.batch_size).map(|id| point(&run, "h", id, now, &extra)).collect();
        let sent = Instant::now();
        match client.push_json(format!("[{}]", items.join(",")).into_bytes()).await {
            Ok(_) => {
                source.record(sent).await;
                source.acked.lock().await.extend(first..first + load.batch_size);
            }
            Err(_) => {
                source.refused.fetch_add(load.batch_size, Ordering::Relaxed);
            }
        }
    }
}

/// What the MQTT publisher needs of the arguments.
struct MqttLoad {
    broker: String,
    login: Option<(String, String)>,
    tenant: String,
    rate: u64,
    window: usize,
    agents: u64,
}

fn args_mqtt(args: &SoakArgs) -> MqttLoad {
    MqttLoad {
        broker: args.broker.clone(),
        login: args
            .broker_token
            .then(|| (microdash_core::mqtt::token_username(&args.server.token).to_owned(), args.server.token.clone())),
        tenant: args.server.tenant.clone(),
        rate: args.mqtt_rate,
        window: args.window,
        agents: args.agents.max(1),
    }
}

/// Publish at QoS 1 at `rate`, with up to `window` messages in flight; a point counts as
/// acknowledged when its `PUBACK` arrived. A lost connection is made again.
async fn publish(load: MqttLoad, source: Arc<Source>, run: String, stop: CancellationToken) -> anyhow::Result<()> {
    let client = mqtt::CreateOptionsBuilder::new()
        .server_uri(&load.broker)
        .client_id(format!("microdash-soak-{run}"))
        .persistence(mqtt::PersistenceType::None)
        .max_buffered_messages(i32::try_from(load.window * 2).unwrap_or(i32::MAX))
        .create_client()?;
    let connect = || {
        let mut options = mqtt::ConnectOptionsBuilder::new_v5();
        options.clean_start(true).connect_timeout(Duration::from_secs(5));
        if let Some((user, password)) = &load.login {
            options.user_name(user).password(password.as_str());
        }
        client.connect(options.finalize())
    };
    connect().await.with_context(|| format!("connecting to {}", load.broker))?;
    let topics: Vec<String> = (0..load.agents)
        .map(|a| microdash_core::mqtt::topic("metrics", &load.tenant, &format!("soak-m{a}"), &source.metric))
        .collect();
    let started = Instant::now();
    // Each message's token, timed when it completes (polled beside the pacing, so a PUBACK
    // is timed when it arrives, not when the window next fills).
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut sent = 0u64;
    let mut stopping = false;
    loop {
        let due = started + Duration::from_secs_f64(sent as f64 / load.rate as f64);
        let room = !stopping && in_flight.len() < load.window;
        tokio::select! {
            Some((id, at, delivered)) = in_flight.next(), if !in_flight.is_empty() => {
                match delivered {
                    Ok(Ok(_)) => {
                        source.record(at).await;
                        source.acked.lock().await.push(id);
                    }
                    // Refused, or not settled in 30 s (a connection that died).
                    Ok(Err(_)) | Err(_) => {
                        source.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            () = tokio::time::sleep_until(due.into()), if room => {
                if !client.is_connected() && client.reconnect().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                let id = source.next.fetch_add(1, Ordering::Relaxed);
                sent += 1;
                let payload = point(&run, "m", id, wall_ms() as u64, "");
                let message = mqtt::Message::new(&topics[(id % load.agents) as usize], payload, mqtt::QOS_1);
                let token = client.publish(message);
                let at = Instant::now();
                in_flight.push(async move { (id, at, tokio::time::timeout(Duration::from_secs(30), token).await) });
            }
            () = stop.cancelled(), if !stopping => stopping = true,
        }
        if stopping && in_flight.is_empty() {
            break;
        }
    }
    let _ = client.disconnect(None).await;
    microdash_ingest::mqtt::release(client).await;
    Ok(())
}

/// What one live stream saw of this run's points.
struct Followed {
    points: u64,
    resets: u64,
    /// Opened, then ended or failed before the load stopped.
    broken: bool,
    lag_us: Histogram<u64>,
}

/// Follow the tenant's live stream until `stop`, timing how late this run's points arrive
/// (from the time they were sent).
async fn follow(client: Client, tenant: String, run: String, stop: CancellationToken) -> Followed {
    let mut seen = Followed {
        points: 0,
        resets: 0,
        broken: false,
        lag_us: Histogram::new(3).expect("3 significant digits are valid"),
    };
    let prefix = format!("soak.{run}.");
    seen.broken = super::follow_stream(&client, &tenant, &stop, |event| match event {
        LiveEvent::Points { points, .. } => {
            let now = wall_ms();
            for point in points.iter().filter(|p| p.metric_name.starts_with(&prefix)) {
                seen.points += 1;
                // One point in 50 is timed: parsing every timestamp would load the
                // generator more than the streams load the server.
                if seen.points.is_multiple_of(50)
                    && let Ok(at) = chrono::DateTime::parse_from_rfc3339(&point.timestamp)
                {
                    let lag_ms = (now - at.timestamp_millis() as f64).max(0.001);
                    let _ = seen.lag_us.record((lag_ms * 1000.0) as u64);
                }
            }
        }
        LiveEvent::Reset { .. } => seen.resets += 1,
        LiveEvent::Ready { .. } | LiveEvent::Cursor { .. } => {}
    })
    .await;
    seen
}

/// How the history queries went.
struct Queried {
    count: u64,
    failed: u64,
    latency_us: Histogram<u64>,
}

/// History queries, one every `interval_ms`, alternating between the last 10 s of one HTTP
/// series (raw) and the last hour of the MQTT metric (`resolution=auto`).
async fn query(
    client: Client,
    http_metric: String,
    mqtt_metric: String,
    agents: u64,
    interval_ms: u64,
    stop: CancellationToken,
) -> anyhow::Result<Queried> {
    let mut done = Queried { count: 0, failed: 0, latency_us: Histogram::new(3)? };
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    for n in 0u64.. {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now_s = wall_ms() / 1000.0;
        let query = match n % 2 {
            0 => MetricsQuery {
                metric_name: Some(http_metric.clone()),
                agent_id: Some(format!("soak-{}", n / 2 % agents.max(1))),
                start_time: Some(format!("{:.3}", now_s - 10.0)),
                ..MetricsQuery::default()
            },
            _ => MetricsQuery {
                metric_name: Some(mqtt_metric.clone()),
                start_time: Some(format!("{:.3}", now_s - 3600.0)),
                resolution: Some(ResolutionRequest::Auto),
                ..MetricsQuery::default()
            },
        };
        let sent = Instant::now();
        match client.query(&query).await {
            Ok(_) => {
                done.count += 1;
                let _ = done.latency_us.record((sent.elapsed().as_micros() as u64).max(1));
            }
            Err(_) => done.failed += 1,
        }
    }
    Ok(done)
}

/// How often each of the `sent` points of `metric` is stored, read back through the query
/// API in time windows that are halved until each answer is complete.
async fn read_back(client: &Client, metric: &str, from_ms: i64, to_ms: i64, sent: u64) -> anyhow::Result<Vec<u8>> {
    let mut counts = vec![0u8; sent as usize];
    let mut windows = vec![(from_ms, to_ms)];
    let seconds = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    while let Some((start, end)) = windows.pop() {
        let query = MetricsQuery {
            metric_name: Some(metric.to_owned()),
            start_time: Some(seconds(start)),
            end_time: Some(seconds(end)),
            limit: Some(READ_BACK_LIMIT),
            ..MetricsQuery::default()
        };
        let answer = client.query(&query).await.with_context(|| format!("reading back {metric}"))?;
        if answer.count >= READ_BACK_LIMIT {
            ensure!(end - start > 1, "more than {READ_BACK_LIMIT} points of {metric} in one millisecond");
            let middle = start + (end - start) / 2;
            windows.extend([(start, middle), (middle, end)]);
            continue;
        }
        for point in answer.data {
            if let Some(count) = counts.get_mut(point.value as usize) {
                *count = count.saturating_add(1);
            }
        }
    }
    Ok(counts)
}

/// One source's account.
#[derive(serde::Serialize)]
struct Account {
    source: &'static str,
    sent: u64,
    acknowledged: u64,
    refused: u64,
    stored: u64,
    /// Acknowledged and not stored.
    missing: u64,
    /// Stored more than once.
    twice: u64,
    /// Stored though never acknowledged (in flight when refused or cut off).
    stored_unacknowledged: u64,
    #[serde(skip)]
    latency_us: Histogram<u64>,
}

impl Account {
    async fn new(source: &Source, sent: u64, acked: &[u64], counts: &[u8]) -> Account {
        let mut is_acked = vec![false; counts.len()];
        for id in acked {
            is_acked[*id as usize] = true;
        }
        let stored = counts.iter().filter(|c| **c > 0).count() as u64;
        let missing = acked.iter().filter(|id| counts[**id as usize] == 0).count() as u64;
        Account {
            source: source.name,
            sent,
            acknowledged: acked.len() as u64,
            refused: source.refused.load(Ordering::Relaxed),
            stored,
            missing,
            twice: counts.iter().filter(|c| **c > 1).count() as u64,
            stored_unacknowledged: counts.iter().zip(&is_acked).filter(|(c, a)| **c > 0 && !**a).count() as u64,
            latency_us: source.latency_us.lock().await.clone(),
        }
    }
}

struct Report {
    run: String,
    elapsed: f64,
    /// From the end of the load until the server's queue was empty.
    drain_s: f64,
    /// From the end of the load until every acknowledged point had been read back (or the
    /// drain timeout passed).
    read_back_s: f64,
    accounts: Vec<Account>,
    streams: Vec<Followed>,
    queries: Queried,
}

/// p50, p90, p99 and max in milliseconds.
fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |us: u64| us as f64 / 1000.0;
    serde_json::json!({
        "p50_ms": ms(h.value_at_quantile(0.5)),
        "p90_ms": ms(h.value_at_quantile(0.9)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
        "samples": h.len(),
    })
}

impl Report {
    fn print(&self, json: bool) -> anyhow::Result<()> {
        let mut lag = Histogram::<u64>::new(3)?;
        for stream in &self.streams {
            lag.add(&stream.lag_us)?;
        }
        let received: Vec<u64> = self.streams.iter().map(|s| s.points).collect();
        let stored: u64 = self.accounts.iter().map(|a| a.stored).sum();
        let summary = serde_json::json!({
            "run": self.run,
            "elapsed_s": self.elapsed,
            "drain_s": self.drain_s,
            "read_back_s": self.read_back_s,
            "sources": self.accounts.iter().map(|a| {
                let mut value = serde_json::to_value(a).unwrap_or_default();
                value["latency"] = percentiles(&a.latency_us);
                value
            }).collect::<Vec<_>>(),
            "streams": {
                "open": self.streams.len(),
                "broken": self.streams.iter().filter(|s| s.broken).count(),
                "resets": self.streams.iter().map(|s| s.resets).sum::<u64>(),
                "fewest_points": received.iter().min(),
                "most_points": received.iter().max(),
                "lag": percentiles(&lag),
            },
            "queries": {
                "count": self.queries.count,
                "failed": self.queries.failed,
                "latency": percentiles(&self.queries.latency_us),
            },
        });
        if json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
            return Ok(());
        }
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "soak run {}: {:.0} s of load; queue empty {:.1} s and every point read back {:.1} s after it stopped",
            self.run, self.elapsed, self.drain_s, self.read_back_s
        );
        for a in &self.accounts {
            println!(
                "{:<4} sent {}  acknowledged {}  refused {}  stored {}  missing {}  stored twice {}  stored unacknowledged {}",
                a.source, a.sent, a.acknowledged, a.refused, a.stored, a.missing, a.twice, a.stored_unacknowledged
            );
            let h = &a.latency_us;
            println!(
                "     {} latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                if a.source == "mqtt" { "PUBACK" } else { "request" },
                ms(h, 0.5),
                ms(h, 0.9),
                ms(h, 0.99),
                h.max() as f64 / 1000.0
            );
        }
        println!(
            "streams {} open, {} broken, {} resets; each received {}-{} of the {stored} points stored; lag p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            self.streams.len(),
            self.streams.iter().filter(|s| s.broken).count(),
            self.streams.iter().map(|s| s.resets).sum::<u64>(),
            received.iter().min().unwrap_or(&0),
            received.iter().max().unwrap_or(&0),
            ms(&lag, 0.5),
            ms(&lag, 0.99),
            lag.max() as f64 / 1000.0
        );
        let q = &self.queries.latency_us;
        println!(
            "queries {} ({} failed) p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.queries.count,
            self.queries.failed,
            ms(q, 0.5),
            ms(q, 0.9),
            ms(q, 0.99),
            q.max() as f64 / 1000.0
        );
        Ok(())
    }
}
