//! Shared set-up for the ingestion tests: a real store, a queue, workers, and the router.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use microdash_alert::deliver::{Deliverer, DeliveryConfig};
use microdash_core::Limits;
use microdash_ingest::alerting::AlertingConfig;
use microdash_ingest::http::HttpConfig;
use microdash_ingest::mqtt::broker::{Broker, BrokerConfig};
use microdash_ingest::queue::{MemoryQueue, Queue};
use microdash_ingest::quota::QuotaConfig;
use microdash_ingest::revocation::RevocationConfig;
use microdash_ingest::worker::WorkerConfig;
use microdash_ingest::{Runtime, Workers};
use microdash_store::testing::TestDb;
use microdash_store::{Backend, Store};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub struct App {
    pub runtime: Runtime,
    pub store: Store,
    pub queue: Queue,
    pub shutdown: CancellationToken,
    pub workers: Option<Workers>,
    router: Router,
    _db: TestDb,
}

pub struct Tenant {
    pub id: i64,
    pub token: String,
}

/// Fast heartbeats, so stream tests see them.
pub fn test_http() -> HttpConfig {
    HttpConfig { sse_heartbeat: Duration::from_millis(200), ..HttpConfig::default() }
}

/// Workers that notice new work and retry at once.
pub fn test_workers() -> WorkerConfig {
    WorkerConfig {
        receive_wait: Duration::from_millis(20),
        retry_initial_delay: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(50),
        ..WorkerConfig::default()
    }
}

/// Alerting that ticks fast and hands over quickly, delivering with short timeouts.
pub fn test_alerting() -> AlertingConfig {
    let delivery = DeliveryConfig { timeout: Duration::from_secs(2), ..DeliveryConfig::default() };
    AlertingConfig {
        tick: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(2),
        ..AlertingConfig::new(Deliverer::new(delivery).unwrap())
    }
}

impl App {
    /// SQLite store, in-process queue, workers running.
    pub async fn start() -> App {
        Self::start_with_http(test_http()).await
    }

    /// As [`App::start`], with other HTTP settings.
    pub async fn start_with_http(http: HttpConfig) -> App {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let queue = Queue::Memory(MemoryQueue::new(100_000, Duration::from_secs(1)));
        Self::assemble_with(db, store, queue, Limits::default(), true, http)
    }

    pub async fn build(limits: Limits, queue: MemoryQueue, with_workers: bool) -> App {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let queue = Queue::Memory(queue);
        Self::assemble(db, store, queue, limits, with_workers)
    }

    pub fn assemble(db: TestDb, store: Store, queue: Queue, limits: Limits, with_workers: bool) -> App {
        Self::assemble_with(db, store, queue, limits, with_workers, test_http())
    }

    /// The runtime the binary builds, minus retention (tests that seed old points keep them)
    /// and alerting.
    pub fn assemble_with(
        db: TestDb,
        store: Store,
        queue: Queue,
        limits: Limits,
        with_workers: bool,
        http: HttpConfig,
    ) -> App {
        Self::assemble_full(
            db,
            store,
            queue,
            limits,
            with_workers,
            http,
            None,
            RevocationConfig::default(),
            QuotaConfig::default(),
        )
    }

    /// On `backend`, with these HTTP and revocation settings (in-process queue, workers).
    pub async fn start_on(backend: Backend, http: HttpConfig, revocation: RevocationConfig) -> App {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let queue = Queue::Memory(MemoryQueue::new(100_000, Duration::from_secs(1)));
        Self::assemble_full(db, store, queue, Limits::default(), true, http, None, revocation, QuotaConfig::default())
    }

    /// On `store` and `queue` (Redis, say), with these settings: another process of a
    /// deployment. `db` is kept only to be dropped with the app.
    pub fn on(db: TestDb, store: Store, queue: Queue, with_workers: bool, revocation: RevocationConfig) -> App {
        Self::assemble_full(
            db,
            store,
            queue,
            Limits::default(),
            with_workers,
            test_http(),
            None,
            revocation,
            QuotaConfig::default(),
        )
    }

    /// SQLite store, in-process queue, workers, and these limits and quotas.
    pub async fn start_with_quotas(limits: Limits, quotas: QuotaConfig) -> App {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        Self::with_quotas(db, store, limits, quotas)
    }

    /// An in-process queue and workers on `store`, with these limits and quotas: one
    /// process of a deployment whose processes share the database.
    pub fn with_quotas(db: TestDb, store: Store, limits: Limits, quotas: QuotaConfig) -> App {
        let queue = Queue::Memory(MemoryQueue::new(100_000, Duration::from_secs(1)));
        Self::assemble_full(db, store, queue, limits, true, test_http(), None, RevocationConfig::default(), quotas)
    }

    /// SQLite store, in-process queue, workers and alerting with a fast tick.
    pub async fn start_with_alerting() -> App {
        Self::start_with_alerting_on(Backend::Sqlite).await
    }

    /// As [`App::start_with_alerting`], on `backend`.
    pub async fn start_with_alerting_on(backend: Backend) -> App {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        Self::with_alerting(db, store)
    }

    /// Alerting on `store` with a fresh in-process queue.
    pub fn with_alerting(db: TestDb, store: Store) -> App {
        Self::with_alerting_config(db, store, test_alerting())
    }

    /// As [`App::with_alerting`], with other alerting settings.
    pub fn with_alerting_config(db: TestDb, store: Store, alerting: AlertingConfig) -> App {
        let queue = Queue::Memory(MemoryQueue::new(100_000, Duration::from_secs(1)));
        Self::assemble_full(
            db,
            store,
            queue,
            Limits::default(),
            true,
            test_http(),
            Some(alerting),
            RevocationConfig::default(),
            QuotaConfig::default(),
        )
    }

    /// Stop everything, then start again on the same database: what a restart is.
    pub async fn restart(mut self) -> App {
        self.shutdown.cancel();
        self.runtime.close_streams();
        if let Some(workers) = self.workers.take() {
            workers.drain().await;
        }
        let App { store, _db: db, .. } = self;
        Self::with_alerting(db, store)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble_full(
        db: TestDb,
        store: Store,
        queue: Queue,
        limits: Limits,
        with_workers: bool,
        http: HttpConfig,
        alerting: Option<AlertingConfig>,
        revocation: RevocationConfig,
        quotas: QuotaConfig,
    ) -> App {
        let runtime = Runtime::builder(store.clone(), queue.clone())
            .limits(limits)
            .quotas(quotas)
            .http(http)
            .workers(test_workers())
            .retention(None)
            .alerting(alerting)
            .revocation(revocation)
            .build();
        let shutdown = CancellationToken::new();
        let workers = with_workers.then(|| runtime.spawn_workers(&shutdown));
        let router = runtime.router();
        App { runtime, store, queue, shutdown, workers, router, _db: db }
    }

    pub async fn tenant(&self, slug: &str, scopes: &str) -> Tenant {
        let t = self.store.create_tenant(slug, "", 0).await.unwrap();
        let (_, token) = self.store.create_token(Some(t.id), scopes.parse().unwrap(), "test", 0).await.unwrap();
        Tenant { id: t.id, token }
    }

    /// Serve the embedded MQTT endpoint on a free port until the app stops; its `tcp://` URL.
    pub async fn mqtt_endpoint(&self) -> String {
        self.mqtt_endpoint_with(BrokerConfig::new("127.0.0.1:0")).await
    }

    /// As [`App::mqtt_endpoint`], with these settings (listening where they say).
    pub async fn mqtt_endpoint_with(&self, config: BrokerConfig) -> String {
        let broker = Broker::bind(config).await.unwrap();
        let url = format!("tcp://{}", broker.local_addr().unwrap());
        let (runtime, shutdown) = (self.runtime.clone(), self.shutdown.clone());
        tokio::spawn(async move { runtime.run_endpoint(broker, shutdown).await });
        url
    }

    pub async fn admin_token(&self) -> String {
        self.store.create_token(None, "admin".parse().unwrap(), "admin", 0).await.unwrap().1
    }

    /// Send a request; returns status, headers and the JSON body (Null when not JSON).
    pub async fn call(&self, method: &str, uri: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.map(|b| Body::from(b.to_owned())).unwrap_or_else(Body::empty)).unwrap();
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Reply { status, headers, json, text }
    }

    /// Send a request and return only the status (for streams, which never end).
    pub async fn send_head(&self, req: Request<Body>) -> StatusCode {
        self.router.clone().oneshot(req).await.unwrap().status()
    }

    /// Poll the query API until `want` points match, or fail after five seconds.
    pub async fn wait_for_points(&self, token: &str, query: &str, want: usize) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let reply = self.call("GET", &format!("/api/v1/metrics?{query}"), Some(token), None).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            if reply.json["count"] == want {
                return reply.json;
            }
            assert!(Instant::now() < deadline, "expected {want} points for {query}, have {}", reply.json["count"]);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.runtime.close_streams();
        match self.workers.take() {
            Some(workers) => workers.drain().await,
            None => self.queue.close(),
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: serde_json::Value,
    pub text: String,
}

impl App {
    /// Open a live stream; returns the status and, on `200`, a reader of its events.
    pub async fn open_stream(
        &self,
        uri: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> (StatusCode, Option<SseReader>) {
        let mut req = Request::builder().method("GET").uri(uri);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        open_stream_on(&self.router, req.body(Body::empty()).unwrap()).await
    }

    /// Open a live stream with a request of the caller's making (a cookie, say).
    pub async fn open_stream_request(&self, req: Request<Body>) -> (StatusCode, Option<SseReader>) {
        open_stream_on(&self.router, req).await
    }

    /// The value of the `/metrics` line that starts with `series` (a name and its labels),
    /// 0 when there is none yet.
    pub async fn counter(&self, series: &str) -> f64 {
        let text = self.call("GET", "/metrics", None, None).await.text;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// The current value of one unlabelled series in `/metrics`.
    pub async fn gauge(&self, name: &str) -> f64 {
        let text = self.call("GET", "/metrics", None, None).await.text;
        let line =
            text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name} in {text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// Open a live stream on `router`; the status and, on `200`, a reader of its events.
pub async fn open_stream_on(router: &Router, req: Request<Body>) -> (StatusCode, Option<SseReader>) {
    let response = router.clone().oneshot(req).await.unwrap();
    let status = response.status();
    if status != StatusCode::OK {
        return (status, None);
    }
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    (status, Some(SseReader { body: response.into_body(), buf: String::new() }))
}

/// One Server-Sent Event, or a comment (heartbeat) when `comment` is set.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
    pub comment: bool,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap()
    }

    /// Values of a `points` event.
    pub fn values(&self) -> Vec<f64> {
        assert_eq!(self.event.as_deref(), Some("points"), "{self:?}");
        self.json()["points"].as_array().unwrap().iter().map(|p| p["value"].as_f64().unwrap()).collect()
    }
}

pub struct SseReader {
    body: Body,
    buf: String,
}

impl SseReader {
    /// The next event or comment, failing after `wait`.
    pub async fn next(&mut self, wait: Duration) -> SseEvent {
        tokio::time::timeout(wait, self.next_inner()).await.expect("no stream event in time")
    }

    async fn next_inner(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    if line.starts_with(':') {
                        event.comment = true;
                    } else if let Some((field, value)) = line.split_once(':') {
                        let value = value.strip_prefix(' ').unwrap_or(value);
                        match field {
                            "event" => event.event = Some(value.to_owned()),
                            "id" => event.id = Some(value.to_owned()),
                            "data" => data.push(value.to_owned()),
                            _ => {}
                        }
                    }
                }
                event.data = data.join("\n");
                return event;
            }
            let frame = self.body.frame().await.expect("stream ended").unwrap();
            if let Ok(bytes) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
    }

    /// Wait for the server to end the stream, skipping whatever it still sends.
    pub async fn ended(&mut self, wait: Duration) {
        tokio::time::timeout(wait, async {
            while let Some(frame) = self.body.frame().await {
                frame.unwrap();
            }
        })
        .await
        .expect("the stream stayed open");
    }

    /// The next event that is not a heartbeat.
    pub async fn next_event(&mut self, wait: Duration) -> SseEvent {
        loop {
            let event = self.next(wait).await;
            if !event.comment {
                return event;
            }
        }
    }

    /// Values from `points` events until `n` have arrived; returns them and the last id.
    pub async fn values(&mut self, n: usize, wait: Duration) -> (Vec<f64>, String) {
        let mut values = Vec::new();
        let mut id = String::new();
        while values.len() < n {
            let event = self.next_event(wait).await;
            values.extend(event.values());
            id = event.id.unwrap();
        }
        (values, id)
    }
}

/// Sign in through the API.
pub async fn sign_in(app: &App, username: &str, password: &str) -> Reply {
    let body = format!(r#"{{"username":"{username}","password":"{password}"}}"#);
    app.call("POST", "/api/v1/session", None, Some(&body)).await
}

/// The `name=value` part of the Set-Cookie header.
pub fn session_cookie(reply: &Reply) -> String {
    let set = reply.headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// A request carrying the session cookie `cookie` (beside another cookie).
pub async fn with_cookie(app: &App, method: &str, uri: &str, cookie: &str, body: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri).header("cookie", format!("theme=dark; {cookie}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    app.send(req.body(body.map(|b| Body::from(b.to_owned())).unwrap_or_else(Body::empty)).unwrap()).await
}
