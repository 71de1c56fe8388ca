//! `GET /api/v1/stream/{tenant}` (Server-Sent Events) and its polling fallback
//! `GET /api/v1/stream/{tenant}/latest`.
//!
//! Both read the same [`crate::live::Subscription`], so a poll answer holds exactly the points
//! the stream would have sent, and a stream event id and a poll cursor are interchangeable.
//!
//! Stream events: `ready` (opens every stream; its id is where the stream starts), `reset`
//! (instead of `ready` when `Last-Event-ID` could not be resumed: reload history), `points`
//! (a [`microdash_core::api::LiveFrame`]) and `cursor` (the position moved past batches the
//! filter left out). Comment lines are heartbeats. Revoking the token, signing out or
//! deleting the user ends the stream, and a waiting poll with `401`, within a second
//! ([`crate::revocation`]).
//!
//! Streams, and polls that wait, hold a connection each: [`StreamCounts`] caps them per
//! token (or sign-in) and per tenant (`429` naming the cap, with `Retry-After`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use microdash_core::api::{LatestResponse, LiveFrame, StreamMarker, StreamQuery};
use microdash_core::token::Scope;
use microdash_store::Credential;

use super::auth::Auth;
use super::{ApiError, ApiQuery, AppState};
use crate::live::{AlertNotice, Cursor, Lagged, LiveFilter, Subscription};
use crate::revocation::Hold;
use crate::telemetry::Telemetry;

/// How soon a browser's EventSource reconnects after losing the stream.
const RECONNECT_MS: Duration = Duration::from_millis(1_000);

/// The live stream of one tenant.
pub(super) async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    Path(slug): Path<String>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let tenant_id = auth.tenant_readable(&state, &slug).await?;
    // Where to resume: the browser's Last-Event-ID on its own reconnects, else `after` (a
    // client opening a new stream where its polling stopped). A malformed one is treated like
    // a stale one: the client is told to reset.
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(params.after.as_deref())
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<Cursor>().unwrap_or_else(|_| Cursor::unresumable()));
    let live_filter = filter(&state, &params)?;
    let permit = open_permit(&state, auth.0.credential, tenant_id)?;
    let subscription = state.live.subscribe(tenant_id, after, live_filter);
    let marker = StreamMarker { cursor: subscription.cursor().to_string() };
    let opening = Event::default()
        .event(if subscription.was_reset() { "reset" } else { "ready" })
        .id(marker.cursor.clone())
        .retry(RECONNECT_MS)
        .json_data(&marker)
        .map_err(ApiError::internal)?;
    // Revoking the credential ends the stream (see `crate::revocation`).
    let hold = state.holds.hold(auth.0.credential);
    let open = OpenStream::new(subscription, &state, hold, tenant_id, permit);
    let points = futures_util::stream::unfold(open, |mut open| async move {
        let event = open.next_event().await?;
        Some((Ok(event), open))
    });
    let stream = futures_util::stream::once(async move { Ok(opening) })
        .chain(points)
        // Streams never end by themselves: end them at shutdown so connections can drain.
        .take_until(state.streams_stop.clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.config.sse_heartbeat)))
}

/// The polling fallback: what the stream would have sent after `after`, waiting up to
/// `wait_ms` for it.
pub(super) async fn latest(
    State(state): State<AppState>,
    auth: Auth,
    Path(slug): Path<String>,
    ApiQuery(params): ApiQuery<StreamQuery>,
) -> Result<Json<LatestResponse>, ApiError> {
    let tenant_id = auth.tenant_readable(&state, &slug).await?;
    let after = params
        .after
        .as_deref()
        .map(|a| a.parse::<Cursor>().map_err(|e| ApiError::invalid_field("after", e.to_string())))
        .transpose()?;
    // Longer waits are cut to the server's limit: the answer is the same, only sooner.
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0)).min(state.config.max_poll_wait);
    let mut subscription = state.live.subscribe(tenant_id, after, filter(&state, &params)?);
    if subscription.was_reset() {
        return Ok(Json(LatestResponse { cursor: subscription.cursor().to_string(), reset: true, points: Vec::new() }));
    }
    let frame = match subscription.try_frame() {
        Ok(None) if !wait.is_zero() => {
            // Counted like a stream while it waits: it holds a connection just the same.
            let _permit = open_permit(&state, auth.0.credential, tenant_id)?;
            let stop = state.streams_stop.clone();
            // A poll that waits is a connection held open: revoking its credential ends it.
            let hold = state.holds.hold(auth.0.credential);
            tokio::select! {
                frame = tokio::time::timeout(wait, subscription.next_frame()) => match frame {
                    Ok(Ok(frame)) => Ok(Some(frame)),
                    Ok(Err(lagged)) => Err(lagged),
                    Err(_elapsed) => Ok(None),
                },
                () = stop.cancelled() => Ok(None),
                () = hold.ended() => return Err(ApiError::unauthorized("the token was revoked or the session ended")),
            }
        }
        other => other,
    };
    let frame = match frame {
        Ok(frame) => frame,
        // Further behind than the hub keeps: the same answer a stale cursor gets.
        Err(Lagged) => {
            let cursor = state.live.subscribe(tenant_id, None, LiveFilter::default()).cursor().to_string();
            return Ok(Json(LatestResponse { cursor, reset: true, points: Vec::new() }));
        }
    };
    let (cursor, points) = match frame {
        Some(frame) => {
            let parsed: LiveFrame = serde_json::from_str(&frame.json).map_err(ApiError::internal)?;
            (frame.cursor, parsed.points)
        }
        None => (subscription.cursor(), Vec::new()),
    };
    Ok(Json(LatestResponse { cursor: cursor.to_string(), reset: false, points }))
}

fn filter(state: &AppState, params: &StreamQuery) -> Result<LiveFilter, ApiError> {
    super::metrics::check_filters(state, params.metric_name.as_deref(), params.agent_id.as_deref())?;
    Ok(LiveFilter { agent_id: params.agent_id.clone(), metric_name: params.metric_name.clone() })
}

impl Auth {
    /// The tenant a read acts on: the named one (see [`Auth::tenant_readable`]), or the
    /// caller's own when none is named.
    pub(crate) async fn tenant_to_read(&self, state: &AppState, slug: Option<&str>) -> Result<i64, ApiError> {
        match slug {
            Some(slug) => self.tenant_readable(state, slug).await,
            None => self.tenant_with(Scope::Read),
        }
    }

    /// The id of tenant `slug` if the caller may read it: a token or user of that tenant with
    /// the `read` scope, or an admin. Anyone else gets `403`, whether or not the tenant
    /// exists, so tenant names cannot be probed.
    pub(crate) async fn tenant_readable(&self, state: &AppState, slug: &str) -> Result<i64, ApiError> {
        let denied = || ApiError::forbidden(format!("no read access to tenant {slug:?}"));
        let admin = self.0.scopes.contains(Scope::Admin) && self.0.tenant_id.is_none();
        if !admin && !self.0.scopes.contains(Scope::Read) {
            return Err(ApiError::forbidden("this token lacks the read scope"));
        }
        let tenant = state.store.tenant_by_slug(slug).await?;
        match tenant {
            Some(t) if admin || self.0.tenant_id == Some(t.id) => Ok(t.id),
            None if admin => Err(ApiError::not_found(format!("no tenant {slug:?}"))),
            _ => Err(denied()),
        }
    }
}

/// One open stream: its subscription, counted in `/metrics` for as long as it is open
/// (dropped when the client goes away, when it is too slow, at shutdown, or when its
/// credential is revoked), and its hold on that credential.
struct OpenStream {
    subscription: Subscription,
    telemetry: Arc<Telemetry>,
    /// Registered while the stream is open, so a revocation finds it.
    hold: Hold,
    /// When to tell a filtered stream that its position moved.
    check: tokio::time::Interval,
    /// The last position the client was told of.
    told: Cursor,
    tenant_id: i64,
    /// Counts this stream against its caller's and its tenant's caps until dropped.
    _permit: StreamPermit,
    /// Every tenant's alert transitions; `None` once the hub stopped sending them.
    alerts: Option<tokio::sync::broadcast::Receiver<Arc<AlertNotice>>>,
    /// Alert events of this tenant still to send.
    alert_events: std::collections::VecDeque<String>,
}

impl OpenStream {
    fn new(subscription: Subscription, state: &AppState, hold: Hold, tenant_id: i64, permit: StreamPermit) -> Self {
        state.telemetry.streams_open().inc();
        let period = state.config.sse_heartbeat;
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let told = subscription.cursor();
        Self {
            subscription,
            telemetry: state.telemetry.clone(),
            hold,
            check,
            told,
            tenant_id,
            _permit: permit,
            alerts: Some(state.live.subscribe_alerts()),
            alert_events: std::collections::VecDeque::new(),
        }
    }

    /// The next event to send; `None` ends the stream. Alert events carry no id, so they
    /// leave the position a reconnect resumes from where the points put it.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(data) = self.alert_events.pop_front() {
                return Some(Event::default().event("alert").data(data));
            }
            tokio::select! {
                notice = async { self.alerts.as_mut()?.recv().await.ok() }, if self.alerts.is_some() => match notice {
                    Some(notice) if notice.tenant_id == self.tenant_id => {
                        self.alert_events.extend(notice.events.iter().filter_map(|e| serde_json::to_string(e).ok()));
                    }
                    Some(_) => {}
                    None => {
                        // Closed, or this stream missed some: clients re-read the alert list on
                        // reconnect, and points (what the stream is for) are unaffected.
                        if self.alerts.as_ref().is_some_and(|a| a.is_closed()) {
                            self.alerts = None;
                        }
                    }
                },
                frame = self.subscription.next_frame() => match frame {
                    Ok(frame) => {
                        self.told = frame.cursor;
                        return Some(Event::default().event("points").id(frame.cursor.to_string()).data(frame.json));
                    }
                    Err(lagged) => {
                        self.telemetry.record_stream_dropped_slow();
                        tracing::info!(error = %lagged, "closing a stream that fell behind");
                        return None;
                    }
                },
                () = self.hold.ended() => {
                    tracing::info!("closing a stream whose credential was revoked");
                    return None;
                }
                _ = self.check.tick() => {
                    // Batches that matched no filter still move the position: say so, so a
                    // reconnect resumes from here instead of from before them.
                    let cursor = self.subscription.cursor();
                    if cursor != self.told {
                        self.told = cursor;
                        let marker = StreamMarker { cursor: cursor.to_string() };
                        let data = serde_json::to_string(&marker).unwrap_or_default();
                        return Some(Event::default().event("cursor").id(marker.cursor).data(data));
                    }
                }
            }
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.telemetry.streams_open().dec();
    }
}

/// Streams (and waiting long polls) open in this process, per caller and per tenant: no
/// token, session or tenant can hold every connection the server has.
#[derive(Debug, Default)]
pub(crate) struct StreamCounts {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    by_caller: HashMap<Caller, usize>,
    by_tenant: HashMap<i64, usize>,
}

/// Whose streams are counted together: a token, or one sign-in of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    Token(i64),
    Session(i64),
}

impl From<Credential> for Caller {
    fn from(credential: Credential) -> Self {
        match credential {
            Credential::Token(id) => Caller::Token(id),
            Credential::Session { session_id, .. } => Caller::Session(session_id),
        }
    }
}

/// Seconds a client refused for too many streams should wait before trying again.
const STREAMS_RETRY_AFTER_S: u64 = 5;

/// Count one more stream of `credential` on tenant `tenant_id`, or refuse with `429` naming
/// the cap it would pass. It is counted until the permit is dropped.
fn open_permit(state: &AppState, credential: Credential, tenant_id: i64) -> Result<StreamPermit, ApiError> {
    let caller = Caller::from(credential);
    let (per_caller, per_tenant) = (state.config.max_streams_per_token, state.config.max_streams_per_tenant);
    let mut counts = state.streams.counts.lock().unwrap_or_else(|p| p.into_inner());
    let refused = if counts.by_caller.get(&caller).copied().unwrap_or(0) >= per_caller {
        Some(("max_streams_per_token", per_caller, "this token (or sign-in)"))
    } else if counts.by_tenant.get(&tenant_id).copied().unwrap_or(0) >= per_tenant {
        Some(("max_streams_per_tenant", per_tenant, "this tenant"))
    } else {
        None
    };
    if let Some((limit, max, whose)) = refused {
        drop(counts);
        state.telemetry.record_stream_rejected(limit);
        return Err(ApiError::limit_reached(
            "too_many_streams",
            limit,
            format!("{whose} already holds {max} open streams and waiting polls ({limit}); close one first"),
            STREAMS_RETRY_AFTER_S,
        ));
    }
    *counts.by_caller.entry(caller).or_default() += 1;
    *counts.by_tenant.entry(tenant_id).or_default() += 1;
    Ok(StreamPermit { counts: state.streams.clone(), caller, tenant_id })
}

/// One counted stream or waiting poll.
#[derive(Debug)]
struct StreamPermit {
    counts: Arc<StreamCounts>,
    caller: Caller,
    tenant_id: i64,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(|p| p.into_inner());
        decrement(&mut counts.by_caller, self.caller);
        decrement(&mut counts.by_tenant, self.tenant_id);
    }
}

/// Take one off `key`'s count, forgetting keys that reach zero so the maps stay small.
fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let std::collections::hash_map::Entry::Occupied(mut entry) = map.entry(key) {
        *entry.get_mut() -= 1;
        if *entry.get() == 0 {
            entry.remove();
        }
    }
}
