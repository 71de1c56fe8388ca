//! The `metrics` recorder, installed globally, against the real server. One test: a
//! process has one global recorder.
#![cfg(feature = "metrics")]
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Server, metric};
use microdash_client::recorder::MicrodashRecorder;

#[tokio::test(flavor = "multi_thread")]
async fn counters_gauges_and_histograms_arrive_as_points() {
    let mut server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);
    let handle = MicrodashRecorder::builder(client.clone())
        .agent_id("app-1")
        .prefix("app")
        .tag("env", "test")
        .interval(Duration::from_millis(300))
        .install()
        .unwrap();
    assert!(MicrodashRecorder::builder(client.clone()).install().is_err(), "one global recorder per process");

    metrics::counter!("jobs", "queue" => "mail").increment(3);
    metrics::gauge!("workers").set(4.0);
    for v in 1..=10 {
        metrics::histogram!("latency_ms").record(f64::from(v));
    }
    // Reported by the interval while the application runs...
    common::eventually(10, "the counter's total", || async {
        let points = client.query(&metric("app.jobs")).await.unwrap().data;
        points.last().filter(|p| p.value == 3.0).map(|_| ())
    })
    .await;
    metrics::counter!("jobs", "queue" => "mail").increment(2);
    // ... and a last time at shutdown.
    handle.shutdown().await;
    metrics::counter!("jobs", "queue" => "mail").increment(100);
    server.drain_workers().await;

    let jobs = client.query(&metric("app.jobs")).await.unwrap().data;
    let last = jobs.last().unwrap();
    assert_eq!(last.value, 5.0, "the total, and nothing after shutdown");
    assert_eq!(
        (last.agent_id.as_deref(), last.tags["queue"].as_str(), last.tags["env"].as_str()),
        (Some("app-1"), "mail", "test")
    );
    assert_eq!(client.query(&metric("app.workers")).await.unwrap().data.last().unwrap().value, 4.0);

    // Every observation is counted in exactly one interval.
    let counts = client.query(&metric("app.latency_ms.count")).await.unwrap().data;
    assert_eq!(counts.iter().map(|p| p.value).sum::<f64>(), 10.0);
    let sums = client.query(&metric("app.latency_ms.sum")).await.unwrap().data;
    assert_eq!(sums.iter().map(|p| p.value).sum::<f64>(), 55.0);
    for (suffix, want) in [("min", 1.0), ("max", 10.0), ("p50", 5.0), ("p90", 9.0), ("p99", 10.0)] {
        let points = client.query(&metric(&format!("app.latency_ms.{suffix}"))).await.unwrap().data;
        assert_eq!(points.iter().map(|p| p.value).collect::<Vec<_>>(), [want], "{suffix}");
    }
    server.stop().await;
}
