//! [`LocalSource`]: the MCP tools' data, in-process, through the same functions the HTTP
//! handlers answer with (so a tool and its endpoint cannot disagree, and the tenant checks
//! are the API's own).

use microdash_core::api::alert::{AlertEventOut, AlertHistoryQuery, AlertOut, AlertRuleIn, AlertRuleOut, AlertState};
use microdash_core::api::{AgentOut, HealthResponse, MetricsQuery, QueryResponse, SeriesOut, TenantOut, WhoAmI};

use super::source::{Source, SourceError};
use crate::clock::now_ms;
use crate::http::auth::Auth;
use crate::http::{ApiError, AppState, admin, alerts, catalog, metrics, ops};

/// The store of this process, for one authenticated caller.
#[derive(Clone)]
pub struct LocalSource {
    state: AppState,
    auth: Auth,
}

impl LocalSource {
    pub(crate) fn new(state: AppState, auth: Auth) -> Self {
        Self { state, auth }
    }

    /// The caller, if its credential still authenticates: a source lives as long as its
    /// client (a stdio session lasts for hours), so every call checks that the token was not
    /// revoked meanwhile, as every HTTP request does.
    async fn caller(&self) -> Result<&Auth, SourceError> {
        if self.state.store.still_valid(self.auth.0.credential, now_ms()).await.map_err(ApiError::from)? {
            Ok(&self.auth)
        } else {
            Err(ApiError::unauthorized("the token was revoked or the session ended").into())
        }
    }

    async fn readable(&self, tenant: Option<&str>) -> Result<i64, SourceError> {
        Ok(self.caller().await?.tenant_to_read(&self.state, tenant).await?)
    }

    async fn manageable(&self, tenant: Option<&str>) -> Result<i64, SourceError> {
        Ok(self.caller().await?.tenant_to_manage(&self.state, tenant).await?)
    }
}

impl From<ApiError> for SourceError {
    fn from(err: ApiError) -> Self {
        SourceError::from_body(err.status().as_u16(), err.body())
    }
}

fn body_of(rule: &AlertRuleIn) -> Result<Vec<u8>, SourceError> {
    serde_json::to_vec(rule).map_err(|e| SourceError::other(format!("encoding the rule: {e}")))
}

#[async_trait::async_trait]
impl Source for LocalSource {
    async fn whoami(&self) -> Result<WhoAmI, SourceError> {
        Ok(admin::who(&self.state, self.caller().await?).await?)
    }

    async fn tenants(&self) -> Result<Vec<TenantOut>, SourceError> {
        Ok(admin::tenants_visible(&self.state, self.caller().await?).await?)
    }

    async fn agents(&self, tenant: Option<&str>) -> Result<Vec<AgentOut>, SourceError> {
        let tenant_id = self.readable(tenant).await?;
        Ok(catalog::agents_of(&self.state, tenant_id).await?)
    }

    async fn series(&self, tenant: Option<&str>) -> Result<Vec<SeriesOut>, SourceError> {
        let tenant_id = self.readable(tenant).await?;
        Ok(catalog::series_of(&self.state, tenant_id).await?)
    }

    async fn health(&self) -> Result<HealthResponse, SourceError> {
        self.caller().await?;
        Ok(ops::health_of(&self.state).await)
    }

    async fn query(&self, query: &MetricsQuery) -> Result<QueryResponse, SourceError> {
        Ok(metrics::query_metrics(&self.state, self.caller().await?, query.clone()).await?)
    }

    async fn alerts(&self, tenant: Option<&str>, state: Option<AlertState>) -> Result<Vec<AlertOut>, SourceError> {
        let tenant_id = self.readable(tenant).await?;
        Ok(alerts::alerts_of(&self.state, tenant_id, state).await?)
    }

    async fn alert_history(&self, query: &AlertHistoryQuery) -> Result<Vec<AlertEventOut>, SourceError> {
        let tenant_id = self.readable(query.tenant.as_deref()).await?;
        Ok(alerts::history_of(&self.state, tenant_id, query).await?)
    }

    async fn alert_rules(&self, tenant: Option<&str>) -> Result<Vec<AlertRuleOut>, SourceError> {
        let tenant_id = self.readable(tenant).await?;
        Ok(alerts::rules_of(&self.state, tenant_id).await?)
    }

    async fn alert_rule(&self, tenant: Option<&str>, id: i64) -> Result<AlertRuleOut, SourceError> {
        let tenant_id = self.readable(tenant).await?;
        Ok(alerts::rule_of(&self.state, tenant_id, id).await?)
    }

    async fn create_alert_rule(&self, tenant: Option<&str>, rule: &AlertRuleIn) -> Result<AlertRuleOut, SourceError> {
        let tenant_id = self.manageable(tenant).await?;
        Ok(alerts::create_rule_from(&self.state, tenant_id, &body_of(rule)?).await?)
    }

    async fn update_alert_rule(
        &self,
        tenant: Option<&str>,
        id: i64,
        rule: &AlertRuleIn,
    ) -> Result<AlertRuleOut, SourceError> {
        let tenant_id = self.manageable(tenant).await?;
        Ok(alerts::update_rule_from(&self.state, tenant_id, id, &body_of(rule)?).await?)
    }
}
