//! Wire types of the alerting API: rules, alert instances and their history, notification
//! channels and the notification log.
//!
//! Inputs ([`AlertRuleIn`], [`ChannelIn`]) are permissive (every field optional) so that
//! [`crate::alert`] can name every problem at once, and refuse unknown fields, so that a
//! misspelt setting (`"threshhold"`) is an error rather than silently ignored. The small
//! enums ([`Operator`], [`AlertState`], ...) are the vocabulary both sides share; their serde
//! form is the API's spelling. Times in answers are RFC 3339 UTC strings with milliseconds,
//! like every other time the API answers ([`crate::metric::format_millis`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How the points of a rule's window become the one value compared with its thresholds.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The latest point (of equal timestamps, the largest value, as rollups choose).
    #[default]
    Last,
    /// The mean.
    Avg,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The sum.
    Sum,
    /// How many points.
    Count,
}

impl Aggregate {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Last => "last",
            Aggregate::Avg => "avg",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Sum => "sum",
            Aggregate::Count => "count",
        }
    }
}

/// How a value is compared with a threshold: `value OP threshold` breaches it.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operator {
    /// Breached above the threshold.
    #[serde(rename = ">")]
    Gt,
    /// Breached at or above the threshold.
    #[serde(rename = ">=")]
    Ge,
    /// Breached below the threshold.
    #[serde(rename = "<")]
    Lt,
    /// Breached at or below the threshold.
    #[serde(rename = "<=")]
    Le,
}

impl Operator {
    /// Whether `value OP threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::Gt => value > threshold,
            Operator::Ge => value >= threshold,
            Operator::Lt => value < threshold,
            Operator::Le => value <= threshold,
        }
    }

    /// Whether larger values are worse (`>` and `>=`).
    pub fn is_upper(self) -> bool {
        matches!(self, Operator::Gt | Operator::Ge)
    }

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an instance does when its series has sent nothing for `no_data_s`.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoDataState {
    /// Go to the `no_data` state; a firing alert is resolved.
    Ok,
    /// Fire at critical severity, with no value.
    Alerting,
    /// Change nothing: the state stays what the last data made it.
    #[default]
    Keep,
}

/// Where an alert instance stands.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold.
    #[default]
    Ok,
    /// The condition holds, but not yet for the rule's `for_s`.
    Pending,
    /// The alert is active and its channels were notified.
    Firing,
    /// The series sent nothing for `no_data_s` and the rule says to treat that as `ok`.
    NoData,
}

impl AlertState {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::NoData => "no_data",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a breach is. Ordered: `Warning < Critical`.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The `warning` threshold is breached.
    Warning,
    /// The `critical` threshold is breached.
    Critical,
}

impl Severity {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body that creates a rule (POST) or replaces one whole (PUT). Only `name`, `metric_name`, `operator` and `critical` are required; see
/// [`crate::alert::AlertRule`] for what each setting means and its default. Unknown fields
/// are refused.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleIn {
    /// Display name, also the Alertmanager `alertname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The metric the rule watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Only this agent's series; every agent's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Only series carrying every one of these tags (exact values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// `last` (default), `avg`, `min`, `max`, `sum` or `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
    /// Seconds of points the aggregate covers; 0 (default) is the latest point only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<i64>,
    /// `>`, `>=`, `<` or `<=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Operator>,
    /// The critical threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
    /// An optional warning threshold, on the less severe side of `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    /// Seconds the condition must hold before the alert fires (default 0: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_s: Option<i64>,
    /// Seconds a firing alert stays firing after its condition stops holding (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for_s: Option<i64>,
    /// Hysteresis: a firing alert's condition holds while `value OP recovery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<f64>,
    /// Seconds without any point after which `no_data_state` applies (default 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_s: Option<i64>,
    /// `ok`, `alerting` or `keep` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_state: Option<NoDataState>,
    /// Seconds between reminders while firing (default 0: notify on changes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval_s: Option<i64>,
    /// Ids of the channels to notify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<i64>>,
    /// Extra labels sent with every notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Notification text template, such as `{{agent_id}} cpu at {{value}} %`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Whether the rule is evaluated (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A rule as the API answers it: every setting with its default filled in.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRuleOut {
    /// Database id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The metric watched.
    pub metric_name: String,
    /// Only this agent, or every agent when `null`.
    pub agent_id: Option<String>,
    /// Tags a series must carry.
    pub tags: BTreeMap<String, String>,
    /// How the window's points are aggregated.
    pub aggregate: Aggregate,
    /// Seconds the aggregate covers; 0 is the latest point only.
    pub window_s: u32,
    /// The comparison.
    pub operator: Operator,
    /// The critical threshold.
    pub critical: f64,
    /// The warning threshold, if any.
    pub warning: Option<f64>,
    /// Seconds the condition must hold before firing.
    pub for_s: u32,
    /// Seconds a firing alert stays firing after its condition stops holding.
    pub keep_firing_for_s: u32,
    /// The hysteresis threshold, if one was set (else the least severe threshold applies).
    pub recovery: Option<f64>,
    /// Seconds without points before `no_data_state` applies; 0 is never.
    pub no_data_s: u32,
    /// What no data means.
    pub no_data_state: NoDataState,
    /// Seconds between reminders while firing; 0 is none.
    pub repeat_interval_s: u32,
    /// Channels notified.
    pub channels: Vec<i64>,
    /// Extra notification labels.
    pub labels: BTreeMap<String, String>,
    /// The summary template, if one was set.
    pub summary: Option<String>,
    /// Whether the rule is evaluated.
    pub enabled: bool,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Last change, RFC 3339.
    pub updated_at: String,
}

/// One alert instance (a rule applied to one series) in the list of alerts.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertOut {
    /// The rule's id.
    pub rule_id: i64,
    /// The rule's name.
    pub rule_name: String,
    /// The series' agent, `null` when it has none.
    pub agent_id: Option<String>,
    /// The series' tags.
    pub tags: BTreeMap<String, String>,
    /// Where the instance stands.
    pub state: AlertState,
    /// The breached severity while pending or firing, else `null`.
    pub severity: Option<Severity>,
    /// The latest evaluated value; `null` when there was none (no data).
    pub value: Option<f64>,
    /// When the instance entered `state`, RFC 3339.
    pub since: String,
}

/// An alert transition as the live stream sends it (`event: alert`): the instance as it is
/// now, and the state it left. Stream clients keep their list of alerts current with it;
/// after a reconnect they read `GET /api/v1/alerts` again, as alert events are not replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertStreamEvent {
    /// The instance after the transition.
    #[serde(flatten)]
    pub alert: AlertOut,
    /// The state it left (equal to `state` for a severity change while firing).
    pub from: AlertState,
}

/// One state change in the alert history. A severity change while firing is
/// recorded too, with `from` and `to` both `firing`. `state` repeats `to` and `since`
/// repeats `at`, so an entry reads like an [`AlertOut`] at that moment.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEventOut {
    /// Database id.
    pub id: i64,
    /// The rule's id.
    pub rule_id: i64,
    /// The rule's name.
    pub rule_name: String,
    /// The series' agent.
    pub agent_id: Option<String>,
    /// The series' tags.
    pub tags: BTreeMap<String, String>,
    /// The state entered (equal to `to`).
    pub state: AlertState,
    /// The severity after the change.
    pub severity: Option<Severity>,
    /// The value that caused it; `null` for no data.
    pub value: Option<f64>,
    /// When the state was entered (equal to `at`), RFC 3339.
    pub since: String,
    /// The state left.
    pub from: AlertState,
    /// The state entered.
    pub to: AlertState,
    /// When it happened, RFC 3339.
    pub at: String,
}

/// Query string of the list of alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertsQuery {
    /// The tenant (its slug); see [`super::MetricsQuery::tenant`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Only instances in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AlertState>,
}

/// Query string of the alert history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertHistoryQuery {
    /// The tenant (its slug); see [`super::MetricsQuery::tenant`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Inclusive start: RFC 3339 or Unix seconds, read with [`super::TimestampIn::from_query`]
    /// as in [`super::MetricsQuery`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Exclusive end: RFC 3339 or Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Only this rule's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<i64>,
    /// Only this agent's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Most events to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// What kind of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// An HTTP POST of a JSON body.
    Webhook,
    /// An email.
    Email,
}

/// The JSON body a webhook channel posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// microdash's own body: one alert, flat fields.
    #[default]
    Microdash,
    /// Alertmanager's webhook body (version 4), for receivers written for Prometheus.
    Alertmanager,
}

/// Body that creates (POST) or replaces (PUT) a notification channel:
/// `{"name", "kind": "webhook", "url", "secret", "format"}` or
/// `{"name", "kind": "email", "to": [...]}`. Unknown fields are refused.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelIn {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `webhook` or `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ChannelKind>,
    /// Webhooks: the `http` or `https` URL to POST to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Webhooks: a shared secret for the receiver to check deliveries with. Write-only: no
    /// answer shows it again (so a PUT that should keep it needs the HTTP layer to carry
    /// the stored one over; [`ChannelOut::has_secret`] tells an editor one is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Webhooks: `microdash` (default) or `alertmanager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<WebhookFormat>,
    /// Email: the recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
}

impl fmt::Debug for ChannelIn {
    // Hand-written so that logging a request never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelIn")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("has_secret", &self.secret.is_some())
            .field("format", &self.format)
            .field("to", &self.to)
            .finish()
    }
}

/// A channel as the API answers it. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelOut {
    /// Database id, what rules list in `channels`.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// `webhook` or `email`.
    pub kind: ChannelKind,
    /// Webhooks: the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Webhooks: the body format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<WebhookFormat>,
    /// Webhooks: whether a secret is set (the secret itself is never shown).
    pub has_secret: bool,
    /// Email: the recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// Why a notification was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    /// The alert started firing, or its severity changed while firing.
    Firing,
    /// The alert stopped firing.
    Resolved,
    /// A reminder that the alert is still firing (`repeat_interval_s`).
    Repeat,
    /// A test message asked for through the API; no rule is involved.
    Test,
}

impl NotificationKind {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Firing => "firing",
            NotificationKind::Resolved => "resolved",
            NotificationKind::Repeat => "repeat",
            NotificationKind::Test => "test",
        }
    }
}

/// Where a notification's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// Not delivered yet; attempts continue.
    Pending,
    /// Delivered (a 2xx answer, or accepted by the mail server).
    Sent,
    /// Given up on after its last attempt.
    Failed,
}

/// One entry of the notification log: a notification to one channel and its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationOut {
    /// Database id.
    pub id: i64,
    /// The channel it goes to.
    pub channel_id: i64,
    /// The rule that caused it; `null` for test messages.
    pub rule_id: Option<i64>,
    /// The alert instance's agent, if any.
    pub agent_id: Option<String>,
    /// Why it was sent.
    pub kind: NotificationKind,
    /// Delivery status.
    pub status: NotificationStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The latest attempt's error, if it failed.
    pub last_error: Option<String>,
    /// Webhooks: the HTTP status of the latest attempt.
    pub http_status: Option<u16>,
    /// When it was queued, RFC 3339.
    pub created_at: String,
    /// When it was delivered, RFC 3339.
    pub sent_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_spelt_as_the_api_documents() {
        fn json<T: Serialize>(value: T) -> String {
            serde_json::to_string(&value).unwrap_or_default()
        }
        assert_eq!(json([Operator::Gt, Operator::Ge, Operator::Lt, Operator::Le]), r#"[">",">=","<","<="]"#);
        assert_eq!(
            json([AlertState::Ok, AlertState::Pending, AlertState::Firing, AlertState::NoData]),
            r#"["ok","pending","firing","no_data"]"#
        );
        assert_eq!(json([Severity::Warning, Severity::Critical]), r#"["warning","critical"]"#);
        assert_eq!(json([NoDataState::Ok, NoDataState::Alerting, NoDataState::Keep]), r#"["ok","alerting","keep"]"#);
        let aggregates =
            [Aggregate::Last, Aggregate::Avg, Aggregate::Min, Aggregate::Max, Aggregate::Sum, Aggregate::Count];
        assert_eq!(json(aggregates), r#"["last","avg","min","max","sum","count"]"#);
        for aggregate in aggregates {
            assert_eq!(json(aggregate), format!("\"{}\"", aggregate.as_str()));
        }
        assert_eq!(json([WebhookFormat::Microdash, WebhookFormat::Alertmanager]), r#"["microdash","alertmanager"]"#);
        assert_eq!(
            json([
                NotificationKind::Firing,
                NotificationKind::Resolved,
                NotificationKind::Repeat,
                NotificationKind::Test
            ]),
            r#"["firing","resolved","repeat","test"]"#
        );
        assert_eq!(
            json([NotificationStatus::Pending, NotificationStatus::Sent, NotificationStatus::Failed]),
            r#"["pending","sent","failed"]"#
        );
        assert!(Severity::Warning < Severity::Critical);
    }

    #[test]
    fn a_misspelt_rule_field_is_refused_by_name() {
        let err = serde_json::from_str::<AlertRuleIn>(r#"{"name":"x","threshhold":90}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `threshhold`"), "{err}");
        let err = serde_json::from_str::<ChannelIn>(r#"{"name":"x","kind":"webhook","URL":"http://a"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `URL`"), "{err}");
    }

    #[test]
    fn a_channel_never_debug_prints_its_secret() {
        let channel = ChannelIn { secret: Some("s3cr3t".into()), ..ChannelIn::default() };
        let text = format!("{channel:?}");
        assert!(!text.contains("s3cr3t") && text.contains("has_secret: true"), "{text}");
    }

    #[test]
    fn an_alerts_query_names_a_state() {
        let query: AlertsQuery = serde_json::from_str(r#"{"state":"no_data"}"#).unwrap_or_default();
        assert_eq!(query.state, Some(AlertState::NoData));
    }
}
