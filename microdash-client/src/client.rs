//! [`Client`] and its [`ClientBuilder`]: the connection (TLS, timeouts, the token), retries
//! with backoff, and the plain endpoints: push, query, the catalog (agents, series), the
//! polling fallback of the stream, and health. Administration, alerting and the live
//! stream are in their own modules as further `impl Client` blocks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use microdash_core::api::{
    Accepted, AgentOut, ErrorBody, HealthResponse, LatestResponse, MetricIn, MetricsQuery, QueryResponse, SeriesOut,
    StreamQuery,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::query::RangeQuery;
use crate::stream::StreamSettings;

/// How long one request may take unless [`ClientBuilder::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long establishing a connection may take unless [`ClientBuilder::connect_timeout`]
/// says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a failed request is tried again unless [`ClientBuilder::retries`] says
/// otherwise.
pub const DEFAULT_RETRIES: u32 = 2;
/// The longest `Retry-After` honoured; a server asking for more is retried after this.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Settings for a [`Client`]; every one has a default. Made by [`Client::builder`].
///
/// ```no_run
/// # fn demo() -> Result<(), microdash_client::Error> {
/// use std::time::Duration;
/// let client = microdash_client::Client::builder("https://metrics.example.com")
///     .token(std::env::var("MICRODASH_TOKEN").unwrap_or_default())
///     .timeout(Duration::from_secs(10))
///     .retries(5)
///     .user_agent("billing-service/1.4")
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build`"]
pub struct ClientBuilder {
    base_url: String,
    token: Option<String>,
    tenant: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    retries: u32,
    user_agent: Option<String>,
    http: Option<reqwest::Client>,
    stream: StreamSettings,
}

impl fmt::Debug for ClientBuilder {
    // Hand-written so that the token never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_deref().map_or_else(|| "none".to_owned(), redact))
            .field("tenant", &self.tenant)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .field("user_agent", &self.user_agent)
            .field("http_client", &self.http.is_some())
            .field("stream", &self.stream)
            .finish()
    }
}

impl ClientBuilder {
    /// The bearer token sent with every request (`mdk_...`). Without one only
    /// [`Client::health`] works.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Act on this tenant: see [`Client::for_tenant`].
    pub fn tenant(mut self, slug: impl Into<String>) -> Self {
        self.tenant = Some(slug.into());
        self
    }

    /// How long one request may take, from connecting to the end of its answer (default
    /// [`DEFAULT_TIMEOUT`]). The live stream is exempt; long polls get their wait on top.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long establishing a connection may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    /// Not applied to a client given with [`ClientBuilder::http_client`], which has its own.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How many times a failed request is tried again (default [`DEFAULT_RETRIES`]; 0 turns
    /// retries off). Retried are failures that may pass ([`Error::is_retryable`]: no
    /// connection, a timeout, `503`, `429`) of requests that are safe to repeat: reads,
    /// `PUT`, `PATCH` and `DELETE`, and pushes whose every metric has a `dedupe_id` (the
    /// server stores a repeated one once). Other requests are repeated only when no
    /// connection could be made, so they never reached the server. Waits grow
    /// exponentially from 100 ms, with jitter, up to 10 s; a `Retry-After` from the server
    /// is honoured instead (up to 60 s).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The `User-Agent` header (default `microdash-client/VERSION`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Use this `reqwest::Client` (proxies, custom TLS, a shared pool) instead of building
    /// one. Its own settings stay; [`ClientBuilder::timeout`] and
    /// [`ClientBuilder::user_agent`], when set, are applied to each request.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// How long a live stream may stay silent before it is taken for dead and reconnected
    /// (default 60 s; the server sends a heartbeat every 15 s by default, see
    /// `sse_heartbeat_ms`).
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream.idle_timeout = timeout;
        self
    }

    /// How many reconnections in a row a live stream attempts before it gives up and ends
    /// with the last error (default 10, about a minute of backoff); every successful
    /// reconnection starts the count again.
    pub fn stream_reconnect_attempts(mut self, attempts: u32) -> Self {
        self.stream.reconnect_attempts = attempts;
        self
    }

    /// The client. Fails on a base URL that is not `http` or `https`, on a token that
    /// cannot be a header value, and when TLS cannot be set up.
    pub fn build(self) -> Result<Client, Error> {
        let base = Url::parse(&self.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| Error::InvalidUrl(self.base_url.clone()))?;
        let auth = match &self.token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::InvalidToken)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let user_agent = self.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        let user_agent =
            HeaderValue::from_str(user_agent).map_err(|_| Error::InvalidUserAgent(user_agent.to_owned()))?;
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let (http, per_request) = match self.http {
            Some(http) => (http, PerRequest { timeout: self.timeout, user_agent: self.user_agent.map(|_| user_agent) }),
            None => {
                let connect_timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
                let http = http_builder(tls_config()?)
                    .timeout(timeout)
                    .connect_timeout(connect_timeout)
                    .user_agent(user_agent)
                    .build()?;
                (http, PerRequest::default())
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                token_hint: self.token.as_deref().map(redact),
                timeout,
                per_request,
                retries: self.retries,
                stream: self.stream,
            }),
            tenant: self.tenant.map(Arc::from),
        })
    }
}

const DEFAULT_USER_AGENT: &str = concat!("microdash-client/", env!("CARGO_PKG_VERSION"));

/// Settings applied to each request because the `reqwest::Client` was given, not built.
#[derive(Default)]
struct PerRequest {
    timeout: Option<Duration>,
    user_agent: Option<HeaderValue>,
}

/// A connection to one microdash server with one token. Cheap to clone: clones share the
/// connection pool.
///
/// Its `Debug` shows the base URL and the first characters of the token, never the token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The tenant named with `?tenant=` on the requests that take one ([`Client::for_tenant`]).
    tenant: Option<Arc<str>>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    /// `Bearer <token>`, marked sensitive so that HTTP-level logging hides it too.
    auth: Option<HeaderValue>,
    /// What `Debug` shows of the token.
    token_hint: Option<String>,
    /// The request timeout, to which long polls add their wait.
    timeout: Duration,
    per_request: PerRequest,
    retries: u32,
    stream: StreamSettings,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("token", &self.inner.token_hint.as_deref().unwrap_or("none"))
            .field("tenant", &self.tenant)
            .field("retries", &self.inner.retries)
            .finish_non_exhaustive()
    }
}

/// What `Debug` shows of a token: its first characters, if it is long enough that they
/// give nothing away (a real token has 40 random characters after `mdk_`).
fn redact(token: &str) -> String {
    if token.chars().count() >= 20 {
        let shown: String = token.chars().take(7).collect();
        format!("{shown}…(redacted)")
    } else {
        "(redacted)".to_owned()
    }
}

/// rustls with ring and the system's trust store, built for this client only: nothing is
/// installed process-wide, so an application's own choice of crypto provider stands.
fn tls_config() -> Result<rustls::ClientConfig, Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(Error::Tls)?
        .with_no_client_auth();
    // What reqwest offers when it builds the configuration itself.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

fn http_builder(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(tls)
}

/// Whether a request may be sent again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Repeating it changes nothing: retry every retryable failure.
    Safe,
    /// Repeating it may act twice: retry only when it never reached the server.
    Unsafe,
}

impl Replay {
    fn allows(self, err: &Error) -> bool {
        match self {
            Replay::Safe => err.is_retryable(),
            Replay::Unsafe => err.was_not_sent(),
        }
    }
}

/// The waits between attempts: exponential from 100 ms, with jitter, at most 10 s each.
pub(crate) fn backoff(retries: u32) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .with_max_times(retries as usize)
}

impl Client {
    /// A client for the server at `base_url` (such as `http://127.0.0.1:8080`) with `token`
    /// and every other setting at its default: the shortcut for
    /// `Client::builder(base_url).token(token).build()`.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), microdash_client::Error> {
    /// let client = microdash_client::Client::new("http://127.0.0.1:8080", "mdk_...")?;
    /// # Ok(()) }
    /// ```
    pub fn new(base_url: &str, token: &str) -> Result<Self, Error> {
        Self::builder(base_url).token(token).build()
    }

    /// Start configuring a client for the server at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            token: None,
            tenant: None,
            timeout: None,
            connect_timeout: None,
            retries: DEFAULT_RETRIES,
            user_agent: None,
            http: None,
            stream: StreamSettings::default(),
        }
    }

    /// A client using a caller-configured `reqwest::Client`: the shortcut for
    /// `Client::builder(base_url).token(token).http_client(http).build()`.
    pub fn with_http(base_url: &str, token: &str, http: reqwest::Client) -> Result<Self, Error> {
        Self::builder(base_url).token(token).http_client(http).build()
    }

    /// A `reqwest::Client` configured as [`Client::new`] configures its own: 30 s timeout,
    /// 10 s connect timeout, rustls with ring and the system's trust store set on this
    /// client (no process-wide crypto provider is installed). Handy for other HTTP calls
    /// that should behave alike, or to share one pool among clients with different tokens.
    pub fn default_http() -> Result<reqwest::Client, Error> {
        Ok(http_builder(tls_config()?)
            .timeout(DEFAULT_TIMEOUT)
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .user_agent(DEFAULT_USER_AGENT)
            .build()?)
    }

    /// The same client acting on tenant `slug`: every request that takes a tenant (queries,
    /// agents, series, alert rules, channels, alerts and notifications) names it with
    /// `?tenant=slug`. Admin tokens need this, since they belong to no tenant; a tenant's
    /// own token may leave it out. Cheap: the connection pool is shared.
    ///
    /// ```no_run
    /// # async fn demo(admin: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// let acme = admin.for_tenant("acme");
    /// println!("{} agents", acme.agents().await?.len());
    /// # Ok(()) }
    /// ```
    pub fn for_tenant(&self, slug: impl Into<String>) -> Client {
        Client { inner: self.inner.clone(), tenant: Some(Arc::from(slug.into())) }
    }

    /// The tenant this client names ([`Client::for_tenant`]), if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// Push metrics (one request, up to the server's `max_metrics_per_request`). When every
    /// metric has a `dedupe_id` the push is retried like a read (see
    /// [`ClientBuilder::retries`]), since the server stores each id once.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::MetricIn;
    /// let accepted = client.push(&[MetricIn::new("temp", 21.5).agent("sensor-7")]).await?;
    /// assert_eq!(accepted.accepted, 1);
    /// # Ok(()) }
    /// ```
    pub async fn push(&self, metrics: &[MetricIn]) -> Result<Accepted, Error> {
        let replay = if metrics.iter().all(|m| m.dedupe_id.is_some()) { Replay::Safe } else { Replay::Unsafe };
        self.push_bytes(serde_json::to_vec(metrics)?, replay, self.inner.retries).await
    }

    /// Push one metric (the server takes a bare object as well as an array).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::MetricIn;
    /// client.push_one(&MetricIn::new("queue.depth", 17.0).dedupe_id("worker-3-0001")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn push_one(&self, metric: &MetricIn) -> Result<Accepted, Error> {
        let replay = if metric.dedupe_id.is_some() { Replay::Safe } else { Replay::Unsafe };
        self.push_bytes(serde_json::to_vec(metric)?, replay, self.inner.retries).await
    }

    /// Push an already-serialised JSON body (one metric object or an array). The client
    /// cannot see dedupe ids in it, so it is repeated only when it never reached the server.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// client.push_json(br#"{"metric_name":"up","value":1}"#.to_vec()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn push_json(&self, body: Vec<u8>) -> Result<Accepted, Error> {
        self.push_bytes(body, Replay::Unsafe, self.inner.retries).await
    }

    pub(crate) async fn push_bytes(&self, body: Vec<u8>, replay: Replay, retries: u32) -> Result<Accepted, Error> {
        let request = self.request(Method::POST, &["metrics"]).header(CONTENT_TYPE, "application/json").body(body);
        let response = self.execute_with(request.build()?, replay, retries).await?;
        Ok(response.json().await?)
    }

    /// Query points; the tenant is the query's own, else [`Client::for_tenant`]'s, else the
    /// token's.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::MetricsQuery;
    /// let q = MetricsQuery { metric_name: Some("temp".into()), limit: Some(100), ..Default::default() };
    /// for point in client.query(&q).await?.data {
    ///     println!("{} {}", point.timestamp, point.value);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn query(&self, query: &MetricsQuery) -> Result<QueryResponse, Error> {
        let mut query = query.clone();
        if query.tenant.is_none() {
            query.tenant = self.tenant.as_deref().map(str::to_owned);
        }
        self.call(self.request(Method::GET, &["metrics"]).query(&query), Replay::Safe).await
    }

    /// Points or rollup buckets over a time range, typed: see [`RangeQuery`].
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::{RangeQuery, ResolutionRequest};
    /// let week = 7 * 24 * 3600 * 1000;
    /// let now = 1_800_000_000_000;
    /// let q = RangeQuery::new(now - week, now).metric("cpu.usage_percent").resolution(ResolutionRequest::Auto);
    /// let answer = client.query_range(&q).await?;
    /// println!("{} buckets of {}", answer.count, answer.resolution);
    /// for bucket in answer.data {
    ///     println!("{} avg {} min {:?} max {:?}", bucket.timestamp, bucket.value, bucket.min, bucket.max);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn query_range(&self, query: &RangeQuery) -> Result<QueryResponse, Error> {
        self.query(&query.to_wire()).await
    }

    /// The tenant's agents, each `online` or `offline` by its announced interval.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// for agent in client.agents().await? {
    ///     println!("{} {} (last seen {})", agent.agent_id, agent.status, agent.last_seen);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn agents(&self) -> Result<Vec<AgentOut>, Error> {
        self.call(self.scoped(Method::GET, &["agents"]), Replay::Safe).await
    }

    /// The tenant's series: each metric with its agent and tags.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// let names: std::collections::BTreeSet<String> =
    ///     client.series().await?.into_iter().map(|s| s.metric_name).collect();
    /// # Ok(()) }
    /// ```
    pub async fn series(&self) -> Result<Vec<SeriesOut>, Error> {
        self.call(self.scoped(Method::GET, &["series"]), Replay::Safe).await
    }

    /// The polling alternative to [`Client::stream`]: the points after `query.after`,
    /// waiting up to `query.wait_ms` for some (the request timeout is extended by the wait).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::StreamQuery;
    /// let mut query = StreamQuery { wait_ms: Some(20_000), ..StreamQuery::default() };
    /// loop {
    ///     let answer = client.latest("fleet", &query).await?;
    ///     if answer.reset {
    ///         // Too far behind: reload history with `query_range`, then carry on.
    ///     }
    ///     println!("{} new points", answer.points.len());
    ///     query.after = Some(answer.cursor);
    /// }
    /// # }
    /// ```
    pub async fn latest(&self, tenant: &str, query: &StreamQuery) -> Result<LatestResponse, Error> {
        let wait = Duration::from_millis(query.wait_ms.unwrap_or(0));
        let request =
            self.request(Method::GET, &["stream", tenant, "latest"]).query(query).timeout(self.inner.timeout + wait);
        self.call(request, Replay::Safe).await
    }

    /// Dependency health (no token needed, but the client sends it anyway).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// assert_eq!(client.health().await?.status, microdash_client::HealthStatus::Ok);
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Result<HealthResponse, Error> {
        // A degraded server answers `503` with the same body: that is an answer, not an
        // error to retry.
        let response = self.inner.http.execute(self.request(Method::GET, &["health"]).build()?).await?;
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let request_id = request_id(&response);
            let text = response.text().await?;
            if let Ok(health) = serde_json::from_str::<HealthResponse>(&text) {
                return Ok(health);
            }
            return Err(Error::Api {
                status: 503,
                code: "unavailable".into(),
                message: text,
                details: Vec::new(),
                retry_after: None,
                request_id,
            });
        }
        Ok(check(response).await?.json().await?)
    }

    // The plumbing the endpoint modules share.

    /// `base/api/v1/<segments>`, each segment percent-encoded (a slug or id can never
    /// change the path).
    pub(crate) fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        // `build` refused bases that cannot be a base, the only case without segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    /// A request to `api/v1/<segments>` with the token, and the settings a given
    /// `reqwest::Client` lacks.
    pub(crate) fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        let mut request = self.inner.http.request(method, self.api_url(segments));
        if let Some(auth) = &self.inner.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some(user_agent) = &self.inner.per_request.user_agent {
            request = request.header(USER_AGENT, user_agent.clone());
        }
        if let Some(timeout) = self.inner.per_request.timeout {
            request = request.timeout(timeout);
        }
        request
    }

    /// As [`Client::request`], naming [`Client::tenant`] with `?tenant=` when there is one.
    pub(crate) fn scoped(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        let request = self.request(method, segments);
        match &self.tenant {
            Some(slug) => request.query(&[("tenant", &**slug)]),
            None => request,
        }
    }

    /// [`ClientBuilder::retries`].
    pub(crate) fn retries(&self) -> u32 {
        self.inner.retries
    }

    pub(crate) fn stream_settings(&self) -> &StreamSettings {
        &self.inner.stream
    }

    /// Send with the client's retries and decode the JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        replay: Replay,
    ) -> Result<T, Error> {
        Ok(self.execute(request, replay).await?.json().await?)
    }

    /// Send with the client's retries; the answer's body (`204`) is not read.
    pub(crate) async fn call_empty(&self, request: reqwest::RequestBuilder, replay: Replay) -> Result<(), Error> {
        self.execute(request, replay).await.map(drop)
    }

    /// Send with the client's retries; a success or the server's error.
    pub(crate) async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        replay: Replay,
    ) -> Result<reqwest::Response, Error> {
        self.execute_with(request.build()?, replay, self.inner.retries).await
    }

    /// Send, trying again up to `retries` times where `replay` allows, waiting by
    /// [`backoff`] or the server's `Retry-After`.
    pub(crate) async fn execute_with(
        &self,
        request: reqwest::Request,
        replay: Replay,
        retries: u32,
    ) -> Result<reqwest::Response, Error> {
        let attempt = || async {
            // Every body here is a byte buffer, which clones; only streaming bodies do not.
            let request = request.try_clone().expect("request bodies are byte buffers");
            check(self.inner.http.execute(request).await?).await
        };
        attempt
            .retry(backoff(retries))
            .when(|err| replay.allows(err))
            .adjust(|err, delay| delay.map(|delay| err.retry_after().map_or(delay, |after| after.min(MAX_RETRY_AFTER))))
            .await
    }
}

/// The response if it is a success, else the server's error.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| parse_retry_after(v.to_str().ok()?));
    let request_id = request_id(&response);
    let text = response.text().await.unwrap_or_default();
    let body: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|_| ErrorBody {
        error: status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_"),
        message: text,
        details: Vec::new(),
        limit: None,
    });
    Err(Error::Api {
        status: status.as_u16(),
        code: body.error,
        message: body.message,
        details: body.details,
        retry_after,
        request_id,
    })
}

/// The `x-request-id` a response carries.
fn request_id(response: &reqwest::Response) -> Option<String> {
    response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `Retry-After` as the server sends it: whole seconds. (The HTTP-date form is not used by
/// microdash; a proxy sending it gets the ordinary backoff.)
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        fn check(token: &str, shown: &str) {
            let client = Client::builder("http://127.0.0.1:1").token(token).build().expect("a valid client");
            let text = format!("{client:?}");
            assert!(!text.contains(token), "{text}");
            assert!(text.contains(shown), "{text}");
            let text = format!("{:?}", Client::builder("http://127.0.0.1:1").token(token));
            assert!(!text.contains(token) && text.contains(shown), "{text}");
        }
        check("mdk_abcdefghijklmnopqrstuvwxyz0123456789ABCD", "\"mdk_abc…(redacted)\"");
        check("short-secret", "\"(redacted)\"");
    }

    #[test]
    fn base_urls_must_be_http() {
        fn check(base: &str, ok: bool) {
            assert_eq!(Client::new(base, "t").is_ok(), ok, "{base}");
        }
        check("http://127.0.0.1:8080", true);
        check("https://metrics.example.com/microdash/", true);
        check("ftp://example.com", false);
        check("127.0.0.1:8080", false);
        check("mailto:ops@example.com", false);
    }

    #[test]
    fn a_token_that_is_no_header_value_is_refused_without_being_shown() {
        let err = Client::new("http://127.0.0.1:1", "mdk_\nsecret").unwrap_err();
        assert!(matches!(err, Error::InvalidToken) && !err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn paths_are_built_from_encoded_segments() {
        fn check(base: &str, segments: &[&str], want: &str) {
            let client = Client::new(base, "t").expect("a valid client");
            assert_eq!(client.api_url(segments).as_str(), want);
        }
        check("http://h:1", &["metrics"], "http://h:1/api/v1/metrics");
        check("http://h:1/", &["metrics"], "http://h:1/api/v1/metrics");
        check("http://h:1/md/", &["stream", "acme", "latest"], "http://h:1/md/api/v1/stream/acme/latest");
        check("http://h:1", &["stream", "a/b?c"], "http://h:1/api/v1/stream/a%2Fb%3Fc");
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn only_safe_requests_repeat_after_the_server_saw_them() {
        fn api(status: u16) -> Error {
            Error::Api {
                status,
                code: "x".into(),
                message: String::new(),
                details: Vec::new(),
                retry_after: None,
                request_id: None,
            }
        }
        assert!(Replay::Safe.allows(&api(503)) && Replay::Safe.allows(&api(429)));
        assert!(!Replay::Unsafe.allows(&api(503)));
        assert!(!Replay::Safe.allows(&api(422)) && !Replay::Safe.allows(&api(500)));
    }
}
