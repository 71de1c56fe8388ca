//! Configuration: defaults < TOML file (`--config`) < `MICRODASH_*` environment < flags.
//!
//! Every key is a snake_case noun with its unit; the environment variable is the key in
//! upper case with the `MICRODASH_` prefix (`workers` -> `MICRODASH_WORKERS`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use microdash_alert::deliver::destination::Destinations;
use microdash_alert::deliver::{Deliverer, DeliveryConfig, SmtpConfig};
use microdash_core::Limits;
use microdash_core::api::{ConnectInfo, MqttConnect};
use microdash_core::quota::{Quota, check_quota};
use microdash_core::rollup::{MAX_RETENTION_DAYS, MAX_RETENTION_RAW_HOURS, Retention, check_retention};
use microdash_ingest::alerting::AlertingConfig;
use microdash_ingest::http::{HttpConfig, SignInLimits, parse_networks};
use microdash_ingest::live::LiveConfig;
use microdash_ingest::mcp::McpConfig;
use microdash_ingest::mqtt::MqttConfig;
use microdash_ingest::mqtt::broker::BrokerConfig;
use microdash_ingest::queue::{JournalConfig, RedisQueueConfig};
use microdash_ingest::quota::QuotaConfig;
use microdash_ingest::retention::RetentionConfig;
use microdash_ingest::revocation::RevocationConfig;
use microdash_ingest::worker::WorkerConfig;
use microdash_store::StoreOptions;
use serde::{Deserialize, Serialize};

/// Every setting of the server, worker and admin commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen_addr: String,
    /// `sqlite://PATH` (embedded default) or `mysql://user:pass@host:port/db`.
    pub database_url: String,
    /// Most pooled database connections.
    pub db_max_connections: u32,
    /// Redis URL; when set the queue is Redis Streams, otherwise in-process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub redis_key_prefix: String,
    /// A Redis batch pending this long is taken over from its (presumed dead) worker.
    pub redis_claim_idle_ms: u64,
    /// Batches waiting in Redis beyond which new requests get `503` (backpressure).
    pub redis_max_backlog_batches: u64,
    /// In-process queue capacity, in metrics (what bounds its memory, about 2 KiB each).
    pub queue_capacity_metrics: usize,
    /// How long a request waits for room in a full in-process queue before `503`.
    pub enqueue_timeout_ms: u64,
    /// Directory of the in-process queue's journal, which makes a `202` survive a crash:
    /// empty puts it beside the SQLite database (`{database file}.queue`; `data/queue` with
    /// MariaDB); `off` keeps the queue in memory only (a crash loses what it holds).
    pub queue_dir: String,
    /// Sync the journal to disk before answering (group commit), so accepted metrics also
    /// survive a power loss or an OS crash, not only a crash of the process.
    pub queue_fsync: bool,
    /// Most bytes of journal on disk; beyond it ingest answers `503` until workers catch up.
    pub queue_max_bytes: u64,
    /// Size of one journal segment file; space comes back a segment at a time.
    pub queue_segment_bytes: u64,
    /// Worker tasks per process.
    pub workers: usize,
    /// Most metrics per database insert.
    pub worker_max_batch_metrics: usize,
    /// Attempts before a failing batch is dead-lettered (database outages retry forever).
    pub worker_max_attempts: usize,
    /// A batch delivered more often than this (its workers crashed or stalled) is
    /// dead-lettered without another attempt.
    pub worker_max_deliveries: u32,
    /// First retry delay.
    pub worker_retry_initial_delay_ms: u64,
    /// Longest retry delay.
    pub worker_retry_max_delay_ms: u64,
    /// Requests running longer are answered `408`.
    pub request_timeout_ms: u64,
    /// Longest a client may take to send a request's head (request line and headers), from
    /// its first byte, or from the connection's opening for its first request.
    pub http_header_read_timeout_ms: u64,
    /// Longest a keep-alive connection waits for its next request, and a client may go
    /// without reading any of an answer.
    pub http_idle_timeout_ms: u64,
    /// Most open HTTP connections (at most three quarters of the open-file limit).
    pub http_max_connections: usize,
    /// Most open HTTP connections from one client address.
    pub http_max_connections_per_ip: usize,
    /// Most live streams and waiting long polls one token (or sign-in) may hold open.
    pub max_streams_per_token: usize,
    /// Most live streams and waiting long polls on one tenant.
    pub max_streams_per_tenant: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most metrics in one request.
    pub max_metrics_per_request: usize,
    /// Longest metric name.
    pub max_name_bytes: usize,
    /// Longest agent id.
    pub max_agent_id_bytes: usize,
    /// Most tags per metric.
    pub max_tags: usize,
    /// Longest tag key.
    pub max_tag_key_bytes: usize,
    /// Longest tag value.
    pub max_tag_value_bytes: usize,
    /// Longest dedupe id.
    pub max_dedupe_id_bytes: usize,
    /// Metrics a second a tenant may have accepted (per API process), unless it has its own
    /// setting; 0 is unlimited.
    pub tenant_max_ingest_metrics_per_s: u64,
    /// Distinct series a tenant may have, unless it has its own setting; 0 is unlimited.
    pub tenant_max_series: u64,
    /// How often a process reads tenants' own quotas, and the series other processes
    /// created, from the database.
    pub tenant_quota_refresh_ms: u64,
    /// Points a query returns when it names no limit.
    pub default_query_limit: usize,
    /// Most points one query may return.
    pub max_query_limit: usize,
    /// Heartbeat interval of idle live streams.
    pub sse_heartbeat_ms: u64,
    /// Longest wait a poll of the live fallback may ask for.
    pub max_poll_wait_ms: u64,
    /// Latest points kept per tenant for resuming live streams and for polling clients.
    pub live_replay_points: usize,
    /// Persisted batches a live stream may fall behind by before it is closed as too slow.
    pub live_subscriber_backlog_batches: usize,
    /// How long a dashboard sign-in lasts.
    pub session_ttl_hours: u64,
    /// Mark the session cookie `Secure`; set it when the dashboard is served over HTTPS.
    pub secure_cookies: bool,
    /// Sign-in attempts per username per window (counted before the password is checked;
    /// a right password starts the count again); beyond it `429` until the window ends.
    pub sign_in_attempts_per_user: u32,
    /// Sign-in attempts per client address (IPv6: per /64) per window; right passwords do
    /// not count.
    pub sign_in_attempts_per_address: u32,
    /// How long a sign-in window lasts, from its first attempt.
    pub sign_in_window_ms: u64,
    /// Reverse proxies whose `X-Forwarded-For` names the client, comma-separated addresses
    /// or networks (`10.0.0.0/8, ::1`); empty: the peer's address is the client's.
    pub trusted_proxies: String,
    /// How often open streams, polls and MQTT connections have their credentials checked
    /// in the database (what the revocation bus missed, or every revocation without Redis).
    pub credential_recheck_ms: u64,
    /// MQTT broker URL (`tcp://host:1883`); when set, the bridge subscribes to metric topics.
    pub mqtt_url: Option<String>,
    /// First level of metric topics: `{root}/{tenant}/{agent_id}/{metric_name}`.
    pub mqtt_topic_root: String,
    /// Shared-subscription group, so several bridges split the messages; empty: none.
    pub mqtt_shared_group: String,
    /// The bridge's MQTT client id; empty: `microdash-bridge-{hostname}`.
    pub mqtt_client_id: String,
    /// Broker username for the bridge, if the broker needs one.
    pub mqtt_username: Option<String>,
    /// Broker password for the bridge.
    pub mqtt_password: Option<String>,
    /// Where the all-in-one server's embedded MQTT endpoint listens; `off` (or empty): none.
    /// Off whenever `mqtt_url` names an external broker. Not 1883, which a system Mosquitto
    /// often holds already.
    pub mqtt_listen_addr: String,
    /// Most connections to the embedded MQTT endpoint (at most an eighth of the open-file
    /// limit); over it a newcomer takes the place of the oldest one not signed in yet.
    pub mqtt_max_connections: usize,
    /// Most connections to the embedded MQTT endpoint from one client address (IPv6: /64).
    pub mqtt_max_connections_per_ip: usize,
    /// Directory of the built dashboard, served at `/` (`scripts/build-web.sh` writes it).
    pub web_dir: String,
    /// Hours of raw points a tenant keeps unless it sets its own.
    pub retention_raw_hours: u32,
    /// Days of 1-minute rollups a tenant keeps unless it sets its own.
    pub retention_1m_days: u32,
    /// Days of 5-minute rollups a tenant keeps unless it sets its own.
    pub retention_5m_days: u32,
    /// Time between retention passes.
    pub retention_interval_s: u64,
    /// Most rows one retention delete statement removes (what bounds how long it holds
    /// the database away from ingestion).
    pub retention_chunk_rows: usize,
    /// Evaluate alert rules and send notifications in this process (one process of a
    /// deployment does at a time, by a lease in the database).
    pub alerting: bool,
    /// How often time alone is evaluated (`for_s` elapsing, no data) and the lease renewed.
    pub alert_tick_ms: u64,
    /// How long the evaluation lease lasts unrenewed: another process takes over after it.
    pub alert_lease_ttl_s: u64,
    /// Longest wait for one webhook or email delivery attempt.
    pub notification_timeout_ms: u64,
    /// Which addresses webhooks may reach: `private` (public and private networks, not
    /// link-local such as the cloud metadata service), `public` or `any`.
    pub webhook_destinations: Destinations,
    /// SMTP server for email channels (`smtp://host:25`, `smtps://user:pass@host:465`,
    /// `smtp://host:587?tls=required`); empty: email channels fail with a clear error.
    pub smtp_url: String,
    /// Sender address of notification emails.
    pub smtp_from: String,
    /// The dashboard's public URL, for links in notifications; empty: no links. Its origin
    /// may also call `/mcp`.
    pub external_url: String,
    /// Serve the MCP (Model Context Protocol) endpoint at `/mcp` (all-in-one and API
    /// server). `USE_MCP=true` in the environment turns it on too.
    pub mcp: bool,
    /// Offer MCP tools that change alert rules (to tokens with the `alerts` scope).
    pub mcp_allow_writes: bool,
    /// Browser origins besides loopback (and `external_url`'s) allowed to call `/mcp`,
    /// comma-separated (`https://dash.example.com,http://10.0.0.5:8080`); their hosts are
    /// allowed as `Host` too. Anything else is refused (DNS-rebinding protection).
    pub mcp_allowed_origins: String,
    /// Log filter (`RUST_LOG` syntax), such as `info` or `microdash_ingest=debug`.
    pub log_filter: String,
}

impl Default for Config {
    fn default() -> Self {
        let limits = Limits::default();
        let worker = WorkerConfig::default();
        let http = HttpConfig::default();
        let live = LiveConfig::default();
        let retention = RetentionConfig::default();
        let quotas = QuotaConfig::default();
        let broker = BrokerConfig::new("");
        Self {
            listen_addr: "127.0.0.1:8080".into(),
            database_url: "sqlite://data/microdash.db".into(),
            db_max_connections: StoreOptions::default().max_connections,
            redis_url: None,
            redis_key_prefix: "microdash".into(),
            redis_claim_idle_ms: 30_000,
            redis_max_backlog_batches: RedisQueueConfig::new("").max_backlog_batches,
            queue_capacity_metrics: 50_000,
            enqueue_timeout_ms: 1_000,
            queue_dir: String::new(),
            queue_fsync: JournalConfig::new("").fsync,
            queue_max_bytes: JournalConfig::new("").max_bytes,
            queue_segment_bytes: JournalConfig::new("").segment_bytes,
            workers: worker.workers,
            worker_max_batch_metrics: worker.max_batch_metrics,
            worker_max_attempts: worker.max_attempts,
            worker_max_deliveries: worker.max_deliveries,
            worker_retry_initial_delay_ms: worker.retry_initial_delay.as_millis() as u64,
            worker_retry_max_delay_ms: worker.retry_max_delay.as_millis() as u64,
            request_timeout_ms: http.request_timeout.as_millis() as u64,
            http_header_read_timeout_ms: http.header_read_timeout.as_millis() as u64,
            http_idle_timeout_ms: http.idle_timeout.as_millis() as u64,
            http_max_connections: http.max_connections,
            http_max_connections_per_ip: http.max_connections_per_ip,
            max_streams_per_token: http.max_streams_per_token,
            max_streams_per_tenant: http.max_streams_per_tenant,
            max_body_bytes: limits.max_body_bytes,
            max_metrics_per_request: limits.max_metrics_per_request,
            max_name_bytes: limits.max_name_bytes,
            max_agent_id_bytes: limits.max_agent_id_bytes,
            max_tags: limits.max_tags,
            max_tag_key_bytes: limits.max_tag_key_bytes,
            max_tag_value_bytes: limits.max_tag_value_bytes,
            max_dedupe_id_bytes: limits.max_dedupe_id_bytes,
            tenant_max_ingest_metrics_per_s: quotas.defaults.max_ingest_metrics_per_s,
            tenant_max_series: quotas.defaults.max_series,
            tenant_quota_refresh_ms: quotas.refresh.as_millis() as u64,
            default_query_limit: http.default_query_limit,
            max_query_limit: http.max_query_limit,
            sse_heartbeat_ms: http.sse_heartbeat.as_millis() as u64,
            max_poll_wait_ms: http.max_poll_wait.as_millis() as u64,
            live_replay_points: live.replay_points,
            live_subscriber_backlog_batches: live.subscriber_backlog_batches,
            session_ttl_hours: http.session_ttl.as_secs() / 3600,
            secure_cookies: http.secure_cookies,
            sign_in_attempts_per_user: http.sign_in.attempts_per_user,
            sign_in_attempts_per_address: http.sign_in.attempts_per_address,
            sign_in_window_ms: http.sign_in.window.as_millis() as u64,
            trusted_proxies: String::new(),
            credential_recheck_ms: RevocationConfig::default().recheck_interval.as_millis() as u64,
            mqtt_url: None,
            mqtt_topic_root: microdash_core::mqtt::DEFAULT_TOPIC_ROOT.into(),
            mqtt_shared_group: "microdash".into(),
            mqtt_client_id: String::new(),
            mqtt_username: None,
            mqtt_password: None,
            mqtt_listen_addr: "127.0.0.1:1884".into(),
            mqtt_max_connections: broker.max_connections,
            mqtt_max_connections_per_ip: broker.max_connections_per_ip,
            web_dir: "web/dist".into(),
            retention_raw_hours: retention.defaults.raw_hours,
            retention_1m_days: retention.defaults.rollup_1m_days,
            retention_5m_days: retention.defaults.rollup_5m_days,
            retention_interval_s: retention.interval.as_secs(),
            retention_chunk_rows: retention.chunk_rows,
            alerting: true,
            alert_tick_ms: 1_000,
            alert_lease_ttl_s: 10,
            notification_timeout_ms: 10_000,
            webhook_destinations: Destinations::default(),
            smtp_url: String::new(),
            smtp_from: "microdash@localhost".into(),
            external_url: String::new(),
            mcp: false,
            mcp_allow_writes: false,
            mcp_allowed_origins: String::new(),
            log_filter: "info".into(),
        }
    }
}

/// Settings given as command-line flags; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// Address the HTTP API listens on [env: MICRODASH_LISTEN_ADDR] [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_addr: Option<String>,
    /// Database URL: sqlite://PATH or mysql://... [env: MICRODASH_DATABASE_URL].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// MQTT broker URL; starts the bridge [env: MICRODASH_MQTT_URL].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_url: Option<String>,
    /// Embedded MQTT endpoint address, or `off` [env: MICRODASH_MQTT_LISTEN_ADDR] [default: 127.0.0.1:1884].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_listen_addr: Option<String>,
    /// Redis URL; selects the Redis Streams queue [env: MICRODASH_REDIS_URL].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Worker tasks per process [env: MICRODASH_WORKERS].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
}

impl Config {
    /// Merge the layers. `file` is the `--config` path (or `MICRODASH_CONFIG`).
    pub fn load(file: Option<&PathBuf>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            anyhow::ensure!(path.exists(), "config file {} does not exist", path.display());
            figment = figment.merge(Toml::file(path));
        }
        figment
            // `USE_MCP=true`, the name the project's tooling shares, is `mcp`; `MICRODASH_MCP` wins.
            .merge(Env::raw().filter_map(|key| (key == "use_mcp").then(|| "mcp".into())))
            .merge(Env::prefixed("MICRODASH_").filter(|key| Self::keys().iter().any(|k| key == k.as_str())))
            .merge(Serialized::globals(overrides))
            .extract::<Config>()
            .context("reading configuration")
            .and_then(|config| config.check().map(|()| config))
    }

    /// Every key, for picking this program's variables out of the environment (other
    /// `MICRODASH_*` variables, such as the tests' or the config path, are not settings).
    fn keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Settings that are wrong together.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_poll_wait_ms < self.request_timeout_ms,
            "max_poll_wait_ms ({}) must be below request_timeout_ms ({}), or long polls time out",
            self.max_poll_wait_ms,
            self.request_timeout_ms
        );
        // A request larger than the whole in-process queue waits for it to be empty, and every
        // request behind it waits too.
        anyhow::ensure!(
            self.redis_url.is_some() || self.queue_capacity_metrics >= self.max_metrics_per_request,
            "queue_capacity_metrics ({}) must be at least max_metrics_per_request ({})",
            self.queue_capacity_metrics,
            self.max_metrics_per_request
        );
        anyhow::ensure!(
            self.alert_tick_ms.saturating_mul(3) <= self.alert_lease_ttl_s.saturating_mul(1000),
            "alert_tick_ms ({}) must be at most a third of alert_lease_ttl_s ({} s), or evaluators take turns",
            self.alert_tick_ms,
            self.alert_lease_ttl_s
        );
        anyhow::ensure!(
            self.sign_in_attempts_per_user > 0 && self.sign_in_attempts_per_address > 0 && self.sign_in_window_ms > 0,
            "sign_in_attempts_per_user, sign_in_attempts_per_address and sign_in_window_ms must be above 0"
        );
        anyhow::ensure!(
            (10..=60_000).contains(&self.credential_recheck_ms),
            "credential_recheck_ms ({}) must be between 10 and 60000",
            self.credential_recheck_ms
        );
        parse_networks(&self.trusted_proxies).map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))?;
        for (key, value) in [
            ("http_header_read_timeout_ms", self.http_header_read_timeout_ms),
            ("http_idle_timeout_ms", self.http_idle_timeout_ms),
            ("http_max_connections_per_ip", self.http_max_connections_per_ip as u64),
            ("mqtt_max_connections", self.mqtt_max_connections as u64),
            ("mqtt_max_connections_per_ip", self.mqtt_max_connections_per_ip as u64),
            ("max_streams_per_token", self.max_streams_per_token as u64),
            ("max_streams_per_tenant", self.max_streams_per_tenant as u64),
        ] {
            anyhow::ensure!(value > 0, "{key} must be above 0");
        }
        // One general connection and one reserved for probes and the operator.
        anyhow::ensure!(self.http_max_connections >= 2, "http_max_connections must be at least 2");
        for (key, value, max) in [
            ("retention_raw_hours", self.retention_raw_hours, MAX_RETENTION_RAW_HOURS),
            ("retention_1m_days", self.retention_1m_days, MAX_RETENTION_DAYS),
            ("retention_5m_days", self.retention_5m_days, MAX_RETENTION_DAYS),
        ] {
            check_retention(key, i64::from(value), max).map_err(anyhow::Error::msg)?;
        }
        self.retention().defaults.check_order(&[]).map_err(|(field, message)| anyhow::anyhow!("{field} {message}"))?;
        for (key, value) in [
            ("tenant_max_ingest_metrics_per_s", self.tenant_max_ingest_metrics_per_s),
            ("tenant_max_series", self.tenant_max_series),
        ] {
            check_quota(key, i64::try_from(value).unwrap_or(i64::MAX)).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Per-tenant quota settings.
    pub fn quotas(&self) -> QuotaConfig {
        QuotaConfig {
            defaults: Quota {
                max_ingest_metrics_per_s: self.tenant_max_ingest_metrics_per_s,
                max_series: self.tenant_max_series,
            },
            refresh: Duration::from_millis(self.tenant_quota_refresh_ms.max(100)),
        }
    }

    /// Validation limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_metrics_per_request: self.max_metrics_per_request,
            max_name_bytes: self.max_name_bytes,
            max_agent_id_bytes: self.max_agent_id_bytes,
            max_tags: self.max_tags,
            max_tag_key_bytes: self.max_tag_key_bytes,
            max_tag_value_bytes: self.max_tag_value_bytes,
            max_dedupe_id_bytes: self.max_dedupe_id_bytes,
        }
    }

    /// Worker settings.
    pub fn worker(&self) -> WorkerConfig {
        WorkerConfig {
            workers: self.workers,
            max_batch_metrics: self.worker_max_batch_metrics,
            max_attempts: self.worker_max_attempts,
            max_deliveries: self.worker_max_deliveries,
            retry_initial_delay: Duration::from_millis(self.worker_retry_initial_delay_ms),
            retry_max_delay: Duration::from_millis(self.worker_retry_max_delay_ms),
            ..WorkerConfig::default()
        }
    }

    /// The settings as `microdash config` shows them: passwords in URLs and the MQTT
    /// password replaced by `***`, so the output can be pasted into an issue or a log.
    pub fn redacted(&self) -> Config {
        use microdash_core::text::redact_url_password as hide;
        let hide_opt = |url: &Option<String>| url.as_deref().map(hide);
        Config {
            database_url: hide(&self.database_url),
            redis_url: hide_opt(&self.redis_url),
            mqtt_url: hide_opt(&self.mqtt_url),
            mqtt_password: self.mqtt_password.as_ref().map(|_| "***".to_owned()),
            smtp_url: hide(&self.smtp_url),
            external_url: hide(&self.external_url),
            ..self.clone()
        }
    }

    /// HTTP settings.
    pub fn http(&self) -> HttpConfig {
        HttpConfig {
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            default_query_limit: self.default_query_limit,
            max_query_limit: self.max_query_limit,
            sse_heartbeat: Duration::from_millis(self.sse_heartbeat_ms),
            max_poll_wait: Duration::from_millis(self.max_poll_wait_ms),
            session_ttl: Duration::from_secs(self.session_ttl_hours * 3600),
            secure_cookies: self.secure_cookies,
            web_dir: (!self.web_dir.is_empty()).then(|| self.web_dir.clone().into()),
            retention: self.retention().defaults,
            allowed_origins: microdash_core::text::origin(&self.external_url).into_iter().collect(),
            sign_in: SignInLimits {
                attempts_per_user: self.sign_in_attempts_per_user,
                attempts_per_address: self.sign_in_attempts_per_address,
                window: Duration::from_millis(self.sign_in_window_ms),
            },
            // `check` refused a list that does not parse.
            trusted_proxies: parse_networks(&self.trusted_proxies).unwrap_or_default(),
            header_read_timeout: Duration::from_millis(self.http_header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.http_idle_timeout_ms),
            max_connections: self.http_max_connections,
            max_connections_per_ip: self.http_max_connections_per_ip,
            max_streams_per_token: self.max_streams_per_token,
            max_streams_per_tenant: self.max_streams_per_tenant,
            connect: self.connect_info(),
        }
    }

    /// Where programs publish metrics over MQTT, for the dashboard's snippets: the external
    /// broker the bridge reads, or the embedded endpoint (an endpoint listening on every
    /// address is reached at the dashboard's own host).
    pub fn connect_info(&self) -> ConnectInfo {
        let topic_root = self.mqtt_topic_root.clone();
        let mqtt = if let Some(url) = &self.mqtt_url {
            let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host).trim_end_matches('/');
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().unwrap_or(1883)),
                None => (authority, 1883),
            };
            Some(MqttConnect { host: Some(host.trim_matches(['[', ']']).to_owned()), port, topic_root })
        } else {
            self.mqtt_broker().and_then(|broker| broker.listen_addr.parse::<std::net::SocketAddr>().ok()).map(|addr| {
                let host = (!addr.ip().is_unspecified()).then(|| addr.ip().to_string());
                MqttConnect { host, port: addr.port(), topic_root }
            })
        };
        ConnectInfo { mqtt }
    }

    /// Revocation settings.
    pub fn revocation(&self) -> RevocationConfig {
        RevocationConfig { recheck_interval: Duration::from_millis(self.credential_recheck_ms) }
    }

    /// Retention settings.
    pub fn retention(&self) -> RetentionConfig {
        RetentionConfig {
            defaults: Retention {
                raw_hours: self.retention_raw_hours,
                rollup_1m_days: self.retention_1m_days,
                rollup_5m_days: self.retention_5m_days,
            },
            interval: Duration::from_secs(self.retention_interval_s.max(1)),
            chunk_rows: self.retention_chunk_rows.max(1),
        }
    }

    /// Alerting settings, unless turned off.
    pub fn alerting(&self) -> anyhow::Result<Option<AlertingConfig>> {
        if !self.alerting {
            return Ok(None);
        }
        let smtp = (!self.smtp_url.is_empty())
            .then(|| SmtpConfig { url: self.smtp_url.clone(), from: self.smtp_from.clone() });
        let delivery = DeliveryConfig {
            timeout: Duration::from_millis(self.notification_timeout_ms.max(1)),
            smtp,
            destinations: self.webhook_destinations,
            ..DeliveryConfig::default()
        };
        let deliverer = Deliverer::new(delivery).context("setting up notifications (smtp_url, smtp_from)")?;
        Ok(Some(AlertingConfig {
            tick: Duration::from_millis(self.alert_tick_ms.max(10)),
            lease_ttl: Duration::from_secs(self.alert_lease_ttl_s.max(1)),
            external_url: self.external_url.clone(),
            ..AlertingConfig::new(deliverer)
        }))
    }

    /// Live bus settings.
    pub fn live(&self) -> LiveConfig {
        LiveConfig {
            replay_points: self.live_replay_points,
            subscriber_backlog_batches: self.live_subscriber_backlog_batches,
            ..LiveConfig::default()
        }
    }

    /// MQTT bridge settings, when a broker is configured.
    pub fn mqtt(&self) -> Option<MqttConfig> {
        let url = self.mqtt_url.clone()?;
        let defaults = MqttConfig::new(url);
        let host =
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        Some(MqttConfig {
            // Stable across restarts (a restarted bridge resumes its broker session), distinct
            // per host (replicas must not take over each other's connection).
            client_id: if self.mqtt_client_id.is_empty() {
                format!("microdash-bridge-{host}")
            } else {
                self.mqtt_client_id.clone()
            },
            topic_root: self.mqtt_topic_root.clone(),
            shared_group: (!self.mqtt_shared_group.is_empty()).then(|| self.mqtt_shared_group.clone()),
            username: self.mqtt_username.clone(),
            password: self.mqtt_password.clone(),
            ..defaults
        })
    }

    /// The embedded MQTT endpoint's settings, unless it is off or an external broker is set.
    pub fn mqtt_broker(&self) -> Option<BrokerConfig> {
        let addr = self.mqtt_listen_addr.trim();
        if self.mqtt_url.is_some() || addr.is_empty() || addr.eq_ignore_ascii_case("off") {
            return None;
        }
        Some(BrokerConfig {
            topic_root: self.mqtt_topic_root.clone(),
            max_connections: self.mqtt_max_connections,
            max_connections_per_ip: self.mqtt_max_connections_per_ip,
            ..BrokerConfig::new(addr)
        })
    }

    /// The MCP endpoint's settings, when it is on.
    pub fn mcp(&self) -> Option<McpConfig> {
        self.mcp.then(|| {
            let listed = self.mcp_allowed_origins.split(',').map(str::trim).filter(|o| !o.is_empty());
            let external = Some(self.external_url.trim()).filter(|u| !u.is_empty());
            McpConfig {
                allow_writes: self.mcp_allow_writes,
                allowed_origins: external.into_iter().chain(listed).map(str::to_owned).collect(),
                ..McpConfig::default()
            }
        })
    }

    /// Database pool settings.
    pub fn store(&self) -> StoreOptions {
        StoreOptions { max_connections: self.db_max_connections, ..StoreOptions::default() }
    }

    /// The in-process queue's journal, unless `queue_dir` is `off`.
    pub fn journal(&self) -> Option<JournalConfig> {
        let dir = self.queue_dir.trim();
        if dir.eq_ignore_ascii_case("off") {
            return None;
        }
        let dir = match dir {
            "" if self.database_url.starts_with("mysql://") || self.database_url.starts_with("mariadb://") => {
                PathBuf::from("data/queue")
            }
            "" => {
                let file = self.database_url.strip_prefix("sqlite://").unwrap_or(&self.database_url);
                PathBuf::from(format!("{file}.queue"))
            }
            dir => PathBuf::from(dir),
        };
        Some(JournalConfig {
            dir,
            fsync: self.queue_fsync,
            max_bytes: self.queue_max_bytes,
            segment_bytes: self.queue_segment_bytes,
        })
    }

    /// Redis queue settings, when Redis is configured.
    pub fn redis(&self) -> Option<RedisQueueConfig> {
        self.redis_url.as_ref().map(|url| RedisQueueConfig {
            key_prefix: self.redis_key_prefix.clone(),
            claim_idle: Duration::from_millis(self.redis_claim_idle_ms),
            max_backlog_batches: self.redis_max_backlog_batches,
            ..RedisQueueConfig::new(url.clone())
        })
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail API fixes the error type.
mod tests {
    use super::*;

    #[test]
    fn layers_merge_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("md.toml", "workers = 3\nlisten_addr = \"0.0.0.0:9000\"\nmax_tags = 4\n")?;
            jail.set_env("MICRODASH_WORKERS", "5");
            jail.set_env("MICRODASH_REDIS_URL", "redis://r/");
            let overrides = Overrides { listen_addr: Some("127.0.0.1:1".into()), ..Overrides::default() };
            let config = Config::load(Some(&PathBuf::from("md.toml")), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.workers, 5, "environment beats file");
            assert_eq!(config.listen_addr, "127.0.0.1:1", "flags beat everything");
            assert_eq!(config.max_tags, 4, "file beats defaults");
            assert_eq!(config.redis_url.as_deref(), Some("redis://r/"));
            assert_eq!(config.database_url, Config::default().database_url);
            Ok(())
        });
    }

    /// Load `md.toml` holding `toml` (plus the jail's environment); the error, if refused.
    fn load_error(jail: &mut figment::Jail, toml: &str) -> figment::error::Result<Option<String>> {
        jail.create_file("md.toml", toml)?;
        Ok(Config::load(Some(&PathBuf::from("md.toml")), &Overrides::default()).err().map(|e| format!("{e:#}")))
    }

    #[test]
    fn a_poll_wait_beyond_the_request_timeout_is_refused() {
        figment::Jail::expect_with(|jail| {
            let err = load_error(jail, "request_timeout_ms = 10000\nmax_poll_wait_ms = 20000\n")?;
            assert!(err.as_deref().is_some_and(|e| e.contains("max_poll_wait_ms")), "{err:?}");
            Ok(())
        });
    }

    #[test]
    fn a_queue_smaller_than_one_request_is_refused() {
        figment::Jail::expect_with(|jail| {
            let small = "queue_capacity_metrics = 256\nmax_metrics_per_request = 1000\n";
            let err = load_error(jail, small)?;
            assert!(err.as_deref().is_some_and(|e| e.contains("queue_capacity_metrics (256)")), "{err:?}");
            // Without the in-process queue the setting does not matter.
            jail.set_env("MICRODASH_REDIS_URL", "redis://127.0.0.1:6379/");
            assert_eq!(load_error(jail, small)?, None);
            Ok(())
        });
    }

    #[test]
    fn retention_out_of_range_is_refused() {
        figment::Jail::expect_with(|jail| {
            let err = load_error(jail, "retention_1m_days = 0\n")?;
            assert!(err.as_deref().is_some_and(|e| e.contains("retention_1m_days")), "{err:?}");
            jail.set_env("MICRODASH_RETENTION_RAW_HOURS", "48");
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.retention().defaults.raw_hours, 48);
            // Each level at least as long as the finer one.
            let err = load_error(jail, "retention_1m_days = 40\n")?;
            assert!(
                err.as_deref().is_some_and(|e| e.contains("retention_1m_days (40 d) must not be longer")),
                "{err:?}"
            );
            Ok(())
        });
    }

    #[test]
    fn tenant_quotas_default_to_a_series_limit_and_refuse_out_of_range_values() {
        figment::Jail::expect_with(|jail| {
            let quotas = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?.quotas();
            assert_eq!(quotas.defaults, Quota { max_ingest_metrics_per_s: 0, max_series: 100_000 });
            let err = load_error(jail, "tenant_max_series = 1000000000000\n")?;
            assert!(err.as_deref().is_some_and(|e| e.contains("tenant_max_series")), "{err:?}");
            jail.set_env("MICRODASH_TENANT_MAX_INGEST_METRICS_PER_S", "5000");
            jail.set_env("MICRODASH_TENANT_QUOTA_REFRESH_MS", "2500");
            let quotas = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?.quotas();
            assert_eq!(quotas.defaults.max_ingest_metrics_per_s, 5_000);
            assert_eq!(quotas.refresh, Duration::from_millis(2_500));
            Ok(())
        });
    }

    #[test]
    fn the_queue_journal_sits_beside_the_sqlite_file_unless_told_otherwise() {
        let check = |database_url: &str, queue_dir: &str, expected: Option<&str>| {
            let config = Config { database_url: database_url.into(), queue_dir: queue_dir.into(), ..Config::default() };
            let dir = config.journal().map(|j| j.dir);
            assert_eq!(dir, expected.map(PathBuf::from), "{database_url} {queue_dir:?}");
        };
        check("sqlite://data/microdash.db", "", Some("data/microdash.db.queue"));
        check("/var/lib/md.db", " ", Some("/var/lib/md.db.queue"));
        check("mysql://root@127.0.0.1/md", "", Some("data/queue"));
        check("sqlite://data/microdash.db", "/srv/q", Some("/srv/q"));
        check("sqlite://data/microdash.db", "OFF", None);
    }

    #[test]
    fn use_mcp_turns_the_endpoint_on() {
        figment::Jail::expect_with(|jail| {
            assert!(Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?.mcp().is_none());
            jail.create_file("md.toml", "mcp = true\nmcp_allowed_origins = \"https://a.example, http://b:81\"\n")?;
            let config =
                Config::load(Some(&PathBuf::from("md.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            let mcp = config.mcp().ok_or("mcp = true in the file")?;
            assert_eq!(mcp.allowed_origins, ["https://a.example", "http://b:81"]);
            assert!(!mcp.allow_writes);
            jail.create_file("md.toml", "")?;
            jail.set_env("USE_MCP", "true");
            let config =
                Config::load(Some(&PathBuf::from("md.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert!(config.mcp, "USE_MCP=true");
            jail.set_env("MICRODASH_MCP", "false");
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert!(!config.mcp, "MICRODASH_MCP wins over USE_MCP");
            jail.set_env("MICRODASH_MCP", "true");
            jail.set_env("MICRODASH_MCP_ALLOW_WRITES", "true");
            jail.set_env("MICRODASH_EXTERNAL_URL", "https://dash.example.com/md");
            let mcp = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?.mcp().ok_or("on")?;
            assert!(mcp.allow_writes);
            assert_eq!(mcp.allowed_origins, ["https://dash.example.com/md"]);
            Ok(())
        });
    }

    #[test]
    fn connection_settings_reach_the_server_and_zero_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MICRODASH_HTTP_MAX_CONNECTIONS", "512");
            jail.set_env("MICRODASH_HTTP_HEADER_READ_TIMEOUT_MS", "2000");
            jail.set_env("MICRODASH_MAX_STREAMS_PER_TOKEN", "3");
            let http = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?.http();
            assert_eq!(http.max_connections, 512);
            assert_eq!(http.header_read_timeout, Duration::from_secs(2));
            assert_eq!(http.max_streams_per_token, 3);
            assert_eq!(http.idle_timeout, HttpConfig::default().idle_timeout);
            let err = load_error(jail, "http_idle_timeout_ms = 0\n")?;
            assert!(err.as_deref().is_some_and(|e| e.contains("http_idle_timeout_ms")), "{err:?}");
            let err = load_error(jail, "max_streams_per_tenant = 0\n")?;
            assert!(err.as_deref().is_some_and(|e| e.contains("max_streams_per_tenant")), "{err:?}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors() {
        figment::Jail::expect_with(|jail| {
            let err = load_error(jail, "wrokers = 3\n")?;
            assert!(err.as_deref().is_some_and(|e| e.contains("wrokers")), "{err:?}");
            Ok(())
        });
    }
}
