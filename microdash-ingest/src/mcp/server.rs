//! [`McpServer`]: the MCP tools, resources and prompts, written once over a [`Source`].

use std::collections::BTreeMap;
use std::sync::Arc;

use microdash_core::api::alert::{AlertHistoryQuery, AlertRuleIn, AlertState};
use microdash_core::api::{AgentStatus, MetricsQuery, PointOut, QueryResponse, Resolution, ResolutionRequest, WhoAmI};
use microdash_core::metric::format_millis;
use microdash_core::rollup::{DAY_MS, HOUR_MS};
use rmcp::handler::server::tool::{ToolCallContext, ToolRouter};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode,
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams, Prompt, PromptArgument,
    PromptMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource, ResourceContents,
    ResourceTemplate, Role, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool, tool_router};

use super::source::{Source, SourceError};
use super::tools::*;
use crate::clock::now_ms;
use crate::http::AppState;
use crate::http::auth::Auth;

/// The tools that change something: listed and callable only for a token with the `alerts`
/// scope on a server with `mcp_allow_writes = true`.
pub const WRITE_TOOLS: [&str; 3] = ["create_alert_rule", "update_alert_rule", "pause_alert_rule"];

/// URIs of the caller's own tenant's resources.
const SERIES_URI: &str = "microdash://series";
const ALERTS_URI: &str = "microdash://alerts";

/// Where a request's [`Source`] comes from.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // One per request, moved once.
enum Binding {
    /// One caller for the server's lifetime (stdio).
    Fixed(Arc<dyn Source>),
    /// The caller the HTTP layer authenticated for each request (`/mcp`).
    PerRequest(AppState),
}

/// The MCP server handler: tools, resources and prompts over a [`Source`].
#[derive(Clone)]
pub struct McpServer {
    binding: Binding,
    allow_writes: bool,
    tools: Arc<ToolRouter<McpServer>>,
}

fn failed(err: SourceError) -> String {
    err.describe()
}

/// Most points one non-`auto` query of `query_metrics` reads (fewer when the server's
/// `max_query_limit` is lower).
const QUERY_LIMIT: usize = 10_000;

/// Most metrics and alerts a prompt names.
const MAX_PROMPT_ITEMS: usize = 100;

/// Run `query`; if the server refuses its `limit` (its `max_query_limit` is lower), run it
/// again with the server's default limit.
async fn query_with_limit(source: &dyn Source, mut query: MetricsQuery) -> Result<QueryResponse, String> {
    match source.query(&query).await {
        Err(err) if query.limit.is_some() && err.details.iter().any(|d| d.field.as_deref() == Some("limit")) => {
            query.limit = None;
            source.query(&query).await.map_err(failed)
        }
        answer => answer.map_err(failed),
    }
}

impl McpServer {
    /// A server answering every request from `source` (stdio: one caller). Writes need
    /// `allow_writes` and a caller with the `alerts` scope.
    pub fn new(source: Arc<dyn Source>, allow_writes: bool) -> Self {
        Self { binding: Binding::Fixed(source), allow_writes, tools: Arc::new(Self::tool_router()) }
    }

    /// A server answering an HTTP request for the caller authenticated on it, with the
    /// router shared by every request.
    pub(crate) fn with_router(state: AppState, allow_writes: bool, tools: Arc<ToolRouter<McpServer>>) -> Self {
        Self { binding: Binding::PerRequest(state), allow_writes, tools }
    }

    /// Every tool, for building servers per request.
    pub(crate) fn router() -> Arc<ToolRouter<McpServer>> {
        Arc::new(Self::tool_router())
    }

    fn source(&self, ctx: &RequestContext<RoleServer>) -> Result<Arc<dyn Source>, String> {
        match &self.binding {
            Binding::Fixed(source) => Ok(source.clone()),
            Binding::PerRequest(state) => {
                let auth = ctx
                    .extensions
                    .get::<axum::http::request::Parts>()
                    .and_then(|parts| parts.extensions.get::<Auth>())
                    .ok_or_else(|| "this request carries no authenticated caller".to_owned())?;
                Ok(Arc::new(super::LocalSource::new(state.clone(), *auth)))
            }
        }
    }

    /// The caller's source and who it is.
    async fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<(Arc<dyn Source>, WhoAmI), String> {
        let source = self.source(ctx)?;
        let who = source.whoami().await.map_err(failed)?;
        Ok((source, who))
    }

    /// The tenant a tool reads: the token's own; admins must name one.
    async fn tenant(&self, source: &dyn Source, who: &WhoAmI, named: Option<String>) -> Result<Option<String>, String> {
        match (&who.tenant, named) {
            (_, Some(slug)) => Ok(Some(slug)),
            (Some(own), None) => Ok(Some(own.clone())),
            (None, None) => {
                let tenants = source.tenants().await.map_err(failed)?;
                let slugs: Vec<String> = tenants.iter().take(20).map(|t| format!("`{}`", t.slug)).collect();
                Err(format!(
                    "admin tokens hold no tenant of their own: pass `tenant` with one of {}",
                    if slugs.is_empty() { "the tenants (none exist yet)".to_owned() } else { slugs.join(", ") }
                ))
            }
        }
    }

    /// Read rule `id`, change it with `change`, and write it back: what the tools that
    /// modify a rule share (after the write checks).
    async fn change_rule(
        &self,
        ctx: &RequestContext<RoleServer>,
        tenant: Option<String>,
        id: i64,
        change: impl FnOnce(AlertRuleIn) -> AlertRuleIn,
    ) -> Result<Json<RuleOut>, String> {
        let (source, who) = self.caller(ctx).await?;
        self.writes_allowed(&who)?;
        let tenant = self.tenant(source.as_ref(), &who, tenant).await?;
        let current = source.alert_rule(tenant.as_deref(), id).await.map_err(failed)?;
        let rule = change(rule_in_of(&current));
        let rule = source.update_alert_rule(tenant.as_deref(), id, &rule).await.map_err(failed)?;
        Ok(Json(RuleOut { rule }))
    }

    fn writes_allowed(&self, who: &WhoAmI) -> Result<(), String> {
        if !self.allow_writes {
            return Err("changing alert rules through MCP is off on this server: its operator can turn it on with \
                        `mcp_allow_writes = true` (MICRODASH_MCP_ALLOW_WRITES=true)"
                .into());
        }
        if !who.scopes.contains(microdash_core::token::Scope::Alerts) {
            return Err(format!(
                "this token (scopes: {}) cannot change alert rules: that needs a token with the `alerts` scope",
                who.scopes
            ));
        }
        Ok(())
    }

    /// The tools this caller may use.
    fn visible_tools(&self, who: Option<&WhoAmI>) -> Vec<Tool> {
        let writes = who.is_some_and(|who| self.writes_allowed(who).is_ok());
        self.tools.list_all().into_iter().filter(|t| writes || !WRITE_TOOLS.contains(&t.name.as_ref())).collect()
    }
}

#[tool_router(router = tool_router)]
impl McpServer {
    #[tool(
        name = "list_tenants",
        description = "List the tenants this token can see: every tenant for an admin token, its own for a tenant \
                       token. Admin tokens pass one of these slugs as `tenant` to the other tools.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_tenants(&self, ctx: RequestContext<RoleServer>) -> Result<Json<TenantsOut>, String> {
        let source = self.source(&ctx)?;
        Ok(Json(TenantsOut { tenants: source.tenants().await.map_err(failed)? }))
    }

    #[tool(
        name = "list_agents",
        description = "List the tenant's agents (hosts, devices): each with its status (`online` when it reported \
                       within twice its interval, else `offline`), when it was last seen, and its announced \
                       reporting interval. Filter with `status`.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_agents(
        &self,
        Parameters(args): Parameters<ListAgentsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<AgentsOut>, String> {
        let wanted: Option<AgentStatus> = match args.status.as_deref() {
            Some(status) => {
                Some(status.parse().map_err(|_| format!("status `{status}` is neither `online` nor `offline`"))?)
            }
            None => None,
        };
        let (source, who) = self.caller(&ctx).await?;
        let tenant = self.tenant(source.as_ref(), &who, args.tenant).await?;
        let mut agents = source.agents(tenant.as_deref()).await.map_err(failed)?;
        let total = agents.len();
        if let Some(status) = wanted {
            agents.retain(|a| a.status == status);
        }
        agents.truncate(MAX_LIST);
        Ok(Json(AgentsOut { tenant, agents, total }))
    }

    #[tool(
        name = "list_metrics",
        description = "List the tenant's metrics: each metric name with how many series report it, the agents \
                       reporting it and its tag keys and values. Filter with `prefix` (`cpu.`) or `agent_id`. Use \
                       the names exactly as shown in `query_metrics`.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_metrics(
        &self,
        Parameters(args): Parameters<ListMetricsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<MetricsOut>, String> {
        let (source, who) = self.caller(&ctx).await?;
        let tenant = self.tenant(source.as_ref(), &who, args.tenant).await?;
        let mut series = source.series(tenant.as_deref()).await.map_err(failed)?;
        if let Some(agent) = &args.agent_id {
            let agents: Vec<&str> = series.iter().filter_map(|s| s.agent_id.as_deref()).collect();
            if !agents.contains(&agent.as_str()) {
                let hint = did_you_mean(&suggest(agent, agents)).map(|h| format!("; {h}")).unwrap_or_default();
                return Err(format!("unknown agent `{agent}`{hint} (list_agents shows them)"));
            }
            series.retain(|s| s.agent_id.as_ref() == Some(agent));
        }
        if let Some(prefix) = &args.prefix {
            series.retain(|s| s.metric_name.starts_with(prefix.as_str()));
        }
        let mut metrics = group_metrics(&series);
        let total = metrics.len();
        metrics.truncate(MAX_LIST);
        Ok(Json(MetricsOut { tenant, truncated: total > metrics.len(), metrics, total }))
    }

    #[tool(
        name = "get_health",
        description = "Check the server: whether its database and queue are up (`ok`), or what is down (`degraded`).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_health(&self, ctx: RequestContext<RoleServer>) -> Result<Json<HealthOut>, String> {
        let source = self.source(&ctx)?;
        let health = source.health().await.map_err(failed)?;
        Ok(Json(HealthOut { health, version: env!("CARGO_PKG_VERSION").to_owned() }))
    }

    #[tool(
        name = "query_metrics",
        description = "Read one metric over a time range. Answers, per series (agent and tags), a summary over \
                       every point in the range (count, min, max, avg, first, last, change, slope per hour, trend \
                       `rising`/`falling`/`flat`) and at most `max_points` points (default 120) as `[time, value]` \
                       pairs, merged into buckets when the range holds more. `range` is a duration back from now \
                       (`15m`, `1h`, `24h`, `7d`; default `1h`), a start time (RFC 3339 or Unix seconds) or \
                       `START/END`. Filter with `agents` and `tags`. Get metric names from `list_metrics`.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn query_metrics(
        &self,
        Parameters(args): Parameters<QueryMetricsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<QueryOut>, String> {
        let (source, who) = self.caller(&ctx).await?;
        let tenant = self.tenant(source.as_ref(), &who, args.tenant.clone()).await?;
        Ok(Json(query_metrics(source.as_ref(), tenant, args, now_ms()).await?))
    }

    #[tool(
        name = "get_alerts",
        description = "The tenant's alerts now: by default those firing (one per rule and series, with severity, \
                       value and since when). `state` may be `firing`, `pending`, `no_data`, `ok` or `all`.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_alerts(
        &self,
        Parameters(args): Parameters<GetAlertsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<AlertsOut>, String> {
        let state_name = args.state.clone().unwrap_or_else(|| "firing".into());
        let state =
            match state_name.as_str() {
                "all" => None,
                other => Some(serde_json::from_value::<AlertState>(serde_json::Value::String(other.into())).map_err(
                    |_| format!("state `{other}` is not one of `firing`, `pending`, `no_data`, `ok`, `all`"),
                )?),
            };
        let (source, who) = self.caller(&ctx).await?;
        let tenant = self.tenant(source.as_ref(), &who, args.tenant).await?;
        let mut alerts = source.alerts(tenant.as_deref(), state).await.map_err(failed)?;
        let truncated = alerts.len() > MAX_LIST;
        alerts.truncate(MAX_LIST);
        Ok(Json(AlertsOut { tenant, state: state_name, alerts, truncated }))
    }

    #[tool(
        name = "get_alert_history",
        description = "The tenant's alert transitions (ok, pending, firing, resolved, no data), newest first, over \
                       `range` (default `24h`; a duration, a start time or `START/END`). Filter with `rule_id` or \
                       `agent_id`; `limit` defaults to 50 (at most 500).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_alert_history(
        &self,
        Parameters(args): Parameters<AlertHistoryArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<HistoryOut>, String> {
        let (start, end) = parse_range(args.range.as_ref(), None, DAY_MS, now_ms())?;
        let (source, who) = self.caller(&ctx).await?;
        let tenant = self.tenant(source.as_ref(), &who, args.tenant).await?;
        let query = AlertHistoryQuery {
            tenant: tenant.clone(),
            start_time: Some(format_millis(start)),
            end_time: Some(format_millis(end)),
            rule_id: args.rule_id,
            agent_id: args.agent_id,
            limit: Some(args.limit.unwrap_or(50).clamp(1, MAX_LIST as u32)),
        };
        let transitions = source.alert_history(&query).await.map_err(failed)?;
        Ok(Json(HistoryOut { tenant, start: format_millis(start), end: format_millis(end), transitions }))
    }

    #[tool(
        name = "list_alert_rules",
        description = "The tenant's alert rules with every setting: metric, agent and tag filters, aggregate over \
                       the window, operator, critical and warning thresholds, for, recovery, channels, enabled.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_alert_rules(
        &self,
        Parameters(args): Parameters<TenantArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<RulesOut>, String> {
        let (source, who) = self.caller(&ctx).await?;
        let tenant = self.tenant(source.as_ref(), &who, args.tenant).await?;
        let rules = source.alert_rules(tenant.as_deref()).await.map_err(failed)?;
        Ok(Json(RulesOut { tenant, rules }))
    }

    #[tool(
        name = "create_alert_rule",
        description = "Create an alert rule. `rule` needs `name`, `metric_name`, `operator` (`>`, `>=`, `<`, `<=`) \
                       and `critical`; optional: `agent_id`, `tags`, `aggregate` (`last`, `avg`, `min`, `max`, \
                       `sum`, `count`) over `window_s`, `warning`, `recovery`, `for_s`, `keep_firing_for_s`, \
                       `no_data_s`, `no_data_state`, `repeat_interval_s`, `channels`, `labels`, `summary`, \
                       `enabled`. Invalid settings are named in the error.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_alert_rule(
        &self,
        Parameters(args): Parameters<CreateRuleArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<RuleOut>, String> {
        let (source, who) = self.caller(&ctx).await?;
        self.writes_allowed(&who)?;
        let tenant = self.tenant(source.as_ref(), &who, args.tenant).await?;
        let rule = source.create_alert_rule(tenant.as_deref(), &args.rule).await.map_err(failed)?;
        Ok(Json(RuleOut { rule }))
    }

    #[tool(
        name = "update_alert_rule",
        description = "Change some settings of an alert rule: `changes` holds only the settings to change (same \
                       names as `create_alert_rule`); the others keep their values.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_alert_rule(
        &self,
        Parameters(args): Parameters<UpdateRuleArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<RuleOut>, String> {
        let changes = args.changes;
        self.change_rule(&ctx, args.tenant, args.id, |rule| overlay(rule, changes)).await
    }

    #[tool(
        name = "pause_alert_rule",
        description = "Pause an alert rule (`paused: true`, the default: it is no longer evaluated and a firing \
                       alert resolves) or resume it (`paused: false`).",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn pause_alert_rule(
        &self,
        Parameters(args): Parameters<PauseRuleArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<RuleOut>, String> {
        let enabled = !args.paused.unwrap_or(true);
        self.change_rule(&ctx, args.tenant, args.id, |rule| AlertRuleIn { enabled: Some(enabled), ..rule }).await
    }
}

/// What the `query_metrics` tool answers, for `tenant` (the caller's own, or the one an
/// admin names) at `now` (Unix ms); the error is the tool error's text.
pub async fn query_metrics(
    source: &dyn Source,
    tenant: Option<String>,
    args: QueryMetricsArgs,
    now: i64,
) -> Result<QueryOut, String> {
    let metric = args.metric.trim().to_owned();
    if metric.is_empty() {
        return Err("`metric` is empty: name one (list_metrics shows them)".into());
    }
    let max_points = args.max_points.unwrap_or(DEFAULT_MAX_POINTS);
    if !(1..=MAX_POINTS).contains(&max_points) {
        return Err(format!("max_points must be from 1 to {MAX_POINTS}, not {max_points}"));
    }
    let resolution = args.resolution.unwrap_or(ResolutionRequest::Auto);
    let auto = resolution == ResolutionRequest::Auto;
    let (start, end) = parse_range(args.range.as_ref(), args.end.as_ref(), HOUR_MS, now)?;
    let mut agents = args.agents.clone().unwrap_or_default();
    // An agent named twice is one series, read once.
    agents.sort();
    agents.dedup();
    if agents.len() > MAX_AGENTS {
        return Err(format!("{} agents named; name at most {MAX_AGENTS} (or none for all)", agents.len()));
    }

    // Names are checked against the tenant's own catalogue, so a suggestion never comes
    // from another tenant.
    let catalogue = source.series(tenant.as_deref()).await.map_err(failed)?;
    let of_metric: Vec<_> = catalogue.iter().filter(|s| s.metric_name == metric).collect();
    if of_metric.is_empty() {
        let hint = did_you_mean(&suggest(&metric, catalogue.iter().map(|s| s.metric_name.as_str())))
            .map(|h| format!("; {h}"))
            .unwrap_or_else(|| "; list_metrics shows the metrics this tenant has".into());
        return Err(format!("unknown metric `{metric}`{hint}"));
    }
    for agent in &agents {
        if !of_metric.iter().any(|s| s.agent_id.as_ref() == Some(agent)) {
            let reporting = of_metric.iter().filter_map(|s| s.agent_id.as_deref());
            let hint = did_you_mean(&suggest(agent, reporting)).map(|h| format!("; {h}")).unwrap_or_default();
            return Err(format!("no agent `{agent}` reports `{metric}`{hint}"));
        }
    }

    let ask = |agent: Option<String>| MetricsQuery {
        tenant: tenant.clone(),
        metric_name: Some(metric.clone()),
        agent_id: agent,
        start_time: Some(format_millis(start)),
        end_time: Some(format_millis(end)),
        resolution: Some(resolution),
        max_points: auto.then_some(max_points),
        limit: (!auto).then_some(QUERY_LIMIT),
    };
    let mut notes = Vec::new();
    // A metric of a big fleet, asked for as a whole, is read agent by agent for the first
    // MAX_SERIES agents: one query for all would hit the server's point limit and drop the
    // oldest buckets of every series without saying so.
    let mut reporting: Vec<&str> = of_metric.iter().filter_map(|s| s.agent_id.as_deref()).collect();
    reporting.sort_unstable();
    reporting.dedup();
    let agents = if agents.is_empty() && reporting.len() > MAX_SERIES {
        notes.push(format!(
            "{} agents report `{metric}`; the first {MAX_SERIES} by name are read: name `agents` to choose",
            reporting.len()
        ));
        reporting.iter().take(MAX_SERIES).map(|a| (*a).to_owned()).collect()
    } else {
        agents
    };
    let mut answers: Vec<QueryResponse> = Vec::new();
    if agents.is_empty() {
        answers.push(query_with_limit(source, ask(None)).await?);
    } else {
        for agent in &agents {
            let mut query = ask(Some(agent.clone()));
            // Every agent at the resolution the first one got, so the answer has one. Only a
            // stored resolution can be asked for by name: a coarser one `auto` merged
            // (`15m`) is asked for as `auto` again, which over the same range and
            // `max_points` merges the same way.
            if let Some(first) = answers.first()
                && auto
                && let Ok(stored) = first.resolution.to_string().parse::<ResolutionRequest>()
            {
                query.resolution = Some(stored);
                query.max_points = None;
                query.limit = Some(QUERY_LIMIT);
            }
            answers.push(query_with_limit(source, query).await?);
        }
    }
    // There is an answer (one query, or one per agent named); the fallback only keeps this
    // total.
    let served = answers.first().map(|a| a.resolution).unwrap_or(match resolution {
        ResolutionRequest::Exact(resolution) => resolution,
        ResolutionRequest::Auto => Resolution::Raw,
    });
    // `auto` again may still answer another way for an agent with few points in the range
    // (its raw points fit), and the answer has one resolution field: say which differ.
    for (agent, answer) in agents.iter().zip(&answers).filter(|(_, a)| a.resolution != served) {
        notes.push(format!(
            "`{agent}` was read at {} (its points in the range are few), the others at {served}",
            answer.resolution
        ));
    }
    if answers.iter().any(|a| a.count >= QUERY_LIMIT) {
        notes.push(format!(
            "{QUERY_LIMIT} points or more matched: only the latest were read; use `resolution: auto` or a shorter range"
        ));
    }

    type Key = (Option<String>, BTreeMap<String, String>);
    let mut series: BTreeMap<Key, Vec<PointOut>> = BTreeMap::new();
    for point in answers.into_iter().flat_map(|a| a.data) {
        if let Some(tags) = &args.tags
            && !tags.iter().all(|(k, v)| point.tags.get(k) == Some(v))
        {
            continue;
        }
        series.entry((point.agent_id.clone(), point.tags.clone())).or_default().push(point);
    }
    let total_series = series.len();
    let mut series: Vec<(Key, Vec<PointOut>)> = series.into_iter().collect();
    if total_series > MAX_SERIES {
        series.sort_by_key(|(_, points)| std::cmp::Reverse(points.len()));
        series.truncate(MAX_SERIES);
        series.sort_by(|a, b| a.0.cmp(&b.0));
        notes.push(format!(
            "{total_series} series matched; the {MAX_SERIES} with most points are shown: narrow with `agents` or `tags`"
        ));
    }
    if total_series == 0 {
        notes.push(match &args.tags {
            Some(tags) if !tags.is_empty() => {
                "no points in this range with these tags; list_metrics shows the tags in use".to_owned()
            }
            _ => "no points in this range; try a longer `range`".to_owned(),
        });
    }
    let mut merged = false;
    let series = series
        .into_iter()
        .filter_map(|((agent_id, tags), mut points)| {
            points.sort_by_key(|p| p.timestamp.clone());
            let summary = summarise(&points)?;
            merged |= points.len() > max_points;
            Some(SeriesAnswer { agent_id, tags, summary, points: downsample(&points, max_points) })
        })
        .collect();
    if merged {
        notes.push(format!("points were merged into at most {max_points} per series (means)"));
    }
    Ok(QueryOut {
        metric,
        tenant,
        start: format_millis(start),
        end: format_millis(end),
        resolution: served,
        series,
        total_series,
        notes,
    })
}

fn tool_error(message: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message.into())]).into()
}

fn prompt_error(message: impl Into<String>) -> McpError {
    McpError::invalid_params(message.into(), None)
}

impl McpServer {
    async fn read_json<T: serde::Serialize>(uri: &str, value: &T) -> Result<ReadResourceResponse, McpError> {
        let text = serde_json::to_string_pretty(value).map_err(|e| McpError::internal_error(e.to_string(), None))?;
        if text.len() > MAX_RESULT_BYTES {
            return Err(McpError::invalid_params(
                format!("{uri} is over {} KiB: use list_metrics or get_alerts, which filter", MAX_RESULT_BYTES / 1024),
                None,
            ));
        }
        let contents = ResourceContents::TextResourceContents {
            uri: uri.to_owned(),
            mime_type: Some("application/json".into()),
            text,
            meta: None,
        };
        Ok(ReadResourceResult::new(vec![contents]).with_ttl_ms(0).with_cache_scope(CacheScope::Private).into())
    }

    async fn investigate_host(
        &self,
        source: &dyn Source,
        who: &WhoAmI,
        args: &BTreeMap<String, String>,
    ) -> Result<GetPromptResult, McpError> {
        let agent = args.get("agent_id").cloned().ok_or_else(|| prompt_error("the prompt needs `agent_id`"))?;
        let tenant = self.tenant(source, who, args.get("tenant").cloned()).await.map_err(prompt_error)?;
        let agents = source.agents(tenant.as_deref()).await.map_err(|e| prompt_error(e.describe()))?;
        let Some(found) = agents.iter().find(|a| a.agent_id == agent) else {
            let hint = did_you_mean(&suggest(&agent, agents.iter().map(|a| a.agent_id.as_str())))
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            return Err(prompt_error(format!("unknown agent `{agent}`{hint}")));
        };
        let series = source.series(tenant.as_deref()).await.map_err(|e| prompt_error(e.describe()))?;
        let mut metrics: Vec<&str> =
            series.iter().filter(|s| s.agent_id.as_deref() == Some(&agent)).map(|s| s.metric_name.as_str()).collect();
        metrics.dedup();
        // A prompt stays a prompt: at most this many metrics and alerts are named in it.
        metrics.truncate(MAX_PROMPT_ITEMS);
        let firing = source.alerts(tenant.as_deref(), Some(AlertState::Firing)).await.unwrap_or_default();
        let firing: Vec<String> = firing
            .iter()
            .filter(|a| a.agent_id.as_deref() == Some(&agent))
            .take(MAX_PROMPT_ITEMS)
            .map(|a| {
                format!(
                    "{} ({}, value {}, since {})",
                    a.rule_name,
                    a.severity.map(|s| s.as_str()).unwrap_or("-"),
                    a.value.map_or_else(|| "none".to_owned(), |v| v.to_string()),
                    a.since
                )
            })
            .collect();
        let interval = found.interval_s.map(|s| format!(", reporting every {s} s")).unwrap_or_default();
        let text = format!(
            "Investigate the host `{agent}`{tenant_note} in microdash.\n\n\
             Now: it is {status}, last seen {last_seen}{interval}. It reports {n} metrics: {metrics}.\n\
             Firing alerts on it: {firing}.\n\n\
             Steps:\n\
             1. Call `get_alerts` and `get_alert_history` (with `agent_id: \"{agent}\"`, `range: \"24h\"`) for what \
             fired and when.\n\
             2. Call `query_metrics` with `agents: [\"{agent}\"]` for its CPU, memory, disk and load metrics over \
             `range: \"1h\"`, then `\"24h\"`; compare each summary's trend, min, max and last with the fleet (the \
             same metric without `agents`).\n\
             3. Say what is abnormal, since when, what it likely means, and what to check next. Quote the numbers \
             you used.",
            tenant_note = tenant.as_deref().map(|t| format!(" (tenant `{t}`)")).unwrap_or_default(),
            status = found.status,
            last_seen = found.last_seen,
            n = metrics.len(),
            metrics = if metrics.is_empty() { "none".to_owned() } else { metrics.join(", ") },
            firing = if firing.is_empty() { "none".to_owned() } else { firing.join("; ") },
        );
        let mut result = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
        result.description = Some(format!("Investigate host {agent}"));
        Ok(result)
    }

    async fn summarise_day(
        &self,
        source: &dyn Source,
        who: &WhoAmI,
        args: &BTreeMap<String, String>,
    ) -> Result<GetPromptResult, McpError> {
        let tenant = self.tenant(source, who, args.get("tenant").cloned()).await.map_err(prompt_error)?;
        let agents = source.agents(tenant.as_deref()).await.map_err(|e| prompt_error(e.describe()))?;
        let online = agents.iter().filter(|a| a.status == AgentStatus::Online).count();
        let offline: Vec<&str> =
            agents.iter().filter(|a| a.status != AgentStatus::Online).map(|a| a.agent_id.as_str()).take(20).collect();
        let firing = source.alerts(tenant.as_deref(), Some(AlertState::Firing)).await.unwrap_or_default();
        let now = now_ms();
        let history = AlertHistoryQuery {
            tenant: tenant.clone(),
            start_time: Some(format_millis(now - DAY_MS)),
            limit: Some(MAX_LIST as u32),
            ..AlertHistoryQuery::default()
        };
        let transitions = source.alert_history(&history).await.unwrap_or_default();
        let series = source.series(tenant.as_deref()).await.map_err(|e| prompt_error(e.describe()))?;
        let metrics = group_metrics(&series);
        let text = format!(
            "Summarise the last 24 hours of{tenant_note} microdash, from {start} to {end}.\n\n\
             Now: {n} agents, {online} online{offline}; {firing} alerts firing; {transitions} alert transitions in \
             the last 24 h; {m} metrics.\n\n\
             Steps:\n\
             1. Call `get_alerts` and `get_alert_history` (`range: \"24h\"`) and say what fired, for how long, and \
             what is still firing.\n\
             2. Call `list_agents` and name agents that went offline.\n\
             3. For the main metrics (CPU, memory, disk, load first), call `query_metrics` with `range: \"24h\"` and \
             report notable summaries: highest max, rising trends, outliers among agents.\n\
             4. Finish with a short list of what needs attention.",
            tenant_note = tenant.as_deref().map(|t| format!(" the tenant `{t}` in")).unwrap_or_default(),
            start = format_millis(now - DAY_MS),
            end = format_millis(now),
            n = agents.len(),
            offline = if offline.is_empty() { String::new() } else { format!(", offline: {}", offline.join(", ")) },
            firing = firing.len(),
            transitions = transitions.len(),
            m = metrics.len(),
        );
        let mut result = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
        result.description = Some("Summarise the last 24 h".into());
        Ok(result)
    }
}

const INSTRUCTIONS: &str = "microdash is a multi-tenant metrics and alerting server. Every tool reads the tenant of \
    your token (admin tokens name one with `tenant`). Start with `list_agents` and `list_metrics` to learn the names, \
    then `query_metrics` for a metric over a range (answers are summaries plus at most 120 points per series), and \
    `get_alerts` / `get_alert_history` for alerts. Resources: microdash://series (the series catalogue) and \
    microdash://alerts (current alerts).";

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_prompts().enable_resources().enable_tools().build())
            .with_server_info(
                Implementation::new("microdash", env!("CARGO_PKG_VERSION"))
                    .with_title("microdash")
                    .with_description("metrics, agents and alerts of a microdash tenant"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.get(name).cloned()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let who = match self.caller(&context).await {
            Ok((_, who)) => Some(who),
            Err(_) => None,
        };
        // Which tools a caller sees depends on its token: never cached for others.
        Ok(ListToolsResult::with_all_items(self.visible_tools(who.as_ref()))
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        if WRITE_TOOLS.contains(&name.as_str()) {
            let gate = match self.caller(&context).await {
                Ok((_, who)) => self.writes_allowed(&who),
                Err(err) => Err(err),
            };
            if let Err(message) = gate {
                return Ok(tool_error(format!("`{name}` is not available: {message}")));
            }
        }
        if !self.tools.has_route(&name) {
            let known: Vec<String> = self.visible_tools(None).into_iter().map(|t| t.name.to_string()).collect();
            let hint = did_you_mean(&suggest(&name, known.iter().map(String::as_str)))
                .map(|h| format!("; {h}"))
                .unwrap_or_else(|| ".".into());
            return Ok(tool_error(format!("unknown tool `{name}`{hint} The tools are: {}", known.join(", "))));
        }
        let answer = self.tools.call(ToolCallContext::new(self, request, context)).await;
        match answer {
            Ok(CallToolResponse::Complete(mut result)) => {
                // rmcp reports arguments that do not fit the schema in serde's words; name
                // the tool and what it takes.
                if result.is_error == Some(true)
                    && let Some(ContentBlock::Text(text)) = result.content.first_mut()
                    && let Some(why) = text.text.strip_prefix("failed to deserialize parameters: ")
                {
                    let takes = self
                        .tools
                        .get(&name)
                        .and_then(|t| t.input_schema.get("properties").and_then(|p| p.as_object()).cloned())
                        .map(|p| p.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default();
                    text.text = format!("invalid arguments for `{name}`: {why}; it takes {takes}");
                }
                let size = serde_json::to_vec(&result).map(|v| v.len()).unwrap_or(0);
                if size > MAX_RESULT_BYTES {
                    return Ok(tool_error(format!(
                        "the answer of `{name}` is {} KiB, over the {} KiB limit: narrow it (a shorter range, \
                         fewer agents, a prefix, a lower max_points)",
                        size / 1024,
                        MAX_RESULT_BYTES / 1024
                    )));
                }
                Ok(CallToolResponse::Complete(result))
            }
            Ok(other) => Ok(other),
            Err(err) if err.code == ErrorCode::INVALID_PARAMS => {
                Ok(tool_error(format!("invalid arguments for `{name}`: {}", err.message)))
            }
            Err(err) => Err(err),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let (source, who) = self.caller(&context).await.map_err(|e| McpError::internal_error(e, None))?;
        let slugs: Vec<String> = match &who.tenant {
            Some(_) => Vec::new(),
            None => source.tenants().await.unwrap_or_default().into_iter().take(50).map(|t| t.slug).collect(),
        };
        let resources = if slugs.is_empty() {
            vec![
                Resource::new(SERIES_URI, "series")
                    .with_title("Series catalogue")
                    .with_description("Every metric of the tenant with its agents and tags (JSON)")
                    .with_mime_type("application/json"),
                Resource::new(ALERTS_URI, "alerts")
                    .with_title("Current alerts")
                    .with_description("The tenant's alerts that are not ok: firing, pending, no data (JSON)")
                    .with_mime_type("application/json"),
            ]
        } else {
            slugs
                .iter()
                .flat_map(|slug| {
                    [
                        Resource::new(format!("microdash://tenants/{slug}/series"), format!("{slug} series"))
                            .with_description(format!("The series catalogue of tenant {slug} (JSON)"))
                            .with_mime_type("application/json"),
                        Resource::new(format!("microdash://tenants/{slug}/alerts"), format!("{slug} alerts"))
                            .with_description(format!("The current alerts of tenant {slug} (JSON)"))
                            .with_mime_type("application/json"),
                    ]
                })
                .collect()
        };
        Ok(ListResourcesResult::with_all_items(resources).with_ttl_ms(0).with_cache_scope(CacheScope::Private))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let templates = vec![
            ResourceTemplate::new("microdash://tenants/{tenant}/series", "tenant series")
                .with_description("A tenant's series catalogue (admin tokens; a tenant token reads only its own)")
                .with_mime_type("application/json"),
            ResourceTemplate::new("microdash://tenants/{tenant}/alerts", "tenant alerts")
                .with_description("A tenant's current alerts (admin tokens; a tenant token reads only its own)")
                .with_mime_type("application/json"),
        ];
        Ok(ListResourceTemplatesResult::with_all_items(templates).with_ttl_ms(0).with_cache_scope(CacheScope::Private))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.clone();
        let (named, what) = match uri.as_str() {
            SERIES_URI => (None, "series"),
            ALERTS_URI => (None, "alerts"),
            other => match other.strip_prefix("microdash://tenants/").and_then(|rest| rest.split_once('/')) {
                Some((slug, what @ ("series" | "alerts"))) if !slug.is_empty() => (Some(slug.to_owned()), what),
                _ => {
                    return Err(McpError::resource_not_found(
                        format!(
                            "no resource {uri}: read {SERIES_URI}, {ALERTS_URI} or microdash://tenants/{{tenant}}/series|alerts"
                        ),
                        None,
                    ));
                }
            },
        };
        let (source, who) = self.caller(&context).await.map_err(|e| McpError::internal_error(e, None))?;
        let tenant = self.tenant(source.as_ref(), &who, named).await.map_err(prompt_error)?;
        let fail = |e: SourceError| McpError::invalid_params(e.describe(), None);
        if what == "series" {
            let series = source.series(tenant.as_deref()).await.map_err(fail)?;
            let mut metrics = group_metrics(&series);
            let total = metrics.len();
            metrics.truncate(MAX_LIST);
            Self::read_json(&uri, &MetricsOut { tenant, truncated: total > metrics.len(), metrics, total }).await
        } else {
            let mut alerts = source.alerts(tenant.as_deref(), None).await.map_err(fail)?;
            alerts.retain(|a| a.state != AlertState::Ok);
            let truncated = alerts.len() > MAX_LIST;
            alerts.truncate(MAX_LIST);
            Self::read_json(&uri, &AlertsOut { tenant, state: "not ok".into(), alerts, truncated }).await
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let tenant_arg =
            PromptArgument::new("tenant").with_description("Tenant slug; admin tokens only").with_required(false);
        let prompts = vec![
            Prompt::new(
                "investigate_host",
                Some("Investigate host {agent_id}: its status, metrics and alerts, and what is abnormal"),
                Some(vec![
                    PromptArgument::new("agent_id")
                        .with_description("The agent (host) to investigate, from list_agents")
                        .with_required(true),
                    tenant_arg.clone(),
                ]),
            )
            .with_title("Investigate host {agent_id}"),
            Prompt::new(
                "summarise_last_24h",
                Some("Summarise the last 24 h: alerts fired, agents that went offline, notable metrics"),
                Some(vec![tenant_arg]),
            )
            .with_title("Summarise the last 24 h"),
        ];
        Ok(ListPromptsResult::with_all_items(prompts).with_ttl_ms(0).with_cache_scope(CacheScope::Private))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let args: BTreeMap<String, String> = request
            .arguments
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
            .collect();
        let (source, who) = self.caller(&context).await.map_err(|e| McpError::internal_error(e, None))?;
        let result = match request.name.as_str() {
            "investigate_host" => self.investigate_host(source.as_ref(), &who, &args).await?,
            "summarise_last_24h" => self.summarise_day(source.as_ref(), &who, &args).await?,
            other => {
                return Err(prompt_error(format!(
                    "unknown prompt `{other}`: the prompts are investigate_host, summarise_last_24h"
                )));
            }
        };
        Ok(result.into())
    }
}
