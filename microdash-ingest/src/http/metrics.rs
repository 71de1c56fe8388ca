//! `POST /api/v1/metrics` and `GET /api/v1/metrics`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use microdash_core::api::{
    Accepted, MetricsQuery, PointOut, QueryResponse, Resolution, ResolutionRequest, TimestampIn,
};
use microdash_core::metric::{check_identifier, format_millis};
use microdash_core::rollup::auto_rollup;
use microdash_core::token::Scope;
use microdash_store::{Credential, PointQuery, RollupLevel};

use super::auth::Auth;
use super::{ApiError, ApiQuery, AppState};
use crate::clock::now_ms;
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
        return Err(ApiError::unsupported_media_type("with a session, send Content-Type: application/json"));
    }
    check_json_content_type(&headers)?;
    let body =
        body.map_err(|rejection| ApiError::unreadable_body(rejection, state.ingestor.limits().max_body_bytes))?;
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
        Err(ApiError::unsupported_media_type(format!("Content-Type {mime:?} is not JSON; send application/json")))
    }
}

/// Points or rollup buckets of the caller's tenant.
pub(super) async fn query(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<MetricsQuery>,
) -> Result<axum::response::Response, ApiError> {
    Ok(answer_json(&query_metrics(&state, &auth, params).await?))
}

/// About how many bytes one point or bucket takes in an answer (series names, an RFC 3339
/// time and five numbers).
const ANSWER_BYTES_PER_POINT: usize = 180;

/// An answer as JSON, written into a buffer sized for it up front: answers run to megabytes,
/// and a buffer grown by doubling from a few bytes copied them over and over (8 % of a month's
/// query).
fn answer_json(answer: &QueryResponse) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut body = Vec::with_capacity(64 + answer.data.len() * ANSWER_BYTES_PER_POINT);
    match serde_json::to_writer(&mut body, answer) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // Only numbers and strings: serialising cannot fail, but if it did the client gets
        // an error rather than half an answer.
        Err(err) => ApiError::internal(err).into_response(),
    }
}

/// The answer to a query of the caller's tenant (or the one an admin names): what
/// `GET /api/v1/metrics` and the MCP tools answer.
pub(crate) async fn query_metrics(
    state: &AppState,
    auth: &Auth,
    params: MetricsQuery,
) -> Result<QueryResponse, ApiError> {
    let tenant_id = auth.tenant_to_read(state, params.tenant.as_deref()).await?;
    let plan = plan(state, params)?;
    let tenant =
        state.store.tenant(tenant_id).await?.ok_or_else(|| ApiError::forbidden("the tenant no longer exists"))?;
    // What is stored, not only what the settings keep: after a retention is raised, the
    // data deleted under the shorter one is still missing.
    let coverage = tenant.coverage(state.config.retention);
    let now = now_ms();
    let mut query = plan.query;
    let end = query.end_ms.unwrap_or(now);
    let raw_horizon = coverage.horizon_ms(Resolution::Raw, now);
    // Without a start, a range is needed to choose by: what raw points still cover, or, for
    // an `end_time` before that, as long a range as raw points are kept, ending there (an
    // empty range would answer nothing).
    let start = query.start_ms.unwrap_or_else(|| {
        if end > raw_horizon { raw_horizon } else { end.saturating_sub(coverage.retention.keep_ms(Resolution::Raw)) }
    });
    let resolution = match plan.resolution {
        ResolutionRequest::Exact(Resolution::Raw) if query.start_ms.is_some() || end <= raw_horizon => {
            // Raw may no longer cover the range: answer from the finest rollup that does, and
            // say so in `resolution`, rather than with an empty or partial answer (the
            // limit still keeps the most recent buckets).
            coverage.finest_covering(if query.start_ms.is_some() { start } else { end - 1 }, now)
        }
        ResolutionRequest::Exact(resolution) => resolution,
        ResolutionRequest::Auto => {
            // Auto answers exactly the range it chose by.
            (query.start_ms, query.end_ms) = (Some(start), Some(end));
            let finest = coverage.finest_covering(start, now);
            let raw_fits = finest == Resolution::Raw
                && state.store.most_points_per_series(tenant_id, &query).await? <= plan.max_points;
            if raw_fits {
                Resolution::Raw
            } else {
                let finest_rollup = coverage.finest_covering(start, now).max(Resolution::ONE_MINUTE);
                auto_rollup(start, end, plan.max_points, finest_rollup)
            }
        }
    };
    let data: Vec<PointOut> = match resolution.bucket_ms() {
        None => {
            let points = state.store.query_points(tenant_id, &query).await?;
            points
                .into_iter()
                .map(|p| PointOut {
                    metric_name: p.metric_name,
                    agent_id: p.agent_id,
                    tags: p.tags,
                    timestamp: format_millis(p.timestamp_ms),
                    value: p.value,
                    ..PointOut::default()
                })
                .collect()
        }
        Some(width) => {
            // Read from the coarsest stored level whose buckets tile the answer's, retained
            // for the range; merging is exact, so coarser answers lose nothing. A range
            // older than every level's retention reads the longest kept.
            let retained = |level: RollupLevel| start >= coverage.horizon_ms(level.resolution(), now);
            let level = RollupLevel::coarsest_tiling(width, retained)
                .or_else(|| RollupLevel::coarsest_tiling(width, |_| true))
                .unwrap_or(RollupLevel::OneMinute);
            let merged = state.store.query_buckets(tenant_id, level, width, &query).await?;
            merged
                .into_iter()
                .map(|b| PointOut {
                    metric_name: b.metric_name,
                    agent_id: b.agent_id,
                    tags: b.tags,
                    timestamp: format_millis(b.bucket_ms),
                    value: b.aggregate.avg(),
                    min: Some(b.aggregate.min),
                    max: Some(b.aggregate.max),
                    count: Some(b.aggregate.count),
                    last: Some(b.aggregate.last),
                })
                .collect()
        }
    };
    Ok(QueryResponse { resolution, count: data.len(), data })
}

/// A checked query: what was asked for, in the store's terms.
struct Plan {
    resolution: ResolutionRequest,
    max_points: usize,
    query: PointQuery,
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

/// A time in a query string (RFC 3339 or Unix seconds) as Unix milliseconds; `422` naming
/// `field` when it is neither.
pub(super) fn time_param(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value.map(|v| TimestampIn::from_query(v).to_millis().map_err(|m| ApiError::invalid_field(field, m))).transpose()
}

fn plan(state: &AppState, params: MetricsQuery) -> Result<Plan, ApiError> {
    check_filters(state, params.metric_name.as_deref(), params.agent_id.as_deref())?;
    let start_ms = time_param("start_time", params.start_time.as_deref())?;
    let end_ms = time_param("end_time", params.end_time.as_deref())?;
    if let (Some(start), Some(end)) = (start_ms, end_ms)
        && end <= start
    {
        return Err(ApiError::invalid_field("end_time", "must be after start_time"));
    }
    // Values that do not parse were refused by `ApiQuery` (`422` naming the field); the
    // bounds depend on the server's settings, so they are checked here.
    let resolution = params.resolution.unwrap_or(ResolutionRequest::Exact(Resolution::Raw));
    // Callers in this process (the MCP tools) build the enum themselves, which can hold
    // resolutions the wire refuses (`30m`): they are held to the same four.
    resolution.to_string().parse::<ResolutionRequest>().map_err(|m| ApiError::invalid_field("resolution", m))?;
    let max = state.config.max_query_limit;
    let number = |field: &str, value: Option<usize>, default: usize| match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_field(field, format!("must be a whole number from 1 to {max}"))),
    };
    // `auto` answers up to `max_points` per series, so by default as many as a query may.
    let default_limit = match resolution {
        ResolutionRequest::Auto => max,
        ResolutionRequest::Exact(_) => state.config.default_query_limit,
    };
    let limit = number("limit", params.limit, default_limit)?;
    let max_points = number("max_points", params.max_points, DEFAULT_MAX_POINTS)?;
    let query = PointQuery { metric_name: params.metric_name, agent_id: params.agent_id, start_ms, end_ms, limit };
    Ok(Plan { resolution, max_points, query })
}

/// Buckets per series `auto` answers at most unless told otherwise: Grafana's default
/// `maxDataPoints`, about one per horizontal pixel of a wide chart.
const DEFAULT_MAX_POINTS: usize = 1_500;
