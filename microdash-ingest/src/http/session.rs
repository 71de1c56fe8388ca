//! Dashboard sign-in: `POST /api/v1/session` sets the session cookie, `GET` says who is
//! signed in, `DELETE` signs out.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use microdash_core::api::{SessionOut, SignIn};
use microdash_store::{Credential, User};

use super::auth::{Auth, SESSION_COOKIE, cookie};
use super::{ApiError, AppState};
use crate::clock::now_ms;

fn session_out(user: &User) -> SessionOut {
    SessionOut { username: user.username.clone(), tenant: user.tenant_slug.clone(), admin: user.tenant_id.is_none() }
}

/// `Set-Cookie` for a session value; an empty value with `Max-Age=0` clears it.
fn session_cookie(state: &AppState, value: &str, max_age_s: u64) -> Result<HeaderValue, ApiError> {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

pub(super) async fn sign_in(
    State(state): State<AppState>,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|r| ApiError::new(r.status(), "bad_body", r.body_text()))?;
    let ttl = state.config.session_ttl;
    let signed_in = state.store.sign_in(&body.username, &body.password, now_ms(), ttl.as_millis() as i64).await?;
    let Some((user, secret)) = signed_in else {
        tracing::info!(username = %body.username, "failed sign-in");
        return Err(ApiError::unauthorized("wrong username or password"));
    };
    let cookie = session_cookie(&state, &secret, ttl.as_secs())?;
    Ok(([(header::SET_COOKIE, cookie)], Json(session_out(&user))).into_response())
}

pub(super) async fn current(State(state): State<AppState>, auth: Auth) -> Result<Json<SessionOut>, ApiError> {
    let Credential::Session { user_id } = auth.0.credential else {
        return Err(ApiError::unauthorized("not signed in (API tokens have no session)"));
    };
    let user = state.store.list_users().await?.into_iter().find(|u| u.id == user_id);
    user.map(|u| Json(session_out(&u))).ok_or_else(|| ApiError::unauthorized("the user no longer exists"))
}

pub(super) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        state.store.sign_out(secret).await?;
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, session_cookie(&state, "", 0)?)]).into_response())
}
