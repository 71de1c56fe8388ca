//! What a tenant has: its agents (with online status) and its series. The dashboard builds
//! its overview and its widgets from these.

use axum::Json;
use axum::extract::State;
use microdash_core::api::{AgentOut, AgentStatus, SeriesOut, TenantQuery};
use microdash_core::fleet::{HostStatus, INTERVAL_METRIC};
use microdash_core::metric::format_millis;

use super::auth::Auth;
use super::{ApiError, ApiQuery, AppState};
use crate::clock::now_ms;

pub(super) async fn agents(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<Json<Vec<AgentOut>>, ApiError> {
    let tenant_id = auth.tenant_to_read(&state, params.tenant.as_deref()).await?;
    Ok(Json(agents_of(&state, tenant_id).await?))
}

/// A tenant's agents with their status, as `GET /api/v1/agents` and the MCP tools answer.
pub(crate) async fn agents_of(state: &AppState, tenant_id: i64) -> Result<Vec<AgentOut>, ApiError> {
    let now = now_ms();
    let (agents, intervals) =
        tokio::try_join!(state.store.list_agents(tenant_id), state.store.latest_per_agent(tenant_id, INTERVAL_METRIC))?;
    Ok(agents
        .into_iter()
        .map(|a| {
            let interval_s = intervals.get(&a.agent_id).copied().filter(|s| s.is_finite() && *s > 0.0);
            // Online as the fleet overview says; stale counts as offline here.
            let online = HostStatus::of(now - a.last_seen_ms, interval_s) == HostStatus::Online;
            AgentOut {
                status: if online { AgentStatus::Online } else { AgentStatus::Offline },
                last_seen: format_millis(a.last_seen_ms),
                interval_s,
                agent_id: a.agent_id,
            }
        })
        .collect())
}

pub(super) async fn series(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<Json<Vec<SeriesOut>>, ApiError> {
    let tenant_id = auth.tenant_to_read(&state, params.tenant.as_deref()).await?;
    Ok(Json(series_of(&state, tenant_id).await?))
}

/// A tenant's series, as `GET /api/v1/series` and the MCP tools answer.
pub(crate) async fn series_of(state: &AppState, tenant_id: i64) -> Result<Vec<SeriesOut>, ApiError> {
    let series = state.store.list_series(tenant_id).await?;
    Ok(series
        .into_iter()
        .map(|s| SeriesOut { metric_name: s.metric_name, agent_id: s.agent_id, tags: s.tags })
        .collect())
}
