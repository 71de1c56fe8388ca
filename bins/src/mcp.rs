//! `microdash mcp`: the MCP server over stdio, for desktop assistants and editors. With
//! `--url` it is a client of a microdash server's HTTP API (so it works against any server
//! the token reaches); without, it opens the configured database itself (a local install).
//! The tools are the library's (`microdash_ingest::mcp::McpServer`) in both cases; only the
//! [`Source`] differs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use microdash_client::Client;
use microdash_core::api::alert::{AlertEventOut, AlertHistoryQuery, AlertOut, AlertRuleIn, AlertRuleOut, AlertState};
use microdash_core::api::{AgentOut, HealthResponse, MetricsQuery, QueryResponse, SeriesOut, TenantOut, WhoAmI};
use microdash_ingest::Runtime;
use microdash_ingest::mcp::{McpServer, Source, SourceError, serve_stdio};
use microdash_ingest::queue::{MemoryQueue, Queue};

use crate::config::Config;

/// Arguments of `microdash mcp`.
#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// The microdash server to read (`http://127.0.0.1:8080`); without it, the configured
    /// database is opened directly (`--database-url`, `database_url`).
    #[arg(long, env = "MICRODASH_MCP_URL")]
    url: Option<String>,
    /// The API token the tools act with (a tenant token with `read`; `alerts` too for the
    /// write tools, which also need `mcp_allow_writes = true`).
    #[arg(long, env = "MICRODASH_MCP_TOKEN", hide_env_values = true)]
    token: String,
}

/// Serve MCP on stdin/stdout until the client closes them.
pub async fn run(config: &Config, args: McpArgs) -> anyhow::Result<()> {
    let source: Arc<dyn Source> = match &args.url {
        Some(url) => {
            let client = Client::builder(url.clone())
                .token(args.token.clone())
                .timeout(Duration::from_secs(30))
                .user_agent(concat!("microdash-mcp/", env!("CARGO_PKG_VERSION")))
                .build()
                .with_context(|| format!("connecting to {url}"))?;
            // Fail now, with the reason, rather than on every tool call.
            client.whoami().await.with_context(|| format!("checking the token against {url}"))?;
            Arc::new(RemoteSource { client })
        }
        None => {
            let store = crate::run::open_store(config).await?;
            let queue = Queue::Memory(MemoryQueue::new(1_000, Duration::from_secs(1)));
            let runtime = Runtime::builder(store, queue).limits(config.limits()).http(config.http()).build();
            let source = runtime.mcp_source(&args.token).await.context("checking the token")?.context(
                "unknown or revoked token: create one with `microdash token create --tenant SLUG --scopes read`",
            )?;
            Arc::new(source)
        }
    };
    serve_stdio(McpServer::new(source, config.mcp_allow_writes)).await.context("serving MCP over stdio")
}

/// The tools' data over the HTTP API.
struct RemoteSource {
    client: Client,
}

impl RemoteSource {
    fn scoped(&self, tenant: Option<&str>) -> Client {
        match tenant {
            Some(slug) => self.client.for_tenant(slug),
            None => self.client.clone(),
        }
    }
}

fn err(error: microdash_client::Error) -> SourceError {
    match error {
        microdash_client::Error::Api { status, code, message, details, .. } => {
            SourceError { status, code, message, details }
        }
        other => SourceError::other(other.to_string()),
    }
}

#[async_trait::async_trait]
impl Source for RemoteSource {
    async fn whoami(&self) -> Result<WhoAmI, SourceError> {
        self.client.whoami().await.map_err(err)
    }

    async fn tenants(&self) -> Result<Vec<TenantOut>, SourceError> {
        self.client.tenants().await.map_err(err)
    }

    async fn agents(&self, tenant: Option<&str>) -> Result<Vec<AgentOut>, SourceError> {
        self.scoped(tenant).agents().await.map_err(err)
    }

    async fn series(&self, tenant: Option<&str>) -> Result<Vec<SeriesOut>, SourceError> {
        self.scoped(tenant).series().await.map_err(err)
    }

    async fn health(&self) -> Result<HealthResponse, SourceError> {
        self.client.health().await.map_err(err)
    }

    async fn query(&self, query: &MetricsQuery) -> Result<QueryResponse, SourceError> {
        self.client.query(query).await.map_err(err)
    }

    async fn alerts(&self, tenant: Option<&str>, state: Option<AlertState>) -> Result<Vec<AlertOut>, SourceError> {
        self.scoped(tenant).alerts(state).await.map_err(err)
    }

    async fn alert_history(&self, query: &AlertHistoryQuery) -> Result<Vec<AlertEventOut>, SourceError> {
        self.client.alert_history(query).await.map_err(err)
    }

    async fn alert_rules(&self, tenant: Option<&str>) -> Result<Vec<AlertRuleOut>, SourceError> {
        self.scoped(tenant).alert_rules().await.map_err(err)
    }

    async fn alert_rule(&self, tenant: Option<&str>, id: i64) -> Result<AlertRuleOut, SourceError> {
        self.scoped(tenant).alert_rule(id).await.map_err(err)
    }

    async fn create_alert_rule(&self, tenant: Option<&str>, rule: &AlertRuleIn) -> Result<AlertRuleOut, SourceError> {
        self.scoped(tenant).create_alert_rule(rule).await.map_err(err)
    }

    async fn update_alert_rule(
        &self,
        tenant: Option<&str>,
        id: i64,
        rule: &AlertRuleIn,
    ) -> Result<AlertRuleOut, SourceError> {
        self.scoped(tenant).update_alert_rule(id, rule).await.map_err(err)
    }
}
