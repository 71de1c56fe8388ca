//! Push a few points and read them back.
//!
//! ```sh
//! MICRODASH_URL=http://127.0.0.1:8080 MICRODASH_TOKEN=mdk_... \
//!     cargo run -p microdash-client --example push_and_query
//! ```
//!
//! The token needs the `ingest` and `read` scopes (`microdash token create --tenant demo
//! --scopes ingest,read`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use microdash_client::{Client, Error, MetricIn, RangeQuery, ResolutionRequest};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("MICRODASH_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("MICRODASH_TOKEN").map_err(|_| "set MICRODASH_TOKEN to a token with ingest,read")?;
    let client = Client::builder(url).token(token).timeout(Duration::from_secs(10)).retries(3).build()?;
    println!("{client:?}");

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    // A dedupe id per point makes the push safe to retry: the server stores each id once.
    let points: Vec<MetricIn> = (0..10)
        .map(|i| {
            MetricIn::new("example.temperature", 20.0 + f64::from(i) / 10.0)
                .agent("example-sensor")
                .tag("room", "lab")
                .at_millis(now - (10 - i64::from(i)) * 1000)
                .dedupe_id(format!("example-{now}-{i}"))
        })
        .collect();
    let accepted = client.push(&points).await?;
    println!("accepted {} points", accepted.accepted);

    // A 202 means queued; the points are queryable once a worker stored them.
    let query = RangeQuery::new(now - 60_000, now + 1_000)
        .metric("example.temperature")
        .agent("example-sensor")
        .resolution(ResolutionRequest::Auto);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = client.query_range(&query).await?;
        if answer.count >= points.len() || tokio::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{} points at resolution {}:", answer.count, answer.resolution);
    for point in &answer.data {
        println!("  {} {:>6.2} {:?}", point.timestamp, point.value, point.tags);
    }

    // Server errors are typed.
    match client.push(&[MetricIn::new("bad name!", 1.0)]).await {
        Err(Error::Api { status, code, details, .. }) => println!("refused as expected: {status} {code} {details:?}"),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
