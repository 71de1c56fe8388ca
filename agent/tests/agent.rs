//! The real `microdash-agent` binary: what it prints; agent -> Mosquitto -> bridge -> store,
//! including samples taken while the broker was down; agent -> embedded endpoint -> store.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use microdash_ingest::Runtime;
use microdash_ingest::mqtt::MqttConfig;
use microdash_ingest::mqtt::broker::{Broker, BrokerConfig};
use microdash_ingest::queue::{MemoryQueue, Queue};
use microdash_ingest::worker::WorkerConfig;
use microdash_store::testing::{TestDb, unique_name};
use microdash_store::{Backend, PointQuery, Store};
use tokio_util::sync::CancellationToken;

const AGENT: &str = env!("CARGO_BIN_EXE_microdash-agent");

#[test]
fn stdout_shows_every_metric_with_agent_and_timestamp() {
    let out = Command::new(AGENT)
        .args(["--stdout", "--count", "1", "--interval-s", "0.2", "--tenant", "acme", "--agent-id", "box-1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut names = Vec::new();
    for line in text.lines() {
        let (topic, payload) = line.split_once(' ').unwrap();
        let payload: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(payload["agent_id"], "box-1");
        assert!(payload["timestamp"].as_f64().unwrap() > 1.7e9);
        names.push(topic.strip_prefix("metrics/acme/box-1/").unwrap().to_owned());
    }
    for name in ["cpu.usage_percent", "mem.used_percent", "mem.used_bytes", "load.1m", "uptime_s", "net.tx_bytes_per_s"]
    {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
}

/// A store and workers, fed by a bridge on `broker` under `root`, or by the embedded endpoint.
struct Pipeline {
    store: Store,
    tenant_id: i64,
    runtime: Runtime,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Pipeline {
    async fn start() -> Pipeline {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let tenant_id = store.create_tenant("acme", "", 0).await.unwrap().id;
        let queue = Queue::Memory(MemoryQueue::new(100_000, Duration::from_secs(1)));
        let shutdown = CancellationToken::new();
        let workers = WorkerConfig { receive_wait: Duration::from_millis(20), ..WorkerConfig::default() };
        let runtime = Runtime::builder(store.clone(), queue).workers(workers).retention(None).build();
        // Stored points are checked while the pipeline runs; it is torn down with the test.
        std::mem::drop(runtime.spawn_workers(&shutdown));
        Pipeline { store, tenant_id, runtime, shutdown, _db: db }
    }

    fn bridge(
        &self,
        broker: &str,
        root: &str,
    ) -> tokio::task::JoinHandle<Result<(), microdash_ingest::mqtt::MqttError>> {
        let bridge = MqttConfig {
            client_id: unique_name("md_agent_bridge"),
            topic_root: root.to_owned(),
            shared_group: None,
            max_reconnect_delay: Duration::from_millis(300),
            ..MqttConfig::new(broker)
        };
        let (runtime, shutdown) = (self.runtime.clone(), self.shutdown.clone());
        tokio::spawn(async move { runtime.run_bridge(bridge, shutdown).await })
    }
}

async fn points(p: &Pipeline, metric: &str) -> Vec<microdash_store::StoredPoint> {
    let query = PointQuery { metric_name: Some(metric.into()), limit: 10_000, ..PointQuery::default() };
    p.store.query_points(p.tenant_id, &query).await.unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Mosquitto of the test's own on `port`, keeping sessions on disk in `dir` across restarts
/// (the machine's broker is left alone).
fn broker_process(port: u16, dir: &std::path::Path) -> std::process::Child {
    let conf = dir.join("mosquitto.conf");
    let text = format!(
        // `user root`: started as root (as in CI), stay root so the temp directory is writable.
        "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
        dir.display()
    );
    std::fs::write(&conf, text).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn stop(mut child: std::process::Child) {
    // SIGTERM, so the broker writes its sessions out.
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_outage_leaves_no_gap() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let broker = format!("tcp://127.0.0.1:{port}");
    let root = format!("{}/metrics", unique_name("md_agent"));
    // The bridge subscribes (a persistent session), then the broker goes down.
    let mosquitto = broker_process(port, dir.path());
    let p = Pipeline::start().await;
    let bridge = p.bridge(&broker, &root);
    let probe = {
        let client = paho_mqtt::CreateOptionsBuilder::new()
            .server_uri(&broker)
            .client_id(unique_name("md_probe"))
            .persistence(paho_mqtt::PersistenceType::None)
            .create_client()
            .unwrap();
        client.connect(paho_mqtt::ConnectOptionsBuilder::new_v5().finalize()).await.unwrap();
        client
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while points(&p, "probe").await.is_empty() {
        let topic = format!("{root}/acme/probe/probe");
        probe.publish(paho_mqtt::Message::new(topic, r#"{"value":1,"dedupe_id":"p"}"#, 1)).await.unwrap();
        assert!(Instant::now() < deadline, "the bridge never subscribed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = probe.disconnect(None).await;
    microdash_ingest::mqtt::release(probe).await;
    stop(mosquitto);
    assert!(dir.path().join("mosquitto.db").exists(), "the broker kept no sessions");

    // The agent samples through the outage, then the broker returns.
    let mut agent = Command::new(AGENT)
        .args([
            "--url",
            &broker,
            "--tenant",
            "acme",
            "--agent-id",
            "box-1",
            "--interval-s",
            "0.3",
            "--topic-root",
            &root,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mosquitto = broker_process(port, dir.path());

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        got = points(&p, "cpu.usage_percent").await;
        if got.len() >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = agent.kill();
    let _ = agent.wait();
    // The bridge stops first: it must not be dropped in the middle of a connect attempt.
    p.shutdown.cancel();
    stop(mosquitto);
    // Samples from the outage (its first 1.5 s) are there, in order, without a gap wider than
    // a few intervals; the bridge reconnected and resubscribed by itself.
    assert!(got.len() >= 8, "only {} samples stored", got.len());
    assert!(got[0].timestamp_ms < p_start_ms(started) + 1_000, "the samples taken during the outage are missing");
    for pair in got.windows(2) {
        assert!(pair[1].timestamp_ms - pair[0].timestamp_ms < 1_000, "a gap: {pair:?}");
    }
    assert_eq!(got[0].agent_id.as_deref(), Some("box-1"));
    let disks = points(&p, "disk.used_percent").await;
    assert!(disks.iter().all(|d| d.tags["mount"].starts_with('/')));
    tokio::time::timeout(Duration::from_secs(15), bridge).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_publishes_to_the_embedded_endpoint_with_its_token() {
    let p = Pipeline::start().await;
    let (_, token) = p.store.create_token(Some(p.tenant_id), "ingest".parse().unwrap(), "agent", 0).await.unwrap();
    let endpoint = Broker::bind(BrokerConfig::new("127.0.0.1:0")).await.unwrap();
    let url = format!("tcp://{}", endpoint.local_addr().unwrap());
    let served = {
        let (runtime, shutdown) = (p.runtime.clone(), p.shutdown.clone());
        tokio::spawn(async move { runtime.run_endpoint(endpoint, shutdown).await })
    };

    let args = ["--url", &url, "--tenant", "acme", "--agent-id", "box-2", "--token", &token];
    let out = Command::new(AGENT).args(args).args(["--interval-s", "0.2", "--count", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The agent exits once its samples are acknowledged, and acknowledged means queued.
    let deadline = Instant::now() + Duration::from_secs(5);
    while points(&p, "cpu.usage_percent").await.len() < 2 {
        assert!(Instant::now() < deadline, "the agent's samples were not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(points(&p, "uptime_s").await[0].agent_id.as_deref(), Some("box-2"));
    p.shutdown.cancel();
    served.await.unwrap();
}

/// Wall-clock milliseconds at `started`.
fn p_start_ms(started: Instant) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    now - started.elapsed().as_millis() as i64
}
