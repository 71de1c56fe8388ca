//! Alert rules, notification channels, current alerts, their history and the delivery log.
//!
//! Reading needs `read` on the tenant (or an admin naming it with `?tenant=`); changing
//! rules and channels needs a token with the `alerts` scope, a signed-in user of the tenant
//! or an admin. Another tenant's rule or channel is `404`, exactly like one that does not
//! exist, so ids cannot be probed.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use microdash_alert::deliver::Message;
use microdash_alert::matcher::InstanceKey;
use microdash_alert::payload::Alert;
use microdash_alert::state::Notify;
use microdash_core::alert::{Channel, NamedChannel, parse_channel, parse_rule};
use microdash_core::api::alert::{
    AlertEventOut, AlertHistoryQuery, AlertOut, AlertRuleOut, AlertsQuery, ChannelOut, NotificationKind,
    NotificationOut, NotificationStatus, Severity,
};
use microdash_core::api::{FieldError, TenantQuery};
use microdash_core::metric::format_millis;
use microdash_core::token::Scope;
use microdash_store::{EventFilter, NewNotification, NotificationRow};
use serde::Deserialize;

use super::auth::Auth;
use super::metrics::time_param;
use super::{ApiError, ApiQuery, AppState};
use crate::clock::now_ms;

/// Most history entries or log lines one request returns.
const MAX_LIST: usize = 1_000;

impl Auth {
    /// The tenant whose alerts the caller may change: its own with the `alerts` scope, or
    /// the one an admin names.
    pub(crate) async fn tenant_to_manage(&self, state: &AppState, slug: Option<&str>) -> Result<i64, ApiError> {
        match (self.0.tenant_id, slug) {
            (None, Some(slug)) if self.0.scopes.contains(Scope::Admin) => {
                let tenant = state.store.tenant_by_slug(slug).await?;
                tenant.map(|t| t.id).ok_or_else(|| ApiError::not_found(format!("no tenant {slug:?}")))
            }
            (None, None) if self.0.scopes.contains(Scope::Admin) => {
                Err(ApiError::invalid_field("tenant", "is required for admins: add ?tenant=<slug>"))
            }
            (Some(own), _) => {
                if !self.0.scopes.contains(Scope::Alerts) {
                    return Err(ApiError::forbidden(
                        "changing alerts needs a token with the alerts scope, a signed-in user or an admin",
                    ));
                }
                match slug {
                    Some(slug) if state.store.tenant_by_slug(slug).await?.map(|t| t.id) != Some(own) => {
                        Err(ApiError::forbidden(format!("no access to tenant {slug:?}")))
                    }
                    _ => Ok(own),
                }
            }
            (None, _) => Err(ApiError::forbidden("this token lacks the admin scope")),
        }
    }
}

/// `?tenant=` on the endpoints that take nothing else.
async fn readable(state: &AppState, auth: &Auth, params: TenantQuery) -> Result<i64, ApiError> {
    auth.tenant_to_read(state, params.tenant.as_deref()).await
}

async fn manageable(state: &AppState, auth: &Auth, params: TenantQuery) -> Result<i64, ApiError> {
    auth.tenant_to_manage(state, params.tenant.as_deref()).await
}

/// A rule's channels must be the tenant's own.
async fn check_channels(state: &AppState, tenant_id: i64, channels: &[i64]) -> Result<(), ApiError> {
    if channels.is_empty() {
        return Ok(());
    }
    let existing = state.store.existing_channel_ids(tenant_id, channels).await?;
    let missing: Vec<String> = channels.iter().filter(|id| !existing.contains(id)).map(i64::to_string).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(vec![FieldError::new(
            None,
            Some("channels".into()),
            format!("no channel with id {} in this tenant", missing.join(", ")),
        )]))
    }
}

pub(super) async fn list_rules(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<Json<Vec<AlertRuleOut>>, ApiError> {
    let tenant_id = readable(&state, &auth, params).await?;
    Ok(Json(rules_of(&state, tenant_id).await?))
}

/// A tenant's rules (also for the MCP tools).
pub(crate) async fn rules_of(state: &AppState, tenant_id: i64) -> Result<Vec<AlertRuleOut>, ApiError> {
    let rules = state.store.alert_rules(tenant_id).await?;
    Ok(rules.into_iter().map(|r| r.rule.to_out(r.id, r.created_at_ms, r.updated_at_ms)).collect())
}

/// One of a tenant's rules (also for the MCP tools).
pub(crate) async fn rule_of(state: &AppState, tenant_id: i64, id: i64) -> Result<AlertRuleOut, ApiError> {
    let rule = state.store.alert_rule(tenant_id, id).await?.ok_or_else(|| no_rule(id))?;
    Ok(rule.rule.to_out(rule.id, rule.created_at_ms, rule.updated_at_ms))
}

pub(super) async fn get_rule(
    State(state): State<AppState>,
    auth: Auth,
    id: Result<Path<i64>, PathRejection>,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<Json<AlertRuleOut>, ApiError> {
    let id = path_id(id)?;
    let tenant_id = readable(&state, &auth, params).await?;
    Ok(Json(rule_of(&state, tenant_id, id).await?))
}

/// The `{id}` of a path; anything but a number names nothing there is (`404`, as JSON).
fn path_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    id.map(|Path(id)| id).map_err(|_| ApiError::not_found("no such id: ids are numbers"))
}

fn no_rule(id: i64) -> ApiError {
    ApiError::not_found(format!("no alert rule {id}"))
}

fn no_channel(id: i64) -> ApiError {
    ApiError::not_found(format!("no channel {id}"))
}

pub(super) async fn create_rule(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<TenantQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<AlertRuleOut>), ApiError> {
    let tenant_id = manageable(&state, &auth, params).await?;
    Ok((StatusCode::CREATED, Json(create_rule_from(&state, tenant_id, &body).await?)))
}

/// Validate the JSON `body` of a rule and store it as a new rule of the tenant (also for
/// the MCP tools).
pub(crate) async fn create_rule_from(state: &AppState, tenant_id: i64, body: &[u8]) -> Result<AlertRuleOut, ApiError> {
    let rule = parse_rule(body, state.ingestor.limits()).map_err(ApiError::invalid_fields)?;
    check_channels(state, tenant_id, &rule.channels).await?;
    let stored = state.store.create_alert_rule(tenant_id, &rule, now_ms()).await?;
    Ok(stored.rule.to_out(stored.id, stored.created_at_ms, stored.updated_at_ms))
}

pub(super) async fn update_rule(
    State(state): State<AppState>,
    auth: Auth,
    id: Result<Path<i64>, PathRejection>,
    ApiQuery(params): ApiQuery<TenantQuery>,
    body: Bytes,
) -> Result<Json<AlertRuleOut>, ApiError> {
    let id = path_id(id)?;
    let tenant_id = manageable(&state, &auth, params).await?;
    Ok(Json(update_rule_from(&state, tenant_id, id, &body).await?))
}

/// Validate the JSON `body` of a rule and replace the tenant's rule `id` with it (also for
/// the MCP tools).
pub(crate) async fn update_rule_from(
    state: &AppState,
    tenant_id: i64,
    id: i64,
    body: &[u8],
) -> Result<AlertRuleOut, ApiError> {
    let rule = parse_rule(body, state.ingestor.limits()).map_err(ApiError::invalid_fields)?;
    check_channels(state, tenant_id, &rule.channels).await?;
    let stored = state.store.update_alert_rule(tenant_id, id, &rule, now_ms()).await?.ok_or_else(|| no_rule(id))?;
    Ok(stored.rule.to_out(stored.id, stored.created_at_ms, stored.updated_at_ms))
}

pub(super) async fn delete_rule(
    State(state): State<AppState>,
    auth: Auth,
    id: Result<Path<i64>, PathRejection>,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id)?;
    let tenant_id = manageable(&state, &auth, params).await?;
    if state.store.delete_alert_rule(tenant_id, id).await? { Ok(StatusCode::NO_CONTENT) } else { Err(no_rule(id)) }
}

/// Rule names by id, for answers that show them.
async fn rule_names(state: &AppState, tenant_id: i64) -> Result<HashMap<i64, String>, ApiError> {
    Ok(state.store.alert_rules(tenant_id).await?.into_iter().map(|r| (r.id, r.rule.name)).collect())
}

pub(super) async fn list_alerts(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<AlertsQuery>,
) -> Result<Json<Vec<AlertOut>>, ApiError> {
    let tenant_id = auth.tenant_to_read(&state, params.tenant.as_deref()).await?;
    Ok(Json(alerts_of(&state, tenant_id, params.state).await?))
}

/// A tenant's alert instances, of one state or all (also for the MCP tools).
pub(crate) async fn alerts_of(
    state: &AppState,
    tenant_id: i64,
    filter: Option<microdash_core::api::alert::AlertState>,
) -> Result<Vec<AlertOut>, ApiError> {
    let names = rule_names(state, tenant_id).await?;
    let instances = state.store.alert_instances(tenant_id, filter).await?;
    Ok(instances
        .into_iter()
        .map(|i| AlertOut {
            rule_name: names.get(&i.rule_id).cloned().unwrap_or_default(),
            rule_id: i.rule_id,
            agent_id: i.agent_id,
            tags: i.tags,
            state: i.state,
            severity: i.severity,
            value: i.value,
            since: format_millis(i.since_ms),
        })
        .collect())
}

pub(super) async fn history(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<AlertHistoryQuery>,
) -> Result<Json<Vec<AlertEventOut>>, ApiError> {
    let tenant_id = auth.tenant_to_read(&state, params.tenant.as_deref()).await?;
    Ok(Json(history_of(&state, tenant_id, &params).await?))
}

/// A tenant's alert transitions, newest first (also for the MCP tools).
pub(crate) async fn history_of(
    state: &AppState,
    tenant_id: i64,
    params: &AlertHistoryQuery,
) -> Result<Vec<AlertEventOut>, ApiError> {
    let filter = EventFilter {
        start_ms: time_param("start_time", params.start_time.as_deref())?,
        end_ms: time_param("end_time", params.end_time.as_deref())?,
        rule_id: params.rule_id,
        agent_id: params.agent_id.clone(),
        limit: params.limit.map_or(MAX_LIST, |l| (l as usize).min(MAX_LIST)),
    };
    let events = state.store.alert_events(tenant_id, &filter).await?;
    Ok(events
        .into_iter()
        .map(|e| {
            let at = format_millis(e.at_ms);
            AlertEventOut {
                id: e.id,
                rule_id: e.rule_id,
                rule_name: e.rule_name,
                agent_id: e.agent_id,
                tags: e.tags,
                state: e.to,
                severity: e.severity,
                value: e.value,
                since: at.clone(),
                from: e.from,
                to: e.to,
                at,
            }
        })
        .collect())
}

pub(super) async fn list_channels(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<Json<Vec<ChannelOut>>, ApiError> {
    let tenant_id = readable(&state, &auth, params).await?;
    let channels = state.store.channels(tenant_id).await?;
    Ok(Json(channels.into_iter().map(|c| c.channel.to_out(c.id, c.created_at_ms)).collect()))
}

pub(super) async fn create_channel(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<TenantQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<ChannelOut>), ApiError> {
    let tenant_id = manageable(&state, &auth, params).await?;
    let channel = parse_channel(&body).map_err(ApiError::invalid_fields)?;
    let stored = state.store.create_channel(tenant_id, &channel, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(stored.channel.to_out(stored.id, stored.created_at_ms))))
}

/// `PUT`: the whole channel; a webhook without `secret` keeps the one it had (answers never
/// show it, so an editor could not send it back) while its URL stays on the same host;
/// `"secret": null` clears it.
/// Whether a channel body says `"secret": null`: clear the stored secret, where leaving the
/// field out keeps it.
fn clears_secret(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .is_ok_and(|fields| fields.get("secret").is_some_and(serde_json::Value::is_null))
}

pub(super) async fn update_channel(
    State(state): State<AppState>,
    auth: Auth,
    id: Result<Path<i64>, PathRejection>,
    ApiQuery(params): ApiQuery<TenantQuery>,
    body: Bytes,
) -> Result<Json<ChannelOut>, ApiError> {
    let id = path_id(id)?;
    let tenant_id = manageable(&state, &auth, params).await?;
    let mut channel = parse_channel(&body).map_err(ApiError::invalid_fields)?;
    let current = state.store.channel(tenant_id, id).await?.ok_or_else(|| no_channel(id))?;
    // Kept only for the same receiver: signed deliveries to a new host could be replayed to
    // the old one.
    if let (
        Channel::Webhook { secret: new @ None, url: new_url, .. },
        Channel::Webhook { secret: Some(old), url: old_url, .. },
    ) = (&mut channel.channel, &current.channel.channel)
        && !clears_secret(&body)
        && microdash_core::text::origin(new_url) == microdash_core::text::origin(old_url)
    {
        *new = Some(old.clone());
    }
    let stored = state.store.update_channel(tenant_id, id, &channel, now_ms()).await?.ok_or_else(|| no_channel(id))?;
    Ok(Json(stored.channel.to_out(stored.id, stored.created_at_ms)))
}

pub(super) async fn delete_channel(
    State(state): State<AppState>,
    auth: Auth,
    id: Result<Path<i64>, PathRejection>,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id)?;
    let tenant_id = manageable(&state, &auth, params).await?;
    if state.store.delete_channel(tenant_id, id).await? { Ok(StatusCode::NO_CONTENT) } else { Err(no_channel(id)) }
}

/// Answer to `POST /api/v1/channels/{id}/test`.
#[derive(Debug, serde::Serialize)]
pub(super) struct TestQueued {
    /// The queued notification; follow it in `GET /api/v1/notifications`.
    notification_id: i64,
}

/// Queue a test notification to the channel; the evaluating process delivers it like any
/// other, and the delivery log shows how it went.
pub(super) async fn test_channel(
    State(state): State<AppState>,
    auth: Auth,
    id: Result<Path<i64>, PathRejection>,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<(StatusCode, Json<TestQueued>), ApiError> {
    let id = path_id(id)?;
    let tenant_id = manageable(&state, &auth, params).await?;
    let channel = state.store.channel(tenant_id, id).await?.ok_or_else(|| no_channel(id))?;
    // One test at a time per channel: tests cannot pile up in the queue every tenant's
    // notifications share.
    let recent = state.store.notifications(tenant_id, Some(id), 20).await?;
    if recent.iter().any(|n| n.kind == NotificationKind::Test && n.status == NotificationStatus::Pending) {
        return Err(ApiError::still_busy(
            "test_pending",
            format!("a test notification for channel {id} is still being delivered; see GET /api/v1/notifications"),
        ));
    }
    let tenant = state.store.tenant(tenant_id).await?.map(|t| t.slug).unwrap_or_default();
    let message = test_message(&tenant, &channel.channel, now_ms());
    let notification = NewNotification {
        channel_id: id,
        rule_id: None,
        agent_id: None,
        kind: NotificationKind::Test,
        payload: serde_json::to_string(&message).unwrap_or_default(),
    };
    let notification_id = state.store.enqueue_notification(tenant_id, &notification, now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { notification_id })))
}

/// What a test sends: a made-up firing alert of a rule named after the channel, so a receiver
/// sees exactly the shape real alerts have.
fn test_message(tenant: &str, channel: &NamedChannel, now: i64) -> Message {
    let rule = microdash_core::api::alert::AlertRuleIn {
        name: Some(format!("microdash test notification ({})", channel.name)),
        metric_name: Some("microdash.test".into()),
        operator: Some(microdash_core::api::alert::Operator::Gt),
        critical: Some(0.0),
        summary: Some("test notification from microdash: this channel works".into()),
        ..Default::default()
    }
    .validate()
    .unwrap_or_else(|_| unreachable!("the test rule is valid"));
    let notify = Notify {
        kind: NotificationKind::Test,
        severity: Severity::Critical,
        value: Some(1.0),
        started_at_ms: now,
        ended_at_ms: None,
    };
    let instance = InstanceKey::default();
    let alert = Alert { tenant, rule_id: 0, rule: &rule, instance: &instance, notify: &notify, external_url: "" };
    Message::for_channel(channel, &alert)
}

/// Query string of the delivery log.
#[derive(Debug, Default, Deserialize)]
pub(super) struct NotificationsQuery {
    tenant: Option<String>,
    channel_id: Option<i64>,
    limit: Option<usize>,
}

impl super::extract::QueryParams for NotificationsQuery {}

pub(super) async fn notifications(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<NotificationsQuery>,
) -> Result<Json<Vec<NotificationOut>>, ApiError> {
    let tenant_id = auth.tenant_to_read(&state, params.tenant.as_deref()).await?;
    let limit = params.limit.unwrap_or(100).min(MAX_LIST);
    let rows = state.store.notifications(tenant_id, params.channel_id, limit).await?;
    Ok(Json(rows.into_iter().map(notification_out).collect()))
}

fn notification_out(row: NotificationRow) -> NotificationOut {
    NotificationOut {
        id: row.id,
        channel_id: row.channel_id,
        rule_id: row.rule_id,
        agent_id: row.agent_id,
        kind: row.kind,
        status: row.status,
        attempts: row.attempts,
        last_error: row.last_error,
        http_status: row.http_status,
        created_at: format_millis(row.created_at_ms),
        sent_at: row.sent_at_ms.map(format_millis),
    }
}
