//! The examples users start from, run as built programs: the client's against the real
//! `microdash` binary, the embedded service by itself, probed over HTTP.
//!
//! The example programs are other packages' targets, built beside the server binary by
//! `scripts/test.sh` before the tests. Run alone, this file needs
//! `cargo build -p microdash-client -p microdash-ingest --examples --all-features` first.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{eventually, microdash, program};
use microdash_client::{Client, MetricIn, MetricsQuery};
use microdash_store::testing::TestDb;
use microdash_store::{Backend, PointQuery};

/// The built example `name`, next to the server binary.
fn example(name: &str) -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_microdash"));
    let path = server.parent().unwrap().join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build -p microdash-client -p microdash-ingest --examples --all-features`",
        path.display()
    );
    path
}

/// How many points of `metric` the tenant's query API returns (up to the default limit).
async fn stored(client: &Client, metric: &str) -> usize {
    let query = MetricsQuery { metric_name: Some(metric.into()), ..MetricsQuery::default() };
    client.query(&query).await.map_or(0, |answer| answer.count)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_examples_push_query_and_report_to_the_real_server() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server =
        microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &[("MICRODASH_DATABASE_URL", &db.url)]);
    let url = server.url();
    let token = server.demo_token();
    let env = [("MICRODASH_URL", url.as_str()), ("MICRODASH_TOKEN", token.as_str())];
    let client = Client::new(&url, &token).unwrap();

    // push_and_query: pushes ten points, reads them back, shows a typed refusal.
    let out = Command::new(example("push_and_query")).envs(env).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "push_and_query failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("accepted 10 points"), "{stdout}");
    assert!(stdout.contains("10 points at resolution"), "{stdout}");
    assert!(stdout.contains("refused as expected: 422 invalid_metrics"), "{stdout}");
    assert_eq!(stored(&client, "example.temperature").await, 10, "the server holds what the example read back");

    // instrumented_app: the `metrics` facade reported by the recorder until Ctrl-C.
    let mut app = program(&example("instrumented_app"), &[], &env);
    app.line_with("reporting every 2 s");
    for metric in ["shop.orders", "shop.queue_depth", "shop.checkout_ms.p99"] {
        eventually(20, metric, || async { (stored(&client, metric).await > 0).then_some(()) }).await;
    }
    assert!(app.stop("INT").success(), "instrumented_app failed: {}", app.log());
    let sent = app.line_with("sent ");
    assert!(sent.ends_with("(0 dropped, 0 failed)"), "{sent}");
    let count: usize = sent.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(count > 0, "{sent}");

    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_service_serves_its_own_routes_beside_microdash_and_drains_at_shutdown() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut service = program(
        &example("embedded_axum"),
        &[],
        &[("LISTEN_ADDR", "127.0.0.1:0"), ("DATABASE_URL", &db.url), ("RUST_LOG", "warn")],
    );
    let url = service.url();
    let token = service.last_word_of("shop token");
    let http = Client::default_http().unwrap();

    // The service's own routes.
    let home = http.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("the shop's own service"));
    let order = http.post(format!("{url}/orders")).json(&serde_json::json!({"amount": 12.5})).send().await.unwrap();
    assert_eq!(order.status(), 202, "{:?}", order.text().await);

    // microdash's, merged beside them, with their layers.
    let health = http.get(format!("{url}/api/v1/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let prometheus = http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(prometheus.contains("microdash_"), "{prometheus}");
    let client = Client::new(&url, &token).unwrap();
    let order_amounts = MetricsQuery { metric_name: Some("shop.order_amount".into()), ..MetricsQuery::default() };
    let recorded = eventually(10, "the order's metric", || async {
        client.query(&order_amounts).await.ok().filter(|r| r.count == 1)
    })
    .await;
    assert_eq!((recorded.data[0].value, recorded.data[0].tags["currency"].as_str()), (12.5, "eur"));

    // Accepted right before the signal, stored before the process exits.
    for round in 0..5 {
        let points: Vec<MetricIn> = (0..1_000)
            .map(|i| MetricIn::new("shop.visits", f64::from(i)).agent("web").dedupe_id(format!("visit-{round}-{i}")))
            .collect();
        assert_eq!(client.push(&points).await.unwrap().accepted, 1_000);
    }
    assert!(service.stop("TERM").success(), "the service failed: {}", service.log());
    service.line_with("stopped; everything accepted was stored");

    let store = db.store().await;
    let shop = store.tenant_by_slug("shop").await.unwrap().unwrap();
    let visits = PointQuery { metric_name: Some("shop.visits".into()), limit: 10_000, ..PointQuery::default() };
    assert_eq!(store.query_points(shop.id, &visits).await.unwrap().len(), 5_000);
}
