//! The one way to assemble the pipeline: [`Runtime::builder`] takes a store and a queue,
//! builds the ingestor, the live hub, the telemetry and the HTTP state around them, and
//! knows which live publisher and which background tasks go with that queue.
//!
//! The binary's roles are a choice of what to run from one [`Runtime`]:
//!
//! | role        | runs                                                              |
//! |-------------|-------------------------------------------------------------------|
//! | all-in-one  | [`Runtime::serve`], [`Runtime::spawn_workers`], MQTT if set        |
//! | API only    | [`Runtime::serve`] (with Redis it relays the live bus itself)     |
//! | worker only | [`Runtime::spawn_workers`], [`Runtime::serve_ops`]                |
//! | bridge only | [`Runtime::run_bridge`], [`Runtime::serve_ops`]                   |
//!
//! [`Runtime::spawn_workers`] also starts retention and, when configured, alert evaluation
//! (one process of a deployment at a time, by a lease).
//!
//! A service that embeds ingestion beside its own routes merges [`Runtime::router`] into
//! its axum app (served with `into_make_service_with_connect_info::<SocketAddr>()`, so that
//! sign-ins are also counted per client address), calls [`Runtime::spawn_live_relay`] (a
//! no-op without Redis) and [`Runtime::spawn_workers`], revokes credentials through
//! [`Runtime::revoker`], and on shutdown [`Runtime::close_streams`] then [`Workers::drain`]
//! (`examples/embedded_axum.rs` is such a service).
//!
//! Shutdown order matters and is the same everywhere: first every source stops taking
//! metrics (HTTP, bridge, endpoint), then [`Workers::drain`] closes the in-process queue and
//! waits until the workers stored everything already accepted.

use std::sync::Arc;

use axum::Router;
use microdash_core::Limits;
use microdash_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alerting::{AlertingConfig, run_alerting};
use crate::http::{self, AppState, HttpConfig};
use crate::ingestor::Ingestor;
use crate::live::{LiveConfig, LiveHub, LivePublisher, relay_from_redis};
use crate::mqtt::broker::Broker;
use crate::mqtt::{MqttConfig, MqttError, run_bridge};
use crate::queue::Queue;
use crate::quota::QuotaConfig;
use crate::retention::{RetentionConfig, run_retention};
use crate::revocation::{Holds, RevocationConfig, Revoker};
use crate::telemetry::Telemetry;
use crate::worker::{WorkerConfig, run_workers};

/// Settings for a [`Runtime`]; every one has a default.
#[must_use = "a builder does nothing until `build`"]
pub struct RuntimeBuilder {
    store: Store,
    queue: Queue,
    limits: Limits,
    quotas: QuotaConfig,
    http: HttpConfig,
    live: LiveConfig,
    workers: WorkerConfig,
    retention: Option<RetentionConfig>,
    alerting: Option<AlertingConfig>,
    revocation: RevocationConfig,
    #[cfg(feature = "mcp")]
    mcp: Option<crate::mcp::McpConfig>,
}

impl RuntimeBuilder {
    /// How revoked credentials lose their open connections (the recheck interval).
    pub fn revocation(mut self, revocation: RevocationConfig) -> Self {
        self.revocation = revocation;
        self
    }

    /// Limits on what one request or message may carry.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Per-tenant quotas: the defaults and how often tenants' own settings are re-read.
    pub fn quotas(mut self, quotas: QuotaConfig) -> Self {
        self.quotas = quotas;
        self
    }

    /// HTTP settings (timeouts, query limits, the dashboard directory).
    pub fn http(mut self, http: HttpConfig) -> Self {
        self.http = http;
        self
    }

    /// Live stream settings (replay window, backlog).
    pub fn live(mut self, live: LiveConfig) -> Self {
        self.live = live;
        self
    }

    /// Worker settings, for [`Runtime::spawn_workers`].
    pub fn workers(mut self, workers: WorkerConfig) -> Self {
        self.workers = workers;
        self
    }

    /// Retention settings. Retention runs beside the workers by default, with
    /// [`RetentionConfig::default`]; `None` turns it off (another process expires data).
    pub fn retention(mut self, retention: Option<RetentionConfig>) -> Self {
        self.retention = retention;
        self
    }

    /// Alerting settings. With them, every process that runs workers competes to evaluate
    /// alerts and deliver notifications (one at a time, by a lease in the store); without
    /// them (the default) alert rules are stored and listed but nothing evaluates them here.
    pub fn alerting(mut self, alerting: Option<AlertingConfig>) -> Self {
        self.alerting = alerting;
        self
    }

    /// The MCP server at `/mcp` (cargo feature `mcp`), off by default: with settings,
    /// [`Runtime::router`] (so the all-in-one server and the API server) serves it.
    #[cfg(feature = "mcp")]
    pub fn mcp(mut self, mcp: Option<crate::mcp::McpConfig>) -> Self {
        self.mcp = mcp;
        self
    }

    /// Assemble the runtime. Nothing runs yet.
    pub fn build(self) -> Runtime {
        let telemetry = Arc::new(Telemetry::new());
        let ingestor =
            Ingestor::new(self.queue.clone(), self.limits, self.store.clone(), self.quotas, telemetry.clone());
        let live = Arc::new(LiveHub::new(self.live));
        let holds = Holds::new(self.store.clone(), &self.queue, self.revocation);
        #[allow(unused_mut)]
        let mut state = AppState::new(self.store, self.queue, ingestor, telemetry, live, self.http, holds);
        #[cfg(feature = "mcp")]
        {
            state.mcp = self.mcp.map(Arc::new);
        }
        Runtime { state, workers: self.workers, retention: self.retention, alerting: self.alerting }
    }
}

/// An assembled pipeline: the parts that every role shares, and methods that run each role.
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runtime {
    state: AppState,
    workers: WorkerConfig,
    retention: Option<RetentionConfig>,
    alerting: Option<AlertingConfig>,
}

impl Runtime {
    /// Start assembling a runtime on `store` and `queue`.
    pub fn builder(store: Store, queue: Queue) -> RuntimeBuilder {
        RuntimeBuilder {
            store,
            queue,
            limits: Limits::default(),
            quotas: QuotaConfig::default(),
            http: HttpConfig::default(),
            live: LiveConfig::default(),
            workers: WorkerConfig::default(),
            retention: Some(RetentionConfig::default()),
            alerting: None,
            revocation: RevocationConfig::default(),
            #[cfg(feature = "mcp")]
            mcp: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.state.queue
    }

    /// The entry point for sources of the embedder's own: validated, counted and queued
    /// exactly like HTTP and MQTT metrics.
    pub fn ingestor(&self) -> &Ingestor {
        &self.state.ingestor
    }

    /// This process's counters, as `/metrics` shows them.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.state.telemetry
    }

    /// The live feeds, for subscribers of the embedder's own.
    pub fn live(&self) -> &Arc<LiveHub> {
        &self.state.live
    }

    /// The HTTP settings in use.
    pub fn http_config(&self) -> &HttpConfig {
        &self.state.config
    }

    /// Revokes tokens, sessions and users, ending their open streams, polls and MQTT
    /// connections in this process at once and, with Redis, in every other.
    pub fn revoker(&self) -> Revoker {
        self.state.revoker()
    }

    /// The credentials held by this process's open streams, polls and MQTT connections.
    pub fn holds(&self) -> &Arc<Holds> {
        &self.state.holds
    }

    /// A [`crate::mcp::Source`] in this process for the caller `token` names (`None` when
    /// it is unknown or revoked): what `microdash mcp --database-url` serves over stdio.
    #[cfg(feature = "mcp")]
    pub async fn mcp_source(
        &self,
        token: &str,
    ) -> Result<Option<crate::mcp::LocalSource>, microdash_store::StoreError> {
        Ok(self
            .state
            .store
            .authenticate(token)
            .await?
            .map(|principal| crate::mcp::LocalSource::new(self.state.clone(), crate::http::auth::Auth(principal))))
    }

    /// The whole API, the operational endpoints and the dashboard, with every layer
    /// (request ids, tracing, timeouts, body limit). Merge it into an axum app of your own, or
    /// let [`Runtime::serve`] run it.
    pub fn router(&self) -> Router {
        http::router(self.state.clone())
    }

    /// Only `/livez`, `/api/v1/health` and `/metrics`, for processes without the API.
    pub fn ops_router(&self) -> Router {
        http::ops_router(self.state.clone())
    }

    /// Serve [`Runtime::router`] on `listener` until `shutdown`, then finish in-flight
    /// requests and end open streams. Connections have deadlines and caps
    /// ([`HttpConfig::header_read_timeout`] and the settings after it). With a Redis queue the live bus is relayed into this
    /// process's hub meanwhile, so streams see what any process's workers stored.
    pub async fn serve(&self, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
        // Follow revocations before the first stream opens.
        self.state.holds.watch();
        let relay_stop = shutdown.child_token();
        let relay = self.spawn_live_relay(&relay_stop);
        let served = http::serve(listener, self.state.clone(), shutdown.cancelled_owned()).await;
        relay_stop.cancel();
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        served
    }

    /// Serve [`Runtime::ops_router`] on `listener` until `shutdown`, with the same
    /// connection limits as [`Runtime::serve`].
    pub async fn serve_ops(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        http::serve_ops(listener, self.state.clone(), shutdown.cancelled_owned()).await
    }

    /// With a Redis queue, feed this process's hub from the live bus until `shutdown`;
    /// `None` with an in-process queue, whose workers publish to the hub directly.
    /// [`Runtime::serve`] does this itself; call it (once) when you serve
    /// [`Runtime::router`] yourself.
    pub fn spawn_live_relay(&self, shutdown: &CancellationToken) -> Option<JoinHandle<()>> {
        let Queue::Redis(redis) = &self.state.queue else { return None };
        Some(tokio::spawn(relay_from_redis(redis.clone(), self.state.live.clone(), shutdown.clone())))
    }

    /// End every open live stream now, so a graceful shutdown of a server that merged
    /// [`Runtime::router`] is not held open by them. [`Runtime::serve`] does this itself.
    pub fn close_streams(&self) {
        self.state.close_streams();
    }

    /// Start the workers (and retention, unless turned off) until `shutdown`. What they
    /// store reaches the live streams: through the hub of this process with an in-process
    /// queue, through Redis (to every API process) otherwise.
    pub fn spawn_workers(&self, shutdown: &CancellationToken) -> Workers {
        let publisher = match &self.state.queue {
            Queue::Memory(_) => LivePublisher::Local(self.state.live.clone()),
            Queue::Redis(redis) => LivePublisher::Redis(Box::new(redis.clone())),
        };
        let workers = tokio::spawn(run_workers(
            self.state.queue.clone(),
            self.state.store.clone(),
            self.state.telemetry.clone(),
            publisher.clone(),
            self.workers.clone(),
            shutdown.clone(),
        ));
        // Every worker process expires old data; deleting what another already deleted is a no-op.
        let retention = self.retention.clone().map(|retention| {
            tokio::spawn(run_retention(
                self.state.store.clone(),
                retention,
                self.state.telemetry.clone(),
                shutdown.clone(),
            ))
        });
        // The evaluator follows what every process stores: with the in-process queue from
        // this process's hub; with Redis from a relay of its own into a hub of its own (it
        // lives exactly as long as the evaluator, whatever the API side does with its relay).
        let alerting = self.alerting.clone().map(|alerting| {
            let (feed, relay) = match &self.state.queue {
                Queue::Memory(_) => (self.state.live.clone(), None),
                Queue::Redis(redis) => {
                    let hub = Arc::new(LiveHub::new(LiveConfig { replay_points: 0, ..LiveConfig::default() }));
                    let relay = tokio::spawn(relay_from_redis(redis.clone(), hub.clone(), shutdown.clone()));
                    (hub, Some(relay))
                }
            };
            let task = tokio::spawn(run_alerting(
                self.state.store.clone(),
                feed,
                publisher,
                self.state.telemetry.clone(),
                alerting,
                shutdown.clone(),
            ));
            (task, relay)
        });
        Workers { queue: self.state.queue.clone(), shutdown: shutdown.clone(), workers, retention, alerting }
    }

    /// Run the MQTT bridge (subscribe to `config`'s broker, feed the ingestor) until `shutdown`.
    pub async fn run_bridge(&self, config: MqttConfig, shutdown: CancellationToken) -> Result<(), MqttError> {
        run_bridge(config, self.state.store.clone(), self.state.ingestor.clone(), shutdown).await
    }

    /// Serve the embedded MQTT endpoint bound in `broker` until `shutdown`; every
    /// connection finishes what it holds first.
    pub async fn run_endpoint(&self, broker: Broker, shutdown: CancellationToken) {
        self.state.holds.watch();
        broker.run(self.state.store.clone(), self.state.ingestor.clone(), self.state.holds.clone(), shutdown).await;
    }
}

/// Running workers and retention; [`Workers::drain`] ends them.
#[must_use = "workers that are never drained may drop accepted metrics at exit"]
pub struct Workers {
    queue: Queue,
    shutdown: CancellationToken,
    workers: JoinHandle<()>,
    retention: Option<JoinHandle<()>>,
    alerting: Option<(JoinHandle<()>, Option<JoinHandle<()>>)>,
}

impl Workers {
    /// Stop after storing everything already accepted: cancels the shutdown token (if it
    /// was not already), closes the in-process queue and waits for the workers, which empty
    /// it first. Redis workers finish the batch in hand; the rest stays queued for others.
    /// Call it only once every source has stopped, or their metrics are refused.
    pub async fn drain(self) {
        self.shutdown.cancel();
        self.queue.close();
        if let Err(err) = self.workers.await {
            tracing::error!(error = %err, "a worker task failed");
        }
        let alerting = self.alerting.into_iter().flat_map(|(task, relay)| std::iter::once(task).chain(relay));
        for task in self.retention.into_iter().chain(alerting) {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "a background task failed");
            }
        }
    }
}
