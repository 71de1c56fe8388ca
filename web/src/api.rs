//! Typed calls to the server's JSON API. Same-origin, so the session cookie rides along.

use gloo_net::http::{Request, RequestBuilder, Response};
use microdash_core::api::{
    AgentOut, CreateToken, CreatedToken, ErrorBody, QueryResponse, SeriesOut, SessionOut, SignIn, TenantOut, TokenOut,
};
use serde::de::DeserializeOwned;

use crate::model::range::QueryPlan;

/// A failed call, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status; 0 when the server could not be reached.
    pub status: u16,
    /// The server's message, or what went wrong on the way.
    pub message: String,
}

impl ApiError {
    fn network(err: impl std::fmt::Display) -> ApiError {
        ApiError { status: 0, message: format!("cannot reach the server: {err}") }
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
        let message = match response.json::<ErrorBody>().await {
            Ok(body) => body.message,
            Err(_) => format!("the server answered {status}"),
        };
        return Err(ApiError { status, message });
    }
    response.json::<T>().await.map_err(|e| ApiError { status, message: format!("unexpected answer: {e}") })
}

async fn get<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ApiError> {
    read(request.send().await.map_err(ApiError::network)?).await
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
        Err(ApiError { status: response.status(), message: "sign-out failed".into() })
    }
}

/// Tenants the user may see.
pub async fn tenants() -> Result<Vec<TenantOut>, ApiError> {
    get(Request::get("/api/v1/tenants")).await
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
    let mut params: Vec<(&str, String)> = vec![("tenant", tenant.to_owned()), ("metric_name", metric.to_owned())];
    if let Some(agent) = agent {
        params.push(("agent_id", agent.to_owned()));
    }
    params.extend(plan.params());
    get(Request::get("/api/v1/metrics").query(params.iter().map(|(k, v)| (*k, v.as_str())))).await
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
