//! Alert persistence on every backend, against real databases: rules, channels, instance
//! states, history, the notification queue and leases, each kept to its tenant.
#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use microdash_core::ErrorKind;
use microdash_core::alert::{AlertRule, Channel, NamedChannel};
use microdash_core::api::alert::{
    AlertRuleIn, AlertState, NotificationKind, NotificationStatus, Operator, Severity, WebhookFormat,
};
use microdash_store::testing::TestDb;
use microdash_store::{
    AlertStep, AttemptOutcome, Backend, EventFilter, Fence, InstanceRef, NewEvent, NewNotification, Store,
};

const NOW: i64 = 1_700_000_000_000;

fn rule(name: &str, channels: &[i64]) -> AlertRule {
    AlertRuleIn {
        name: Some(name.into()),
        metric_name: Some("cpu.usage".into()),
        operator: Some(Operator::Gt),
        critical: Some(90.0),
        warning: Some(80.0),
        channels: Some(channels.to_vec()),
        ..AlertRuleIn::default()
    }
    .validate()
    .unwrap()
}

fn webhook(name: &str) -> NamedChannel {
    NamedChannel {
        name: name.into(),
        channel: Channel::Webhook {
            url: "https://hooks.example.com/alerts".into(),
            secret: Some("s3cr3t".into()),
            format: WebhookFormat::Alertmanager,
        },
    }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn notify(channel_id: i64, rule_id: Option<i64>, kind: NotificationKind, payload: &str) -> NewNotification {
    NewNotification { channel_id, rule_id, agent_id: Some("web-1".into()), kind, payload: payload.into() }
}

/// A step of `rule_id`'s instance on `agent`/`tags` entering `state` at `at_ms`, with the
/// transition recorded.
/// The evaluator's lease, taken for an hour by the database's clock: what fenced writes need.
async fn lead(store: &Store) -> Fence<'static> {
    let fence = Fence { lease: "alerts", holder: "test-evaluator" };
    let now = store.clock_ms().await.unwrap();
    assert!(store.try_lease(fence.lease, fence.holder, 3_600_000, now).await.unwrap());
    fence
}

fn step<'a>(
    tenant_id: i64,
    rule_id: i64,
    agent: Option<&'a str>,
    tags: &'a BTreeMap<String, String>,
    (from, to): (AlertState, AlertState),
    at_ms: i64,
) -> AlertStep<'a> {
    let severity = matches!(to, AlertState::Pending | AlertState::Firing).then_some(Severity::Critical);
    AlertStep {
        tenant_id,
        rule_id,
        rule_name: "cpu high",
        agent_id: agent,
        tags,
        state: to,
        severity,
        since_ms: at_ms,
        value: Some(95.5),
        state_json: r#"{"state":"firing"}"#,
        event: Some(NewEvent { from, to, severity, value: Some(95.5), at_ms }),
        notifications: Vec::new(),
        now_ms: at_ms,
    }
}

async fn rules_round_trip_and_revision(store: Store) {
    let t = store.create_tenant("acme", "", NOW).await.unwrap();
    let start = store.alert_rules_revision().await.unwrap();
    let ch = store.create_channel(t.id, &webhook("ops"), NOW).await.unwrap();
    assert_eq!(store.alert_rules_revision().await.unwrap(), start, "creating a channel changes no rule");

    let created = store.create_alert_rule(t.id, &rule("cpu high", &[ch.id]), NOW).await.unwrap();
    assert_eq!((created.tenant_id, created.created_at_ms, created.updated_at_ms), (t.id, NOW, NOW));
    let after_create = store.alert_rules_revision().await.unwrap();
    assert!(after_create > start);
    assert_eq!(store.alert_rule(t.id, created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.alert_rules(t.id).await.unwrap(), std::slice::from_ref(&created));

    // A rule naming a channel that does not exist is refused, and changes nothing.
    let err = store.create_alert_rule(t.id, &rule("bad", &[ch.id, 9999]), NOW).await.unwrap_err();
    assert!(err.kind() == ErrorKind::Invalid && err.to_string().contains("9999"), "{err}");
    assert_eq!(store.alert_rules(t.id).await.unwrap().len(), 1);
    assert_eq!(store.alert_rules_revision().await.unwrap(), after_create);

    let mut changed = rule("cpu very high", &[]);
    changed.critical = 99.0;
    changed.enabled = false;
    let updated = store.update_alert_rule(t.id, created.id, &changed, NOW + 1000).await.unwrap().unwrap();
    assert_eq!((updated.created_at_ms, updated.updated_at_ms), (NOW, NOW + 1000));
    assert_eq!(store.alert_rule(t.id, created.id).await.unwrap().unwrap().rule, changed);
    let after_update = store.alert_rules_revision().await.unwrap();
    assert!(after_update > after_create);
    assert_eq!(store.update_alert_rule(t.id, 9999, &changed, NOW).await.unwrap(), None);
    assert_eq!(store.alert_rules_revision().await.unwrap(), after_update, "a missing rule changes nothing");

    let second = store.create_alert_rule(t.id, &rule("second", &[]), NOW).await.unwrap();
    let all = store.all_alert_rules().await.unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [created.id, second.id]);
    assert!(!all[0].rule.enabled, "the evaluator gets disabled rules too");

    let before_delete = store.alert_rules_revision().await.unwrap();
    assert!(store.delete_alert_rule(t.id, created.id).await.unwrap());
    assert!(store.alert_rules_revision().await.unwrap() > before_delete);
    assert!(!store.delete_alert_rule(t.id, created.id).await.unwrap());
    assert_eq!(store.alert_rule(t.id, created.id).await.unwrap(), None);
    assert_eq!(store.alert_rules(t.id).await.unwrap(), [second]);
}

async fn channels_round_trip(store: Store) {
    let t = store.create_tenant("acme", "", NOW).await.unwrap();
    let hook = store.create_channel(t.id, &webhook("ops"), NOW).await.unwrap();
    let email = NamedChannel { name: "oncall".into(), channel: Channel::Email { to: vec!["a@example.com".into()] } };
    let mail = store.create_channel(t.id, &email, NOW + 1).await.unwrap();
    let got = store.channel(t.id, hook.id).await.unwrap().unwrap();
    assert_eq!(got, hook);
    assert!(matches!(&got.channel.channel, Channel::Webhook { secret: Some(s), .. } if s == "s3cr3t"), "{got:?}");
    assert_eq!(store.channels(t.id).await.unwrap(), [hook.clone(), mail.clone()]);

    let renamed = NamedChannel { name: "ops-2".into(), ..webhook("x") };
    let updated = store.update_channel(t.id, hook.id, &renamed, NOW + 5).await.unwrap().unwrap();
    assert_eq!((updated.created_at_ms, updated.updated_at_ms), (NOW, NOW + 5));
    assert_eq!(store.channel(t.id, hook.id).await.unwrap().unwrap().channel, renamed);
    assert_eq!(store.update_channel(t.id, 9999, &renamed, NOW).await.unwrap(), None);

    assert_eq!(store.existing_channel_ids(t.id, &[mail.id, 9999, hook.id, mail.id]).await.unwrap(), [hook.id, mail.id]);
    assert_eq!(store.existing_channel_ids(t.id, &[]).await.unwrap(), Vec::<i64>::new());

    // Deleting a channel takes it out of the rules that list it, and its log with it.
    let listing = store.create_alert_rule(t.id, &rule("r", &[hook.id, mail.id]), NOW).await.unwrap();
    store.enqueue_notification(t.id, &notify(hook.id, None, NotificationKind::Test, "{}"), NOW).await.unwrap();
    let kept =
        store.enqueue_notification(t.id, &notify(mail.id, None, NotificationKind::Test, "{}"), NOW).await.unwrap();
    let revision = store.alert_rules_revision().await.unwrap();
    assert!(store.delete_channel(t.id, hook.id).await.unwrap());
    assert!(!store.delete_channel(t.id, hook.id).await.unwrap());
    assert!(store.alert_rules_revision().await.unwrap() > revision);
    assert_eq!(store.alert_rule(t.id, listing.id).await.unwrap().unwrap().rule.channels, [mail.id]);
    assert_eq!(store.channels(t.id).await.unwrap(), [mail]);
    let log = store.notifications(t.id, None, 10).await.unwrap();
    assert_eq!(log.iter().map(|n| n.id).collect::<Vec<_>>(), [kept]);
}

async fn tenants_never_see_each_other(store: Store) {
    let fence = lead(&store).await;
    let a = store.create_tenant("a", "", NOW).await.unwrap();
    let b = store.create_tenant("b", "", NOW).await.unwrap();
    let a_channel = store.create_channel(a.id, &webhook("a-ops"), NOW).await.unwrap();
    let b_channel = store.create_channel(b.id, &webhook("b-ops"), NOW).await.unwrap();
    let a_rule = store.create_alert_rule(a.id, &rule("a rule", &[a_channel.id]), NOW).await.unwrap();
    let host = tags(&[("core", "0")]);
    let mut a_step = step(a.id, a_rule.id, Some("web-1"), &host, (AlertState::Pending, AlertState::Firing), NOW);
    // A notification to another tenant's channel is left out.
    a_step.notifications = vec![
        notify(a_channel.id, Some(a_rule.id), NotificationKind::Firing, "a"),
        notify(b_channel.id, Some(a_rule.id), NotificationKind::Firing, "to b"),
    ];
    let queued = store.record_alert_step(fence, &a_step).await.unwrap();
    assert_eq!(queued.len(), 1);

    // Rules.
    assert_eq!(store.alert_rule(b.id, a_rule.id).await.unwrap(), None);
    assert!(store.alert_rules(b.id).await.unwrap().is_empty());
    assert_eq!(store.update_alert_rule(b.id, a_rule.id, &rule("taken", &[]), NOW).await.unwrap(), None);
    assert!(!store.delete_alert_rule(b.id, a_rule.id).await.unwrap());
    assert_eq!(store.alert_rule(a.id, a_rule.id).await.unwrap().unwrap().rule.name, "a rule");
    // Channels.
    assert_eq!(store.channel(b.id, a_channel.id).await.unwrap(), None);
    assert_eq!(store.channels(b.id).await.unwrap(), std::slice::from_ref(&b_channel));
    assert_eq!(store.update_channel(b.id, a_channel.id, &webhook("taken"), NOW).await.unwrap(), None);
    assert!(!store.delete_channel(b.id, a_channel.id).await.unwrap());
    assert_eq!(store.channel(a.id, a_channel.id).await.unwrap().unwrap().channel.name, "a-ops");
    assert_eq!(store.existing_channel_ids(b.id, &[a_channel.id, b_channel.id]).await.unwrap(), [b_channel.id]);
    let err = store.create_alert_rule(b.id, &rule("uses a's channel", &[a_channel.id]), NOW).await.unwrap_err();
    assert!(err.kind() == ErrorKind::Invalid, "{err}");
    let err = store.update_alert_rule(a.id, a_rule.id, &rule("x", &[b_channel.id]), NOW).await.unwrap_err();
    assert!(err.kind() == ErrorKind::Invalid, "{err}");
    // Instances, events, notifications.
    assert!(store.alert_instances(b.id, None).await.unwrap().is_empty());
    assert_eq!(store.alert_instances(a.id, None).await.unwrap().len(), 1);
    let everything = EventFilter { limit: 100, ..EventFilter::default() };
    assert!(store.alert_events(b.id, &everything).await.unwrap().is_empty());
    assert_eq!(store.alert_events(a.id, &everything).await.unwrap().len(), 1);
    assert!(store.notifications(b.id, None, 100).await.unwrap().is_empty());
    assert!(store.notifications(b.id, Some(a_channel.id), 100).await.unwrap().is_empty());
    assert_eq!(store.notifications(a.id, None, 100).await.unwrap()[0].payload, "a");
    // Writing into another tenant's rule or channel.
    let test = notify(a_channel.id, None, NotificationKind::Test, "test");
    assert!(matches!(store.enqueue_notification(b.id, &test, NOW).await, Err(e) if e.kind() == ErrorKind::NotFound));
    let naming_a_rule = notify(b_channel.id, Some(a_rule.id), NotificationKind::Test, "test");
    assert!(
        matches!(store.enqueue_notification(b.id, &naming_a_rule, NOW).await, Err(e) if e.kind() == ErrorKind::NotFound)
    );
    let mut b_step = step(b.id, a_rule.id, Some("web-1"), &host, (AlertState::Firing, AlertState::Ok), NOW + 1);
    b_step.notifications = vec![notify(b_channel.id, Some(a_rule.id), NotificationKind::Resolved, "b")];
    assert!(matches!(store.record_alert_step(fence, &b_step).await, Err(e) if e.kind() == ErrorKind::NotFound));
    assert_eq!(store.record_alert_steps(fence, &[b_step]).await.unwrap(), [None]);
    assert!(store.notifications(b.id, None, 100).await.unwrap().is_empty());
    let a_instances = store.alert_instances(a.id, None).await.unwrap();
    assert_eq!(a_instances[0].state, AlertState::Firing, "b's step did not touch a's instance");
    assert_eq!(store.alert_events(a.id, &everything).await.unwrap().len(), 1);
}

async fn a_step_stores_instance_event_and_notifications(store: Store) {
    let fence = lead(&store).await;
    let t = store.create_tenant("acme", "", NOW).await.unwrap();
    let ops = store.create_channel(t.id, &webhook("ops"), NOW).await.unwrap();
    let pager = store.create_channel(t.id, &webhook("pager"), NOW).await.unwrap();
    let r = store.create_alert_rule(t.id, &rule("cpu high", &[ops.id, pager.id]), NOW).await.unwrap();
    let core0 = tags(&[("core", "0"), ("dc", "x")]);
    let mut firing = step(t.id, r.id, Some("web-1"), &core0, (AlertState::Pending, AlertState::Firing), NOW);
    firing.notifications = vec![
        notify(ops.id, Some(r.id), NotificationKind::Firing, "to ops"),
        notify(pager.id, Some(r.id), NotificationKind::Firing, "to pager"),
    ];
    let ids = store.record_alert_step(fence, &firing).await.unwrap();
    assert_eq!(ids.len(), 2);

    let instances = store.all_alert_instances().await.unwrap();
    assert_eq!(instances.len(), 1);
    let i = &instances[0];
    assert_eq!((i.tenant_id, i.rule_id, i.agent_id.as_deref(), &i.tags), (t.id, r.id, Some("web-1"), &core0));
    assert_eq!(
        (i.state, i.severity, i.since_ms, i.value),
        (AlertState::Firing, Some(Severity::Critical), NOW, Some(95.5))
    );
    assert_eq!(i.state_json, r#"{"state":"firing"}"#);
    let events = store.alert_events(t.id, &EventFilter { limit: 10, ..EventFilter::default() }).await.unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.rule_id, e.rule_name.as_str(), e.agent_id.as_deref(), &e.tags),
        (r.id, "cpu high", Some("web-1"), &core0)
    );
    assert_eq!(
        (e.from, e.to, e.severity, e.value, e.at_ms),
        (AlertState::Pending, AlertState::Firing, Some(Severity::Critical), Some(95.5), NOW)
    );
    let log = store.notifications(t.id, None, 10).await.unwrap();
    assert_eq!(log.iter().map(|n| n.id).collect::<Vec<_>>(), [ids[1], ids[0]], "newest first");
    assert_eq!(log[1].payload, "to ops");
    assert_eq!(
        (log[1].status, log[1].attempts, log[1].next_attempt_ms, log[1].created_at_ms),
        (NotificationStatus::Pending, 0, NOW, NOW)
    );
    assert_eq!((log[1].kind, log[1].rule_id, log[1].channel_id), (NotificationKind::Firing, Some(r.id), ops.id));
    assert_eq!(store.notifications(t.id, Some(pager.id), 10).await.unwrap().len(), 1);

    // The same instance again replaces its row; a step without a transition appends none.
    let mut resolved = step(t.id, r.id, Some("web-1"), &core0, (AlertState::Firing, AlertState::Ok), NOW + 60_000);
    resolved.severity = None;
    resolved.value = Some(10.0);
    resolved.state_json = r#"{"state":"ok"}"#;
    store.record_alert_step(fence, &resolved).await.unwrap();
    let mut quiet = resolved.clone();
    quiet.event = None;
    quiet.since_ms = NOW + 60_000;
    quiet.value = Some(11.0);
    quiet.now_ms = NOW + 120_000;
    assert!(store.record_alert_step(fence, &quiet).await.unwrap().is_empty());
    let instances = store.alert_instances(t.id, None).await.unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!((instances[0].state, instances[0].severity, instances[0].value), (AlertState::Ok, None, Some(11.0)));
    assert_eq!(instances[0].state_json, r#"{"state":"ok"}"#);
    assert_eq!(store.alert_events(t.id, &EventFilter { limit: 10, ..EventFilter::default() }).await.unwrap().len(), 2);

    // Another agent, other tags, no agent: instances of their own. An empty agent is none.
    let core1 = tags(&[("core", "1"), ("dc", "x")]);
    let none = tags(&[]);
    let batch = [
        step(t.id, r.id, Some("web-2"), &core0, (AlertState::Ok, AlertState::Pending), NOW),
        step(t.id, r.id, Some("web-1"), &core1, (AlertState::Ok, AlertState::Pending), NOW),
        step(t.id, r.id, None, &none, (AlertState::Ok, AlertState::Pending), NOW),
        step(t.id, r.id, Some(""), &none, (AlertState::Ok, AlertState::Firing), NOW),
    ];
    let recorded = store.record_alert_steps(fence, &batch).await.unwrap();
    assert_eq!(recorded, [Some(vec![]), Some(vec![]), Some(vec![]), Some(vec![])]);
    let instances = store.alert_instances(t.id, None).await.unwrap();
    assert_eq!(instances.len(), 4);
    let unnamed: Vec<_> = instances.iter().filter(|i| i.agent_id.is_none()).collect();
    assert_eq!((unnamed.len(), unnamed[0].state), (1, AlertState::Firing));
    let pending = store.alert_instances(t.id, Some(AlertState::Pending)).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|i| i.state == AlertState::Pending));

    // A notification naming another rule than its step's is refused; nothing is stored.
    let mut wrong = step(t.id, r.id, Some("web-9"), &none, (AlertState::Ok, AlertState::Firing), NOW);
    wrong.notifications = vec![notify(ops.id, Some(r.id + 1), NotificationKind::Firing, "x")];
    assert!(matches!(store.record_alert_step(fence, &wrong).await, Err(e) if e.kind() == ErrorKind::Invalid));
    assert_eq!(store.alert_instances(t.id, None).await.unwrap().len(), 4);

    // Deleting the rule deletes its instances; the history and the log stay.
    assert!(store.delete_alert_rule(t.id, r.id).await.unwrap());
    assert!(store.alert_instances(t.id, None).await.unwrap().is_empty());
    assert_eq!(store.alert_events(t.id, &EventFilter { limit: 10, ..EventFilter::default() }).await.unwrap().len(), 6);
    assert_eq!(store.notifications(t.id, None, 10).await.unwrap().len(), 2);
    // A step of the deleted rule stores nothing.
    assert_eq!(store.record_alert_steps(fence, &[quiet]).await.unwrap(), [None]);
    assert!(store.all_alert_instances().await.unwrap().is_empty());
}

async fn notifications_are_retried_then_sent_or_failed(store: Store) {
    let a = store.create_tenant("a", "", NOW).await.unwrap();
    let b = store.create_tenant("b", "", NOW).await.unwrap();
    let a_ch = store.create_channel(a.id, &webhook("a"), NOW).await.unwrap();
    let b_ch = store.create_channel(b.id, &webhook("b"), NOW).await.unwrap();
    let first =
        store.enqueue_notification(a.id, &notify(a_ch.id, None, NotificationKind::Test, "1"), NOW).await.unwrap();
    let second =
        store.enqueue_notification(b.id, &notify(b_ch.id, None, NotificationKind::Test, "2"), NOW + 10).await.unwrap();
    let ids = |rows: Vec<microdash_store::NotificationRow>| rows.into_iter().map(|n| n.id).collect::<Vec<_>>();

    assert!(store.due_notifications(NOW - 1, 10).await.unwrap().is_empty());
    assert_eq!(ids(store.due_notifications(NOW, 10).await.unwrap()), [first]);
    assert_eq!(
        ids(store.due_notifications(NOW + 10, 10).await.unwrap()),
        [first, second],
        "across tenants, oldest first"
    );
    assert_eq!(ids(store.due_notifications(NOW + 10, 1).await.unwrap()), [first]);

    // Retry: still pending, due later, with the error.
    let retry = AttemptOutcome::Retry {
        error: "503 from receiver".into(),
        http_status: Some(503),
        next_attempt_ms: NOW + 30_000,
    };
    assert!(store.record_attempt(first, NOW, &retry, NOW + 20).await.unwrap());
    assert_eq!(ids(store.due_notifications(NOW + 29_999, 10).await.unwrap()), [second]);
    assert_eq!(ids(store.due_notifications(NOW + 30_000, 10).await.unwrap()), [second, first]);
    let n = &store.notifications(a.id, None, 10).await.unwrap()[0];
    assert_eq!((n.status, n.attempts, n.next_attempt_ms), (NotificationStatus::Pending, 1, NOW + 30_000));
    assert_eq!((n.last_error.as_deref(), n.http_status, n.sent_at_ms), (Some("503 from receiver"), Some(503), None));

    // Then sent: no longer due, the error cleared.
    assert!(
        store
            .record_attempt(first, NOW + 30_000, &AttemptOutcome::Sent { http_status: Some(200) }, NOW + 30_100)
            .await
            .unwrap()
    );
    let n = &store.notifications(a.id, Some(a_ch.id), 10).await.unwrap()[0];
    assert_eq!((n.status, n.attempts, n.sent_at_ms), (NotificationStatus::Sent, 2, Some(NOW + 30_100)));
    assert_eq!((n.last_error.as_deref(), n.http_status), (None, Some(200)));
    assert_eq!(ids(store.due_notifications(NOW + 99_999, 10).await.unwrap()), [second]);
    // A finished notification takes no more attempts.
    assert!(!store.record_attempt(first, NOW + 30_100, &retry, NOW + 30_200).await.unwrap());
    assert_eq!(store.notifications(a.id, None, 10).await.unwrap()[0].attempts, 2);
    assert!(!store.record_attempt(9999, NOW, &retry, NOW).await.unwrap());

    // Failed: given up, with the last error, bounded.
    let long = "x".repeat(10_000);
    let failed = AttemptOutcome::Failed { error: long, http_status: None };
    assert!(store.record_attempt(second, NOW + 10, &failed, NOW + 40_000).await.unwrap());
    let n = &store.notifications(b.id, None, 10).await.unwrap()[0];
    assert_eq!((n.status, n.attempts, n.http_status, n.sent_at_ms), (NotificationStatus::Failed, 1, None, None));
    assert_eq!(n.last_error.as_ref().map(|e| e.len()), Some(microdash_store::MAX_NOTIFICATION_ERROR_CHARS));
    assert!(store.due_notifications(i64::MAX, 10).await.unwrap().is_empty());

    // The log is newest first and limited.
    for i in 0..3 {
        store
            .enqueue_notification(a.id, &notify(a_ch.id, None, NotificationKind::Test, &format!("n{i}")), NOW + 50_000)
            .await
            .unwrap();
    }
    let log = store.notifications(a.id, None, 2).await.unwrap();
    assert_eq!(log.iter().map(|n| n.payload.as_str()).collect::<Vec<_>>(), ["n2", "n1"]);
}

async fn one_holder_has_a_lease_at_a_time(store: Store) {
    const TTL: i64 = 10_000;
    assert!(store.try_lease("alert-evaluator", "a", TTL, NOW).await.unwrap());
    assert!(!store.try_lease("alert-evaluator", "b", TTL, NOW + 1).await.unwrap());
    // Another lease is independent.
    assert!(store.try_lease("sender", "b", TTL, NOW).await.unwrap());
    // Renewed by its holder, it lasts from the renewal.
    assert!(store.try_lease("alert-evaluator", "a", TTL, NOW + 5_000).await.unwrap());
    assert!(store.try_lease("alert-evaluator", "a", TTL, NOW + 5_000).await.unwrap(), "renewing to the same expiry");
    assert!(!store.try_lease("alert-evaluator", "b", TTL, NOW + 14_999).await.unwrap());
    // Expired, another takes it, and the old holder cannot renew it.
    assert!(store.try_lease("alert-evaluator", "b", TTL, NOW + 15_000).await.unwrap());
    assert!(!store.try_lease("alert-evaluator", "a", TTL, NOW + 15_001).await.unwrap());
    // Only the holder can release it; released, it is free at once.
    assert!(!store.release_lease("alert-evaluator", "a").await.unwrap());
    assert!(!store.try_lease("alert-evaluator", "a", TTL, NOW + 16_000).await.unwrap());
    assert!(store.release_lease("alert-evaluator", "b").await.unwrap());
    assert!(store.try_lease("alert-evaluator", "a", TTL, NOW + 16_000).await.unwrap());

    assert!(matches!(store.try_lease("", "a", TTL, NOW).await, Err(e) if e.kind() == ErrorKind::Invalid));
    assert!(matches!(store.try_lease("x", "a", 0, NOW).await, Err(e) if e.kind() == ErrorKind::Invalid));
}

/// Processes racing for a free lease, and then for an expired one (each a store of its own,
/// as two processes would have): exactly one wins each time.
async fn one_process_wins_a_lease_race(backend: Backend) {
    const TTL: i64 = 10_000;
    let db = TestDb::new(backend).await;
    let processes = [db.store().await, db.store().await, db.store().await];
    for (round, at) in [(0, NOW), (1, NOW + TTL), (2, NOW + 2 * TTL)] {
        let racers: Vec<_> = (0..9)
            .map(|i| {
                let store = processes[i % processes.len()].clone();
                tokio::spawn(async move { store.try_lease("race", &format!("p{round}-{i}"), TTL, at).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for racer in racers {
            winners += usize::from(racer.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_one_process_wins_a_lease_race() {
    one_process_wins_a_lease_race(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_one_process_wins_a_lease_race() {
    one_process_wins_a_lease_race(Backend::Mysql).await;
}

async fn events_filter_by_time_rule_and_agent(store: Store) {
    let fence = lead(&store).await;
    let t = store.create_tenant("acme", "", NOW).await.unwrap();
    let r1 = store.create_alert_rule(t.id, &rule("one", &[]), NOW).await.unwrap();
    let r2 = store.create_alert_rule(t.id, &rule("two", &[]), NOW).await.unwrap();
    let none = tags(&[]);
    let (ok, pending, firing) = (AlertState::Ok, AlertState::Pending, AlertState::Firing);
    store
        .record_alert_steps(
            fence,
            &[
                step(t.id, r1.id, Some("web-1"), &none, (ok, pending), NOW),
                step(t.id, r1.id, Some("web-1"), &none, (pending, firing), NOW + 1000),
                step(t.id, r1.id, Some("web-2"), &none, (ok, firing), NOW + 2000),
                step(t.id, r2.id, Some("web-1"), &none, (ok, firing), NOW + 3000),
                step(t.id, r2.id, None, &none, (ok, firing), NOW + 3000),
            ],
        )
        .await
        .unwrap();
    let times = |filter: EventFilter| {
        let store = store.clone();
        async move {
            let events = store.alert_events(t.id, &EventFilter { limit: 100, ..filter }).await.unwrap();
            events.iter().map(|e| (e.at_ms - NOW, e.rule_id, e.agent_id.clone())).collect::<Vec<_>>()
        }
    };
    let w = |s: &str| Some(s.to_owned());
    assert_eq!(
        times(EventFilter::default()).await,
        [
            (3000, r2.id, None),
            (3000, r2.id, w("web-1")),
            (2000, r1.id, w("web-2")),
            (1000, r1.id, w("web-1")),
            (0, r1.id, w("web-1")),
        ]
    );
    let window = EventFilter { start_ms: Some(NOW + 1000), end_ms: Some(NOW + 3000), ..EventFilter::default() };
    assert_eq!(times(window).await, [(2000, r1.id, w("web-2")), (1000, r1.id, w("web-1"))]);
    assert_eq!(
        times(EventFilter { rule_id: Some(r1.id), agent_id: w("web-1"), ..EventFilter::default() }).await,
        [(1000, r1.id, w("web-1")), (0, r1.id, w("web-1"))]
    );
    assert_eq!(times(EventFilter { rule_id: Some(r2.id), ..EventFilter::default() }).await.len(), 2);
    assert_eq!(times(EventFilter { agent_id: w("web-3"), ..EventFilter::default() }).await, []);
    let newest_two = store.alert_events(t.id, &EventFilter { limit: 2, ..EventFilter::default() }).await.unwrap();
    assert_eq!(newest_two.iter().map(|e| e.at_ms - NOW).collect::<Vec<_>>(), [3000, 3000]);
}

async fn old_history_expires(store: Store) {
    let fence = lead(&store).await;
    let t = store.create_tenant("acme", "", NOW).await.unwrap();
    let ch = store.create_channel(t.id, &webhook("ops"), NOW).await.unwrap();
    let r = store.create_alert_rule(t.id, &rule("r", &[ch.id]), NOW).await.unwrap();
    let none = tags(&[]);
    const DAY: i64 = 86_400_000;
    let steps: Vec<_> = (0..5)
        .map(|day| {
            let mut s = step(t.id, r.id, Some("web-1"), &none, (AlertState::Ok, AlertState::Firing), NOW + day * DAY);
            s.notifications = vec![notify(ch.id, Some(r.id), NotificationKind::Firing, "x")];
            s
        })
        .collect();
    let ids: Vec<i64> =
        store.record_alert_steps(fence, &steps).await.unwrap().into_iter().flatten().flatten().collect();
    // Days 0 and 1 were delivered, day 2 failed, days 3 and 4 are still pending.
    // (Each is due when its step queued it: that is the claim an attempt names.)
    for (day, id) in ids[..2].iter().enumerate() {
        let sent = AttemptOutcome::Sent { http_status: Some(200) };
        assert!(store.record_attempt(*id, NOW + day as i64 * DAY, &sent, NOW).await.unwrap());
    }
    let failed = AttemptOutcome::Failed { error: "no".into(), http_status: None };
    assert!(store.record_attempt(ids[2], NOW + 2 * DAY, &failed, NOW).await.unwrap());
    let pending_old = ids[3];

    // Before day 4: the events of days 0 to 3, and the finished notifications of days 0 to 2.
    let deleted = store.expire_alert_history(NOW + 4 * DAY, 2).await.unwrap();
    assert_eq!(deleted, 4 + 3);
    let events = store.alert_events(t.id, &EventFilter { limit: 100, ..EventFilter::default() }).await.unwrap();
    assert_eq!(events.iter().map(|e| (e.at_ms - NOW) / DAY).collect::<Vec<_>>(), [4]);
    let log = store.notifications(t.id, None, 100).await.unwrap();
    assert_eq!(log.iter().map(|n| n.id).collect::<Vec<_>>(), [ids[4], pending_old], "pending ones stay");
    assert_eq!(store.expire_alert_history(NOW + 4 * DAY, 2).await.unwrap(), 0);
    assert_eq!(store.alert_instances(t.id, None).await.unwrap().len(), 1, "instances are not history");
}

/// Fenced writes and claims are refused to a process that no longer holds the lease, by the
/// database's clock, and nothing of them is stored.
async fn fenced_writes_need_the_lease(store: Store) {
    let t = store.create_tenant("acme", "", NOW).await.unwrap();
    let ch = store.create_channel(t.id, &webhook("ops"), NOW).await.unwrap();
    let r = store.create_alert_rule(t.id, &rule("r", &[ch.id]), NOW).await.unwrap();
    let clock = store.clock_ms().await.unwrap();
    let system = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((clock - system).abs() < 5_000, "the database clock {clock} is near this host's {system}");

    let none = tags(&[]);
    let mut firing = step(t.id, r.id, Some("web-1"), &none, (AlertState::Ok, AlertState::Firing), NOW);
    firing.notifications = vec![notify(ch.id, Some(r.id), NotificationKind::Firing, "p")];
    let stranger = Fence { lease: "alerts", holder: "never-held" };
    assert!(matches!(store.record_alert_step(stranger, &firing).await, Err(e) if e.is_lease_lost()));
    // A lease taken long ago has run out by the database's clock, whatever the holder thinks.
    let stale = Fence { lease: "alerts", holder: "stalled" };
    assert!(store.try_lease(stale.lease, stale.holder, 1_000, clock - 60_000).await.unwrap());
    assert!(matches!(store.record_alert_step(stale, &firing).await, Err(e) if e.is_lease_lost()));
    assert!(matches!(store.claim_due_notifications(stale, NOW, 10, 1_000, &[]).await, Err(e) if e.is_lease_lost()));
    let instance = InstanceRef { rule_id: r.id, agent_id: Some("web-1"), tags: &none };
    assert!(matches!(store.forget_alert_instances(stale, &[instance]).await, Err(e) if e.is_lease_lost()));
    assert!(store.all_alert_instances().await.unwrap().is_empty());
    assert!(store.notifications(t.id, None, 10).await.unwrap().is_empty());

    // Its successor writes; the stalled one, though it once held the lease, still cannot.
    let fence = lead(&store).await;
    assert_eq!(store.record_alert_step(fence, &firing).await.unwrap().len(), 1);
    assert!(matches!(store.record_alert_step(stale, &firing).await, Err(e) if e.is_lease_lost()));
    assert_eq!(store.notifications(t.id, None, 10).await.unwrap().len(), 1);
}

/// A claimed notification is not due again until its claim runs out, so a sender that dies
/// mid-delivery leaves it to be sent again, and a live one never takes it twice.
async fn claimed_notifications_wait_for_their_claim(store: Store) {
    let fence = lead(&store).await;
    let t = store.create_tenant("acme", "", NOW).await.unwrap();
    let ch = store.create_channel(t.id, &webhook("ops"), NOW).await.unwrap();
    let first = store.enqueue_notification(t.id, &notify(ch.id, None, NotificationKind::Test, "1"), NOW).await.unwrap();
    let second =
        store.enqueue_notification(t.id, &notify(ch.id, None, NotificationKind::Test, "2"), NOW + 1).await.unwrap();
    let ids = |rows: Vec<microdash_store::NotificationRow>| rows.into_iter().map(|n| n.id).collect::<Vec<_>>();

    let claimed = store.claim_due_notifications(fence, NOW + 5, 1, 10_000, &[]).await.unwrap();
    assert_eq!((claimed[0].id, claimed[0].next_attempt_ms), (first, NOW + 10_005), "the claim is in the row");
    // What the sender is still sending is left out.
    assert!(store.claim_due_notifications(fence, NOW + 5, 10, 10_000, &[second]).await.unwrap().is_empty());
    assert_eq!(ids(store.claim_due_notifications(fence, NOW + 5, 10, 10_000, &[]).await.unwrap()), [second]);
    assert!(store.claim_due_notifications(fence, NOW + 10_004, 10, 10_000, &[]).await.unwrap().is_empty());
    // The first claim ran out without an attempt recorded: it is claimed again.
    let again = store.claim_due_notifications(fence, NOW + 10_005, 10, 10_000, &[]).await.unwrap();
    assert_eq!(ids(again.clone()), [first, second]);
    // The first sender's late answer names a claim that no longer stands: not recorded.
    let sent = AttemptOutcome::Sent { http_status: Some(200) };
    assert!(!store.record_attempt(first, claimed[0].next_attempt_ms, &sent, NOW + 10_006).await.unwrap());
    // The current claim's is, and replaces the claim.
    assert!(store.record_attempt(first, again[0].next_attempt_ms, &sent, NOW + 10_006).await.unwrap());
    assert_eq!(ids(store.claim_due_notifications(fence, NOW + 99_999, 10, 10_000, &[]).await.unwrap()), [second]);
}

/// Forgetting instances deletes only those that are ok.
async fn forgotten_instances_go_unless_alerting(store: Store) {
    let fence = lead(&store).await;
    let t = store.create_tenant("acme", "", NOW).await.unwrap();
    let r = store.create_alert_rule(t.id, &rule("r", &[]), NOW).await.unwrap();
    let none = tags(&[]);
    let disk = tags(&[("mount", "/")]);
    let quiet = step(t.id, r.id, Some("old"), &none, (AlertState::Firing, AlertState::Ok), NOW);
    let quiet_disk = step(t.id, r.id, Some("old"), &disk, (AlertState::Firing, AlertState::Ok), NOW);
    let firing = step(t.id, r.id, Some("busy"), &none, (AlertState::Ok, AlertState::Firing), NOW);
    store.record_alert_steps(fence, &[quiet, quiet_disk, firing]).await.unwrap();
    let forget = [
        InstanceRef { rule_id: r.id, agent_id: Some("old"), tags: &none },
        InstanceRef { rule_id: r.id, agent_id: Some("busy"), tags: &none },
        InstanceRef { rule_id: r.id + 1, agent_id: Some("old"), tags: &disk },
    ];
    assert_eq!(store.forget_alert_instances(fence, &forget).await.unwrap(), 1);
    let left = store.alert_instances(t.id, None).await.unwrap();
    let mut left: Vec<_> = left.iter().map(|i| (i.agent_id.as_deref(), i.tags.len(), i.state)).collect();
    left.sort_by_key(|(agent, tags, _)| (*agent, *tags));
    assert_eq!(
        left,
        [(Some("busy"), 0, AlertState::Firing), (Some("old"), 1, AlertState::Ok)],
        "the other series stay"
    );
}

on_every_backend!(
    fenced_writes_need_the_lease,
    claimed_notifications_wait_for_their_claim,
    forgotten_instances_go_unless_alerting,
    rules_round_trip_and_revision,
    channels_round_trip,
    tenants_never_see_each_other,
    a_step_stores_instance_event_and_notifications,
    notifications_are_retried_then_sent_or_failed,
    one_holder_has_a_lease_at_a_time,
    events_filter_by_time_rule_and_agent,
    old_history_expires,
);

/// A batch of steps whose last notification the database refuses (a trigger made for the
/// test) stores nothing at all: not the instances, events or notifications before it.
async fn a_failing_batch_stores_nothing(backend: Backend) {
    use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};

    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let fence = lead(&store).await;
    let t = store.create_tenant("acme", "", NOW).await.unwrap();
    let ch = store.create_channel(t.id, &webhook("ops"), NOW).await.unwrap();
    let r = store.create_alert_rule(t.id, &rule("r", &[ch.id]), NOW).await.unwrap();
    match backend {
        Backend::Sqlite => {
            let path = db.url.strip_prefix("sqlite://").unwrap().to_owned();
            let mut conn =
                diesel_async::sync_connection_wrapper::SyncConnectionWrapper::<diesel::SqliteConnection>::establish(
                    &path,
                )
                .await
                .unwrap();
            conn.batch_execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON alert_notifications WHEN NEW.payload = 'boom' \
                 BEGIN SELECT RAISE(ABORT, 'boom refused'); END;",
            )
            .await
            .unwrap();
        }
        Backend::Mysql => {
            let mut conn = AsyncMysqlConnection::establish(&db.url).await.unwrap();
            conn.batch_execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON alert_notifications FOR EACH ROW \
                 BEGIN IF NEW.payload = 'boom' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom refused'; END IF; END",
            )
            .await
            .unwrap();
        }
    }
    let none = tags(&[]);
    let mut first = step(t.id, r.id, Some("web-1"), &none, (AlertState::Ok, AlertState::Firing), NOW);
    first.notifications = vec![notify(ch.id, Some(r.id), NotificationKind::Firing, "fine")];
    let mut second = step(t.id, r.id, Some("web-2"), &none, (AlertState::Ok, AlertState::Firing), NOW);
    second.notifications = vec![
        notify(ch.id, Some(r.id), NotificationKind::Firing, "fine too"),
        notify(ch.id, Some(r.id), NotificationKind::Firing, "boom"),
    ];
    let err = store.record_alert_steps(fence, &[first.clone(), second]).await.unwrap_err();
    assert!(err.to_string().contains("boom refused"), "{err}");
    assert!(store.all_alert_instances().await.unwrap().is_empty());
    assert!(store.alert_events(t.id, &EventFilter { limit: 10, ..EventFilter::default() }).await.unwrap().is_empty());
    assert!(store.notifications(t.id, None, 10).await.unwrap().is_empty());
    // The store writes on afterwards (on SQLite, the writer's connection was replaced).
    assert_eq!(store.record_alert_step(fence, &first).await.unwrap().len(), 1);
    assert_eq!(store.all_alert_instances().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_failing_batch_stores_nothing() {
    a_failing_batch_stores_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_a_failing_batch_stores_nothing() {
    a_failing_batch_stores_nothing(Backend::Mysql).await;
}
