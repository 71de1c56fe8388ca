//! `query_metrics` (the MCP tool) over 7 days of one series, on SQLite: p50 and p99.
//!
//! `cargo bench -p microdash-ingest --features mcp --bench mcp` (1,000 calls after 20 to
//! warm up; docs/benchmarks.md). Under `cargo test` it makes 5 calls, as a smoke test.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use microdash_core::rollup::{DAY_MS, MINUTE_MS};
use microdash_core::{Batch, Metric};
use microdash_ingest::Runtime;
use microdash_ingest::mcp::query_metrics;
use microdash_ingest::mcp::tools::{QueryMetricsArgs, TimeArg};
use microdash_ingest::queue::{MemoryQueue, Queue};
use microdash_store::Backend;
use microdash_store::testing::TestDb;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let tenant = store.create_tenant("bench", "", now).await.unwrap();
        // One point a minute for 7 days: 10,080 points, with their 1m and 5m rollups.
        let start = now - 7 * DAY_MS;
        let points: Vec<Metric> = (0..7 * 24 * 60)
            .map(|i| Metric {
                name: "cpu.usage_percent".into(),
                agent_id: Some("web-1".into()),
                tags: Default::default(),
                timestamp_ms: start + i * MINUTE_MS,
                value: 50.0 + 30.0 * ((i as f64) / 90.0).sin(),
                dedupe_id: None,
            })
            .collect();
        for chunk in points.chunks(2_000) {
            let batch = Batch { tenant_id: tenant.id, received_at_ms: now, metrics: chunk.to_vec() };
            store.insert_batches(&[batch], now).await.unwrap();
        }
        let (_, token) = store.create_token(Some(tenant.id), "read".parse().unwrap(), "bench", now).await.unwrap();
        let runtime = Runtime::builder(store, Queue::Memory(MemoryQueue::new(1_000, Duration::from_secs(1)))).build();
        let source = runtime.mcp_source(&token).await.unwrap().unwrap();
        let args = QueryMetricsArgs {
            metric: "cpu.usage_percent".into(),
            range: Some(TimeArg::Text("7d".into())),
            ..QueryMetricsArgs::default()
        };
        let (warmup, calls) = if full { (20, 1_000) } else { (0, 5) };
        let mut took = Vec::with_capacity(calls);
        for i in 0..warmup + calls {
            let begin = Instant::now();
            let answer = query_metrics(&source, Some("bench".into()), args.clone(), now_ms()).await.unwrap();
            if i >= warmup {
                took.push(begin.elapsed());
            }
            assert_eq!(answer.series.len(), 1);
            assert!(answer.series[0].points.len() <= 120);
            assert!(answer.series[0].summary.count >= 10_000, "{}", answer.series[0].summary.count);
        }
        took.sort();
        let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
        println!(
            "query_metrics 7d of one series (10,080 points, SQLite): {} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            took.len(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            took[took.len() - 1].as_secs_f64() * 1e3
        );
        drop(db);
    });
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
