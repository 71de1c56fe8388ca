//! Which series a rule watches, and which alert instance a series is.

use std::collections::BTreeMap;

use microdash_core::Metric;
use microdash_core::alert::AlertRule;
use serde::{Deserialize, Serialize};

/// A series as the matcher sees it, borrowed from wherever it lives (a metric just stored, a
/// series row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRef<'a> {
    /// Metric name.
    pub metric_name: &'a str,
    /// Agent id; `None` (or empty, as the store writes a missing one) when it has none.
    pub agent_id: Option<&'a str>,
    /// The series' tags.
    pub tags: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a Metric> for SeriesRef<'a> {
    fn from(metric: &'a Metric) -> Self {
        SeriesRef { metric_name: &metric.name, agent_id: metric.agent_id.as_deref(), tags: &metric.tags }
    }
}

impl SeriesRef<'_> {
    /// The agent id, with an empty one read as none.
    fn agent(&self) -> Option<&str> {
        self.agent_id.filter(|agent| !agent.is_empty())
    }
}

/// Whether `rule` watches `series`: the same metric name, the rule's agent if it names one,
/// and every tag of the rule with an equal value (the series may carry more tags).
pub fn matches(rule: &AlertRule, series: SeriesRef<'_>) -> bool {
    rule.metric_name == series.metric_name
        && rule.agent_id.as_deref().is_none_or(|agent| series.agent() == Some(agent))
        && rule.tags.iter().all(|(key, value)| series.tags.get(key) == Some(value))
}

/// The identity of an alert instance within its rule: the series' agent and all of its tags
/// (the metric name is the rule's). Two series differing in any tag are two instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceKey {
    /// The series' agent; `None` when it has none.
    pub agent_id: Option<String>,
    /// All of the series' tags.
    pub tags: BTreeMap<String, String>,
}

impl From<SeriesRef<'_>> for InstanceKey {
    fn from(series: SeriesRef<'_>) -> Self {
        InstanceKey { agent_id: series.agent().map(str::to_owned), tags: series.tags.clone() }
    }
}

#[cfg(test)]
mod tests {
    use microdash_core::api::alert::AlertRuleIn;

    use super::*;

    fn rule(agent_id: Option<&str>, tags: &[(&str, &str)]) -> AlertRule {
        AlertRuleIn {
            name: Some("r".into()),
            metric_name: Some("disk.used".into()),
            agent_id: agent_id.map(Into::into),
            tags: Some(tags.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()),
            operator: Some(microdash_core::api::alert::Operator::Gt),
            critical: Some(90.0),
            ..AlertRuleIn::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn a_rule_matches_by_name_agent_and_each_of_its_tags() {
        let tags: BTreeMap<String, String> = [("mount", "/"), ("fs", "ext4")].map(|(k, v)| (k.into(), v.into())).into();
        let series = |metric_name, agent_id| SeriesRef { metric_name, agent_id, tags: &tags };
        let rows = [
            (rule(None, &[]), series("disk.used", Some("web-1")), true),
            (rule(None, &[]), series("disk.used", None), true),
            (rule(None, &[]), series("disk.free", Some("web-1")), false),
            (rule(Some("web-1"), &[]), series("disk.used", Some("web-1")), true),
            (rule(Some("web-1"), &[]), series("disk.used", Some("web-2")), false),
            (rule(Some("web-1"), &[]), series("disk.used", None), false),
            (rule(Some("web-1"), &[]), series("disk.used", Some("")), false),
            (rule(None, &[("mount", "/")]), series("disk.used", None), true),
            (rule(None, &[("mount", "/"), ("fs", "ext4")]), series("disk.used", None), true),
            (rule(None, &[("mount", "/home")]), series("disk.used", None), false),
            (rule(None, &[("dc", "x")]), series("disk.used", None), false),
        ];
        for (rule, series, expected) in rows {
            assert_eq!(matches(&rule, series), expected, "{rule:?} {series:?}");
        }
    }

    #[test]
    fn an_instance_is_the_series_agent_and_all_its_tags() {
        let tags: BTreeMap<String, String> = [("mount".to_owned(), "/".to_owned())].into();
        let key = InstanceKey::from(SeriesRef { metric_name: "disk.used", agent_id: Some(""), tags: &tags });
        assert_eq!(key, InstanceKey { agent_id: None, tags: tags.clone() });
        let metric = Metric {
            name: "disk.used".into(),
            agent_id: Some("web-1".into()),
            tags: tags.clone(),
            timestamp_ms: 0,
            value: 1.0,
            dedupe_id: None,
        };
        assert_eq!(InstanceKey::from(SeriesRef::from(&metric)), InstanceKey { agent_id: Some("web-1".into()), tags });
    }
}
