//! The alert instance state machine: [`step`] is a pure function of the rule, the previous
//! state, an observation and the time. The semantics are described in the crate docs.

use microdash_core::alert::AlertRule;
use microdash_core::api::alert::{AlertEventOut, AlertOut, AlertState, NoDataState, NotificationKind, Severity};
use microdash_core::metric::format_millis;
use serde::{Deserialize, Serialize};

use crate::matcher::InstanceKey;

/// Everything an alert instance remembers between evaluations. The store persists it, so an
/// evaluator that restarts resumes where it stopped: every time in it is absolute (Unix ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    /// Where the instance stands.
    pub state: AlertState,
    /// While pending or firing, the severity; otherwise `None`.
    pub severity: Option<Severity>,
    /// When `state` was entered: while pending, when the breach began (what `for_s` counts
    /// from); while firing, when the alert started (a notification's `started_at`).
    pub since_ms: i64,
    /// While firing: since when the current severity's condition has not held, for
    /// `keep_firing_for_s`; `None` while it holds.
    pub cleared_at_ms: Option<i64>,
    /// When a notification was last asked for, for `repeat_interval_s`.
    pub last_notified_ms: Option<i64>,
    /// The latest evaluated value; `None` before the first and after no data.
    pub value: Option<f64>,
}

impl InstanceState {
    /// A new instance: ok since `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self {
            state: AlertState::Ok,
            severity: None,
            since_ms: now_ms,
            cleared_at_ms: None,
            last_notified_ms: None,
            value: None,
        }
    }
}

impl InstanceState {
    /// The instance as the list of alerts shows it.
    pub fn to_out(&self, rule_id: i64, rule_name: &str, instance: &InstanceKey) -> AlertOut {
        AlertOut {
            rule_id,
            rule_name: rule_name.to_owned(),
            agent_id: instance.agent_id.clone(),
            tags: instance.tags.clone(),
            state: self.state,
            severity: self.severity,
            value: self.value,
            since: format_millis(self.since_ms),
        }
    }
}

impl Transition {
    /// The history entry stored under `id`.
    pub fn to_out(&self, id: i64, rule_id: i64, rule_name: &str, instance: &InstanceKey) -> AlertEventOut {
        let at = format_millis(self.at_ms);
        AlertEventOut {
            id,
            rule_id,
            rule_name: rule_name.to_owned(),
            agent_id: instance.agent_id.clone(),
            tags: instance.tags.clone(),
            state: self.to,
            severity: self.severity,
            value: self.value,
            since: at.clone(),
            from: self.from,
            to: self.to,
            at,
        }
    }
}

/// What the evaluator saw of one series at evaluation time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observation {
    /// The rule's aggregate over its window; `None` when the window holds no point.
    pub value: Option<f64>,
    /// Time of the latest point the series ever sent (Unix ms), for no-data detection;
    /// `None` when it never sent one.
    pub latest_ms: Option<i64>,
}

/// A change of state (or of severity while firing), to record in the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The state left.
    pub from: AlertState,
    /// The state entered; equal to `from` for a severity change while firing.
    pub to: AlertState,
    /// The severity after the change.
    pub severity: Option<Severity>,
    /// The value that caused it; `None` for no data.
    pub value: Option<f64>,
    /// When, Unix ms.
    pub at_ms: i64,
}

/// A notification the evaluator should send to the rule's channels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Notify {
    /// `Firing` (started, or severity changed), `Resolved` or `Repeat`; never `Test`.
    pub kind: NotificationKind,
    /// The alert's severity; for `Resolved`, the severity it had.
    pub severity: Severity,
    /// The current value; `None` for no data.
    pub value: Option<f64>,
    /// When the alert started firing, Unix ms.
    pub started_at_ms: i64,
    /// When it stopped firing (only for `Resolved`), Unix ms.
    pub ended_at_ms: Option<i64>,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The state to persist.
    pub next: InstanceState,
    /// The history entry to record, if the state (or a firing severity) changed.
    pub transition: Option<Transition>,
    /// The notification to send, if any; at most one per step.
    pub notify: Option<Notify>,
}

/// Evaluate one alert instance: the rule, the state it was left in, what was observed and the
/// current time give the next state, the transition to record and the notification to send.
/// Pure: no clock, no IO, so it can be replayed and tested by driving `now_ms` by hand.
pub fn step(rule: &AlertRule, prev: &InstanceState, obs: Observation, now_ms: i64) -> Step {
    let eval = Eval { rule, prev, now_ms };
    if !rule.enabled {
        return eval.calm(AlertState::Ok, prev.value);
    }
    let stale = |latest: i64| now_ms.saturating_sub(latest) > i64::from(rule.no_data_s) * 1000;
    if rule.no_data_s > 0 && obs.latest_ms.is_none_or(stale) {
        return match rule.no_data_state {
            NoDataState::Keep => eval.hold(prev.value, prev.cleared_at_ms),
            NoDataState::Ok => eval.calm(AlertState::NoData, None),
            NoDataState::Alerting => eval.fire(Severity::Critical, None),
        };
    }
    let Some(value) = obs.value else {
        // Nothing in the window, but not (yet) no data: nothing to judge by.
        return eval.hold(prev.value, prev.cleared_at_ms);
    };
    let breach = rule.breach(value);
    match (prev.state, breach) {
        (AlertState::Ok | AlertState::NoData | AlertState::Pending, None) => eval.calm(AlertState::Ok, Some(value)),
        (AlertState::Ok | AlertState::NoData, Some(severity)) if rule.for_s == 0 => eval.fire(severity, Some(value)),
        (AlertState::Ok | AlertState::NoData, Some(severity)) => {
            eval.enter(AlertState::Pending, Some(severity), Some(value))
        }
        (AlertState::Pending, Some(severity)) if passed(prev.since_ms, now_ms, rule.for_s) => {
            eval.fire(severity, Some(value))
        }
        (AlertState::Pending, Some(severity)) => {
            // Still waiting; the severity follows the breach without a notification.
            let next = InstanceState { severity: Some(severity), value: Some(value), ..prev.clone() };
            Step { next, transition: None, notify: None }
        }
        (AlertState::Firing, _) => eval.firing(value, breach),
    }
}

/// Whether `secs` seconds have passed from `from_ms` to `now_ms`. A clock that went back
/// makes nothing pass.
fn passed(from_ms: i64, now_ms: i64, secs: u32) -> bool {
    now_ms.saturating_sub(from_ms) >= i64::from(secs) * 1000
}

/// One evaluation's inputs, shared by the moves below.
struct Eval<'a> {
    rule: &'a AlertRule,
    prev: &'a InstanceState,
    now_ms: i64,
}

impl Eval<'_> {
    /// The severity the previous state fired with (critical if it was somehow lost).
    fn firing_severity(&self) -> Severity {
        self.prev.severity.unwrap_or(Severity::Critical)
    }

    /// Enter `to`, recording the transition; no notification.
    fn enter(&self, to: AlertState, severity: Option<Severity>, value: Option<f64>) -> Step {
        let next = InstanceState {
            state: to,
            severity,
            since_ms: self.now_ms,
            cleared_at_ms: None,
            last_notified_ms: self.prev.last_notified_ms,
            value,
        };
        let transition = Transition { from: self.prev.state, to, severity, value, at_ms: self.now_ms };
        Step { next, transition: Some(transition), notify: None }
    }

    /// Go to a state without severity (`Ok` or `NoData`); a firing alert is resolved.
    fn calm(&self, to: AlertState, value: Option<f64>) -> Step {
        if self.prev.state == to {
            return Step { next: InstanceState { value, ..self.prev.clone() }, transition: None, notify: None };
        }
        let mut step = self.enter(to, None, value);
        if self.prev.state == AlertState::Firing {
            step.notify = Some(Notify {
                kind: NotificationKind::Resolved,
                severity: self.firing_severity(),
                value,
                started_at_ms: self.prev.since_ms,
                ended_at_ms: Some(self.now_ms),
            });
        }
        step
    }

    /// Fire at `severity`: start firing, or change severity while firing (one notification
    /// either way), or carry on firing at it.
    fn fire(&self, severity: Severity, value: Option<f64>) -> Step {
        let notify = |started_at_ms| Notify {
            kind: NotificationKind::Firing,
            severity,
            value,
            started_at_ms,
            ended_at_ms: None,
        };
        if self.prev.state != AlertState::Firing {
            let mut step = self.enter(AlertState::Firing, Some(severity), value);
            step.next.last_notified_ms = Some(self.now_ms);
            step.notify = Some(notify(self.now_ms));
            return step;
        }
        if self.prev.severity == Some(severity) {
            return self.hold(value, None);
        }
        let next = InstanceState {
            severity: Some(severity),
            cleared_at_ms: None,
            last_notified_ms: Some(self.now_ms),
            value,
            ..self.prev.clone()
        };
        let transition = Transition {
            from: AlertState::Firing,
            to: AlertState::Firing,
            severity: Some(severity),
            value,
            at_ms: self.now_ms,
        };
        Step { next, transition: Some(transition), notify: Some(notify(self.prev.since_ms)) }
    }

    /// Stay in the previous state with a new value (and, while firing, the keep-firing timer
    /// `cleared_at_ms`); a firing alert gets its reminder when one is due.
    fn hold(&self, value: Option<f64>, cleared_at_ms: Option<i64>) -> Step {
        let mut next = InstanceState { value, ..self.prev.clone() };
        let mut notify = None;
        if self.prev.state == AlertState::Firing {
            next.cleared_at_ms = cleared_at_ms;
            let last = self.prev.last_notified_ms.unwrap_or(self.prev.since_ms);
            if self.rule.repeat_interval_s > 0 && passed(last, self.now_ms, self.rule.repeat_interval_s) {
                next.last_notified_ms = Some(self.now_ms);
                notify = Some(Notify {
                    kind: NotificationKind::Repeat,
                    severity: self.firing_severity(),
                    value,
                    started_at_ms: self.prev.since_ms,
                    ended_at_ms: None,
                });
            }
        }
        Step { next, transition: None, notify }
    }

    /// A firing alert sees `value`. The level it holds is the breached severity, or, between
    /// the least severe threshold and `recovery`, the least severe level (hysteresis). A higher
    /// level escalates at once; a lower one (or none) only once the current level has not
    /// held for `keep_firing_for_s`.
    fn firing(&self, value: f64, breach: Option<Severity>) -> Step {
        let rule = self.rule;
        let held =
            breach.or_else(|| rule.operator.holds(value, rule.recovery_threshold()).then(|| rule.least_severe().0));
        let current = self.firing_severity();
        match held {
            Some(level) if level >= current => self.fire(level, Some(value)),
            _ => {
                let cleared_at_ms = self.prev.cleared_at_ms.unwrap_or(self.now_ms);
                if !passed(cleared_at_ms, self.now_ms, rule.keep_firing_for_s) {
                    return self.hold(Some(value), Some(cleared_at_ms));
                }
                match held {
                    Some(level) => self.fire(level, Some(value)),
                    None => self.calm(AlertState::Ok, Some(value)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use microdash_core::api::alert::{Aggregate, Operator};

    use super::*;
    use AlertState::{Firing, NoData, Ok, Pending};
    use NotificationKind::{Firing as NFiring, Repeat, Resolved};
    use Severity::{Critical, Warning};

    const T0: i64 = 1_700_000_000_000;
    const S: i64 = 1000;

    /// `cpu > 90` (critical) / `> 80` (warning), every timer off.
    fn rule() -> AlertRule {
        AlertRule {
            name: "cpu high".into(),
            metric_name: "cpu".into(),
            agent_id: None,
            tags: BTreeMap::new(),
            aggregate: Aggregate::Last,
            window_s: 0,
            operator: Operator::Gt,
            critical: 90.0,
            warning: Some(80.0),
            for_s: 0,
            keep_firing_for_s: 0,
            recovery: None,
            no_data_s: 0,
            no_data_state: NoDataState::Keep,
            repeat_interval_s: 0,
            channels: vec![1],
            labels: BTreeMap::new(),
            summary: None,
            enabled: true,
        }
    }

    /// A previous state: `state`, `severity`, entered at `since`.
    fn prev(state: AlertState, severity: Option<Severity>, since: i64) -> InstanceState {
        let firing = state == Firing;
        InstanceState {
            state,
            severity,
            since_ms: since,
            cleared_at_ms: None,
            last_notified_ms: firing.then_some(since),
            value: None,
        }
    }

    /// A value seen now (its point is current).
    fn seen(value: f64, now: i64) -> Observation {
        Observation { value: Some(value), latest_ms: Some(now) }
    }

    /// What a row expects: the next state and severity, the transition `(from, to)` and the
    /// notification `(kind, severity)`.
    type Expect =
        (AlertState, Option<Severity>, Option<(AlertState, AlertState)>, Option<(NotificationKind, Severity)>);

    /// Step once at T0 and compare with `expected`; also check what every transition must
    /// satisfy: it describes the next state, and `since` moves exactly when the state does.
    fn check(name: &str, rule: &AlertRule, prev: &InstanceState, obs: Observation, expected: Expect) {
        let step = step(rule, prev, obs, T0);
        let got: Expect = (
            step.next.state,
            step.next.severity,
            step.transition.map(|t| (t.from, t.to)),
            step.notify.map(|n| (n.kind, n.severity)),
        );
        assert_eq!(got, expected, "{name}\nrule {rule:?}\nprev {prev:?}\nobs {obs:?}\n-> {step:?}");
        if let Some(t) = step.transition {
            assert_eq!((t.to, t.severity, t.at_ms), (step.next.state, step.next.severity, T0), "{name}: {step:?}");
            assert_eq!(step.next.since_ms == T0, t.from != t.to, "{name}: since moves with the state: {step:?}");
        }
        if let Some(n) = step.notify {
            let firing_from = if prev.state == Firing { prev.since_ms } else { T0 };
            assert_eq!(n.started_at_ms, firing_from, "{name}: {step:?}");
            assert_eq!(n.ended_at_ms, (n.kind == Resolved).then_some(T0), "{name}: {step:?}");
        }
    }

    #[test]
    fn table() {
        let base = rule();
        let slow = AlertRule { for_s: 60, ..rule() };
        let sticky = AlertRule { keep_firing_for_s: 120, ..rule() };
        let hysteresis = AlertRule { recovery: Some(70.0), ..rule() };
        let repeating = AlertRule { repeat_interval_s: 600, ..rule() };
        let below = AlertRule { operator: Operator::Le, critical: 10.0, warning: Some(20.0), ..rule() };
        let single = AlertRule { warning: None, ..rule() };
        let no_data = |mode| AlertRule { no_data_s: 300, no_data_state: mode, ..rule() };
        let disabled = AlertRule { enabled: false, ..rule() };
        let stale = Observation { value: None, latest_ms: Some(T0 - 301 * S) };
        let empty = Observation { value: None, latest_ms: Some(T0 - 10 * S) };
        let never = Observation::default();
        let ok = prev(Ok, None, T0 - 3600 * S);
        let pending = |sev| prev(Pending, Some(sev), T0 - 30 * S);
        let long_pending = prev(Pending, Some(Warning), T0 - 60 * S);
        let firing = |sev| prev(Firing, Some(sev), T0 - 60 * S);
        let cleared = |sev, ago: i64| InstanceState { cleared_at_ms: Some(T0 - ago * S), ..firing(sev) };
        let quiet = prev(NoData, None, T0 - 60 * S);
        #[rustfmt::skip]
        let rows: Vec<(&str, AlertRule, InstanceState, Observation, Expect)> = vec![
            ("ok, no breach", base.clone(), ok.clone(), seen(50.0, T0), (Ok, None, None, None)),
            ("ok, critical, fires at once", base.clone(), ok.clone(), seen(95.0, T0), (Firing, Some(Critical), Some((Ok, Firing)), Some((NFiring, Critical)))),
            ("ok, warning, fires at once", base.clone(), ok.clone(), seen(85.0, T0), (Firing, Some(Warning), Some((Ok, Firing)), Some((NFiring, Warning)))),
            ("> 90: 90 itself is only a warning", base.clone(), ok.clone(), seen(90.0, T0), (Firing, Some(Warning), Some((Ok, Firing)), Some((NFiring, Warning)))),
            ("and 80 nothing", base.clone(), ok.clone(), seen(80.0, T0), (Ok, None, None, None)),
            ("<=: the threshold breaches", below.clone(), ok.clone(), seen(10.0, T0), (Firing, Some(Critical), Some((Ok, Firing)), Some((NFiring, Critical)))),
            ("<=: between", below.clone(), ok.clone(), seen(15.0, T0), (Firing, Some(Warning), Some((Ok, Firing)), Some((NFiring, Warning)))),
            ("<=: above both", below.clone(), ok.clone(), seen(25.0, T0), (Ok, None, None, None)),
            ("no warning threshold: 85 is fine", single.clone(), ok.clone(), seen(85.0, T0), (Ok, None, None, None)),
            ("for_s: ok -> pending", slow.clone(), ok.clone(), seen(95.0, T0), (Pending, Some(Critical), Some((Ok, Pending)), None)),
            ("for_s: pending, not yet", slow.clone(), pending(Critical), seen(95.0, T0), (Pending, Some(Critical), None, None)),
            ("for_s: pending follows severity silently", slow.clone(), pending(Critical), seen(85.0, T0), (Pending, Some(Warning), None, None)),
            ("for_s: pending long enough fires", slow.clone(), long_pending.clone(), seen(95.0, T0), (Firing, Some(Critical), Some((Pending, Firing)), Some((NFiring, Critical)))),
            ("for_s: pending clears silently", slow.clone(), pending(Warning), seen(50.0, T0), (Ok, None, Some((Pending, Ok)), None)),
            ("for_s: pending, empty window waits", slow.clone(), long_pending.clone(), empty, (Pending, Some(Warning), None, None)),
            ("firing, same severity: nothing", base.clone(), firing(Critical), seen(99.0, T0), (Firing, Some(Critical), None, None)),
            ("firing escalates", base.clone(), firing(Warning), seen(95.0, T0), (Firing, Some(Critical), Some((Firing, Firing)), Some((NFiring, Critical)))),
            ("firing de-escalates", base.clone(), firing(Critical), seen(85.0, T0), (Firing, Some(Warning), Some((Firing, Firing)), Some((NFiring, Warning)))),
            ("firing resolves", base.clone(), firing(Critical), seen(50.0, T0), (Ok, None, Some((Firing, Ok)), Some((Resolved, Critical)))),
            ("recovery: between holds", hysteresis.clone(), firing(Warning), seen(75.0, T0), (Firing, Some(Warning), None, None)),
            ("recovery: critical drops to the band", hysteresis.clone(), firing(Critical), seen(75.0, T0), (Firing, Some(Warning), Some((Firing, Firing)), Some((NFiring, Warning)))),
            ("recovery: at it resolves (> 70 no longer holds)", hysteresis.clone(), firing(Warning), seen(70.0, T0), (Ok, None, Some((Firing, Ok)), Some((Resolved, Warning)))),
            ("recovery does not fire from ok", hysteresis.clone(), ok.clone(), seen(75.0, T0), (Ok, None, None, None)),
            ("keep firing: starts the timer", sticky.clone(), firing(Warning), seen(50.0, T0), (Firing, Some(Warning), None, None)),
            ("keep firing: not long enough", sticky.clone(), cleared(Warning, 119), seen(50.0, T0), (Firing, Some(Warning), None, None)),
            ("keep firing: long enough resolves", sticky.clone(), cleared(Warning, 120), seen(50.0, T0), (Ok, None, Some((Firing, Ok)), Some((Resolved, Warning)))),
            ("keep firing: critical waits to de-escalate", sticky.clone(), firing(Critical), seen(85.0, T0), (Firing, Some(Critical), None, None)),
            ("keep firing: then de-escalates", sticky.clone(), cleared(Critical, 120), seen(85.0, T0), (Firing, Some(Warning), Some((Firing, Firing)), Some((NFiring, Warning)))),
            ("keep firing: escalation is immediate", sticky.clone(), cleared(Warning, 10), seen(95.0, T0), (Firing, Some(Critical), Some((Firing, Firing)), Some((NFiring, Critical)))),
            ("repeat: not due", repeating.clone(), firing(Critical), seen(95.0, T0), (Firing, Some(Critical), None, None)),
            ("repeat: due", repeating.clone(), prev(Firing, Some(Critical), T0 - 600 * S), seen(95.0, T0), (Firing, Some(Critical), None, Some((Repeat, Critical)))),
            ("repeat: due while no data is kept", AlertRule { no_data_s: 300, ..repeating.clone() }, prev(Firing, Some(Critical), T0 - 600 * S), stale, (Firing, Some(Critical), None, Some((Repeat, Critical)))),
            ("repeat off: never", base.clone(), prev(Firing, Some(Critical), T0 - 86_400 * S), seen(95.0, T0), (Firing, Some(Critical), None, None)),
            ("empty window, no no-data rule: hold", base.clone(), firing(Critical), empty, (Firing, Some(Critical), None, None)),
            ("empty window but not stale: hold", no_data(NoDataState::Ok), firing(Critical), empty, (Firing, Some(Critical), None, None)),
            ("no data, ok: ok -> no_data", no_data(NoDataState::Ok), ok.clone(), stale, (NoData, None, Some((Ok, NoData)), None)),
            ("no data, ok: firing resolves", no_data(NoDataState::Ok), firing(Warning), stale, (NoData, None, Some((Firing, NoData)), Some((Resolved, Warning)))),
            ("no data, ok: pending drops", no_data(NoDataState::Ok), pending(Critical), stale, (NoData, None, Some((Pending, NoData)), None)),
            ("no data, ok: stays", no_data(NoDataState::Ok), quiet.clone(), stale, (NoData, None, None, None)),
            ("no data, ok: never sent counts", no_data(NoDataState::Ok), ok.clone(), never, (NoData, None, Some((Ok, NoData)), None)),
            ("no data, stale wins over a window value", no_data(NoDataState::Ok), ok.clone(), Observation { value: Some(95.0), ..stale }, (NoData, None, Some((Ok, NoData)), None)),
            ("no data, exactly no_data_s old is not stale", no_data(NoDataState::Ok), ok.clone(), Observation { value: None, latest_ms: Some(T0 - 300 * S) }, (Ok, None, None, None)),
            ("no data, alerting: fires critical", no_data(NoDataState::Alerting), ok.clone(), stale, (Firing, Some(Critical), Some((Ok, Firing)), Some((NFiring, Critical)))),
            ("no data, alerting: escalates warning", no_data(NoDataState::Alerting), firing(Warning), stale, (Firing, Some(Critical), Some((Firing, Firing)), Some((NFiring, Critical)))),
            ("no data, alerting: already critical", no_data(NoDataState::Alerting), firing(Critical), stale, (Firing, Some(Critical), None, None)),
            ("no data, alerting ignores for_s", AlertRule { for_s: 600, ..no_data(NoDataState::Alerting) }, ok.clone(), stale, (Firing, Some(Critical), Some((Ok, Firing)), Some((NFiring, Critical)))),
            ("no data, keep: ok stays", no_data(NoDataState::Keep), ok.clone(), stale, (Ok, None, None, None)),
            ("no data, keep: firing stays", no_data(NoDataState::Keep), firing(Warning), stale, (Firing, Some(Warning), None, None)),
            ("no data, keep: pending stays past for_s", AlertRule { for_s: 60, ..no_data(NoDataState::Keep) }, long_pending.clone(), stale, (Pending, Some(Warning), None, None)),
            ("data returns: no_data -> ok", no_data(NoDataState::Ok), quiet.clone(), seen(50.0, T0), (Ok, None, Some((NoData, Ok)), None)),
            ("data returns: no_data -> firing", no_data(NoDataState::Ok), quiet.clone(), seen(95.0, T0), (Firing, Some(Critical), Some((NoData, Firing)), Some((NFiring, Critical)))),
            ("data returns: no_data -> pending", AlertRule { for_s: 60, ..no_data(NoDataState::Ok) }, quiet.clone(), seen(95.0, T0), (Pending, Some(Critical), Some((NoData, Pending)), None)),
            ("data returns after alerting: resolves", no_data(NoDataState::Alerting), firing(Critical), seen(50.0, T0), (Ok, None, Some((Firing, Ok)), Some((Resolved, Critical)))),
            ("disabled: firing resolves", disabled.clone(), firing(Critical), seen(95.0, T0), (Ok, None, Some((Firing, Ok)), Some((Resolved, Critical)))),
            ("disabled: pending drops", disabled.clone(), pending(Warning), seen(95.0, T0), (Ok, None, Some((Pending, Ok)), None)),
            ("disabled: ok stays", disabled.clone(), ok.clone(), seen(95.0, T0), (Ok, None, None, None)),
            ("disabled: no_data -> ok", disabled.clone(), quiet.clone(), never, (Ok, None, Some((NoData, Ok)), None)),
        ];
        for (name, rule, prev, obs, expected) in rows {
            check(name, &rule, &prev, obs, expected);
        }
    }

    /// Drive one instance through `values`, one evaluation every `every_s` seconds from T0,
    /// and return the notifications as `(seconds after T0, kind, severity)`.
    fn run(
        rule: &AlertRule,
        every_s: i64,
        values: &[Option<f64>],
    ) -> (InstanceState, Vec<(i64, NotificationKind, Severity)>) {
        let mut state = InstanceState::new(T0);
        let mut sent = Vec::new();
        let mut latest = None;
        for (i, value) in values.iter().enumerate() {
            let now = T0 + i as i64 * every_s * S;
            if value.is_some() {
                latest = Some(now);
            }
            let step = step(rule, &state, Observation { value: *value, latest_ms: latest }, now);
            if let Some(n) = step.notify {
                sent.push(((now - T0) / S, n.kind, n.severity));
            }
            state = step.next;
        }
        (state, sent)
    }

    fn values(vs: &[f64]) -> Vec<Option<f64>> {
        vs.iter().copied().map(Some).collect()
    }

    #[test]
    fn a_value_hovering_at_the_threshold_flaps_without_recovery_and_not_with_it() {
        let hover = values(&[81.0, 79.0, 81.0, 79.0, 81.0, 79.0, 60.0]);
        let (_, sent) = run(&rule(), 10, &hover);
        assert_eq!(sent.len(), 6, "{sent:?}");
        let (state, sent) = run(&AlertRule { recovery: Some(75.0), ..rule() }, 10, &hover);
        assert_eq!(sent, [(0, NFiring, Warning), (60, Resolved, Warning)]);
        assert_eq!(state.state, Ok);
    }

    #[test]
    fn keep_firing_for_bridges_short_dips_and_restarts_after_each() {
        let rule = AlertRule { keep_firing_for_s: 30, ..rule() };
        // Dips of 20 s are bridged; the timer restarts after each return above 80.
        let (_, sent) = run(&rule, 10, &values(&[85.0, 50.0, 50.0, 85.0, 50.0, 50.0, 50.0, 50.0]));
        assert_eq!(sent, [(0, NFiring, Warning), (70, Resolved, Warning)]);
    }

    #[test]
    fn for_s_needs_a_continuous_breach() {
        let rule = AlertRule { for_s: 30, ..rule() };
        let (_, sent) = run(&rule, 10, &values(&[95.0, 95.0, 50.0, 95.0, 95.0, 95.0, 95.0]));
        // The dip at 20 s resets the wait: the breach from 30 s lasts 30 s at 60 s.
        assert_eq!(sent, [(60, NFiring, Critical)]);
        let (state, _) = run(&rule, 10, &values(&[95.0, 95.0, 95.0]));
        assert_eq!((state.state, state.since_ms), (Pending, T0));
    }

    #[test]
    fn reminders_come_every_repeat_interval_after_the_last_notification() {
        let rule = AlertRule { repeat_interval_s: 60, ..rule() };
        let mut vs = vec![95.0; 13];
        vs[4] = 85.0; // 40 s: de-escalates, which notifies and restarts the interval
        vs[5] = 95.0; // 50 s: escalates again
        let (_, sent) = run(&rule, 10, &values(&vs));
        assert_eq!(
            sent,
            [(0, NFiring, Critical), (40, NFiring, Warning), (50, NFiring, Critical), (110, Repeat, Critical)]
        );
    }

    #[test]
    fn no_data_modes_over_time() {
        let sequence = [Some(95.0), None, None, None, None, Some(50.0)];
        let ok_mode = AlertRule { no_data_s: 20, no_data_state: NoDataState::Ok, ..rule() };
        let (state, sent) = run(&ok_mode, 10, &sequence);
        assert_eq!(sent, [(0, NFiring, Critical), (30, Resolved, Critical)]);
        assert_eq!(state.state, Ok);
        let alerting = AlertRule { no_data_s: 20, no_data_state: NoDataState::Alerting, ..rule() };
        let (_, sent) = run(&alerting, 10, &[Some(50.0), None, None, None, Some(50.0)]);
        assert_eq!(sent, [(30, NFiring, Critical), (40, Resolved, Critical)]);
        let keep = AlertRule { no_data_s: 20, no_data_state: NoDataState::Keep, ..rule() };
        let (state, sent) = run(&keep, 10, &sequence);
        assert_eq!(sent, [(0, NFiring, Critical), (50, Resolved, Critical)]);
        assert_eq!(state.state, Ok);
    }

    #[test]
    fn a_resumed_state_sends_no_second_firing_and_keeps_its_timers() {
        let rule = AlertRule { for_s: 60, repeat_interval_s: 300, ..rule() };
        let mut state = InstanceState::new(T0);
        state = step(&rule, &state, seen(95.0, T0), T0).next;
        assert_eq!(state.state, Pending);
        // Restart: the state comes back from the store; pending still counts from T0.
        let state: InstanceState = serde_roundtrip(&state);
        let fired = step(&rule, &state, seen(95.0, T0 + 60 * S), T0 + 60 * S);
        assert_eq!(fired.notify.map(|n| (n.kind, n.started_at_ms)), Some((NFiring, T0 + 60 * S)));
        let state = serde_roundtrip(&fired.next);
        // Another restart while firing: no second Firing, and the reminder stays on schedule.
        let again = step(&rule, &state, seen(95.0, T0 + 70 * S), T0 + 70 * S);
        assert_eq!((again.notify, again.transition), (None, None));
        let due = step(&rule, &serde_roundtrip(&again.next), seen(95.0, T0 + 360 * S), T0 + 360 * S);
        assert_eq!(due.notify.map(|n| (n.kind, n.started_at_ms)), Some((Repeat, T0 + 60 * S)));
    }

    #[test]
    fn answers_have_the_documented_fields() {
        let instance =
            InstanceKey { agent_id: Some("web-1".into()), tags: BTreeMap::from([("core".into(), "0".into())]) };
        let fired = step(&rule(), &InstanceState::new(T0), seen(95.0, T0 + S), T0 + S);
        let alert = serde_json::to_value(fired.next.to_out(3, "cpu high", &instance)).unwrap();
        assert_eq!(
            alert,
            serde_json::json!({
                "rule_id": 3, "rule_name": "cpu high", "agent_id": "web-1", "tags": {"core": "0"},
                "state": "firing", "severity": "critical", "value": 95.0, "since": "2023-11-14T22:13:21.000Z",
            })
        );
        let event = serde_json::to_value(fired.transition.unwrap().to_out(9, 3, "cpu high", &instance)).unwrap();
        assert_eq!(
            event,
            serde_json::json!({
                "id": 9, "rule_id": 3, "rule_name": "cpu high", "agent_id": "web-1", "tags": {"core": "0"},
                "state": "firing", "severity": "critical", "value": 95.0, "since": "2023-11-14T22:13:21.000Z",
                "from": "ok", "to": "firing", "at": "2023-11-14T22:13:21.000Z",
            })
        );
        let quiet = InstanceState { state: NoData, ..InstanceState::new(T0) };
        let out = serde_json::to_value(quiet.to_out(3, "cpu high", &InstanceKey::default())).unwrap();
        // Present and null, not left out.
        for field in ["agent_id", "severity", "value"] {
            assert_eq!(out.get(field), Some(&serde_json::Value::Null), "{field}: {out}");
        }
    }

    fn serde_roundtrip(state: &InstanceState) -> InstanceState {
        let json = serde_json::to_string(state).unwrap();
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn notifications_carry_the_episode_times() {
        let rule = rule();
        let firing = step(&rule, &InstanceState::new(T0), seen(95.0, T0 + S), T0 + S);
        let escalated = step(
            &rule,
            &InstanceState { severity: Some(Warning), ..firing.next.clone() },
            seen(95.0, T0 + 2 * S),
            T0 + 2 * S,
        );
        assert_eq!(escalated.notify.map(|n| n.started_at_ms), Some(T0 + S));
        let resolved = step(&rule, &firing.next, seen(10.0, T0 + 5 * S), T0 + 5 * S);
        let notify = resolved.notify.unwrap();
        assert_eq!((notify.started_at_ms, notify.ended_at_ms, notify.value), (T0 + S, Some(T0 + 5 * S), Some(10.0)));
        assert_eq!(resolved.transition.map(|t| t.value), Some(Some(10.0)));
        // A clock that goes back never counts as time passed.
        let slow = AlertRule { for_s: 10, ..rule.clone() };
        let pending = step(&slow, &InstanceState::new(T0), seen(95.0, T0), T0).next;
        assert_eq!(step(&slow, &pending, seen(95.0, T0 - 3600 * S), T0 - 3600 * S).next.state, Pending);
    }
}
