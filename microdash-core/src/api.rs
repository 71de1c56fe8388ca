//! JSON wire types of the HTTP API, shared by the server, the Rust client and the dashboard.
//!
//! Inputs are permissive (every field optional) so validation in [`crate::metric`] can
//! report all problems at once; outputs are exactly what clients see. The alerting API's
//! types are in [`alert`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::token::Scopes;

pub mod alert;

/// One metric as a client sends it. Unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricIn {
    /// Required metric name.
    #[serde(default)]
    pub metric_name: Option<String>,
    /// Required finite value.
    #[serde(default)]
    pub value: Option<f64>,
    /// RFC 3339 string or Unix seconds; the time of receipt when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimestampIn>,
    /// Optional agent (host, device) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Optional string-to-string dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Optional idempotency key: a metric with a `dedupe_id` already stored is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_id: Option<String>,
}

impl MetricIn {
    /// A metric with a name and a value; the server stamps it with the time of receipt.
    pub fn new(metric_name: impl Into<String>, value: f64) -> Self {
        Self { metric_name: Some(metric_name.into()), value: Some(value), ..Self::default() }
    }

    /// Set the agent id.
    pub fn agent(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// Add a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.get_or_insert_with(BTreeMap::new).insert(key.into(), value.into());
        self
    }

    /// Set the timestamp, Unix milliseconds.
    pub fn at_millis(mut self, ms: i64) -> Self {
        self.timestamp = Some(TimestampIn::UnixSeconds(ms as f64 / 1000.0));
        self
    }

    /// Set the idempotency key.
    pub fn dedupe_id(mut self, id: impl Into<String>) -> Self {
        self.dedupe_id = Some(id.into());
        self
    }
}

/// A timestamp as clients may write it.
#[derive(Debug, Clone, PartialEq)]
pub enum TimestampIn {
    /// An RFC 3339 string such as `2024-05-01T12:00:00Z`.
    Rfc3339(String),
    /// Seconds since the Unix epoch, possibly fractional.
    UnixSeconds(f64),
}

impl Serialize for TimestampIn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TimestampIn::Rfc3339(text) => s.serialize_str(text),
            TimestampIn::UnixSeconds(secs) => s.serialize_f64(*secs),
        }
    }
}

impl<'de> Deserialize<'de> for TimestampIn {
    // A hand-written visitor rather than `#[serde(untagged)]`: untagged enums buffer every
    // value, and this sits on the ingestion hot path.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TimestampIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or Unix seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TimestampIn, E> {
                Ok(TimestampIn::Rfc3339(v.to_owned()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<TimestampIn, E> {
                Ok(TimestampIn::UnixSeconds(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TimestampIn, E> {
                Ok(TimestampIn::UnixSeconds(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TimestampIn, E> {
                Ok(TimestampIn::UnixSeconds(v as f64))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl TimestampIn {
    /// Parse a query-string timestamp: Unix seconds if it is a number, else RFC 3339.
    pub fn from_query(s: &str) -> Self {
        match s.parse::<f64>() {
            Ok(secs) => TimestampIn::UnixSeconds(secs),
            Err(_) => TimestampIn::Rfc3339(s.to_owned()),
        }
    }
}

/// One validation problem. `index` is the metric's position in the request (absent when the
/// problem concerns the whole request), `field` the offending field (absent when the whole
/// element is wrong).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Position of the metric in the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Field name, such as `value` or `tags.host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl FieldError {
    /// Build a field error.
    pub fn new(index: Option<usize>, field: Option<String>, message: impl Into<String>) -> Self {
        Self { index, field, message: message.into() }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, such as `invalid_metrics` or `unauthorized`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// Per-field problems, for validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
    /// The setting a `429` answer ran into: a quota (`max_ingest_metrics_per_s`,
    /// `max_series`), a stream cap or the sign-in lockout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// Answer to an accepted `POST /api/v1/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// How many metrics were durably handed to the queue.
    pub accepted: usize,
}

/// Time resolution of a query answer: raw points, or rollup buckets of a whole number of
/// minutes. Written `raw`, `1m`, `5m`; `resolution=auto` may answer coarser buckets
/// (`15m`, `60m`, ...), merged exactly from the stored 5-minute rollups, to keep each series
/// under `max_points`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// Raw points as ingested.
    #[default]
    Raw,
    /// Buckets of this many minutes (1 and 5 are stored; others are merged from them).
    Minutes(u32),
}

impl Resolution {
    /// One-minute rollups.
    pub const ONE_MINUTE: Resolution = Resolution::Minutes(1);
    /// Five-minute rollups.
    pub const FIVE_MINUTES: Resolution = Resolution::Minutes(5);

    /// Bucket width in milliseconds; `None` for raw points.
    pub fn bucket_ms(self) -> Option<i64> {
        match self {
            Resolution::Raw => None,
            Resolution::Minutes(m) => Some(i64::from(m) * 60_000),
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolution::Raw => f.write_str("raw"),
            Resolution::Minutes(m) => write!(f, "{m}m"),
        }
    }
}

impl std::str::FromStr for Resolution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "raw" {
            return Ok(Resolution::Raw);
        }
        match s.strip_suffix('m').and_then(|m| m.parse::<u32>().ok()) {
            Some(m) if m > 0 => Ok(Resolution::Minutes(m)),
            _ => Err(format!("{s:?} is not a resolution (raw, 1m, 5m, ...)")),
        }
    }
}

impl Serialize for Resolution {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Resolution {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `raw`, or a number of minutes and `m`, as the answers write it.
#[cfg(feature = "schemars")]
impl schemars::JsonSchema for Resolution {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Resolution".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(raw|[1-9][0-9]*m)$",
        })
    }
}

/// The `resolution` a query asks for: `raw`, `1m`, `5m` or `auto` on the wire.
///
/// `Exact` holds any [`Resolution`], but only the stored ones (raw, 1m, 5m) are read back:
/// a request written with another (`30m`) is refused, as it always was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolutionRequest {
    /// Exactly this stored resolution: raw, 1m or 5m. Raw over a range it no longer covers
    /// is answered from the finest rollup that does (the answer's `resolution` says which).
    Exact(Resolution),
    /// The finest resolution retained for the whole range that keeps each series under
    /// `max_points`.
    Auto,
}

impl fmt::Display for ResolutionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolutionRequest::Exact(resolution) => resolution.fmt(f),
            ResolutionRequest::Auto => f.write_str("auto"),
        }
    }
}

impl std::str::FromStr for ResolutionRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raw" => Ok(ResolutionRequest::Exact(Resolution::Raw)),
            "1m" => Ok(ResolutionRequest::Exact(Resolution::ONE_MINUTE)),
            "5m" => Ok(ResolutionRequest::Exact(Resolution::FIVE_MINUTES)),
            "auto" => Ok(ResolutionRequest::Auto),
            other => Err(format!("{other:?} is not one of raw, 1m, 5m, auto")),
        }
    }
}

impl Serialize for ResolutionRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResolutionRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The four values a request may name, so that a schema (the MCP tools' arguments) lists
/// them rather than saying "a string".
#[cfg(feature = "schemars")]
impl schemars::JsonSchema for ResolutionRequest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ResolutionRequest".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": ["raw", "1m", "5m", "auto"],
        })
    }
}

/// Query string of `GET /api/v1/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsQuery {
    /// The tenant to read (its slug). Tenant tokens and users read their own tenant and may
    /// leave it out; admins must name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Only this metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Only this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Inclusive start: RFC 3339 or Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Exclusive end: RFC 3339 or Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// `raw` (the default), `1m`, `5m` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ResolutionRequest>,
    /// With `auto`: most buckets per series (default 1,500; from 1 to the server's
    /// `max_query_limit`, which the server checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_points: Option<usize>,
    /// Most points to return (from 1 to the server's `max_query_limit`; by default its
    /// `default_query_limit`, or `max_query_limit` with `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One point in a query answer: a raw point, or a rollup bucket with its aggregates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointOut {
    /// Metric name.
    pub metric_name: String,
    /// Agent id, `null` when the metric had none.
    pub agent_id: Option<String>,
    /// Tags of the series.
    pub tags: BTreeMap<String, String>,
    /// RFC 3339 UTC timestamp with milliseconds; a rollup bucket's start.
    pub timestamp: String,
    /// The value; a rollup bucket's average.
    pub value: f64,
    /// Rollups only: the smallest value in the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Rollups only: the largest value in the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Rollups only: how many points the bucket holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Rollups only: the value of the bucket's latest point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<f64>,
}

/// Answer to `GET /api/v1/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResponse {
    /// The resolution served.
    pub resolution: Resolution,
    /// Number of points in `data`.
    pub count: usize,
    /// Points ordered by timestamp.
    pub data: Vec<PointOut>,
}

/// Whether one dependency of the server answers, in `GET /api/v1/health`.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyStatus {
    /// It answered the check.
    Up,
    /// It did not; `DependencyHealth::error` says why.
    Down,
}

/// The server's overall health in `GET /api/v1/health` (answered `200` when `ok`, `503`
/// when `degraded`).
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every dependency is up.
    Ok,
    /// At least one dependency is down.
    Degraded,
}

impl HealthStatus {
    /// `Ok` when every dependency in `checks` is up, else `Degraded`.
    pub fn of<'a>(checks: impl IntoIterator<Item = &'a DependencyHealth>) -> Self {
        if checks.into_iter().all(|c| c.status == DependencyStatus::Up) { Self::Ok } else { Self::Degraded }
    }
}

/// Whether an agent is reporting, in `GET /api/v1/agents`.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Its latest metric arrived within two of its announced intervals.
    Online,
    /// It has been silent longer than that.
    Offline,
}

impl AgentStatus {
    /// The status as written on the wire: `online` or `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Online => "online",
            AgentStatus::Offline => "offline",
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AgentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "online" => Ok(AgentStatus::Online),
            "offline" => Ok(AgentStatus::Offline),
            _ => Err(format!("{s:?} is not an agent status (online, offline)")),
        }
    }
}

/// Status of one dependency in `GET /api/v1/health`.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyHealth {
    /// Whether it answered.
    pub status: DependencyStatus,
    /// Which backend (for example `sqlite`, `mysql`, `redis`, `in-process`).
    pub backend: String,
    /// Why it is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Answer to `GET /api/v1/health`.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `ok` when every dependency is up, else `degraded`.
    pub status: HealthStatus,
    /// Each dependency by name (`database`, `queue`).
    pub checks: BTreeMap<String, DependencyHealth>,
}

/// A tenant as the admin API shows it.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantOut {
    /// Database id.
    pub id: i64,
    /// URL- and topic-safe short name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// How long raw points are kept (the tenant's own setting or the server's default).
    pub retention_raw_hours: u32,
    /// How long 1-minute rollups are kept.
    pub retention_1m_days: u32,
    /// How long 5-minute rollups are kept.
    pub retention_5m_days: u32,
    /// Metrics a second the tenant may have accepted (its own setting or the server's
    /// default); `0` is unlimited.
    #[serde(default)]
    pub max_ingest_metrics_per_s: u64,
    /// Distinct series the tenant may have; `0` is unlimited.
    #[serde(default)]
    pub max_series: u64,
}

/// Body of `PATCH /api/v1/tenants/{slug}`: a tenant's own retention and quotas. A field left
/// out keeps its setting; `null` returns it to the server's default. Unknown fields are
/// refused, so a misspelt setting is not silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// Hours of raw points.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub retention_raw_hours: Option<Option<i64>>,
    /// Days of 1-minute rollups.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub retention_1m_days: Option<Option<i64>>,
    /// Days of 5-minute rollups.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub retention_5m_days: Option<Option<i64>>,
    /// Metrics a second the tenant may have accepted; `0` is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub max_ingest_metrics_per_s: Option<Option<i64>>,
    /// Distinct series the tenant may have; `0` is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub max_series: Option<Option<i64>>,
}

/// `Option<Option<T>>` as "absent" / `null` / a value.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(value: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Body of `POST /api/v1/admin/tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTenant {
    /// Short name, `[a-z0-9-]`.
    pub slug: String,
    /// Display name; defaults to the slug.
    #[serde(default)]
    pub name: Option<String>,
}

/// An API token as listings show it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenOut {
    /// Database id, used to revoke.
    pub id: i64,
    /// Tenant slug, `null` for admin tokens.
    pub tenant: Option<String>,
    /// Label given at creation.
    pub name: String,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    /// Its scopes, written comma-separated on the wire (`ingest,read`).
    pub scopes: Scopes,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Last authenticated use, RFC 3339, with minute precision.
    pub last_used_at: Option<String>,
    /// When it was revoked, RFC 3339.
    pub revoked_at: Option<String>,
}

/// Body of `POST /api/v1/admin/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateToken {
    /// Tenant slug; absent for an admin token.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Comma-separated scopes, e.g. `ingest,read`. Text rather than [`Scopes`] so that an
    /// unknown scope is answered `422` naming this field, like every other invalid field,
    /// instead of a body that fails to decode.
    pub scopes: String,
    /// Label.
    #[serde(default)]
    pub name: Option<String>,
}

/// Answer to token creation: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// The stored token's description.
    #[serde(flatten)]
    pub info: TokenOut,
    /// The secret bearer token. It is not stored and cannot be shown again.
    pub token: String,
}

/// Data of a `points` event on `GET /api/v1/stream/{tenant}`: metrics just persisted.
///
/// Several persisted batches may be coalesced into one event; the event's `id` is the
/// cursor after its last batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveFrame {
    /// The points, in the order they were persisted.
    pub points: Vec<PointOut>,
}

/// Data of a `ready` or `reset` event on the stream. `ready` opens every stream; `reset`
/// follows it when the `Last-Event-ID` could not be resumed (too old, or from a server
/// that has since restarted): the client should reload history through
/// `GET /api/v1/metrics` and carry on from `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMarker {
    /// Where the stream continues from.
    pub cursor: String,
}

/// Parameters of `GET /api/v1/stream/{tenant}` and `GET /api/v1/stream/{tenant}/latest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamQuery {
    /// Only this agent's points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Only this metric's points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Polling only: the `cursor` of the previous answer (or an event id of the stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Polling only: wait up to this long for new points before answering empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// Answer to `GET /api/v1/stream/{tenant}/latest`, the polling fallback of the stream: the
/// same points the stream sends after `after`, and the cursor to ask with next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestResponse {
    /// Pass as `after` in the next request.
    pub cursor: String,
    /// `after` could not be resumed (see [`StreamMarker`]): reload history first.
    pub reset: bool,
    /// Points persisted after `after`, oldest first.
    pub points: Vec<PointOut>,
}

/// Body of `POST /api/v1/session` (sign in).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn").field("username", &self.username).finish_non_exhaustive()
    }
}

/// The signed-in user, from `POST` or `GET /api/v1/session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionOut {
    /// Username.
    pub username: String,
    /// The user's tenant slug; `null` for admins.
    pub tenant: Option<String>,
    /// Whether the user sees and manages every tenant.
    pub admin: bool,
}

/// Answer to `GET /api/v1/whoami`: what the credential of the request may do.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The credential's tenant (slug); `null` for admins, who name a tenant per request.
    pub tenant: Option<String>,
    /// Its scopes, written comma-separated on the wire (`ingest,read,alerts`, `admin`).
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub scopes: Scopes,
    /// Whether it sees and manages every tenant.
    pub admin: bool,
}

/// Query string naming the tenant to read; see [`MetricsQuery::tenant`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantQuery {
    /// Tenant slug; tenant tokens and users may leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// One agent in `GET /api/v1/agents`.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentOut {
    /// The agent id.
    pub agent_id: String,
    /// Whether it is reporting.
    pub status: AgentStatus,
    /// When its latest metric was stored (RFC 3339).
    pub last_seen: String,
    /// The reporting interval the agent announced (its `agent.interval_s` metric), if any.
    pub interval_s: Option<f64>,
}

/// One series in `GET /api/v1/series`: a metric, the agent reporting it, and its tags.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesOut {
    /// Metric name.
    pub metric_name: String,
    /// Agent, if any.
    pub agent_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// Answer to `GET /api/v1/fleet?tenant=SLUG`: a row per host of the tenant with the latest
/// values of the host agent's metrics ([`crate::fleet::FLEET_METRICS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetOut {
    /// The tenant (slug).
    pub tenant: String,
    /// The server's clock when it answered (RFC 3339): clients age `last_seen` by it, so a
    /// browser whose clock is off still tells online from offline.
    pub server_time: String,
    /// Every agent of the tenant, by id.
    pub hosts: Vec<HostOut>,
}

/// One host in [`FleetOut`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostOut {
    /// The agent id.
    pub agent_id: String,
    /// Online, stale or offline, by the interval it announced ([`crate::fleet::HostStatus::of`]).
    pub status: crate::fleet::HostStatus,
    /// When its latest metric was stored (RFC 3339).
    pub last_seen: String,
    /// The reporting interval it announced (`agent.interval_s`), if any.
    pub interval_s: Option<f64>,
    /// The latest point of each of its series among the fleet metrics (disk: one per mount).
    pub latest: Vec<LatestOut>,
    /// How many of the tenant's alerts fire on it.
    pub firing_alerts: usize,
}

/// The latest point of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestOut {
    /// Metric name.
    pub metric_name: String,
    /// Tags of the series.
    pub tags: BTreeMap<String, String>,
    /// When it was measured (RFC 3339).
    pub timestamp: String,
    /// The value.
    pub value: f64,
}

/// Body of `PUT /api/v1/layout?tenant=SLUG`: the tenant's widgets in order (see
/// [`crate::layout`]). Every field is optional here so that validation can name each one
/// that is wrong.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayoutIn {
    /// The widgets, in the order they go on the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widgets: Option<Vec<WidgetIn>>,
}

/// One widget in [`LayoutIn`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetIn {
    /// The metric it shows (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Left off the page; default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// Kept at the top; default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
    /// `small` (default), `medium` or `large`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// `line` (default), `stat` or `gauge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Answer to `GET` and `PUT /api/v1/layout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutOut {
    /// The widgets the tenant arranged, in order; empty when it arranged none.
    pub widgets: Vec<WidgetOut>,
    /// When it was last saved (RFC 3339); `null` when never.
    pub updated_at: Option<String>,
}

/// One widget in [`LayoutOut`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetOut {
    /// The metric it shows.
    pub metric_name: String,
    /// Left off the page.
    pub hidden: bool,
    /// Kept at the top.
    pub pinned: bool,
    /// How much room it takes.
    pub size: crate::layout::WidgetSize,
    /// How it draws.
    pub kind: crate::layout::WidgetKind,
}

/// A dashboard user as `GET /api/v1/users` lists them (never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOut {
    /// Sign-in name.
    pub username: String,
    /// The tenant whose dashboard they see; `null` for admins.
    pub tenant: Option<String>,
    /// Whether they see and manage every tenant.
    pub admin: bool,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// Body of `POST /api/v1/users` (admins). Every field is optional here so that validation can
/// name each one that is missing or wrong.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    /// Sign-in name: 1 to 64 of lowercase letters, digits, `.`, `_`, `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// At least 10 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The tenant (slug) whose dashboard the user sees; absent for an admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("username", &self.username)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// Answer to `GET /api/v1/connect`: where programs send metrics, for the dashboard's
/// ready-to-run snippets (the HTTP API is the page's own origin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectInfo {
    /// The MQTT broker that takes metrics, if this server reads MQTT at all.
    pub mqtt: Option<MqttConnect>,
}

/// How to publish metrics over MQTT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttConnect {
    /// Broker host as clients reach it; `null` when it is the dashboard's own host.
    pub host: Option<String>,
    /// Broker port.
    pub port: u16,
    /// Topics are `{topic_root}/{tenant}/{agent_id}/{metric_name}`.
    pub topic_root: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_read_and_write_as_the_api_spells_them() {
        for (text, resolution) in [
            ("raw", Resolution::Raw),
            ("1m", Resolution::ONE_MINUTE),
            ("5m", Resolution::FIVE_MINUTES),
            ("30m", Resolution::Minutes(30)),
        ] {
            assert_eq!(serde_json::to_string(&resolution).unwrap_or_default(), format!("\"{text}\""));
            assert_eq!(text.parse::<Resolution>(), Ok(resolution));
        }
        assert!("0m".parse::<Resolution>().is_err() && "1h".parse::<Resolution>().is_err());
        assert_eq!("auto".parse::<ResolutionRequest>(), Ok(ResolutionRequest::Auto));
        assert_eq!("5m".parse::<ResolutionRequest>(), Ok(ResolutionRequest::Exact(Resolution::FIVE_MINUTES)));
        let err = "10m".parse::<ResolutionRequest>().unwrap_err();
        assert!(err.contains("raw, 1m, 5m, auto"), "{err}");
        for (text, request) in [
            ("raw", ResolutionRequest::Exact(Resolution::Raw)),
            ("1m", ResolutionRequest::Exact(Resolution::ONE_MINUTE)),
            ("5m", ResolutionRequest::Exact(Resolution::FIVE_MINUTES)),
            ("auto", ResolutionRequest::Auto),
        ] {
            assert_eq!(serde_json::to_string(&request).unwrap_or_default(), format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<ResolutionRequest>(&format!("\"{text}\"")).ok(), Some(request));
        }
        assert!(serde_json::from_str::<ResolutionRequest>("\"30m\"").is_err());
    }

    #[test]
    fn a_metrics_query_is_typed_and_written_with_the_names_the_api_always_had() {
        let query = MetricsQuery {
            metric_name: Some("cpu".into()),
            resolution: Some(ResolutionRequest::Auto),
            max_points: Some(200),
            limit: Some(10),
            ..MetricsQuery::default()
        };
        let json = serde_json::to_value(&query).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"metric_name": "cpu", "resolution": "auto", "max_points": 200, "limit": 10})
        );
        assert_eq!(serde_json::from_value::<MetricsQuery>(json).ok(), Some(query));
        assert_eq!(serde_json::to_value(MetricsQuery::default()).unwrap_or_default(), serde_json::json!({}));
    }

    #[test]
    fn statuses_are_enums_written_as_the_api_always_spelled_them() {
        fn check<T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug>(value: T, text: &str) {
            let json = format!("\"{text}\"");
            assert_eq!(serde_json::to_string(&value).unwrap_or_default(), json);
            assert_eq!(serde_json::from_str::<T>(&json).ok(), Some(value), "{text}");
        }
        check(AgentStatus::Online, "online");
        check(AgentStatus::Offline, "offline");
        check(HealthStatus::Ok, "ok");
        check(HealthStatus::Degraded, "degraded");
        check(DependencyStatus::Up, "up");
        check(DependencyStatus::Down, "down");
        assert!(serde_json::from_str::<AgentStatus>("\"stale\"").is_err());
        assert_eq!("offline".parse(), Ok(AgentStatus::Offline));
        assert!("Online".parse::<AgentStatus>().unwrap_err().contains("online, offline"));

        let dependency = |status| DependencyHealth { status, backend: "sqlite".into(), error: None };
        let (up, down) = (dependency(DependencyStatus::Up), dependency(DependencyStatus::Down));
        assert_eq!(HealthStatus::of([&up, &up]), HealthStatus::Ok);
        assert_eq!(HealthStatus::of([&up, &down]), HealthStatus::Degraded);
    }

    #[test]
    fn a_tenant_update_tells_absent_from_null() {
        let update: UpdateTenant =
            serde_json::from_str(r#"{"retention_raw_hours":48,"retention_1m_days":null}"#).unwrap_or_default();
        assert_eq!(update.retention_raw_hours, Some(Some(48)));
        assert_eq!(update.retention_1m_days, Some(None));
        assert_eq!(update.retention_5m_days, None);
    }
}
