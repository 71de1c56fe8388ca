//! An application instrumented with the `metrics` crate, reporting to microdash through
//! the client's recorder.
//!
//! ```sh
//! MICRODASH_URL=http://127.0.0.1:8080 MICRODASH_TOKEN=mdk_... \
//!     cargo run -p microdash-client --example instrumented_app
//! ```
//!
//! The token needs the `ingest` scope. Every 2 s the recorder sends `shop.orders` (a
//! counter, as its total), `shop.queue_depth` (a gauge) and `shop.checkout_ms.*` (a
//! histogram's count, sum, min, max, p50, p90 and p99 over the interval), tagged with their
//! labels. Stop it with Ctrl-C: it sends what is left before it exits.

use std::time::Duration;

use microdash_client::Client;
use microdash_client::recorder::MicrodashRecorder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("MICRODASH_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("MICRODASH_TOKEN").map_err(|_| "set MICRODASH_TOKEN to a token with ingest")?;
    let client = Client::builder(url).token(token).build()?;
    let handle = MicrodashRecorder::builder(client)
        .agent_id("example-shop-1")
        .prefix("shop")
        .tag("env", "example")
        .interval(Duration::from_secs(2))
        .install()?;

    // The application: it knows nothing of microdash, only of the `metrics` facade.
    let work = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for i in 0u64.. {
            tick.tick().await;
            let region = if i % 3 == 0 { "us" } else { "eu" };
            metrics::counter!("orders", "region" => region).increment(1);
            metrics::gauge!("queue_depth").set((i % 17) as f64);
            metrics::histogram!("checkout_ms").record(20.0 + (i % 50) as f64 * 1.5);
        }
    });

    println!("reporting every 2 s; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    work.abort();
    // Awaiting shutdown sends the last interval and everything still buffered.
    let reporter = handle.reporter().clone();
    handle.shutdown().await;
    println!("sent {} points ({} dropped, {} failed)", reporter.sent(), reporter.dropped(), reporter.failed());
    Ok(())
}
