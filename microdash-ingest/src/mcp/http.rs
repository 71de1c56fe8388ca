//! `/mcp`: the MCP server over Streamable HTTP (rmcp's), stateless, JSON answers, behind a
//! bearer token and a Host and Origin allow-list.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use microdash_core::token::Scope;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::McpConfig;
use super::server::McpServer;
use crate::http::auth::bearer;
use crate::http::{ApiError, AppState};

/// The `/mcp` route, for [`crate::http::router`].
pub(crate) fn routes(state: &AppState, config: &McpConfig) -> Router<AppState> {
    let tools = McpServer::router();
    let factory_state = state.clone();
    let allow_writes = config.allow_writes;
    let rmcp_config = StreamableHttpServerConfig::default()
        // Every request stands alone (the protocol's 2026-07-28 revision has no sessions; older
        // clients are served statelessly too), so any API process answers any request.
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(config.allowed_hosts())
        .with_allowed_origins(config.allowed_origins())
        .enforce_origin_validation()
        .with_max_request_body_bytes(config.max_request_bytes)
        .with_cancellation_token(state.streams_stop.child_token());
    let service = StreamableHttpService::new(
        move || Ok(McpServer::with_router(factory_state.clone(), allow_writes, tools.clone())),
        Arc::new(NeverSessionManager::default()),
        rmcp_config,
    );
    Router::new()
        .route_service("/mcp", service)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
}

/// A bearer token with the `read` scope (or an admin's); a session cookie is not enough,
/// so a page that rebinds a name to this server cannot act as a signed-in user.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(header) = request.headers().get(AUTHORIZATION) else {
        return ApiError::unauthorized("the MCP endpoint needs an Authorization: Bearer <token> header")
            .into_response();
    };
    let auth = match bearer(&state, header).await {
        Ok(auth) => auth,
        Err(err) => return err.into_response(),
    };
    let admin = auth.0.tenant_id.is_none() && auth.0.scopes.contains(Scope::Admin);
    if !admin && !auth.0.scopes.contains(Scope::Read) {
        return ApiError::forbidden("the MCP endpoint needs a token with the read scope").into_response();
    }
    request.extensions_mut().insert(auth);
    next.run(request).await
}
