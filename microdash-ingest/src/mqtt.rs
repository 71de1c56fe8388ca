//! The MQTT bridge: subscribes to `{root}/{tenant}/{agent_id}/{metric_name}` and feeds what it
//! receives through the same validation, queue and workers as HTTP.
//!
//! Messages are taken in bursts (whatever has arrived, up to [`MAX_BURST`]) and enqueued as one
//! batch per tenant, so a high message rate does not become one queue entry per message. A
//! malformed message is counted (`microdash_metrics_rejected_total{source="mqtt"}`) and logged
//! with its topic, and never stops the bridge. When the queue refuses a batch, or the database
//! is down when a tenant has to be looked up, the bridge stops reading and retries, so the
//! backlog waits in the broker (QoS 1) rather than being dropped.
//! Several bridge processes share the load through an MQTT 5 shared subscription
//! (`$share/{group}/...`): the broker hands each message to one of them.
//!
//! Delivery: the bridge keeps a persistent session (clean start off, an hour's expiry), so the
//! broker queues QoS 1 messages while the bridge is disconnected or restarting. paho
//! acknowledges a message when it reaches this process, before the batch is queued; a bridge
//! killed in between loses what it held. A graceful stop drains first.
//!
//! Quotas (see [`crate::quota`]): the broker has acknowledged what the bridge receives, so the
//! bridge never drops a metric for its tenant's rate. It holds a tenant's metrics while the
//! tenant is over its rate (up to a request's worth, `max_metrics_per_request`) and queues
//! them as the tenant's bucket refills, reading on for the other tenants meanwhile; a tenant
//! that keeps publishing faster than its rate fills that allowance and then holds up the
//! bridge (as a full queue does), the backlog waiting in the broker. At shutdown what it holds
//! is queued regardless of the rate. A metric that would add a series beyond the tenant's
//! `max_series` is refused, counted and logged like an invalid message.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use microdash_core::Metric;
use microdash_core::mqtt::{parse_payload, parse_topic};
use microdash_store::Store;
use paho_mqtt as mqtt;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::ingestor::{IngestError, Ingestor};
use crate::quota::Mode;
use crate::telemetry::{RejectReason, Source};

mod admission;
pub mod broker;

/// Most messages taken off the connection before they are enqueued.
pub const MAX_BURST: usize = 2_000;
/// Messages paho may hold for the bridge. paho acknowledges QoS 1 messages as they arrive and
/// drops what does not fit here, so it is sized for bursts well beyond what the queue takes
/// in a second (about 40 MB at its fullest).
const RECEIVE_BUFFER: usize = 200_000;
/// How long an unknown tenant slug is remembered as unknown.
const UNKNOWN_TENANT_TTL: Duration = Duration::from_secs(10);

/// Bridge settings.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Broker URL, such as `tcp://127.0.0.1:1883`.
    pub url: String,
    /// This client's id: unique per bridge, and stable across its restarts so that it resumes
    /// its broker session.
    pub client_id: String,
    /// First topic level (`metrics`); a test or a shared broker can use a longer prefix.
    pub topic_root: String,
    /// Shared-subscription group; `None` subscribes plainly (every bridge gets every message).
    pub shared_group: Option<String>,
    /// Broker credentials, if the broker wants them.
    pub username: Option<String>,
    /// Broker password.
    pub password: Option<String>,
    /// Longest wait between reconnection attempts.
    pub max_reconnect_delay: Duration,
}

impl MqttConfig {
    /// Defaults for a broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client_id: "microdash-bridge".into(),
            topic_root: microdash_core::mqtt::DEFAULT_TOPIC_ROOT.into(),
            shared_group: Some("microdash".into()),
            username: None,
            password: None,
            max_reconnect_delay: Duration::from_secs(10),
        }
    }

    /// The subscription filter.
    pub fn filter(&self) -> String {
        let topics = format!("{}/+/+/+", self.topic_root);
        match &self.shared_group {
            Some(group) => format!("$share/{group}/{topics}"),
            None => topics,
        }
    }
}

/// Bridge failures that stop it before it runs.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The client could not be created (bad URL or options).
    #[error("mqtt: {0}")]
    Client(#[from] mqtt::Error),
    /// The embedded endpoint's listener could not be bound (the port is taken, say).
    #[error("mqtt: binding {addr}: {source}")]
    Bind {
        /// The configured listen address.
        addr: String,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// Tenant slugs to ids, with misses remembered briefly so a flood on a wrong slug does not
/// become a flood of queries.
struct Tenants {
    store: Store,
    known: HashMap<String, i64>,
    unknown: HashMap<String, Instant>,
}

impl Tenants {
    /// The tenant's id, `None` if there is none. While the database is unavailable this waits
    /// and asks again (the burst waits with it): the broker has had its acknowledgement
    /// already, so a message dropped here would be lost. After shutdown, retries stop once
    /// the backoff reaches 5 s, as for a refusing queue.
    async fn id(&mut self, slug: &str, shutdown: &CancellationToken) -> Option<i64> {
        if let Some(id) = self.known.get(slug) {
            return Some(*id);
        }
        if self.unknown.get(slug).is_some_and(|at| at.elapsed() < UNKNOWN_TENANT_TTL) {
            return None;
        }
        let mut delay = Duration::from_millis(50);
        loop {
            match self.store.tenant_by_slug(slug).await {
                Ok(Some(tenant)) => {
                    self.known.insert(slug.to_owned(), tenant.id);
                    return Some(tenant.id);
                }
                Ok(None) => {
                    if self.unknown.len() > 10_000 {
                        self.unknown.clear();
                    }
                    self.unknown.insert(slug.to_owned(), Instant::now());
                    return None;
                }
                Err(err)
                    if err.kind() == microdash_core::ErrorKind::Unavailable
                        && (!shutdown.is_cancelled() || delay < Duration::from_secs(5)) =>
                {
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "looking up a tenant for MQTT failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(err) => {
                    tracing::error!(tenant = slug, error = %err, "looking up a tenant for MQTT failed; its messages are dropped");
                    return None;
                }
            }
        }
    }
}

/// Run the bridge until `shutdown`: connect (retrying with backoff), subscribe, and feed every
/// message to `ingestor`; reconnect and resubscribe whenever the connection drops.
pub(crate) async fn run_bridge(
    config: MqttConfig,
    store: Store,
    ingestor: Ingestor,
    shutdown: CancellationToken,
) -> Result<(), MqttError> {
    let mut client = mqtt::CreateOptionsBuilder::new()
        .server_uri(&config.url)
        .client_id(&config.client_id)
        .persistence(mqtt::PersistenceType::None)
        .create_client()?;
    let messages = client.get_stream(RECEIVE_BUFFER);
    let mut tenants = Tenants { store, known: HashMap::new(), unknown: HashMap::new() };
    // Metrics of tenants over their rate, waiting for their buckets.
    let mut held: BTreeMap<i64, Held> = BTreeMap::new();
    'connection: loop {
        if !connect(&client, &config, &shutdown).await {
            return Ok(());
        }
        tracing::info!(url = %microdash_core::text::redact_url_password(&config.url), filter = %config.filter(), "MQTT bridge subscribed");
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => break 'connection,
                () = sleep_until(held.values().map(|h| h.retry_at).min()) => {
                    deliver_due(&ingestor, &mut held, &shutdown).await;
                    continue;
                }
                first = messages.recv() => first,
            };
            let mut burst = match first {
                Ok(Some(message)) => vec![message],
                // `None` in the stream: the connection dropped.
                Ok(None) => {
                    tracing::warn!("MQTT connection lost; reconnecting");
                    continue 'connection;
                }
                Err(_closed) => break 'connection,
            };
            let mut dropped = false;
            while burst.len() < MAX_BURST {
                match messages.try_recv() {
                    Ok(Some(message)) => burst.push(message),
                    Ok(None) => {
                        dropped = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            enqueue(&ingestor, &mut tenants, &config.topic_root, burst, &mut held, &shutdown).await;
            if dropped {
                tracing::warn!("MQTT connection lost; reconnecting");
                continue 'connection;
            }
        }
    }
    // The broker no longer has what the bridge holds: queue it, over the rate or not.
    for (tenant_id, h) in std::mem::take(&mut held) {
        deliver(&ingestor, tenant_id, h.metrics, h.received_at, OverRate::WaitOrForce, &shutdown).await;
    }
    if client.is_connected() {
        let _ = client.disconnect(None).await;
    }
    release(client).await;
    Ok(())
}

/// One tenant's metrics the bridge holds while the tenant is over its rate.
struct Held {
    /// In the order they arrived; later messages of the tenant go behind them.
    metrics: Vec<Metric>,
    received_at: i64,
    /// When its bucket has room for the first of them.
    retry_at: tokio::time::Instant,
}

/// Sleep until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Try again the held metrics whose tenants' buckets have room by now.
async fn deliver_due(ingestor: &Ingestor, held: &mut BTreeMap<i64, Held>, shutdown: &CancellationToken) {
    let now = tokio::time::Instant::now();
    let due: Vec<i64> = held.iter().filter(|(_, h)| h.retry_at <= now).map(|(id, _)| *id).collect();
    for tenant_id in due {
        if let Some(h) = held.remove(&tenant_id)
            && let Some(h) = deliver(ingestor, tenant_id, h.metrics, h.received_at, OverRate::GiveBack, shutdown).await
        {
            held.insert(tenant_id, h);
        }
    }
}

/// Queue one tenant's metrics a request's worth at a time; what is left when the tenant is
/// over its rate comes back (with [`OverRate::GiveBack`]) for the caller to hold.
async fn deliver(
    ingestor: &Ingestor,
    tenant_id: i64,
    mut metrics: Vec<Metric>,
    received_at: i64,
    over_rate: OverRate,
    shutdown: &CancellationToken,
) -> Option<Held> {
    // A request's worth always fits in a tenant's bucket once it is full.
    let chunk = ingestor.limits().max_metrics_per_request.max(1);
    while !metrics.is_empty() {
        let n = chunk.min(metrics.len());
        match submit_retrying(ingestor, tenant_id, &metrics[..n], received_at, over_rate, shutdown).await {
            Outcome::Queued(refused) => {
                if !refused.is_empty() {
                    let problem = format!("{} metrics would add series beyond the tenant's max_series", refused.len());
                    log_rejection(RejectReason::OverQuota, &format!("tenant {tenant_id}"), &problem);
                }
            }
            Outcome::OverRate(wait) => {
                return Some(Held { metrics, received_at, retry_at: tokio::time::Instant::now() + wait });
            }
            // Logged; only after shutdown, with the queue down.
            Outcome::Failed => {}
        }
        metrics.drain(..n);
    }
    None
}

/// Drop a paho client safely. paho's callback thread holds a reference to the client until
/// the callback of the last operation returns; if that reference is the last one, the client
/// is destroyed inside paho's lock and the process deadlocks. Waiting a moment after the last
/// operation lets the callback let go first.
pub async fn release(client: mqtt::AsyncClient) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(client);
}

/// How long the broker keeps the bridge's session (its subscription and the QoS 1 messages
/// that arrive for it) while the bridge is away: a restarted bridge, or one that lost its
/// connection, picks up what was published meanwhile.
const SESSION_EXPIRY_S: i32 = 3_600;

fn connect_options(config: &MqttConfig) -> mqtt::ConnectOptions {
    let mut options = mqtt::ConnectOptionsBuilder::new_v5();
    options
        .clean_start(false)
        .properties(mqtt::properties![mqtt::PropertyCode::SessionExpiryInterval => SESSION_EXPIRY_S])
        .keep_alive_interval(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(5));
    if let Some(user) = &config.username {
        options.user_name(user);
    }
    if let Some(password) = &config.password {
        options.password(password.as_str());
    }
    options.finalize()
}

/// Connect and subscribe, retrying with exponential backoff; `false` if shut down first.
async fn connect(client: &mqtt::AsyncClient, config: &MqttConfig, shutdown: &CancellationToken) -> bool {
    let mut delay = Duration::from_millis(100);
    loop {
        let attempt = async {
            // Built per attempt: paho's options are not `Send` and must not live across an await.
            let connecting = client.connect(connect_options(config));
            connecting.await?;
            client.subscribe(config.filter(), mqtt::QOS_1).await?;
            Ok::<(), mqtt::Error>(())
        };
        // Never abandoned half-way: paho deadlocks if the client is dropped while a connect is
        // pending (the failing connect's callback drops the last client reference inside the
        // C library's lock). The connect timeout bounds the wait.
        let outcome = attempt.await;
        if shutdown.is_cancelled() {
            return outcome.is_ok();
        }
        match outcome {
            Ok(()) => return true,
            Err(err) => {
                tracing::warn!(url = %microdash_core::text::redact_url_password(&config.url), error = %err, retry_in_ms = delay.as_millis() as u64, "MQTT connect failed")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(config.max_reconnect_delay);
    }
}

/// Validate a burst and enqueue it as one batch per tenant; bad messages are counted and
/// logged, full queues retried.
async fn enqueue(
    ingestor: &Ingestor,
    tenants: &mut Tenants,
    root: &str,
    burst: Vec<mqtt::Message>,
    held: &mut BTreeMap<i64, Held>,
    shutdown: &CancellationToken,
) {
    let received_at = now_ms();
    let limits = ingestor.limits().clone();
    let mut by_tenant: BTreeMap<i64, Vec<Metric>> = BTreeMap::new();
    for message in &burst {
        let topic = message.topic();
        let parsed = match parse_topic(root, topic, &limits) {
            Ok(parsed) => parsed,
            Err(problem) => {
                reject(ingestor, RejectReason::Invalid, topic, &problem);
                continue;
            }
        };
        let Some(tenant_id) = tenants.id(parsed.tenant, shutdown).await else {
            reject(ingestor, RejectReason::Invalid, topic, &format!("no tenant {:?}", parsed.tenant));
            continue;
        };
        match parse_payload(&parsed, message.payload(), &limits, received_at) {
            Ok(metric) => by_tenant.entry(tenant_id).or_default().push(metric),
            Err(err) => reject(ingestor, RejectReason::Invalid, topic, &describe(&err)),
        }
    }
    let most_held = limits.max_metrics_per_request.max(1);
    for (tenant_id, metrics) in by_tenant {
        let (metrics, received_at, over_rate) = match held.remove(&tenant_id) {
            None => (metrics, received_at, OverRate::GiveBack),
            Some(mut h) => {
                h.metrics.extend(metrics);
                if h.metrics.len() <= most_held {
                    if h.retry_at > tokio::time::Instant::now() {
                        held.insert(tenant_id, h);
                        continue;
                    }
                    (h.metrics, h.received_at, OverRate::GiveBack)
                } else {
                    // More than the bridge keeps aside for one tenant: wait for its bucket,
                    // reading nothing meanwhile (the broker keeps the backlog).
                    (h.metrics, h.received_at, OverRate::WaitOrForce)
                }
            }
        };
        if let Some(h) = deliver(ingestor, tenant_id, metrics, received_at, over_rate, shutdown).await {
            held.insert(tenant_id, h);
        }
    }
}

/// What a source does with metrics while their tenant is over its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OverRate {
    /// Wait for the tenant's bucket; at shutdown, give up (the embedded endpoint: what it did
    /// not acknowledge is the client's to send again).
    Wait,
    /// Give them back at once (the bridge holds them and reads on); at shutdown, queue them
    /// regardless of the rate.
    GiveBack,
    /// Wait for the tenant's bucket; at shutdown, queue them regardless of the rate (the
    /// bridge: the broker no longer has them).
    WaitOrForce,
}

/// How a submission ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Queued, but for the metrics at these positions, refused for the series limit.
    Queued(Vec<usize>),
    /// Over the tenant's rate, which has room again after this long ([`OverRate::GiveBack`]).
    OverRate(Duration),
    /// Not queued (logged).
    Failed,
}

/// Enqueue one tenant's metrics (each refused on its own for the series limit), retrying
/// while the queue refuses (the publisher's broker or connection holds the rest meanwhile;
/// after shutdown, retries stop once the backoff reaches 5 s), and doing what `over_rate`
/// says while the tenant is over its rate.
async fn submit_retrying(
    ingestor: &Ingestor,
    tenant_id: i64,
    metrics: &[Metric],
    received_at: i64,
    over_rate: OverRate,
    shutdown: &CancellationToken,
) -> Outcome {
    let mut delay = Duration::from_millis(50);
    loop {
        // After shutdown the bridge queues what the broker gave it, over the rate or not.
        let metered = !shutdown.is_cancelled() || over_rate == OverRate::Wait;
        let mode = Mode { each: true, metered };
        match ingestor.submit_with(Source::Mqtt, tenant_id, metrics.to_vec(), received_at, mode).await {
            Ok(submitted) => return Outcome::Queued(submitted.over_series_quota),
            Err(IngestError::Queue(err)) if !shutdown.is_cancelled() || delay < Duration::from_secs(5) => {
                tracing::warn!(tenant_id, error = %err, "queue refused MQTT metrics; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(IngestError::Quota(err)) if over_rate == OverRate::GiveBack => {
                return Outcome::OverRate(err.retry_after());
            }
            Err(IngestError::Quota(err)) if !shutdown.is_cancelled() => {
                // Held, not refused: the tenant is slowed to its rate.
                tracing::debug!(tenant_id, error = %err, "MQTT metrics over the tenant's rate; waiting");
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(err.retry_after()) => {}
                }
            }
            Err(err) => {
                tracing::error!(tenant_id, metrics = metrics.len(), error = %err, "MQTT metrics could not be queued");
                return Outcome::Failed;
            }
        }
    }
}

fn describe(err: &microdash_core::metric::PayloadError) -> String {
    match err {
        microdash_core::metric::PayloadError::Invalid { errors, .. } => errors
            .iter()
            .map(|e| format!("{}: {}", e.field.as_deref().unwrap_or("payload"), e.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// Count a bad message and log it, at most once a second (with how many went unlogged), so a
/// misbehaving publisher cannot flood the log or slow the bridge down.
fn reject(ingestor: &Ingestor, reason: RejectReason, topic: &str, problem: &str) {
    ingestor.reject(Source::Mqtt, reason, 1);
    log_rejection(reason, topic, problem);
}

/// Log a rejection counted elsewhere, at most once a second (with how many went unlogged).
fn log_rejection(reason: RejectReason, topic: &str, problem: &str) {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    static LAST_LOGGED_MS: AtomicI64 = AtomicI64::new(0);
    static UNLOGGED: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let last = LAST_LOGGED_MS.load(Ordering::Relaxed);
    if now - last >= 1_000 && LAST_LOGGED_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        let unlogged = UNLOGGED.swap(0, Ordering::Relaxed);
        tracing::warn!(topic, problem, reason = reason.name(), unlogged, "rejected an MQTT message");
    } else {
        UNLOGGED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Mosquitto's password file and ACL file for the tenant rule: each ingest token may publish
/// only under `{root}/{its tenant}/`, and the bridge account (when given: username and
/// password hash) may read every tenant's topics. Everyone else is refused by the broker
/// (`allow_anonymous false`).
pub fn mosquitto_files(
    accounts: &[microdash_store::MqttAccount],
    bridge: Option<(&str, &str)>,
    root: &str,
) -> (String, String) {
    let mut passwords = String::new();
    let mut acl = String::from("# Written by `microdash mqtt-auth`; changes are overwritten.\n");
    if let Some((user, hash)) = bridge {
        passwords.push_str(&format!("{user}:{hash}\n"));
        acl.push_str(&format!("\n# the microdash bridge reads every tenant\nuser {user}\ntopic read {root}/#\n"));
    }
    for account in accounts {
        passwords.push_str(&format!("{}:{}\n", account.username, account.password_hash));
        acl.push_str(&format!("\nuser {}\ntopic write {root}/{}/#\n", account.username, account.tenant));
    }
    (passwords, acl)
}
