//! Typed calls to the server's JSON API. Same-origin, so the session cookie rides along.

use gloo_net::http::{Request, RequestBuilder, Response};
use microdash_core::api::alert::{
    AlertEventOut, AlertOut, AlertRuleIn, AlertRuleOut, AlertState, ChannelIn, ChannelOut, NotificationOut,
};
use microdash_core::api::{
    AgentOut, ConnectInfo, CreateTenant, CreateToken, CreateUser, CreatedToken, ErrorBody, FieldError, FleetOut,
    LayoutIn, LayoutOut, QueryResponse, SeriesOut, SessionOut, SignIn, TenantOut, TokenOut, UserOut,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};

use crate::model::range::{QueryPlan, query_pairs};

/// A failed call, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status; 0 when the server could not be reached.
    pub status: u16,
    /// The server's message, or what went wrong on the way.
    pub message: String,
    /// Validation failures (422): what is wrong with each named field.
    pub details: Vec<FieldError>,
}

impl ApiError {
    fn network(err: impl std::fmt::Display) -> ApiError {
        ApiError { status: 0, message: format!("cannot reach the server: {err}"), details: Vec::new() }
    }

    /// Whether the server has no such endpoint or thing (404): a server without alerting
    /// answers its endpoints so.
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

async fn read<T: DeserializeOwned>(response: Response) -> Result<T, ApiError> {
    let status = response.status();
    if !(200..300).contains(&status) {
        return Err(failure(response).await);
    }
    response.json::<T>().await.map_err(|e| ApiError {
        status,
        message: format!("unexpected answer: {e}"),
        details: Vec::new(),
    })
}

/// The error a non-2xx answer carries.
async fn failure(response: Response) -> ApiError {
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(body) => ApiError { status, message: body.message, details: body.details },
        Err(_) => ApiError { status, message: format!("the server answered {status}"), details: Vec::new() },
    }
}

/// A call answered with no body (204).
async fn no_content(request: RequestBuilder) -> Result<(), ApiError> {
    let response = request.send().await.map_err(ApiError::network)?;
    if (200..300).contains(&response.status()) { Ok(()) } else { Err(failure(response).await) }
}

async fn get<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ApiError> {
    read(request.send().await.map_err(ApiError::network)?).await
}

/// `GET url` for what the overview shows first: the answer `static/prefetch.js` asked for
/// before the app was fetched and compiled, when it has one for exactly this `url`, else a
/// request now. `url` is a path with its query, written as prefetch.js writes it.
async fn get_first<T: DeserializeOwned>(url: String) -> Result<T, ApiError> {
    // A failed early answer (signed out then, say) is asked again rather than shown.
    if let Some(answer) = prefetched(&url)
        && let Ok(value) = read_prefetched(answer).await
    {
        return Ok(value);
    }
    get(Request::get(&url)).await
}

async fn read_prefetched<T: DeserializeOwned>(answer: js_sys::Promise) -> Result<T, ApiError> {
    let answer =
        wasm_bindgen_futures::JsFuture::from(answer).await.map_err(|err| ApiError::network(format!("{err:?}")))?;
    read(Response::from(web_sys::Response::from(answer))).await
}

/// When prefetch.js's answer for `url` arrived (ms since the epoch).
fn prefetched_at(url: &str) -> Option<i64> {
    let window: JsValue = web_sys::window()?.into();
    let times = js_sys::Reflect::get(&window, &JsValue::from_str("__microdashPrefetchedAt")).ok()?;
    times.dyn_into::<js_sys::Map>().ok()?.get(&JsValue::from_str(url)).as_f64().map(|ms| ms as i64)
}

/// Take prefetch.js's answer for `url`, once: a later call asks the server again.
fn prefetched(url: &str) -> Option<js_sys::Promise> {
    let window: JsValue = web_sys::window()?.into();
    let answers = js_sys::Reflect::get(&window, &JsValue::from_str("__microdashPrefetched")).ok()?;
    let answers = answers.dyn_into::<js_sys::Map>().ok()?;
    let key = JsValue::from_str(url);
    let answer = answers.get(&key);
    answers.delete(&key);
    answer.dyn_into().ok()
}

async fn send_json<B: serde::Serialize, T: DeserializeOwned>(request: RequestBuilder, body: &B) -> Result<T, ApiError> {
    let request = request.json(body).map_err(ApiError::network)?;
    read(request.send().await.map_err(ApiError::network)?).await
}

/// The signed-in user, or an error (401) when there is none.
pub async fn session() -> Result<SessionOut, ApiError> {
    get(Request::get("/api/v1/session")).await
}

/// Sign in; the server sets the session cookie.
pub async fn sign_in(username: &str, password: &str) -> Result<SessionOut, ApiError> {
    let body = SignIn { username: username.to_owned(), password: password.to_owned() };
    send_json(Request::post("/api/v1/session"), &body).await
}

/// Sign out; the server clears the cookie.
pub async fn sign_out() -> Result<(), ApiError> {
    let response = Request::delete("/api/v1/session").send().await.map_err(ApiError::network)?;
    if response.status() == 204 {
        Ok(())
    } else {
        Err(ApiError { status: response.status(), message: "sign-out failed".into(), details: Vec::new() })
    }
}

/// Tenants the user may see.
pub async fn tenants() -> Result<Vec<TenantOut>, ApiError> {
    get_first("/api/v1/tenants".to_owned()).await
}

/// A tenant's agents and their status.
pub async fn agents(tenant: &str) -> Result<Vec<AgentOut>, ApiError> {
    get(Request::get("/api/v1/agents").query([("tenant", tenant)])).await
}

/// A tenant's series.
pub async fn series(tenant: &str) -> Result<Vec<SeriesOut>, ApiError> {
    get(Request::get("/api/v1/series").query([("tenant", tenant)])).await
}

/// One metric's points (raw, or rollup buckets) as `plan` says, optionally of one agent.
pub async fn history(
    tenant: &str,
    metric: &str,
    agent: Option<&str>,
    plan: &QueryPlan,
) -> Result<QueryResponse, ApiError> {
    let params = query_pairs(&plan.query(tenant, metric, agent));
    get(Request::get("/api/v1/metrics").query(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))).await
}

/// A tenant's hosts with their latest values (the overview), and when the answer arrived (ms
/// since the epoch), to compare the server's clock in it with.
pub async fn fleet(tenant: &str) -> Result<(FleetOut, i64), ApiError> {
    // A tenant's user's own fleet, which prefetch.js asked for before the tenants were known.
    const OWN: &str = "/api/v1/fleet";
    if let Some(answer) = prefetched(OWN)
        && let Ok(own) = read_prefetched::<FleetOut>(answer).await
        && own.tenant == tenant
    {
        let arrived = prefetched_at(OWN).unwrap_or_else(|| js_sys::Date::now() as i64);
        return Ok((own, arrived));
    }
    let answer = get(Request::get("/api/v1/fleet").query([("tenant", tenant)])).await?;
    Ok((answer, js_sys::Date::now() as i64))
}

/// A tenant's saved layout (empty when it never saved one).
pub async fn layout(tenant: &str) -> Result<LayoutOut, ApiError> {
    get(Request::get("/api/v1/layout").query([("tenant", tenant)])).await
}

/// Save a tenant's layout in place of the one it had.
pub async fn save_layout(tenant: &str, layout: &LayoutIn) -> Result<LayoutOut, ApiError> {
    send_json(Request::put("/api/v1/layout").query([("tenant", tenant)]), layout).await
}

/// Create a tenant (admins); a 422 names each field that is wrong.
pub async fn create_tenant(body: &CreateTenant) -> Result<TenantOut, ApiError> {
    send_json(Request::post("/api/v1/tenants"), body).await
}

/// Every dashboard user (admins).
pub async fn users() -> Result<Vec<UserOut>, ApiError> {
    get(Request::get("/api/v1/users")).await
}

/// Create a dashboard user (admins); a 422 names each field that is wrong.
pub async fn create_user(body: &CreateUser) -> Result<UserOut, ApiError> {
    send_json(Request::post("/api/v1/users"), body).await
}

/// Delete a dashboard user (admins).
pub async fn delete_user(username: &str) -> Result<(), ApiError> {
    no_content(Request::delete(&format!("/api/v1/users/{}", js_sys::encode_uri_component(username)))).await
}

/// Where programs send metrics besides the HTTP API.
pub async fn connect() -> Result<ConnectInfo, ApiError> {
    get(Request::get("/api/v1/connect")).await
}

/// Tokens the user may manage.
pub async fn tokens() -> Result<Vec<TokenOut>, ApiError> {
    get(Request::get("/api/v1/tokens")).await
}

/// Create a token; the answer holds its secret, shown once.
pub async fn create_token(body: &CreateToken) -> Result<CreatedToken, ApiError> {
    send_json(Request::post("/api/v1/tokens"), body).await
}

/// Revoke a token.
pub async fn revoke_token(id: i64) -> Result<TokenOut, ApiError> {
    get(Request::delete(&format!("/api/v1/tokens/{id}"))).await
}

/// A tenant's alert rules.
pub async fn alert_rules(tenant: &str) -> Result<Vec<AlertRuleOut>, ApiError> {
    get(Request::get("/api/v1/alert-rules").query([("tenant", tenant)])).await
}

/// One alert rule.
pub async fn alert_rule(tenant: &str, id: i64) -> Result<AlertRuleOut, ApiError> {
    get(Request::get(&format!("/api/v1/alert-rules/{id}")).query([("tenant", tenant)])).await
}

/// Create an alert rule; a 422 names each field that is wrong.
pub async fn create_rule(tenant: &str, rule: &AlertRuleIn) -> Result<AlertRuleOut, ApiError> {
    send_json(Request::post("/api/v1/alert-rules").query([("tenant", tenant)]), rule).await
}

/// Replace an alert rule.
pub async fn update_rule(tenant: &str, id: i64, rule: &AlertRuleIn) -> Result<AlertRuleOut, ApiError> {
    send_json(Request::put(&format!("/api/v1/alert-rules/{id}")).query([("tenant", tenant)]), rule).await
}

/// Delete an alert rule.
pub async fn delete_rule(tenant: &str, id: i64) -> Result<(), ApiError> {
    no_content(Request::delete(&format!("/api/v1/alert-rules/{id}")).query([("tenant", tenant)])).await
}

/// A tenant's alert instances, of one state or all.
pub async fn alerts(tenant: &str, state: Option<AlertState>) -> Result<Vec<AlertOut>, ApiError> {
    let mut request = Request::get("/api/v1/alerts").query([("tenant", tenant)]);
    if let Some(state) = state {
        request = request.query([("state", state.as_str())]);
    }
    get(request).await
}

/// Alert transitions, newest first; `params` are the history query's (see
/// [`crate::model::alerts::HistoryFilter::params`]).
pub async fn alert_history(tenant: &str, params: &[(&str, String)]) -> Result<Vec<AlertEventOut>, ApiError> {
    let request = Request::get("/api/v1/alerts/history").query([("tenant", tenant)]);
    get(request.query(params.iter().map(|(k, v)| (*k, v.as_str())))).await
}

/// A tenant's notification channels.
pub async fn channels(tenant: &str) -> Result<Vec<ChannelOut>, ApiError> {
    get(Request::get("/api/v1/channels").query([("tenant", tenant)])).await
}

/// Create a channel.
pub async fn create_channel(tenant: &str, channel: &ChannelIn) -> Result<ChannelOut, ApiError> {
    send_json(Request::post("/api/v1/channels").query([("tenant", tenant)]), channel).await
}

/// Replace a channel; without a secret the stored one is kept.
pub async fn update_channel(tenant: &str, id: i64, channel: &ChannelIn) -> Result<ChannelOut, ApiError> {
    send_json(Request::put(&format!("/api/v1/channels/{id}")).query([("tenant", tenant)]), channel).await
}

/// Delete a channel.
pub async fn delete_channel(tenant: &str, id: i64) -> Result<(), ApiError> {
    no_content(Request::delete(&format!("/api/v1/channels/{id}")).query([("tenant", tenant)])).await
}

/// Answer to a test message's request (202).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TestQueued {
    /// The delivery log entry to watch.
    pub notification_id: i64,
}

/// Queue a test message to a channel.
pub async fn test_channel(tenant: &str, id: i64) -> Result<TestQueued, ApiError> {
    get(Request::post(&format!("/api/v1/channels/{id}/test")).query([("tenant", tenant)])).await
}

/// Most delivery log entries a screen shows.
pub const NOTIFICATION_LIMIT: u32 = 50;

/// The delivery log, newest first, of one channel or all.
pub async fn notifications(tenant: &str, channel: Option<i64>) -> Result<Vec<NotificationOut>, ApiError> {
    let limit = NOTIFICATION_LIMIT.to_string();
    let mut request = Request::get("/api/v1/notifications").query([("tenant", tenant), ("limit", limit.as_str())]);
    if let Some(channel) = channel {
        request = request.query([("channel_id", channel.to_string())]);
    }
    get(request).await
}
