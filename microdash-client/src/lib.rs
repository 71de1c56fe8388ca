//! Rust client for the microdash HTTP API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), microdash_client::Error> {
//! use microdash_client::{Client, MetricIn, MetricsQuery};
//!
//! let client = Client::new("http://127.0.0.1:8080", "mdk_...")?;
//! client.push(&[MetricIn::new("cpu.usage", 0.42).agent("web-1").tag("dc", "eu")]).await?;
//! let points = client.query(&MetricsQuery { metric_name: Some("cpu.usage".into()), ..Default::default() }).await?;
//! println!("{} points", points.count);
//! # Ok(()) }
//! ```
//!
//! Errors the server answers with come back as [`Error::Api`], carrying the server's stable
//! error code, its message and any per-field details.

use std::time::Duration;

use serde::de::DeserializeOwned;

use futures_util::{Stream, StreamExt};
pub use microdash_core::api::{
    Accepted, CreateTenant, CreateToken, CreatedToken, ErrorBody, FieldError, HealthResponse, LatestResponse, MetricIn,
    MetricsQuery, PointOut, QueryResponse, Resolution, ResolutionRequest, StreamQuery, TenantOut, TokenOut,
    UpdateTenant,
};
use microdash_core::api::{LiveFrame, StreamMarker};

/// A typed query over `[start_ms, end_ms)` ([`Client::query_range`]): raw points or rollup
/// buckets (`min`, `max`, `count` and `last` beside the average in `value`).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// Inclusive start, Unix milliseconds.
    pub start_ms: i64,
    /// Exclusive end, Unix milliseconds.
    pub end_ms: i64,
    /// Raw, 1m, 5m, or auto (the default here).
    pub resolution: ResolutionRequest,
    /// Only this metric.
    pub metric_name: Option<String>,
    /// Only this agent.
    pub agent_id: Option<String>,
    /// The tenant to read (admin tokens must name one).
    pub tenant: Option<String>,
    /// With auto: most buckets per series (the server's default is 1,500).
    pub max_points: Option<usize>,
    /// Most points in the answer (the most recent are kept).
    pub limit: Option<usize>,
}

impl RangeQuery {
    /// Everything of the token's tenant in the range, at `auto` resolution.
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        RangeQuery {
            start_ms,
            end_ms,
            resolution: ResolutionRequest::Auto,
            metric_name: None,
            agent_id: None,
            tenant: None,
            max_points: None,
            limit: None,
        }
    }

    /// Only this metric.
    pub fn metric(mut self, name: impl Into<String>) -> Self {
        self.metric_name = Some(name.into());
        self
    }

    /// Only this agent.
    pub fn agent(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// Read this tenant.
    pub fn tenant(mut self, slug: impl Into<String>) -> Self {
        self.tenant = Some(slug.into());
        self
    }

    /// At this resolution.
    pub fn resolution(mut self, resolution: ResolutionRequest) -> Self {
        self.resolution = resolution;
        self
    }

    /// With auto: at most this many buckets per series.
    pub fn max_points(mut self, max_points: usize) -> Self {
        self.max_points = Some(max_points);
        self
    }

    /// At most this many points in all.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    fn to_wire(&self) -> MetricsQuery {
        let seconds = |ms: i64| format!("{}", ms as f64 / 1000.0);
        MetricsQuery {
            tenant: self.tenant.clone(),
            metric_name: self.metric_name.clone(),
            agent_id: self.agent_id.clone(),
            start_time: Some(seconds(self.start_ms)),
            end_time: Some(seconds(self.end_ms)),
            resolution: Some(self.resolution.to_string()),
            max_points: self.max_points.map(|n| n.to_string()),
            limit: self.limit.map(|n| n.to_string()),
        }
    }
}

/// One event of a tenant's live stream ([`Client::stream`]).
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// The stream is open and continues from `cursor`.
    Ready {
        /// Where the stream stands.
        cursor: String,
    },
    /// The requested position could not be resumed: reload history, then continue.
    Reset {
        /// Where the stream stands.
        cursor: String,
    },
    /// The position moved past batches the stream's filter left out; resume from here.
    Cursor {
        /// Where the stream stands.
        cursor: String,
    },
    /// Points just persisted.
    Points {
        /// Position after these points; pass it as `after` to resume.
        cursor: String,
        /// The points.
        points: Vec<PointOut>,
    },
}

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error.
    #[error("{status}: {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code, such as `invalid_metrics`.
        code: String,
        /// Human-readable message.
        message: String,
        /// Per-field validation problems.
        details: Vec<FieldError>,
        /// How long the server asked to wait before retrying (`503`).
        retry_after: Option<Duration>,
    },
    /// The request could not be sent or the answer not read.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The request body could not be encoded.
    #[error("encoding the request: {0}")]
    Encode(#[from] serde_json::Error),
    /// The base URL is not usable.
    #[error("invalid base url {0:?}")]
    InvalidUrl(String),
    /// The live stream broke or sent something unreadable.
    #[error("live stream: {0}")]
    Stream(String),
}

impl Error {
    /// Whether retrying later may succeed (the server was unavailable or unreachable).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 503 || *status == 429,
            Error::Http(e) => e.is_connect() || e.is_timeout(),
            Error::Stream(_) => true,
            Error::InvalidUrl(_) | Error::Encode(_) => false,
        }
    }
}

/// A connection to one microdash server with one token. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client for the server at `base_url` (such as `http://127.0.0.1:8080`).
    pub fn new(base_url: &str, token: &str) -> Result<Self, Error> {
        Self::with_http(base_url, token, Self::default_http()?)
    }

    /// A client using a caller-configured `reqwest::Client` (timeouts, proxies, pools).
    pub fn with_http(base_url: &str, token: &str, http: reqwest::Client) -> Result<Self, Error> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::InvalidUrl(base_url.to_owned()));
        }
        Ok(Self { http, base: base_url.trim_end_matches('/').to_owned(), token: token.to_owned() })
    }

    /// The `reqwest::Client` used by [`Client::new`]: 30 s timeout, rustls with ring.
    pub fn default_http() -> Result<reqwest::Client, Error> {
        // reqwest is built without a bundled crypto provider; install ring once per process
        // (a second install fails harmlessly when one is already set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?)
    }

    /// Push metrics (one request, any number up to the server's limit).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::MetricIn;
    /// let accepted = client.push(&[MetricIn::new("temp", 21.5).agent("sensor-7")]).await?;
    /// assert_eq!(accepted.accepted, 1);
    /// # Ok(()) }
    /// ```
    pub async fn push(&self, metrics: &[MetricIn]) -> Result<Accepted, Error> {
        self.push_json(serde_json::to_vec(metrics)?).await
    }

    /// Push an already-serialised JSON body (one metric object or an array).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// client.push_json(br#"{"metric_name":"up","value":1}"#.to_vec()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn push_json(&self, body: Vec<u8>) -> Result<Accepted, Error> {
        let request = self
            .http
            .post(self.url("/api/v1/metrics"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request).await
    }

    /// Query points of the token's tenant.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::MetricsQuery;
    /// let q = MetricsQuery { metric_name: Some("temp".into()), limit: Some("100".into()), ..Default::default() };
    /// for point in client.query(&q).await?.data {
    ///     println!("{} {}", point.timestamp, point.value);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn query(&self, query: &MetricsQuery) -> Result<QueryResponse, Error> {
        self.send(self.http.get(self.url("/api/v1/metrics")).query(query)).await
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

    /// Set a tenant's own retention (admin token); see [`UpdateTenant`].
    pub async fn update_tenant(&self, slug: &str, update: &UpdateTenant) -> Result<TenantOut, Error> {
        self.send(self.http.patch(self.url(&format!("/api/v1/tenants/{slug}"))).json(update)).await
    }

    /// Dependency health (no token needed, but the client sends it anyway).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// assert_eq!(client.health().await?.status, "ok");
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Result<HealthResponse, Error> {
        self.send(self.http.get(self.url("/api/v1/health"))).await
    }

    /// Create a tenant (admin token).
    ///
    /// ```no_run
    /// # async fn demo(admin: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// let tenant = admin.create_tenant("fleet", "IoT fleet").await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_tenant(&self, slug: &str, name: &str) -> Result<TenantOut, Error> {
        let body = CreateTenant { slug: slug.to_owned(), name: Some(name.to_owned()) };
        self.send(self.http.post(self.url("/api/v1/admin/tenants")).json(&body)).await
    }

    /// Create a token (admin token); the secret is in the answer and nowhere else.
    ///
    /// ```no_run
    /// # async fn demo(admin: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::CreateToken;
    /// let created = admin
    ///     .create_token(&CreateToken { tenant: Some("fleet".into()), scopes: "ingest".into(), name: Some("agents".into()) })
    ///     .await?;
    /// println!("{}", created.token);
    /// # Ok(()) }
    /// ```
    pub async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken, Error> {
        self.send(self.http.post(self.url("/api/v1/admin/tokens")).json(request)).await
    }

    /// Follow a tenant's live stream (Server-Sent Events): every metric persisted from now
    /// on, or after `query.after` when resuming. The stream ends when the connection does;
    /// resume with the last cursor.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use futures_util::StreamExt;
    /// use microdash_client::{LiveEvent, StreamQuery};
    /// let mut live = std::pin::pin!(client.stream("fleet", &StreamQuery::default()).await?);
    /// while let Some(event) = live.next().await {
    ///     if let LiveEvent::Points { points, .. } = event? {
    ///         println!("{} new points", points.len());
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn stream(
        &self,
        tenant: &str,
        query: &StreamQuery,
    ) -> Result<impl Stream<Item = Result<LiveEvent, Error>> + Send + use<>, Error> {
        use eventsource_stream::Eventsource;
        let request = self
            .http
            .get(self.url(&format!("/api/v1/stream/{tenant}")))
            .query(query)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            // A stream lasts as long as it is followed, not as long as a request may take.
            .timeout(Duration::from_secs(365 * 24 * 3600));
        let response = self.check(request.bearer_auth(&self.token).send().await?).await?;
        Ok(response.bytes_stream().eventsource().filter_map(|event| async move {
            let event = match event {
                Ok(event) => event,
                Err(err) => return Some(Err(Error::Stream(err.to_string()))),
            };
            let parsed = match event.event.as_str() {
                "ready" | "reset" | "cursor" => {
                    serde_json::from_str::<StreamMarker>(&event.data).map(|m| match event.event.as_str() {
                        "ready" => LiveEvent::Ready { cursor: m.cursor },
                        "reset" => LiveEvent::Reset { cursor: m.cursor },
                        _ => LiveEvent::Cursor { cursor: m.cursor },
                    })
                }
                "points" => serde_json::from_str::<LiveFrame>(&event.data)
                    .map(|frame| LiveEvent::Points { cursor: event.id.clone(), points: frame.points }),
                _ => return None,
            };
            Some(parsed.map_err(|e| Error::Stream(format!("unreadable {} event: {e}", event.event))))
        }))
    }

    /// The polling alternative to [`Client::stream`]: the points after `query.after`,
    /// waiting up to `query.wait_ms` for some.
    pub async fn latest(&self, tenant: &str, query: &StreamQuery) -> Result<LatestResponse, Error> {
        self.send(self.http.get(self.url(&format!("/api/v1/stream/{tenant}/latest"))).query(query)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, Error> {
        let response = self.check(request.bearer_auth(&self.token).send().await?).await?;
        Ok(response.json().await?)
    }

    /// The response if it is a success, else the server's error.
    async fn check(&self, response: reqwest::Response) -> Result<reqwest::Response, Error> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let body: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|_| ErrorBody {
            error: status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_"),
            message: text,
            details: Vec::new(),
        });
        Err(Error::Api {
            status: status.as_u16(),
            code: body.error,
            message: body.message,
            details: body.details,
            retry_after,
        })
    }
}
