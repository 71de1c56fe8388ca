//! [`Source`]: what the MCP tools read and change, bound to one authenticated caller.
//!
//! The tools are written once, over this trait. Two implementations exist: [`super::LocalSource`]
//! answers in-process from the store, through the very functions the HTTP handlers use (the
//! server's `/mcp`, and `microdash mcp --database-url`); the `microdash mcp --url` command
//! implements it over `microdash-client`, so it works against any server. Both speak the HTTP
//! API's wire types (`microdash_core::api`), and both take the tenant from the credential: a
//! `tenant` argument is only ever a request, which the credential's own checks allow (admins)
//! or refuse (everyone else naming another tenant).

use microdash_core::api::alert::{AlertEventOut, AlertHistoryQuery, AlertOut, AlertRuleIn, AlertRuleOut, AlertState};
use microdash_core::api::{
    AgentOut, ErrorBody, FieldError, HealthResponse, MetricsQuery, QueryResponse, SeriesOut, TenantOut, WhoAmI,
};

/// A failed call: the HTTP API's status and error body, whichever way it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// The HTTP status the API answers (or would answer) with; 0 when it was not reached.
    pub status: u16,
    /// The stable error code (`forbidden`, `invalid_request`, `unavailable`, ...).
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// Per-field problems.
    pub details: Vec<FieldError>,
}

impl SourceError {
    /// An error that did not come from the API (the server could not be reached, ...).
    pub fn other(message: impl Into<String>) -> Self {
        Self { status: 0, code: "unreachable".into(), message: message.into(), details: Vec::new() }
    }

    /// From an API error body.
    pub fn from_body(status: u16, body: &ErrorBody) -> Self {
        Self { status, code: body.error.clone(), message: body.message.clone(), details: body.details.clone() }
    }

    /// The message with every field problem, as a tool error shows it.
    pub fn describe(&self) -> String {
        let mut text = self.message.clone();
        for detail in &self.details {
            text.push_str("\n- ");
            if let Some(field) = &detail.field {
                text.push_str(field);
                text.push_str(": ");
            }
            text.push_str(&detail.message);
        }
        text
    }
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// What the MCP tools need, for one caller. `tenant` arguments are slugs; `None` is the
/// caller's own tenant (admins must name one).
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// Who the caller is: its tenant, scopes, and whether it is an admin.
    async fn whoami(&self) -> Result<WhoAmI, SourceError>;
    /// The tenants the caller may see (every one for admins, its own otherwise).
    async fn tenants(&self) -> Result<Vec<TenantOut>, SourceError>;
    /// The tenant's agents with their status.
    async fn agents(&self, tenant: Option<&str>) -> Result<Vec<AgentOut>, SourceError>;
    /// The tenant's series.
    async fn series(&self, tenant: Option<&str>) -> Result<Vec<SeriesOut>, SourceError>;
    /// Each dependency's status.
    async fn health(&self) -> Result<HealthResponse, SourceError>;
    /// Points or rollup buckets, exactly as `GET /api/v1/metrics` answers `query`.
    async fn query(&self, query: &MetricsQuery) -> Result<QueryResponse, SourceError>;
    /// The tenant's alert instances, of one state or all.
    async fn alerts(&self, tenant: Option<&str>, state: Option<AlertState>) -> Result<Vec<AlertOut>, SourceError>;
    /// The tenant's alert transitions, newest first.
    async fn alert_history(&self, query: &AlertHistoryQuery) -> Result<Vec<AlertEventOut>, SourceError>;
    /// The tenant's alert rules.
    async fn alert_rules(&self, tenant: Option<&str>) -> Result<Vec<AlertRuleOut>, SourceError>;
    /// One alert rule.
    async fn alert_rule(&self, tenant: Option<&str>, id: i64) -> Result<AlertRuleOut, SourceError>;
    /// Create a rule (needs the `alerts` scope, or an admin).
    async fn create_alert_rule(&self, tenant: Option<&str>, rule: &AlertRuleIn) -> Result<AlertRuleOut, SourceError>;
    /// Replace rule `id` whole (needs the `alerts` scope, or an admin).
    async fn update_alert_rule(
        &self,
        tenant: Option<&str>,
        id: i64,
        rule: &AlertRuleIn,
    ) -> Result<AlertRuleOut, SourceError>;
}
