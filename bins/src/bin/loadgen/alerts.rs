//! `alerts`: time from a breach to its webhook (MTTD) under ingest load.
//!
//! The generator runs a webhook receiver of its own, creates a channel pointing at it and a
//! rule `bench.alert > 100` (`for_s` 0), then pushes `--rate` metrics/s of ordinary values
//! spread over `--instances` agents: one alert instance each. Every `--breach-interval-ms` one
//! agent, not breaching yet, gets a single point of 200; the time from sending that point to
//! the arrival of its `firing` webhook is one sample. The agent's ordinary points resume once
//! it fired, which resolves it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// The metric the benchmark rule watches.
const METRIC: &str = "bench.alert";
/// A breach with no webhook after this long counts as missed.
const MISSED_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct AlertArgs {
    /// Server base URL.
    #[arg(long, env = "MICRODASH_LOADGEN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A tenant token with the ingest, read and alerts scopes.
    #[arg(long, env = "MICRODASH_LOADGEN_TOKEN")]
    token: String,
    /// Background metrics per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Agents, each one alert instance of the rule.
    #[arg(long, default_value_t = 1_000)]
    instances: usize,
    /// Time between breaches.
    #[arg(long, default_value_t = 200)]
    breach_interval_ms: u64,
    /// How long to measure.
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Breaches waiting for their webhook: agent index -> when its breach was sent.
type Pending = Arc<Mutex<HashMap<usize, Instant>>>;

pub async fn run(args: AlertArgs) -> anyhow::Result<()> {
    if args.instances == 0 || args.rate == 0 {
        bail!("--instances and --rate must be at least 1");
    }
    let http = microdash_client::Client::default_http()?;
    let pending: Pending = Arc::default();
    let latencies_us = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let hook = receiver(pending.clone(), latencies_us.clone()).await?;
    let api = Api { http: http.clone(), url: args.url.clone(), token: args.token.clone() };
    let channel = api.post("/api/v1/channels", json!({"name": "loadgen", "kind": "webhook", "url": hook})).await?;
    let rule = json!({
        "name": "loadgen mttd", "metric_name": METRIC, "operator": ">", "critical": 100,
        "channels": [channel["id"]],
    });
    let rule = api.post("/api/v1/alert-rules", rule).await?;
    let rule_id = rule["id"].as_i64().context("the rule has no id")?;

    let deadline = Instant::now() + Duration::from_secs(args.duration_s);
    let accepted = Arc::new(AtomicU64::new(0));
    let load =
        tokio::spawn(background(api.clone(), args.rate, args.instances, pending.clone(), accepted.clone(), deadline));
    // Let every instance exist (and the evaluator read the rule) before breaching.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let (mut breaches, mut missed, mut next) = (0u64, 0u64, 0usize);
    let mut ticker = tokio::time::interval(Duration::from_millis(args.breach_interval_ms.max(1)));
    while Instant::now() < deadline {
        ticker.tick().await;
        {
            let mut waiting = pending.lock().await;
            waiting.retain(|_, sent| {
                let lost = sent.elapsed() > MISSED_AFTER;
                missed += u64::from(lost);
                !lost
            });
            if waiting.contains_key(&next) {
                continue;
            }
            waiting.insert(next, Instant::now());
        }
        api.post("/api/v1/metrics", json!({"metric_name": METRIC, "value": 200.0, "agent_id": agent(next)})).await?;
        breaches += 1;
        next = (next + 1) % args.instances;
    }
    load.await.context("the load task panicked")??;
    // The last breaches' webhooks are still on their way.
    let settle = Instant::now();
    while !pending.lock().await.is_empty() && settle.elapsed() < MISSED_AFTER {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    missed += pending.lock().await.len() as u64;
    let elapsed = started.elapsed().as_secs_f64();
    let _ = api.delete(&format!("/api/v1/alert-rules/{rule_id}")).await;
    let latencies = latencies_us.lock().await;
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    let summary = json!({
        "mode": "alerts",
        "instances": args.instances,
        "target_rate": args.rate,
        "ingest_rate": accepted.load(Ordering::Relaxed) as f64 / elapsed,
        "breaches": breaches,
        "notified": latencies.len(),
        "missed": missed,
        "mttd_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": latencies.max() as f64 / 1000.0},
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "alerts: {} breaches over {} instances at {:.0} metrics/s; notified {}, missed {}; MTTD p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            breaches,
            args.instances,
            summary["ingest_rate"].as_f64().unwrap_or(0.0),
            latencies.len(),
            missed,
            ms(0.5),
            ms(0.99),
            latencies.max() as f64 / 1000.0
        );
    }
    Ok(())
}

fn agent(i: usize) -> String {
    format!("mttd-{i}")
}

/// The ordinary load: `rate` metrics/s in ten requests a second, round-robin over the
/// agents, skipping those whose breach has not fired yet (a later ordinary point would hide
/// it from a `last` rule before it is evaluated).
async fn background(
    api: Api,
    rate: u64,
    instances: usize,
    pending: Pending,
    accepted: Arc<AtomicU64>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let per_tick = (rate / 10).max(1) as usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0usize;
    while Instant::now() < deadline {
        ticker.tick().await;
        let skip: Vec<usize> = pending.lock().await.keys().copied().collect();
        // Stamped a second back, so an ordinary point already on its way when an agent
        // breaches is older than the breach (stamped on receipt) and cannot hide it.
        let timestamp = (crate::wall_ms() - 1_000.0) / 1000.0;
        let batch: Vec<Value> = (0..per_tick)
            .map(|k| (n + k) % instances)
            .filter(|i| !skip.contains(i))
            .map(|i| json!({"metric_name": METRIC, "value": 10.0, "agent_id": agent(i), "timestamp": timestamp}))
            .collect();
        n = n.wrapping_add(per_tick);
        let answer = api.post("/api/v1/metrics", Value::Array(batch)).await?;
        accepted.fetch_add(answer["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
    }
    Ok(())
}

/// A webhook receiver on a free port: a `firing` body for an agent that waits ends its sample.
async fn receiver(pending: Pending, latencies_us: Arc<Mutex<Histogram<u64>>>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (pending, latencies_us) = (pending.clone(), latencies_us.clone());
            async move {
                let arrived = Instant::now();
                let Ok(body) = serde_json::from_slice::<Value>(&body) else { return "unreadable" };
                let index = body["agent_id"].as_str().and_then(|a| a.strip_prefix("mttd-")?.parse::<usize>().ok());
                if let (Some("firing"), Some(index)) = (body["status"].as_str(), index)
                    && let Some(sent) = pending.lock().await.remove(&index)
                {
                    let us = arrived.duration_since(sent).as_micros() as u64;
                    let _ = latencies_us.lock().await.record(us.max(1));
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the webhook receiver")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("webhook receiver: {err}");
        }
    });
    Ok(url)
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response =
            self.http.post(format!("{}{path}", self.url)).bearer_auth(&self.token).json(&body).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.http.delete(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await?.error_for_status()?;
        Ok(())
    }
}
