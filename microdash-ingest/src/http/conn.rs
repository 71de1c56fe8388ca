//! The connections under the router: an accept loop of our own on hyper, so that idle or
//! slow clients cannot hold the server. HTTP/1.1 only: browsers speak HTTP/2 only over TLS
//! (a proxy in front of us ends it), and cleartext HTTP/2 lets a client that opens no flow
//! control window keep a request in flight, and so its connection exempt from every
//! deadline, forever.
//!
//! - Deadlines ([`ConnIo`]): a request's head (request line and headers) must be complete
//!   within `header_read_timeout` of its first byte, or of the connection's opening for its
//!   first request; a keep-alive connection waits at most `idle_timeout` for its next
//!   request, and a client that reads nothing of its answer for `idle_timeout` is
//!   disconnected. While a request is in flight only the request timeout (the router's
//!   layer) and the stream caps apply, so streams and long polls are not cut.
//! - Caps ([`Table`]): at most `max_connections` (never over three quarters of the
//!   open-file limit, so the database, the journal and the MQTT endpoint keep room), and
//!   `max_connections_per_ip` from one address. A connection over a cap takes the place of
//!   a waiting connection (no request in flight): one that never sent a whole request first,
//!   then the one idle longest, so idle and slowloris connections cannot lock anyone out and
//!   clients' keep-alive connections go last. Only when every connection is busy is it
//!   refused, with a `503` written straight to the socket. The loop accepts nothing more
//!   until evicted connections have closed, so the descriptors in use stay within the cap.
//! - Room for the operator: a few slots beyond the general ones (a sixteenth, 1 to 64) serve
//!   only `/livez`, `/api/v1/health`, `/metrics` and the token API, one request each, so
//!   with every general connection busy the probes and the operator still get through.
//! - Shutdown: no new connections; idle ones close at once, busy ones finish their request
//!   (hyper's graceful shutdown; the caller's signal ends the streams); whatever is still
//!   open after the drain period is dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, header};
use axum::response::IntoResponse;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::{ApiError, HttpConfig};
use crate::net::client_network;
use crate::telemetry::Telemetry;

/// How long shutdown waits for in-flight requests and open connections to finish.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// Pause after an accept that failed for want of resources (file descriptors, memory), so the
/// loop does not spin while a closed connection gives its descriptor back.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Longest the accept loop waits for evicted connections to give their descriptors back
/// before it accepts anyway (one that began a request meanwhile finishes it first).
const CLOSE_WAIT: Duration = Duration::from_millis(100);

/// At most one warning about failing accepts this often; the counter has every one.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The connection limits in force: the configured ones, fitted to the open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    /// Connections that may serve anything.
    general: usize,
    /// Connections beyond `general` that serve only what [`serves_when_saturated`] allows.
    reserved: usize,
    per_ip: usize,
}

impl Limits {
    /// The limits for `config` in a process that may open `open_files` descriptors.
    fn new(config: &HttpConfig, open_files: Option<u64>) -> Self {
        // A quarter of the descriptors stays for everything else: database connections, the
        // journal, the MQTT endpoint, outgoing webhooks.
        let budget = open_files.map_or(usize::MAX, |n| usize::try_from(n - n / 4).unwrap_or(usize::MAX));
        let total = config.max_connections.min(budget).max(2);
        if total < config.max_connections {
            tracing::warn!(
                http_max_connections = config.max_connections,
                open_files = open_files.unwrap_or_default(),
                lowered_to = total,
                "http_max_connections is over three quarters of the open-file limit (ulimit -n); lowered"
            );
        }
        let reserved = (total / 16).clamp(1, 64);
        Limits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            general: total - reserved,
            reserved,
            per_ip: config.max_connections_per_ip.clamp(1, total),
        }
    }
}

/// This process's soft limit of open files, if it has one.
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Why the server closed a connection, as `/metrics` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// A request's head took longer than `header_read_timeout`.
    HeaderTimeout,
    /// No request for `idle_timeout` on a keep-alive connection.
    IdleTimeout,
    /// The client read nothing of its answer for `idle_timeout`.
    WriteTimeout,
    /// A new connection took its place at a cap.
    Evicted,
}

impl Close {
    fn name(self) -> &'static str {
        match self {
            Close::HeaderTimeout => "header_timeout",
            Close::IdleTimeout => "idle_timeout",
            Close::WriteTimeout => "write_timeout",
            Close::Evicted => "evicted",
        }
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Every connection, the reserved ones included, had a request in flight.
    MaxConnections,
    /// Every connection from this address had a request in flight.
    MaxConnectionsPerIp,
}

impl Refused {
    fn name(self) -> &'static str {
        match self {
            Refused::MaxConnections => "max_connections",
            Refused::MaxConnectionsPerIp => "max_connections_per_ip",
        }
    }

    /// The setting that sets the cap.
    fn setting(self) -> &'static str {
        match self {
            Refused::MaxConnections => "http_max_connections",
            Refused::MaxConnectionsPerIp => "http_max_connections_per_ip",
        }
    }
}

/// What one connection is doing, shared by its socket (deadlines), its service (requests)
/// and the table (whom to close when full).
#[derive(Debug)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    /// Requests whose answer hyper has not finished taking.
    in_flight: u32,
    /// Whether a request has begun: the first one is timed from the connection's opening.
    served: bool,
    /// Since when no request has been in flight.
    waiting_since: Instant,
    /// When the first byte of the next request arrived.
    head_since: Option<Instant>,
    /// The connection's task, when it last read while a request was in flight: woken when
    /// the last request ends, so its read deadline is set (hyper would not read again
    /// before the client sends something).
    reader: Option<Waker>,
}

impl Slot {
    fn new() -> Self {
        let state =
            SlotState { in_flight: 0, served: false, waiting_since: Instant::now(), head_since: None, reader: None };
        Slot { state: Mutex::new(state) }
    }

    fn state(&self) -> MutexGuard<'_, SlotState> {
        // The state stays consistent whatever panicked while holding it: every update is one
        // assignment or counter step.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Since when the connection has had no request in flight; `None` while it has one.
    fn waiting_since(&self) -> Option<Instant> {
        let state = self.state();
        (state.in_flight == 0).then_some(state.waiting_since)
    }

    /// Its rank among the candidates for eviction, lowest first: never served a request
    /// (idle and slowloris connections) before keep-alive ones, then the longest waiting;
    /// `None` while a request is in flight.
    fn eviction_rank(&self) -> Option<(bool, Instant)> {
        let state = self.state();
        (state.in_flight == 0).then_some((state.served, state.waiting_since))
    }

    /// Bytes arrived: between requests, they start the next request's head.
    fn bytes_arrived(&self) {
        let mut state = self.state();
        if state.in_flight == 0 && state.head_since.is_none() {
            state.head_since = Some(Instant::now());
        }
    }

    /// Bytes of an answer went out: with no request in flight, the connection is not idle
    /// while its last answer is still being taken.
    fn bytes_sent(&self) {
        let mut state = self.state();
        if state.in_flight == 0 && state.head_since.is_none() {
            state.waiting_since = Instant::now();
        }
    }

    /// When a read that finds nothing must give up, and why; `None` while a request is in
    /// flight (`cx` is then woken when it ends).
    fn read_deadline(&self, limits: &Limits, cx: &Context<'_>) -> Option<(Instant, Close)> {
        let mut state = self.state();
        if state.in_flight > 0 {
            if !state.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                state.reader = Some(cx.waker().clone());
            }
            return None;
        }
        Some(match state.head_since {
            Some(since) => (since + limits.header_read_timeout, Close::HeaderTimeout),
            None if !state.served => (state.waiting_since + limits.header_read_timeout, Close::HeaderTimeout),
            None => (state.waiting_since + limits.idle_timeout, Close::IdleTimeout),
        })
    }

    /// A request began; it ends when the guard (kept by its answer's body) is dropped.
    fn begin(self: &Arc<Self>) -> RequestGuard {
        let mut state = self.state();
        state.in_flight += 1;
        state.served = true;
        state.head_since = None;
        RequestGuard { slot: self.clone() }
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
struct RequestGuard {
    slot: Arc<Slot>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let reader = {
            let mut state = self.slot.state();
            state.in_flight -= 1;
            if state.in_flight > 0 {
                return;
            }
            state.waiting_since = Instant::now();
            state.head_since = None;
            state.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// Which requests a connection may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Anything.
    General,
    /// One request, and only what [`serves_when_saturated`] allows.
    Reserved,
}

/// What may use the reserved connections: probes, metrics and the operator's token API (to
/// revoke what is holding the server).
fn serves_when_saturated(path: &str) -> bool {
    matches!(path, "/livez" | "/api/v1/health" | "/metrics")
        || path.starts_with("/api/v1/tokens")
        || path.starts_with("/api/v1/admin/")
}

/// Every open connection: the caps, and whom to close for a newcomer.
struct Table {
    limits: Limits,
    entries: Mutex<Entries>,
    /// Told whenever an evicted connection has closed.
    closed: tokio::sync::Notify,
}

#[derive(Default)]
struct Entries {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
    general: usize,
    reserved: usize,
    /// Evicted connections whose sockets are not closed yet.
    closing: usize,
}

struct Entry {
    ip: IpAddr,
    kind: Kind,
    slot: Arc<Slot>,
    /// Cancelled when a newcomer takes its place.
    evict: CancellationToken,
}

/// A connection let in.
struct Admitted {
    id: u64,
    ip: IpAddr,
    kind: Kind,
    slot: Arc<Slot>,
    evict: CancellationToken,
}

impl Table {
    fn new(limits: Limits) -> Self {
        Table { limits, entries: Mutex::default(), closed: tokio::sync::Notify::new() }
    }

    /// Wait (briefly) while the table is full and evicted connections are still closing:
    /// accepting meanwhile would hold more sockets than the cap allows.
    async fn room(&self) {
        loop {
            {
                let entries = self.entries();
                let open = entries.general + entries.reserved + entries.closing;
                if entries.closing == 0 || open < self.limits.general + self.limits.reserved {
                    return;
                }
            }
            if tokio::time::timeout(CLOSE_WAIT, self.closed.notified()).await.is_err() {
                return;
            }
        }
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // Counts and map change together under the lock, with nothing in between that panics.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Let a connection from `ip` in, closing the longest-waiting connection where a cap is
    /// reached; refused only when every connection that could make room is busy.
    fn admit(&self, ip: IpAddr) -> Result<Admitted, Refused> {
        let mut entries = self.entries();
        // Loops, not one eviction each: a readmitted connection may have left a count over
        // its cap, and the newcomer brings it back within.
        while entries.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip {
            if !entries.evict_longest_waiting(|e| e.ip == ip) {
                return Err(Refused::MaxConnectionsPerIp);
            }
        }
        let room = |entries: &mut Entries, kind: Kind, cap: usize| loop {
            let open = match kind {
                Kind::General => entries.general,
                Kind::Reserved => entries.reserved,
            };
            if open < cap {
                return true;
            }
            if !entries.evict_longest_waiting(|e| e.kind == kind) {
                return false;
            }
        };
        let kind = if room(&mut entries, Kind::General, self.limits.general) {
            Kind::General
        } else if room(&mut entries, Kind::Reserved, self.limits.reserved) {
            Kind::Reserved
        } else {
            return Err(Refused::MaxConnections);
        };
        let slot = Arc::new(Slot::new());
        let evict = CancellationToken::new();
        let id = entries.next_id;
        entries.next_id += 1;
        entries.add(id, Entry { ip, kind, slot: slot.clone(), evict: evict.clone() });
        Ok(Admitted { id, ip, kind, slot, evict })
    }

    /// Count an evicted connection again: a request began on it between its choice and its
    /// close, and a busy connection is not closed (a stream may last for hours). The table
    /// then holds one more than its cap, as it did while this one was closing, until a
    /// connection ends or the next admission evicts waiting ones down to the cap. Returns
    /// its new eviction token.
    fn readmit(&self, admitted: &Admitted) -> CancellationToken {
        let evict = CancellationToken::new();
        {
            let mut entries = self.entries();
            entries.closing -= 1;
            let Admitted { id, ip, kind, slot, .. } = admitted;
            entries.add(*id, Entry { ip: *ip, kind: *kind, slot: slot.clone(), evict: evict.clone() });
        }
        // The accept loop may be waiting for closing connections.
        self.closed.notify_one();
        evict
    }

    /// Close the connection that has waited longest, to free its descriptor.
    fn evict_any(&self) -> bool {
        self.entries().evict_longest_waiting(|_| true)
    }

    /// Forget a connection that ended; if it was evicted, its socket is now closed.
    fn remove(&self, id: u64) {
        let mut entries = self.entries();
        match entries.conns.remove(&id) {
            Some(entry) => entries.forget(&entry),
            None => {
                entries.closing -= 1;
                drop(entries);
                self.closed.notify_one();
            }
        }
    }
}

impl Entries {
    fn add(&mut self, id: u64, entry: Entry) {
        *self.per_ip.entry(entry.ip).or_default() += 1;
        match entry.kind {
            Kind::General => self.general += 1,
            Kind::Reserved => self.reserved += 1,
        }
        self.conns.insert(id, entry);
    }

    fn forget(&mut self, entry: &Entry) {
        if let Some(n) = self.per_ip.get_mut(&entry.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&entry.ip);
            }
        }
        match entry.kind {
            Kind::General => self.general -= 1,
            Kind::Reserved => self.reserved -= 1,
        }
    }

    /// Close the connection among those `matching` that ranks first for eviction
    /// ([`Slot::eviction_rank`]); `false` if every one of them is busy. A scan: it runs only
    /// at a cap, and the caps bound it.
    fn evict_longest_waiting(&mut self, matching: impl Fn(&Entry) -> bool) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, entry)| matching(entry))
            .filter_map(|(id, entry)| entry.slot.eviction_rank().map(|rank| (rank, *id)))
            .min();
        let Some(entry) = victim.and_then(|(_, id)| self.conns.remove(&id)) else { return false };
        self.forget(&entry);
        self.closing += 1;
        entry.evict.cancel();
        true
    }
}

/// What every connection of one server shares.
struct Server {
    table: Table,
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    telemetry: Arc<Telemetry>,
    /// Cancelled at shutdown: connections finish what they are doing and close.
    graceful: CancellationToken,
    /// Cancelled after the drain period: connections close whatever they are doing.
    hard: CancellationToken,
}

/// Serve `router` on `listener` with the connection limits of `config` until `shutdown`
/// resolves, then let in-flight requests finish for up to the drain period.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: &HttpConfig,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let server = Arc::new(Server::new(router, Limits::new(config, open_file_limit()), telemetry));
    let tracker = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = async {
                server.table.room().await;
                listener.accept().await
            } => accepted,
        };
        match accepted {
            Ok((stream, peer)) => server.admit(stream, peer, &tracker),
            // The client gave up before we took the connection: nothing to do.
            Err(err) if is_connection_error(&err) => {}
            Err(err) => {
                server.accept_failed(&err, &mut last_warning);
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    drop(listener);
    server.graceful.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!(
            drain_s = SHUTDOWN_DRAIN.as_secs(),
            open = tracker.len(),
            "connections still open after the drain period; closing them"
        );
        server.hard.cancel();
        tracker.wait().await;
    }
    Ok(())
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

impl Server {
    fn new(router: Router, limits: Limits, telemetry: Arc<Telemetry>) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
        // Our deadlines instead of hyper's: its header timer also runs while a keep-alive
        // connection waits for its next request, which is the idle timeout's business.
        builder.http1().header_read_timeout(None);
        Server {
            table: Table::new(limits),
            builder,
            router,
            telemetry,
            graceful: CancellationToken::new(),
            hard: CancellationToken::new(),
        }
    }

    fn admit(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr, tracker: &TaskTracker) {
        match self.table.admit(client_network(peer.ip())) {
            Ok(admitted) => {
                tracker.spawn(self.clone().connection(stream, admitted, peer));
            }
            Err(refused) => {
                tracing::debug!(peer = %peer, limit = refused.name(), "connection refused");
                self.telemetry.record_connection_refused(refused.name());
                refuse(&stream, refused);
            }
        }
    }

    /// Out of descriptors (or memory): close the longest-waiting connection to get one back.
    fn accept_failed(&self, err: &io::Error, last_warning: &mut Option<Instant>) {
        self.telemetry.record_accept_error();
        let evicted = self.table.evict_any();
        let now = Instant::now();
        if last_warning.is_none_or(|at| now.duration_since(at) >= ACCEPT_WARNING_INTERVAL) {
            *last_warning = Some(now);
            tracing::warn!(error = %err, closed_an_idle_connection = evicted, "accepting a connection failed");
        }
    }

    /// Serve one connection until it ends, is evicted, or the drain period is over.
    async fn connection<I>(self: Arc<Self>, io: I, admitted: Admitted, peer: SocketAddr)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Admitted { id, kind, ref slot, ref evict, .. } = admitted;
        let (slot, mut evict) = (slot.clone(), evict.clone());
        let _open = Open::new(&self, id);
        let io = TokioIo::new(ConnIo::new(io, slot.clone(), self.table.limits, self.telemetry.clone()));
        let service = Service {
            router: self.router.clone(),
            peer,
            slot: slot.clone(),
            reserved: kind == Kind::Reserved,
            telemetry: self.telemetry.clone(),
        };
        let mut conn = std::pin::pin!(self.builder.serve_connection(io, service));
        let mut draining = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                () = self.hard.cancelled() => return,
                () = self.graceful.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = evict.cancelled() => {
                    // Nothing runs on this connection but through this task, so it is still
                    // idle now if it was when chosen, unless a request began in between:
                    // then it stays, counted again.
                    if slot.waiting_since().is_some() {
                        self.telemetry.record_connection_closed(Close::Evicted.name());
                        return;
                    }
                    evict = self.table.readmit(&admitted);
                }
            }
        }
    }
}

/// An open connection, counted while it lasts.
struct Open<'a> {
    server: &'a Server,
    id: u64,
}

impl<'a> Open<'a> {
    fn new(server: &'a Server, id: u64) -> Self {
        server.telemetry.connections_open().inc();
        Open { server, id }
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.server.table.remove(self.id);
        self.server.telemetry.connections_open().dec();
    }
}

/// Answer a connection over the caps with a `503` and close it. What the client already
/// sent is read first, so the close does not reset the connection before it reads the answer.
fn refuse(stream: &TcpStream, refused: Refused) {
    let mut sent = [0u8; 2048];
    let _ = stream.try_read(&mut sent);
    let _ = stream.try_write(&ApiError::connections_exhausted(refused.setting()).to_http1_bytes());
}

/// The router as a hyper service that tells the connection's [`Slot`] when requests begin
/// and end.
#[derive(Clone)]
struct Service {
    router: Router,
    /// The client's address, given to handlers as axum's `ConnectInfo` (sign-ins are
    /// counted by it).
    peer: SocketAddr,
    slot: Arc<Slot>,
    /// A reserved connection: one request, and only what [`serves_when_saturated`] allows.
    reserved: bool,
    telemetry: Arc<Telemetry>,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let guard = self.slot.begin();
        let reserved = self.reserved;
        if reserved && !serves_when_saturated(request.uri().path()) {
            // Refused for the same reason as a connection over the cap, only later.
            let refused = Refused::MaxConnections;
            self.telemetry.record_connection_refused(refused.name());
            let response = ApiError::connections_exhausted(refused.setting()).into_response();
            return Box::pin(std::future::ready(Ok(tracked(response, guard, reserved))));
        }
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(axum::extract::ConnectInfo(self.peer));
        let answer = self.router.clone().oneshot(request);
        Box::pin(async move {
            let response = answer.await.unwrap_or_else(|never| match never {});
            Ok(tracked(response, guard, reserved))
        })
    }
}

/// `response` with `guard` in its body, so the request counts as in flight until hyper has
/// taken all of it; `close` ends the connection after it.
fn tracked(mut response: Response<Body>, guard: RequestGuard, close: bool) -> Response<TrackedBody> {
    if close {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response.map(|body| TrackedBody { body, _request: guard })
}

/// An answer's body, holding its request in flight until dropped.
struct TrackedBody {
    body: Body,
    _request: RequestGuard,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's socket with its deadlines: reads that wait between requests end at the
/// header or idle deadline ([`Slot::read_deadline`]), and writes that make no progress for
/// the idle timeout end too. Either closes the connection.
struct ConnIo<I> {
    io: I,
    slot: Arc<Slot>,
    limits: Limits,
    telemetry: Arc<Telemetry>,
    read_timer: Timer,
    write_timer: Timer,
    /// Since when writes have found the socket full.
    write_stalled_since: Option<Instant>,
}

impl<I> ConnIo<I> {
    fn new(io: I, slot: Arc<Slot>, limits: Limits, telemetry: Arc<Telemetry>) -> Self {
        ConnIo {
            io,
            slot,
            limits,
            telemetry,
            read_timer: Timer::default(),
            write_timer: Timer::default(),
            write_stalled_since: None,
        }
    }

    fn timed_out<T>(&self, why: Close) -> Poll<io::Result<T>> {
        tracing::debug!(reason = why.name(), "closing a connection");
        self.telemetry.record_connection_closed(why.name());
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why.name())))
    }

    /// A write's outcome, with the stall deadline applied when the socket is full.
    fn after_write(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if written.is_ready() {
            self.write_stalled_since = None;
            if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
                self.slot.bytes_sent();
            }
            return written;
        }
        let since = *self.write_stalled_since.get_or_insert_with(Instant::now);
        match self.write_timer.poll_until(since + self.limits.idle_timeout, cx) {
            Poll::Ready(()) => self.timed_out(Close::WriteTimeout),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ConnIo<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.slot.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            // While an answer waits for the client to read it, the write deadline rules.
            Poll::Pending if this.write_stalled_since.is_some() => Poll::Pending,
            Poll::Pending => {
                let Some((deadline, why)) = this.slot.read_deadline(&this.limits, cx) else { return Poll::Pending };
                match this.read_timer.poll_until(deadline, cx) {
                    Poll::Ready(()) => this.timed_out(why),
                    Poll::Pending => Poll::Pending,
                }
            }
            failed => failed,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ConnIo<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A sleep made on first use and reset only when its deadline moves.
#[derive(Default)]
struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
    deadline: Option<Instant>,
}

impl Timer {
    fn poll_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if self.deadline != Some(deadline) {
            sleep.as_mut().reset(deadline);
            self.deadline = Some(deadline);
        }
        sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::sync::Notify;

    use super::*;

    const HEADER: Duration = Duration::from_secs(3);
    const IDLE: Duration = Duration::from_secs(20);

    fn limits(general: usize, reserved: usize, per_ip: usize) -> Limits {
        Limits { header_read_timeout: HEADER, idle_timeout: IDLE, general, reserved, per_ip }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    /// `/hold` answers once `release` is notified (and says so on `entered`); `/big` is more
    /// than the pipe holds.
    struct Routes {
        entered: Arc<Notify>,
        release: Arc<Notify>,
    }

    fn routes() -> (Router, Routes) {
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let hold = {
            let (entered, release) = (entered.clone(), release.clone());
            move || async move {
                entered.notify_one();
                release.notified().await;
                "done"
            }
        };
        let router = Router::new()
            .route("/livez", get(|| async { "ok\n" }))
            .route("/api/v1/metrics", get(|| async { "data" }))
            .route("/big", get(|| async { vec![b'x'; 4 << 20] }))
            .route("/hold", get(hold));
        (router, Routes { entered, release })
    }

    fn server(limits: Limits) -> (Arc<Server>, Routes) {
        let (router, routes) = routes();
        (Arc::new(Server::new(router, limits, Arc::new(Telemetry::new()))), routes)
    }

    /// A connection from `from` over an in-memory pipe: the client's end and the slot.
    fn connect(server: &Arc<Server>, from: IpAddr) -> (DuplexStream, Arc<Slot>) {
        let (client, io) = tokio::io::duplex(64 * 1024);
        let admitted = server.table.admit(from).expect("admitted");
        let slot = admitted.slot.clone();
        tokio::spawn(server.clone().connection(io, admitted, SocketAddr::new(from, 40_000)));
        (client, slot)
    }

    async fn send_get(client: &mut DuplexStream, path: &str) {
        client.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).await.unwrap();
    }

    /// Read until `needle` has arrived; what arrived.
    async fn read_until(client: &mut DuplexStream, needle: &str) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        while !String::from_utf8_lossy(&got).contains(needle) {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before {needle:?}: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Read until the server closes the connection; how many bytes came.
    async fn read_to_close(client: &mut DuplexStream) -> usize {
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got).await;
        got.len()
    }

    /// A series of the server's `/metrics`.
    fn counted(server: &Server, series: &str) -> f64 {
        let text = server.telemetry.encode(None);
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.parse().unwrap_or(f64::NAN))
    }

    fn closed(server: &Server, reason: &str) -> f64 {
        counted(server, &format!("microdash_http_connections_closed_total{{reason=\"{reason}\"}}"))
    }

    /// `elapsed` is `expected`, give or take the timer's millisecond.
    fn about(elapsed: Duration, expected: Duration) {
        assert!(
            elapsed >= expected && elapsed < expected + Duration::from_millis(10),
            "{elapsed:?} instead of {expected:?}"
        );
    }

    #[test]
    fn the_caps_fit_the_open_file_limit_and_keep_slots_for_the_operator() {
        let check = |max_connections: usize,
                     per_ip: usize,
                     open_files: Option<u64>,
                     expected: (usize, usize, usize)| {
            let config = HttpConfig { max_connections, max_connections_per_ip: per_ip, ..HttpConfig::default() };
            let limits = Limits::new(&config, open_files);
            assert_eq!((limits.general, limits.reserved, limits.per_ip), expected, "{max_connections} {open_files:?}");
        };
        check(8_192, 1_024, None, (8_128, 64, 1_024));
        check(8_192, 1_024, Some(1_048_576), (8_128, 64, 1_024));
        check(8_192, 1_024, Some(256), (180, 12, 192));
        check(8_192, 1_024, Some(1_024), (720, 48, 768));
        check(2, 1, None, (1, 1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_is_closed_at_the_header_deadline() {
        let (server, _) = server(limits(8, 1, 8));
        let (mut client, _) = connect(&server, ip(1));
        let start = Instant::now();
        assert_eq!(read_to_close(&mut client).await, 0);
        about(start.elapsed(), HEADER);
        assert_eq!(closed(&server, "header_timeout"), 1.0);
        assert_eq!(counted(&server, "microdash_http_connections_open"), 0.0);
    }

    /// HTTP/2 with prior knowledge is not spoken: its preface is a bad HTTP/1 request,
    /// answered and closed at once, so no h2 stream can hold the connection.
    #[tokio::test(start_paused = true)]
    async fn cleartext_http2_is_refused_at_once() {
        let (server, _) = server(limits(8, 1, 8));
        let (mut client, _) = connect(&server, ip(1));
        client.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        let start = Instant::now();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        assert!(start.elapsed() < HEADER, "held {:?}", start.elapsed());
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_sent_a_line_at_a_time_is_cut_at_the_header_deadline() {
        let (server, _) = server(limits(8, 1, 8));
        let (client, _) = connect(&server, ip(1));
        let (mut read, mut write) = tokio::io::split(client);
        let start = Instant::now();
        tokio::spawn(async move {
            write.write_all(b"GET /livez HTTP/1.1\r\n").await?;
            for line in 0.. {
                tokio::time::sleep(Duration::from_secs(1)).await;
                write.write_all(format!("X-Line-{line}: a\r\n").as_bytes()).await?;
            }
            Ok::<(), std::io::Error>(())
        });
        let mut got = Vec::new();
        let _ = read.read_to_end(&mut got).await;
        about(start.elapsed(), HEADER);
        assert_eq!(closed(&server, "header_timeout"), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_keep_alive_connection_waits_the_idle_timeout_and_then_a_header_deadline() {
        let (server, _) = server(limits(8, 1, 8));
        // A connection that has been answered once, and when.
        let answered_once = async || {
            let (mut client, _) = connect(&server, ip(1));
            send_get(&mut client, "/livez").await;
            read_until(&mut client, "ok\n").await;
            (client, Instant::now())
        };
        // Idle after an answer: closed at the idle timeout.
        let (mut client, answered) = answered_once().await;
        assert_eq!(read_to_close(&mut client).await, 0);
        about(answered.elapsed(), IDLE);
        assert_eq!(closed(&server, "idle_timeout"), 1.0);

        // A second request begun after a pause: its head has the header timeout from its first byte.
        let (mut client, answered) = answered_once().await;
        tokio::time::sleep(IDLE / 2).await;
        client.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
        assert_eq!(read_to_close(&mut client).await, 0);
        about(answered.elapsed(), IDLE / 2 + HEADER);
        assert_eq!(closed(&server, "header_timeout"), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_not_cut_by_the_connection_deadlines() {
        let (server, routes) = server(limits(8, 1, 8));
        let (mut client, _) = connect(&server, ip(1));
        send_get(&mut client, "/hold").await;
        routes.entered.notified().await;
        tokio::time::sleep(IDLE * 3).await;
        routes.release.notify_one();
        assert!(read_until(&mut client, "done").await.starts_with("HTTP/1.1 200"));
        for reason in ["header_timeout", "idle_timeout", "write_timeout"] {
            assert_eq!(closed(&server, reason), 0.0, "{reason}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_nothing_of_its_answer_is_disconnected_after_the_idle_timeout() {
        let (server, _) = server(limits(8, 1, 8));
        let (mut client, _) = connect(&server, ip(1));
        send_get(&mut client, "/big").await;
        tokio::time::sleep(IDLE + Duration::from_secs(1)).await;
        assert!(read_to_close(&mut client).await < 4 << 20, "the whole answer fit the pipe");
        assert_eq!(closed(&server, "write_timeout"), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_a_long_answer_slowly_gets_all_of_it() {
        let (server, _) = server(limits(8, 1, 8));
        let (mut client, _) = connect(&server, ip(1));
        send_get(&mut client, "/big").await;
        let start = Instant::now();
        let (mut got, mut buf) = (0, vec![0u8; 64 * 1024]);
        while got < 4 << 20 {
            // Slower than the idle timeout in all, never idle that long at once.
            tokio::time::sleep(IDLE / 2).await;
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {got} bytes");
            got += n;
        }
        assert!(start.elapsed() > IDLE * 4);
        for reason in ["idle_timeout", "write_timeout"] {
            assert_eq!(closed(&server, reason), 0.0, "{reason}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_newcomer_takes_the_place_of_the_longest_waiting_connection() {
        let table = Table::new(limits(2, 1, 10));
        let first = table.admit(ip(1)).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = table.admit(ip(1)).unwrap();
        let third = table.admit(ip(2)).unwrap();
        assert!(first.evict.is_cancelled() && !second.evict.is_cancelled());
        assert_eq!(third.kind, Kind::General);
        // Every general connection busy: the reserved slot, then its waiting occupant's place.
        let _busy = (second.slot.begin(), third.slot.begin());
        let reserved = table.admit(ip(3)).unwrap();
        assert_eq!(reserved.kind, Kind::Reserved);
        let next = table.admit(ip(4)).unwrap();
        assert_eq!(next.kind, Kind::Reserved);
        assert!(reserved.evict.is_cancelled());
        // Everything busy: refused.
        let _busy_too = next.slot.begin();
        assert_eq!(table.admit(ip(5)).err(), Some(Refused::MaxConnections));
        // A connection that ends makes room.
        drop(_busy);
        table.remove(second.id);
        assert_eq!(table.admit(ip(5)).unwrap().kind, Kind::General);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_whose_request_began_as_it_was_evicted_is_counted_again() {
        let table = Table::new(limits(1, 1, 10));
        let first = table.admit(ip(1)).unwrap();
        let second = table.admit(ip(2)).unwrap();
        assert!(first.evict.is_cancelled());
        // Its request began before it saw the eviction: it stays, and is counted.
        let _busy = first.slot.begin();
        let evict = table.readmit(&first);
        assert!(!evict.is_cancelled());
        {
            let entries = table.entries();
            assert_eq!((entries.general, entries.closing, entries.per_ip.len()), (2, 0, 2));
        }
        // Both general connections busy: a newcomer gets the reserved slot, no busy one is
        // closed for it.
        let busy_too = second.slot.begin();
        assert_eq!(table.admit(ip(3)).unwrap().kind, Kind::Reserved);
        assert!(!evict.is_cancelled() && !second.evict.is_cancelled());
        // Once both wait again, the next newcomer brings the count back within the cap: both
        // go, and it takes the one place.
        drop((_busy, busy_too));
        assert_eq!(table.admit(ip(4)).unwrap().kind, Kind::General);
        assert!(evict.is_cancelled() && second.evict.is_cancelled());
        {
            let entries = table.entries();
            assert_eq!((entries.general, entries.closing), (1, 2));
        }
        table.remove(first.id);
        table.remove(second.id);
        let entries = table.entries();
        assert_eq!((entries.general, entries.closing), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn connections_that_never_sent_a_request_go_before_keep_alive_ones() {
        let table = Table::new(limits(2, 1, 10));
        let keep_alive = table.admit(ip(1)).unwrap();
        drop(keep_alive.slot.begin());
        tokio::time::advance(Duration::from_secs(5)).await;
        let silent = table.admit(ip(2)).unwrap();
        table.admit(ip(3)).unwrap();
        assert!(silent.evict.is_cancelled() && !keep_alive.evict.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_more_is_accepted_until_evicted_connections_have_closed() {
        let table = Arc::new(Table::new(limits(1, 1, 10)));
        let first = table.admit(ip(1)).unwrap();
        table.admit(ip(2)).unwrap();
        assert!(first.evict.is_cancelled());
        let start = Instant::now();
        let waited = tokio::spawn({
            let table = table.clone();
            async move {
                table.room().await;
                start.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        table.remove(first.id);
        about(waited.await.unwrap(), Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_holds_at_most_its_share() {
        let table = Table::new(limits(10, 1, 2));
        let first = table.admit(ip(1)).unwrap();
        let second = table.admit(ip(1)).unwrap();
        let third = table.admit(ip(1)).unwrap();
        assert!(first.evict.is_cancelled() || second.evict.is_cancelled());
        let _busy = (second.slot.begin(), third.slot.begin());
        assert_eq!(table.admit(ip(1)).err(), Some(Refused::MaxConnectionsPerIp));
        assert!(table.admit(ip(2)).is_ok(), "other addresses are unaffected");
    }

    #[tokio::test(start_paused = true)]
    async fn reserved_connections_serve_only_probes_and_the_operator_then_close() {
        let (server, routes) = server(limits(1, 1, 8));
        let (mut busy, _) = connect(&server, ip(1));
        send_get(&mut busy, "/hold").await;
        routes.entered.notified().await;

        let (mut client, _) = connect(&server, ip(2));
        send_get(&mut client, "/api/v1/metrics").await;
        let answer = read_until(&mut client, "}").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("connection: close") && answer.contains("too_many_connections"), "{answer}");
        let refused = r#"microdash_http_connections_refused_total{reason="max_connections"}"#;
        assert_eq!(counted(&server, refused), 1.0);
        assert_eq!(read_to_close(&mut client).await, 0);

        let (mut client, _) = connect(&server, ip(2));
        send_get(&mut client, "/livez").await;
        assert!(read_until(&mut client, "ok\n").await.starts_with("HTTP/1.1 200"));
        assert_eq!(read_to_close(&mut client).await, 0, "one request per reserved connection");
        routes.release.notify_one();
        assert!(read_until(&mut busy, "done").await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn shutdown_finishes_requests_in_flight_and_closes_idle_connections() {
        use tokio::net::TcpStream;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (router, routes) = routes();
        let stop = CancellationToken::new();
        let serving = tokio::spawn({
            let stop = stop.clone();
            async move {
                let config = HttpConfig::default();
                serve(listener, router, &config, Arc::new(Telemetry::new()), stop.cancelled_owned()).await
            }
        });
        let request = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(request("/livez").as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("ok\n"));
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(request("/hold").as_bytes()).await.unwrap();
        routes.entered.notified().await;

        stop.cancel();
        let within = Duration::from_secs(5);
        let n = tokio::time::timeout(within, idle.read(&mut buf)).await.expect("idle connection kept open").unwrap();
        assert_eq!(n, 0, "an idle connection closes at shutdown");
        routes.release.notify_one();
        let mut answer = String::new();
        tokio::time::timeout(within, busy.read_to_string(&mut answer)).await.expect("answer").unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"), "{answer}");
        tokio::time::timeout(within, serving).await.expect("serve returns").unwrap().unwrap();
    }
}
