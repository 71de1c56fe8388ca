//! The real server for the client's tests, and a proxy in front of it that can fail on
//! purpose (refuse a request, lose an answer, cut open streams, switch servers).
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use microdash_client::{Client, MetricsQuery};
use microdash_ingest::Runtime;
use microdash_ingest::Workers;
use microdash_ingest::http::HttpConfig;
use microdash_ingest::queue::{MemoryQueue, Queue};
use microdash_ingest::worker::WorkerConfig;
use microdash_store::testing::TestDb;
use microdash_store::{Backend, Store};
use tokio_util::sync::CancellationToken;

/// A microdash server on 127.0.0.1: SQLite, the in-process queue, workers, no retention.
pub struct Server {
    pub url: String,
    pub store: Store,
    pub runtime: Runtime,
    serving: CancellationToken,
    workers: Option<Workers>,
    _db: Option<TestDb>,
}

pub struct Tenant {
    pub id: i64,
    pub slug: String,
    pub token: String,
}

impl Server {
    pub async fn start() -> Server {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = db.store().await;
        let mut server = Self::start_on(store).await;
        server._db = Some(db);
        server
    }

    /// Another server process on the same database: what a restarted server is to a
    /// client (its live stream's positions mean nothing here).
    pub async fn start_on(store: Store) -> Server {
        let queue = Queue::Memory(MemoryQueue::new(100_000, Duration::from_secs(1)));
        let http = HttpConfig { sse_heartbeat: Duration::from_millis(200), ..HttpConfig::default() };
        let workers = WorkerConfig {
            receive_wait: Duration::from_millis(20),
            retry_initial_delay: Duration::from_millis(5),
            retry_max_delay: Duration::from_millis(50),
            ..WorkerConfig::default()
        };
        let runtime = Runtime::builder(store.clone(), queue).http(http).workers(workers).retention(None).build();
        let workers = runtime.spawn_workers(&CancellationToken::new());
        let serving = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (served, stop) = (runtime.clone(), serving.clone());
        tokio::spawn(async move { served.serve(listener, stop).await });
        Server { url, store, runtime, serving, workers: Some(workers), _db: None }
    }

    /// A tenant with a token of the scopes `ingest,read,alerts`.
    pub async fn tenant(&self, slug: &str) -> Tenant {
        let tenant = self.store.create_tenant(slug, "", 0).await.unwrap();
        let (_, token) =
            self.store.create_token(Some(tenant.id), "ingest,read,alerts".parse().unwrap(), "test", 0).await.unwrap();
        Tenant { id: tenant.id, slug: slug.to_owned(), token }
    }

    pub async fn admin_token(&self) -> String {
        self.store.create_token(None, "admin".parse().unwrap(), "admin", 0).await.unwrap().1
    }

    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.url, token).unwrap()
    }

    /// Wait until the workers stored everything accepted so far; the API keeps serving,
    /// but takes no more metrics.
    pub async fn drain_workers(&mut self) {
        if let Some(workers) = self.workers.take() {
            workers.drain().await;
        }
    }

    pub async fn stop(mut self) {
        self.serving.cancel();
        self.drain_workers().await;
    }
}

/// Poll `probe` until it answers `Some`, failing after `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until `query` counts `want` points.
pub async fn wait_for_count(client: &Client, query: &MetricsQuery, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = client.query(query).await.unwrap().count;
        if count == want {
            return;
        }
        assert!(Instant::now() < deadline, "expected {want} points for {query:?}, have {count}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Now, Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A query for one metric, with room for every point the tests push.
pub fn metric(name: &str) -> MetricsQuery {
    MetricsQuery { metric_name: Some(name.into()), limit: Some(100_000), ..MetricsQuery::default() }
}

/// Which way the proxy fails the next request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer this status (with `Retry-After` seconds) without forwarding.
    Refuse { status: u16, retry_after: Option<u64> },
    /// Forward (the server acts on it), then answer this status instead of the server's:
    /// an answer lost on the way back.
    LoseAnswer { status: u16, retry_after: Option<u64> },
}

/// An HTTP proxy to a server.
pub struct Proxy {
    pub url: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: Mutex<String>,
    faults: Mutex<VecDeque<Fault>>,
    /// Cancelled to end every response body in flight.
    cut: Mutex<CancellationToken>,
    http: reqwest::Client,
    requests: AtomicU64,
    /// `Last-Event-ID` of each stream request (empty when it had none).
    last_event_ids: Mutex<Vec<String>>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let state = Arc::new(ProxyState {
            upstream: Mutex::new(upstream.to_owned()),
            faults: Mutex::new(VecDeque::new()),
            cut: Mutex::new(CancellationToken::new()),
            http: Client::default_http().unwrap(),
            requests: AtomicU64::new(0),
            last_event_ids: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new().fallback(forward).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy { url, state }
    }

    /// Fail the next request (after any faults already queued).
    pub fn inject(&self, fault: Fault) {
        self.state.faults.lock().unwrap().push_back(fault);
    }

    /// End every response in flight, live streams included, as a dropped connection would.
    pub fn cut(&self) {
        let old = std::mem::replace(&mut *self.state.cut.lock().unwrap(), CancellationToken::new());
        old.cancel();
    }

    /// Forward to another server from now on.
    pub fn switch_to(&self, upstream: &str) {
        *self.state.upstream.lock().unwrap() = upstream.to_owned();
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn last_event_ids(&self) -> Vec<String> {
        self.state.last_event_ids.lock().unwrap().clone()
    }
}

fn fault_response(status: u16, retry_after: Option<u64>) -> Response {
    let body = r#"{"error":"unavailable","message":"injected by the test proxy"}"#;
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(seconds) = retry_after {
        response.headers_mut().insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let fault = state.faults.lock().unwrap().pop_front();
    if let Some(Fault::Refuse { status, retry_after }) = fault {
        return fault_response(status, retry_after);
    }
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    if path.starts_with("/api/v1/stream/") && !path.contains("/latest") {
        let id = parts.headers.get("last-event-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
        state.last_event_ids.lock().unwrap().push(id.to_owned());
    }
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut headers = parts.headers.clone();
    strip_hop_headers(&mut headers);
    let upstream = state.upstream.lock().unwrap().clone();
    let sent = state
        .http
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .timeout(Duration::from_secs(3600))
        .send()
        .await;
    let upstream_response = match sent {
        Ok(response) => response,
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    if let Some(Fault::LoseAnswer { status, retry_after }) = fault {
        // Read the whole answer, so the server has finished acting on the request.
        let _ = upstream_response.bytes().await;
        return fault_response(status, retry_after);
    }
    let status = upstream_response.status();
    let mut headers = upstream_response.headers().clone();
    strip_hop_headers(&mut headers);
    let cut = state.cut.lock().unwrap().clone();
    let body = upstream_response.bytes_stream().take_until(cut.cancelled_owned());
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn strip_hop_headers(headers: &mut HeaderMap) {
    for name in ["host", "content-length", "transfer-encoding", "connection"] {
        headers.remove(name);
    }
}
