//! microdash alerting (arrives with the alerts issue).
//!
//! This crate will hold the alert rule model, the pure state machine
//! `(state, observation, now) -> (state, actions)` that moves a rule through
//! OK -> PENDING -> FIRING -> resolved, and the notifiers (webhook, email) that carry out the
//! actions on transitions only. It depends on `microdash-core` and never on the store or the
//! HTTP layer, so services can embed the evaluator with their own data source.
