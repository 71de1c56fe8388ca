//! The fleet overview (`GET /api/v1/fleet?tenant=SLUG`): a row per host of a tenant with the
//! latest values of the host agent's metrics, its status by the interval it announced and the
//! number of its alerts that fire. Reading needs `read` on the tenant (or an admin naming it).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use microdash_core::api::alert::AlertState;
use microdash_core::api::{FleetOut, HostOut, LatestOut, TenantQuery};
use microdash_core::fleet::{FLEET_METRICS, HostStatus, INTERVAL_METRIC};
use microdash_core::metric::format_millis;

use super::auth::Auth;
use super::{ApiError, ApiQuery, AppState};
use crate::clock::now_ms;

pub(super) async fn fleet(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<Json<FleetOut>, ApiError> {
    let tenant_id = auth.tenant_to_read(&state, params.tenant.as_deref()).await?;
    Ok(Json(fleet_of(&state, tenant_id).await?))
}

/// A tenant's hosts with their latest values, as `GET /api/v1/fleet` answers.
pub(crate) async fn fleet_of(state: &AppState, tenant_id: i64) -> Result<FleetOut, ApiError> {
    let (tenant, agents, latest, firing) = tokio::try_join!(
        state.store.tenant(tenant_id),
        state.store.list_agents(tenant_id),
        state.store.latest_values(tenant_id, &FLEET_METRICS),
        state.store.alert_instances(tenant_id, Some(AlertState::Firing)),
    )?;
    let tenant = tenant.ok_or_else(|| ApiError::not_found("the tenant no longer exists"))?;
    let now = now_ms();
    let mut firing_on: HashMap<String, usize> = HashMap::new();
    for alert in firing {
        if let Some(agent) = alert.agent_id {
            *firing_on.entry(agent).or_default() += 1;
        }
    }
    let mut latest_of: BTreeMap<String, Vec<LatestOut>> = BTreeMap::new();
    for value in latest {
        let Some(agent) = value.agent_id else { continue };
        latest_of.entry(agent).or_default().push(LatestOut {
            metric_name: value.metric_name,
            tags: value.tags,
            timestamp: format_millis(value.ts_ms),
            value: value.value,
        });
    }
    let hosts = agents
        .into_iter()
        .map(|agent| {
            let latest = latest_of.remove(&agent.agent_id).unwrap_or_default();
            let interval_s = latest
                .iter()
                .find(|l| l.metric_name == INTERVAL_METRIC)
                .map(|l| l.value)
                .filter(|s| s.is_finite() && *s > 0.0);
            HostOut {
                status: HostStatus::of(now - agent.last_seen_ms, interval_s),
                last_seen: format_millis(agent.last_seen_ms),
                interval_s,
                latest,
                firing_alerts: firing_on.get(&agent.agent_id).copied().unwrap_or(0),
                agent_id: agent.agent_id,
            }
        })
        .collect();
    Ok(FleetOut { tenant: tenant.slug, server_time: format_millis(now), hosts })
}
