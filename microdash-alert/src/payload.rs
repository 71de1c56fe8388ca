//! What a notification says: the webhook bodies (microdash's own and Alertmanager's webhook
//! version 4) and the email text, built from one [`Alert`], and [`Message`], what one channel
//! sends, as the store keeps it. The notifiers (`deliver`) only send them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use microdash_core::alert::{AlertRule, Channel, NamedChannel};
use microdash_core::api::alert::{AlertState, ChannelKind, NotificationKind, Severity, WebhookFormat};
use microdash_core::metric::format_millis;
use serde::{Deserialize, Serialize};

use crate::matcher::InstanceKey;
use crate::state::Notify;
use crate::template::{self, TemplateContext, format_value};

/// `endsAt` of a firing alert in Alertmanager's bodies: Go's zero time.
pub const ALERTMANAGER_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Everything one notification is about.
#[derive(Debug, Clone, Copy)]
pub struct Alert<'a> {
    /// The tenant's slug.
    pub tenant: &'a str,
    /// The rule's id.
    pub rule_id: i64,
    /// The rule.
    pub rule: &'a AlertRule,
    /// The instance's series.
    pub instance: &'a InstanceKey,
    /// What the state machine asked to notify.
    pub notify: &'a Notify,
    /// The dashboard's public base URL, for links (`https://dash.example.com`); empty when
    /// unknown, and then no links are given.
    pub external_url: &'a str,
}

impl Alert<'_> {
    /// Whether the alert is still firing (a firing or repeat notification).
    pub fn is_firing(&self) -> bool {
        self.notify.kind != NotificationKind::Resolved
    }

    /// The threshold of the notified severity.
    pub fn threshold(&self) -> f64 {
        self.rule.threshold(self.notify.severity).unwrap_or(self.rule.critical)
    }

    /// The rendered summary (see [`template::summary`]).
    pub fn summary(&self) -> String {
        let state = if self.is_firing() { AlertState::Firing } else { AlertState::Ok };
        template::summary(&TemplateContext {
            rule: self.rule,
            instance: self.instance,
            state,
            severity: Some(self.notify.severity),
            value: self.notify.value,
        })
    }

    /// The alert's labels: the series' tags, the rule's `labels` over them, and over both
    /// the ones microdash sets (`alertname` is the rule's name; [`RESERVED_LABELS`]).
    ///
    /// [`RESERVED_LABELS`]: microdash_core::alert::RESERVED_LABELS
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.instance.tags.clone();
        labels.extend(self.rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.insert("alertname".into(), self.rule.name.clone());
        labels.insert("tenant".into(), self.tenant.to_owned());
        labels.insert("rule_id".into(), self.rule_id.to_string());
        labels.insert("metric_name".into(), self.rule.metric_name.clone());
        labels.insert("severity".into(), self.notify.severity.as_str().to_owned());
        match &self.instance.agent_id {
            Some(agent) => labels.insert("agent_id".into(), agent.clone()),
            None => labels.remove("agent_id"),
        };
        labels
    }

    /// The dashboard page of the instance's agent (or of the tenant without an agent); empty
    /// without an `external_url`.
    pub fn dashboard_url(&self) -> String {
        if self.external_url.is_empty() {
            return String::new();
        }
        let base = self.external_url.trim_end_matches('/');
        match &self.instance.agent_id {
            // Slugs and agent ids are URL-safe by validation.
            Some(agent) => format!("{base}/#/t/{}/a/{agent}", self.tenant),
            None => format!("{base}/#/t/{}", self.tenant),
        }
    }

    fn status(&self) -> WebhookStatus {
        if self.is_firing() { WebhookStatus::Firing } else { WebhookStatus::Resolved }
    }

    fn status_word(&self) -> &'static str {
        match self.notify.kind {
            NotificationKind::Resolved => "resolved",
            NotificationKind::Repeat => "still firing",
            _ => "firing",
        }
    }
}

/// `firing` or `resolved`, in both webhook bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    /// Firing (also for reminders).
    Firing,
    /// Resolved.
    Resolved,
}

/// The `microdash` webhook body: one alert, flat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MicrodashBody {
    /// `firing` or `resolved`.
    pub status: WebhookStatus,
    /// Why it was sent: `firing`, `resolved` or `repeat`.
    pub kind: NotificationKind,
    /// The tenant's slug.
    pub tenant: String,
    /// The rule's id.
    pub rule_id: i64,
    /// The rule's name.
    pub rule_name: String,
    /// The metric watched.
    pub metric_name: String,
    /// The series' agent.
    pub agent_id: Option<String>,
    /// The series' tags.
    pub tags: BTreeMap<String, String>,
    /// The rule's extra labels.
    pub labels: BTreeMap<String, String>,
    /// The severity; for `resolved`, the one it had.
    pub severity: Severity,
    /// The value; `null` for no data.
    pub value: Option<f64>,
    /// The comparison.
    pub operator: String,
    /// The threshold of `severity`.
    pub threshold: f64,
    /// When the alert started firing, RFC 3339.
    pub started_at: String,
    /// When it was resolved, RFC 3339; `null` while firing.
    pub ended_at: Option<String>,
    /// The rendered summary.
    pub summary: String,
    /// The dashboard page of the agent; absent without an external URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Build the `microdash` body.
pub fn microdash_body(alert: &Alert<'_>) -> MicrodashBody {
    let url = alert.dashboard_url();
    MicrodashBody {
        status: alert.status(),
        kind: alert.notify.kind,
        tenant: alert.tenant.to_owned(),
        rule_id: alert.rule_id,
        rule_name: alert.rule.name.clone(),
        metric_name: alert.rule.metric_name.clone(),
        agent_id: alert.instance.agent_id.clone(),
        tags: alert.instance.tags.clone(),
        labels: alert.rule.labels.clone(),
        severity: alert.notify.severity,
        value: alert.notify.value,
        operator: alert.rule.operator.as_str().to_owned(),
        threshold: alert.threshold(),
        started_at: format_millis(alert.notify.started_at_ms),
        ended_at: alert.notify.ended_at_ms.map(format_millis),
        summary: alert.summary(),
        url: (!url.is_empty()).then_some(url),
    }
}

/// Alertmanager's webhook body (version 4), for receivers written for Prometheus. Each
/// message carries one alert and forms a group of its own (as `group_by: ['...']` would).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerBody {
    /// Always `"4"`.
    pub version: String,
    /// Identifies the group: its labels, `{}:{alertname="...", ...}`.
    pub group_key: String,
    /// Alerts left out of the message: always 0.
    pub truncated_alerts: u64,
    /// `firing` or `resolved`.
    pub status: WebhookStatus,
    /// The receiver's name: the channel's.
    pub receiver: String,
    /// The labels the group is formed by: all of the alert's.
    pub group_labels: BTreeMap<String, String>,
    /// Labels all alerts share: the alert's.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations all alerts share: the alert's.
    pub common_annotations: BTreeMap<String, String>,
    /// The dashboard's base URL.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts: exactly one.
    pub alerts: Vec<AlertmanagerAlert>,
}

/// One alert in an [`AlertmanagerBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// `firing` or `resolved`.
    pub status: WebhookStatus,
    /// `alertname` and the rest of [`Alert::labels`].
    pub labels: BTreeMap<String, String>,
    /// `summary`.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing, RFC 3339.
    pub starts_at: String,
    /// When it was resolved; [`ALERTMANAGER_ZERO_TIME`] while firing.
    pub ends_at: String,
    /// Link to the dashboard page of the agent; empty without an external URL.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's fingerprint of the labels (see [`fingerprint`]).
    pub fingerprint: String,
}

/// Build the Alertmanager body, naming `receiver` (the channel's name).
pub fn alertmanager_body(alert: &Alert<'_>, receiver: &str) -> AlertmanagerBody {
    let labels = alert.labels();
    let annotations = BTreeMap::from([("summary".to_owned(), alert.summary())]);
    let status = alert.status();
    let group_key =
        format!("{{}}:{{{}}}", labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(", "));
    AlertmanagerBody {
        version: "4".into(),
        group_key,
        truncated_alerts: 0,
        status,
        receiver: receiver.to_owned(),
        group_labels: labels.clone(),
        common_labels: labels.clone(),
        common_annotations: annotations.clone(),
        external_url: alert.external_url.to_owned(),
        alerts: vec![AlertmanagerAlert {
            status,
            fingerprint: fingerprint(&labels),
            labels,
            annotations,
            starts_at: format_millis(alert.notify.started_at_ms),
            ends_at: alert.notify.ended_at_ms.map_or_else(|| ALERTMANAGER_ZERO_TIME.to_owned(), format_millis),
            generator_url: alert.dashboard_url(),
        }],
    }
}

/// Alertmanager's fingerprint of a label set (Prometheus' `LabelSet.Fingerprint`): 64-bit
/// FNV-1a over each label's name and value, in name order, each followed by the byte 0xff,
/// as 16 hex digits. Receivers deduplicate by it, so it is stable for an instance.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    format!("{hash:016x}")
}

/// An email's subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// One line: `[FIRING:critical] cpu high on web-1`.
    pub subject: String,
    /// The summary, then one line per fact, then the dashboard link.
    pub body: String,
}

/// Build the email.
pub fn email(alert: &Alert<'_>) -> EmailMessage {
    let rule = alert.rule;
    let notify = alert.notify;
    let status = match notify.kind {
        NotificationKind::Resolved => "RESOLVED".to_owned(),
        _ => format!("FIRING:{}", notify.severity),
    };
    let mut subject = format!("[{status}] {}", rule.name);
    if let Some(agent) = &alert.instance.agent_id {
        let _ = write!(subject, " on {agent}");
    }
    if notify.kind == NotificationKind::Repeat {
        subject.push_str(" (still firing)");
    }
    let pairs =
        |map: &BTreeMap<String, String>| map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    let mut body = alert.summary();
    body.push_str("\n\n");
    let mut line = |name: &str, value: &str| {
        if !value.is_empty() {
            let _ = writeln!(body, "{name:<10} {value}");
        }
    };
    line("Status:", &format!("{} ({})", alert.status_word(), notify.severity));
    line("Rule:", &format!("{} (#{})", rule.name, alert.rule_id));
    line("Tenant:", alert.tenant);
    line("Metric:", &rule.metric_name);
    line("Agent:", alert.instance.agent_id.as_deref().unwrap_or_default());
    line("Tags:", &pairs(&alert.instance.tags));
    line("Value:", &notify.value.map_or_else(|| "no data".to_owned(), format_value));
    line("Threshold:", &format!("{} {}", rule.operator, format_value(alert.threshold())));
    line("Started:", &format_millis(notify.started_at_ms));
    line("Ended:", &notify.ended_at_ms.map(format_millis).unwrap_or_default());
    line("Labels:", &pairs(&rule.labels));
    let url = alert.dashboard_url();
    if !url.is_empty() {
        let _ = write!(body, "\n{url}\n");
    }
    EmailMessage { subject, body }
}

/// One notification ready to send to one channel: what the store keeps (as JSON, its serde
/// form `{"kind": "webhook", "body": "..."}` or `{"kind": "email", "subject", "body"}`) until
/// it is delivered, so every retry sends the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Message {
    /// A webhook's body.
    Webhook {
        /// The JSON text to POST, sent byte for byte (and signed as such).
        body: String,
    },
    /// An email.
    Email {
        /// The subject line.
        subject: String,
        /// The plain-text body.
        body: String,
    },
}

impl Message {
    /// The message `channel` sends about `alert`: the body of the channel's webhook format
    /// (the Alertmanager body names the channel as its `receiver`), or the email text.
    pub fn for_channel(channel: &NamedChannel, alert: &Alert<'_>) -> Message {
        match &channel.channel {
            Channel::Webhook { format: WebhookFormat::Microdash, .. } => {
                Message::Webhook { body: to_json(&microdash_body(alert)) }
            }
            Channel::Webhook { format: WebhookFormat::Alertmanager, .. } => {
                Message::Webhook { body: to_json(&alertmanager_body(alert, &channel.name)) }
            }
            Channel::Email { .. } => {
                let EmailMessage { subject, body } = email(alert);
                Message::Email { subject, body }
            }
        }
    }

    /// The kind of channel the message is for.
    pub fn kind(&self) -> ChannelKind {
        match self {
            Message::Webhook { .. } => ChannelKind::Webhook,
            Message::Email { .. } => ChannelKind::Email,
        }
    }
}

fn to_json<T: Serialize>(body: &T) -> String {
    // The bodies are structs of strings, numbers and string-keyed maps: serde_json fails only
    // for non-string map keys or a failing `Serialize` impl, and they have neither (a NaN
    // value becomes `null`).
    serde_json::to_string(body).expect("webhook bodies always serialize")
}

#[cfg(test)]
mod tests {
    use microdash_core::api::alert::{AlertRuleIn, Operator};
    use serde_json::json;

    use super::*;

    const STARTED: i64 = 1_700_000_000_000;

    fn rule() -> AlertRule {
        AlertRuleIn {
            name: Some("cpu high".into()),
            metric_name: Some("cpu.usage".into()),
            operator: Some(Operator::Gt),
            critical: Some(90.0),
            warning: Some(80.0),
            labels: Some(BTreeMap::from([("team".into(), "ops".into())])),
            ..AlertRuleIn::default()
        }
        .validate()
        .unwrap()
    }

    fn instance() -> InstanceKey {
        InstanceKey { agent_id: Some("web-1".into()), tags: BTreeMap::from([("core".into(), "all".into())]) }
    }

    fn firing() -> Notify {
        Notify {
            kind: NotificationKind::Firing,
            severity: Severity::Critical,
            value: Some(95.5),
            started_at_ms: STARTED,
            ended_at_ms: None,
        }
    }

    fn resolved() -> Notify {
        Notify { kind: NotificationKind::Resolved, value: Some(42.0), ended_at_ms: Some(STARTED + 90_500), ..firing() }
    }

    fn alert<'a>(rule: &'a AlertRule, instance: &'a InstanceKey, notify: &'a Notify) -> Alert<'a> {
        Alert { tenant: "acme", rule_id: 7, rule, instance, notify, external_url: "https://dash.example.com/" }
    }

    #[test]
    fn the_microdash_body_has_the_documented_fields() {
        let (rule, instance) = (rule(), instance());
        let body = serde_json::to_value(microdash_body(&alert(&rule, &instance, &firing()))).unwrap();
        assert_eq!(
            body,
            json!({
                "status": "firing",
                "kind": "firing",
                "tenant": "acme",
                "rule_id": 7,
                "rule_name": "cpu high",
                "metric_name": "cpu.usage",
                "agent_id": "web-1",
                "tags": {"core": "all"},
                "labels": {"team": "ops"},
                "severity": "critical",
                "value": 95.5,
                "operator": ">",
                "threshold": 90.0,
                "started_at": "2023-11-14T22:13:20.000Z",
                "ended_at": null,
                "summary": "cpu high: cpu.usage on web-1 is 95.5 (critical > 90)",
                "url": "https://dash.example.com/#/t/acme/a/web-1",
            })
        );
        let body = serde_json::to_value(microdash_body(&alert(&rule, &instance, &resolved()))).unwrap();
        assert_eq!((&body["status"], &body["kind"]), (&json!("resolved"), &json!("resolved")));
        assert_eq!(body["ended_at"], "2023-11-14T22:14:50.500Z");
        assert_eq!(body["severity"], "critical");
        let repeat = Notify { kind: NotificationKind::Repeat, ..firing() };
        let body = serde_json::to_value(microdash_body(&alert(&rule, &instance, &repeat))).unwrap();
        assert_eq!((&body["status"], &body["kind"]), (&json!("firing"), &json!("repeat")));
        let notify = firing();
        let no_link = Alert { external_url: "", ..alert(&rule, &instance, &notify) };
        assert!(serde_json::to_value(microdash_body(&no_link)).unwrap().get("url").is_none());
    }

    #[test]
    fn the_alertmanager_body_is_webhook_version_4() {
        let (rule, instance) = (rule(), instance());
        let body = serde_json::to_value(alertmanager_body(&alert(&rule, &instance, &firing()), "ops-hook")).unwrap();
        let labels = json!({
            "agent_id": "web-1",
            "alertname": "cpu high",
            "core": "all",
            "metric_name": "cpu.usage",
            "rule_id": "7",
            "severity": "critical",
            "team": "ops",
            "tenant": "acme",
        });
        let fingerprint = body["alerts"][0]["fingerprint"].clone();
        assert_eq!(
            body,
            json!({
                "version": "4",
                "groupKey": r#"{}:{agent_id="web-1", alertname="cpu high", core="all", metric_name="cpu.usage", rule_id="7", severity="critical", team="ops", tenant="acme"}"#,
                "truncatedAlerts": 0,
                "status": "firing",
                "receiver": "ops-hook",
                "groupLabels": labels,
                "commonLabels": labels,
                "commonAnnotations": {"summary": "cpu high: cpu.usage on web-1 is 95.5 (critical > 90)"},
                "externalURL": "https://dash.example.com/",
                "alerts": [{
                    "status": "firing",
                    "labels": labels,
                    "annotations": {"summary": "cpu high: cpu.usage on web-1 is 95.5 (critical > 90)"},
                    "startsAt": "2023-11-14T22:13:20.000Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "https://dash.example.com/#/t/acme/a/web-1",
                    "fingerprint": fingerprint,
                }],
            })
        );
        let resolved = serde_json::to_value(alertmanager_body(&alert(&rule, &instance, &resolved()), "x")).unwrap();
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(resolved["alerts"][0]["endsAt"], "2023-11-14T22:14:50.500Z");
        // The same instance keeps its fingerprint when it resolves.
        assert_eq!(resolved["alerts"][0]["fingerprint"], fingerprint);
    }

    #[test]
    fn labels_set_by_microdash_win_over_tags_and_rule_labels_over_tags() {
        let rule = rule();
        let instance = InstanceKey {
            agent_id: None,
            tags: BTreeMap::from([
                ("severity".into(), "tag".into()),
                ("team".into(), "tag".into()),
                ("agent_id".into(), "tag".into()),
            ]),
        };
        let labels = alert(&rule, &instance, &firing()).labels();
        assert_eq!(labels["severity"], "critical");
        assert_eq!(labels["team"], "ops");
        assert!(!labels.contains_key("agent_id"), "{labels:?}");
        assert_eq!(alert(&rule, &instance, &firing()).dashboard_url(), "https://dash.example.com/#/t/acme");
    }

    #[test]
    fn fingerprints_match_prometheus() {
        // FNV-1a 64 of the empty input is its offset basis; of "a" a published test vector.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        hash ^= u64::from(b'a');
        hash = hash.wrapping_mul(0x100_0000_01b3);
        assert_eq!(hash, 0xaf63_dc4c_8601_ec8c);
        // Label framing: name, 0xff, value, 0xff, in name order.
        let one = BTreeMap::from([("a".to_owned(), String::new())]);
        let mut expected = 0xaf63_dc4c_8601_ec8c_u64;
        for byte in [0xff_u8, 0xff] {
            expected ^= u64::from(byte);
            expected = expected.wrapping_mul(0x100_0000_01b3);
        }
        assert_eq!(fingerprint(&one), format!("{expected:016x}"));
        let ab = BTreeMap::from([("b".to_owned(), "2".to_owned()), ("a".to_owned(), "1".to_owned())]);
        let ba = BTreeMap::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
        assert_eq!(fingerprint(&ab), fingerprint(&ba));
        assert_ne!(fingerprint(&ab), fingerprint(&BTreeMap::from([("a".to_owned(), "12".to_owned())])));
    }

    #[test]
    fn each_channel_gets_its_message_in_the_stored_form() {
        let (rule, instance, notify) = (rule(), instance(), firing());
        let alert = alert(&rule, &instance, &notify);
        let named = |name: &str, channel| NamedChannel { name: name.into(), channel };
        let webhook = |format| Channel::Webhook { url: "https://hooks.example.com/x".into(), secret: None, format };

        let message = Message::for_channel(&named("hook", webhook(WebhookFormat::Microdash)), &alert);
        let Message::Webhook { body } = &message else { panic!("{message:?}") };
        assert_eq!(serde_json::from_str::<MicrodashBody>(body).unwrap(), microdash_body(&alert));
        assert_eq!(message.kind(), ChannelKind::Webhook);

        let message = Message::for_channel(&named("prom", webhook(WebhookFormat::Alertmanager)), &alert);
        let Message::Webhook { body } = &message else { panic!("{message:?}") };
        assert_eq!(serde_json::from_str::<AlertmanagerBody>(body).unwrap(), alertmanager_body(&alert, "prom"));

        let message =
            Message::for_channel(&named("mail", Channel::Email { to: vec!["ops@example.com".into()] }), &alert);
        let EmailMessage { subject, body } = email(&alert);
        assert_eq!(message, Message::Email { subject: subject.clone(), body: body.clone() });
        assert_eq!(message.kind(), ChannelKind::Email);

        // What the store keeps, and reads back unchanged.
        let stored = serde_json::to_value(&message).unwrap();
        assert_eq!(stored, json!({"kind": "email", "subject": subject, "body": body}));
        assert_eq!(serde_json::from_value::<Message>(stored).unwrap(), message);
        let stored = serde_json::to_string(&Message::Webhook { body: "{ }".into() }).unwrap();
        assert_eq!(stored, r#"{"kind":"webhook","body":"{ }"}"#);
    }

    #[test]
    fn emails_have_a_subject_line_and_the_facts() {
        let (rule, instance) = (rule(), instance());
        let sent = email(&alert(&rule, &instance, &firing()));
        assert_eq!(sent.subject, "[FIRING:critical] cpu high on web-1");
        assert_eq!(
            sent.body,
            "cpu high: cpu.usage on web-1 is 95.5 (critical > 90)\n\
             \n\
             Status:    firing (critical)\n\
             Rule:      cpu high (#7)\n\
             Tenant:    acme\n\
             Metric:    cpu.usage\n\
             Agent:     web-1\n\
             Tags:      core=all\n\
             Value:     95.5\n\
             Threshold: > 90\n\
             Started:   2023-11-14T22:13:20.000Z\n\
             Labels:    team=ops\n\
             \n\
             https://dash.example.com/#/t/acme/a/web-1\n"
        );
        let resolved = email(&alert(&rule, &instance, &resolved()));
        assert_eq!(resolved.subject, "[RESOLVED] cpu high on web-1");
        assert!(resolved.body.contains("Ended:     2023-11-14T22:14:50.500Z\n"), "{}", resolved.body);
        assert!(resolved.body.contains("Status:    resolved (critical)\n"), "{}", resolved.body);
        let repeat = Notify { kind: NotificationKind::Repeat, value: None, ..firing() };
        let repeat = email(&alert(&rule, &InstanceKey::default(), &repeat));
        assert_eq!(repeat.subject, "[FIRING:critical] cpu high (still firing)");
        assert!(repeat.body.starts_with("cpu high: cpu.usage has no data\n"), "{}", repeat.body);
        assert!(repeat.body.contains("Value:     no data\n") && !repeat.body.contains("Agent:"), "{}", repeat.body);
    }
}
