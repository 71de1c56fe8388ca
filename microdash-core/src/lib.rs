//! microdash's domain, shared by every other crate and by the dashboard.
//!
//! - [`api`]: the JSON wire types of the HTTP API (what clients send and receive), the
//!   alerting API's in [`api::alert`].
//! - [`metric`]: validated domain types ([`metric::Metric`], [`metric::Batch`]) and the
//!   validation that turns wire input into them under configurable [`metric::Limits`].
//! - [`alert`]: validated alert rules ([`alert::AlertRule`]) and notification channels
//!   ([`alert::Channel`]), and the validation that produces them.
//! - [`rollup`]: rollup buckets and their exact aggregates, retention, and how `auto`
//!   chooses a resolution.
//! - [`quota`]: per-tenant ingest rate and series limits, and which values they accept.
//! - [`token`]: API token format, scopes and hashing.
//! - [`fleet`]: which metrics describe a host and when it counts as online, stale or offline.
//! - [`layout`]: a tenant's dashboard layout (widgets hidden, pinned, sized, drawn), validated.
//! - [`error`]: the [`error::ErrorKind`] every crate's errors map to, so the HTTP layer can
//!   choose a status in one place.
//!
//! Architecture invariant: this crate does no IO and never depends on tokio, diesel or
//! reqwest. It takes the current time as an argument instead of reading a clock, which keeps
//! it deterministic in tests and lets it compile for `wasm32-unknown-unknown`.

pub mod alert;
pub mod api;
pub mod error;
pub mod fleet;
pub mod layout;
pub mod metric;
pub mod mqtt;
pub mod quota;
pub mod rollup;
pub mod text;
pub mod token;

pub use error::ErrorKind;
pub use metric::{Batch, Limits, Metric, SeriesKey};

// The README's examples are compiled (and the runnable ones run) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
