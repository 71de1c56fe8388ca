//! Summary templates: `{{agent_id}} cpu at {{value}} %`.
//!
//! Placeholders are `{{name}}` (spaces inside the braces are allowed): `agent_id`,
//! `metric_name`, `rule_name`, `value`, `threshold`, `operator`, `severity`, `state`,
//! `tags.NAME` and `labels.NAME`. A known placeholder without a value (no agent, a tag the
//! series lacks, no severity) renders empty; `value` without a value renders `no data`. An
//! unknown placeholder is left as written, so a typo shows in the message instead of
//! vanishing from it.

use std::fmt::Write as _;

use microdash_core::alert::AlertRule;
use microdash_core::api::alert::{AlertState, Severity};

use crate::matcher::InstanceKey;

/// What a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct TemplateContext<'a> {
    /// The rule.
    pub rule: &'a AlertRule,
    /// The instance's series.
    pub instance: &'a InstanceKey,
    /// The instance's state.
    pub state: AlertState,
    /// The severity notified about; `threshold` is this severity's (critical's when `None`).
    pub severity: Option<Severity>,
    /// The value; `None` for no data.
    pub value: Option<f64>,
}

impl TemplateContext<'_> {
    fn threshold(&self) -> f64 {
        self.severity.and_then(|severity| self.rule.threshold(severity)).unwrap_or(self.rule.critical)
    }

    /// The text for placeholder `name`, `None` when there is no such placeholder.
    fn lookup(&self, name: &str) -> Option<String> {
        let text = match name {
            "agent_id" => self.instance.agent_id.clone().unwrap_or_default(),
            "metric_name" => self.rule.metric_name.clone(),
            "rule_name" => self.rule.name.clone(),
            "value" => self.value.map_or_else(|| "no data".to_owned(), format_value),
            "threshold" => format_value(self.threshold()),
            "operator" => self.rule.operator.as_str().to_owned(),
            "severity" => self.severity.map(Severity::as_str).unwrap_or_default().to_owned(),
            "state" => self.state.as_str().to_owned(),
            _ => {
                if let Some(tag) = name.strip_prefix("tags.") {
                    self.instance.tags.get(tag).cloned().unwrap_or_default()
                } else if let Some(label) = name.strip_prefix("labels.") {
                    self.rule.labels.get(label).cloned().unwrap_or_default()
                } else {
                    return None;
                }
            }
        };
        Some(text)
    }
}

/// Render `template` with `ctx`.
pub fn render(template: &str, ctx: &TemplateContext<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(first_open) = rest.find("{{") {
        let Some(close) = rest[first_open + 2..].find("}}").map(|at| first_open + 2 + at) else { break };
        // The innermost `{{` before the `}}`: in `{{{{value}}` the placeholder is the last four.
        let open = first_open + rest[first_open..close].rfind("{{").unwrap_or(0);
        let placeholder = &rest[open..close + 2];
        out.push_str(&rest[..open]);
        match ctx.lookup(placeholder[2..placeholder.len() - 2].trim()) {
            Some(text) => out.push_str(&text),
            None => out.push_str(placeholder),
        }
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    out
}

/// The notification text: the rule's `summary` rendered, or by default
/// `cpu high: cpu.usage on web-1 is 95.5 (critical > 90)`
/// (`... on AGENT` left out without an agent, `... has no data` without a value).
pub fn summary(ctx: &TemplateContext<'_>) -> String {
    if let Some(template) = &ctx.rule.summary {
        return render(template, ctx);
    }
    let rule = ctx.rule;
    let mut text = format!("{}: {}", rule.name, rule.metric_name);
    if let Some(agent) = &ctx.instance.agent_id {
        let _ = write!(text, " on {agent}");
    }
    let Some(value) = ctx.value else {
        text.push_str(" has no data");
        return text;
    };
    let _ = write!(text, " is {} (", format_value(value));
    if let Some(severity) = ctx.severity {
        let _ = write!(text, "{severity} ");
    }
    let _ = write!(text, "{} {})", rule.operator, format_value(ctx.threshold()));
    text
}

/// A value for people: 4 significant digits without trailing zeros (`95`, `95.5`,
/// `0.001234`), whole numbers from 1000 on (`1235`, `8123456789`: no digit of the integer
/// part is hidden), scientific from 1e15 and below 1e-4 (`1.234e-5`).
pub fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() {
        // -0 prints as 0; non-finite values never pass validation but must not panic.
        return if value == 0.0 { "0".to_owned() } else { value.to_string() };
    }
    if !(1e-4..1e15).contains(&magnitude) {
        let text = format!("{value:.3e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    if magnitude >= 1000.0 {
        return format!("{value:.0}");
    }
    // 4 significant digits: 3 decimals below 10, 2 below 100, 1 below 1000, more below 1.
    let decimals = (3 - magnitude.log10().floor() as i32).max(0) as usize;
    trim_zeros(&format!("{value:.decimals$}")).to_owned()
}

/// `95.50` -> `95.5`, `2.000` -> `2`; text without a decimal point is left alone.
fn trim_zeros(text: &str) -> &str {
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { text }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use microdash_core::api::alert::AlertRuleIn;

    use super::*;

    fn rule(summary: Option<&str>) -> AlertRule {
        let mut rule = AlertRuleIn {
            name: Some("cpu high".into()),
            metric_name: Some("cpu.usage".into()),
            operator: Some(microdash_core::api::alert::Operator::Gt),
            critical: Some(90.0),
            warning: Some(80.0),
            labels: Some(BTreeMap::from([("team".into(), "ops".into())])),
            ..AlertRuleIn::default()
        }
        .validate()
        .unwrap();
        rule.summary = summary.map(Into::into);
        rule
    }

    fn instance(agent: Option<&str>) -> InstanceKey {
        InstanceKey { agent_id: agent.map(Into::into), tags: BTreeMap::from([("core".into(), "0".into())]) }
    }

    #[test]
    fn placeholders_render_known_names_and_keep_unknown_ones() {
        let rule = rule(None);
        let instance = instance(Some("web-1"));
        let ctx = TemplateContext {
            rule: &rule,
            instance: &instance,
            state: AlertState::Firing,
            severity: Some(Severity::Warning),
            value: Some(85.25),
        };
        for (template, expected) in [
            ("{{agent_id}} cpu {{value}} %", "web-1 cpu 85.25 %"),
            ("{{ rule_name }}/{{metric_name}}", "cpu high/cpu.usage"),
            ("{{severity}} {{state}}: {{value}} {{operator}} {{threshold}}", "warning firing: 85.25 > 80"),
            ("core {{tags.core}}, team {{labels.team}}, [{{tags.nope}}][{{labels.nope}}]", "core 0, team ops, [][]"),
            ("{{valeu}} {{}} {{ tags }}", "{{valeu}} {{}} {{ tags }}"),
            ("unclosed {{value", "unclosed {{value"),
            ("{{value}}}}", "85.25}}"),
            ("{{{{value}}", "{{85.25"),
            ("no placeholders", "no placeholders"),
            ("ünïcode {{agent_id}} ✓", "ünïcode web-1 ✓"),
            ("", ""),
        ] {
            assert_eq!(render(template, &ctx), expected, "{template}");
        }
        let no_data = TemplateContext {
            instance: &InstanceKey::default(),
            severity: None,
            value: None,
            state: AlertState::NoData,
            ..ctx
        };
        assert_eq!(render("[{{agent_id}}] {{value}} {{severity}} {{threshold}}", &no_data), "[] no data  90");
    }

    #[test]
    fn the_default_summary_reads_as_a_sentence() {
        fn ctx<'a>(
            rule: &'a AlertRule,
            instance: &'a InstanceKey,
            severity: Option<Severity>,
            value: Option<f64>,
        ) -> TemplateContext<'a> {
            TemplateContext { rule, instance, state: AlertState::Firing, severity, value }
        }
        let plain = rule(None);
        let with_agent = instance(Some("web-1"));
        let without = instance(None);
        assert_eq!(
            summary(&ctx(&plain, &with_agent, Some(Severity::Critical), Some(95.5))),
            "cpu high: cpu.usage on web-1 is 95.5 (critical > 90)"
        );
        assert_eq!(
            summary(&ctx(&plain, &without, Some(Severity::Warning), Some(85.0))),
            "cpu high: cpu.usage is 85 (warning > 80)"
        );
        assert_eq!(summary(&ctx(&plain, &with_agent, None, Some(10.0))), "cpu high: cpu.usage on web-1 is 10 (> 90)");
        assert_eq!(
            summary(&ctx(&plain, &with_agent, Some(Severity::Critical), None)),
            "cpu high: cpu.usage on web-1 has no data"
        );
        let custom = rule(Some("{{agent_id}} at {{value}}"));
        assert_eq!(summary(&ctx(&custom, &with_agent, None, Some(1.0))), "web-1 at 1");
    }

    #[test]
    fn values_are_compact() {
        for (value, expected) in [
            (95.0, "95"),
            (95.5, "95.5"),
            (0.001234, "0.001234"),
            (1.0 / 3.0, "0.3333"),
            (12.3456, "12.35"),
            (999.96, "1000"),
            (1234.5678, "1235"),
            (8_123_456_789.0, "8123456789"),
            (-42.126, "-42.13"),
            (0.0, "0"),
            (-0.0, "0"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-5"),
            (0.00002, "2e-5"),
            (1e15, "1e15"),
            (-2.5e20, "-2.5e20"),
            (100.0, "100"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_value(value), expected, "{value}");
        }
    }
}
