//! Split deployment over Redis and MariaDB: a worker process killed with SIGKILL in the
//! middle of its work loses nothing that was answered `202`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{eventually, microdash, microdash_output};
use microdash_client::{Client, MetricsQuery};
use microdash_store::Backend;
use microdash_store::testing::{TestDb, unique_name};

const REQUESTS: usize = 100;
const PER_REQUEST: usize = 1_000;

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_worker_mid_batch_loses_nothing() {
    let db = TestDb::new(Backend::Mysql).await;
    let redis_url = std::env::var("MICRODASH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = unique_name("md_kill");
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        ("MICRODASH_REDIS_URL", redis_url.as_str()),
        ("MICRODASH_REDIS_KEY_PREFIX", prefix.as_str()),
        ("MICRODASH_REDIS_CLAIM_IDLE_MS", "500"),
        ("MICRODASH_WORKER_MAX_BATCH_METRICS", "2000"),
        ("MICRODASH_LISTEN_ADDR", "127.0.0.1:0"),
    ];
    microdash_output(&["tenant", "create", "kill"], &env);
    let created: serde_json::Value =
        serde_json::from_str(&microdash_output(&["token", "create", "--tenant", "kill", "--json"], &env)).unwrap();
    let server = microdash(&["server"], &env);
    let url = server.line_with("listening on").rsplit(' ').next().unwrap().to_owned();
    let client = Client::new(&url, created["token"].as_str().unwrap()).unwrap();

    // Everything is accepted before any worker runs, so the backlog sits in Redis. Points a
    // millisecond apart over the last 100 seconds: recent enough that retention, which the
    // workers run, keeps them.
    let first_ms = microdash_ingest::clock::now_ms() - 100_000;
    let mut accepted = 0;
    for r in 0..REQUESTS {
        let items: Vec<String> = (0..PER_REQUEST)
            .map(|i| {
                format!(
                    r#"{{"metric_name":"k","value":{i},"timestamp":{},"dedupe_id":"{r}-{i}"}}"#,
                    (first_ms + (r * PER_REQUEST + i) as i64) as f64 / 1000.0
                )
            })
            .collect();
        accepted += client.push_json(format!("[{}]", items.join(",")).into_bytes()).await.unwrap().accepted;
    }
    assert_eq!(accepted, REQUESTS * PER_REQUEST);

    let count = || {
        let client = client.clone();
        async move {
            let query =
                MetricsQuery { metric_name: Some("k".into()), limit: Some("100000".into()), ..MetricsQuery::default() };
            client.query(&query).await.unwrap().count
        }
    };
    // Entries read but not acknowledged: what a killed worker held.
    let mut redis = redis::Client::open(redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{prefix}:ingest");
    let mut unacknowledged = async || -> usize {
        let summary: (usize, redis::Value, redis::Value, redis::Value) =
            redis::cmd("XPENDING").arg(&stream).arg("workers").query_async(&mut redis).await.unwrap();
        summary.0
    };
    // Kill workers as soon as they have stored something, until one dies holding a batch
    // (one killed between acknowledging a batch and reading the next held nothing).
    let mut held_at_kill = 0;
    for _ in 0..5 {
        let stored_before = count().await;
        let doomed = microdash(&["worker"], &env);
        let stored_before_kill = eventually(20, "a worker to store something", || async {
            let n = count().await;
            (n > stored_before).then_some(n)
        })
        .await;
        doomed.kill_hard();
        assert!(stored_before_kill < accepted, "the worker was killed with work left ({stored_before_kill} stored)");
        held_at_kill = unacknowledged().await;
        if held_at_kill > 0 {
            break;
        }
    }
    assert!(held_at_kill > 0, "no worker was killed in the middle of a batch");

    let rescuer = microdash(&["worker"], &env);
    eventually(60, "every accepted metric stored", || async { (count().await == accepted).then_some(()) }).await;
    // The dead worker's batches were claimed and acknowledged (just after their commit), not
    // left behind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while unacknowledged().await > 0 {
        assert!(std::time::Instant::now() < deadline, "batches left unacknowledged");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(rescuer.terminate().success());
    assert!(server.terminate().success());
}
