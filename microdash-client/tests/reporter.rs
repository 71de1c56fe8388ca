//! The reporter against the real server: every point stored exactly once, through size and
//! shutdown flushes, lost answers and refusals.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Fault, Proxy, Server, metric, wait_for_count};
use microdash_client::reporter::Reporter;
use microdash_client::{Client, MetricIn};

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_sends_every_point_exactly_once() {
    let mut server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);
    // Batches of 1,000 go out as they fill; the 500 left are sent by shutdown (the interval
    // is far away).
    let reporter = Reporter::builder(client.clone())
        .max_batch(1_000)
        .capacity(5_000)
        .flush_interval(Duration::from_secs(3600))
        .start();
    for i in 0..2_500 {
        reporter.record(MetricIn::new("jobs.done", f64::from(i)).tag("worker", (i % 4).to_string()));
    }
    reporter.shutdown().await;
    assert_eq!((reporter.sent(), reporter.dropped(), reporter.failed()), (2_500, 0, 0));

    server.drain_workers().await;
    let stored = client.query(&metric("jobs.done")).await.unwrap();
    assert_eq!(stored.count, 2_500);
    let mut values: Vec<f64> = stored.data.iter().map(|p| p.value).collect();
    values.sort_by(f64::total_cmp);
    assert!(values.iter().enumerate().all(|(i, v)| *v == i as f64), "each point once");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_interval_sends_a_partial_batch() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);
    let reporter = Reporter::builder(client.clone()).flush_interval(Duration::from_millis(50)).start();
    reporter.record(MetricIn::new("ticks", 1.0));
    // Sent without a shutdown: the interval passed.
    wait_for_count(&client, &metric("ticks"), 1).await;
    reporter.shutdown().await;
    assert_eq!(reporter.sent(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_is_sent_again_and_stored_once() {
    let mut server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let proxy = Proxy::start(&server.url).await;
    // The server stores the first push, but its answer becomes a 503 on the way back.
    proxy.inject(Fault::LoseAnswer { status: 503, retry_after: Some(1) });
    let through_proxy = Client::new(&proxy.url, &tenant.token).unwrap();
    let reporter = Reporter::builder(through_proxy).flush_interval(Duration::from_secs(3600)).start();
    for i in 0..50 {
        reporter.record(MetricIn::new("orders", f64::from(i)));
    }
    // One point brings its own dedupe id; the others get one from the reporter.
    reporter.record(MetricIn::new("orders", 50.0).dedupe_id("order-50"));
    reporter.shutdown().await;
    assert_eq!((reporter.sent(), reporter.failed()), (51, 0));
    assert_eq!(proxy.requests(), 2, "one push, one retry after the Retry-After");

    server.drain_workers().await;
    assert_eq!(server.client(&tenant.token).query(&metric("orders")).await.unwrap().count, 51);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_points_are_counted_and_the_rest_are_sent() {
    let mut server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);
    let reporter = Reporter::builder(client.clone()).start();
    reporter.record(MetricIn::new("good", 1.0));
    reporter.record(MetricIn::new("not a name", 2.0));
    reporter.record(MetricIn::new("good", 3.0));
    reporter.shutdown().await;
    assert_eq!((reporter.sent(), reporter.failed()), (2, 1));
    server.drain_workers().await;
    assert_eq!(client.query(&metric("good")).await.unwrap().count, 2);

    // A server that keeps refusing: given up after the retries, counted.
    let proxy = Proxy::start(&server.url).await;
    for _ in 0..3 {
        proxy.inject(Fault::Refuse { status: 503, retry_after: Some(0) });
    }
    let reporter = Reporter::builder(Client::new(&proxy.url, &tenant.token).unwrap()).max_retries(2).start();
    reporter.record(MetricIn::new("lost", 1.0));
    reporter.shutdown().await;
    assert_eq!((reporter.sent(), reporter.failed()), (0, 1));
    assert_eq!(proxy.requests(), 3);
    server.stop().await;
}
