//! `seed` and `query`: history for the query benchmarks.
//!
//! `seed` fills a database with what a fleet leaves behind: for `--series` series (20 metrics
//! per agent) reporting every `--interval-s`, raw points over the last `--raw-hours` (written
//! through `Store::insert_batches`, so their rollups are maintained as in production) and,
//! before that, the 1-minute (within seven days) and 5-minute (within `--rollup-days`)
//! buckets those points would have left once retention removed them (`Store::import_rollups`).
//! `query` then times `GET /api/v1/metrics` over a range.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use microdash_client::{Client, RangeQuery, ResolutionRequest};
use microdash_core::rollup::{Aggregate, DAY_MS, HOUR_MS, bucket_start};
use microdash_core::{Batch, Metric, SeriesKey};
use microdash_store::{ImportedBucket, RollupLevel, Store, StoreOptions};

/// Metrics per agent: an agent's 20 series are what one host's dashboard shows.
const METRICS_PER_AGENT: usize = 20;

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Database to fill (it is migrated first).
    #[arg(long, env = "MICRODASH_DATABASE_URL")]
    database_url: String,
    /// Tenant slug (created if missing).
    #[arg(long, default_value = "demo")]
    tenant: String,
    /// Series: agents `seed-0`, `seed-1`, ... with metrics `seed.metric0` to `seed.metric19`.
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Seconds between two points of a series.
    #[arg(long, default_value_t = 10)]
    interval_s: u64,
    /// Days of rollup history (5-minute buckets; 1-minute ones for the last seven days).
    #[arg(long, default_value_t = 30)]
    rollup_days: u64,
    /// Hours of raw points, ending `--end-hours-ago`.
    #[arg(long, default_value_t = 24)]
    raw_hours: u64,
    /// Where the history ends, in hours before now (24 puts a day of raw points just past a
    /// 24-hour retention, for the retention benchmark).
    #[arg(long, default_value_t = 0)]
    end_hours_ago: u64,
}

/// The value of series `s` at `ts_ms`: a daily wave per series with a little noise.
fn value(s: usize, ts_ms: i64) -> f64 {
    let t = ts_ms as f64 / 1000.0;
    let wave = (t / 86_400.0 * std::f64::consts::TAU + s as f64).sin();
    let noise = ((ts_ms / 1000).wrapping_mul(2_654_435_761) ^ s as i64).rem_euclid(1000) as f64 / 100.0;
    (50.0 + 35.0 * wave + noise).round()
}

fn series_key(tenant_id: i64, s: usize) -> SeriesKey {
    metric(s, 0).series_key(tenant_id)
}

fn metric(s: usize, ts_ms: i64) -> Metric {
    Metric {
        name: format!("seed.metric{}", s % METRICS_PER_AGENT),
        agent_id: Some(format!("seed-{}", s / METRICS_PER_AGENT)),
        tags: Default::default(),
        timestamp_ms: ts_ms,
        value: value(s, ts_ms),
        dedupe_id: None,
    }
}

pub async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let store = Store::connect(&args.database_url, &StoreOptions::default()).await.context("opening the database")?;
    store.migrate().await.context("migrating")?;
    let tenant = match store.tenant_by_slug(&args.tenant).await? {
        Some(t) => t,
        None => store.create_tenant(&args.tenant, "", microdash_ingest::clock::now_ms()).await?,
    };
    let step = i64::try_from(args.interval_s.max(1))? * 1000;
    let end = bucket_start(microdash_ingest::clock::now_ms() - i64::try_from(args.end_hours_ago)? * HOUR_MS, step);
    let raw_start = end - i64::try_from(args.raw_hours)? * HOUR_MS;
    let started = Instant::now();

    // Rollups of the time before the raw points, as retention would have left them.
    let history_start =
        bucket_start(end - i64::try_from(args.rollup_days)? * DAY_MS, RollupLevel::FiveMinutes.bucket_ms());
    let minute_start = bucket_start((end - 7 * DAY_MS).max(history_start), RollupLevel::OneMinute.bucket_ms());
    let mut buckets = 0usize;
    for (level, from) in [(RollupLevel::FiveMinutes, history_start), (RollupLevel::OneMinute, minute_start)] {
        let width = level.bucket_ms();
        let until = bucket_start(raw_start, width);
        let mut chunk = Vec::with_capacity(10_000);
        // Series by series: each chunk then fills neighbouring pages of the (series, bucket)
        // index, not one page per series per chunk (which made SQLite's WAL grow by GBs).
        for s in 0..args.series {
            let mut bucket = from;
            while bucket < until {
                let mut agg: Option<Aggregate> = None;
                let mut ts = bucket.div_euclid(step) * step;
                if ts < bucket {
                    ts += step;
                }
                while ts < bucket + width {
                    let point = Aggregate::of(ts, value(s, ts));
                    match &mut agg {
                        Some(agg) => agg.merge(&point),
                        None => agg = Some(point),
                    }
                    ts += step;
                }
                if let Some(agg) = agg {
                    chunk.push(ImportedBucket { series: series_key(tenant.id, s), bucket_ms: bucket, aggregate: agg });
                }
                if chunk.len() >= 10_000 {
                    buckets += chunk.len();
                    store.import_rollups(level, &chunk).await?;
                    chunk.clear();
                }
                bucket += width;
            }
        }
        buckets += chunk.len();
        store.import_rollups(level, &chunk).await?;
    }
    let imported_s = started.elapsed().as_secs_f64();

    // Raw points, through the production write path.
    let mut points = 0usize;
    let mut batch = Vec::with_capacity(10_000);
    let mut ts = raw_start;
    while ts < end {
        for s in 0..args.series {
            batch.push(metric(s, ts));
        }
        if batch.len() >= 10_000 || ts + step >= end {
            points += batch.len();
            let full = Batch { tenant_id: tenant.id, received_at_ms: ts, metrics: std::mem::take(&mut batch) };
            store.insert_batches(&[full], ts).await?;
        }
        ts += step;
    }
    println!(
        "seeded tenant {}: {} series, {buckets} rollup buckets in {imported_s:.1} s, {points} raw points in {:.1} s",
        args.tenant,
        args.series,
        started.elapsed().as_secs_f64() - imported_s
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Server base URL.
    #[arg(long, env = "MICRODASH_LOADGEN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A token with the read scope.
    #[arg(long, env = "MICRODASH_LOADGEN_TOKEN")]
    token: String,
    /// Only this metric.
    #[arg(long)]
    metric_name: Option<String>,
    /// Only this agent.
    #[arg(long)]
    agent_id: Option<String>,
    /// `raw`, `1m`, `5m` or `auto`.
    #[arg(long, default_value = "auto")]
    resolution: ResolutionRequest,
    /// The range: this many seconds up to now.
    #[arg(long, default_value_t = 7 * 86_400)]
    range_s: u64,
    /// Queries to time (one after the other).
    #[arg(long, default_value_t = 200)]
    requests: usize,
}

pub async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.url, &args.token)?;
    let mut latency_us = Histogram::<u64>::new(3)?;
    let mut first = None;
    for _ in 0..args.requests {
        let now = microdash_ingest::clock::now_ms();
        let mut query = RangeQuery::new(now - i64::try_from(args.range_s)? * 1000, now).resolution(args.resolution);
        query.metric_name = args.metric_name.clone();
        query.agent_id = args.agent_id.clone();
        let sent = Instant::now();
        let answer = client.query_range(&query).await?;
        latency_us.record((sent.elapsed().as_micros() as u64).max(1))?;
        let series: std::collections::BTreeSet<_> =
            answer.data.iter().map(|p| (p.metric_name.clone(), p.agent_id.clone())).collect();
        first.get_or_insert((answer.resolution, answer.count, series.len()));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ms = |q: f64| latency_us.value_at_quantile(q) as f64 / 1000.0;
    if let Some((resolution, count, series)) = first {
        println!("answer: resolution {resolution}, {count} points over {series} series");
    }
    println!(
        "{} queries: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        latency_us.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        latency_us.max() as f64 / 1000.0
    );
    Ok(())
}
