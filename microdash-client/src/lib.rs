//! Rust client for the microdash HTTP API.
//!
//! - [`Client`] (configured with [`Client::builder`]) calls every endpoint: push and query
//!   metrics (raw, or rollups over a range with [`RangeQuery`]), the tenant's agents and
//!   series, tenants and tokens, health, and alerting (rules, alerts and their history,
//!   channels, the delivery log). Requests that are safe to repeat are retried with
//!   backoff, honouring `Retry-After`.
//! - [`Client::stream`] follows a tenant's live stream and resumes it by itself after a
//!   drop, from the last cursor ([`stream`]).
//! - [`reporter::Reporter`] batches an application's points in the background, retries
//!   them, and stores each once (dedupe ids).
//! - [`recorder::MicrodashRecorder`] (cargo feature `metrics`, on by default) is a recorder
//!   for the `metrics` crate's facade, reporting counters, gauges and histograms through a
//!   reporter.
//!
//! ```no_run
//! # async fn demo() -> Result<(), microdash_client::Error> {
//! use std::time::Duration;
//! use microdash_client::{Client, MetricIn, RangeQuery, ResolutionRequest};
//!
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .token("mdk_...")
//!     .timeout(Duration::from_secs(10))
//!     .retries(3)
//!     .build()?;
//! client.push(&[MetricIn::new("cpu.usage", 0.42).agent("web-1").tag("dc", "eu").dedupe_id("web-1-0001")]).await?;
//!
//! let now = 1_800_000_000_000;
//! let day = RangeQuery::new(now - 86_400_000, now).metric("cpu.usage").resolution(ResolutionRequest::Auto);
//! let answer = client.query_range(&day).await?;
//! println!("{} points at {}", answer.count, answer.resolution);
//! # Ok(()) }
//! ```
//!
//! Nothing here changes process-wide state: TLS is rustls with ring and the system's trust
//! store, set on the client's own `reqwest::Client` (no crypto provider is installed for the
//! process), and only [`recorder::MicrodashRecorderBuilder::install`] sets a global, the
//! `metrics` recorder, because that is what it is for.
//!
//! Errors the server answers with come back as [`Error::Api`], carrying the status, the
//! server's stable error code, its message, any per-field details and `Retry-After`.

mod admin;
mod alerts;
mod client;
mod error;
mod query;
#[cfg(feature = "metrics")]
pub mod recorder;
pub mod reporter;
pub mod stream;

pub use client::{Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_RETRIES, DEFAULT_TIMEOUT};
pub use error::Error;
pub use microdash_core::api::{
    Accepted, AgentOut, AgentStatus, CreateTenant, CreateToken, CreatedToken, DependencyHealth, DependencyStatus,
    ErrorBody, FieldError, HealthResponse, HealthStatus, LatestResponse, MetricIn, MetricsQuery, PointOut,
    QueryResponse, Resolution, ResolutionRequest, SeriesOut, StreamQuery, TenantOut, TimestampIn, TokenOut,
    UpdateTenant,
};
pub use microdash_core::token::{Scope, Scopes};
pub use query::RangeQuery;
pub use stream::{LiveEvent, LiveStream};

/// The alerting API's wire types, as the alerting methods of [`Client`] take and answer
/// them (a re-export of `microdash_core::api::alert`).
pub mod alert {
    pub use microdash_core::api::alert::*;
}

// The README's examples are compiled (and the runnable ones run) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
