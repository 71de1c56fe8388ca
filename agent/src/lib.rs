//! microdash host agent: samples the host with `sysinfo` and publishes over MQTT on
//! `metrics/{tenant}/{agent_id}/{metric_name}` (or over HTTP through `microdash-client`),
//! keeping a bounded buffer while disconnected so that a short outage leaves no gap.
//!
//! - [`collect`]: what is measured, as [`collect::Sample`]s.
//! - [`publish`]: the transports and the outage buffer.
//! - [`error`]: [`AgentError`], what either can fail with.

pub mod collect;
pub mod error;
pub mod publish;

pub use error::AgentError;

// The README's examples are compiled (and the runnable ones run) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
