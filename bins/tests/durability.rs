//! The embedded default (SQLite, in-process queue with its journal) under `kill -9`: the
//! all-in-one server is killed at random moments while clients push, and restarted; in the
//! end every point that was acknowledged (`202`, or an MQTT `PUBACK`) is stored, and no point
//! is stored twice, those without a `dedupe_id` included. Each test prints how many
//! acknowledged points were lost and how many were still unstored when the server died (what
//! the journal had to bring back).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mqtt::Publisher;
use common::{Proc, microdash, random_ms};
use microdash_client::Client;
use microdash_store::testing::TestDb;
use microdash_store::{Backend, PointQuery, Store, StoreOptions};

const ROUNDS: usize = 4;
const PUSHERS: u64 = 4;
const PER_REQUEST: u64 = 500;
const METRIC: &str = "durable";

/// Point ids (their values) acknowledged by the server, and the next id to send.
#[derive(Default)]
struct Tally {
    next: AtomicU64,
    acked: Mutex<Vec<u64>>,
}

/// The server on `db` with a journal, its URL, its MQTT endpoint and a fresh demo token.
fn start(db: &TestDb) -> (Proc, String, String, String) {
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        // Small segments, so that segments are closed and deleted during the test too.
        ("MICRODASH_QUEUE_SEGMENT_BYTES", "1000000"),
    ];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();
    let endpoint = server.line_with("MQTT endpoint").split(' ').nth(2).unwrap().to_owned();
    let token = server.demo_token();
    (server, url, endpoint, token)
}

/// Every stored value of the test's metric, counted.
async fn stored(db: &TestDb) -> HashMap<u64, usize> {
    stored_at(&db.url).await
}

async fn stored_at(url: &str) -> HashMap<u64, usize> {
    let store = Store::connect(url, &StoreOptions::default()).await.unwrap();
    let tenant = store.tenant_by_slug("demo").await.unwrap().unwrap().id;
    let query = PointQuery { metric_name: Some(METRIC.into()), limit: usize::MAX, ..PointQuery::default() };
    let mut counts = HashMap::new();
    for point in store.query_points(tenant, &query).await.unwrap() {
        *counts.entry(point.value as u64).or_default() += 1;
    }
    counts
}

/// Acknowledged ids that are not stored.
fn missing(acked: &[u64], stored: &HashMap<u64, usize>) -> usize {
    acked.iter().filter(|id| !stored.contains_key(id)).count()
}

/// Kill the server `ROUNDS` times at random moments under the load `load` makes (it runs
/// until its flag is set), restart it each time, then let it drain and count.
async fn kill_restart_and_count<L, F>(name: &str, load: L)
where
    L: Fn(String, String, String, Arc<Tally>, Arc<AtomicBool>) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let db = TestDb::new(Backend::Sqlite).await;
    let tally = Arc::new(Tally::default());
    let mut unstored_at_kills = Vec::new();
    for _ in 0..ROUNDS {
        let (server, url, endpoint, token) = start(&db);
        let stop = Arc::new(AtomicBool::new(false));
        let running = tokio::spawn(load(url, endpoint, token, tally.clone(), stop.clone()));
        // Under load: some acknowledged in this round, then a random moment.
        let before = tally.acked.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tally.acked.lock().unwrap().len() == before {
            assert!(Instant::now() < deadline, "{name}: nothing was acknowledged within 20 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(random_ms(100, 1_500)).await;
        server.kill_hard();
        stop.store(true, Ordering::Relaxed);
        running.await.unwrap();
        let acked = tally.acked.lock().unwrap().clone();
        unstored_at_kills.push(missing(&acked, &stored(&db).await));
    }
    // Restart once more: the journal is replayed; a graceful stop then stores what is queued.
    let (server, url, _, token) = start(&db);
    let acked = tally.acked.lock().unwrap().clone();
    let client = Client::new(&url, &token).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while missing(&acked, &stored(&db).await) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(client);
    assert!(server.terminate().success());
    let stored = stored(&db).await;
    let lost = missing(&acked, &stored);
    let twice = stored.values().filter(|n| **n > 1).count();
    let sent = tally.next.load(Ordering::Relaxed);
    println!(
        "{name}: {ROUNDS} kills; {} points sent, {} acknowledged, {} stored; acknowledged and only in the journal at each kill: {unstored_at_kills:?}; lost: {lost}; stored twice: {twice}",
        sent,
        acked.len(),
        stored.len(),
    );
    assert_eq!(lost, 0, "{name}: acknowledged points lost");
    assert_eq!(twice, 0, "{name}: points stored twice");
    assert!(stored.keys().all(|id| *id < sent), "{name}: a point nobody sent");
}

/// `PUSHERS` clients pushing `PER_REQUEST` points a request, every other request with
/// `dedupe_id`s, no request retried (a retry without dedupe ids may store twice by design).
async fn http_load(url: String, token: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let client = Client::builder(&url).token(&token).retries(0).build().unwrap();
    let mut pushers = tokio::task::JoinSet::new();
    for pusher in 0..PUSHERS {
        let (client, tally, stop) = (client.clone(), tally.clone(), stop.clone());
        pushers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let first = tally.next.fetch_add(PER_REQUEST, Ordering::Relaxed);
                let keyed = (first / PER_REQUEST).is_multiple_of(2);
                let items: Vec<String> = (first..first + PER_REQUEST)
                    .map(|id| match keyed {
                        true => format!(
                            r#"{{"metric_name":"{METRIC}","agent_id":"p{pusher}","value":{id},"dedupe_id":"d{id}"}}"#
                        ),
                        false => format!(r#"{{"metric_name":"{METRIC}","agent_id":"p{pusher}","value":{id}}}"#),
                    })
                    .collect();
                match client.push_json(format!("[{}]", items.join(",")).into_bytes()).await {
                    Ok(accepted) => {
                        assert_eq!(accepted.accepted as u64, PER_REQUEST);
                        tally.acked.lock().unwrap().extend(first..first + PER_REQUEST);
                    }
                    // Refused, or the server died: not acknowledged, and not sent again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        });
    }
    while pushers.join_next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_all_in_one_server_under_http_load_loses_nothing_and_stores_nothing_twice() {
    kill_restart_and_count("http", |url, _endpoint, token, tally, stop| http_load(url, token, tally, stop)).await;
}

/// `PUSHERS` MQTT 5 clients publishing one point a message at QoS 1, each with up to 100
/// messages in flight; a point counts as acknowledged when its `PUBACK` took it.
async fn mqtt_load(endpoint: String, token: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut publishers = tokio::task::JoinSet::new();
    for publisher in 0..PUSHERS {
        let (endpoint, token, tally, stop) = (endpoint.clone(), token.clone(), tally.clone(), stop.clone());
        publishers.spawn(async move {
            let Some(mut client) = Publisher::connect_with_token(&endpoint, &token).await else { return };
            let topic = format!("metrics/demo/m{publisher}/{METRIC}");
            // Fill the window, then wait for acknowledgements; once stopping, collect the
            // acknowledgements still on their way. The server going away ends it: what was
            // in flight is not acknowledged.
            loop {
                let stopping = stop.load(Ordering::Relaxed);
                if stopping && client.in_flight() == 0 {
                    return;
                }
                while !stopping && client.in_flight() < 100 {
                    let id = tally.next.fetch_add(1, Ordering::Relaxed);
                    let payload = match id % 2 {
                        0 => format!(r#"{{"value":{id},"dedupe_id":"m{id}"}}"#),
                        _ => format!(r#"{{"value":{id}}}"#),
                    };
                    if client.publish(&topic, &payload, id).await.is_err() {
                        return;
                    }
                }
                match client.acknowledged().await {
                    Ok(Some(id)) => tally.acked.lock().unwrap().push(id),
                    Ok(None) => {}
                    Err(_) => return,
                }
            }
        });
    }
    while publishers.join_next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_all_in_one_server_under_mqtt_qos_1_loses_nothing_and_stores_nothing_twice() {
    kill_restart_and_count("mqtt", |_url, endpoint, token, tally, stop| mqtt_load(endpoint, token, tally, stop)).await;
}

/// A tmpfs of the test's own, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: std::path::PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(mounted.success(), "mounting a tmpfs for the disk-full test needs root (CAP_SYS_ADMIN)");
        SmallDisk(dir)
    }
}

impl SmallDisk {
    /// Fill it to the last byte with a file, returned so that it can be removed.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        while file.write_all(&[0u8; 4096]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// `GET /api/v1/health`: its status and body.
async fn health(url: &str) -> (u16, serde_json::Value) {
    let http = microdash_client::Client::default_http().unwrap();
    let answer = http.get(format!("{url}/api/v1/health")).send().await.unwrap();
    (answer.status().as_u16(), answer.json::<serde_json::Value>().await.unwrap())
}

/// The journal's disk fills up during ingest: requests are answered `503` with
/// `Retry-After` and the cause, `/api/v1/health` names it, ingest resumes by itself once
/// there is room again, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_refused_clearly_and_ingest_resumes_when_it_has_room() {
    let db = TestDb::new(Backend::Sqlite).await;
    let scratch = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(scratch.path().join("queue"), "4m");
    let queue_dir = disk.0.to_str().unwrap().to_owned();
    let env = [("MICRODASH_DATABASE_URL", db.url.as_str()), ("MICRODASH_QUEUE_DIR", queue_dir.as_str())];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();
    let token = server.demo_token();
    let client = Client::builder(&url).token(&token).retries(0).build().unwrap();
    let tally = Tally::default();
    let push = async || {
        let first = tally.next.fetch_add(PER_REQUEST, Ordering::Relaxed);
        let items: Vec<String> =
            (first..first + PER_REQUEST).map(|id| format!(r#"{{"metric_name":"{METRIC}","value":{id}}}"#)).collect();
        let pushed = client.push_json(format!("[{}]", items.join(",")).into_bytes()).await;
        if pushed.is_ok() {
            tally.acked.lock().unwrap().extend(first..first + PER_REQUEST);
        }
        pushed
    };
    let health = async || health(&url).await;
    push().await.unwrap();
    assert_eq!(health().await.0, 200);

    let filler = disk.fill();
    let refused = push().await.unwrap_err();
    assert_eq!(refused.status(), Some(503), "{refused}");
    assert!(refused.retry_after().is_some(), "503 without Retry-After");
    assert!(refused.to_string().contains("No space left"), "the cause is named: {refused}");
    let (status, body) = health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["queue"]["status"], "down", "{body}");
    assert!(body["checks"]["queue"]["error"].as_str().unwrap().contains("No space left"), "{body}");

    // Room again: the next request goes through, and the health check recovers with it.
    std::fs::remove_file(&filler).unwrap();
    for _ in 0..5 {
        push().await.unwrap();
    }
    assert_eq!(health().await.0, 200);
    assert!(server.terminate().success());
    let acked = tally.acked.lock().unwrap().clone();
    let stored = stored(&db).await;
    let lost = missing(&acked, &stored);
    println!("disk full: {} acknowledged, {} stored, lost: {lost}", acked.len(), stored.len());
    assert_eq!(lost, 0, "acknowledged points lost");
    assert_eq!(stored.len(), acked.len(), "a refused request was stored");
}

/// The database's disk fills up during ingest: workers hold their batches and retry (none is
/// dead-lettered), requests go on being accepted into the journal (on another disk) while it
/// has room, and everything is stored once the disk has room again.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_database_disk_holds_batches_in_the_journal_until_there_is_room() {
    let scratch = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(scratch.path().join("db"), "16m");
    let db_url = format!("sqlite://{}/md.db", disk.0.display());
    let queue_dir = scratch.path().join("queue").to_str().unwrap().to_owned();
    let env = [
        ("MICRODASH_DATABASE_URL", db_url.as_str()),
        ("MICRODASH_QUEUE_DIR", queue_dir.as_str()),
        ("MICRODASH_WORKER_RETRY_MAX_DELAY_MS", "200"),
        // Other failures are dead-lettered after two attempts: a full disk must not be one.
        ("MICRODASH_WORKER_MAX_ATTEMPTS", "2"),
    ];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();
    let token = server.demo_token();
    let client = Client::builder(&url).token(&token).retries(0).build().unwrap();
    let mut acked = Vec::new();
    let mut next = 0;
    let mut push = async || {
        let items: Vec<String> =
            (next..next + 1_000).map(|id| format!(r#"{{"metric_name":"{METRIC}","value":{id}}}"#)).collect();
        client.push_json(format!("[{}]", items.join(",")).into_bytes()).await.unwrap();
        acked.extend(next..next + 1_000);
        next += 1_000;
    };
    push().await;
    let filler = disk.fill();
    for _ in 0..20 {
        push().await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::scrape(&url, "microdash_store_retries_total").await < 4.0 {
        assert!(Instant::now() < deadline, "the workers never hit the full disk");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(common::scrape(&url, "microdash_dead_lettered_batches_total").await, 0.0, "a batch was dead-lettered");
    // The database still answers a ping, but health says its writes fail, and why.
    let (status, body) = health(&url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"]["status"], "down", "{body}");
    assert!(body["checks"]["database"]["error"].as_str().unwrap().contains("full"), "{body}");
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while missing(&acked, &stored_at(&db_url).await) > 0 {
        assert!(Instant::now() < deadline, "ingest did not resume once the disk had room");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while health(&url).await.0 != 200 {
        assert!(Instant::now() < deadline, "health did not recover once writes went through");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retries = common::scrape(&url, "microdash_store_retries_total").await;
    assert!(server.terminate().success());
    let stored = stored_at(&db_url).await;
    let (lost, twice) = (missing(&acked, &stored), stored.values().filter(|n| **n > 1).count());
    println!(
        "database disk full: {} acknowledged, {} stored, {retries} retries, lost: {lost}, stored twice: {twice}",
        acked.len(),
        stored.len()
    );
    assert_eq!((lost, twice), (0, 0));
}
