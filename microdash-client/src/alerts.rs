//! Alerting: rules (`/api/v1/alert-rules`), current alerts and their history
//! (`/api/v1/alerts`, `/api/v1/alerts/history`), notification channels
//! (`/api/v1/channels`) and the delivery log (`/api/v1/notifications`).
//!
//! Reading needs a token with `read` on the tenant; changing rules and channels needs the
//! `alerts` scope (or an admin token, which names the tenant: [`Client::for_tenant`]).
//! Another tenant's rule or channel answers `404`, like one that does not exist.

use microdash_core::api::alert::{
    AlertEventOut, AlertHistoryQuery, AlertOut, AlertRuleIn, AlertRuleOut, AlertState, AlertsQuery, ChannelIn,
    ChannelOut, NotificationOut,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{Client, Replay};
use crate::error::Error;

/// Answer to `POST /api/v1/channels/{id}/test`.
#[derive(Deserialize)]
struct TestQueued {
    notification_id: i64,
}

/// Query string of `GET /api/v1/notifications`.
#[derive(Serialize)]
struct NotificationsQuery<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
}

impl Client {
    /// The tenant's alert rules.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// for rule in client.alert_rules().await? {
    ///     println!("{}: {} {} {}", rule.name, rule.metric_name, rule.operator, rule.critical);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn alert_rules(&self) -> Result<Vec<AlertRuleOut>, Error> {
        self.call(self.scoped(Method::GET, &["alert-rules"]), Replay::Safe).await
    }

    /// One alert rule.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// let rule = client.alert_rule(3).await?;
    /// # Ok(()) }
    /// ```
    pub async fn alert_rule(&self, id: i64) -> Result<AlertRuleOut, Error> {
        self.call(self.scoped(Method::GET, &["alert-rules", &id.to_string()]), Replay::Safe).await
    }

    /// Create an alert rule; the answer has every setting with its default filled in. A
    /// rule the server refuses comes back as `422` naming every bad field.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::alert::{AlertRuleIn, Operator};
    /// let rule = AlertRuleIn {
    ///     name: Some("disk almost full".into()),
    ///     metric_name: Some("disk.used_percent".into()),
    ///     operator: Some(Operator::Gt),
    ///     warning: Some(85.0),
    ///     critical: Some(95.0),
    ///     for_s: Some(300),
    ///     ..AlertRuleIn::default()
    /// };
    /// let created = client.create_alert_rule(&rule).await?;
    /// println!("rule {}", created.id);
    /// # Ok(()) }
    /// ```
    pub async fn create_alert_rule(&self, rule: &AlertRuleIn) -> Result<AlertRuleOut, Error> {
        self.call(self.scoped(Method::POST, &["alert-rules"]).json(rule), Replay::Unsafe).await
    }

    /// Replace an alert rule whole (settings left out return to their defaults).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::alert::AlertRuleIn;
    /// let current = client.alert_rule(3).await?;
    /// let paused = AlertRuleIn {
    ///     name: Some(current.name),
    ///     metric_name: Some(current.metric_name),
    ///     operator: Some(current.operator),
    ///     critical: Some(current.critical),
    ///     enabled: Some(false),
    ///     ..AlertRuleIn::default()
    /// };
    /// client.update_alert_rule(3, &paused).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_alert_rule(&self, id: i64, rule: &AlertRuleIn) -> Result<AlertRuleOut, Error> {
        self.call(self.scoped(Method::PUT, &["alert-rules", &id.to_string()]).json(rule), Replay::Safe).await
    }

    /// Delete an alert rule and its alert instances (the history stays).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// client.delete_alert_rule(3).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_alert_rule(&self, id: i64) -> Result<(), Error> {
        self.call_empty(self.scoped(Method::DELETE, &["alert-rules", &id.to_string()]), Replay::Safe).await
    }

    /// The tenant's alert instances (one per rule and series), or only those in `state`.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::alert::AlertState;
    /// for alert in client.alerts(Some(AlertState::Firing)).await? {
    ///     println!("{} on {:?}: {:?} since {}", alert.rule_name, alert.agent_id, alert.severity, alert.since);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn alerts(&self, state: Option<AlertState>) -> Result<Vec<AlertOut>, Error> {
        let query = AlertsQuery { tenant: self.tenant().map(str::to_owned), state };
        self.call(self.request(Method::GET, &["alerts"]).query(&query), Replay::Safe).await
    }

    /// State changes of the tenant's alerts, filtered by `query` (its tenant defaults to
    /// [`Client::for_tenant`]'s).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::alert::AlertHistoryQuery;
    /// let query = AlertHistoryQuery { rule_id: Some(3), limit: Some(50), ..AlertHistoryQuery::default() };
    /// for event in client.alert_history(&query).await? {
    ///     println!("{} {} -> {}", event.at, event.from, event.to);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn alert_history(&self, query: &AlertHistoryQuery) -> Result<Vec<AlertEventOut>, Error> {
        let mut query = query.clone();
        if query.tenant.is_none() {
            query.tenant = self.tenant().map(str::to_owned);
        }
        self.call(self.request(Method::GET, &["alerts", "history"]).query(&query), Replay::Safe).await
    }

    /// The tenant's notification channels (never their secrets).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// for channel in client.channels().await? {
    ///     println!("{} {:?} {:?}", channel.name, channel.kind, channel.url);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn channels(&self) -> Result<Vec<ChannelOut>, Error> {
        self.call(self.scoped(Method::GET, &["channels"]), Replay::Safe).await
    }

    /// Create a notification channel (a webhook or an email).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::alert::{ChannelIn, ChannelKind};
    /// let hook = ChannelIn {
    ///     name: Some("ops hook".into()),
    ///     kind: Some(ChannelKind::Webhook),
    ///     url: Some("https://hooks.example.com/microdash".into()),
    ///     secret: Some("shared-secret".into()),
    ///     ..ChannelIn::default()
    /// };
    /// let channel = client.create_channel(&hook).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_channel(&self, channel: &ChannelIn) -> Result<ChannelOut, Error> {
        self.call(self.scoped(Method::POST, &["channels"]).json(channel), Replay::Unsafe).await
    }

    /// Replace a notification channel whole.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::alert::{ChannelIn, ChannelKind};
    /// let mail = ChannelIn {
    ///     name: Some("on call".into()),
    ///     kind: Some(ChannelKind::Email),
    ///     to: Some(vec!["oncall@example.com".into()]),
    ///     ..ChannelIn::default()
    /// };
    /// client.update_channel(2, &mail).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_channel(&self, id: i64, channel: &ChannelIn) -> Result<ChannelOut, Error> {
        self.call(self.scoped(Method::PUT, &["channels", &id.to_string()]).json(channel), Replay::Safe).await
    }

    /// Delete a notification channel (rules naming it stop naming it).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// client.delete_channel(2).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_channel(&self, id: i64) -> Result<(), Error> {
        self.call_empty(self.scoped(Method::DELETE, &["channels", &id.to_string()]), Replay::Safe).await
    }

    /// Queue a test notification to a channel; answers the notification's id, whose
    /// delivery [`Client::notifications`] then shows.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// let id = client.test_channel(2).await?;
    /// let log = client.notifications(Some(2), Some(10)).await?;
    /// println!("{:?}", log.iter().find(|n| n.id == id).map(|n| n.status));
    /// # Ok(()) }
    /// ```
    pub async fn test_channel(&self, id: i64) -> Result<i64, Error> {
        let request = self.scoped(Method::POST, &["channels", &id.to_string(), "test"]);
        let queued: TestQueued = self.call(request, Replay::Unsafe).await?;
        Ok(queued.notification_id)
    }

    /// The delivery log, newest first: every channel's, or one channel's; at most `limit`
    /// entries (the server's default 100, at most 1,000).
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// for n in client.notifications(None, Some(20)).await? {
    ///     println!("{} {:?} {:?} after {} attempts", n.id, n.kind, n.status, n.attempts);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn notifications(
        &self,
        channel_id: Option<i64>,
        limit: Option<usize>,
    ) -> Result<Vec<NotificationOut>, Error> {
        let query = NotificationsQuery { tenant: self.tenant(), channel_id, limit };
        self.call(self.request(Method::GET, &["notifications"]).query(&query), Replay::Safe).await
    }
}
