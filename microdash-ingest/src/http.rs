//! The HTTP surface: the axum app that [`crate::Runtime::router`] hands out and
//! [`crate::Runtime::serve`] runs.
//!
//! Layers, outermost first: status counting, request id, tracing, panic catcher, timeout,
//! and on the API a body limit that refuses a declared `Content-Length` over it before
//! reading anything. Each request is handled in a `request` span holding its id (answered as
//! `x-request-id`), method, path and, once authenticated, tenant id, so its log lines can be
//! found by the id. Under the router, `conn` owns the connections: their deadlines, their
//! caps and the graceful shutdown. Authentication is the [`auth::Auth`] extractor, so a
//! handler that takes it cannot forget it; handlers then check the scope they need.

pub(crate) mod admin;
pub(crate) mod alerts;
pub mod auth;
pub(crate) mod catalog;
mod conn;
mod error;
mod extract;
pub(crate) mod fleet;
mod layout;
pub(crate) mod metrics;
pub(crate) mod ops;
mod session;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, patch, post, put};
use microdash_store::Store;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use self::error::ApiError;
pub(crate) use self::extract::{ApiJson, ApiQuery};
use crate::ingestor::Ingestor;
use crate::live::LiveHub;
use crate::queue::Queue;
use crate::revocation::{Holds, Revoker};
use crate::telemetry::Telemetry;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Requests running longer than this are answered `408`.
    pub request_timeout: Duration,
    /// Default number of points a query returns.
    pub default_query_limit: usize,
    /// Most points a query may return.
    pub max_query_limit: usize,
    /// Idle live streams get a comment line this often, so proxies keep them open.
    pub sse_heartbeat: Duration,
    /// Longest `wait_ms` a poll of the stream's fallback may ask for.
    pub max_poll_wait: Duration,
    /// How long a dashboard sign-in lasts.
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (set when the dashboard is served over HTTPS).
    pub secure_cookies: bool,
    /// Directory of the built dashboard (`index.html`, wasm, CSS), served at `/`.
    pub web_dir: Option<PathBuf>,
    /// What tenants keep unless they set their own: queries choose resolutions by it, and
    /// tenant listings show it.
    pub retention: microdash_core::rollup::Retention,
    /// Origins (`https://dash.example.com`) the dashboard is also served under, beside the
    /// `Host` a request was sent to: a reverse proxy's public URL. Cookie-authenticated
    /// requests that change something are refused from any other origin.
    pub allowed_origins: Vec<String>,
    /// How many sign-in attempts a username and a client address get per window.
    pub sign_in: SignInLimits,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For` names the client;
    /// the address of any other peer is the client's own.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Longest a client may take to send a request's head (request line and headers), from
    /// its first byte, or from the connection's opening for its first request. Slower
    /// connections are closed.
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may wait for its next request, and a client may go
    /// without reading any of an answer, before the connection is closed.
    pub idle_timeout: Duration,
    /// Most open connections; never more than three quarters of the open-file limit. At the
    /// cap a new connection takes the place of the one that has waited longest with no
    /// request in flight; a few more serve only `/livez`, `/api/v1/health`, `/metrics`
    /// and the token API.
    pub max_connections: usize,
    /// Most open connections from one client address.
    pub max_connections_per_ip: usize,
    /// Most live streams and waiting long polls one token (or one sign-in) may hold open in
    /// this process; more get `429`.
    pub max_streams_per_token: usize,
    /// Most live streams and waiting long polls on one tenant in this process; more get `429`.
    pub max_streams_per_tenant: usize,
    /// Where programs send metrics besides the HTTP API (`GET /api/v1/connect`), for the
    /// dashboard's ready-to-run snippets.
    pub connect: microdash_core::api::ConnectInfo,
}

/// Sign-in attempts allowed per window, counted in the database before the password is
/// checked (see `microdash_store::Store::count_sign_in_attempt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInLimits {
    /// Attempts per username; a right password starts its count again.
    pub attempts_per_user: u32,
    /// Attempts per client address (IPv6: per /64 network); right passwords do not count,
    /// so people behind one address do not lock each other out.
    pub attempts_per_address: u32,
    /// How long a window lasts, from the first attempt after the previous one ended.
    pub window: Duration,
}

/// Parse a comma-separated list of addresses (`10.0.0.1`, `::1`) and networks
/// (`10.0.0.0/8`), as `trusted_proxies` is given.
pub fn parse_networks(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("{item:?} is neither an address nor a network (10.0.0.0/8)"))
        })
        .collect()
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self { attempts_per_user: 5, attempts_per_address: 20, window: Duration::from_secs(15 * 60) }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            default_query_limit: 1_000,
            max_query_limit: 100_000,
            sse_heartbeat: Duration::from_secs(15),
            max_poll_wait: Duration::from_secs(25),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: false,
            web_dir: None,
            retention: Default::default(),
            allowed_origins: Vec::new(),
            sign_in: SignInLimits::default(),
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 8_192,
            max_connections_per_ip: 1_024,
            max_streams_per_token: 16,
            max_streams_per_tenant: 256,
            connect: Default::default(),
        }
    }
}

/// Everything handlers need. Cheap to clone. Built only by [`crate::Runtime`], which keeps
/// the rules of how its parts fit together.
#[derive(Clone)]
pub(crate) struct AppState {
    /// Storage, for queries, auth and admin.
    pub(crate) store: Store,
    /// The queue behind the ingestor, for health and depth.
    pub(crate) queue: Queue,
    /// Validation and enqueueing.
    pub(crate) ingestor: Ingestor,
    /// Counters for `/metrics`.
    pub(crate) telemetry: Arc<Telemetry>,
    /// The live feeds that streams follow.
    pub(crate) live: Arc<LiveHub>,
    /// HTTP settings.
    pub(crate) config: Arc<HttpConfig>,
    token_usage: Arc<auth::TokenUsage>,
    /// When expired sign-in counters were last swept (Unix ms), so it happens once a minute.
    sign_in_sweep: Arc<std::sync::atomic::AtomicI64>,
    /// The credentials of this process's open streams, polls and MQTT connections.
    pub(crate) holds: Arc<Holds>,
    /// Open streams and waiting polls, per caller and per tenant, for their caps.
    pub(crate) streams: Arc<stream::StreamCounts>,
    /// Cancelled when the server shuts down, to end the streams that would otherwise hold
    /// the graceful shutdown open forever.
    pub(crate) streams_stop: CancellationToken,
    /// The MCP endpoint's settings, when `/mcp` is served.
    #[cfg(feature = "mcp")]
    pub(crate) mcp: Option<Arc<crate::mcp::McpConfig>>,
}

impl AppState {
    /// Assemble the state; the ingestor must feed `queue`, and the workers must publish
    /// what they persist to `live` (directly or through [`crate::live::relay_from_redis`]).
    pub(crate) fn new(
        store: Store,
        queue: Queue,
        ingestor: Ingestor,
        telemetry: Arc<Telemetry>,
        live: Arc<LiveHub>,
        config: HttpConfig,
        holds: Arc<Holds>,
    ) -> Self {
        Self {
            store,
            queue,
            ingestor,
            telemetry,
            live,
            config: Arc::new(config),
            token_usage: Arc::default(),
            sign_in_sweep: Arc::default(),
            holds,
            streams: Arc::default(),
            streams_stop: CancellationToken::new(),
            #[cfg(feature = "mcp")]
            mcp: None,
        }
    }

    /// End every open stream.
    pub(crate) fn close_streams(&self) {
        self.streams_stop.cancel();
    }

    /// Revokes credentials, ending their connections here and (through Redis) elsewhere.
    pub(crate) fn revoker(&self) -> Revoker {
        Revoker::with_holds(self.holds.clone())
    }
}

/// The complete application.
pub(crate) fn router(state: AppState) -> Router {
    let body_limit = state.ingestor.limits().max_body_bytes;
    #[allow(unused_mut)]
    let mut api = ops_routes();
    #[cfg(feature = "mcp")]
    if let Some(mcp) = &state.mcp {
        api = api.merge(crate::mcp::http::routes(&state, mcp));
    }
    let api = api
        .route("/api/v1/metrics", get(metrics::query).post(metrics::ingest))
        .route("/api/v1/agents", get(catalog::agents))
        .route("/api/v1/series", get(catalog::series))
        .route("/api/v1/fleet", get(fleet::fleet))
        .route("/api/v1/layout", get(layout::get_layout).put(layout::put_layout))
        .route("/api/v1/users", get(admin::list_users).post(admin::create_user))
        .route("/api/v1/users/{username}", delete(admin::delete_user))
        .route("/api/v1/connect", get(admin::connect))
        .route("/api/v1/stream/{tenant}", get(stream::stream))
        .route("/api/v1/stream/{tenant}/latest", get(stream::latest))
        .route("/api/v1/session", get(session::current).post(session::sign_in).delete(session::sign_out))
        .route("/api/v1/whoami", get(admin::whoami))
        .route("/api/v1/tenants", get(admin::list_tenants).post(admin::create_tenant))
        .route("/api/v1/tenants/{slug}", patch(admin::update_tenant))
        .route("/api/v1/tokens", get(admin::list_tokens).post(admin::create_token))
        .route("/api/v1/tokens/{id}", delete(admin::revoke_token))
        .route("/api/v1/alert-rules", get(alerts::list_rules).post(alerts::create_rule))
        .route("/api/v1/alert-rules/{id}", get(alerts::get_rule).put(alerts::update_rule).delete(alerts::delete_rule))
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route("/api/v1/alerts/history", get(alerts::history))
        .route("/api/v1/channels", get(alerts::list_channels).post(alerts::create_channel))
        .route("/api/v1/channels/{id}", put(alerts::update_channel).delete(alerts::delete_channel))
        .route("/api/v1/channels/{id}/test", post(alerts::test_channel))
        .route("/api/v1/notifications", get(alerts::notifications))
        // The original admin paths, kept for existing scripts.
        .route("/api/v1/admin/tenants", get(admin::list_tenants).post(admin::create_tenant))
        .route("/api/v1/admin/tokens", get(admin::list_tokens).post(admin::create_token))
        .route("/api/v1/admin/tokens/{id}", delete(admin::revoke_token))
        .route("/api/{*path}", any(ops::not_found))
        .layer(middleware::from_fn_with_state(state.clone(), refuse_declared_oversize))
        .layer(DefaultBodyLimit::max(body_limit))
        .fallback_service(dashboard(state.config.web_dir.as_deref()));
    api.layer(
        tower::ServiceBuilder::new()
            .layer(middleware::from_fn_with_state(state.clone(), count_status))
            // On every answer: no content-type sniffing, no framing (for browsers without
            // `frame-ancestors`), and no URL leaking to other sites through `Referer`.
            .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF))
            .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ))
            .layer(SetRequestIdLayer::x_request_id(CountingRequestId::default()))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(TraceLayer::new_for_http().make_span_with(request_span))
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, state.config.request_timeout)),
    )
    .with_state(state)
}

/// Serve `router(state)` on `listener` until `shutdown` resolves, then end the streams and
/// finish in-flight requests (for up to the drain period).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let streams_stop = state.streams_stop.clone();
    let shutdown = async move {
        shutdown.await;
        // Streams never end by themselves: end them so their connections can drain.
        streams_stop.cancel();
    };
    let (config, telemetry) = (state.config.clone(), state.telemetry.clone());
    conn::serve(listener, router(state), &config, telemetry, shutdown).await
}

/// Serve `ops_router(state)` on `listener`, with the same connection limits, until `shutdown`.
pub(crate) async fn serve_ops(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (config, telemetry) = (state.config.clone(), state.telemetry.clone());
    conn::serve(listener, ops_router(state), &config, telemetry, shutdown).await
}

/// Only the operational endpoints (`/livez`, `/api/v1/health`, `/metrics`), for processes
/// that run workers or a bridge without the API.
pub(crate) fn ops_router(state: AppState) -> Router {
    ops_routes().fallback(ops::not_found).with_state(state)
}

/// The dashboard's static files, with gzip-precompressed variants where the build made them.
/// Browsers revalidate (`no-cache`) so a new build is picked up at once.
fn dashboard(web_dir: Option<&Path>) -> Router {
    let Some(dir) = web_dir.filter(|dir| dir.join("index.html").is_file()) else {
        if let Some(dir) = web_dir {
            tracing::warn!(dir = %dir.display(), "no dashboard build found; run scripts/build-web.sh");
        }
        return Router::new().fallback(ops::dashboard_missing);
    };
    let files = ServeDir::new(dir).precompressed_gzip().not_found_service(any(ops::not_found));
    Router::new()
        .fallback_service(files)
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DASHBOARD_CSP),
        ))
}

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// The dashboard's Content-Security-Policy: its own scripts, styles and wasm only
/// (`wasm-unsafe-eval` compiles the app's module; no `unsafe-eval`, no inline script),
/// inline `style` attributes only (chart sizes and series colours; no `<style>` elements),
/// requests to this origin only, and no framing by anyone (clickjacking).
const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
    style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Health, liveness and Prometheus metrics: what every process serves.
fn ops_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(ops::health))
        .route("/livez", get(ops::livez))
        .route("/metrics", get(ops::prometheus))
}

/// `413` for a request whose declared `Content-Length` is over `max_body_bytes`, before a
/// byte of its body is read: holding the connection while the body trickles in would only
/// end in the same answer (the body limit still counts what arrives without a declared length).
async fn refuse_declared_oversize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let max = state.ingestor.limits().max_body_bytes;
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return ApiError::payload_too_large(max).into_response();
    }
    next.run(request).await
}

async fn count_status(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    state.telemetry.record_http(response.status().as_u16());
    response
}

/// The span a request is handled in: its id (the `x-request-id` it is answered with, set
/// by the layer outside this one), method and path (not the query string, which is not ours
/// to log), and the tenant once [`auth::Auth`] knows it. Every line logged while handling the
/// request carries these, so the id a client reports finds them.
fn request_span(request: &Request) -> tracing::Span {
    let id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("");
    tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        tenant_id = tracing::field::Empty,
    )
}

/// Request ids unique within the process: the process id plus a counter, cheaper
/// than UUIDs and just as good for correlating one server's logs.
#[derive(Clone, Default)]
struct CountingRequestId {
    next: Arc<AtomicU64>,
}

impl MakeRequestId for CountingRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:x}-{n}", std::process::id())).ok().map(RequestId::new)
    }
}
