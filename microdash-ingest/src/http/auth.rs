//! Authentication as an axum extractor: a bearer token (programs) or the session cookie
//! (the dashboard; browsers cannot put headers on an EventSource).
//!
//! Cookie-authenticated requests are safe from cross-site forgery because the cookie is
//! `SameSite=Strict` (never sent on requests started by another site) and `HttpOnly`.

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
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            let session = cookie(&parts.headers, SESSION_COOKIE)
                .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> header or session"))?;
            let principal = state
                .store
                .authenticate_session(session, now_ms())
                .await?
                .ok_or_else(|| ApiError::unauthorized("session expired or signed out; sign in again"))?;
            return Ok(Auth(principal));
        };
        bearer(state, header).await
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
    Ok(Auth(principal))
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
