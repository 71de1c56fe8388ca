//! `microdash-agent`: samples this host every interval and publishes to microdash.
//!
//! Settings come from flags, then `MICRODASH_AGENT_*` environment variables, then an optional
//! TOML file (`--config`, keys as the long flags with `_`), then defaults.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use microdash_agent::collect::{Collector, default_agent_id};
use microdash_agent::publish::{MqttTransport, Origin, Outbox, Transport};
use serde::Deserialize;

#[derive(Debug, Default, Parser, Deserialize)]
#[command(
    name = "microdash-agent",
    version,
    about = "Host agent: CPU, memory, disk, load, network and uptime to microdash"
)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// TOML file with any of these settings.
    #[arg(long, env = "MICRODASH_AGENT_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Where to send: `tcp://broker:1883` (MQTT) or `http://server:8080` (HTTP API).
    #[arg(long, env = "MICRODASH_AGENT_URL")]
    url: Option<String>,
    /// Tenant slug.
    #[arg(long, env = "MICRODASH_AGENT_TENANT")]
    tenant: Option<String>,
    /// This host's agent id [default: the host name].
    #[arg(long, env = "MICRODASH_AGENT_ID")]
    agent_id: Option<String>,
    /// Ingest token: the bearer token over HTTP, the broker password over MQTT.
    #[arg(long, env = "MICRODASH_AGENT_TOKEN")]
    token: Option<String>,
    /// Broker username [default: the token's prefix, as `microdash mqtt-auth` sets up].
    #[arg(long, env = "MICRODASH_AGENT_USERNAME")]
    username: Option<String>,
    /// Seconds between samples [default: 10].
    #[arg(long, env = "MICRODASH_AGENT_INTERVAL_S")]
    interval_s: Option<f64>,
    /// First topic level [default: metrics].
    #[arg(long, env = "MICRODASH_AGENT_TOPIC_ROOT")]
    topic_root: Option<String>,
    /// Samples kept while the destination is unreachable [default: 10000, ~17 min at 10 s].
    #[arg(long, env = "MICRODASH_AGENT_BUFFER_SAMPLES")]
    buffer_samples: Option<usize>,
    /// Print what would be sent instead of sending it.
    #[arg(long)]
    #[serde(default)]
    stdout: bool,
    /// Take this many samples, then exit (0: run until stopped).
    #[arg(long, default_value_t = 0)]
    #[serde(skip)]
    count: u64,
}

impl Settings {
    /// Flags and environment over the file.
    fn load() -> anyhow::Result<Settings> {
        let cli = Settings::parse();
        let Some(path) = &cli.config else { return Ok(cli) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: Settings = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Settings {
            config: cli.config.clone(),
            url: cli.url.or(file.url),
            tenant: cli.tenant.or(file.tenant),
            agent_id: cli.agent_id.or(file.agent_id),
            token: cli.token.or(file.token),
            username: cli.username.or(file.username),
            interval_s: cli.interval_s.or(file.interval_s),
            topic_root: cli.topic_root.or(file.topic_root),
            buffer_samples: cli.buffer_samples.or(file.buffer_samples),
            stdout: cli.stdout || file.stdout,
            count: cli.count,
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let settings = Settings::load()?;
    let interval_s = settings.interval_s.unwrap_or(10.0);
    if interval_s.is_nan() || interval_s < 0.1 {
        bail!("interval_s must be at least 0.1");
    }
    let tenant = settings.tenant.clone().unwrap_or_else(|| "demo".into());
    microdash_core::token::check_slug(&tenant).map_err(|m| anyhow::anyhow!("tenant {tenant:?}: {m}"))?;
    let origin = Origin {
        tenant: tenant.clone(),
        agent_id: settings.agent_id.clone().unwrap_or_else(default_agent_id),
        topic_root: settings.topic_root.clone().unwrap_or_else(|| microdash_core::mqtt::DEFAULT_TOPIC_ROOT.into()),
    };
    let mut transport = if settings.stdout {
        Transport::Stdout
    } else {
        let url = settings.url.clone().context("set --url (tcp://broker:1883 or http://server:8080) or --stdout")?;
        if url.starts_with("http://") || url.starts_with("https://") {
            let token = settings.token.clone().context("the HTTP transport needs --token")?;
            Transport::Http(microdash_client::Client::new(&url, &token)?)
        } else {
            let client_id = format!("microdash-agent-{}-{}", origin.tenant, origin.agent_id);
            // Brokers set up by `microdash mqtt-auth` know a token by its prefix.
            let username = settings
                .username
                .clone()
                .or_else(|| settings.token.as_deref().map(|t| microdash_core::mqtt::token_username(t).to_owned()));
            Transport::Mqtt(Box::new(MqttTransport::new(&url, &client_id, username, settings.token.clone())?))
        }
    };
    let mut outbox = Outbox::new(settings.buffer_samples.unwrap_or(10_000));
    let mut collector = Collector::new(interval_s)?;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(interval_s));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first CPU reading needs a moment after the collector's baseline.
    ticker.tick().await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    tracing::info!(agent_id = %origin.agent_id, tenant = %origin.tenant, interval_s, "agent started");
    let mut taken = 0;
    loop {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        outbox.push(collector.sample(now));
        let waiting = outbox.len();
        if let Err(err) = outbox.flush(&mut transport, &origin).await {
            tracing::warn!(error = %err, waiting, dropped = outbox.dropped(), "sending failed; keeping samples for the next try");
        }
        taken += 1;
        if settings.count > 0 && taken >= settings.count && outbox.is_empty() {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            () = terminated() => break,
        }
    }
    if let Transport::Mqtt(mqtt) = transport {
        mqtt.close().await;
    }
    Ok(())
}

/// SIGTERM (how systemd and container runtimes stop services).
async fn terminated() {
    #[cfg(unix)]
    if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        signal.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}
