//! Dashboard sign-in: `POST /api/v1/session` sets the session cookie, `GET` says who is
//! signed in, `DELETE` signs out.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use microdash_core::api::{SessionOut, SignIn};
use microdash_store::{Credential, User};

use super::auth::{Auth, SESSION_COOKIE, check_origin, cookie};
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

/// Failed sign-ins allowed per username within [`FAILURE_WINDOW_MS`] before further attempts
/// are refused with `429` until the window ends: password guessing gets a handful of tries
/// per quarter hour, not thousands.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Usernames tracked at most; beyond it, expired entries are swept.
const MAX_TRACKED: usize = 10_000;

/// Recent failed sign-ins by username.
#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

impl SignInThrottle {
    /// How long `username` must wait, if it has failed too often lately.
    fn wait_ms(&self, username: &str, now: i64) -> Option<i64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (count, since) = *failures.get(username)?;
        let left = since + FAILURE_WINDOW_MS - now;
        (count >= MAX_FAILURES && left > 0).then_some(left)
    }

    fn failed(&self, username: &str, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (_, since)| now - *since < FAILURE_WINDOW_MS);
        }
        let entry = failures.entry(username.to_owned()).or_insert((0, now));
        if now - entry.1 >= FAILURE_WINDOW_MS {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    fn succeeded(&self, username: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(username);
    }
}

pub(super) async fn sign_in(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    // Signing in from another site would sign the victim in as the attacker (login CSRF).
    check_origin(&method, &headers, &state.config.allowed_origins)?;
    let Json(body) = body.map_err(|r| ApiError::new(r.status(), "bad_body", r.body_text()))?;
    let now = now_ms();
    if let Some(wait) = state.sign_in_throttle.wait_ms(&body.username, now) {
        let secs = (wait + 999) / 1000;
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed sign-ins for this user; try again in {secs} s"),
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            err.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(err);
    }
    let ttl = state.config.session_ttl;
    let signed_in = state.store.sign_in(&body.username, &body.password, now, ttl.as_millis() as i64).await?;
    let Some((user, secret)) = signed_in else {
        tracing::info!(username = %microdash_core::text::for_log(&body.username), "failed sign-in");
        state.sign_in_throttle.failed(&body.username, now);
        return Err(ApiError::unauthorized("wrong username or password"));
    };
    state.sign_in_throttle.succeeded(&body.username);
    let cookie = session_cookie(&state, &secret, ttl.as_secs())?;
    Ok(([(header::SET_COOKIE, cookie)], Json(session_out(&user))).into_response())
}

pub(super) async fn current(State(state): State<AppState>, auth: Auth) -> Result<Json<SessionOut>, ApiError> {
    let Credential::Session { user_id, .. } = auth.0.credential else {
        return Err(ApiError::unauthorized("not signed in (API tokens have no session)"));
    };
    let user = state.store.user_by_id(user_id).await?;
    user.map(|u| Json(session_out(&u))).ok_or_else(|| ApiError::unauthorized("the user no longer exists"))
}

pub(super) async fn sign_out(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_origin(&method, &headers, &state.config.allowed_origins)?;
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        state.store.sign_out(secret).await?;
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, session_cookie(&state, "", 0)?)]).into_response())
}
