//! Dashboard sign-in: `POST /api/v1/session` sets the session cookie, `GET` says who is
//! signed in, `DELETE` signs out (and ends the session's open streams).
//!
//! Every sign-in attempt is counted in the database against its username and its client
//! address before the password is checked (`Store::count_sign_in_attempt`), so guesses sent
//! at once, or to several API processes, or across a restart, all count: past
//! [`super::SignInLimits`] the answer is `429` with `Retry-After`, without a check.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use microdash_core::api::{SessionOut, SignIn};
use microdash_core::text::for_log;
use microdash_store::{Admission, AttemptKey, AttemptLimit, Credential, User, check_username};

use super::auth::{Auth, SESSION_COOKIE, check_origin, cookie};
use super::{ApiError, ApiJson, AppState};
use crate::clock::now_ms;
use crate::net::client_network;

fn session_out(user: &User) -> SessionOut {
    SessionOut { username: user.username.clone(), tenant: user.tenant_slug.clone(), admin: user.tenant_id.is_none() }
}

/// `Set-Cookie` for a session value; an empty value with `Max-Age=0` clears it.
fn session_cookie(state: &AppState, value: &str, max_age_s: u64) -> Result<HeaderValue, ApiError> {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .map_err(ApiError::internal)
}

pub(super) async fn sign_in(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    // Signing in from another site would sign the victim in as the attacker (login CSRF).
    check_origin(&method, &headers, &state.config.allowed_origins)?;
    let now = now_ms();
    let client =
        peer.map(|Extension(ConnectInfo(peer))| client_address(peer.ip(), &headers, &state.config.trusted_proxies));
    let limits = &state.config.sign_in;
    let window_ms = limits.window.as_millis() as i64;
    let mut counted_against = Vec::with_capacity(2);
    // A name that is no username cannot sign in, and no password is checked for it.
    if check_username(&body.username).is_ok() {
        counted_against.push(AttemptLimit {
            key: AttemptKey::User(body.username.clone()),
            max_attempts: limits.attempts_per_user,
        });
    }
    if let Some(client) = &client {
        counted_against
            .push(AttemptLimit { key: AttemptKey::Address(client.clone()), max_attempts: limits.attempts_per_address });
    }
    sweep_expired_attempts(&state, window_ms, now);
    // Counted before the password is checked, so guesses sent at once are all counted.
    let counted = match state.store.count_sign_in_attempt(&counted_against, window_ms, now).await? {
        Admission::Admitted(counted) => counted,
        Admission::Refused { key, retry_after_ms } => {
            let secs = (retry_after_ms as u64).div_ceil(1000);
            let username = for_log(&body.username);
            let (field, whose) = match key {
                AttemptKey::User(_) => ("username", "for this user"),
                AttemptKey::Address(_) => ("client_address", "from this address"),
            };
            tracing::info!(%username, client = client.as_deref().unwrap_or("unknown"), limit = field, "sign-in refused: too many attempts");
            return Err(ApiError::too_many_attempts(
                field,
                format!("too many sign-in attempts {whose}; try again in {secs} s"),
                secs,
            ));
        }
    };
    let ttl = state.config.session_ttl;
    let signed_in = state.store.sign_in(&body.username, &body.password, now, ttl.as_millis() as i64).await?;
    let Some((user, secret)) = signed_in else {
        tracing::info!(username = %for_log(&body.username), client = client.as_deref().unwrap_or("unknown"), "failed sign-in");
        return Err(ApiError::unauthorized("wrong username or password"));
    };
    if let Err(err) = state.store.sign_in_succeeded(&counted).await {
        // The user is in; their earlier attempts just keep counting until the window ends.
        tracing::warn!(error = %err, "resetting the sign-in count failed");
    }
    let cookie = session_cookie(&state, &secret, ttl.as_secs())?;
    Ok(([(header::SET_COOKIE, cookie)], Json(session_out(&user))).into_response())
}

/// How often a process deletes counters whose window has ended.
const SWEEP_INTERVAL_MS: i64 = 60_000;

/// Delete expired sign-in counters, at most once a minute per process and off the request
/// path: they count as zero already, this only keeps the table small.
fn sweep_expired_attempts(state: &AppState, window_ms: i64, now: i64) {
    let last = state.sign_in_sweep.load(Ordering::Relaxed);
    if now - last < SWEEP_INTERVAL_MS
        || state.sign_in_sweep.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        match store.expire_sign_in_attempts(window_ms, now).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "swept expired sign-in counters"),
            Err(err) => tracing::warn!(error = %err, "sweeping expired sign-in counters failed"),
        }
    });
}

/// The address sign-ins from `peer` are counted by: the peer's own, or, when the peer is a
/// trusted proxy, the nearest address in `X-Forwarded-For` that is not one (each proxy
/// appends the address it was connected from, so only the right end can be believed). IPv6
/// addresses count by their /64 network, which one client usually holds whole.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> String {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let mut client = peer.to_canonical();
    if is_trusted(client) {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.into_iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !is_trusted(client) {
                        break;
                    }
                }
                // A hop that is no address cannot be believed beyond: count the last good one.
                Err(_) => break,
            }
        }
    }
    match client_network(client) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(network) => format!("{network}/64"),
    }
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
        state.revoker().sign_out(secret).await?;
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, session_cookie(&state, "", 0)?)]).into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(peer: &str, forwarded: &[&str], trusted: &str, expected: &str) {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        let trusted = super::super::parse_networks(trusted).unwrap();
        let got = client_address(peer.parse().unwrap(), &headers, &trusted);
        assert_eq!(got, expected, "{peer} {forwarded:?} trusting {trusted:?}");
    }

    #[test]
    fn the_client_is_the_peer_or_what_trusted_proxies_say() {
        check("192.0.2.1", &[], "", "192.0.2.1");
        check("192.0.2.1", &["203.0.113.9"], "", "192.0.2.1");
        check("::ffff:192.0.2.1", &[], "", "192.0.2.1");
        check("2001:db8:1:2:3:4:5:6", &[], "", "2001:db8:1:2::/64");
        check("10.0.0.5", &["203.0.113.9"], "10.0.0.0/8", "203.0.113.9");
        check("10.0.0.5", &["198.51.100.1, 203.0.113.9"], "10.0.0.0/8", "203.0.113.9");
        check("10.0.0.5", &["198.51.100.1", "203.0.113.9, 10.0.0.7"], "10.0.0.0/8", "203.0.113.9");
        check("10.0.0.5", &["198.51.100.1, 10.0.0.7"], "10.0.0.0/8", "198.51.100.1");
        check("10.0.0.5", &["not an address, 203.0.113.9"], "10.0.0.0/8", "203.0.113.9");
        check("10.0.0.5", &["203.0.113.9, garbage"], "10.0.0.0/8", "10.0.0.5");
        check("10.0.0.5", &[], "10.0.0.0/8", "10.0.0.5");
        check("::1", &["2001:db8::7"], "::1", "2001:db8::/64");
    }
}
