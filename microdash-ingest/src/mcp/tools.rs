//! The tools' arguments and answers (typed, with JSON Schemas), and the pure work between
//! the API's answers and the tools': time ranges, summaries, downsampling, suggestions.

use std::collections::{BTreeMap, BTreeSet};

use microdash_core::api::alert::{AlertEventOut, AlertOut, AlertRuleIn, AlertRuleOut};
use microdash_core::api::{AgentOut, HealthResponse, PointOut, Resolution, ResolutionRequest, TenantOut, TimestampIn};
use microdash_core::metric::format_millis;
use microdash_core::rollup::{DAY_MS, HOUR_MS, MINUTE_MS};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Points per series `query_metrics` answers unless told otherwise.
pub const DEFAULT_MAX_POINTS: usize = 120;
/// Most points per series a caller may ask for.
pub const MAX_POINTS: usize = 1_000;
/// Most series one `query_metrics` answer carries.
pub const MAX_SERIES: usize = 20;
/// Most agents one `query_metrics` call may name.
pub const MAX_AGENTS: usize = 20;
/// Longest range a query may cover.
pub const MAX_RANGE_MS: i64 = 400 * DAY_MS;
/// Most entries a list answers.
pub const MAX_LIST: usize = 500;
/// Largest answer a tool gives, in bytes of JSON.
pub const MAX_RESULT_BYTES: usize = 1 << 20;

/// A time or a range as a caller writes it: text, or Unix seconds as a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TimeArg {
    /// Text: a duration back from now (`15m`, `1h`, `24h`, `7d`, `2w`), an RFC 3339 time, Unix
    /// seconds, or `START/END`.
    Text(String),
    /// Unix seconds.
    Seconds(f64),
}

/// `tenant`: only for admin tokens, which hold no tenant of their own.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantArgs {
    /// Tenant slug. Only admin tokens need it (they must name one); a tenant token always reads its own tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Arguments of `list_agents`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListAgentsArgs {
    /// Only agents with this status: `online` or `offline`.
    #[serde(default)]
    pub status: Option<String>,
    /// Tenant slug; admin tokens only.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Arguments of `list_metrics`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListMetricsArgs {
    /// Only metrics whose name starts with this (`cpu.`, `disk`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Only series of this agent.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Tenant slug; admin tokens only.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Arguments of `query_metrics`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryMetricsArgs {
    /// The metric name, exactly as `list_metrics` shows it (`cpu.usage_percent`).
    pub metric: String,
    /// Only these agents (at most 20); every agent reporting the metric when absent.
    #[serde(default)]
    pub agents: Option<Vec<String>>,
    /// Only series carrying all of these tags (exact values), such as `{"mount": "/"}`.
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// What to read: a duration back from now (`15m`, `1h`, `24h`, `7d`; default `1h`), a start time
    /// (RFC 3339 such as `2026-11-28T12:00:00Z`, or Unix seconds), or `START/END`. At most 400 days.
    #[serde(default)]
    pub range: Option<TimeArg>,
    /// End of the range (RFC 3339 or Unix seconds); now when absent.
    #[serde(default)]
    pub end: Option<TimeArg>,
    /// `auto` (default: the finest stored resolution that fits `max_points`), `raw`, `1m` or `5m`.
    #[serde(default)]
    pub resolution: Option<ResolutionRequest>,
    /// Most points per series in the answer (default 120, at most 1000); longer series are merged into buckets.
    #[serde(default)]
    pub max_points: Option<usize>,
    /// Tenant slug; admin tokens only.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Arguments of `get_alerts`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetAlertsArgs {
    /// `firing` (default), `pending`, `no_data`, `ok`, or `all`.
    #[serde(default)]
    pub state: Option<String>,
    /// Tenant slug; admin tokens only.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Arguments of `get_alert_history`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertHistoryArgs {
    /// How far back: a duration (`24h`, `7d`; default `24h`), a start time, or `START/END`.
    #[serde(default)]
    pub range: Option<TimeArg>,
    /// Only this rule's transitions.
    #[serde(default)]
    pub rule_id: Option<i64>,
    /// Only this agent's transitions.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Most transitions (newest first; default 50, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Tenant slug; admin tokens only.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Arguments of `create_alert_rule`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRuleArgs {
    /// The rule. Required: `name`, `metric_name`, `operator` (`>`, `>=`, `<`, `<=`) and `critical`.
    pub rule: AlertRuleIn,
    /// Tenant slug; admin tokens only.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Arguments of `update_alert_rule`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRuleArgs {
    /// The rule's id (from `list_alert_rules`).
    pub id: i64,
    /// Only the settings to change; every other setting keeps its value.
    pub changes: AlertRuleIn,
    /// Tenant slug; admin tokens only.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Arguments of `pause_alert_rule`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRuleArgs {
    /// The rule's id (from `list_alert_rules`).
    pub id: i64,
    /// `true` (default) pauses the rule (it is no longer evaluated; a firing alert resolves); `false` resumes it.
    #[serde(default)]
    pub paused: Option<bool>,
    /// Tenant slug; admin tokens only.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Answer of `list_tenants`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TenantsOut {
    /// The tenants.
    pub tenants: Vec<TenantOut>,
}

/// Answer of `list_agents`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AgentsOut {
    /// The tenant answered for.
    pub tenant: Option<String>,
    /// Agents, `online` when they reported within twice their interval.
    pub agents: Vec<AgentOut>,
    /// How many agents there are (before the status filter).
    pub total: usize,
}

/// One metric in `list_metrics`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MetricOut {
    /// The metric name.
    pub metric_name: String,
    /// How many series (agent and tag combinations) report it.
    pub series: usize,
    /// The agents reporting it.
    pub agents: Vec<String>,
    /// Its tags: every key with the values seen.
    pub tags: BTreeMap<String, Vec<String>>,
}

/// Answer of `list_metrics`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MetricsOut {
    /// The tenant answered for.
    pub tenant: Option<String>,
    /// Metrics by name.
    pub metrics: Vec<MetricOut>,
    /// How many metrics matched.
    pub total: usize,
    /// Whether some were left out (narrow with `prefix`).
    pub truncated: bool,
}

/// Answer of `get_health`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HealthOut {
    /// The server's health: `ok`, or `degraded` naming what is down.
    #[serde(flatten)]
    pub health: HealthResponse,
    /// The server version of this MCP endpoint.
    pub version: String,
}

/// How a series moved over the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// Up, by a third of its spread or more over the range.
    Rising,
    /// Down, by a third of its spread or more over the range.
    Falling,
    /// Neither.
    Flat,
    /// One point: no trend.
    SinglePoint,
}

/// The statistics of one series over the whole range (all its points, not only the ones shown).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Summary {
    /// How many points were stored in the range.
    pub count: u64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The mean of every point.
    pub avg: f64,
    /// The earliest value (with rollups: the earliest bucket's mean).
    pub first: f64,
    /// The latest value.
    pub last: f64,
    /// When the earliest point (or bucket) was, RFC 3339.
    pub first_at: String,
    /// When the latest point (or bucket) was, RFC 3339.
    pub last_at: String,
    /// `last - first`.
    pub change: f64,
    /// The least-squares slope, per hour.
    pub slope_per_hour: f64,
    /// `rising`, `falling`, `flat` or `single_point`.
    pub trend: Trend,
}

/// One series in a `query_metrics` answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SeriesAnswer {
    /// The agent, if the series has one.
    pub agent_id: Option<String>,
    /// The series' tags.
    pub tags: BTreeMap<String, String>,
    /// Its statistics over the range.
    pub summary: Summary,
    /// At most `max_points` points, oldest first, each `[time (RFC 3339), value]`; with rollups, the time
    /// is a bucket's start and the value its mean.
    pub points: Vec<(String, f64)>,
}

/// Answer of `query_metrics`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct QueryOut {
    /// The metric.
    pub metric: String,
    /// The tenant answered for.
    pub tenant: Option<String>,
    /// Start of the range, RFC 3339 (inclusive).
    pub start: String,
    /// End of the range, RFC 3339 (exclusive).
    pub end: String,
    /// The resolution the points are at: `raw`, or buckets of `1m`, `5m`, `10m`, ...
    pub resolution: Resolution,
    /// The series, at most 20 (the ones with most points first when there are more).
    pub series: Vec<SeriesAnswer>,
    /// How many series matched.
    pub total_series: usize,
    /// Anything the caller should know (series left out, points merged, nothing found).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Answer of `get_alerts`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AlertsOut {
    /// The tenant answered for.
    pub tenant: Option<String>,
    /// The state asked for.
    pub state: String,
    /// The alert instances (one per rule and series).
    pub alerts: Vec<AlertOut>,
    /// Whether some were left out.
    pub truncated: bool,
}

/// Answer of `get_alert_history`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HistoryOut {
    /// The tenant answered for.
    pub tenant: Option<String>,
    /// Start of the range, RFC 3339.
    pub start: String,
    /// End of the range, RFC 3339.
    pub end: String,
    /// Transitions, newest first.
    pub transitions: Vec<AlertEventOut>,
}

/// Answer of `list_alert_rules`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RulesOut {
    /// The tenant answered for.
    pub tenant: Option<String>,
    /// The rules.
    pub rules: Vec<AlertRuleOut>,
}

/// Answer of the tools that change a rule.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RuleOut {
    /// The rule as stored now.
    pub rule: AlertRuleOut,
}

/// A duration such as `15m`, `1h`, `7d`, `2w`, `90s`, in milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit_ms = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => MINUTE_MS,
        "h" | "hr" | "hrs" | "hour" | "hours" => HOUR_MS,
        "d" | "day" | "days" => DAY_MS,
        "w" | "week" | "weeks" => 7 * DAY_MS,
        _ => return None,
    };
    let ms = number * unit_ms as f64;
    (ms.is_finite() && ms > 0.0 && ms < 1e15).then_some(ms as i64)
}

fn parse_time(field: &str, arg: &TimeArg) -> Result<i64, String> {
    let parsed = match arg {
        TimeArg::Seconds(secs) => TimestampIn::UnixSeconds(*secs).to_millis(),
        TimeArg::Text(text) => TimestampIn::from_query(text.trim()).to_millis(),
    };
    parsed.map_err(|_| {
        let shown = match arg {
            TimeArg::Seconds(secs) => secs.to_string(),
            TimeArg::Text(text) => text.clone(),
        };
        format!(
            "{field} `{shown}` is not a time: write RFC 3339 (`2026-11-28T12:00:00Z`) or Unix seconds (`1795867200`)"
        )
    })
}

/// The `[start, end)` in Unix milliseconds of a `range` and `end` (see [`QueryMetricsArgs`]),
/// `default` back from now when no range is given; an error a model can act on otherwise.
pub fn parse_range(
    range: Option<&TimeArg>,
    end: Option<&TimeArg>,
    default_ms: i64,
    now: i64,
) -> Result<(i64, i64), String> {
    let mut end_ms = end.map(|e| parse_time("end", e)).transpose()?.unwrap_or(now);
    let start_ms = match range {
        None => end_ms - default_ms,
        Some(TimeArg::Text(text)) if text.contains('/') => {
            let (a, b) = text.split_once('/').unwrap_or_default();
            end_ms = parse_time("range end", &TimeArg::Text(b.to_owned()))?;
            parse_time("range start", &TimeArg::Text(a.to_owned()))?
        }
        Some(TimeArg::Text(text)) => match parse_duration(text) {
            Some(duration) => end_ms.saturating_sub(duration),
            None => parse_time("range", &TimeArg::Text(text.clone())).map_err(|_| {
                format!(
                    "range `{text}` is neither a duration back from now (`15m`, `1h`, `24h`, `7d`) nor a start time \
                     (RFC 3339 such as `2026-11-28T12:00:00Z`, or Unix seconds)"
                )
            })?,
        },
        Some(time @ TimeArg::Seconds(_)) => parse_time("range", time)?,
    };
    if end_ms <= start_ms {
        return Err(format!(
            "the range is empty: it starts at {} and ends at {}; the start must come first",
            format_millis(start_ms),
            format_millis(end_ms)
        ));
    }
    if end_ms - start_ms > MAX_RANGE_MS {
        return Err(format!(
            "the range covers {} days; ask for at most {} days (for example `range: \"30d\"`)",
            (end_ms - start_ms) / DAY_MS,
            MAX_RANGE_MS / DAY_MS
        ));
    }
    if start_ms < 0 || end_ms > now + DAY_MS {
        return Err(format!(
            "the range {} to {} is outside the data: ask for times between 1970 and now ({})",
            format_millis(start_ms),
            format_millis(end_ms),
            format_millis(now)
        ));
    }
    Ok((start_ms, end_ms))
}

/// A point as the API answers it: time (ms), mean, weight (points it stands for), min, max, last.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Weighted {
    at: i64,
    value: f64,
    count: u64,
    min: f64,
    max: f64,
    last: f64,
}

fn weighted(point: &PointOut) -> Option<Weighted> {
    let at = TimestampIn::Rfc3339(point.timestamp.clone()).to_millis().ok()?;
    Some(Weighted {
        at,
        value: point.value,
        count: point.count.unwrap_or(1).max(1),
        min: point.min.unwrap_or(point.value),
        max: point.max.unwrap_or(point.value),
        last: point.last.unwrap_or(point.value),
    })
}

/// The summary of one series' points (raw or buckets, oldest first); `None` when empty.
pub fn summarise(points: &[PointOut]) -> Option<Summary> {
    let points: Vec<Weighted> = points.iter().filter_map(weighted).collect();
    let (first, last) = (points.first()?, points.last()?);
    let count: u64 = points.iter().map(|p| p.count).sum();
    let min = points.iter().map(|p| p.min).fold(f64::INFINITY, f64::min);
    let max = points.iter().map(|p| p.max).fold(f64::NEG_INFINITY, f64::max);
    let avg = points.iter().map(|p| p.value * p.count as f64).sum::<f64>() / count as f64;
    let slope_per_ms = slope(&points);
    let span = (last.at - first.at) as f64;
    let spread = max - min;
    let trend = if points.len() < 2 {
        Trend::SinglePoint
    } else if spread <= 0.0 || (slope_per_ms * span).abs() < spread / 3.0 {
        Trend::Flat
    } else if slope_per_ms > 0.0 {
        Trend::Rising
    } else {
        Trend::Falling
    };
    Some(Summary {
        count,
        min,
        max,
        avg,
        first: first.value,
        last: last.last,
        first_at: format_millis(first.at),
        last_at: format_millis(last.at),
        change: last.last - first.value,
        slope_per_hour: slope_per_ms * HOUR_MS as f64,
        trend,
    })
}

/// Least-squares slope of value over time, per millisecond (0 for fewer than two times).
fn slope(points: &[Weighted]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let t0 = points[0].at as f64;
    let mean_t = points.iter().map(|p| p.at as f64 - t0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.value).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for p in points {
        let dt = p.at as f64 - t0 - mean_t;
        num += dt * (p.value - mean_v);
        den += dt * dt;
    }
    if den == 0.0 { 0.0 } else { num / den }
}

/// At most `max_points` `[time, value]` pairs: consecutive points merged (means weighted by
/// the points each stands for) when there are more.
pub fn downsample(points: &[PointOut], max_points: usize) -> Vec<(String, f64)> {
    let max_points = max_points.max(1);
    if points.len() <= max_points {
        return points.iter().map(|p| (p.timestamp.clone(), p.value)).collect();
    }
    let per = points.len().div_ceil(max_points);
    points
        .chunks(per)
        .filter_map(|chunk| {
            let items: Vec<Weighted> = chunk.iter().filter_map(weighted).collect();
            let count: u64 = items.iter().map(|p| p.count).sum();
            let first = items.first()?;
            let mean = items.iter().map(|p| p.value * p.count as f64).sum::<f64>() / count as f64;
            Some((format_millis(first.at), mean))
        })
        .collect()
}

/// Levenshtein distance (small strings only: names and ids).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The known names closest to `wanted`: those it starts, those containing it, then near misses.
pub fn suggest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted_lower = wanted.to_lowercase();
    let mut scored: Vec<(usize, &str)> = known
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|name| {
            let lower = name.to_lowercase();
            let score = if lower.starts_with(&wanted_lower) || wanted_lower.starts_with(&lower) {
                0
            } else if lower.contains(&wanted_lower) {
                1
            } else {
                let d = distance(&wanted_lower, &lower);
                if d <= 2.max(wanted.len() / 5) { 1 + d } else { return None }
            };
            Some((score, name))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, name)| name.to_owned()).collect()
}

/// "did you mean `a`?" / "did you mean `a`, `b` or `c`?"
pub fn did_you_mean(suggestions: &[String]) -> Option<String> {
    let quoted: Vec<String> = suggestions.iter().map(|s| format!("`{s}`")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(format!("did you mean {one}?")),
        [init @ .., last] => Some(format!("did you mean {} or {last}?", init.join(", "))),
    }
}

/// The metrics of a catalogue, grouped by name.
pub fn group_metrics(series: &[microdash_core::api::SeriesOut]) -> Vec<MetricOut> {
    type Seen = (usize, BTreeSet<String>, BTreeMap<String, BTreeSet<String>>);
    let mut by_name: BTreeMap<&str, Seen> = BTreeMap::new();
    for s in series {
        let entry = by_name.entry(&s.metric_name).or_default();
        entry.0 += 1;
        if let Some(agent) = &s.agent_id {
            entry.1.insert(agent.clone());
        }
        for (k, v) in &s.tags {
            entry.2.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    by_name
        .into_iter()
        .map(|(name, (series, agents, tags))| MetricOut {
            metric_name: name.to_owned(),
            series,
            // Bounded, so one metric reported by a large fleet cannot fill the answer.
            agents: agents.into_iter().take(100).collect(),
            tags: tags.into_iter().map(|(k, v)| (k, v.into_iter().take(50).collect())).collect(),
        })
        .collect()
}

/// A stored rule as the body that would store it again.
pub fn rule_in_of(rule: &AlertRuleOut) -> AlertRuleIn {
    AlertRuleIn {
        name: Some(rule.name.clone()),
        metric_name: Some(rule.metric_name.clone()),
        agent_id: rule.agent_id.clone(),
        tags: Some(rule.tags.clone()),
        aggregate: Some(rule.aggregate),
        window_s: Some(i64::from(rule.window_s)),
        operator: Some(rule.operator),
        critical: Some(rule.critical),
        warning: rule.warning,
        for_s: Some(i64::from(rule.for_s)),
        keep_firing_for_s: Some(i64::from(rule.keep_firing_for_s)),
        recovery: rule.recovery,
        no_data_s: Some(i64::from(rule.no_data_s)),
        no_data_state: Some(rule.no_data_state),
        repeat_interval_s: Some(i64::from(rule.repeat_interval_s)),
        channels: Some(rule.channels.clone()),
        labels: Some(rule.labels.clone()),
        summary: rule.summary.clone(),
        enabled: Some(rule.enabled),
    }
}

/// `base` with every setting `changes` names replaced.
pub fn overlay(mut base: AlertRuleIn, changes: AlertRuleIn) -> AlertRuleIn {
    macro_rules! take {
        ($($field:ident),*) => { $( if changes.$field.is_some() { base.$field = changes.$field; } )* };
    }
    take!(
        name,
        metric_name,
        agent_id,
        tags,
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
        channels,
        labels,
        summary,
        enabled
    );
    base
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn point(at: i64, value: f64) -> PointOut {
        PointOut { timestamp: format_millis(at), value, ..PointOut::default() }
    }

    #[test]
    fn the_query_schema_lists_the_resolutions() {
        let schema = serde_json::to_string(&schemars::schema_for!(QueryMetricsArgs)).unwrap();
        assert!(schema.contains(r#"["raw","1m","5m","auto"]"#), "{schema}");
        let args: QueryMetricsArgs = serde_json::from_str(r#"{"metric": "cpu", "resolution": "1m"}"#).unwrap();
        assert_eq!(args.resolution, Some(ResolutionRequest::Exact(Resolution::ONE_MINUTE)));
        let err = serde_json::from_str::<QueryMetricsArgs>(r#"{"metric": "cpu", "resolution": "hourly"}"#).unwrap_err();
        assert!(err.to_string().contains("raw, 1m, 5m, auto"), "{err}");
    }

    #[test]
    fn ranges_read_as_durations_times_and_intervals() {
        let now = 1_800_000_000_000;
        let text = |s: &str| TimeArg::Text(s.into());
        assert_eq!(parse_range(None, None, HOUR_MS, now), Ok((now - HOUR_MS, now)));
        assert_eq!(parse_range(Some(&text("7d")), None, HOUR_MS, now), Ok((now - 7 * DAY_MS, now)));
        assert_eq!(parse_range(Some(&text("90 minutes")), None, HOUR_MS, now), Ok((now - 90 * MINUTE_MS, now)));
        assert_eq!(parse_range(Some(&TimeArg::Seconds(1_799_996_400.0)), None, HOUR_MS, now), Ok((now - HOUR_MS, now)));
        assert_eq!(parse_range(Some(&text("1799996400")), None, HOUR_MS, now), Ok((now - HOUR_MS, now)));
        let iso = format!("{}/{}", format_millis(now - 2 * HOUR_MS), format_millis(now - HOUR_MS));
        assert_eq!(parse_range(Some(&text(&iso)), None, HOUR_MS, now), Ok((now - 2 * HOUR_MS, now - HOUR_MS)));
        let err = parse_range(Some(&text("100000d")), None, HOUR_MS, now).unwrap_err();
        assert!(err.contains("at most 400 days"), "{err}");
        let err = parse_range(Some(&text("yesterday")), None, HOUR_MS, now).unwrap_err();
        assert!(err.contains("neither a duration"), "{err}");
        let err = parse_range(Some(&text("1h")), Some(&text("soon")), HOUR_MS, now).unwrap_err();
        assert!(err.contains("end `soon` is not a time"), "{err}");
    }

    #[test]
    fn summaries_cover_every_point_and_name_the_trend() {
        let rising: Vec<PointOut> = (0..10).map(|i| point(i * MINUTE_MS, i as f64)).collect();
        let s = summarise(&rising).unwrap();
        assert_eq!((s.count, s.min, s.max, s.first, s.last, s.trend), (10, 0.0, 9.0, 0.0, 9.0, Trend::Rising));
        assert!((s.slope_per_hour - 60.0).abs() < 1e-9, "{}", s.slope_per_hour);
        let flat: Vec<PointOut> = (0..10).map(|i| point(i * MINUTE_MS, if i % 2 == 0 { 1.0 } else { 2.0 })).collect();
        assert_eq!(summarise(&flat).unwrap().trend, Trend::Flat);
        // Buckets weigh by their counts and keep their extremes.
        let buckets = vec![
            PointOut { count: Some(3), min: Some(0.0), max: Some(10.0), last: Some(4.0), ..point(0, 2.0) },
            PointOut { count: Some(1), min: Some(5.0), max: Some(5.0), last: Some(5.0), ..point(MINUTE_MS, 5.0) },
        ];
        let s = summarise(&buckets).unwrap();
        assert_eq!((s.count, s.min, s.max, s.avg, s.last), (4, 0.0, 10.0, 2.75, 5.0));
        assert!(summarise(&[]).is_none());
    }

    #[test]
    fn downsampling_keeps_at_most_max_points() {
        let points: Vec<PointOut> = (0..1000).map(|i| point(i * 1000, i as f64)).collect();
        let shown = downsample(&points, 120);
        assert!(shown.len() <= 120 && shown.len() >= 100, "{}", shown.len());
        assert_eq!(shown[0], (format_millis(0), 4.0));
        assert_eq!(downsample(&points[..5], 120).len(), 5);
    }

    #[test]
    fn suggestions_prefer_prefixes_then_near_misses() {
        let known = ["cpu.usage_percent", "mem.used_percent", "disk.used_percent", "load.1m"];
        assert_eq!(suggest("cpu", known), vec!["cpu.usage_percent"]);
        assert_eq!(suggest("mem.usedpercent", known), vec!["mem.used_percent"]);
        assert!(suggest("network", known).is_empty());
        assert_eq!(did_you_mean(&suggest("cpu", known)).as_deref(), Some("did you mean `cpu.usage_percent`?"));
        assert_eq!(
            did_you_mean(&["a".into(), "b".into(), "c".into()]).as_deref(),
            Some("did you mean `a`, `b` or `c`?")
        );
    }
}
