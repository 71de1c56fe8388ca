//! Operational endpoints: health, liveness, Prometheus metrics, 404.
//!
//! These carry no tenant data and are left unauthenticated so load balancers and
//! Prometheus can reach them; put them behind the network boundary you trust.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use microdash_core::api::{DependencyHealth, DependencyStatus, HealthResponse, HealthStatus};

use super::{ApiError, AppState};

/// Each dependency's status; `503` when any is down.
pub(super) async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let health = health_of(&state).await;
    let status = match health.status {
        HealthStatus::Ok => StatusCode::OK,
        HealthStatus::Degraded => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(health))
}

/// Each dependency's status, as `GET /api/v1/health` and the MCP tools answer.
pub(crate) async fn health_of(state: &AppState) -> HealthResponse {
    let (db, queue) = tokio::join!(state.store.ping(), state.queue.ping());
    let check = |backend: &str, result: Result<(), String>| DependencyHealth {
        status: if result.is_ok() { DependencyStatus::Up } else { DependencyStatus::Down },
        backend: backend.to_owned(),
        error: result.err(),
    };
    // Reachable is not enough: the workers say whether writes go through.
    let db = db.map_err(|e| e.to_string()).and_then(|()| match state.telemetry.write_failure() {
        Some(why) => Err(format!("writes failing: {why}")),
        None => Ok(()),
    });
    let checks = BTreeMap::from([
        ("database".to_owned(), check(state.store.backend().name(), db)),
        ("queue".to_owned(), check(state.queue.backend_name(), queue.map_err(|e| e.to_string()))),
    ]);
    HealthResponse { status: HealthStatus::of(checks.values()), checks }
}

/// The process is up and serving.
pub(super) async fn livez() -> &'static str {
    "ok\n"
}

/// Prometheus text exposition.
pub(super) async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    let depth = state.queue.depth().await.ok();
    if let Some(usage) = state.queue.journal_usage() {
        state.telemetry.record_journal(usage);
    }
    state.telemetry.record_connections_held(state.holds.len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.telemetry.encode(depth))
}

pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// Paths outside the API when the server has no dashboard build to serve.
pub(super) async fn dashboard_missing(uri: axum::http::Uri) -> ApiError {
    if uri.path() != "/" && uri.path() != "/index.html" {
        return ApiError::not_found("no such endpoint");
    }
    ApiError::not_here(
        "dashboard_not_built",
        "this server has no dashboard build; run scripts/build-web.sh or set web_dir",
    )
}
