//! Wiring for the long-running commands.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use microdash_core::token::Scopes;
use microdash_ingest::Ingestor;
use microdash_ingest::clock::now_ms;
use microdash_ingest::http::{self, AppState};
use microdash_ingest::live::{LiveHub, LivePublisher, relay_from_redis};
use microdash_ingest::mqtt::broker::Broker;
use microdash_ingest::mqtt::run_bridge;
use microdash_ingest::queue::{MemoryQueue, Queue, RedisQueue};
use microdash_ingest::retention::run_retention;
use microdash_ingest::telemetry::Telemetry;
use microdash_ingest::worker::run_workers;
use microdash_store::Store;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Open the database and bring its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database_url, &config.store())
        .await
        .with_context(|| format!("opening database {}", config.database_url))?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

async fn open_queue(config: &Config) -> anyhow::Result<Queue> {
    Ok(match config.redis() {
        Some(redis) => Queue::Redis(
            RedisQueue::connect(&redis).await.with_context(|| format!("connecting to Redis at {}", redis.url))?,
        ),
        None => Queue::Memory(MemoryQueue::new(
            config.queue_capacity_metrics,
            Duration::from_millis(config.enqueue_timeout_ms),
        )),
    })
}

struct Parts {
    store: Store,
    queue: Queue,
    state: AppState,
    telemetry: Arc<Telemetry>,
    live: Arc<LiveHub>,
}

impl Parts {
    /// Where this process's workers announce what they store: straight into the hub when
    /// the queue is in-process, through Redis (to every API process) otherwise.
    fn publisher(&self) -> LivePublisher {
        match &self.queue {
            Queue::Memory(_) => LivePublisher::Local(self.live.clone()),
            Queue::Redis(redis) => LivePublisher::Redis(Box::new(redis.clone())),
        }
    }

    /// With Redis, streams follow what any process's workers store.
    fn relay_live(&self, shutdown: &CancellationToken) {
        if let Queue::Redis(redis) = &self.queue {
            tokio::spawn(relay_from_redis(redis.clone(), self.live.clone(), shutdown.clone()));
        }
    }
}

async fn assemble(config: &Config) -> anyhow::Result<Parts> {
    microdash_store::check_limits(&config.limits()).context("checking the configured limits")?;
    let store = open_store(config).await?;
    let queue = open_queue(config).await?;
    let telemetry = Arc::new(Telemetry::new());
    let ingestor = Ingestor::new(queue.clone(), config.limits(), telemetry.clone());
    let live = Arc::new(LiveHub::new(config.live()));
    let state = AppState::new(store.clone(), queue.clone(), ingestor, telemetry.clone(), live.clone(), config.http());
    Ok(Parts { store, queue, state, telemetry, live })
}

async fn bind(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(&config.listen_addr).await.with_context(|| format!("binding {}", config.listen_addr))
}

/// API and workers in one process.
pub async fn all_in_one(config: &Config, demo: bool) -> anyhow::Result<()> {
    let parts = assemble(config).await?;
    let listener = bind(config).await?;
    let broker = match config.mqtt_broker() {
        Some(broker) => Some(
            Broker::bind(broker).await.context("starting the embedded MQTT endpoint (set mqtt_listen_addr, or off)")?,
        ),
        None => None,
    };
    let url = format!("http://{}", listener.local_addr()?);
    let mqtt_addr = broker.as_ref().map(Broker::local_addr).transpose()?;
    announce(&parts.store, &url, mqtt_addr.map(|addr| (addr, config.mqtt_topic_root.as_str())), demo).await?;
    let shutdown = shutdown_signal();
    parts.relay_live(&shutdown);
    let bridge = spawn_bridge(config, &parts, &shutdown);
    let broker = broker
        .map(|broker| tokio::spawn(broker.run(parts.store.clone(), parts.state.ingestor.clone(), shutdown.clone())));
    let retention =
        tokio::spawn(run_retention(parts.store.clone(), config.retention(), parts.telemetry.clone(), shutdown.clone()));
    let workers = tokio::spawn(run_workers(
        parts.queue.clone(),
        parts.store.clone(),
        parts.telemetry.clone(),
        parts.publisher(),
        config.worker(),
        shutdown.clone(),
    ));
    http::serve(listener, parts.state, shutdown.clone().cancelled_owned()).await.context("serving HTTP")?;
    // HTTP and MQTT have stopped taking metrics: let the workers drain what was accepted.
    if let Some(bridge) = bridge {
        bridge.await.context("joining the MQTT bridge")??;
    }
    if let Some(broker) = broker {
        broker.await.context("joining the MQTT endpoint")?;
    }
    parts.queue.close();
    workers.await.context("joining workers")?;
    retention.await.context("joining retention")?;
    tracing::info!("stopped");
    Ok(())
}

/// API only: a split deployment's front end.
pub async fn server(config: &Config) -> anyhow::Result<()> {
    require_shared_queue(config, "server")?;
    let parts = assemble(config).await?;
    let listener = bind(config).await?;
    announce(&parts.store, &format!("http://{}", listener.local_addr()?), None, false).await?;
    let shutdown = shutdown_signal();
    parts.relay_live(&shutdown);
    http::serve(listener, parts.state, shutdown.cancelled_owned()).await.context("serving HTTP")?;
    Ok(())
}

/// Workers only, plus `/livez`, `/api/v1/health` and `/metrics` on the listen address.
pub async fn worker(config: &Config) -> anyhow::Result<()> {
    require_shared_queue(config, "worker")?;
    let parts = assemble(config).await?;
    let listener = bind(config).await?;
    tracing::info!(addr = %listener.local_addr()?, workers = config.workers, "worker started");
    let shutdown = shutdown_signal();
    let publisher = parts.publisher();
    let ops = tokio::spawn(http::serve_ops(listener, parts.state, shutdown.clone().cancelled_owned()));
    // Every worker process expires old data; deleting what another already deleted is a no-op.
    let retention =
        tokio::spawn(run_retention(parts.store.clone(), config.retention(), parts.telemetry.clone(), shutdown.clone()));
    run_workers(parts.queue, parts.store, parts.telemetry, publisher, config.worker(), shutdown).await;
    retention.await.context("joining retention")?;
    ops.await.context("joining the ops server")?.context("serving ops endpoints")?;
    Ok(())
}

/// The MQTT bridge, when a broker is configured.
fn spawn_bridge(
    config: &Config,
    parts: &Parts,
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let mqtt = config.mqtt()?;
    let (store, ingestor, shutdown) = (parts.store.clone(), parts.state.ingestor.clone(), shutdown.clone());
    Some(tokio::spawn(
        async move { run_bridge(mqtt, store, ingestor, shutdown).await.context("running the MQTT bridge") },
    ))
}

/// The MQTT bridge alone (plus the ops endpoints), feeding the shared queue.
pub async fn bridge(config: &Config) -> anyhow::Result<()> {
    require_shared_queue(config, "bridge")?;
    let mqtt = config.mqtt().context("a bridge needs a broker: set --mqtt-url (or MICRODASH_MQTT_URL)")?;
    let parts = assemble(config).await?;
    let listener = bind(config).await?;
    tracing::info!(addr = %listener.local_addr()?, broker = %mqtt.url, "MQTT bridge started");
    let shutdown = shutdown_signal();
    let ops = tokio::spawn(http::serve_ops(listener, parts.state.clone(), shutdown.clone().cancelled_owned()));
    run_bridge(mqtt, parts.store, parts.state.ingestor, shutdown).await.context("running the MQTT bridge")?;
    ops.await.context("joining the ops server")?.context("serving ops endpoints")?;
    Ok(())
}

/// A split deployment's processes only meet through Redis.
fn require_shared_queue(config: &Config, role: &str) -> anyhow::Result<()> {
    if config.redis_url.is_none() {
        bail!("a separate {role} needs a shared queue: set --redis-url (or MICRODASH_REDIS_URL)");
    }
    Ok(())
}

/// Print where the server is (and its embedded MQTT endpoint with the topic root, if any)
/// and, on a database without admin tokens, how to get one.
async fn announce(
    store: &Store,
    url: &str,
    mqtt: Option<(std::net::SocketAddr, &str)>,
    demo: bool,
) -> anyhow::Result<()> {
    println!("microdash is listening on {url}");
    if let Some((addr, topic_root)) = mqtt {
        println!("MQTT endpoint: tcp://{addr} (publish to {topic_root}/{{tenant}}/{{agent_id}}/{{metric_name}})");
    }
    if !store.has_admin_token().await? {
        println!("No admin token exists yet. Create one with:  microdash token create --admin");
    }
    if demo {
        let tenant = match store.tenant_by_slug("demo").await? {
            Some(tenant) => tenant,
            None => store.create_tenant("demo", "Demo", now_ms()).await?,
        };
        let scopes: Scopes = "ingest,read".parse()?;
        let (_, token) = store.create_token(Some(tenant.id), scopes, "demo", now_ms()).await?;
        let password = microdash_store::generate_password()?;
        match store.user_by_name("demo").await? {
            Some(_) => {
                store.set_password("demo", &password).await?;
            }
            None => {
                store.create_user("demo", &password, Some(tenant.id), now_ms()).await?;
            }
        }
        println!("demo tenant: demo");
        println!("demo token (ingest, read; shown once): {token}");
        println!("dashboard: {url}/  sign in as demo with password {password}");
        println!(
            "push:  curl -sS -X POST {url}/api/v1/metrics -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"metric_name\":\"cpu.usage\",\"value\":42.5,\"agent_id\":\"web-1\"}}'"
        );
        if let Some((addr, _)) = mqtt {
            let user = microdash_core::mqtt::token_username(&token);
            println!(
                "agent: microdash-agent --url tcp://{addr} --tenant demo --token {token}    (MQTT username {user}, password the token)"
            );
        }
        println!("query: curl -sS '{url}/api/v1/metrics?metric_name=cpu.usage' -H 'Authorization: Bearer {token}'");
    }
    Ok(())
}

/// Cancelled on Ctrl-C or SIGTERM.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            () = term => {}
        }
        tracing::info!("shutting down: finishing in-flight work");
        cancel.cancel();
    });
    token
}
