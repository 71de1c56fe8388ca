//! Authentication as an axum extractor: a bearer token (programs) or the session cookie
//! (the dashboard; browsers cannot put headers on an EventSource).
//!
//! Cookie-authenticated requests are kept safe from cross-site forgery twice: the cookie is
//! `SameSite=Strict` (never sent on requests started by another site) and `HttpOnly`, and
//! a request that changes something must also come from this server's own origin
//! (`check_origin`), which covers same-site neighbours and browsers that ignore SameSite.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use microdash_core::token::Scope;
use microdash_store::{Credential, Principal};

use super::{ApiError, AppState};
use crate::clock::now_ms;

/// `last_used_at` is written at most this often per token, so authentication stays a read.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy)]
pub struct Auth(pub Principal);

impl Auth {
    /// The tenant a data request acts for, if the token has `scope`.
    pub fn tenant_with(&self, scope: Scope) -> Result<i64, ApiError> {
        let tenant_id = self
            .0
            .tenant_id
            .ok_or_else(|| ApiError::forbidden("admin tokens hold no tenant data; use a tenant token"))?;
        self.require(scope)?;
        Ok(tenant_id)
    }

    /// Fail with `403` unless the token has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this token lacks the {} scope", scope.name())))
        }
    }
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "microdash_session";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await
    }
}

/// The caller, named from here on in the request's span (`http::request_span`).
fn named(principal: Principal) -> Auth {
    if let Some(tenant_id) = principal.tenant_id {
        tracing::Span::current().record("tenant_id", tenant_id);
    }
    Auth(principal)
}

/// The caller a request's bearer token or session cookie names.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Auth, ApiError> {
    let Some(header) = parts.headers.get(AUTHORIZATION) else {
        let session = cookie(&parts.headers, SESSION_COOKIE)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> header or session"))?;
        check_origin(&parts.method, &parts.headers, &state.config.allowed_origins)?;
        let principal = state
            .store
            .authenticate_session(session, now_ms())
            .await?
            .ok_or_else(|| ApiError::unauthorized("session expired or signed out; sign in again"))?;
        return Ok(named(principal));
    };
    bearer(state, header).await
}

/// Refuse a state-changing browser request from another origin (`403`): its `Origin` must
/// be this server's (the `Host` it was sent to, or one of `allowed_origins`, such as the
/// public URL behind a proxy); without `Origin`, `Sec-Fetch-Site` must not say cross-site.
/// Requests with neither header come from programs, not browsers, and pass.
pub(super) fn check_origin(
    method: &axum::http::Method,
    headers: &axum::http::HeaderMap,
    allowed_origins: &[String],
) -> Result<(), ApiError> {
    use axum::http::Method;
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let refuse = |what: String| Err(ApiError::forbidden(format!("cross-origin request refused: {what}")));
    match headers.get(axum::http::header::ORIGIN).map(|o| o.to_str().unwrap_or_default()) {
        Some(origin) => {
            let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
            let lower = origin.to_ascii_lowercase();
            let authority = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
            let same_host = authority.is_some_and(|a| !host.is_empty() && a.eq_ignore_ascii_case(host));
            let listed = allowed_origins.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin));
            if same_host || listed {
                Ok(())
            } else {
                let shown: String = origin.chars().take(100).collect();
                refuse(format!("Origin {shown:?} is not this server's"))
            }
        }
        None => match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            Some("cross-site" | "same-site") => refuse("sent from another site".into()),
            _ => Ok(()),
        },
    }
}

/// The caller named by an `Authorization: Bearer <token>` header (never a session cookie:
/// for the endpoints that programs, not browsers, call).
pub(crate) async fn bearer(state: &AppState, header: &axum::http::HeaderValue) -> Result<Auth, ApiError> {
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be 'Bearer <token>'"))?;
    let principal =
        state.store.authenticate(token).await?.ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    if let Credential::Token(token_id) = principal.credential {
        state.token_usage.touch(&state.store, token_id);
    }
    Ok(named(principal))
}

/// Throttles `last_used_at` writes to one per token per `TOUCH_INTERVAL_MS`.
#[derive(Default)]
pub struct TokenUsage {
    last_written: Mutex<HashMap<i64, i64>>,
}

impl TokenUsage {
    /// Record that `token_id` was used now, unless that was written within the interval.
    pub(crate) fn touch(&self, store: &microdash_store::Store, token_id: i64) {
        let now = now_ms();
        {
            let mut last = self.last_written.lock().unwrap_or_else(|p| p.into_inner());
            match last.get(&token_id) {
                Some(at) if now - at < TOUCH_INTERVAL_MS => return,
                _ => last.insert(token_id, now),
            };
        }
        let store = store.clone();
        // Off the request path: a slow write must not delay the answer.
        tokio::spawn(async move {
            if let Err(err) = store.touch_tokens(&[token_id], now).await {
                tracing::warn!(token_id, error = %err, "recording token use failed");
            }
        });
    }
}
