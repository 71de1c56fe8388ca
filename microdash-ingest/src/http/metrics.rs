//! `POST /api/v1/metrics` and `GET /api/v1/metrics`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use microdash_core::api::{Accepted, MetricsQuery, PointOut, QueryResponse, Resolution, TimestampIn};
use microdash_core::metric::{check_identifier, format_millis};
use microdash_core::token::Scope;
use microdash_store::{Credential, PointQuery};

use super::auth::Auth;
use super::{ApiError, AppState};
use crate::telemetry::Source;

/// Validate and enqueue; `202` once the batch is in the queue.
pub(super) async fn ingest(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let tenant_id = auth.tenant_with(Scope::Ingest)?;
    // A browser sends a body without Content-Type cross-origin without asking first; with a
    // session cookie that would let another page push into the user's tenant.
    if matches!(auth.0.credential, Credential::Session { .. }) && !headers.contains_key(header::CONTENT_TYPE) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "with a session, send Content-Type: application/json",
        ));
    }
    check_json_content_type(&headers)?;
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            let max = state.ingestor.limits().max_body_bytes;
            ApiError::new(status, "payload_too_large", format!("request body is larger than {max} bytes"))
        } else {
            ApiError::new(status, "bad_body", rejection.body_text())
        }
    })?;
    let accepted = state.ingestor.submit_json(Source::Http, tenant_id, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted })))
}

/// A missing Content-Type is tolerated (the body must still be JSON); a non-JSON one is not.
fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" || mime.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type {mime:?} is not JSON; send application/json"),
        ))
    }
}

/// Points of the caller's tenant.
pub(super) async fn query(
    State(state): State<AppState>,
    auth: Auth,
    params: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Json<QueryResponse>, ApiError> {
    let Query(params) = params.map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", r.body_text()))?;
    let tenant_id = auth.tenant_to_read(&state, params.tenant.as_deref()).await?;
    let (resolution, query) = point_query(&state, params)?;
    let points = state.store.query_points(tenant_id, &query).await?;
    let data: Vec<PointOut> = points
        .into_iter()
        .map(|p| PointOut {
            metric_name: p.metric_name,
            agent_id: p.agent_id,
            tags: p.tags,
            timestamp: format_millis(p.timestamp_ms),
            value: p.value,
        })
        .collect();
    Ok(Json(QueryResponse { resolution, count: data.len(), data }))
}

/// The `metric_name` and `agent_id` filters of a query or a stream, checked like metrics are.
pub(super) fn check_filters(
    state: &AppState,
    metric_name: Option<&str>,
    agent_id: Option<&str>,
) -> Result<(), ApiError> {
    let limits = state.ingestor.limits();
    if let Some(name) = metric_name {
        check_identifier(name, limits.max_name_bytes).map_err(|m| ApiError::invalid_field("metric_name", m))?;
    }
    if let Some(agent) = agent_id {
        check_identifier(agent, limits.max_agent_id_bytes).map_err(|m| ApiError::invalid_field("agent_id", m))?;
    }
    Ok(())
}

fn point_query(state: &AppState, params: MetricsQuery) -> Result<(Resolution, PointQuery), ApiError> {
    check_filters(state, params.metric_name.as_deref(), params.agent_id.as_deref())?;
    let time = |field: &str, value: &Option<String>| -> Result<Option<i64>, ApiError> {
        value
            .as_deref()
            .map(|v| TimestampIn::from_query(v).to_millis().map_err(|m| ApiError::invalid_field(field, m)))
            .transpose()
    };
    let start_ms = time("start_time", &params.start_time)?;
    let end_ms = time("end_time", &params.end_time)?;
    if let (Some(start), Some(end)) = (start_ms, end_ms) {
        if end <= start {
            return Err(ApiError::invalid_field("end_time", "must be after start_time"));
        }
    }
    let resolution = match params.resolution.as_deref() {
        None | Some("raw") => Resolution::Raw,
        Some("1m" | "5m") => {
            return Err(ApiError::invalid_field("resolution", "rollups (1m, 5m) are not available yet; use raw"));
        }
        Some(other) => {
            return Err(ApiError::invalid_field("resolution", format!("{other:?} is not one of raw, 1m, 5m")));
        }
    };
    let max = state.config.max_query_limit;
    let limit = match params.limit.as_deref() {
        None => state.config.default_query_limit,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_field("limit", format!("must be a whole number from 1 to {max}")));
            }
        },
    };
    Ok((resolution, PointQuery { metric_name: params.metric_name, agent_id: params.agent_id, start_ms, end_ms, limit }))
}
