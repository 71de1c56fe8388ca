//! A team's own axum service with microdash's ingestion embedded beside its own routes.
//!
//! ```sh
//! cargo run -p microdash-ingest --example embedded_axum
//! # listening on http://127.0.0.1:3000
//! # shop token (ingest, read): mdk_...
//! curl -sS -X POST http://127.0.0.1:3000/orders -H 'Content-Type: application/json' -d '{"amount": 12.5}'
//! curl -sS "http://127.0.0.1:3000/api/v1/metrics?metric_name=shop.order_amount" -H "Authorization: Bearer mdk_..."
//! ```
//!
//! `LISTEN_ADDR` (default `127.0.0.1:3000`; `127.0.0.1:0` takes a free port) and
//! `DATABASE_URL` (default: a SQLite file in a temporary directory, removed at exit) change
//! where it listens and what it stores into.
//!
//! The service opens a store and an in-process queue, assembles them with
//! `Runtime::builder`, and serves one axum router: its own `GET /` and `POST /orders` merged
//! with `runtime.router()`, which brings the whole microdash API (`/api/v1/...`), `/livez`
//! and `/metrics`. `POST /orders` records each order's amount as a metric through
//! `runtime.ingestor()`, so the team's own code feeds the same pipeline (validated, counted,
//! queued, stored by the workers, pushed to live streams) as HTTP and MQTT clients do.
//!
//! Ctrl-C or SIGTERM stops it in the order the runtime needs: the server stops taking
//! requests and ends live streams, then the workers store everything already accepted.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use microdash_core::api::MetricIn;
use microdash_core::metric::validate_all;
use microdash_ingest::Runtime;
use microdash_ingest::clock::now_ms;
use microdash_ingest::queue::{MemoryQueue, Queue};
use microdash_ingest::telemetry::Source;
use microdash_store::{Store, StoreOptions};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// What the service's own handlers share: the runtime, and the tenant its orders go to.
#[derive(Clone)]
struct Shop {
    runtime: Runtime,
    tenant_id: i64,
}

/// The body of `POST /orders`.
#[derive(Deserialize)]
struct Order {
    amount: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The runtime logs through `tracing`: each request in a span with its `x-request-id`.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let dir = tempfile::tempdir()?;
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => format!("sqlite://{}", dir.path().join("shop.db").display()),
    };
    let store = Store::connect(&url, &StoreOptions::default()).await?;
    store.migrate().await?;
    let now = now_ms();
    let tenant = match store.tenant_by_slug("shop").await? {
        Some(tenant) => tenant,
        None => store.create_tenant("shop", "Shop", now).await?,
    };
    let (_, token) = store.create_token(Some(tenant.id), "ingest,read".parse()?, "embedded example", now).await?;

    // Up to 100,000 metrics wait in memory for the workers; a push that finds no room for
    // a second is answered 503.
    let queue = Queue::Memory(MemoryQueue::new(100_000, Duration::from_secs(1)));
    let runtime = Runtime::builder(store, queue).build();

    let own = Router::new()
        .route("/", get(|| async { "the shop's own service, with microdash embedded\n" }))
        .route("/orders", post(record_order))
        .with_state(Shop { runtime: runtime.clone(), tenant_id: tenant.id });
    // microdash's router keeps its layers (request ids, tracing, timeouts, body limit) on
    // its own routes; the service's routes keep whatever the service puts on them.
    let app = own.merge(runtime.router());

    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("shop token (ingest, read): {token}");

    let shutdown = CancellationToken::new();
    // With a Redis queue this feeds live streams from every process's workers; with the
    // in-process queue the workers publish here directly and it returns `None`.
    let relay = runtime.spawn_live_relay(&shutdown);
    let workers = runtime.spawn_workers(&shutdown);
    let stopping = {
        let (runtime, shutdown) = (runtime.clone(), shutdown.clone());
        async move {
            stop_signal().await;
            tracing::info!("stopping: no new requests; the workers store what was accepted");
            // Open live streams would hold the graceful shutdown open forever.
            runtime.close_streams();
            shutdown.cancel();
        }
    };
    // The peer's address is what microdash counts sign-in attempts by.
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stopping)
        .await?;
    // Every source has stopped: now the workers may drain the queue and end.
    workers.drain().await;
    if let Some(relay) = relay {
        relay.await?;
    }
    println!("stopped; everything accepted was stored");
    Ok(())
}

/// `POST /orders`: the service's own handler, feeding the order's amount into microdash.
async fn record_order(State(shop): State<Shop>, Json(order): Json<Order>) -> (StatusCode, String) {
    let now = now_ms();
    let ingestor = shop.runtime.ingestor();
    let metric = MetricIn::new("shop.order_amount", order.amount).agent("checkout").tag("currency", "eur");
    let metrics = match validate_all(vec![metric], ingestor.limits(), now) {
        Ok(metrics) => metrics,
        Err(err) => return (StatusCode::UNPROCESSABLE_ENTITY, format!("{err}\n")),
    };
    match ingestor.submit(Source::Http, shop.tenant_id, metrics, now).await {
        Ok(_) => (StatusCode::ACCEPTED, "order recorded\n".into()),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n")),
    }
}

/// Ctrl-C, or SIGTERM (how systemd and container runtimes stop a service).
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
