//! Alert rules and notification channels: the validated domain types and the validation that
//! turns [`crate::api::alert`] input into them.
//!
//! An [`AlertRule`] is what the evaluator (`microdash-alert`) may rely on: thresholds that
//! are finite and ordered (a warning on the less severe side of critical, a recovery
//! threshold on the ok side of both), bounded durations, names and tags that series can
//! actually carry. Validation reports every problem at once, each naming its field, the way
//! [`crate::metric::validate`] does for metrics; [`parse_rule`] and [`parse_channel`] also
//! name every field of the wrong type when a body does not deserialise.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::FieldError;
use crate::api::alert::{
    Aggregate, AlertRuleIn, AlertRuleOut, ChannelIn, ChannelKind, ChannelOut, NoDataState, Operator, Severity,
    WebhookFormat,
};
use crate::metric::{Limits, check_identifier, check_tags, format_millis};

/// Longest rule or channel name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest summary template, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1000;
/// Longest aggregation window: one day.
pub const MAX_WINDOW_S: u32 = 86_400;
/// Longest `for_s`, `keep_firing_for_s`, `no_data_s` and `repeat_interval_s`: seven days.
pub const MAX_DURATION_S: u32 = 7 * 86_400;
/// Most channels one rule notifies.
pub const MAX_CHANNELS: usize = 20;
/// Most recipients of one email channel.
pub const MAX_RECIPIENTS: usize = 20;
/// Longest webhook URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest webhook secret, in bytes.
pub const MAX_SECRET_BYTES: usize = 512;
/// Labels every notification sets itself, so a rule may not set them in `labels`.
pub const RESERVED_LABELS: &[&str] = &["alertname", "agent_id", "metric_name", "rule_id", "severity", "tenant"];

/// A validated alert rule.
///
/// The rule watches every series of `metric_name` that matches `agent_id` (when set) and
/// carries each of `tags`; each such series is one alert instance with its own state. Its
/// serde form is how the store persists it, not the API's ([`AlertRule::to_out`] is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Display name, non-empty, without control characters.
    pub name: String,
    /// The metric watched.
    pub metric_name: String,
    /// Only this agent's series; every agent's when `None`.
    pub agent_id: Option<String>,
    /// Exact-match tag matchers: a series must carry every one of them.
    pub tags: BTreeMap<String, String>,
    /// How the window's points become one value.
    pub aggregate: Aggregate,
    /// Seconds of points the aggregate covers, `(now - window_s, now]`. 0 means the latest
    /// point only, for every aggregate (the average of one point is that point).
    pub window_s: u32,
    /// `value OP threshold` breaches the threshold.
    pub operator: Operator,
    /// The critical threshold; finite.
    pub critical: f64,
    /// The warning threshold; finite and on the less severe side of `critical`.
    pub warning: Option<f64>,
    /// Seconds the condition must hold continuously before the alert fires; 0 fires at once.
    pub for_s: u32,
    /// Seconds a firing alert stays firing (and a critical one critical) after its condition
    /// stops holding; damps flapping.
    pub keep_firing_for_s: u32,
    /// Hysteresis: while firing, the condition holds as long as `value OP recovery`. On the ok
    /// side of the least severe threshold; that threshold when `None`.
    pub recovery: Option<f64>,
    /// Seconds without any point after which `no_data_state` applies; 0 never.
    pub no_data_s: u32,
    /// What no data means.
    pub no_data_state: NoDataState,
    /// Seconds between reminders while firing; 0 notifies on changes only.
    pub repeat_interval_s: u32,
    /// Channel ids, distinct. That they exist is the store's to check.
    pub channels: Vec<i64>,
    /// Extra labels for notifications; none of [`RESERVED_LABELS`].
    pub labels: BTreeMap<String, String>,
    /// Summary template (see `microdash_alert::template`); a default text when `None`.
    pub summary: Option<String>,
    /// Disabled rules are not evaluated; their instances return to ok.
    pub enabled: bool,
}

impl AlertRule {
    /// The threshold of `severity`; `None` for a warning the rule does not have.
    pub fn threshold(&self, severity: Severity) -> Option<f64> {
        match severity {
            Severity::Critical => Some(self.critical),
            Severity::Warning => self.warning,
        }
    }

    /// The least severe level the rule has and its threshold: the warning if there is one.
    pub fn least_severe(&self) -> (Severity, f64) {
        match self.warning {
            Some(warning) => (Severity::Warning, warning),
            None => (Severity::Critical, self.critical),
        }
    }

    /// The threshold a firing alert's condition is held by: `recovery`, or the least severe
    /// threshold.
    pub fn recovery_threshold(&self) -> f64 {
        self.recovery.unwrap_or(self.least_severe().1)
    }

    /// Which threshold `value` breaches: critical before warning.
    pub fn breach(&self, value: f64) -> Option<Severity> {
        if self.operator.holds(value, self.critical) {
            Some(Severity::Critical)
        } else if self.warning.is_some_and(|warning| self.operator.holds(value, warning)) {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    /// The answer for this rule stored under `id`.
    pub fn to_out(&self, id: i64, created_at_ms: i64, updated_at_ms: i64) -> AlertRuleOut {
        AlertRuleOut {
            id,
            name: self.name.clone(),
            metric_name: self.metric_name.clone(),
            agent_id: self.agent_id.clone(),
            tags: self.tags.clone(),
            aggregate: self.aggregate,
            window_s: self.window_s,
            operator: self.operator,
            critical: self.critical,
            warning: self.warning,
            for_s: self.for_s,
            keep_firing_for_s: self.keep_firing_for_s,
            recovery: self.recovery,
            no_data_s: self.no_data_s,
            no_data_state: self.no_data_state,
            repeat_interval_s: self.repeat_interval_s,
            channels: self.channels.clone(),
            labels: self.labels.clone(),
            summary: self.summary.clone(),
            enabled: self.enabled,
            created_at: format_millis(created_at_ms),
            updated_at: format_millis(updated_at_ms),
        }
    }
}

impl From<AlertRule> for AlertRuleIn {
    /// The input that validates to `rule`: what an editor starts from.
    fn from(rule: AlertRule) -> Self {
        AlertRuleIn {
            name: Some(rule.name),
            metric_name: Some(rule.metric_name),
            agent_id: rule.agent_id,
            tags: Some(rule.tags),
            aggregate: Some(rule.aggregate),
            window_s: Some(rule.window_s.into()),
            operator: Some(rule.operator),
            critical: Some(rule.critical),
            warning: rule.warning,
            for_s: Some(rule.for_s.into()),
            keep_firing_for_s: Some(rule.keep_firing_for_s.into()),
            recovery: rule.recovery,
            no_data_s: Some(rule.no_data_s.into()),
            no_data_state: Some(rule.no_data_state),
            repeat_interval_s: Some(rule.repeat_interval_s.into()),
            channels: Some(rule.channels),
            labels: Some(rule.labels),
            summary: rule.summary,
            enabled: Some(rule.enabled),
        }
    }
}

/// Collects validation problems; each names its field.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(None, Some(field.to_owned()), message));
    }

    /// A required name: trimmed, non-empty, at most [`MAX_NAME_CHARS`], no control characters
    /// (names end up in email subjects).
    fn name(&mut self, field: &str, name: Option<String>) -> String {
        let Some(name) = name else {
            self.add(field, "is required");
            return String::new();
        };
        let name = name.trim();
        if name.is_empty() {
            self.add(field, "must not be empty");
        } else if name.chars().count() > MAX_NAME_CHARS {
            self.add(field, format!("is longer than {MAX_NAME_CHARS} characters"));
        } else if name.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        }
        name.to_owned()
    }

    /// A finite number, if given.
    fn finite(&mut self, field: &str, value: Option<f64>) -> Option<f64> {
        match value {
            Some(v) if !v.is_finite() => {
                self.add(field, "must be a finite number");
                None
            }
            other => other,
        }
    }

    /// Whole seconds in `0..=max`, 0 when absent.
    fn seconds(&mut self, field: &str, value: Option<i64>, max: u32) -> u32 {
        match value.map(|v| u32::try_from(v).ok().filter(|v| *v <= max)) {
            None => 0,
            Some(Some(v)) => v,
            Some(None) => {
                self.add(field, format!("must be between 0 and {max} seconds"));
                0
            }
        }
    }

    fn tags(&mut self, field: &str, tags: &BTreeMap<String, String>, limits: &Limits) {
        for (field, message) in check_tags(field, tags, limits) {
            self.add(&field, message);
        }
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() { Ok(value) } else { Err(self.0) }
    }
}

impl AlertRuleIn {
    /// Validate under the default [`Limits`]; every problem is reported.
    pub fn validate(self) -> Result<AlertRule, Vec<FieldError>> {
        self.validate_with(&Limits::default())
    }

    /// Validate with the server's `limits` for names and tags, so a rule can name every
    /// series the server accepts.
    pub fn validate_with(self, limits: &Limits) -> Result<AlertRule, Vec<FieldError>> {
        let mut problems = Problems::default();
        let name = problems.name("name", self.name);
        let metric_name = match self.metric_name {
            None => {
                problems.add("metric_name", "is required");
                String::new()
            }
            Some(metric_name) => {
                if let Err(msg) = check_identifier(&metric_name, limits.max_name_bytes) {
                    problems.add("metric_name", msg);
                }
                metric_name
            }
        };
        if let Some(Err(msg)) = self.agent_id.as_deref().map(|a| check_identifier(a, limits.max_agent_id_bytes)) {
            problems.add("agent_id", msg);
        }
        let tags = self.tags.unwrap_or_default();
        problems.tags("tags", &tags, limits);
        let labels = self.labels.unwrap_or_default();
        problems.tags("labels", &labels, limits);
        for key in labels.keys().filter(|key| RESERVED_LABELS.contains(&key.as_str())) {
            problems.add(&format!("labels.{key}"), "is set by microdash itself");
        }

        let operator = self.operator;
        if operator.is_none() {
            problems.add("operator", "is required");
        }
        let critical = problems.finite("critical", self.critical);
        if self.critical.is_none() {
            problems.add("critical", "is required");
        }
        let warning = problems.finite("warning", self.warning);
        let recovery = problems.finite("recovery", self.recovery);
        if let (Some(op), Some(critical)) = (operator, critical) {
            // "Less severe" is "smaller" for > and >=, "larger" for < and <=.
            let less_severe = |a: f64, b: f64| if op.is_upper() { a < b } else { a > b };
            if let Some(warning) = warning.filter(|w| !less_severe(*w, critical)) {
                let side = if op.is_upper() { "below" } else { "above" };
                problems.add("warning", format!("{warning} must be {side} critical ({critical}) for {op}"));
            }
            let least = warning.filter(|w| less_severe(*w, critical)).unwrap_or(critical);
            if let Some(recovery) = recovery.filter(|r| *r != least && !less_severe(*r, least)) {
                let side = if op.is_upper() { "at or below" } else { "at or above" };
                problems.add("recovery", format!("{recovery} must be {side} the least severe threshold ({least})"));
            }
        }

        let window_s = problems.seconds("window_s", self.window_s, MAX_WINDOW_S);
        let for_s = problems.seconds("for_s", self.for_s, MAX_DURATION_S);
        let keep_firing_for_s = problems.seconds("keep_firing_for_s", self.keep_firing_for_s, MAX_DURATION_S);
        let no_data_s = problems.seconds("no_data_s", self.no_data_s, MAX_DURATION_S);
        let repeat_interval_s = problems.seconds("repeat_interval_s", self.repeat_interval_s, MAX_DURATION_S);

        let channels = self.channels.unwrap_or_default();
        if channels.len() > MAX_CHANNELS {
            problems.add("channels", format!("lists {} channels, at most {MAX_CHANNELS} allowed", channels.len()));
        }
        let mut seen = BTreeSet::new();
        for id in &channels {
            if *id <= 0 {
                problems.add("channels", format!("{id} is not a channel id"));
            } else if !seen.insert(*id) {
                problems.add("channels", format!("lists channel {id} twice"));
            }
        }
        if self.summary.as_ref().is_some_and(|s| s.chars().count() > MAX_SUMMARY_CHARS) {
            problems.add("summary", format!("is longer than {MAX_SUMMARY_CHARS} characters"));
        }

        let (Some(operator), Some(critical)) = (operator, critical) else {
            return Err(problems.0);
        };
        problems.finish(AlertRule {
            name,
            metric_name,
            agent_id: self.agent_id,
            tags,
            aggregate: self.aggregate.unwrap_or_default(),
            window_s,
            operator,
            critical,
            warning,
            for_s,
            keep_firing_for_s,
            recovery,
            no_data_s,
            no_data_state: self.no_data_state.unwrap_or_default(),
            repeat_interval_s,
            channels,
            labels,
            summary: self.summary,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

impl TryFrom<AlertRuleIn> for AlertRule {
    type Error = Vec<FieldError>;

    fn try_from(input: AlertRuleIn) -> Result<Self, Self::Error> {
        input.validate()
    }
}

/// Where a channel delivers. Its serde form (tagged by `kind`) is how the store persists it,
/// secret included; answers go through [`NamedChannel::to_out`], which leaves the secret out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Channel {
    /// POST a JSON body to an `http` or `https` URL.
    Webhook {
        /// Where to POST.
        url: String,
        /// Shared secret for the receiver to check deliveries with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// Which body.
        #[serde(default)]
        format: WebhookFormat,
    },
    /// Send an email.
    Email {
        /// Recipients, at least one.
        to: Vec<String>,
    },
}

impl Channel {
    /// The kind, as the API spells it.
    pub fn kind(&self) -> ChannelKind {
        match self {
            Channel::Webhook { .. } => ChannelKind::Webhook,
            Channel::Email { .. } => ChannelKind::Email,
        }
    }
}

impl fmt::Debug for Channel {
    // Hand-written so that logs never show the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Webhook { url, secret, format } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("has_secret", &secret.is_some())
                .field("format", format)
                .finish(),
            Channel::Email { to } => f.debug_struct("Email").field("to", to).finish(),
        }
    }
}

/// A validated channel and its display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedChannel {
    /// Display name.
    pub name: String,
    /// Where it delivers.
    pub channel: Channel,
}

impl NamedChannel {
    /// The answer for this channel stored under `id`: everything but the secret.
    pub fn to_out(&self, id: i64, created_at_ms: i64) -> ChannelOut {
        let (url, format, has_secret, to) = match &self.channel {
            Channel::Webhook { url, secret, format } => (Some(url.clone()), Some(*format), secret.is_some(), None),
            Channel::Email { to } => (None, None, false, Some(to.clone())),
        };
        ChannelOut {
            id,
            name: self.name.clone(),
            kind: self.channel.kind(),
            url,
            format,
            has_secret,
            to,
            created_at: format_millis(created_at_ms),
        }
    }
}

impl ChannelIn {
    /// Validate; every problem is reported.
    pub fn validate(self) -> Result<NamedChannel, Vec<FieldError>> {
        let mut problems = Problems::default();
        let name = problems.name("name", self.name);
        if let Some(Err(msg)) = self.url.as_deref().map(check_http_url) {
            problems.add("url", msg);
        }
        if let Some(secret) = &self.secret {
            if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
                problems.add("secret", format!("must be 1 to {MAX_SECRET_BYTES} bytes"));
            } else if secret.chars().any(char::is_control) {
                problems.add("secret", "must not contain control characters");
            }
        }
        if let Some(to) = &self.to {
            if to.is_empty() {
                problems.add("to", "must list at least one address");
            } else if to.len() > MAX_RECIPIENTS {
                problems.add("to", format!("lists {} addresses, at most {MAX_RECIPIENTS} allowed", to.len()));
            }
            for address in to {
                if let Err(msg) = check_email(address) {
                    problems.add("to", format!("{address:?} {msg}"));
                }
            }
        }
        let channel = match self.kind {
            None => {
                problems.add("kind", "is required (webhook or email)");
                None
            }
            Some(ChannelKind::Webhook) => {
                if self.to.is_some() {
                    problems.add("to", "is only for email channels");
                }
                match self.url {
                    None => {
                        problems.add("url", "is required for webhook channels");
                        None
                    }
                    Some(url) => {
                        Some(Channel::Webhook { url, secret: self.secret, format: self.format.unwrap_or_default() })
                    }
                }
            }
            Some(ChannelKind::Email) => {
                for (field, set) in
                    [("url", self.url.is_some()), ("secret", self.secret.is_some()), ("format", self.format.is_some())]
                {
                    if set {
                        problems.add(field, "is only for webhook channels");
                    }
                }
                match self.to {
                    None => {
                        problems.add("to", "is required for email channels");
                        None
                    }
                    Some(to) => Some(Channel::Email { to }),
                }
            }
        };
        match channel {
            Some(channel) => problems.finish(NamedChannel { name, channel }),
            None => Err(problems.0),
        }
    }
}

/// A careful check that `url` is an absolute `http` or `https` URL with a host: scheme, a
/// non-empty host (a name, an IPv4 address or a bracketed IPv6 one), an optional port, no
/// spaces or control characters. Not a full URL parser; the notifier's HTTP client parses it
/// again.
pub fn check_http_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("is longer than {MAX_URL_BYTES} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("must start with http:// or https://".into());
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(format!("has scheme {scheme:?}; only http and https are allowed"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_userinfo, host_port)| host_port);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err("has an unclosed '[' in its host".into());
            };
            if !host.contains(':') || !host.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
                return Err(format!("has {host:?} in brackets, which is not an IPv6 address"));
            }
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err("has characters after its IPv6 host".into()),
                },
            }
        }
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if let Some(c) =
        host.chars().find(|c| matches!(c, '[' | ']' | '<' | '>' | '"' | '\\' | '^' | '`' | '{' | '|' | '}'))
    {
        return Err(format!("has {c:?} in its host"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!("has port {port:?}; a port is 1 to 65535"));
    }
    Ok(())
}

/// Whether `address` looks like an email address: `local@domain.tld`, no spaces, no display
/// name or quoting. The mail server has the last word.
pub fn check_email(address: &str) -> Result<(), String> {
    if address.len() > 254 {
        return Err("is longer than 254 bytes".into());
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c)) {
        return Err("must be a bare address such as ops@example.com".into());
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err("has no '@'".into());
    };
    if local.is_empty() || local.len() > 64 {
        return Err("must have 1 to 64 bytes before the '@'".into());
    }
    if domain.contains('@') {
        return Err("has more than one '@'".into());
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return Err(format!("has {domain:?} as its domain, which is not a domain name"));
    }
    Ok(())
}

/// Parse and validate a rule body (`POST` or `PUT`). A body that does not deserialise is
/// answered with every field of the wrong type and every unknown field, each named.
///
/// The fields only answers carry (`id`, `created_at`, `updated_at`) are ignored, so a client
/// can send back what it read with one field changed.
pub fn parse_rule(body: &[u8], limits: &Limits) -> Result<AlertRule, Vec<FieldError>> {
    let body = without(body, &["id", "created_at", "updated_at"]);
    parse_object::<AlertRuleIn>(&body, RULE_FIELDS)?.validate_with(limits)
}

/// Parse and validate a channel body, naming every problem like [`parse_rule`]; the fields
/// only answers carry (`id`, `has_secret`, `created_at`) are ignored.
pub fn parse_channel(body: &[u8]) -> Result<NamedChannel, Vec<FieldError>> {
    let body = without(body, &["id", "has_secret", "created_at"]);
    parse_object::<ChannelIn>(&body, CHANNEL_FIELDS)?.validate()
}

/// `body` without the top-level `fields`, if it is a JSON object holding any of them;
/// otherwise as it is (so its errors are reported as they are).
fn without<'a>(body: &'a [u8], fields: &[&str]) -> std::borrow::Cow<'a, [u8]> {
    if let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice::<serde_json::Value>(body)
        && fields.iter().any(|f| object.contains_key(*f))
    {
        for field in fields {
            object.remove(*field);
        }
        if let Ok(rewritten) = serde_json::to_vec(&object) {
            return std::borrow::Cow::Owned(rewritten);
        }
    }
    std::borrow::Cow::Borrowed(body)
}

/// The fields of an input object and a check that a value has each one's type.
type FieldTypes = &'static [(&'static str, fn(serde_json::Value) -> Result<(), serde_json::Error>)];

/// Whether `value` deserialises as a `T`.
fn is<T: DeserializeOwned>(value: serde_json::Value) -> Result<(), serde_json::Error> {
    serde_json::from_value::<T>(value).map(drop)
}

const RULE_FIELDS: FieldTypes = &[
    ("name", is::<Option<String>>),
    ("metric_name", is::<Option<String>>),
    ("agent_id", is::<Option<String>>),
    ("tags", is::<Option<BTreeMap<String, String>>>),
    ("aggregate", is::<Option<Aggregate>>),
    ("window_s", is::<Option<i64>>),
    ("operator", is::<Option<Operator>>),
    ("critical", is::<Option<f64>>),
    ("warning", is::<Option<f64>>),
    ("for_s", is::<Option<i64>>),
    ("keep_firing_for_s", is::<Option<i64>>),
    ("recovery", is::<Option<f64>>),
    ("no_data_s", is::<Option<i64>>),
    ("no_data_state", is::<Option<NoDataState>>),
    ("repeat_interval_s", is::<Option<i64>>),
    ("channels", is::<Option<Vec<i64>>>),
    ("labels", is::<Option<BTreeMap<String, String>>>),
    ("summary", is::<Option<String>>),
    ("enabled", is::<Option<bool>>),
];

const CHANNEL_FIELDS: FieldTypes = &[
    ("name", is::<Option<String>>),
    ("kind", is::<Option<ChannelKind>>),
    ("url", is::<Option<String>>),
    ("secret", is::<Option<String>>),
    ("format", is::<Option<WebhookFormat>>),
    ("to", is::<Option<Vec<String>>>),
];

/// Deserialise a JSON object into `T`; on failure, check each field on its own so that every
/// bad one is named.
fn parse_object<T: DeserializeOwned>(body: &[u8], fields: FieldTypes) -> Result<T, Vec<FieldError>> {
    let err = match serde_json::from_slice::<T>(body) {
        Ok(input) => return Ok(input),
        Err(err) => err,
    };
    let whole = |message: String| vec![FieldError::new(None, None, message)];
    let object = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(object)) => object,
        Ok(_) => return Err(whole("must be a JSON object".into())),
        Err(_) => return Err(whole(format!("malformed JSON: {err}"))),
    };
    let mut problems = Problems::default();
    for (field, value) in object {
        match fields.iter().find(|(name, _)| *name == field) {
            None => problems.add(&field, "is not a known field"),
            Some((_, check)) => {
                if let Err(type_err) = check(value) {
                    problems.add(&field, type_err.to_string());
                }
            }
        }
    }
    if problems.0.is_empty() {
        // Every field is fine on its own yet the whole failed: say what serde said.
        problems.0 = whole(err.to_string());
    }
    Err(problems.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid rule with everything set, the base the tests change one field of.
    fn full() -> AlertRuleIn {
        AlertRuleIn {
            name: Some("cpu high".into()),
            metric_name: Some("cpu.usage".into()),
            agent_id: Some("web-1".into()),
            tags: Some(BTreeMap::from([("core".into(), "all".into())])),
            aggregate: Some(Aggregate::Avg),
            window_s: Some(300),
            operator: Some(Operator::Gt),
            critical: Some(90.0),
            warning: Some(80.0),
            for_s: Some(60),
            keep_firing_for_s: Some(120),
            recovery: Some(75.0),
            no_data_s: Some(600),
            no_data_state: Some(NoDataState::Alerting),
            repeat_interval_s: Some(3600),
            channels: Some(vec![1, 2]),
            labels: Some(BTreeMap::from([("team".into(), "ops".into())])),
            summary: Some("{{agent_id}} cpu at {{value}} %".into()),
            enabled: Some(false),
        }
    }

    /// Validate `input` and compare the fields of its problems with `expected` (empty: valid).
    fn check(input: AlertRuleIn, expected: &[&str]) {
        let got = input.clone().validate();
        let fields: Vec<String> = match &got {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(|e| e.field.clone().unwrap_or_default()).collect(),
        };
        assert_eq!(fields, expected, "{input:?} -> {got:?}");
    }

    #[test]
    fn a_minimal_rule_takes_the_documented_defaults() {
        let rule: AlertRuleIn =
            serde_json::from_str(r#"{"name":" cpu ","metric_name":"cpu","operator":">","critical":90}"#).unwrap();
        let rule = rule.validate().unwrap();
        assert_eq!(
            rule,
            AlertRule {
                name: "cpu".into(),
                metric_name: "cpu".into(),
                agent_id: None,
                tags: BTreeMap::new(),
                aggregate: Aggregate::Last,
                window_s: 0,
                operator: Operator::Gt,
                critical: 90.0,
                warning: None,
                for_s: 0,
                keep_firing_for_s: 0,
                recovery: None,
                no_data_s: 0,
                no_data_state: NoDataState::Keep,
                repeat_interval_s: 0,
                channels: vec![],
                labels: BTreeMap::new(),
                summary: None,
                enabled: true,
            }
        );
        assert_eq!(rule.least_severe(), (Severity::Critical, 90.0));
        assert_eq!(rule.recovery_threshold(), 90.0);
    }

    #[test]
    fn a_full_rule_round_trips_through_its_input() {
        let rule = full().validate().unwrap();
        assert_eq!(AlertRuleIn::from(rule.clone()), full());
        assert_eq!(AlertRuleIn::from(rule.clone()).validate().unwrap(), rule);
        assert_eq!(serde_json::from_str::<AlertRule>(&serde_json::to_string(&rule).unwrap()).unwrap(), rule);
    }

    #[test]
    fn every_problem_is_named_at_once() {
        check(AlertRuleIn::default(), &["name", "metric_name", "operator", "critical"]);
        check(
            AlertRuleIn {
                name: Some("  ".into()),
                metric_name: Some("cpu usage".into()),
                agent_id: Some("a/b".into()),
                critical: Some(f64::NAN),
                window_s: Some(86_401),
                for_s: Some(-1),
                keep_firing_for_s: Some(604_801),
                no_data_s: Some(i64::MAX),
                repeat_interval_s: Some(604_801),
                summary: Some("x".repeat(1001)),
                channels: Some(vec![3, 3, 0]),
                ..full()
            },
            &[
                "name",
                "metric_name",
                "agent_id",
                "critical",
                "window_s",
                "for_s",
                "keep_firing_for_s",
                "no_data_s",
                "repeat_interval_s",
                "channels",
                "channels",
                "summary",
            ],
        );
    }

    #[test]
    fn bounds_are_inclusive() {
        check(
            AlertRuleIn {
                name: Some("n".repeat(200)),
                window_s: Some(86_400),
                for_s: Some(604_800),
                summary: Some("s".repeat(1000)),
                channels: Some((1..=20).collect()),
                ..full()
            },
            &[],
        );
        check(AlertRuleIn { name: Some("n".repeat(201)), ..full() }, &["name"]);
        check(AlertRuleIn { channels: Some((1..=21).collect()), ..full() }, &["channels"]);
        check(AlertRuleIn { name: Some("a\nb".into()), ..full() }, &["name"]);
    }

    #[test]
    fn thresholds_must_be_ordered_by_severity() {
        let rule = |op, critical, warning, recovery| AlertRuleIn {
            operator: Some(op),
            critical: Some(critical),
            warning,
            recovery,
            ..full()
        };
        use Operator::*;
        // Upper bounds: warning below critical, recovery at or below the warning.
        check(rule(Gt, 90.0, Some(80.0), Some(80.0)), &[]);
        check(rule(Ge, 90.0, Some(80.0), Some(70.0)), &[]);
        check(rule(Gt, 90.0, Some(90.0), None), &["warning"]);
        check(rule(Gt, 90.0, Some(95.0), None), &["warning"]);
        check(rule(Gt, 90.0, Some(80.0), Some(85.0)), &["recovery"]);
        check(rule(Gt, 90.0, None, Some(90.0)), &[]);
        check(rule(Gt, 90.0, None, Some(91.0)), &["recovery"]);
        // Lower bounds: everything mirrored.
        check(rule(Lt, 10.0, Some(20.0), Some(25.0)), &[]);
        check(rule(Le, 10.0, Some(5.0), None), &["warning"]);
        check(rule(Lt, 10.0, Some(20.0), Some(15.0)), &["recovery"]);
        check(rule(Lt, 10.0, None, Some(9.0)), &["recovery"]);
        check(rule(Lt, 10.0, Some(f64::INFINITY), Some(f64::NAN)), &["warning", "recovery"]);
    }

    #[test]
    fn tags_and_labels_follow_the_metric_limits() {
        let map = |pairs: &[(&str, &str)]| Some(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
        check(AlertRuleIn { tags: map(&[("a b", "x")]), ..full() }, &["tags.a b"]);
        check(AlertRuleIn { labels: map(&[("team", &"v".repeat(257))]), ..full() }, &["labels.team"]);
        check(
            AlertRuleIn { labels: map(&[("severity", "page"), ("alertname", "x")]), ..full() },
            &["labels.alertname", "labels.severity"],
        );
        let limits = Limits { max_tags: 1, max_name_bytes: 3, ..Limits::default() };
        let got = AlertRuleIn { tags: map(&[("a", "1"), ("b", "2")]), ..full() }.validate_with(&limits).unwrap_err();
        let fields: Vec<_> = got.iter().map(|e| e.field.as_deref().unwrap_or_default()).collect();
        assert_eq!(fields, ["metric_name", "tags"]);
        assert_eq!(got[1].message, "has 2 tags, at most 1 allowed");
    }

    #[test]
    fn rule_bodies_name_every_field_of_the_wrong_type() {
        let fields = |body: &str| match parse_rule(body.as_bytes(), &Limits::default()) {
            Ok(rule) => panic!("{body} parsed as {rule:?}"),
            Err(errors) => errors.into_iter().map(|e| (e.field, e.message)).collect::<Vec<_>>(),
        };
        let got = fields(r#"{"name":"x","operator":"=>","critical":"90","threshhold":1,"window_s":1.5}"#);
        let names: Vec<_> = got.iter().map(|(field, _)| field.as_deref().unwrap_or_default()).collect();
        assert_eq!(names, ["critical", "operator", "threshhold", "window_s"], "{got:?}");
        assert!(got[1].1.contains("unknown variant `=>`, expected one of `>`, `>=`, `<`, `<=`"), "{got:?}");
        assert_eq!(got[2].1, "is not a known field");
        assert_eq!(fields("[1]"), [(None, "must be a JSON object".to_owned())]);
        assert!(fields("{nope").first().is_some_and(|(field, msg)| field.is_none() && msg.starts_with("malformed")));
        // A well-typed body goes on to validation.
        let got = fields(r#"{"name":"x","metric_name":"cpu","operator":">","critical":90,"warning":95}"#);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.as_deref(), Some("warning"));
        let rule = parse_rule(br#"{"name":"x","metric_name":"cpu","operator":"<=","critical":5}"#, &Limits::default());
        assert_eq!(rule.map(|r| r.operator), Ok(Operator::Le));
    }

    #[test]
    fn the_field_type_tables_cover_every_input_field() {
        let names = |value: serde_json::Value| -> Vec<String> {
            value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
        };
        let mut rule_fields: Vec<_> = RULE_FIELDS.iter().map(|(name, _)| (*name).to_owned()).collect();
        rule_fields.sort();
        assert_eq!(names(serde_json::to_value(full()).unwrap()), rule_fields);
        let channel = ChannelIn {
            name: Some("n".into()),
            kind: Some(ChannelKind::Webhook),
            url: Some("u".into()),
            secret: Some("s".into()),
            format: Some(WebhookFormat::Microdash),
            to: Some(vec![]),
        };
        let mut channel_fields: Vec<_> = CHANNEL_FIELDS.iter().map(|(name, _)| (*name).to_owned()).collect();
        channel_fields.sort();
        assert_eq!(names(serde_json::to_value(channel).unwrap()), channel_fields);
    }

    #[test]
    fn rule_answers_carry_every_setting_and_times_as_rfc3339() {
        let out =
            serde_json::to_value(full().validate().unwrap().to_out(7, 1_700_000_000_000, 1_700_000_000_500)).unwrap();
        let keys: Vec<_> = out.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "agent_id",
                "aggregate",
                "channels",
                "created_at",
                "critical",
                "enabled",
                "for_s",
                "id",
                "keep_firing_for_s",
                "labels",
                "metric_name",
                "name",
                "no_data_s",
                "no_data_state",
                "operator",
                "recovery",
                "repeat_interval_s",
                "summary",
                "tags",
                "updated_at",
                "warning",
                "window_s",
            ]
        );
        assert_eq!(out["operator"], ">");
        assert_eq!(out["no_data_state"], "alerting");
        assert_eq!(out["updated_at"], "2023-11-14T22:13:20.500Z");
    }

    fn check_channel(body: &str, expected: Result<&str, &[&str]>) {
        match (parse_channel(body.as_bytes()), expected) {
            (Ok(channel), Ok(debug)) => assert_eq!(format!("{:?}", channel.channel), debug, "{body}"),
            (Err(errors), Err(fields)) => {
                let got: Vec<_> = errors.iter().map(|e| e.field.as_deref().unwrap_or_default()).collect();
                assert_eq!(got, fields, "{body}: {errors:?}");
            }
            (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn channels_are_checked_per_kind() {
        check_channel(
            r#"{"name":"ops","kind":"webhook","url":"https://hooks.example.com/x?y=1","secret":"s","format":"alertmanager"}"#,
            Ok(r#"Webhook { url: "https://hooks.example.com/x?y=1", has_secret: true, format: Alertmanager }"#),
        );
        check_channel(
            r#"{"name":"ops","kind":"webhook","url":"http://10.0.0.1:9093/api"}"#,
            Ok(r#"Webhook { url: "http://10.0.0.1:9093/api", has_secret: false, format: Microdash }"#),
        );
        check_channel(
            r#"{"name":"ops","kind":"email","to":["ops@example.com","a.b+c@mail.example.org"]}"#,
            Ok(r#"Email { to: ["ops@example.com", "a.b+c@mail.example.org"] }"#),
        );
        check_channel(r#"{}"#, Err(&["name", "kind"]));
        check_channel(r#"{"name":"x","kind":"webhook"}"#, Err(&["url"]));
        check_channel(r#"{"name":"x","kind":"webhook","url":"ftp://a","to":["a@b.c"]}"#, Err(&["url", "to"]));
        check_channel(r#"{"name":"x","kind":"email"}"#, Err(&["to"]));
        check_channel(r#"{"name":"x","kind":"email","to":[]}"#, Err(&["to"]));
        check_channel(
            r#"{"name":"x","kind":"email","to":["nobody","a@b"],"url":"http://a","secret":"","format":"microdash"}"#,
            Err(&["secret", "to", "to", "url", "secret", "format"]),
        );
        check_channel(r#"{"name":"x","kind":"sms"}"#, Err(&["kind"]));
    }

    #[test]
    fn urls_need_an_http_scheme_and_a_host() {
        for ok in [
            "http://a",
            "HTTPS://example.com",
            "https://user:pw@example.com:8443/p?q#f",
            "http://[::1]:8080/x",
            "http://[2001:db8::1]",
            "https://bücher.example/",
        ] {
            assert_eq!(check_http_url(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("example.com", "must start with"),
            ("file:///etc/passwd", "scheme"),
            ("javascript://x", "scheme"),
            ("http://", "no host"),
            ("http:///path", "no host"),
            ("http://user@/x", "no host"),
            ("http://a b", "spaces"),
            ("http://a:0", "port"),
            ("http://a:70000", "port"),
            ("http://a:x", "port"),
            ("http://[::1", "unclosed"),
            ("http://[zz]", "IPv6"),
            ("http://[::1]x", "after"),
            ("http://a\\b", "in its host"),
        ] {
            let err = check_http_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(check_http_url(&format!("http://a/{}", "x".repeat(MAX_URL_BYTES))).is_err());
    }

    #[test]
    fn email_addresses_must_be_plausible() {
        for ok in ["ops@example.com", "a+b@x.y.z", "first.last@sub.example.co.uk"] {
            assert_eq!(check_email(ok), Ok(()), "{ok}");
        }
        for bad in ["", "ops", "@example.com", "ops@", "ops@localhost", "a@b@c.d", "a@b..c", "Ops <ops@x.y>", "a b@c.d"]
        {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn channel_answers_never_show_the_secret() {
        let channel =
            parse_channel(br#"{"name":"ops","kind":"webhook","url":"https://x.y","secret":"hunter2"}"#).unwrap();
        let out = serde_json::to_string(&channel.to_out(4, 1_700_000_000_000)).unwrap();
        assert!(!out.contains("hunter2"), "{out}");
        assert_eq!(
            out,
            r#"{"id":4,"name":"ops","kind":"webhook","url":"https://x.y","format":"microdash","has_secret":true,"created_at":"2023-11-14T22:13:20.000Z"}"#
        );
        assert!(!format!("{channel:?}").contains("hunter2"));
        // The store's form keeps it.
        let stored = serde_json::to_string(&channel.channel).unwrap();
        assert_eq!(stored, r#"{"kind":"webhook","url":"https://x.y","secret":"hunter2","format":"microdash"}"#);
        assert_eq!(serde_json::from_str::<Channel>(&stored).unwrap(), channel.channel);
        // An answer sent back (as a client editing one field would) is read as the channel,
        // its answer-only fields ignored; the secret is the HTTP layer's to carry over.
        let sent_back = parse_channel(out.as_bytes()).unwrap();
        assert_eq!(sent_back.name, "ops");
        assert!(matches!(sent_back.channel, Channel::Webhook { secret: None, .. }));
        assert_eq!(
            parse_channel(br#"{"name":"ops","kind":"webhook","url":"https://x.y","idd":1}"#).unwrap_err()[0]
                .field
                .as_deref(),
            Some("idd")
        );
        let email = parse_channel(br#"{"name":"m","kind":"email","to":["a@b.c"]}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&email.to_out(5, 0)).unwrap(),
            r#"{"id":5,"name":"m","kind":"email","has_secret":false,"to":["a@b.c"],"created_at":"1970-01-01T00:00:00.000Z"}"#
        );
    }

    #[test]
    fn a_rule_answer_sent_back_is_the_same_rule() {
        let rule = full().validate().unwrap();
        let answer = serde_json::to_vec(&rule.to_out(3, 1_700_000_000_000, 1_700_000_000_001)).unwrap();
        assert_eq!(parse_rule(&answer, &Limits::default()).unwrap(), rule);
    }
}
