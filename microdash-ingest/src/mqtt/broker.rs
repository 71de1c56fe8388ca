//! The embedded MQTT endpoint: the all-in-one server's own MQTT listener, so devices and
//! agents can publish with no separate broker.
//!
//! It speaks MQTT 3.1.1 and 5 to publishers (packets framed by rumqttc's codec) and feeds what
//! they publish straight into the [`Ingestor`], without a broker hop. It is an ingest
//! endpoint, not a general broker: subscriptions are refused, and retained and will messages
//! are not kept. Deployments that need those run Mosquitto with the bridge.
//!
//! Tenant rule, the same as with Mosquitto and `microdash mqtt-auth`: a client signs in with
//! an ingest token as its password and the token's prefix as its username, and may publish
//! only under `{root}/{its tenant}/`. A publish anywhere else is refused and counted
//! (`microdash_metrics_rejected_total{source="mqtt",reason="forbidden"}`). MQTT 5 clients get
//! a `PUBACK` with reason "not authorized"; 3.1.1 has no negative acknowledgement, so those
//! are acknowledged and dropped, as Mosquitto does. Each connection holds its token
//! ([`crate::revocation::Hold`]): revoking it disconnects the client within a second, and
//! nothing it publishes from then on is stored.
//!
//! Delivery: QoS 1 and 2 publishes are acknowledged only once their batch is in the queue,
//! so an acknowledged metric is never lost. While the queue refuses, the connection is not
//! read, and the client's in-flight window holds the rest. Everything that arrived together
//! is enqueued as one batch.
//!
//! Quotas (see [`crate::quota`]): over its tenant's rate, a connection is held the same way
//! (not read, nothing acknowledged) until the bucket has room, so the tenant is slowed to its
//! rate and loses nothing. A publish that would add a series beyond the tenant's
//! `max_series` is refused on its own while the others are stored and acknowledged: MQTT 5
//! clients get a `PUBACK`/`PUBREC` with reason "quota exceeded"; 3.1.1 has no negative
//! acknowledgement, so that publish is left unacknowledged and the connection is closed once
//! the others are answered (the client sends it again when it reconnects, and is refused
//! again until the limit is raised).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use microdash_core::Metric;
use microdash_core::mqtt::{parse_payload, parse_topic, token_username};
use microdash_core::token::Scope;
use microdash_store::{Principal, Store};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::admission::{Admission, Caps, Slot};
use super::{MqttError, Outcome, OverRate, describe, reject, sleep_until, submit_retrying};
use crate::clock::now_ms;
use crate::http::auth::TokenUsage;
use crate::ingestor::Ingestor;
use crate::revocation::Holds;
use crate::telemetry::RejectReason;

/// How long writing a reply may take before the client is considered gone (it stopped
/// reading; its socket buffer is full).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to finish at shutdown before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Largest `CONNECT` accepted (client id, credentials, a will message).
const MAX_CONNECT_BYTES: usize = 64 * 1024;

/// Embedded endpoint settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on, such as `127.0.0.1:1884`.
    pub listen_addr: String,
    /// First topic level (`metrics`).
    pub topic_root: String,
    /// How long a new connection may take to send its `CONNECT`.
    pub connect_timeout: Duration,
    /// Connections served at once (never more than an eighth of the open-file limit). At
    /// the cap a newcomer takes the place of the oldest connection not signed in yet, or,
    /// when all are, is closed on arrival.
    pub max_connections: usize,
    /// Connections from one address (IPv6: one /64) at once, the same way.
    pub max_connections_per_ip: usize,
    /// Largest packet a client may send (announced to MQTT 5 clients); one metric per
    /// publish needs little.
    pub max_packet_bytes: usize,
}

impl BrokerConfig {
    /// Defaults for a listener on `listen_addr`.
    pub fn new(listen_addr: impl Into<String>) -> Self {
        Self {
            listen_addr: listen_addr.into(),
            topic_root: microdash_core::mqtt::DEFAULT_TOPIC_ROOT.into(),
            connect_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 1_024,
            max_packet_bytes: 256 * 1024,
        }
    }
}

/// A bound embedded endpoint; [`crate::Runtime::run_endpoint`] serves it.
pub struct Broker {
    listener: TcpListener,
    config: BrokerConfig,
}

impl Broker {
    /// Bind the listener, so a taken port fails at start-up rather than later.
    pub async fn bind(config: BrokerConfig) -> Result<Self, MqttError> {
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .map_err(|source| MqttError::Bind { addr: config.listen_addr.clone(), source })?;
        Ok(Self { listener, config })
    }

    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept publishers until `shutdown`; then let every connection finish what it holds
    /// (enqueue and acknowledge) and close, cutting those that take longer than 10 s.
    pub(crate) async fn run(self, store: Store, ingestor: Ingestor, holds: Arc<Holds>, shutdown: CancellationToken) {
        let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let admission =
            Admission::new(Caps::new(self.config.max_connections, self.config.max_connections_per_ip, open_files));
        let context =
            Arc::new(Context { store, ingestor, config: self.config, token_usage: TokenUsage::default(), holds });
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let slot = match admission.admit(peer.ip()) {
                            Ok(slot) => slot,
                            Err(refused) => {
                                tracing::debug!(%peer, limit = refused.setting(), "MQTT connection refused");
                                context.ingestor.telemetry().record_mqtt_connection_refused(refused.setting());
                                continue;
                            }
                        };
                        let _ = stream.set_nodelay(true);
                        let (context, shutdown) = (context.clone(), shutdown.clone());
                        connections.spawn(async move { serve(stream, peer, &slot, &context, &shutdown).await });
                    }
                    Err(err) => {
                        // Out of file descriptors, say: back off rather than spin.
                        tracing::warn!(error = %err, "accepting an MQTT connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            tracing::warn!(left = connections.len(), "cutting MQTT connections that did not finish in time");
            connections.abort_all();
        }
    }
}

struct Context {
    store: Store,
    ingestor: Ingestor,
    config: BrokerConfig,
    /// `last_used_at` writes, throttled as for HTTP requests.
    token_usage: TokenUsage,
    /// Where connections hold their tokens, so a revocation disconnects them.
    holds: Arc<Holds>,
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("no CONNECT within the connect timeout")]
    ConnectTimeout,
    #[error("a newcomer took its place before it signed in")]
    Evicted,
    #[error("silent for longer than 1.5 times its keep-alive")]
    KeepAlive,
    #[error("not reading what it is sent")]
    WriteTimeout,
    #[error("the queue refused its metrics")]
    Queue,
    #[error("a publish over its tenant's series limit (MQTT 3.1.1 cannot refuse it)")]
    OverQuota,
    #[error("unsupported: {0}")]
    Unsupported(String),
}

async fn serve(mut stream: TcpStream, peer: SocketAddr, slot: &Slot, context: &Context, shutdown: &CancellationToken) {
    match session(&mut stream, slot, context, shutdown).await {
        Ok(()) => tracing::debug!(%peer, "MQTT client disconnected"),
        Err(err) => tracing::debug!(%peer, error = %err, "MQTT connection closed"),
    }
}

/// A signed-in publisher.
struct Publisher {
    principal: Principal,
    tenant_id: i64,
    tenant: String,
}

/// Send and clear `output`, unless the client stops reading.
async fn flush(stream: &mut TcpStream, output: &mut BytesMut) -> Result<(), End> {
    if !output.is_empty() {
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(output)).await.map_err(|_| End::WriteTimeout)??;
        output.clear();
    }
    Ok(())
}

async fn session(
    stream: &mut TcpStream,
    slot: &Slot,
    context: &Context,
    shutdown: &CancellationToken,
) -> Result<(), End> {
    let config = &context.config;
    let mut input = BytesMut::with_capacity(4 * 1024);
    let mut output = BytesMut::with_capacity(4 * 1024);

    let connected = tokio::select! {
        connected = tokio::time::timeout(config.connect_timeout, read_connect(stream, &mut input)) => {
            connected.map_err(|_| End::ConnectTimeout)?
        }
        () = slot.evicted() => return Err(End::Evicted),
    };
    let (version, connect) = match connected {
        Ok(connected) => connected,
        Err(err) => {
            if let End::Unsupported(_) = err {
                // The answer the spec asks for, in the 3.1.1 form every version reads.
                Version::V4.write(Reply::ConnAck(Some(Refusal::UnsupportedProtocol), None), &mut output);
                let _ = flush(stream, &mut output).await;
            }
            return Err(err);
        }
    };
    let Inbound::Connect { login, keep_alive_s, client_id } = connect else {
        return Err(End::Protocol("the first packet must be CONNECT".into()));
    };
    let publisher = match sign_in(&context.store, &context.token_usage, login).await {
        Ok(publisher) if slot.signed_in() => publisher,
        // A newcomer took its place while its credentials were checked.
        Ok(_) => return Err(End::Evicted),
        Err(refusal) => {
            version.write(Reply::ConnAck(Some(refusal), None), &mut output);
            return flush(stream, &mut output).await;
        }
    };
    let hold = context.holds.hold(publisher.principal.credential);
    let assigned = client_id.is_empty().then(|| format!("microdash-{:x}", rand_id()));
    version.write(
        Reply::ConnAck(None, Some(Accepted { max_packet_bytes: config.max_packet_bytes, assigned })),
        &mut output,
    );

    let silence_limit = (keep_alive_s > 0).then(|| Duration::from_millis(u64::from(keep_alive_s) * 1_500));
    let mut last_packet = tokio::time::Instant::now();
    let mut packets = Packets {
        context,
        version,
        unreleased: HashSet::new(),
        max_batch: context.ingestor.limits().max_metrics_per_request.max(1),
    };
    loop {
        let received_at = now_ms();
        let mut burst = packets.take_burst(&mut input, &publisher, received_at);
        if burst.any {
            last_packet = tokio::time::Instant::now();
        }
        if hold.is_ended() {
            // Revoked while these were on their way: nothing more of this client is stored.
            return revoked(stream, version, &publisher, &mut output).await;
        }
        let mut over_quota = None;
        if !burst.metrics.is_empty() {
            let metrics = std::mem::take(&mut burst.metrics);
            let submitting = submit_retrying(
                &context.ingestor,
                publisher.tenant_id,
                &metrics,
                received_at,
                OverRate::Wait,
                shutdown,
            );
            let outcome = tokio::select! {
                // Revoked while the burst waits for the tenant's rate or for room in the
                // queue (which may take long): it is not acknowledged, the client goes now.
                () = hold.ended() => return revoked(stream, version, &publisher, &mut output).await,
                outcome = submitting => outcome,
            };
            let Outcome::Queued(refused) = outcome else {
                // Nothing of this burst is acknowledged: the client sends it again.
                return Err(End::Queue);
            };
            over_quota = packets.refuse_over_quota(&mut burst, &refused);
        }
        for reply in burst.replies.into_iter().flatten() {
            version.write(reply, &mut output);
        }
        flush(stream, &mut output).await?;
        if let Some(end) = over_quota {
            return Err(end);
        }
        if let Some(end) = burst.end {
            return end;
        }
        if burst.more_buffered {
            continue;
        }
        let silent_until = silence_limit.map(|limit| last_packet + limit);
        tokio::select! {
            () = shutdown.cancelled() => {
                version.write(Reply::Disconnect(Refusal::ShuttingDown), &mut output);
                let _ = flush(stream, &mut output).await;
                return Ok(());
            }
            () = sleep_until(silent_until) => return Err(End::KeepAlive),
            () = hold.ended() => return revoked(stream, version, &publisher, &mut output).await,
            read = stream.read_buf(&mut input) => {
                if read? == 0 {
                    return Ok(());
                }
            }
        }
    }
}

/// Disconnect a client whose token was revoked (MQTT 5 is told why).
async fn revoked(
    stream: &mut TcpStream,
    version: Version,
    publisher: &Publisher,
    output: &mut BytesMut,
) -> Result<(), End> {
    tracing::info!(tenant = %publisher.tenant, "disconnecting an MQTT client whose token was revoked");
    version.write(Reply::Disconnect(Refusal::NotAuthorized), output);
    flush(stream, output).await
}

/// What one pass over the buffered packets produced.
#[derive(Default)]
struct Burst {
    /// Metrics to enqueue, as one batch.
    metrics: Vec<Metric>,
    /// For each metric, the position in `replies` of its publish's acknowledgement (none
    /// for QoS 0).
    acks: Vec<Option<usize>>,
    /// Answers, sent once the metrics are queued (`None`: taken back, not sent).
    replies: Vec<Option<Reply>>,
    /// How the connection ends once this burst is answered: cleanly after a DISCONNECT, with
    /// an error after a broken packet (what came before it is still stored and answered).
    end: Option<Result<(), End>>,
    /// A request's worth of metrics was taken and more packets may be buffered.
    more_buffered: bool,
    /// At least one packet arrived.
    any: bool,
}

/// A connection's protocol state after sign-in.
struct Packets<'a> {
    context: &'a Context,
    version: Version,
    /// QoS 2 publishes acknowledged with PUBREC and not yet released: a resend is not
    /// stored again.
    unreleased: HashSet<u16>,
    /// Most metrics in one batch (a request's worth).
    max_batch: usize,
}

impl Packets<'_> {
    /// Act on the complete packets in `input`, up to a request's worth of metrics.
    fn take_burst(&mut self, input: &mut BytesMut, publisher: &Publisher, received_at: i64) -> Burst {
        let mut burst = Burst::default();
        while burst.end.is_none() {
            if burst.metrics.len() >= self.max_batch {
                burst.more_buffered = true;
                break;
            }
            let packet = match self.version.read(input, self.context.config.max_packet_bytes) {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(err) => {
                    burst.end = Some(Err(err));
                    break;
                }
            };
            burst.any = true;
            match packet {
                Inbound::Publish { topic, payload, qos, pkid } => {
                    let repeat = qos == 2 && !self.unreleased.insert(pkid);
                    let mut accepted = false;
                    let refusal = if repeat {
                        None
                    } else {
                        match accept(self.context, publisher, &topic, &payload, received_at) {
                            Ok(metric) => {
                                burst.metrics.push(metric);
                                accepted = true;
                                None
                            }
                            Err(refusal) => Some(refusal),
                        }
                    };
                    if refusal.is_some() && self.version == Version::V5 {
                        // A refused MQTT 5 exchange ends at the PUBREC: no PUBREL follows, and
                        // the id is free for the next message.
                        self.unreleased.remove(&pkid);
                    }
                    let ack = match qos {
                        1 => Some(Reply::PubAck(pkid, refusal)),
                        2 => Some(Reply::PubRec(pkid, refusal)),
                        _ => None,
                    };
                    if accepted {
                        burst.acks.push(ack.is_some().then_some(burst.replies.len()));
                    }
                    burst.replies.extend(ack.map(Some));
                }
                Inbound::PubRel(pkid) => {
                    self.unreleased.remove(&pkid);
                    burst.replies.push(Some(Reply::PubComp(pkid)));
                }
                Inbound::Subscribe { pkid, filters } => {
                    tracing::debug!(tenant = %publisher.tenant, "refused a subscription: the embedded endpoint only takes publishes");
                    burst.replies.push(Some(Reply::SubAck(pkid, filters)));
                }
                Inbound::Unsubscribe { pkid, filters } => burst.replies.push(Some(Reply::UnsubAck(pkid, filters))),
                Inbound::PingReq => burst.replies.push(Some(Reply::PingResp)),
                Inbound::Disconnect => burst.end = Some(Ok(())),
                Inbound::Connect { .. } => burst.end = Some(Err(End::Protocol("a second CONNECT".into()))),
                Inbound::Other => {}
            }
        }
        burst
    }

    /// Answer the publishes whose metrics the ingestor refused for the tenant's series limit
    /// (`refused`: positions in the burst's metrics): MQTT 5 with a negative acknowledgement;
    /// 3.1.1 with none, and the connection ends once the rest is answered.
    fn refuse_over_quota(&mut self, burst: &mut Burst, refused: &[usize]) -> Option<End> {
        let mut end = None;
        for slot in refused.iter().filter_map(|i| burst.acks.get(*i).copied().flatten()) {
            let Some(reply) = burst.replies.get_mut(slot) else { continue };
            let pkid = match reply {
                Some(Reply::PubAck(pkid, _) | Reply::PubRec(pkid, _)) => *pkid,
                _ => continue,
            };
            if self.version == Version::V4 {
                // Unacknowledged: the message stays the client's to send again.
                *reply = None;
                self.unreleased.remove(&pkid);
                end = Some(End::OverQuota);
                continue;
            }
            *reply = match reply.take() {
                Some(Reply::PubRec(..)) => {
                    // A refused exchange ends at the PUBREC, as other refusals do.
                    self.unreleased.remove(&pkid);
                    Some(Reply::PubRec(pkid, Some(Refusal::QuotaExceeded)))
                }
                _ => Some(Reply::PubAck(pkid, Some(Refusal::QuotaExceeded))),
            };
        }
        end
    }
}

/// A process-unique number for client ids the endpoint assigns.
fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    (now_ms() as u64) << 16 ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Check a `CONNECT`'s credentials: an ingest token of a tenant, under its own prefix.
async fn sign_in(store: &Store, usage: &TokenUsage, login: Option<(String, String)>) -> Result<Publisher, Refusal> {
    let Some((username, password)) = login else { return Err(Refusal::BadCredentials) };
    if username != token_username(&password) {
        return Err(Refusal::BadCredentials);
    }
    let unavailable = |err: microdash_store::StoreError| {
        tracing::warn!(error = %err, "checking MQTT credentials failed");
        Refusal::Unavailable
    };
    let principal = store.authenticate(&password).await.map_err(unavailable)?.ok_or(Refusal::BadCredentials)?;
    let Some(tenant_id) = principal.tenant_id.filter(|_| principal.scopes.contains(Scope::Ingest)) else {
        return Err(Refusal::NotAuthorized);
    };
    let tenant = store.tenant(tenant_id).await.map_err(unavailable)?.ok_or(Refusal::NotAuthorized)?;
    if let microdash_store::Credential::Token(token_id) = principal.credential {
        usage.touch(store, token_id);
    }
    Ok(Publisher { principal, tenant_id, tenant: tenant.slug })
}

/// The metric in one publish, or why it is refused (counted and logged).
fn accept(
    context: &Context,
    publisher: &Publisher,
    topic: &str,
    payload: &[u8],
    received_at: i64,
) -> Result<Metric, Refusal> {
    let ingestor = &context.ingestor;
    let limits = ingestor.limits();
    let parsed = parse_topic(&context.config.topic_root, topic, limits).map_err(|problem| {
        reject(ingestor, RejectReason::Invalid, topic, &problem);
        Refusal::TopicInvalid
    })?;
    if parsed.tenant != publisher.tenant {
        let problem = format!("tenant {:?} is not this token's tenant {:?}", parsed.tenant, publisher.tenant);
        reject(ingestor, RejectReason::Forbidden, topic, &problem);
        return Err(Refusal::NotAuthorized);
    }
    parse_payload(&parsed, payload, limits, received_at).map_err(|err| {
        reject(ingestor, RejectReason::Invalid, topic, &describe(&err));
        Refusal::PayloadInvalid
    })
}

/// Read the first packet, which must be a `CONNECT`. Its protocol level (the byte after the
/// protocol name) picks the codec: 4 is MQTT 3.1.1, 5 is MQTT 5.
async fn read_connect(stream: &mut TcpStream, input: &mut BytesMut) -> Result<(Version, Inbound), End> {
    let mut version = None;
    loop {
        if version.is_none() && !input.is_empty() {
            if input[0] != 0x10 {
                return Err(End::Protocol("the first packet must be CONNECT".into()));
            }
            // Fixed header: the type byte and a 1-4 byte length; then the protocol name (a
            // 2-byte length and "MQTT") and the level.
            match input.iter().skip(1).take(4).position(|b| b & 0x80 == 0) {
                None if input.len() >= 5 => return Err(End::Protocol("malformed CONNECT length".into())),
                None => {}
                Some(p) => {
                    let name = 2 + p;
                    match (input.get(name..name + 6), input.get(name + 6)) {
                        (Some(b"\0\x04MQTT"), Some(4)) => version = Some(Version::V4),
                        (Some(b"\0\x04MQTT"), Some(5)) => version = Some(Version::V5),
                        (Some(_), Some(level)) => {
                            return Err(End::Unsupported(format!(
                                "protocol level {level} (MQTT 3.1.1 and 5 are spoken)"
                            )));
                        }
                        _ => {}
                    }
                }
            }
        }
        if let Some(version) = version
            && let Some(packet) = version.read(input, MAX_CONNECT_BYTES)?
        {
            return Ok((version, packet));
        }
        if stream.read_buf(input).await? == 0 {
            return Err(End::Protocol("closed before CONNECT".into()));
        }
    }
}

/// MQTT 3.1.1 or 5, chosen by the client's `CONNECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V4,
    V5,
}

/// A packet from a client, reduced to what the endpoint acts on.
#[derive(Debug)]
enum Inbound {
    Connect {
        client_id: String,
        login: Option<(String, String)>,
        keep_alive_s: u16,
    },
    Publish {
        topic: String,
        payload: bytes::Bytes,
        qos: u8,
        pkid: u16,
    },
    PubRel(u16),
    Subscribe {
        pkid: u16,
        filters: usize,
    },
    Unsubscribe {
        pkid: u16,
        filters: usize,
    },
    PingReq,
    Disconnect,
    /// Nothing to answer (acknowledgements of messages this endpoint never sends).
    Other,
}

/// Why something was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    BadCredentials,
    NotAuthorized,
    Unavailable,
    UnsupportedProtocol,
    TopicInvalid,
    PayloadInvalid,
    QuotaExceeded,
    ShuttingDown,
}

/// What an MQTT 5 client learns about the session it got.
#[derive(Debug)]
struct Accepted {
    max_packet_bytes: usize,
    /// The client id given to a client that sent none.
    assigned: Option<String>,
}

/// A packet to a client; `Some(refusal)` is a negative answer.
#[derive(Debug)]
enum Reply {
    ConnAck(Option<Refusal>, Option<Accepted>),
    PubAck(u16, Option<Refusal>),
    PubRec(u16, Option<Refusal>),
    PubComp(u16),
    /// Every filter refused.
    SubAck(u16, usize),
    UnsubAck(u16, usize),
    PingResp,
    /// MQTT 5 only; a 3.1.1 connection is simply closed.
    Disconnect(Refusal),
}

impl Version {
    /// The next complete packet in `input`, if one has arrived.
    fn read(self, input: &mut BytesMut, max_packet: usize) -> Result<Option<Inbound>, End> {
        let protocol = |err: &dyn std::fmt::Display| End::Protocol(err.to_string());
        // "Insufficient bytes" means "wait for more" only while the packet is incomplete. The
        // codec also says it of a complete packet whose fields run past its end, after taking
        // the packet off `input`: that packet is malformed, and waiting would leave the
        // packets behind it unanswered.
        let before = input.len();
        Ok(Some(match self {
            Version::V4 => match v4::Packet::read(input, max_packet) {
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) if input.len() == before => return Ok(None),
                Err(err) => return Err(protocol(&err)),
                Ok(v4::Packet::Connect(connect)) => Inbound::Connect {
                    client_id: connect.client_id,
                    login: connect.login.map(|l| (l.username, l.password)),
                    keep_alive_s: connect.keep_alive,
                },
                Ok(v4::Packet::Publish(p)) => {
                    Inbound::Publish { topic: p.topic, payload: p.payload, qos: p.qos as u8, pkid: p.pkid }
                }
                Ok(v4::Packet::PubRel(p)) => Inbound::PubRel(p.pkid),
                Ok(v4::Packet::Subscribe(s)) => Inbound::Subscribe { pkid: s.pkid, filters: s.filters.len() },
                Ok(v4::Packet::Unsubscribe(u)) => Inbound::Unsubscribe { pkid: u.pkid, filters: u.topics.len() },
                Ok(v4::Packet::PingReq) => Inbound::PingReq,
                Ok(v4::Packet::Disconnect) => Inbound::Disconnect,
                Ok(_) => Inbound::Other,
            },
            // rumqttc takes only the long form of a DISCONNECT; clients mostly send the short.
            Version::V5 if input.starts_with(&[0xE0, 0x00]) => {
                bytes::Buf::advance(input, 2);
                Inbound::Disconnect
            }
            Version::V5 => match v5::Packet::read(input, Some(max_packet as u32)) {
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) if input.len() == before => return Ok(None),
                Err(err) => return Err(protocol(&err)),
                Ok(v5::Packet::Connect(connect, _will, login)) => Inbound::Connect {
                    client_id: connect.client_id,
                    login: login.map(|l| (l.username, l.password)),
                    keep_alive_s: connect.keep_alive,
                },
                Ok(v5::Packet::Publish(p)) => Inbound::Publish {
                    topic: String::from_utf8(p.topic.to_vec()).map_err(|e| protocol(&e))?,
                    payload: p.payload,
                    qos: p.qos as u8,
                    pkid: p.pkid,
                },
                Ok(v5::Packet::PubRel(p)) => Inbound::PubRel(p.pkid),
                Ok(v5::Packet::Subscribe(s)) => Inbound::Subscribe { pkid: s.pkid, filters: s.filters.len() },
                Ok(v5::Packet::Unsubscribe(u)) => Inbound::Unsubscribe { pkid: u.pkid, filters: u.filters.len() },
                Ok(v5::Packet::PingReq(_)) => Inbound::PingReq,
                Ok(v5::Packet::Disconnect(_)) => Inbound::Disconnect,
                Ok(_) => Inbound::Other,
            },
        }))
    }

    /// Append `reply` to `output`.
    fn write(self, reply: Reply, output: &mut BytesMut) {
        // Replies are a few bytes each; writing them cannot exceed a size limit.
        let written = match self {
            Version::V4 => {
                v4_packet(reply).map(|packet| packet.write(output, usize::MAX).map(drop).map_err(|e| e.to_string()))
            }
            Version::V5 => {
                v5_packet(reply).map(|packet| packet.write(output, None).map(drop).map_err(|e| e.to_string()))
            }
        };
        if let Some(Err(err)) = written {
            tracing::error!(error = %err, "encoding an MQTT reply failed");
        }
    }
}

fn v4_packet(reply: Reply) -> Option<v4::Packet> {
    use v4::{ConnAck, ConnectReturnCode as Code, Packet};
    Some(match reply {
        Reply::ConnAck(refusal, _) => Packet::ConnAck(ConnAck::new(
            match refusal {
                None => Code::Success,
                Some(Refusal::BadCredentials) => Code::BadUserNamePassword,
                Some(Refusal::UnsupportedProtocol) => Code::RefusedProtocolVersion,
                Some(Refusal::Unavailable | Refusal::ShuttingDown) => Code::ServiceUnavailable,
                Some(_) => Code::NotAuthorized,
            },
            false,
        )),
        // 3.1.1 cannot refuse a publish: acknowledged and dropped.
        Reply::PubAck(pkid, _) => Packet::PubAck(v4::PubAck::new(pkid)),
        Reply::PubRec(pkid, _) => Packet::PubRec(v4::PubRec::new(pkid)),
        Reply::PubComp(pkid) => Packet::PubComp(v4::PubComp::new(pkid)),
        Reply::SubAck(pkid, filters) => {
            Packet::SubAck(v4::SubAck::new(pkid, vec![v4::SubscribeReasonCode::Failure; filters]))
        }
        Reply::UnsubAck(pkid, _) => Packet::UnsubAck(v4::UnsubAck::new(pkid)),
        Reply::PingResp => Packet::PingResp,
        Reply::Disconnect(_) => return None,
    })
}

fn v5_packet(reply: Reply) -> Option<v5::Packet> {
    use v5::{ConnectReturnCode as Code, Packet, PubAckReason, PubRecReason};
    Some(match reply {
        Reply::ConnAck(refusal, accepted) => Packet::ConnAck(v5::ConnAck {
            session_present: false,
            code: match refusal {
                None => Code::Success,
                Some(Refusal::BadCredentials) => Code::BadUserNamePassword,
                Some(Refusal::UnsupportedProtocol) => Code::UnsupportedProtocolVersion,
                Some(Refusal::Unavailable) => Code::ServerUnavailable,
                Some(Refusal::ShuttingDown) => Code::ServerBusy,
                Some(_) => Code::NotAuthorized,
            },
            properties: accepted.map(|accepted| v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: None,
                max_qos: None,
                // Retained messages are stored as metrics, never kept for subscribers.
                retain_available: Some(0),
                max_packet_size: Some(u32::try_from(accepted.max_packet_bytes).unwrap_or(u32::MAX)),
                assigned_client_identifier: accepted.assigned,
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: Some(0),
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(0),
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        }),
        Reply::PubAck(pkid, refusal) => Packet::PubAck(v5::PubAck {
            pkid,
            reason: match refusal {
                None => PubAckReason::Success,
                Some(Refusal::TopicInvalid) => PubAckReason::TopicNameInvalid,
                Some(Refusal::PayloadInvalid) => PubAckReason::PayloadFormatInvalid,
                Some(Refusal::QuotaExceeded) => PubAckReason::QuotaExceeded,
                Some(_) => PubAckReason::NotAuthorized,
            },
            properties: None,
        }),
        Reply::PubRec(pkid, refusal) => Packet::PubRec(v5::PubRec {
            pkid,
            reason: match refusal {
                None => PubRecReason::Success,
                Some(Refusal::TopicInvalid) => PubRecReason::TopicNameInvalid,
                Some(Refusal::PayloadInvalid) => PubRecReason::PayloadFormatInvalid,
                Some(Refusal::QuotaExceeded) => PubRecReason::QuotaExceeded,
                Some(_) => PubRecReason::NotAuthorized,
            },
            properties: None,
        }),
        Reply::PubComp(pkid) => Packet::PubComp(v5::PubComp::new(pkid, None)),
        Reply::SubAck(pkid, filters) => Packet::SubAck(v5::SubAck {
            pkid,
            return_codes: vec![v5::SubscribeReasonCode::NotAuthorized; filters],
            properties: None,
        }),
        Reply::UnsubAck(pkid, filters) => Packet::UnsubAck(v5::UnsubAck {
            pkid,
            reasons: vec![v5::UnsubAckReason::NoSubscriptionExisted; filters],
            properties: None,
        }),
        Reply::PingResp => Packet::PingResp(v5::PingResp),
        Reply::Disconnect(refusal) => Packet::Disconnect(v5::Disconnect::new(match refusal {
            Refusal::ShuttingDown => v5::DisconnectReasonCode::ServerShuttingDown,
            _ => v5::DisconnectReasonCode::NotAuthorized,
        })),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn encoded_v4(packet: v4::Packet) -> BytesMut {
        let mut buf = BytesMut::new();
        packet.write(&mut buf, usize::MAX).unwrap();
        buf
    }

    #[test]
    fn reads_packets_as_they_complete() {
        let mut connect = v4::Connect::new("c1");
        connect.set_login("mdk_abcd", "secret");
        let mut wire = encoded_v4(v4::Packet::Connect(connect));
        let mut publish = v4::Publish::new("metrics/acme/a1/cpu", rumqttc::mqttbytes::QoS::AtLeastOnce, "42");
        publish.pkid = 7;
        wire.extend_from_slice(&encoded_v4(v4::Packet::Publish(publish)));

        let split = wire.len() - 3;
        let mut input = BytesMut::from(&wire[..split]);
        let Some(Inbound::Connect { login, .. }) = Version::V4.read(&mut input, 1024).unwrap() else { panic!() };
        assert_eq!(login, Some(("mdk_abcd".into(), "secret".into())));
        assert!(Version::V4.read(&mut input, 1024).unwrap().is_none(), "a partial publish waits");
        input.extend_from_slice(&wire[split..]);
        let Some(Inbound::Publish { topic, payload, qos, pkid }) = Version::V4.read(&mut input, 1024).unwrap() else {
            panic!()
        };
        assert_eq!((topic.as_str(), &payload[..], qos, pkid), ("metrics/acme/a1/cpu", &b"42"[..], 1, 7));
    }

    #[test]
    fn refuses_publishes_only_where_the_protocol_can_say_so() {
        let mut v5_out = BytesMut::new();
        Version::V5.write(Reply::PubAck(9, Some(Refusal::NotAuthorized)), &mut v5_out);
        let Ok(v5::Packet::PubAck(ack)) = v5::Packet::read(&mut v5_out, None) else { panic!() };
        assert_eq!((ack.pkid, ack.reason), (9, v5::PubAckReason::NotAuthorized));

        let mut v4_out = BytesMut::new();
        Version::V4.write(Reply::PubAck(9, Some(Refusal::NotAuthorized)), &mut v4_out);
        assert_eq!(v4::Packet::read(&mut v4_out, 1024).unwrap(), v4::Packet::PubAck(v4::PubAck::new(9)));

        let mut nothing = BytesMut::new();
        Version::V4.write(Reply::Disconnect(Refusal::ShuttingDown), &mut nothing);
        assert!(nothing.is_empty(), "3.1.1 has no server DISCONNECT");
    }

    mod codec {
        //! The packet codec under arbitrary input: it answers every buffer (a packet, "wait
        //! for more", or an error), never panics, and waits for more only for a packet it
        //! would take, so a declared huge remaining length is refused from its header alone.
        //! `PROPTEST_CASES` sets the cases (default 512).

        use proptest::prelude::*;
        use rumqttc::mqttbytes::QoS as QoS4;
        use rumqttc::v5::mqttbytes::QoS as QoS5;

        use super::*;

        const MAX_PACKET: usize = 1024;

        fn config() -> ProptestConfig {
            let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512);
            ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
        }

        /// The remaining length a fixed header at the start of `input` declares, if complete.
        fn declared(input: &[u8]) -> Option<usize> {
            let mut len = 0usize;
            for (i, byte) in input.iter().skip(1).take(4).enumerate() {
                len += usize::from(byte & 0x7f) << (7 * i);
                if byte & 0x80 == 0 {
                    return Some(len);
                }
            }
            None
        }

        /// Read packets until the codec waits or refuses, checking each step.
        fn read_all(version: Version, bytes: &[u8]) -> Result<(), TestCaseError> {
            let mut input = BytesMut::from(bytes);
            loop {
                let before = input.len();
                match version.read(&mut input, MAX_PACKET) {
                    Ok(Some(_)) => prop_assert!(input.len() < before, "a packet consumes its bytes"),
                    Ok(None) => {
                        prop_assert_eq!(input.len(), before, "waiting consumes nothing");
                        if let Some(len) = declared(&input) {
                            prop_assert!(len <= MAX_PACKET, "waits for a declared {} bytes", len);
                        }
                        return Ok(());
                    }
                    Err(_) => return Ok(()),
                }
            }
        }

        /// Valid packets a client sends, encoded for `version`.
        fn packets(v5: bool) -> impl Strategy<Value = Vec<u8>> {
            let one = (0u8..6, "[a-z/]{0,40}", proptest::collection::vec(any::<u8>(), 0..64), 1u16..=u16::MAX);
            proptest::collection::vec(one, 1..6).prop_map(move |list| {
                let mut out = BytesMut::new();
                for (kind, topic, payload, pkid) in list {
                    if v5 {
                        let packet = match kind {
                            0 => v5::Packet::Connect(
                                v5::Connect { keep_alive: pkid, client_id: topic, clean_start: true, properties: None },
                                None,
                                Some(v5::Login::new("u", "p")),
                            ),
                            1 | 2 => {
                                let mut p = v5::Publish::new(topic, QoS5::AtLeastOnce, payload, None);
                                p.pkid = pkid;
                                v5::Packet::Publish(p)
                            }
                            3 => v5::Packet::PubRel(v5::PubRel::new(pkid, None)),
                            4 => v5::Packet::Subscribe(v5::Subscribe::new(
                                v5::Filter::new(topic, QoS5::AtLeastOnce),
                                None,
                            )),
                            _ => v5::Packet::PingReq(v5::PingReq),
                        };
                        let _ = packet.write(&mut out, None);
                    } else {
                        let packet = match kind {
                            0 => {
                                let mut connect = v4::Connect::new(topic);
                                connect.set_login("u", "p");
                                v4::Packet::Connect(connect)
                            }
                            1 | 2 => {
                                let mut p = v4::Publish::new(topic, QoS4::AtLeastOnce, payload);
                                p.pkid = pkid;
                                v4::Packet::Publish(p)
                            }
                            3 => v4::Packet::PubRel(v4::PubRel::new(pkid)),
                            4 => v4::Packet::Subscribe(v4::Subscribe::new(topic, QoS4::AtLeastOnce)),
                            _ => v4::Packet::PingReq,
                        };
                        let _ = packet.write(&mut out, usize::MAX);
                    }
                }
                out.to_vec()
            })
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..2048), v5 in any::<bool>()) {
                read_all(if v5 { Version::V5 } else { Version::V4 }, &bytes)?;
            }

            #[test]
            fn mutated_packets_are_answered(
                (v5, bytes) in any::<bool>().prop_flat_map(|v5| (Just(v5), packets(v5))),
                edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
            ) {
                let mut bytes = bytes;
                for (at, byte, how) in edits {
                    let at = at % (bytes.len() + 1);
                    match how {
                        0 if at < bytes.len() => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ => bytes.truncate(at),
                    }
                }
                read_all(if v5 { Version::V5 } else { Version::V4 }, &bytes)?;
            }

            /// A header declaring more than a packet may hold is refused at once, however
            /// little of the packet has arrived.
            #[test]
            fn a_declared_length_over_the_limit_is_refused_from_the_header(
                kind in 1u8..16,
                flags in 0u8..16,
                len in (MAX_PACKET + 1)..268_435_456,
                v5 in any::<bool>(),
            ) {
                let mut header = vec![kind << 4 | flags];
                let mut rest = len;
                loop {
                    let byte = (rest & 0x7f) as u8;
                    rest >>= 7;
                    header.push(if rest > 0 { byte | 0x80 } else { byte });
                    if rest == 0 {
                        break;
                    }
                }
                let version = if v5 { Version::V5 } else { Version::V4 };
                prop_assert!(version.read(&mut BytesMut::from(&header[..]), MAX_PACKET).is_err());
            }
        }
    }
}
