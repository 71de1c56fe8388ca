//! Wiring for the long-running commands.

use std::time::Duration;

use anyhow::{Context, bail};
use microdash_core::text::redact_url_password;
use microdash_core::token::Scopes;
use microdash_ingest::Runtime;
use microdash_ingest::clock::now_ms;
use microdash_ingest::mqtt::broker::Broker;
use microdash_ingest::queue::{MemoryQueue, Queue, RedisQueue};
use microdash_store::Store;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Open the database and bring its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database_url, &config.store())
        .await
        .with_context(|| format!("opening database {}", redact_url_password(&config.database_url)))?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

async fn open_queue(config: &Config, store: &Store) -> anyhow::Result<Queue> {
    let capacity = config.queue_capacity_metrics;
    let enqueue_timeout = Duration::from_millis(config.enqueue_timeout_ms);
    Ok(match (config.redis(), config.journal()) {
        (Some(redis), _) => Queue::Redis(
            RedisQueue::connect(&redis)
                .await
                .with_context(|| format!("connecting to Redis at {}", redact_url_password(&redis.url)))?,
        ),
        (None, Some(journal)) => Queue::Memory(
            MemoryQueue::with_journal(capacity, enqueue_timeout, &journal, store)
                .await
                .with_context(|| format!("opening the queue journal in {} (queue_dir)", journal.dir.display()))?,
        ),
        (None, None) => Queue::Memory(MemoryQueue::new(capacity, enqueue_timeout)),
    })
}

async fn assemble(config: &Config) -> anyhow::Result<Runtime> {
    raise_open_file_limit();
    microdash_store::check_limits(&config.limits()).context("checking the configured limits")?;
    let store = open_store(config).await?;
    let queue = open_queue(config, &store).await?;
    Ok(Runtime::builder(store, queue)
        .limits(config.limits())
        .quotas(config.quotas())
        .http(config.http())
        .live(config.live())
        .workers(config.worker())
        .retention(Some(config.retention()))
        .alerting(config.alerting()?)
        .revocation(config.revocation())
        .mcp(config.mcp())
        .build())
}

/// Raise this process's soft open-file limit to its hard limit, as Go's runtime does: the
/// soft limit many systems start services with (1,024) would hold the HTTP server to 768
/// connections (`http_max_connections` stays within three quarters of it).
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be the soft one: the kernel caps descriptors anyway.
    let Some(maximum) = limit.maximum else { return };
    if limit.current.is_some_and(|current| current >= maximum) {
        return;
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(maximum), maximum: Some(maximum) }) {
        Ok(()) => tracing::debug!(from = ?limit.current, to = maximum, "raised the open-file limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open-file limit"),
    }
}

async fn bind(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(&config.listen_addr).await.with_context(|| format!("binding {}", config.listen_addr))
}

/// API and workers in one process.
pub async fn all_in_one(config: &Config, demo: bool) -> anyhow::Result<()> {
    let runtime = assemble(config).await?;
    let listener = bind(config).await?;
    let broker = match config.mqtt_broker() {
        Some(broker) => Some(
            Broker::bind(broker).await.context("starting the embedded MQTT endpoint (set mqtt_listen_addr, or off)")?,
        ),
        None => None,
    };
    let url = format!("http://{}", listener.local_addr()?);
    let mqtt_addr = broker.as_ref().map(Broker::local_addr).transpose()?;
    announce(runtime.store(), &url, mqtt_addr.map(|addr| (addr, config.mqtt_topic_root.as_str())), demo).await?;
    let shutdown = shutdown_signal();
    let bridge = config.mqtt().map(|mqtt| {
        let (runtime, shutdown) = (runtime.clone(), shutdown.clone());
        tokio::spawn(async move { runtime.run_bridge(mqtt, shutdown).await })
    });
    let broker = broker.map(|broker| {
        let (runtime, shutdown) = (runtime.clone(), shutdown.clone());
        tokio::spawn(async move { runtime.run_endpoint(broker, shutdown).await })
    });
    let workers = runtime.spawn_workers(&shutdown);
    runtime.serve(listener, shutdown.clone()).await.context("serving HTTP")?;
    // HTTP and MQTT have stopped taking metrics: let the workers drain what was accepted.
    if let Some(bridge) = bridge {
        bridge.await.context("joining the MQTT bridge")?.context("running the MQTT bridge")?;
    }
    if let Some(broker) = broker {
        broker.await.context("joining the MQTT endpoint")?;
    }
    workers.drain().await;
    tracing::info!("stopped");
    Ok(())
}

/// API only: a split deployment's front end.
pub async fn server(config: &Config) -> anyhow::Result<()> {
    require_shared_queue(config, "server")?;
    let runtime = assemble(config).await?;
    let listener = bind(config).await?;
    announce(runtime.store(), &format!("http://{}", listener.local_addr()?), None, false).await?;
    runtime.serve(listener, shutdown_signal()).await.context("serving HTTP")?;
    Ok(())
}

/// Workers only, plus `/livez`, `/api/v1/health` and `/metrics` on the listen address.
pub async fn worker(config: &Config) -> anyhow::Result<()> {
    require_shared_queue(config, "worker")?;
    let runtime = assemble(config).await?;
    let listener = bind(config).await?;
    tracing::info!(addr = %listener.local_addr()?, workers = config.workers, "worker started");
    let shutdown = shutdown_signal();
    let workers = runtime.spawn_workers(&shutdown);
    runtime.serve_ops(listener, shutdown).await.context("serving ops endpoints")?;
    workers.drain().await;
    Ok(())
}

/// The MQTT bridge alone (plus the ops endpoints), feeding the shared queue.
pub async fn bridge(config: &Config) -> anyhow::Result<()> {
    require_shared_queue(config, "bridge")?;
    let mqtt = config.mqtt().context("a bridge needs a broker: set --mqtt-url (or MICRODASH_MQTT_URL)")?;
    let runtime = assemble(config).await?;
    let listener = bind(config).await?;
    tracing::info!(addr = %listener.local_addr()?, broker = %redact_url_password(&mqtt.url), "MQTT bridge started");
    let shutdown = shutdown_signal();
    let ops = {
        let (runtime, shutdown) = (runtime.clone(), shutdown.clone());
        tokio::spawn(async move { runtime.serve_ops(listener, shutdown).await })
    };
    runtime.run_bridge(mqtt, shutdown).await.context("running the MQTT bridge")?;
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
