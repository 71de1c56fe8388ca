//! The Redis Streams queue against the real Redis on 127.0.0.1:6379 (or
//! `MICRODASH_TEST_REDIS_URL`). Each test uses its own key prefix.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::App;
use microdash_core::{Batch, Limits, Metric};
use microdash_ingest::queue::{Consumer, Delivery, Queue, RedisQueue, RedisQueueConfig};
use microdash_store::Backend;
use microdash_store::testing::{TestDb, unique_name};

fn config() -> RedisQueueConfig {
    let url = std::env::var("MICRODASH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    RedisQueueConfig {
        key_prefix: unique_name("md_test"),
        claim_idle: Duration::from_millis(200),
        ..RedisQueueConfig::new(url)
    }
}

async fn queue(config: &RedisQueueConfig) -> Queue {
    let queue = RedisQueue::connect(config)
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is unreachable ({e}); tests need it", config.url));
    Queue::Redis(queue)
}

fn batch(value: f64) -> Batch {
    let metric =
        Metric { name: "m".into(), agent_id: None, tags: Default::default(), timestamp_ms: 1, value, dedupe_id: None };
    Batch { tenant_id: 1, received_at_ms: 1, metrics: vec![metric] }
}

#[tokio::test]
async fn delivers_acknowledges_and_counts_depth() {
    let q = queue(&config()).await;
    q.ping().await.unwrap();
    for v in [1.0, 2.0, 3.0] {
        q.enqueue(batch(v)).await.unwrap();
    }
    assert_eq!(q.depth().await.unwrap(), 3);
    let mut consumer = q.consumer("c1").await.unwrap();
    let got = q.receive(&mut consumer, 10_000, Duration::from_millis(100)).await.unwrap();
    assert_eq!(got.iter().map(|d| d.batch.metrics[0].value).collect::<Vec<_>>(), [1.0, 2.0, 3.0]);
    assert!(got.iter().all(|d| d.deliveries == 1));
    q.ack(&got).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), 0);
    assert!(q.receive(&mut consumer, 10_000, Duration::from_millis(50)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_batch_left_unacknowledged_is_claimed_by_another_consumer() {
    let q = queue(&config()).await;
    q.enqueue(batch(7.0)).await.unwrap();
    let mut dead = q.consumer("dead").await.unwrap();
    let taken = q.receive(&mut dead, 10_000, Duration::from_millis(100)).await.unwrap();
    assert_eq!(taken.len(), 1);
    // "dead" never acknowledges. Another consumer gets the batch once it has idled.
    let mut alive = q.consumer("alive").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let reclaimed = loop {
        let got = q.receive(&mut alive, 10_000, Duration::from_millis(50)).await.unwrap();
        if !got.is_empty() {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "the orphaned batch was never reclaimed");
    };
    assert_eq!((reclaimed[0].batch.metrics[0].value, reclaimed[0].deliveries), (7.0, 2));
    q.ack(&reclaimed).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), 0);
}

/// With a claim idle time of 400 ms: `busy` takes what is queued (`expect` entries) and keeps
/// it for `rounds` renewals 200 ms apart, while `other` finds nothing to claim after each.
async fn take_and_keep(q: &Queue, expect: usize, rounds: usize) -> (Consumer, Consumer, Vec<Delivery>) {
    let mut busy = q.consumer("busy").await.unwrap();
    let mut other = q.consumer("other").await.unwrap();
    let held = q.receive(&mut busy, 10_000, Duration::from_millis(100)).await.unwrap();
    assert_eq!(held.len(), expect);
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(200)).await;
        q.keep(&busy, &held).await.unwrap();
        assert!(q.receive(&mut other, 10_000, Duration::from_millis(10)).await.unwrap().is_empty());
    }
    (busy, other, held)
}

/// A worker retrying a batch through a database outage keeps renewing its hold, so the batch
/// is not claimed as a dead worker's (and stored twice); once it stops, the batch is claimed.
#[tokio::test]
async fn a_batch_kept_by_its_worker_is_not_claimed() {
    let q = queue(&RedisQueueConfig { claim_idle: Duration::from_millis(400), ..config() }).await;
    q.enqueue(batch(7.0)).await.unwrap();
    // Three times the idle limit, renewed at half of it.
    let (mut busy, mut other, held) = take_and_keep(&q, 1, 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let claimed = q.receive(&mut other, 10_000, Duration::from_millis(10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // Renewing did not count as deliveries: the claim is the second.
    assert_eq!(claimed[0].deliveries, 2);
    // Too late now: the batch is the other worker's, and stays so.
    q.keep(&busy, &held).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    q.keep(&other, &claimed).await.unwrap();
    assert!(q.receive(&mut busy, 10_000, Duration::from_millis(10)).await.unwrap().is_empty());
}

/// Renewing covers every entry of a delivery, whatever their ids: `1-10` sorts before `1-9`
/// as a string, so a range taken from string order would have matched neither.
#[tokio::test]
async fn keeping_covers_entries_whose_ids_do_not_sort_as_strings() {
    let config = RedisQueueConfig { claim_idle: Duration::from_millis(400), ..config() };
    let q = queue(&config).await;
    let mut redis = redis::Client::open(config.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    for id in ["1-9", "1-10"] {
        let payload = serde_json::to_string(&batch(1.0)).unwrap();
        let _: String = redis::cmd("XADD")
            .arg(format!("{}:ingest", config.key_prefix))
            .arg(id)
            .arg("b")
            .arg(payload)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    take_and_keep(&q, 2, 4).await;
}

/// End to end through a real worker: while it retries a batch that keeps failing (its tenant
/// does not exist) for longer than the claim idle time, no other consumer can claim it; it is
/// dead-lettered once, by that worker.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_retrying_a_batch_keeps_it_from_other_workers() {
    use microdash_ingest::Runtime;
    use microdash_ingest::worker::WorkerConfig;
    use tokio_util::sync::CancellationToken;

    let redis_config = RedisQueueConfig { claim_idle: Duration::from_secs(1), ..config() };
    let (config_prefix, url) = (redis_config.key_prefix.clone(), redis_config.url.clone());
    let q = queue(&redis_config).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    q.enqueue(Batch { tenant_id: 9999, ..batch(1.0) }).await.unwrap();
    // Six attempts 300 ms (up to 600 ms with jitter) apart: well past the claim idle time.
    let config = WorkerConfig {
        workers: 1,
        receive_wait: Duration::from_millis(20),
        max_attempts: 6,
        retry_initial_delay: Duration::from_millis(300),
        retry_max_delay: Duration::from_millis(300),
        ..WorkerConfig::default()
    };
    let shutdown = CancellationToken::new();
    let workers =
        Runtime::builder(store.clone(), q.clone()).workers(config).retention(None).build().spawn_workers(&shutdown);
    // Once the worker holds the batch (it is pending), another consumer starts asking for work.
    let stream = format!("{}:ingest", config_prefix);
    let mut redis = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let (pending, ..): (usize, redis::Value, redis::Value, redis::Value) =
            redis::cmd("XPENDING").arg(&stream).arg("workers").query_async(&mut redis).await.unwrap();
        if pending == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the worker never took the batch");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut other = q.consumer("other").await.unwrap();
    while store.list_dead_letters().await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the batch was never dead-lettered");
        let claimed = q.receive(&mut other, 10_000, Duration::from_millis(50)).await.unwrap();
        assert!(claimed.is_empty(), "claimed after {:?} from a worker still retrying it", started.elapsed());
    }
    assert!(started.elapsed() > Duration::from_secs(1), "the retries outlasted the claim idle time");
    assert_eq!(store.list_dead_letters().await.unwrap().len(), 1);
    workers.drain().await;
}

#[tokio::test]
async fn a_full_backlog_refuses_new_batches() {
    let q = queue(&RedisQueueConfig { max_backlog_batches: 2, ..config() }).await;
    q.enqueue(batch(1.0)).await.unwrap();
    q.enqueue(batch(2.0)).await.unwrap();
    // The backlog is sampled at most every 100 ms; wait for a fresh sample.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(matches!(q.enqueue(batch(3.0)).await, Err(microdash_ingest::queue::QueueError::Full)));
    let mut consumer = q.consumer("c").await.unwrap();
    let got = q.receive(&mut consumer, 10_000, Duration::from_millis(100)).await.unwrap();
    q.ack(&got).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    q.enqueue(batch(4.0)).await.unwrap();
}

#[tokio::test]
async fn unreachable_redis_is_an_error() {
    let config = RedisQueueConfig::new("redis://127.0.0.1:1/");
    assert!(RedisQueue::connect(&config).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn http_through_redis_into_mariadb() {
    let db = TestDb::new(Backend::Mysql).await;
    let store = db.store().await;
    // A claim time well above any insert: a slow insert must not be taken over and stored
    // twice (these metrics carry no dedupe_id).
    let q = queue(&RedisQueueConfig { claim_idle: Duration::from_secs(30), ..config() }).await;
    let app = App::assemble(db, store, q, Limits::default(), true);
    let t = app.tenant("t", "ingest,read").await;
    let body: Vec<String> =
        (0..200).map(|i| format!(r#"{{"metric_name":"m","value":{i},"timestamp":{}}}"#, 1_700_000_000 + i)).collect();
    let reply = app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&format!("[{}]", body.join(",")))).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    app.wait_for_points(&t.token, "metric_name=m", 200).await;
    let health = app.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(
        (health.json["checks"]["database"]["backend"].as_str(), health.json["checks"]["queue"]["backend"].as_str()),
        (Some("mysql"), Some("redis"))
    );
    app.stop().await;
}

/// Health names the queue when Redis goes away (a Redis of this test's own, stopped halfway),
/// and ingestion answers `503` instead of accepting what it cannot queue.
#[tokio::test(flavor = "multi_thread")]
async fn health_and_ingest_answer_503_when_redis_is_down() {
    // On a socket of its own: no TCP port to race other tests for.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let socket = socket.to_str().unwrap();
    let mut redis = tokio::process::Command::new("redis-server")
        .args(["--port", "0", "--unixsocket", socket, "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (the tests need Redis installed)");
    let url = format!("redis+unix://{socket}");
    let mut q = None;
    for _ in 0..100 {
        if let Ok(connected) = RedisQueue::connect(&RedisQueueConfig::new(url.clone())).await {
            q = Some(Queue::Redis(connected));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let app = App::assemble(db, store, q.expect("the test's Redis started"), Limits::default(), false);
    let t = app.tenant("t", "ingest").await;
    assert_eq!(app.call("GET", "/api/v1/health", None, None).await.status, StatusCode::OK);

    redis.kill().await.unwrap();
    let health = app.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.text);
    assert_eq!(health.json["status"], "degraded");
    assert_eq!(health.json["checks"]["queue"]["status"], "down");
    assert!(health.json["checks"]["queue"]["error"].is_string(), "{}", health.text);
    assert_eq!(health.json["checks"]["database"]["status"], "up");
    let push = app.call("POST", "/api/v1/metrics", Some(&t.token), Some(r#"{"metric_name":"m","value":1}"#)).await;
    assert_eq!(push.status, StatusCode::SERVICE_UNAVAILABLE, "{}", push.text);
    assert!(push.headers.contains_key("retry-after"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_bus_carries_persisted_batches_to_every_api_process() {
    use microdash_ingest::Runtime;
    use microdash_ingest::live::LiveFilter;
    use tokio_util::sync::CancellationToken;

    let config = config();
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let tenant = store.create_tenant("t", "", 0).await.unwrap();
    let shutdown = CancellationToken::new();
    // Two API processes, each relaying the live bus into its own hub, and a worker process.
    let mut subscriptions = Vec::new();
    for _ in 0..2 {
        let api = Runtime::builder(store.clone(), queue(&config).await).retention(None).build();
        subscriptions.push(api.live().subscribe(tenant.id, None, LiveFilter::default()));
        api.spawn_live_relay(&shutdown).expect("a Redis queue has a relay");
    }
    let worker_side = queue(&config).await;
    let worker = Runtime::builder(store.clone(), worker_side.clone()).retention(None).build();
    let workers = worker.spawn_workers(&shutdown);
    // The relays subscribe in the background: store batches until both have heard one.
    for subscription in &mut subscriptions {
        let frame = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                worker_side.enqueue(Batch { tenant_id: tenant.id, ..batch(5.0) }).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Some(frame) = subscription.try_frame().unwrap() {
                    return frame;
                }
            }
        })
        .await
        .expect("the relay delivered within 5 s");
        assert!(frame.json.contains(r#""value":5.0"#), "{}", frame.json);
    }
    workers.drain().await;
}
