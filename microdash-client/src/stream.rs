//! The live stream of a tenant ([`Client::stream`]), which resumes by itself.
//!
//! A [`LiveStream`] holds one Server-Sent Events connection at a time. When it drops (the
//! server restarts or sheds a slow reader, a proxy times out, the network fails, or nothing
//! arrives for the idle timeout, heartbeats included) it reconnects, waiting the server's
//! `retry` hint, then backing off, and sends the last cursor it saw as `Last-Event-ID`. The
//! server replays what was missed, so the caller sees one unbroken sequence of points. Only
//! when the server cannot resume (the cursor is older than its replay window, or the server
//! restarted) does the caller hear of it: a [`LiveEvent::Reset`], after which history should
//! be reloaded from storage ([`Client::query_range`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use microdash_core::api::{LiveFrame, PointOut, StreamMarker, StreamQuery};
use reqwest::Method;
use reqwest::header::ACCEPT;

use crate::client::{Client, MAX_RETRY_AFTER, Replay};
use crate::error::Error;

/// One event of a tenant's live stream ([`Client::stream`]).
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// The stream is open and continues from `cursor`. Sent once, when the stream opens;
    /// reconnections that resume where the stream stood send nothing.
    Ready {
        /// Where the stream stands.
        cursor: String,
    },
    /// The position could not be resumed (the `after` asked for, or after a reconnection
    /// the last cursor, was too old or from a server that has since restarted): points may
    /// have been missed. Reload history, then continue.
    Reset {
        /// Where the stream stands.
        cursor: String,
    },
    /// The position moved past batches the stream's filter left out.
    Cursor {
        /// Where the stream stands.
        cursor: String,
    },
    /// Points just persisted.
    Points {
        /// Position after these points; pass it as `after` to resume in another process.
        cursor: String,
        /// The points.
        points: Vec<PointOut>,
    },
}

/// How live streams reconnect ([`crate::ClientBuilder::stream_idle_timeout`],
/// [`crate::ClientBuilder::stream_reconnect_attempts`]).
#[derive(Debug, Clone)]
pub(crate) struct StreamSettings {
    /// Silence (heartbeats included) after which a connection is taken for dead.
    pub(crate) idle_timeout: Duration,
    /// Failed reconnections in a row before the stream gives up.
    pub(crate) reconnect_attempts: u32,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings { idle_timeout: Duration::from_secs(60), reconnect_attempts: 10 }
    }
}

/// How long a stream waits before reconnecting when the server gave no `retry` hint.
const DEFAULT_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// A stream's request has no timeout of its own: it lasts as long as it is followed (the
/// idle timeout catches dead connections).
const STREAM_REQUEST_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A tenant's live stream that reconnects and resumes by itself: a `Stream` of
/// [`LiveEvent`]s. See the [module documentation](self) for how it resumes.
///
/// It ends (`None`) only after an error it cannot get past, which is its last item: a
/// refusal (`401` when the token was revoked, `403`), or [`Error::is_retryable`] failures
/// on as many reconnections in a row as
/// [`crate::ClientBuilder::stream_reconnect_attempts`] allows. Drop it to stop following.
pub struct LiveStream {
    events: BoxStream<'static, Result<LiveEvent, Error>>,
    status: Arc<Status>,
}

/// What a [`LiveStream`] and the task following it share.
#[derive(Default)]
struct Status {
    /// The last position the server told of.
    cursor: Mutex<Option<String>>,
    reconnects: AtomicU64,
}

impl Status {
    fn cursor(&self) -> Option<String> {
        self.cursor.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_cursor(&self, cursor: &str) {
        if !cursor.is_empty() {
            *self.cursor.lock().unwrap_or_else(PoisonError::into_inner) = Some(cursor.to_owned());
        }
    }
}

impl LiveStream {
    /// The last position the server told of: what a reconnection sends as `Last-Event-ID`,
    /// and what another process may pass as `after` to carry on from here.
    pub fn cursor(&self) -> Option<String> {
        self.status.cursor()
    }

    /// How many times the stream has reconnected.
    pub fn reconnects(&self) -> u64 {
        self.status.reconnects.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for LiveStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStream")
            .field("cursor", &self.cursor())
            .field("reconnects", &self.reconnects())
            .finish_non_exhaustive()
    }
}

impl Stream for LiveStream {
    type Item = Result<LiveEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<Error>>> + Send>>;

impl Client {
    /// Follow a tenant's live stream (Server-Sent Events): every metric persisted from now
    /// on, or after `query.after` when resuming from a cursor. The first connection is made
    /// here (with the client's retries), so a refusal comes back at once; after that the
    /// stream reconnects and resumes by itself (see [`LiveStream`]).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use futures_util::StreamExt;
    /// use microdash_client::{LiveEvent, StreamQuery};
    /// let mut live = client.stream("fleet", &StreamQuery::default()).await?;
    /// while let Some(event) = live.next().await {
    ///     match event? {
    ///         LiveEvent::Points { points, .. } => println!("{} new points", points.len()),
    ///         LiveEvent::Reset { .. } => println!("missed some: reload history"),
    ///         LiveEvent::Ready { .. } | LiveEvent::Cursor { .. } => {}
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn stream(&self, tenant: &str, query: &StreamQuery) -> Result<LiveStream, Error> {
        let status = Arc::new(Status::default());
        if let Some(after) = &query.after {
            status.set_cursor(after);
        }
        let events = self.open_stream(tenant, query, None, self.retries()).await?;
        // Reconnections name their position with Last-Event-ID; `wait_ms` is for polling.
        let query = StreamQuery { after: None, wait_ms: None, ..query.clone() };
        let follower = Follower {
            client: self.clone(),
            tenant: tenant.to_owned(),
            query,
            events: Some(events),
            resumed: false,
            retry_hint: DEFAULT_RECONNECT_DELAY,
            status: status.clone(),
            done: false,
        };
        let events = futures_util::stream::unfold(follower, Follower::next).boxed();
        Ok(LiveStream { events, status })
    }

    /// One connection: the events of one response, cut short after the idle timeout.
    /// Reconnections retry in their own loop (`retries` 0), with the stream's backoff.
    async fn open_stream(
        &self,
        tenant: &str,
        query: &StreamQuery,
        last_event_id: Option<&str>,
        retries: u32,
    ) -> Result<Events, Error> {
        let mut request = self
            .request(Method::GET, &["stream", tenant])
            .query(query)
            .header(ACCEPT, "text/event-stream")
            .timeout(STREAM_REQUEST_TIMEOUT);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = self.execute_with(request.build()?, Replay::Safe, retries).await?;
        let idle = self.stream_settings().idle_timeout;
        let body = Box::pin(response.bytes_stream());
        let bytes = futures_util::stream::unfold(body, move |mut body| async move {
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(chunk)) => Some((chunk.map_err(Error::Http), body)),
                Ok(None) => None,
                Err(_elapsed) => Some((Err(Error::Stream(format!("nothing received for {idle:?}"))), body)),
            }
        });
        Ok(Box::pin(bytes.eventsource()))
    }
}

/// The state of a stream between two events.
struct Follower {
    client: Client,
    tenant: String,
    query: StreamQuery,
    /// The open connection; `None` after it dropped.
    events: Option<Events>,
    /// Whether the open connection resumed from a cursor (its `ready` is not news).
    resumed: bool,
    /// How long to wait before reconnecting: the server's `retry` field.
    retry_hint: Duration,
    status: Arc<Status>,
    /// An error ended the stream.
    done: bool,
}

impl Follower {
    async fn next(mut self) -> Option<(Result<LiveEvent, Error>, Self)> {
        loop {
            if self.done {
                return None;
            }
            let Some(events) = self.events.as_mut() else {
                if let Err(err) = self.reconnect().await {
                    self.done = true;
                    return Some((Err(err), self));
                }
                continue;
            };
            match events.next().await {
                Some(Ok(event)) => {
                    if let Some(item) = self.on_event(event) {
                        return Some((item, self));
                    }
                }
                // A dropped, silent or garbled connection is resumed alike.
                Some(Err(_)) | None => self.events = None,
            }
        }
    }

    /// Connect again from the last cursor, backing off while that fails.
    async fn reconnect(&mut self) -> Result<(), Error> {
        let attempts = self.client.stream_settings().reconnect_attempts as usize;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .with_max_times(attempts)
            .build();
        let mut wait = self.retry_hint;
        loop {
            tokio::time::sleep(wait).await;
            let cursor = self.status.cursor();
            match self.client.open_stream(&self.tenant, &self.query, cursor.as_deref(), 0).await {
                Ok(events) => {
                    self.events = Some(events);
                    self.resumed = cursor.is_some();
                    self.status.reconnects.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(err) if err.is_retryable() => match delays.next() {
                    Some(delay) => wait = err.retry_after().map_or(delay, |after| after.min(MAX_RETRY_AFTER)),
                    None => return Err(err),
                },
                Err(err) => return Err(err),
            }
        }
    }

    /// What an event means to the caller; `None` for what is not news (a resumed `ready`,
    /// event kinds this client does not know).
    fn on_event(&mut self, event: Event) -> Option<Result<LiveEvent, Error>> {
        if let Some(retry) = event.retry {
            self.retry_hint = retry.min(MAX_RETRY_AFTER);
        }
        let kind = event.event.as_str();
        let unreadable = |err: serde_json::Error| Some(Err(Error::Stream(format!("unreadable {kind} event: {err}"))));
        match kind {
            "ready" | "reset" | "cursor" => {
                let marker = match serde_json::from_str::<StreamMarker>(&event.data) {
                    Ok(marker) => marker,
                    Err(err) => return unreadable(err),
                };
                self.status.set_cursor(&marker.cursor);
                let cursor = marker.cursor;
                match kind {
                    "ready" if self.resumed => None,
                    "ready" => Some(Ok(LiveEvent::Ready { cursor })),
                    "reset" => Some(Ok(LiveEvent::Reset { cursor })),
                    _ => Some(Ok(LiveEvent::Cursor { cursor })),
                }
            }
            "points" => {
                // Moved past even when unreadable: resuming would only replay the same frame.
                self.status.set_cursor(&event.id);
                match serde_json::from_str::<LiveFrame>(&event.data) {
                    Ok(frame) => Some(Ok(LiveEvent::Points { cursor: event.id, points: frame.points })),
                    Err(err) => unreadable(err),
                }
            }
            _ => None,
        }
    }
}
