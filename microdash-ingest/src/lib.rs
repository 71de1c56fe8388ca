//! microdash ingestion: everything between a client's request and a stored row.
//!
//! - [`http`]: the axum application ([`Runtime::router`], [`Runtime::serve`]): ingestion, queries,
//!   health, admin, Prometheus metrics.
//! - [`ingestor`]: the one entry point every source feeds (validate, count, enqueue).
//! - [`queue`]: the in-process and Redis Streams queues behind one [`queue::Queue`].
//! - [`worker`]: the workers that store queued batches, retry, and dead-letter.
//! - [`live`]: the live bus that carries persisted metrics to stream subscribers.
//! - [`mqtt`]: the MQTT bridge, another source for the [`Ingestor`].
//! - [`quota`]: per-tenant ingest rate and series limits, which the [`Ingestor`] enforces.
//! - [`retention`]: the background task that deletes what tenants no longer keep.
//! - [`revocation`]: revoked credentials lose their open streams, polls and MQTT
//!   connections within a second, on every process (a bus over Redis, and a recheck).
//! - [`alerting`]: alert evaluation (one process at a time, by lease) and notification delivery.
//! - [`telemetry`]: the process's own counters, exposed at `/metrics`.
//! - [`views`]: stored records as the API shows them.
//! - `mcp` (cargo feature `mcp`): the Model Context Protocol server, at `/mcp` and over stdio.
//!
//! - [`runtime`]: the [`Runtime`] that assembles all of the above and runs each role.
//!
//! API boundary: services embed this crate by building a [`queue::Queue`] and a
//! [`microdash_store::Store`] and handing them to [`Runtime::builder`]; the `microdash`
//! binary and every test do exactly that, so the pipeline is wired in one place.

pub mod alerting;
pub mod clock;
pub mod http;
pub mod ingestor;
pub mod live;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod mqtt;
mod net;
pub mod queue;
pub mod quota;
pub mod retention;
pub mod revocation;
pub mod runtime;
pub mod telemetry;
pub mod views;
pub mod worker;

pub use ingestor::{IngestError, Ingestor, Submitted};
pub use runtime::{Runtime, RuntimeBuilder, Workers};

// The README's examples are compiled (and the runnable ones run) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
