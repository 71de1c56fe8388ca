//! The alerting screens' state, free of browser APIs: the rule and channel forms (text in
//! the inputs to the API's input types and back), per-field errors (the client's own checks
//! and the server's 422 `details`), the preview of what a rule would say about each series
//! now, the inbox's order and words, the history filter, and what the charts overlay: a
//! vertical marker per alert transition and a dashed line per threshold.
//!
//! Validation itself is core's ([`AlertRuleIn::validate`]); the preview evaluates with
//! [`AlertRule::breach`], the same function the evaluator uses.

use std::collections::{BTreeMap, BTreeSet};

use microdash_core::alert::AlertRule;
use microdash_core::api::alert::{
    Aggregate, AlertEventOut, AlertOut, AlertRuleIn, AlertRuleOut, AlertState, ChannelIn, ChannelKind, ChannelOut,
    NoDataState, NotificationOut, NotificationStatus, Operator, Severity, WebhookFormat,
};
use microdash_core::api::{FieldError, PointOut, SeriesOut};
use microdash_core::rollup;
use serde::Serialize;

use super::range::Preset;
use super::units::Unit;
use super::{SeriesId, parse_millis};

/// Marker and threshold colour of a critical alert (red-500: 4.7:1 on the chart background).
pub const CRITICAL_COLOR: &str = "#ef4444";
/// ...of a warning (amber-500).
pub const WARNING_COLOR: &str = "#f59e0b";
/// ...of a resolved alert (emerald-500).
pub const RESOLVED_COLOR: &str = "#10b981";

/// Problems with a form, by the API's name of the field they belong to (`""` for the form as
/// a whole). A nested field (`labels.team`) belongs to its parent's input, its key kept in
/// the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// Record `message` for `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let message = message.into();
        let (input, message) = match field.split_once('.') {
            Some((parent, key)) => (parent, format!("{key}: {message}")),
            None => (field, message),
        };
        self.0.entry(input.to_owned()).or_default().push(message);
    }

    /// The errors of a validation (core's or the server's `details`).
    pub fn from_details(details: &[FieldError]) -> FieldErrors {
        let mut errors = FieldErrors::default();
        for detail in details {
            errors.add(detail.field.as_deref().unwrap_or_default(), detail.message.clone());
        }
        errors
    }

    /// What is wrong with `field`, in one sentence per problem; `None` when nothing is.
    pub fn of(&self, field: &str) -> Option<String> {
        self.0.get(field).map(|messages| messages.join("; "))
    }

    /// Forget the problems of `field` (the person changed it).
    pub fn clear(&mut self, field: &str) {
        self.0.remove(field);
    }

    /// Whether there is nothing wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields with problems.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Seconds from what a person types: `90`, `90s`, `5m`, `1h30m`, `2d`; empty is `None` (the
/// rule's default).
pub fn parse_duration_s(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return if seconds < 0 { Err("must not be negative".into()) } else { Ok(Some(seconds)) };
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(format!("reads as a duration such as 90s, 5m, 1h or 2d, not {text:?}")),
        };
        let Ok(n) = digits.parse::<i64>() else {
            return Err(format!("reads as a duration such as 90s, 5m, 1h or 2d, not {text:?}"));
        };
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("needs a unit after {digits} (s, m, h or d)"));
    }
    Ok(Some(total))
}

/// Seconds as [`parse_duration_s`] reads them back, in the largest unit that divides them:
/// `90s`, `5m`, `2h`, `1d`; 0 is empty (the default).
pub fn format_duration_s(seconds: u32) -> String {
    match seconds {
        0 => String::new(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A duration for reading: `5m`, `none` for 0.
pub fn describe_duration_s(seconds: u32) -> String {
    if seconds == 0 { "none".into() } else { format_duration_s(seconds) }
}

/// `key=value` pairs separated by commas (tags, labels); empty is no pairs.
pub fn parse_pairs(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                out.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            _ => return Err(format!("{pair:?} is not key=value")),
        }
    }
    Ok(out)
}

/// Pairs as [`parse_pairs`] reads them.
pub fn format_pairs(pairs: &BTreeMap<String, String>) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// A number typed into a threshold input; empty is `None`.
fn parse_number(text: &str) -> Result<Option<f64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(format!("must be a number, not {text:?}")),
    }
}

/// A threshold as an input shows it: the shortest text that reads back the same.
fn format_number(value: f64) -> String {
    value.to_string()
}

/// The inputs of the rule form, in the order the form shows them (its focus order). Each
/// knows the API's field name, so errors land next to the right input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleField {
    /// Display name.
    Name,
    /// The metric watched.
    Metric,
    /// One agent, or every agent.
    Agent,
    /// Tag matchers.
    Tags,
    /// How the window's points become one value.
    Aggregate,
    /// The aggregate's window.
    Window,
    /// The comparison.
    Operator,
    /// Critical threshold.
    Critical,
    /// Warning threshold.
    Warning,
    /// Hysteresis threshold.
    Recovery,
    /// How long before firing.
    For,
    /// How long a firing alert holds on.
    KeepFiring,
    /// Silence before no data.
    NoData,
    /// What no data means.
    NoDataState,
    /// Reminder interval.
    Repeat,
    /// Notified channels.
    Channels,
    /// Summary template.
    Summary,
    /// Extra labels.
    Labels,
    /// Evaluated or not.
    Enabled,
}

impl RuleField {
    /// Every field, in form order.
    pub const ALL: [RuleField; 19] = [
        RuleField::Name,
        RuleField::Metric,
        RuleField::Agent,
        RuleField::Tags,
        RuleField::Aggregate,
        RuleField::Window,
        RuleField::Operator,
        RuleField::Critical,
        RuleField::Warning,
        RuleField::Recovery,
        RuleField::For,
        RuleField::KeepFiring,
        RuleField::NoData,
        RuleField::NoDataState,
        RuleField::Repeat,
        RuleField::Channels,
        RuleField::Summary,
        RuleField::Labels,
        RuleField::Enabled,
    ];

    /// The API's name of the field.
    pub fn key(self) -> &'static str {
        match self {
            RuleField::Name => "name",
            RuleField::Metric => "metric_name",
            RuleField::Agent => "agent_id",
            RuleField::Tags => "tags",
            RuleField::Aggregate => "aggregate",
            RuleField::Window => "window_s",
            RuleField::Operator => "operator",
            RuleField::Critical => "critical",
            RuleField::Warning => "warning",
            RuleField::Recovery => "recovery",
            RuleField::For => "for_s",
            RuleField::KeepFiring => "keep_firing_for_s",
            RuleField::NoData => "no_data_s",
            RuleField::NoDataState => "no_data_state",
            RuleField::Repeat => "repeat_interval_s",
            RuleField::Channels => "channels",
            RuleField::Summary => "summary",
            RuleField::Labels => "labels",
            RuleField::Enabled => "enabled",
        }
    }

    /// What its label says.
    pub fn label(self) -> &'static str {
        match self {
            RuleField::Name => "Name",
            RuleField::Metric => "Metric",
            RuleField::Agent => "Agent",
            RuleField::Tags => "Tags",
            RuleField::Aggregate => "Aggregate",
            RuleField::Window => "Window",
            RuleField::Operator => "Operator",
            RuleField::Critical => "Critical threshold",
            RuleField::Warning => "Warning threshold",
            RuleField::Recovery => "Recovery threshold",
            RuleField::For => "Pending for",
            RuleField::KeepFiring => "Keep firing for",
            RuleField::NoData => "No data after",
            RuleField::NoDataState => "No data means",
            RuleField::Repeat => "Repeat every",
            RuleField::Channels => "Channels",
            RuleField::Summary => "Summary",
            RuleField::Labels => "Labels",
            RuleField::Enabled => "Enabled",
        }
    }

    /// The field the API calls `key`.
    pub fn of_key(key: &str) -> Option<RuleField> {
        RuleField::ALL.into_iter().find(|f| f.key() == key)
    }
}

/// Aggregates in the order the form offers them.
pub const AGGREGATES: [Aggregate; 6] =
    [Aggregate::Last, Aggregate::Avg, Aggregate::Min, Aggregate::Max, Aggregate::Sum, Aggregate::Count];
/// Operators in the order the form offers them.
pub const OPERATORS: [Operator; 4] = [Operator::Gt, Operator::Ge, Operator::Lt, Operator::Le];
/// No-data states in the order the form offers them.
pub const NO_DATA_STATES: [NoDataState; 3] = [NoDataState::Keep, NoDataState::Ok, NoDataState::Alerting];

/// The API's spelling of a no-data state.
pub fn no_data_key(state: NoDataState) -> &'static str {
    match state {
        NoDataState::Keep => "keep",
        NoDataState::Ok => "ok",
        NoDataState::Alerting => "alerting",
    }
}

/// What the rule form holds: the text of each input, the channels ticked, the switch.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleForm {
    /// Text of every text-like input and select, by field.
    pub text: BTreeMap<&'static str, String>,
    /// Ticked channel ids.
    pub channels: BTreeSet<i64>,
    /// The enabled switch.
    pub enabled: bool,
}

impl Default for RuleForm {
    /// A new rule: the latest value above a critical threshold, kept state on no data.
    fn default() -> Self {
        let mut form = RuleForm { text: BTreeMap::new(), channels: BTreeSet::new(), enabled: true };
        form.set(RuleField::Aggregate, Aggregate::Last.as_str());
        form.set(RuleField::Operator, Operator::Gt.as_str());
        form.set(RuleField::NoDataState, no_data_key(NoDataState::Keep));
        form
    }
}

impl RuleForm {
    /// The form for editing `rule`.
    pub fn from_out(rule: &AlertRuleOut) -> RuleForm {
        let mut form = RuleForm {
            text: BTreeMap::new(),
            channels: rule.channels.iter().copied().collect(),
            enabled: rule.enabled,
        };
        form.set(RuleField::Name, &rule.name);
        form.set(RuleField::Metric, &rule.metric_name);
        form.set(RuleField::Agent, rule.agent_id.as_deref().unwrap_or_default());
        form.set(RuleField::Tags, &format_pairs(&rule.tags));
        form.set(RuleField::Aggregate, rule.aggregate.as_str());
        form.set(RuleField::Window, &format_duration_s(rule.window_s));
        form.set(RuleField::Operator, rule.operator.as_str());
        form.set(RuleField::Critical, &format_number(rule.critical));
        form.set(RuleField::Warning, &rule.warning.map(format_number).unwrap_or_default());
        form.set(RuleField::Recovery, &rule.recovery.map(format_number).unwrap_or_default());
        form.set(RuleField::For, &format_duration_s(rule.for_s));
        form.set(RuleField::KeepFiring, &format_duration_s(rule.keep_firing_for_s));
        form.set(RuleField::NoData, &format_duration_s(rule.no_data_s));
        form.set(RuleField::NoDataState, no_data_key(rule.no_data_state));
        form.set(RuleField::Repeat, &format_duration_s(rule.repeat_interval_s));
        form.set(RuleField::Summary, rule.summary.as_deref().unwrap_or_default());
        form.set(RuleField::Labels, &format_pairs(&rule.labels));
        form
    }

    /// Set the text of `field`.
    pub fn set(&mut self, field: RuleField, value: &str) {
        self.text.insert(field.key(), value.to_owned());
    }

    /// The text of `field`, empty when never set.
    pub fn get(&self, field: RuleField) -> &str {
        self.text.get(field.key()).map_or("", String::as_str)
    }

    /// Tick or untick a channel.
    pub fn toggle_channel(&mut self, id: i64) {
        if !self.channels.remove(&id) {
            self.channels.insert(id);
        }
    }

    /// The body to send, after the cheap checks a browser can make without the server's
    /// rules: required fields filled in, numbers and durations that read. Everything else
    /// (threshold order, bounds, reserved labels, channels that exist) is the server's to
    /// answer, field by field.
    pub fn input(&self) -> Result<AlertRuleIn, FieldErrors> {
        let mut errors = FieldErrors::default();
        let required = |errors: &mut FieldErrors, field: RuleField| {
            let text = self.get(field).trim();
            if text.is_empty() {
                errors.add(field.key(), "is required");
            }
            (!text.is_empty()).then(|| text.to_owned())
        };
        let name = required(&mut errors, RuleField::Name);
        let metric_name = required(&mut errors, RuleField::Metric);
        let operator = required(&mut errors, RuleField::Operator).and_then(|op| {
            let op = OPERATORS.into_iter().find(|o| o.as_str() == op);
            if op.is_none() {
                errors.add(RuleField::Operator.key(), "must be >, >=, < or <=");
            }
            op
        });
        let mut number = |field: RuleField| match parse_number(self.get(field)) {
            Ok(v) => v,
            Err(message) => {
                errors.add(field.key(), message);
                None
            }
        };
        let critical = number(RuleField::Critical);
        let warning = number(RuleField::Warning);
        let recovery = number(RuleField::Recovery);
        if critical.is_none() && self.get(RuleField::Critical).trim().is_empty() {
            errors.add(RuleField::Critical.key(), "is required");
        }
        let mut duration = |field: RuleField| match parse_duration_s(self.get(field)) {
            Ok(v) => v,
            Err(message) => {
                errors.add(field.key(), message);
                None
            }
        };
        let window_s = duration(RuleField::Window);
        let for_s = duration(RuleField::For);
        let keep_firing_for_s = duration(RuleField::KeepFiring);
        let no_data_s = duration(RuleField::NoData);
        let repeat_interval_s = duration(RuleField::Repeat);
        let mut pairs = |field: RuleField| match parse_pairs(self.get(field)) {
            Ok(pairs) => pairs,
            Err(message) => {
                errors.add(field.key(), message);
                BTreeMap::new()
            }
        };
        let tags = pairs(RuleField::Tags);
        let labels = pairs(RuleField::Labels);
        let aggregate = AGGREGATES.into_iter().find(|a| a.as_str() == self.get(RuleField::Aggregate));
        let no_data_state = NO_DATA_STATES.into_iter().find(|s| no_data_key(*s) == self.get(RuleField::NoDataState));
        let agent = self.get(RuleField::Agent).trim();
        let summary = self.get(RuleField::Summary).trim();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(AlertRuleIn {
            name,
            metric_name,
            agent_id: (!agent.is_empty()).then(|| agent.to_owned()),
            tags: Some(tags),
            aggregate,
            window_s,
            operator,
            critical,
            warning,
            for_s,
            keep_firing_for_s,
            recovery,
            no_data_s,
            no_data_state,
            repeat_interval_s,
            channels: Some(self.channels.iter().copied().collect()),
            labels: Some(labels),
            summary: (!summary.is_empty()).then(|| summary.to_owned()),
            enabled: Some(self.enabled),
        })
    }

    /// The rule as the evaluator would see it, validated by core exactly as the server
    /// validates it: what the preview evaluates.
    pub fn rule(&self) -> Result<AlertRule, FieldErrors> {
        self.input()?.validate().map_err(|details| FieldErrors::from_details(&details))
    }
}

/// What a rule would say about a series now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No threshold breached.
    Ok,
    /// The warning threshold breached.
    Warning,
    /// The critical threshold breached.
    Critical,
    /// No point in the window.
    NoData,
}

impl Verdict {
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Critical => "critical",
            Verdict::NoData => "no data",
        }
    }
}

/// One line of the preview: a series the rule watches, its value over the rule's window now,
/// and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRow {
    /// The series, as legends name it.
    pub series: String,
    /// The aggregate over the window; `None` without points in it.
    pub value: Option<f64>,
    /// What the thresholds say about it.
    pub verdict: Verdict,
}

impl PreviewRow {
    /// "web-1 now 73%: would be critical".
    pub fn sentence(&self, unit: Unit) -> String {
        match self.value {
            Some(value) => format!("{} now {}: would be {}", self.series, unit.format(value), self.verdict.as_str()),
            None => format!("{}: no data in the window", self.series),
        }
    }
}

/// Whether `rule` watches the series of `metric` from `agent` with `tags`: the same metric,
/// its agent if it names one, and every tag it names with the same value (the evaluator's
/// matching).
pub fn watches(rule: &AlertRule, metric: &str, agent: Option<&str>, tags: &BTreeMap<String, String>) -> bool {
    rule.metric_name == metric
        && rule.agent_id.as_deref().is_none_or(|a| agent == Some(a))
        && rule.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
}

/// The aggregate of `points` (ascending by time) over `(now - window_s, now]`; with
/// `window_s` 0, over the latest point at or before `now_ms` (every point at that time). The
/// evaluator's window, so the preview agrees with what fires.
pub fn window_value(points: &[(i64, f64)], aggregate: Aggregate, window_s: u32, now_ms: i64) -> Option<f64> {
    let end = points.partition_point(|p| p.0 <= now_ms);
    let start = if window_s == 0 {
        let latest = points[..end].last()?.0;
        points.partition_point(|p| p.0 < latest)
    } else {
        let after = now_ms.saturating_sub(i64::from(window_s) * 1000);
        points.partition_point(|p| p.0 <= after)
    };
    let mut folded = points[start..end].iter().map(|&(ts, v)| rollup::Aggregate::of(ts, v));
    let mut summary = folded.next()?;
    folded.for_each(|p| summary.merge(&p));
    Some(match aggregate {
        Aggregate::Last => summary.last,
        Aggregate::Avg => summary.avg(),
        Aggregate::Min => summary.min,
        Aggregate::Max => summary.max,
        Aggregate::Sum => summary.sum,
        Aggregate::Count => summary.count as f64,
    })
}

/// How far back the preview loads points: the rule's window, or for a window of 0 (the
/// latest point) enough to find a recent one.
pub fn preview_span_ms(rule_window_s: u32) -> i64 {
    i64::from(rule_window_s).max(15 * 60) * 1000
}

/// The preview of `rule` over the tenant's `series` (so a watched series without recent
/// points says so) and the recent `points` of its metric, at `now_ms`.
pub fn preview(rule: &AlertRule, series: &[SeriesOut], points: &[PointOut], now_ms: i64) -> Vec<PreviewRow> {
    let mut by_series: BTreeMap<SeriesId, Vec<(i64, f64)>> = BTreeMap::new();
    for s in series.iter().filter(|s| watches(rule, &s.metric_name, s.agent_id.as_deref(), &s.tags)) {
        by_series.entry(SeriesId::new(s.agent_id.as_deref(), &s.tags)).or_default();
    }
    for p in points.iter().filter(|p| watches(rule, &p.metric_name, p.agent_id.as_deref(), &p.tags)) {
        let Some(ts) = parse_millis(&p.timestamp) else { continue };
        by_series.entry(SeriesId::new(p.agent_id.as_deref(), &p.tags)).or_default().push((ts, p.value));
    }
    by_series
        .into_iter()
        .map(|(id, mut points)| {
            points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let value = window_value(&points, rule.aggregate, rule.window_s, now_ms);
            let verdict = match value.map(|v| rule.breach(v)) {
                None => Verdict::NoData,
                Some(None) => Verdict::Ok,
                Some(Some(Severity::Warning)) => Verdict::Warning,
                Some(Some(Severity::Critical)) => Verdict::Critical,
            };
            PreviewRow { series: id.label(), value, verdict }
        })
        .collect()
}

/// A rule's condition in a few words: `> 90 critical, > 80 warning`.
pub fn describe_condition(rule: &AlertRuleOut) -> String {
    let unit = Unit::of(&rule.metric_name);
    let mut text = format!("{} {} {} critical", rule.aggregate.as_str(), rule.operator, unit.format(rule.critical));
    if let Some(warning) = rule.warning {
        text.push_str(&format!(", {} {} warning", rule.operator, unit.format(warning)));
    }
    text
}

/// What the channel form holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelForm {
    /// Display name.
    pub name: String,
    /// Webhook or email.
    pub kind: ChannelKind,
    /// Webhooks: the URL.
    pub url: String,
    /// Webhooks: a new secret; empty keeps the stored one (or sets none).
    pub secret: String,
    /// Webhooks: the body format.
    pub format: WebhookFormat,
    /// Email: recipients, separated by commas, spaces or lines.
    pub to: String,
}

impl Default for ChannelForm {
    fn default() -> Self {
        ChannelForm {
            name: String::new(),
            kind: ChannelKind::Webhook,
            url: String::new(),
            secret: String::new(),
            format: WebhookFormat::Microdash,
            to: String::new(),
        }
    }
}

/// The API's spelling of a channel kind.
pub fn kind_key(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => "webhook",
        ChannelKind::Email => "email",
    }
}

/// The API's spelling of a webhook format.
pub fn format_key(format: WebhookFormat) -> &'static str {
    match format {
        WebhookFormat::Microdash => "microdash",
        WebhookFormat::Alertmanager => "alertmanager",
    }
}

impl ChannelForm {
    /// The form for editing `channel`; its secret is never shown, so the input starts empty.
    pub fn from_out(channel: &ChannelOut) -> ChannelForm {
        ChannelForm {
            name: channel.name.clone(),
            kind: channel.kind,
            url: channel.url.clone().unwrap_or_default(),
            secret: String::new(),
            format: channel.format.unwrap_or_default(),
            to: channel.to.as_deref().unwrap_or_default().join(", "),
        }
    }

    /// The body to send: only the fields of the chosen kind, after the required-field
    /// checks. An empty secret is left out, which a PUT reads as "keep the stored one".
    pub fn input(&self) -> Result<ChannelIn, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = self.name.trim();
        if name.is_empty() {
            errors.add("name", "is required");
        }
        let mut input = ChannelIn { name: Some(name.to_owned()), kind: Some(self.kind), ..ChannelIn::default() };
        match self.kind {
            ChannelKind::Webhook => {
                let url = self.url.trim();
                if url.is_empty() {
                    errors.add("url", "is required");
                }
                input.url = Some(url.to_owned());
                input.secret = (!self.secret.is_empty()).then(|| self.secret.clone());
                input.format = Some(self.format);
            }
            ChannelKind::Email => {
                let to: Vec<String> = self
                    .to
                    .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect();
                if to.is_empty() {
                    errors.add("to", "needs at least one address");
                }
                input.to = Some(to);
            }
        }
        if errors.is_empty() { Ok(input) } else { Err(errors) }
    }
}

/// Where a channel delivers, in a few words.
pub fn channel_target(channel: &ChannelOut) -> String {
    match channel.kind {
        ChannelKind::Webhook => {
            let format = channel.format.map(format_key).unwrap_or("microdash");
            format!("{} ({format})", channel.url.as_deref().unwrap_or_default())
        }
        ChannelKind::Email => channel.to.as_deref().unwrap_or_default().join(", "),
    }
}

/// Whether the delivery log shows the test notification `id` done (sent or failed), so the
/// page can stop refreshing quickly.
pub fn delivery_done(log: &[NotificationOut], id: i64) -> bool {
    log.iter().any(|n| n.id == id && n.status != NotificationStatus::Pending)
}

/// The API's spelling of a delivery status.
pub fn status_key(status: NotificationStatus) -> &'static str {
    match status {
        NotificationStatus::Pending => "pending",
        NotificationStatus::Sent => "sent",
        NotificationStatus::Failed => "failed",
    }
}

/// How an alert or a transition looks: its colour, from its state and severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tone {
    /// Firing at critical (red).
    Critical,
    /// Firing at warning (amber).
    Warning,
    /// Pending (no colour of its own: it has not fired).
    Pending,
    /// Resolved or ok (green).
    Resolved,
}

impl Tone {
    /// The tone of an instance in `state` at `severity`. Firing without a severity is a
    /// no-data alert, which fires as critical.
    pub fn of(state: AlertState, severity: Option<Severity>) -> Tone {
        match (state, severity) {
            (AlertState::Firing, Some(Severity::Warning)) => Tone::Warning,
            (AlertState::Firing, _) => Tone::Critical,
            (AlertState::Pending, _) => Tone::Pending,
            (AlertState::Ok | AlertState::NoData, _) => Tone::Resolved,
        }
    }

    /// The chart colour; `None` for tones a chart does not mark.
    pub fn color(self) -> Option<&'static str> {
        match self {
            Tone::Critical => Some(CRITICAL_COLOR),
            Tone::Warning => Some(WARNING_COLOR),
            Tone::Resolved => Some(RESOLVED_COLOR),
            Tone::Pending => None,
        }
    }

    /// The badge's words (the colour is never the only sign).
    pub fn label(self) -> &'static str {
        match self {
            Tone::Critical => "critical",
            Tone::Warning => "warning",
            Tone::Pending => "pending",
            Tone::Resolved => "resolved",
        }
    }
}

/// The inbox's order: firing before pending, critical before warning, then the longest
/// standing first, then by rule and series so the list does not shuffle between refreshes.
pub fn sort_alerts(alerts: &mut [AlertOut]) {
    let rank = |a: &AlertOut| {
        let state = match a.state {
            AlertState::Firing => 0,
            AlertState::Pending => 1,
            AlertState::NoData => 2,
            AlertState::Ok => 3,
        };
        let severity = match a.severity {
            Some(Severity::Critical) => 0,
            Some(Severity::Warning) => 1,
            None => 2,
        };
        (state, severity, parse_millis(&a.since).unwrap_or(i64::MAX))
    };
    alerts.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| a.rule_name.cmp(&b.rule_name)).then_with(|| {
            series_label(a.agent_id.as_deref(), &a.tags).cmp(&series_label(b.agent_id.as_deref(), &b.tags))
        })
    });
}

/// A series as legends name it: `web-1`, `web-1 mount=/`.
pub fn series_label(agent: Option<&str>, tags: &BTreeMap<String, String>) -> String {
    SeriesId::new(agent, tags).label()
}

/// A history entry's change in words: `ok → pending`, `pending → firing (critical)`,
/// `firing → ok (resolved)`.
pub fn transition_text(event: &AlertEventOut) -> String {
    let arrow = format!("{} → {}", event.from, event.to);
    match (event.from, event.to, event.severity) {
        (_, AlertState::Firing, Some(severity)) => format!("{arrow} ({severity})"),
        (AlertState::Firing, to, _) if to != AlertState::Firing => format!("{arrow} (resolved)"),
        _ => arrow,
    }
}

/// The tone of a history entry on a chart: the alert fired (or changed severity), or it
/// ended; `None` for changes that did not fire or end one (ok to pending and back, no data).
pub fn transition_tone(event: &AlertEventOut) -> Option<Tone> {
    match (event.from, event.to) {
        (_, AlertState::Firing) => Some(Tone::of(AlertState::Firing, event.severity)),
        (AlertState::Firing, _) => Some(Tone::Resolved),
        _ => None,
    }
}

/// The inbox's history filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only this rule's entries.
    pub rule_id: Option<i64>,
    /// Only this agent's entries.
    pub agent: Option<String>,
    /// How far back.
    pub range: Preset,
}

impl Default for HistoryFilter {
    fn default() -> Self {
        HistoryFilter { rule_id: None, agent: None, range: Preset::Day }
    }
}

/// Most history entries the inbox shows.
pub const HISTORY_LIMIT: u32 = 200;
/// Most transitions a chart view asks for.
pub const MARKER_LIMIT: u32 = 1_000;

impl HistoryFilter {
    /// The query string pairs of `GET /api/v1/alerts/history` at `now_ms`.
    pub fn params(&self, now_ms: i64) -> Vec<(&'static str, String)> {
        let mut params = vec![("start_time", ((now_ms - self.range.span_ms()) / 1000).to_string())];
        if let Some(rule) = self.rule_id {
            params.push(("rule_id", rule.to_string()));
        }
        if let Some(agent) = &self.agent {
            params.push(("agent_id", agent.clone()));
        }
        params.push(("limit", HISTORY_LIMIT.to_string()));
        params
    }
}

/// The query string pairs of the transitions drawn on a page's charts over `window`
/// (Unix milliseconds), of one agent or all.
pub fn marker_params(window: (i64, i64), agent: Option<&str>) -> Vec<(&'static str, String)> {
    // Unix seconds: the start rounded down and the end up, so no transition in the window is
    // cut off.
    let mut params = vec![
        ("start_time", window.0.div_euclid(1000).to_string()),
        ("end_time", (window.1.div_euclid(1000) + 1).to_string()),
    ];
    if let Some(agent) = agent {
        params.push(("agent_id", agent.to_owned()));
    }
    params.push(("limit", MARKER_LIMIT.to_string()));
    params
}

/// A vertical line on a chart where an alert of one of its series changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    /// When, Unix milliseconds.
    pub ts_ms: i64,
    /// Line colour.
    pub color: &'static str,
    /// What the tooltip says.
    pub text: String,
}

/// A dashed horizontal line at a rule's threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// The threshold.
    pub value: f64,
    /// Line colour.
    pub color: &'static str,
    /// What the line's label says.
    pub label: String,
}

/// What a chart draws over its data: alert transitions and rule thresholds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Overlay {
    /// Transitions, oldest first.
    pub markers: Vec<Marker>,
    /// Thresholds of the rules watching the metric.
    pub thresholds: Vec<Threshold>,
}

impl Overlay {
    /// Markers inside `window`.
    pub fn markers_in(&self, window: (i64, i64)) -> usize {
        self.markers.iter().filter(|m| (window.0..=window.1).contains(&m.ts_ms)).count()
    }
}

/// The overlay of `metric`'s chart: the thresholds of the enabled rules watching it (of
/// `agent`'s series when the page shows one agent) and a marker per transition in `events`
/// of a rule on `metric` that fired or ended an alert.
pub fn overlay(metric: &str, agent: Option<&str>, rules: &[AlertRuleOut], events: &[AlertEventOut]) -> Overlay {
    let unit = Unit::of(metric);
    let on_metric: BTreeMap<i64, &AlertRuleOut> =
        rules.iter().filter(|r| r.metric_name == metric).map(|r| (r.id, r)).collect();
    let mut thresholds: Vec<Threshold> = Vec::new();
    for rule in on_metric.values().filter(|r| r.enabled) {
        if let (Some(page), Some(own)) = (agent, rule.agent_id.as_deref())
            && page != own
        {
            continue;
        }
        let levels = [
            (Some(rule.critical), Severity::Critical, CRITICAL_COLOR),
            (rule.warning, Severity::Warning, WARNING_COLOR),
        ];
        for (value, severity, color) in levels {
            let Some(value) = value else { continue };
            if thresholds.iter().any(|t| t.value == value && t.color == color) {
                continue;
            }
            let label = format!("{} {} {severity}", rule.operator, unit.format(value));
            thresholds.push(Threshold { value, color, label });
        }
    }
    let mut markers: Vec<Marker> = events
        .iter()
        .filter(|e| on_metric.contains_key(&e.rule_id))
        .filter_map(|e| {
            let color = transition_tone(e)?.color()?;
            let ts_ms = parse_millis(&e.at)?;
            let value = e.value.map(|v| format!(" at {}", unit.format(v))).unwrap_or_default();
            let series = series_label(e.agent_id.as_deref(), &e.tags);
            let text = format!("{} · {series}: {}{value}", e.rule_name, transition_text(e));
            Some(Marker { ts_ms, color, text })
        })
        .collect();
    markers.sort_by_key(|m| m.ts_ms);
    Overlay { markers, thresholds }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check_duration(text: &str, expected: Result<Option<i64>, ()>) {
        assert_eq!(parse_duration_s(text).map_err(drop), expected, "{text:?}");
    }

    #[test]
    fn durations_read_as_people_write_them_and_back() {
        check_duration("", Ok(None));
        check_duration("  ", Ok(None));
        check_duration("90", Ok(Some(90)));
        check_duration("90s", Ok(Some(90)));
        check_duration("5m", Ok(Some(300)));
        check_duration("1h30m", Ok(Some(5_400)));
        check_duration("1h 30m", Ok(Some(5_400)));
        check_duration("2D", Ok(Some(172_800)));
        check_duration("-5", Err(()));
        check_duration("5x", Err(()));
        check_duration("m", Err(()));
        check_duration("1h30", Err(()));
        for seconds in [0, 1, 59, 60, 90, 300, 3_600, 5_400, 86_400, 604_800] {
            let text = format_duration_s(seconds);
            assert_eq!(parse_duration_s(&text), Ok((seconds > 0).then_some(i64::from(seconds))), "{text}");
        }
        assert_eq!(format_duration_s(5_400), "90m");
        assert_eq!(format_duration_s(86_400), "1d");
        assert_eq!(describe_duration_s(0), "none");
    }

    #[test]
    fn pairs_read_and_write_back() {
        let pairs = parse_pairs(" mount=/ , team = ops,").unwrap();
        assert_eq!(pairs, BTreeMap::from([("mount".into(), "/".into()), ("team".into(), "ops".into())]));
        assert_eq!(format_pairs(&pairs), "mount=/, team=ops");
        assert_eq!(parse_pairs(""), Ok(BTreeMap::new()));
        assert!(parse_pairs("team").is_err());
        assert!(parse_pairs("=x").is_err());
    }

    #[test]
    fn nested_errors_land_on_their_input() {
        let details = vec![
            FieldError::new(None, Some("labels.severity".into()), "is set by microdash itself"),
            FieldError::new(None, Some("warning".into()), "95 must be below critical (90) for >"),
            FieldError::new(None, Some("channels".into()), "lists channel 3 twice"),
            FieldError::new(None, Some("channels".into()), "9 is not a channel id"),
            FieldError::new(None, None, "malformed JSON"),
        ];
        let errors = FieldErrors::from_details(&details);
        assert_eq!(errors.of("labels").as_deref(), Some("severity: is set by microdash itself"));
        assert_eq!(errors.of("channels").as_deref(), Some("lists channel 3 twice; 9 is not a channel id"));
        assert_eq!(errors.of(""), Some("malformed JSON".into()));
        assert_eq!(errors.of("name"), None);
        let mut edited = errors.clone();
        edited.clear("labels");
        assert_eq!(edited.of("labels"), None);
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["", "channels", "labels", "warning"]);
        for field in errors.fields().filter(|f| !f.is_empty()) {
            assert!(RuleField::of_key(field).is_some(), "{field} is an input of the form");
        }
    }

    fn form(pairs: &[(RuleField, &str)]) -> RuleForm {
        let mut form = RuleForm::default();
        for (field, value) in pairs {
            form.set(*field, value);
        }
        form
    }

    fn fields_of(result: Result<impl std::fmt::Debug, FieldErrors>) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(errors) => errors.fields().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn the_form_checks_required_fields_and_what_does_not_read_before_sending() {
        assert_eq!(fields_of(RuleForm::default().input()), ["critical", "metric_name", "name"]);
        let bad = form(&[
            (RuleField::Name, "cpu"),
            (RuleField::Metric, "cpu.usage_percent"),
            (RuleField::Critical, "ninety"),
            (RuleField::Window, "5 minutes"),
            (RuleField::Tags, "mount"),
        ]);
        assert_eq!(fields_of(bad.input()), ["critical", "tags", "window_s"]);
        // Threshold order is the server's (and core's) to judge, not the cheap checks'.
        let inverted = form(&[
            (RuleField::Name, "cpu"),
            (RuleField::Metric, "cpu.usage_percent"),
            (RuleField::Critical, "90"),
            (RuleField::Warning, "95"),
        ]);
        assert!(inverted.input().is_ok());
        assert_eq!(fields_of(inverted.rule()), ["warning"]);
    }

    #[test]
    fn a_rule_round_trips_through_the_form() {
        let input = AlertRuleIn {
            name: Some("disk full".into()),
            metric_name: Some("disk.used_percent".into()),
            agent_id: Some("web-1".into()),
            tags: Some(BTreeMap::from([("mount".into(), "/".into())])),
            aggregate: Some(Aggregate::Avg),
            window_s: Some(300),
            operator: Some(Operator::Ge),
            critical: Some(95.5),
            warning: Some(90.0),
            for_s: Some(60),
            keep_firing_for_s: Some(120),
            recovery: Some(85.0),
            no_data_s: Some(600),
            no_data_state: Some(NoDataState::Alerting),
            repeat_interval_s: Some(3_600),
            channels: Some(vec![2, 5]),
            labels: Some(BTreeMap::from([("team".into(), "ops".into())])),
            summary: Some("{{agent_id}} disk at {{value}} %".into()),
            enabled: Some(false),
        };
        let out = input.clone().validate().unwrap().to_out(7, 0, 0);
        let mut edited = RuleForm::from_out(&out);
        assert_eq!(edited.get(RuleField::Window), "5m");
        assert_eq!(edited.get(RuleField::Repeat), "1h");
        assert_eq!(edited.input().unwrap(), input);
        edited.toggle_channel(5);
        edited.toggle_channel(9);
        assert_eq!(edited.input().unwrap().channels, Some(vec![2, 9]));
        // A minimal rule: optional inputs empty, defaults left to the server.
        let minimal = form(&[(RuleField::Name, "cpu"), (RuleField::Metric, "cpu"), (RuleField::Critical, "90")]);
        let sent = minimal.input().unwrap();
        assert_eq!((sent.window_s, sent.warning, sent.agent_id.as_deref()), (None, None, None));
        assert_eq!(
            (sent.operator, sent.aggregate, sent.enabled),
            (Some(Operator::Gt), Some(Aggregate::Last), Some(true))
        );
    }

    fn series(agent: &str, tags: &[(&str, &str)]) -> SeriesOut {
        SeriesOut {
            metric_name: "cpu.usage_percent".into(),
            agent_id: Some(agent.into()),
            tags: tags.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        }
    }

    fn point(agent: &str, ts_ms: i64, value: f64) -> PointOut {
        PointOut {
            metric_name: "cpu.usage_percent".into(),
            agent_id: Some(agent.into()),
            timestamp: microdash_core::metric::format_millis(ts_ms),
            value,
            ..PointOut::default()
        }
    }

    #[test]
    fn windows_aggregate_like_the_evaluator() {
        let points = [(1_000, 1.0), (2_000, 5.0), (3_000, 3.0), (3_000, 4.0), (9_000, 100.0)];
        let at = |aggregate, window_s| window_value(&points, aggregate, window_s, 3_000);
        assert_eq!(at(Aggregate::Last, 0), Some(4.0), "latest point, ties to the larger");
        assert_eq!(at(Aggregate::Count, 0), Some(2.0), "every point at the latest time");
        assert_eq!(at(Aggregate::Avg, 2), Some(4.0), "(1 s, 3 s]: 5, 3, 4");
        assert_eq!(at(Aggregate::Max, 2), Some(5.0));
        assert_eq!(at(Aggregate::Min, 3), Some(1.0));
        assert_eq!(at(Aggregate::Sum, 3), Some(13.0));
        assert_eq!(window_value(&points, Aggregate::Last, 0, 500), None, "nothing before now");
        assert_eq!(window_value(&points, Aggregate::Avg, 1, 8_000), None, "nothing in the window");
        assert_eq!(preview_span_ms(0), 900_000);
        assert_eq!(preview_span_ms(3_600), 3_600_000);
    }

    #[test]
    fn the_preview_says_what_each_watched_series_would_be() {
        let rule = form(&[
            (RuleField::Name, "cpu"),
            (RuleField::Metric, "cpu.usage_percent"),
            (RuleField::Critical, "90"),
            (RuleField::Warning, "70"),
        ])
        .rule()
        .unwrap();
        let now = 1_700_000_000_000;
        let all = [series("web-1", &[]), series("web-2", &[]), series("db-1", &[]), series("idle", &[])];
        let points = [
            point("web-1", now - 5_000, 10.0),
            point("web-1", now - 1_000, 73.0),
            point("web-2", now - 1_000, 12.0),
            point("db-1", now - 2_000, 95.0),
        ];
        let rows = preview(&rule, &all, &points, now);
        let got: Vec<(String, Verdict)> = rows.iter().map(|r| (r.series.clone(), r.verdict)).collect();
        assert_eq!(
            got,
            [
                ("db-1".into(), Verdict::Critical),
                ("idle".into(), Verdict::NoData),
                ("web-1".into(), Verdict::Warning),
                ("web-2".into(), Verdict::Ok)
            ]
        );
        assert_eq!(rows[2].sentence(Unit::Percent), "web-1 now 73%: would be warning");
        assert_eq!(rows[1].sentence(Unit::Percent), "idle: no data in the window");
        // One agent and a tag: only that series is watched.
        let mut narrow = RuleForm::default();
        for (field, value) in [
            (RuleField::Name, "cpu"),
            (RuleField::Metric, "cpu.usage_percent"),
            (RuleField::Critical, "90"),
            (RuleField::Agent, "web-1"),
            (RuleField::Tags, "core=0"),
        ] {
            narrow.set(field, value);
        }
        let narrow = narrow.rule().unwrap();
        let tagged =
            [series("web-1", &[("core", "0")]), series("web-1", &[("core", "1")]), series("web-2", &[("core", "0")])];
        let rows = preview(&narrow, &tagged, &[], now);
        assert_eq!(rows.iter().map(|r| r.series.as_str()).collect::<Vec<_>>(), ["web-1 core=0"]);
    }

    #[test]
    fn channel_forms_send_only_their_kinds_fields() {
        let webhook = ChannelForm {
            name: " ops ".into(),
            url: "http://127.0.0.1:9/hook".into(),
            to: "ignored@example.com".into(),
            ..ChannelForm::default()
        };
        let input = webhook.input().unwrap();
        assert_eq!(
            serde_json::to_string(&input).unwrap(),
            r#"{"name":"ops","kind":"webhook","url":"http://127.0.0.1:9/hook","format":"microdash"}"#,
            "no secret: a PUT keeps the stored one"
        );
        let with_secret = ChannelForm { secret: "s3cret".into(), ..webhook.clone() };
        assert_eq!(with_secret.input().unwrap().secret.as_deref(), Some("s3cret"));
        let email = ChannelForm { kind: ChannelKind::Email, to: "a@x.io, b@y.io\nc@z.io".into(), ..webhook };
        let input = email.input().unwrap();
        assert_eq!(input.to, Some(vec!["a@x.io".into(), "b@y.io".into(), "c@z.io".into()]));
        assert_eq!((input.url, input.format), (None, None));
        let empty = ChannelForm::default().input().unwrap_err();
        assert_eq!(empty.fields().collect::<Vec<_>>(), ["name", "url"]);
        let out = ChannelOut {
            id: 3,
            name: "mail".into(),
            kind: ChannelKind::Email,
            url: None,
            format: None,
            has_secret: false,
            to: Some(vec!["a@x.io".into(), "b@y.io".into()]),
            created_at: String::new(),
        };
        assert_eq!(ChannelForm::from_out(&out).to, "a@x.io, b@y.io");
        assert_eq!(channel_target(&out), "a@x.io, b@y.io");
    }

    fn alert(rule: &str, state: AlertState, severity: Option<Severity>, since_ms: i64) -> AlertOut {
        AlertOut {
            rule_id: 1,
            rule_name: rule.into(),
            agent_id: Some("web-1".into()),
            tags: BTreeMap::new(),
            state,
            severity,
            value: Some(1.0),
            since: microdash_core::metric::format_millis(since_ms),
        }
    }

    #[test]
    fn the_inbox_puts_critical_firing_first_and_the_longest_standing_before_the_newer() {
        let mut alerts = vec![
            alert("a", AlertState::Pending, Some(Severity::Critical), 1_000),
            alert("b", AlertState::Firing, Some(Severity::Warning), 1_000),
            alert("c", AlertState::Firing, Some(Severity::Critical), 5_000),
            alert("d", AlertState::Firing, Some(Severity::Critical), 2_000),
        ];
        sort_alerts(&mut alerts);
        assert_eq!(alerts.iter().map(|a| a.rule_name.as_str()).collect::<String>(), "dcba");
        assert_eq!(Tone::of(AlertState::Firing, None), Tone::Critical, "a no-data alert fires as critical");
        assert_eq!(Tone::of(AlertState::Pending, Some(Severity::Critical)).color(), None);
    }

    fn event(rule_id: i64, from: AlertState, to: AlertState, severity: Option<Severity>, at_ms: i64) -> AlertEventOut {
        let at = microdash_core::metric::format_millis(at_ms);
        AlertEventOut {
            id: at_ms,
            rule_id,
            rule_name: "cpu high".into(),
            agent_id: Some("web-1".into()),
            tags: BTreeMap::new(),
            state: to,
            severity,
            value: Some(95.0),
            since: at.clone(),
            from,
            to,
            at,
        }
    }

    fn rule_out(id: i64, metric: &str, agent: Option<&str>, warning: Option<f64>, enabled: bool) -> AlertRuleOut {
        let input = AlertRuleIn {
            name: Some(format!("rule {id}")),
            metric_name: Some(metric.into()),
            agent_id: agent.map(Into::into),
            operator: Some(Operator::Gt),
            critical: Some(90.0),
            warning,
            enabled: Some(enabled),
            ..AlertRuleIn::default()
        };
        input.validate().unwrap().to_out(id, 0, 0)
    }

    #[test]
    fn charts_mark_where_alerts_fired_and_ended_and_draw_the_thresholds() {
        let cpu = "cpu.usage_percent";
        let rules = [
            rule_out(1, cpu, None, Some(80.0), true),
            rule_out(2, cpu, Some("db-1"), None, true),
            rule_out(3, cpu, None, Some(50.0), false),
            rule_out(4, "mem.used_percent", None, None, true),
        ];
        let events = [
            // Newest first, as the API answers.
            event(1, AlertState::Firing, AlertState::Ok, Some(Severity::Critical), 5_000),
            event(1, AlertState::Firing, AlertState::Firing, Some(Severity::Critical), 4_000),
            event(1, AlertState::Pending, AlertState::Firing, Some(Severity::Warning), 3_000),
            event(1, AlertState::Ok, AlertState::Pending, Some(Severity::Warning), 2_000),
            event(4, AlertState::Ok, AlertState::Firing, Some(Severity::Critical), 2_500),
            event(99, AlertState::Ok, AlertState::Firing, Some(Severity::Critical), 2_600),
        ];
        let all = overlay(cpu, None, &rules, &events);
        let marks: Vec<(i64, &str)> = all.markers.iter().map(|m| (m.ts_ms, m.color)).collect();
        assert_eq!(marks, [(3_000, WARNING_COLOR), (4_000, CRITICAL_COLOR), (5_000, RESOLVED_COLOR)]);
        assert_eq!(all.markers[1].text, "cpu high · web-1: firing → firing (critical) at 95%");
        assert_eq!(all.markers[2].text, "cpu high · web-1: firing → ok (resolved) at 95%");
        assert_eq!(all.markers_in((3_500, 10_000)), 2);
        // Rule 1's critical and warning; rule 2's critical is the same line as rule 1's; the
        // disabled rule 3 draws nothing.
        let lines: Vec<(f64, &str)> = all.thresholds.iter().map(|t| (t.value, t.color)).collect();
        assert_eq!(lines, [(90.0, CRITICAL_COLOR), (80.0, WARNING_COLOR)]);
        assert_eq!(all.thresholds[0].label, "> 90% critical");
        // A page of one agent: only rules on every agent or on that one.
        let web = overlay(cpu, Some("web-1"), &[rules[1].clone()], &events);
        assert!(web.thresholds.is_empty() && web.markers.is_empty());
        assert_eq!(overlay(cpu, Some("db-1"), &[rules[1].clone()], &[]).thresholds.len(), 1);
    }

    #[test]
    fn history_and_marker_queries() {
        let filter = HistoryFilter { rule_id: Some(4), agent: Some("web-1".into()), range: Preset::Hour };
        assert_eq!(
            filter.params(7_200_500),
            [
                ("start_time", "3600".to_owned()),
                ("rule_id", "4".into()),
                ("agent_id", "web-1".into()),
                ("limit", "200".into())
            ]
        );
        assert_eq!(HistoryFilter::default().params(86_400_000)[0], ("start_time", "0".into()));
        assert_eq!(
            marker_params((1_500, 9_500), None),
            [("start_time", "1".to_owned()), ("end_time", "10".into()), ("limit", "1000".into())]
        );
        let e = event(1, AlertState::Ok, AlertState::Pending, Some(Severity::Critical), 0);
        assert_eq!(transition_text(&e), "ok → pending");
        assert_eq!(transition_tone(&e), None);
    }

    #[test]
    fn a_test_delivery_is_done_once_sent_or_failed() {
        let entry = |id, status| NotificationOut {
            id,
            channel_id: 1,
            rule_id: None,
            agent_id: None,
            kind: microdash_core::api::alert::NotificationKind::Test,
            status,
            attempts: 1,
            last_error: None,
            http_status: None,
            created_at: String::new(),
            sent_at: None,
        };
        assert!(!delivery_done(&[], 1));
        assert!(!delivery_done(&[entry(1, NotificationStatus::Pending)], 1));
        assert!(!delivery_done(&[entry(2, NotificationStatus::Sent)], 1));
        assert!(delivery_done(&[entry(1, NotificationStatus::Failed)], 1));
        assert_eq!(status_key(NotificationStatus::Sent), "sent");
    }

    #[test]
    fn conditions_read_in_the_metrics_unit() {
        assert_eq!(
            describe_condition(&rule_out(1, "cpu.usage_percent", None, Some(80.0), true)),
            "last > 90% critical, > 80% warning"
        );
    }
}
