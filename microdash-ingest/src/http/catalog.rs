//! What a tenant has: its agents (with online status) and its series. The dashboard builds
//! its overview and its widgets from these.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use microdash_core::api::{AgentOut, SeriesOut, TenantQuery};
use microdash_core::metric::format_millis;

use super::auth::Auth;
use super::{ApiError, AppState};
use crate::clock::now_ms;

/// How often an agent is assumed to report when it has not said: it is offline once nothing
/// arrived for twice this long.
pub const DEFAULT_AGENT_INTERVAL_MS: i64 = 30_000;

fn tenant_param(params: Result<Query<TenantQuery>, QueryRejection>) -> Result<TenantQuery, ApiError> {
    params.map(|Query(p)| p).map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", r.body_text()))
}

pub(super) async fn agents(
    State(state): State<AppState>,
    auth: Auth,
    params: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<Vec<AgentOut>>, ApiError> {
    let tenant_id = auth.tenant_to_read(&state, tenant_param(params)?.tenant.as_deref()).await?;
    let now = now_ms();
    let agents = state.store.list_agents(tenant_id).await?;
    Ok(Json(
        agents
            .into_iter()
            .map(|a| AgentOut {
                status: if now - a.last_seen_ms <= 2 * DEFAULT_AGENT_INTERVAL_MS { "online" } else { "offline" }
                    .to_owned(),
                last_seen: format_millis(a.last_seen_ms),
                agent_id: a.agent_id,
            })
            .collect(),
    ))
}

pub(super) async fn series(
    State(state): State<AppState>,
    auth: Auth,
    params: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<Vec<SeriesOut>>, ApiError> {
    let tenant_id = auth.tenant_to_read(&state, tenant_param(params)?.tenant.as_deref()).await?;
    let series = state.store.list_series(tenant_id).await?;
    Ok(Json(
        series
            .into_iter()
            .map(|s| SeriesOut { metric_name: s.metric_name, agent_id: s.agent_id, tags: s.tags })
            .collect(),
    ))
}
