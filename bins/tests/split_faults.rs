//! Faults of the split deployment under load: `microdash server` (the API), two
//! `microdash worker` processes and a `microdash bridge` (from Mosquitto) over Redis Streams
//! and MariaDB, fed by HTTP clients and MQTT publishers (every point with a `dedupe_id`),
//! while a worker is killed, or Redis, MariaDB or Mosquitto goes down and comes back. In the
//! end every acknowledged point (a `202`, or Mosquitto's `PUBACK`) is stored, none twice, and
//! every microdash process is still running. (A Redis that comes back without its data may
//! lose what it held, and only that: everything acknowledged after it is stored.) Each test prints how long recovery took: from
//! the fault (a killed worker) or the service's return until each source was acknowledged
//! again and until everything acknowledged before was stored.
//!
//! Redis, Mosquitto and, for its own test, MariaDB are private instances the test starts,
//! kills and restarts ([`common::services`]): the machine's shared ones serve other tests
//! meanwhile. Redis runs with `appendfsync always`, as a split deployment must (README,
//! "Delivery guarantees"). The tests take turns: five deployments under load at once on two
//! cores would measure the machine, not the recovery.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mqtt::Publisher;
use common::services::Service;
use common::{Proc, microdash, microdash_logging, microdash_output};
use microdash_client::Client;
use microdash_store::testing::TestDb;
use microdash_store::{Backend, PointQuery, Store, StoreOptions};

const TENANT: &str = "split";
/// A tenant whose first messages reach the bridge during the MariaDB outage, before the
/// bridge has looked it up.
const LATE_TENANT: &str = "split-late";
const HTTP_METRIC: &str = "split_http";
const MQTT_METRIC: &str = "split_mqtt";
/// Points a request; each of the two HTTP clients sends one request every 50 ms.
const PER_REQUEST: u64 = 100;
/// Messages each of the two MQTT publishers sends every 20 ms, then waits for.
const PER_TICK: u64 = 10;
/// How long Redis, MariaDB or Mosquitto stays down.
const OUTAGE: Duration = Duration::from_secs(2);

/// One at a time (see the module's doc).
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What one source sent, and which of its points were acknowledged when.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acked: Mutex<Vec<u64>>,
    /// When each request or message was acknowledged.
    acked_at: Mutex<Vec<Instant>>,
    /// Requests refused and connections lost: the load felt the fault.
    refused: AtomicU64,
}

impl Tally {
    fn acked(&self) -> Vec<u64> {
        self.acked.lock().unwrap().clone()
    }

    fn ack(&self, ids: impl IntoIterator<Item = u64>) {
        self.acked.lock().unwrap().extend(ids);
        self.acked_at.lock().unwrap().push(Instant::now());
    }

    /// How long after `back` the first acknowledgement came, if one did.
    fn acked_again(&self, back: Instant) -> Option<f64> {
        self.acked_at.lock().unwrap().iter().find(|at| **at >= back).map(|at| (*at - back).as_secs_f64())
    }
}

/// The load: point ids (their values) shared by every source, so no two points are equal.
#[derive(Default)]
struct Load {
    next: AtomicU64,
    http: Tally,
    mqtt: Tally,
    /// MQTT into [`LATE_TENANT`], once `late_start` is set.
    late: Tally,
    late_start: AtomicBool,
    stop: AtomicBool,
}

impl Load {
    /// Each source: its name, tenant, metric and tally.
    fn sources(&self) -> [(&'static str, &'static str, &'static str, &Tally); 3] {
        [
            ("http", TENANT, HTTP_METRIC, &self.http),
            ("mqtt", TENANT, MQTT_METRIC, &self.mqtt),
            ("mqtt into a tenant first seen in the fault", LATE_TENANT, MQTT_METRIC, &self.late),
        ]
    }
}

/// The deployment and its services (fields drop in order: the processes before the services
/// they use).
struct Split {
    server: Proc,
    workers: Vec<Proc>,
    bridge: Proc,
    redis: Service,
    mosquitto: Service,
    mariadb: Option<Service>,
    /// A database on the shared MariaDB, when the test has no server of its own.
    _db: Option<TestDb>,
    db_url: String,
    env: Vec<(&'static str, String)>,
    url: String,
    token: String,
}

impl Split {
    /// Redis and Mosquitto of its own; MariaDB of its own too if `private_mariadb`, else a
    /// database on the shared one. The bridge has subscribed when this returns.
    async fn start(private_mariadb: bool) -> Split {
        let (redis, mosquitto) = (Service::redis(), Service::mosquitto());
        let (mariadb, db) = match private_mariadb {
            true => (Some(Service::mariadb()), None),
            false => (None, Some(TestDb::new(Backend::Mysql).await)),
        };
        let db_url = mariadb.as_ref().map_or_else(|| db.as_ref().unwrap().url.clone(), Service::url);
        let env = vec![
            ("MICRODASH_DATABASE_URL", db_url.clone()),
            ("MICRODASH_REDIS_URL", redis.url()),
            ("MICRODASH_REDIS_CLAIM_IDLE_MS", "1000".to_owned()),
            ("MICRODASH_WORKER_RETRY_MAX_DELAY_MS", "500".to_owned()),
            ("MICRODASH_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ];
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        microdash_output(&["tenant", "create", TENANT], &envs);
        microdash_output(&["tenant", "create", LATE_TENANT], &envs);
        let created: serde_json::Value =
            serde_json::from_str(&microdash_output(&["token", "create", "--tenant", TENANT, "--json"], &envs)).unwrap();
        let server = microdash(&["server"], &envs);
        let url = server.url();
        let workers = vec![microdash(&["worker"], &envs), microdash(&["worker"], &envs)];
        let mqtt_url = mosquitto.url();
        let mut bridge_env = envs.clone();
        bridge_env.extend([("MICRODASH_MQTT_URL", mqtt_url.as_str()), ("MICRODASH_LOG_FILTER", "info")]);
        let bridge = microdash_logging(&["bridge"], &bridge_env);
        // Mosquitto drops what is published before anyone subscribed.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !bridge.log().contains("MQTT bridge subscribed") {
            assert!(Instant::now() < deadline, "the bridge did not subscribe within 20 s:\n{}", bridge.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let token = created["token"].as_str().unwrap().to_owned();
        Split { redis, mosquitto, mariadb, _db: db, db_url, env, server, workers, bridge, url, token }
    }

    fn spawn_worker(&self) -> Proc {
        let envs: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        microdash(&["worker"], &envs)
    }

    /// Every stored value of `metric` in `tenant`, counted; `None` while the database cannot
    /// be read.
    async fn stored(&self, tenant: &str, metric: &str) -> Option<HashMap<u64, usize>> {
        let store = Store::connect(&self.db_url, &StoreOptions::default()).await.ok()?;
        let tenant = store.tenant_by_slug(tenant).await.ok()??.id;
        let query = PointQuery { metric_name: Some(metric.into()), limit: usize::MAX, ..PointQuery::default() };
        let mut counts = HashMap::new();
        for point in store.query_points(tenant, &query).await.ok()? {
            *counts.entry(point.value as u64).or_default() += 1;
        }
        Some(counts)
    }

    /// Entries held (read, not acknowledged) by the worker process `pid`: its consumers are
    /// named `{host}-{pid}-{start}-{n}`.
    async fn held_by(&self, pid: u32) -> usize {
        let mut redis =
            redis::Client::open(self.redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let pending: redis::streams::StreamPendingReply =
            redis::AsyncCommands::xpending(&mut redis, "microdash:ingest", "workers").await.unwrap();
        match pending {
            redis::streams::StreamPendingReply::Data(data) => {
                data.consumers.iter().filter(|c| c.name.contains(&format!("-{pid}-"))).map(|c| c.pending).sum()
            }
            _ => 0,
        }
    }

    /// Start the load: two HTTP clients and two MQTT publishers (into Mosquitto), each
    /// carrying on through the fault (refused requests are not retried; a lost connection is
    /// made again).
    fn load(&self) -> (Arc<Load>, tokio::task::JoinSet<()>) {
        let load = Arc::new(Load::default());
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..2 {
            tasks.spawn(http_client(self.url.clone(), self.token.clone(), load.clone(), n));
            tasks.spawn(mqtt_publisher(self.mosquitto.url(), load.clone(), TENANT, n));
        }
        tasks.spawn(mqtt_publisher(self.mosquitto.url(), load.clone(), LATE_TENANT, 0));
        (load, tasks)
    }

    /// Wait until both sources have points stored: the pipeline works before the fault.
    async fn warmed_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let http = self.stored(TENANT, HTTP_METRIC).await.map_or(0, |s| s.len());
            let mqtt = self.stored(TENANT, MQTT_METRIC).await.map_or(0, |s| s.len());
            if http > 0 && mqtt > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "nothing stored within 30 s (http {http}, mqtt {mqtt})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether every microdash process is still running.
    fn all_running(&mut self) -> bool {
        let procs = std::iter::once(&mut self.server).chain(&mut self.workers).chain(std::iter::once(&mut self.bridge));
        procs.into_iter().all(|p| p.child.try_wait().unwrap().is_none())
    }
}

async fn http_client(url: String, token: String, load: Arc<Load>, n: u64) {
    let client = Client::builder(&url).token(&token).retries(0).build().unwrap();
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    while !load.stop.load(Ordering::Relaxed) {
        pace.tick().await;
        let first = load.next.fetch_add(PER_REQUEST, Ordering::Relaxed);
        let items: Vec<String> = (first..first + PER_REQUEST)
            .map(|id| {
                format!(r#"{{"metric_name":"{HTTP_METRIC}","agent_id":"h{n}","value":{id},"dedupe_id":"h{id}"}}"#)
            })
            .collect();
        load.http.sent.fetch_add(PER_REQUEST, Ordering::Relaxed);
        match client.push_json(format!("[{}]", items.join(",")).into_bytes()).await {
            Ok(accepted) => {
                assert_eq!(accepted.accepted as u64, PER_REQUEST);
                load.http.ack(first..first + PER_REQUEST);
            }
            Err(_) => {
                load.http.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Publish `PER_TICK` messages every 20 ms into `tenant` and wait for their `PUBACK`s; a
/// point counts as acknowledged when Mosquitto acknowledged it. A lost connection is made
/// again. The publisher into [`LATE_TENANT`] waits for `late_start`.
async fn mqtt_publisher(endpoint: String, load: Arc<Load>, tenant: &'static str, n: u64) {
    let topic = format!("metrics/{tenant}/m{n}/{MQTT_METRIC}");
    let tally = if tenant == LATE_TENANT { &load.late } else { &load.mqtt };
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    while tenant == LATE_TENANT && !load.late_start.load(Ordering::Relaxed) {
        if load.stop.load(Ordering::Relaxed) {
            return;
        }
        pace.tick().await;
    }
    'connection: while !load.stop.load(Ordering::Relaxed) {
        pace.tick().await;
        let Some(mut client) = Publisher::connect(&endpoint, None).await else {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        while !load.stop.load(Ordering::Relaxed) {
            pace.tick().await;
            for _ in 0..PER_TICK {
                let id = load.next.fetch_add(1, Ordering::Relaxed);
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let payload = format!(r#"{{"value":{id},"dedupe_id":"m{id}"}}"#);
                if client.publish(&topic, &payload, id).await.is_err() {
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    continue 'connection;
                }
            }
            while client.in_flight() > 0 {
                match client.acknowledged().await {
                    Ok(Some(id)) => tally.ack([id]),
                    Ok(None) => {}
                    Err(_) => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                        continue 'connection;
                    }
                }
            }
        }
    }
}

/// Acknowledged ids that are not stored.
fn missing(acked: &[u64], stored: &HashMap<u64, usize>) -> usize {
    acked.iter().filter(|id| !stored.contains_key(id)).count()
}

/// A fault injected: when the service was back, what was done, and whether it may lose
/// what was acknowledged before (a Redis that lost its data).
struct Fault {
    back: Instant,
    what: String,
    lossy: bool,
}

/// How long after `fault.back` each source was acknowledged again, and until everything it
/// had acknowledged before was stored (when the fault may lose that: until a point
/// acknowledged since was stored), in seconds: `[http accepting, http stored, mqtt accepting,
/// mqtt stored]`. `before` is how many points each source had acknowledged at `fault.back`.
async fn recovery(split: &Split, load: &Load, fault: &Fault, before: [usize; 2]) -> [f64; 4] {
    let mut took: [Option<f64>; 4] = [None; 4];
    let deadline = fault.back + Duration::from_secs(45);
    while took.iter().any(Option::is_none) {
        let now = fault.back.elapsed().as_secs_f64();
        for (i, (tally, metric)) in [(&load.http, HTTP_METRIC), (&load.mqtt, MQTT_METRIC)].into_iter().enumerate() {
            took[2 * i] = took[2 * i].or_else(|| tally.acked_again(fault.back));
            if took[2 * i + 1].is_some() {
                continue;
            }
            let acked = tally.acked();
            let Some(stored) = split.stored(TENANT, metric).await else { continue };
            let recovered = match fault.lossy {
                false => missing(&acked[..before[i]], &stored) == 0,
                true => acked[before[i]..].iter().any(|id| stored.contains_key(id)),
            };
            if recovered {
                took[2 * i + 1] = Some(now);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no recovery within 45 s: [http accepting, stored, mqtt accepting, stored] {took:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    took.map(Option::unwrap)
}

/// Run the load, inject `fault` (it returns once the service is back), then measure
/// recovery, stop the load, wait for everything acknowledged to be stored, and count.
async fn under_load<F>(name: &str, private_mariadb: bool, fault: F)
where
    F: AsyncFnOnce(&mut Split, &Load) -> Fault,
{
    let _turn = TURN.lock().await;
    let mut split = Split::start(private_mariadb).await;
    let (load, mut tasks) = split.load();
    split.warmed_up().await;
    tokio::time::sleep(common::random_ms(200, 1_000)).await;
    let fault = fault(&mut split, &load).await;
    let before = [load.http.acked.lock().unwrap().len(), load.mqtt.acked.lock().unwrap().len()];
    let took = recovery(&split, &load, &fault, before).await;
    // The load goes on a moment after recovery, then stops.
    tokio::time::sleep(Duration::from_secs(1)).await;
    load.stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for (n, (source, tenant, metric, tally)) in load.sources().into_iter().enumerate() {
        let sent = tally.sent.load(Ordering::Relaxed);
        if sent == 0 {
            continue;
        }
        let acked = tally.acked();
        // What a lossy fault may have lost: what was acknowledged before it.
        let (may_lose, must_keep) = acked.split_at(if fault.lossy { before.get(n).copied().unwrap_or(0) } else { 0 });
        let stored = loop {
            let stored = split.stored(tenant, metric).await.unwrap_or_default();
            if missing(&acked, &stored) == 0 || Instant::now() > deadline {
                break stored;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (lost, twice) = (missing(must_keep, &stored), stored.values().filter(|n| **n > 1).count());
        let lost_in_fault = match fault.lossy {
            true => format!(
                ", lost with Redis' data {} (of {} acknowledged before)",
                missing(may_lose, &stored),
                may_lose.len()
            ),
            false => String::new(),
        };
        lines.push(format!(
            "{source}: {sent} sent, {} acknowledged ({} refused or cut off), {} stored, lost {lost}, stored twice {twice}{lost_in_fault}",
            acked.len(),
            tally.refused.load(Ordering::Relaxed),
            stored.len()
        ));
        if lost > 0 || twice > 0 {
            failures.push(format!("{source}: {lost} acknowledged points lost, {twice} stored twice"));
        }
        assert!(stored.keys().all(|id| *id < load.next.load(Ordering::Relaxed)), "{name}: a point nobody sent");
    }
    let running = split.all_running();
    let stored_what = if fault.lossy { "a point acknowledged since" } else { "everything acknowledged before" };
    println!(
        "{name}: {}; acknowledged again after http {:.2} s, mqtt {:.2} s; {stored_what} stored after http {:.2} s, mqtt {:.2} s\n  {}",
        fault.what,
        took[0],
        took[2],
        took[1],
        took[3],
        lines.join("\n  ")
    );
    assert!(failures.is_empty(), "{name}: {failures:?}");
    assert!(running, "{name}: a microdash process died");
    for proc in std::iter::once(split.server).chain(split.workers).chain(std::iter::once(split.bridge)) {
        assert!(proc.terminate().success(), "{name}: a microdash process did not stop cleanly");
    }
}

/// A worker is killed with SIGKILL while it holds batches (read from the stream, not yet
/// acknowledged), and a replacement started; the other worker claims what it held after
/// `redis_claim_idle_ms`.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_while_holding_batches_loses_nothing() {
    under_load("worker killed", false, async |split, _| {
        for _ in 0..10 {
            let worker = split.workers.remove(0);
            let pid = worker.child.id();
            // Kill it as soon as it holds something; it may have acknowledged that in between.
            let deadline = Instant::now() + Duration::from_secs(10);
            while split.held_by(pid).await == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            worker.kill_hard();
            let killed = Instant::now();
            let held = split.held_by(pid).await;
            split.workers.push(split.spawn_worker());
            if held > 0 {
                let what = format!("SIGKILL of a worker holding {held} batches");
                return Fault { back: killed, what, lossy: false };
            }
        }
        panic!("no worker was killed while holding a batch in 10 attempts");
    })
    .await;
}

/// Take `service` down (SIGKILL if `crash`, else a clean stop), call `meanwhile`, leave it
/// down for [`OUTAGE`] under the load, and start it again.
async fn outage(service: &mut Service, name: &str, crash: bool, meanwhile: impl FnOnce()) -> Fault {
    match crash {
        true => service.kill_hard(),
        false => service.stop(),
    }
    meanwhile();
    tokio::time::sleep(OUTAGE).await;
    service.start();
    let how = if crash { "SIGKILL of" } else { "clean stop of" };
    let what = format!("{how} {name}, started again {:.1} s later", OUTAGE.as_secs_f64());
    Fault { back: Instant::now(), what, lossy: false }
}

/// Redis is killed with SIGKILL and restarted from its append-only file: the API answers
/// `503` meanwhile (or holds requests until it is back), the workers and the bridge wait,
/// and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_and_restarted_loses_nothing() {
    under_load("Redis killed", false, async |split, _| outage(&mut split.redis, "Redis", true, || {}).await).await;
}

/// MariaDB (a server of the test's own) is killed with SIGKILL and restarted: workers hold
/// their batches and retry, and store them once it is back; the pools let go of their dead
/// connections. Meanwhile a publisher of another tenant starts: the bridge cannot look that
/// tenant up, and holds its messages rather than dropping them.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_killed_and_restarted_loses_nothing() {
    under_load("MariaDB killed", true, async |split, load| {
        let late = || load.late_start.store(true, Ordering::Relaxed);
        outage(split.mariadb.as_mut().unwrap(), "MariaDB", true, late).await
    })
    .await;
}

/// Mosquitto is stopped and started again: publishers reconnect, and the bridge resumes its
/// persistent session, in which the broker kept what it had acknowledged and not delivered.
/// (A stop, not SIGKILL: Mosquitto writes its persistence file at intervals and when it
/// stops, so a crash loses what it acknowledged since; that is the broker's own guarantee.)
#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_restarted_loses_nothing() {
    under_load("Mosquitto restarted", false, async |split, _| {
        outage(&mut split.mosquitto, "Mosquitto", false, || {}).await
    })
    .await;
}

/// Redis is killed and comes back without its data, as an unpersisted Redis does: what it
/// held is lost (the README says to run it with `appendonly`), but ingest must recover: the
/// workers find their consumer group gone and create it again, and everything acknowledged
/// after the restart is stored.
#[tokio::test(flavor = "multi_thread")]
async fn redis_back_without_its_data_loses_only_what_it_held() {
    under_load("Redis back empty", false, async |split, _| {
        split.redis.kill_hard();
        std::fs::remove_dir_all(split.redis.dir().join("appendonlydir")).unwrap();
        tokio::time::sleep(OUTAGE).await;
        split.redis.start();
        let what = format!("SIGKILL of Redis, started again without its data {:.1} s later", OUTAGE.as_secs_f64());
        Fault { back: Instant::now(), what, lossy: true }
    })
    .await;
}
