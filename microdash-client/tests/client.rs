//! The client against the real server: every endpoint, retries, and the live stream's
//! resumption.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Fault, Proxy, Server, metric, now_ms, wait_for_count};
use futures_util::StreamExt;
use microdash_client::alert::{AlertHistoryQuery, AlertRuleIn, ChannelIn, ChannelKind, NotificationKind, Operator};
use microdash_client::{
    Client, CreateToken, Error, LiveEvent, LiveStream, MetricIn, RangeQuery, Resolution, ResolutionRequest,
    StreamQuery, UpdateTenant,
};

/// The next event, failing after five seconds.
async fn next(live: &mut LiveStream) -> LiveEvent {
    let event = tokio::time::timeout(Duration::from_secs(5), live.next()).await.expect("no stream event in time");
    event.expect("the stream ended").expect("a stream error")
}

/// Values from `points` events until `n` have arrived.
async fn values(live: &mut LiveStream, n: usize) -> Vec<f64> {
    let mut values = Vec::new();
    while values.len() < n {
        match next(live).await {
            LiveEvent::Points { points, .. } => values.extend(points.iter().map(|p| p.value)),
            other => panic!("expected points, got {other:?}"),
        }
    }
    values
}

fn points(name: &str, values: impl IntoIterator<Item = f64>) -> Vec<MetricIn> {
    values.into_iter().map(|v| MetricIn::new(name, v)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_shows_the_base_url_but_never_the_token() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);
    let text = format!("{client:?}");
    assert!(!text.contains(&tenant.token), "{text}");
    assert!(text.contains(&server.url) && text.contains(&format!("\"{}…(redacted)\"", &tenant.token[..7])), "{text}");
    let builder = Client::builder(&server.url).token(&tenant.token);
    assert!(!format!("{builder:?}").contains(&tenant.token));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_and_query() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);
    assert_eq!(client.health().await.unwrap().status, microdash_client::HealthStatus::Ok);

    let now = now_ms();
    let batch: Vec<MetricIn> = (0..3)
        .map(|i| {
            MetricIn::new("temp", 20.0 + f64::from(i))
                .agent("s-1")
                .tag("room", "lab")
                .at_millis(now - 3000 + i64::from(i) * 1000)
        })
        .collect();
    assert_eq!(client.push(&batch).await.unwrap().accepted, 3);
    assert_eq!(client.push_one(&MetricIn::new("temp", 30.0).agent("s-2").at_millis(now)).await.unwrap().accepted, 1);
    assert_eq!(
        client.push_json(br#"{"metric_name":"temp","value":31,"agent_id":"s-3"}"#.to_vec()).await.unwrap().accepted,
        1
    );
    wait_for_count(&client, &metric("temp"), 5).await;

    let mut only_s1 = metric("temp");
    only_s1.agent_id = Some("s-1".into());
    let answer = client.query(&only_s1).await.unwrap();
    assert_eq!(answer.resolution, Resolution::Raw);
    assert_eq!(answer.data.iter().map(|p| p.value).collect::<Vec<_>>(), [20.0, 21.0, 22.0]);
    assert!(answer.data.iter().all(|p| p.tags["room"] == "lab" && p.agent_id.as_deref() == Some("s-1")));

    // A dedupe id makes a push safe to repeat: stored once.
    let once = MetricIn::new("once", 1.0).dedupe_id("the-one");
    client.push(std::slice::from_ref(&once)).await.unwrap();
    client.push(&[once]).await.unwrap();
    wait_for_count(&client, &metric("once"), 1).await;

    // Refusals are typed, with every bad field.
    let refused = client.push(&[MetricIn::new("ok", 1.0), MetricIn::new("bad name", f64::NAN)]).await;
    let Err(Error::Api { status: 422, code, details, request_id, .. }) = refused else { panic!("{refused:?}") };
    assert_eq!(code, "invalid_metrics");
    // The server's id for the request, as its log names it.
    assert!(request_id.is_some_and(|id| !id.is_empty()));
    assert!(details.iter().all(|d| d.index == Some(1)) && details.len() >= 2, "{details:?}");

    // An admin reads a tenant by naming it.
    let admin = server.client(&server.admin_token().await);
    let refused = admin.query(&metric("temp")).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert_eq!(admin.for_tenant("acme").query(&metric("temp")).await.unwrap().count, 5);
    assert_eq!(admin.for_tenant("acme").tenant(), Some("acme"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn query_range_answers_raw_points_or_rollups() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);
    // Two whole minutes, ten points each, within raw retention.
    let start = (now_ms() / 60_000 - 10) * 60_000;
    let batch: Vec<MetricIn> = (0..20)
        .map(|i| MetricIn::new("load", f64::from(i)).agent("h").at_millis(start + i64::from(i) * 6_000))
        .collect();
    client.push(&batch).await.unwrap();
    wait_for_count(&client, &metric("load"), 20).await;

    let range = RangeQuery::new(start, start + 120_000).metric("load");
    let raw = client.query_range(&range.clone().resolution(ResolutionRequest::Exact(Resolution::Raw))).await.unwrap();
    assert_eq!((raw.resolution, raw.count), (Resolution::Raw, 20));

    let minutes =
        client.query_range(&range.clone().resolution(ResolutionRequest::Exact(Resolution::ONE_MINUTE))).await.unwrap();
    assert_eq!(minutes.resolution, Resolution::ONE_MINUTE);
    let buckets: Vec<_> = minutes.data.iter().map(|b| (b.count, b.min, b.max, b.last, b.value)).collect();
    assert_eq!(
        buckets,
        [(Some(10), Some(0.0), Some(9.0), Some(9.0), 4.5), (Some(10), Some(10.0), Some(19.0), Some(19.0), 14.5)]
    );

    let capped = client.query_range(&range.clone().resolution(ResolutionRequest::Auto).max_points(1)).await.unwrap();
    assert_eq!(capped.count, 1, "auto merged the range into one bucket: {capped:?}");
    assert_eq!(capped.data[0].count, Some(20));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_and_series() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);
    client
        .push(&[
            MetricIn::new("cpu", 1.0).agent("web-1").tag("core", "0"),
            MetricIn::new("cpu", 2.0).agent("web-2").tag("core", "0"),
            MetricIn::new("mem", 3.0).agent("web-1"),
        ])
        .await
        .unwrap();
    wait_for_count(&client, &metric("cpu"), 2).await;
    wait_for_count(&client, &metric("mem"), 1).await;

    let mut agents: Vec<(String, microdash_client::AgentStatus)> =
        client.agents().await.unwrap().into_iter().map(|a| (a.agent_id, a.status)).collect();
    agents.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        agents,
        [
            ("web-1".into(), microdash_client::AgentStatus::Online),
            ("web-2".into(), microdash_client::AgentStatus::Online)
        ]
    );

    let mut series: Vec<String> = client
        .series()
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{} {} {:?}", s.metric_name, s.agent_id.unwrap_or_default(), s.tags))
        .collect();
    series.sort();
    assert_eq!(series, [r#"cpu web-1 {"core": "0"}"#, r#"cpu web-2 {"core": "0"}"#, "mem web-1 {}"]);

    let admin = server.client(&server.admin_token().await);
    assert_eq!(admin.for_tenant("acme").agents().await.unwrap().len(), 2);
    assert_eq!(admin.for_tenant("acme").series().await.unwrap().len(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_and_tokens() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let admin = server.client(&server.admin_token().await);

    let fleet = admin.create_tenant("fleet", "IoT fleet").await.unwrap();
    assert_eq!((fleet.slug.as_str(), fleet.name.as_str()), ("fleet", "IoT fleet"));
    let slugs: Vec<String> = admin.tenants().await.unwrap().into_iter().map(|t| t.slug).collect();
    assert_eq!(slugs, ["acme", "fleet"]);
    let longer = UpdateTenant { retention_raw_hours: Some(Some(48)), ..UpdateTenant::default() };
    assert_eq!(admin.update_tenant("fleet", &longer).await.unwrap().retention_raw_hours, 48);
    // A tenant's token sees its own tenant only, and manages no tokens.
    let own = server.client(&acme.token);
    assert_eq!(own.tenants().await.unwrap().into_iter().map(|t| t.slug).collect::<Vec<_>>(), ["acme"]);
    assert_eq!(own.tokens().await.unwrap_err().status(), Some(403));

    let request = CreateToken { tenant: Some("fleet".into()), scopes: "ingest,read".into(), name: Some("ci".into()) };
    let created = admin.create_token(&request).await.unwrap();
    assert!(created.token.starts_with("mdk_") && created.token.starts_with(&created.info.prefix));
    let listed = admin.tokens().await.unwrap();
    let entry = listed.iter().find(|t| t.id == created.info.id).unwrap();
    assert_eq!(
        (entry.tenant.as_deref(), entry.name.as_str(), entry.revoked_at.as_deref()),
        (Some("fleet"), "ci", None)
    );

    let ci = server.client(&created.token);
    ci.push(&[MetricIn::new("up", 1.0)]).await.unwrap();
    let revoked = admin.revoke_token(created.info.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let refused = ci.push(&[MetricIn::new("up", 1.0)]).await.unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
    assert!(!refused.is_retryable());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn safe_requests_are_retried_after_the_servers_retry_after() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let proxy = Proxy::start(&server.url).await;
    let client = Client::builder(&proxy.url).token(&tenant.token).retries(2).build().unwrap();

    proxy.inject(Fault::Refuse { status: 503, retry_after: Some(1) });
    let started = Instant::now();
    client.query(&metric("x")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
    assert_eq!(proxy.requests(), 2);

    // A push without dedupe ids may have been acted on: not repeated.
    proxy.inject(Fault::Refuse { status: 503, retry_after: Some(1) });
    let refused = client.push(&[MetricIn::new("x", 1.0)]).await.unwrap_err();
    assert!(refused.is_retryable() && refused.retry_after() == Some(Duration::from_secs(1)), "{refused:?}");
    assert_eq!(proxy.requests(), 3);

    // With dedupe ids it is, and an answer lost after the server stored it changes nothing.
    proxy.inject(Fault::LoseAnswer { status: 503, retry_after: Some(1) });
    let batch: Vec<MetricIn> = (0..5).map(|i| MetricIn::new("x", f64::from(i)).dedupe_id(format!("x-{i}"))).collect();
    assert_eq!(client.push(&batch).await.unwrap().accepted, 5);
    assert_eq!(proxy.requests(), 5);
    wait_for_count(&client, &metric("x"), 5).await;

    // Out of retries: the last error.
    let once = Client::builder(&proxy.url).token(&tenant.token).retries(1).build().unwrap();
    for _ in 0..2 {
        proxy.inject(Fault::Refuse { status: 429, retry_after: Some(0) });
    }
    assert_eq!(once.query(&metric("x")).await.unwrap_err().status(), Some(429));

    // Nothing listening: a connection error, retried, then reported.
    let nowhere = Client::builder("http://127.0.0.1:9").token(&tenant.token).retries(1).build().unwrap();
    let err = nowhere.health().await.unwrap_err();
    assert!(matches!(&err, Error::Http(e) if e.is_connect()) && err.is_retryable(), "{err:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_resumes_after_a_drop_without_losing_points() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let direct = server.client(&tenant.token);
    let proxy = Proxy::start(&server.url).await;
    let client = Client::new(&proxy.url, &tenant.token).unwrap();

    let mut live = client.stream("acme", &StreamQuery::default()).await.unwrap();
    let LiveEvent::Ready { cursor } = next(&mut live).await else { panic!("no ready event") };
    assert_eq!(live.cursor(), Some(cursor));
    direct.push(&points("t", [1.0, 2.0])).await.unwrap();
    assert_eq!(values(&mut live, 2).await, [1.0, 2.0]);
    let before_drop = live.cursor().unwrap();

    // The connection drops; points stored meanwhile are replayed on the resumed stream, and
    // the reconnection itself is no news to the caller.
    proxy.cut();
    direct.push(&points("t", [3.0])).await.unwrap();
    direct.push(&points("t", [4.0])).await.unwrap();
    wait_for_count(&direct, &metric("t"), 4).await;
    assert_eq!(values(&mut live, 2).await, [3.0, 4.0]);
    assert_eq!(live.reconnects(), 1);
    assert_eq!(proxy.last_event_ids(), [String::new(), before_drop]);

    // Points keep coming on the new connection.
    direct.push(&points("t", [5.0])).await.unwrap();
    assert_eq!(values(&mut live, 1).await, [5.0]);

    // Polling answers the same points after a cursor.
    let after = StreamQuery { after: live.cursor(), wait_ms: Some(5_000), ..StreamQuery::default() };
    direct.push(&points("t", [6.0])).await.unwrap();
    let polled = client.latest("acme", &after).await.unwrap();
    assert!(!polled.reset);
    assert_eq!(polled.points.iter().map(|p| p.value).collect::<Vec<_>>(), [6.0]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_says_reset_when_the_server_cannot_resume() {
    let first = Server::start().await;
    let tenant = first.tenant("acme").await;
    let proxy = Proxy::start(&first.url).await;
    let client = Client::new(&proxy.url, &tenant.token).unwrap();

    // A cursor the server never gave: reset at once.
    let stale = StreamQuery { after: Some("not-a-cursor".into()), ..StreamQuery::default() };
    let mut live = client.stream("acme", &stale).await.unwrap();
    assert!(matches!(next(&mut live).await, LiveEvent::Reset { .. }));
    drop(live);

    let mut live = client.stream("acme", &StreamQuery::default()).await.unwrap();
    assert!(matches!(next(&mut live).await, LiveEvent::Ready { .. }));
    first.client(&tenant.token).push(&points("t", [1.0])).await.unwrap();
    assert_eq!(values(&mut live, 1).await, [1.0]);

    // The stream's server goes away; another one (a restart) cannot resume its cursor.
    let second = Server::start_on(first.store.clone()).await;
    proxy.switch_to(&second.url);
    proxy.cut();
    let LiveEvent::Reset { cursor } = next(&mut live).await else { panic!("no reset") };
    assert_eq!(live.cursor(), Some(cursor));
    second.client(&tenant.token).push(&points("t", [2.0])).await.unwrap();
    assert_eq!(values(&mut live, 1).await, [2.0]);
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_ends_with_the_refusal_once_its_token_is_revoked() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);
    let mut live = client.stream("acme", &StreamQuery::default()).await.unwrap();
    assert!(matches!(next(&mut live).await, LiveEvent::Ready { .. }));

    let admin = server.client(&server.admin_token().await);
    let id = admin.tokens().await.unwrap().into_iter().find(|t| t.tenant.as_deref() == Some("acme")).unwrap().id;
    admin.revoke_token(id).await.unwrap();
    let last = tokio::time::timeout(Duration::from_secs(10), live.next()).await.unwrap();
    let Some(Err(err)) = last else { panic!("expected the refusal, got {last:?}") };
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(tokio::time::timeout(Duration::from_secs(1), live.next()).await.unwrap().is_none());

    // Refusals at the start come back from `stream` itself.
    let other = server.tenant("other").await;
    let refused = server.client(&other.token).stream("acme", &StreamQuery::default()).await.unwrap_err();
    assert_eq!(refused.status(), Some(403));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alert_rules_channels_alerts_and_notifications() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let client = server.client(&tenant.token);

    let hook = ChannelIn {
        name: Some("ops".into()),
        kind: Some(ChannelKind::Webhook),
        url: Some("http://127.0.0.1:9/hook".into()),
        secret: Some("s3cret".into()),
        ..ChannelIn::default()
    };
    let channel = client.create_channel(&hook).await.unwrap();
    assert!(channel.has_secret && channel.url.as_deref() == Some("http://127.0.0.1:9/hook"));
    let mail = ChannelIn {
        name: Some("mail".into()),
        kind: Some(ChannelKind::Email),
        to: Some(vec!["ops@example.com".into()]),
        ..ChannelIn::default()
    };
    let updated = client.update_channel(channel.id, &mail).await.unwrap();
    assert_eq!((updated.id, updated.kind), (channel.id, ChannelKind::Email));
    assert_eq!(client.channels().await.unwrap(), [updated]);

    let rule = AlertRuleIn {
        name: Some("hot".into()),
        metric_name: Some("temp".into()),
        operator: Some(Operator::Gt),
        critical: Some(90.0),
        channels: Some(vec![channel.id]),
        ..AlertRuleIn::default()
    };
    let created = client.create_alert_rule(&rule).await.unwrap();
    assert_eq!(
        (created.name.as_str(), created.critical, created.channels.as_slice()),
        ("hot", 90.0, &[channel.id][..])
    );
    assert_eq!(client.alert_rule(created.id).await.unwrap(), created);
    let cooler = AlertRuleIn { critical: Some(80.0), warning: Some(70.0), ..rule.clone() };
    let changed = client.update_alert_rule(created.id, &cooler).await.unwrap();
    assert_eq!((changed.critical, changed.warning), (80.0, Some(70.0)));
    assert_eq!(client.alert_rules().await.unwrap(), [changed]);

    // A refused rule names its fields.
    let refused = client.create_alert_rule(&AlertRuleIn { name: Some("x".into()), ..AlertRuleIn::default() }).await;
    let Err(Error::Api { status: 422, details, .. }) = refused else { panic!("{refused:?}") };
    assert!(details.iter().any(|d| d.field.as_deref() == Some("metric_name")), "{details:?}");

    // Nothing evaluates rules in this server: no alerts, no history.
    assert!(client.alerts(None).await.unwrap().is_empty());
    assert!(client.alerts(Some(microdash_client::alert::AlertState::Firing)).await.unwrap().is_empty());
    assert!(client.alert_history(&AlertHistoryQuery::default()).await.unwrap().is_empty());

    let queued = client.test_channel(channel.id).await.unwrap();
    let log = client.notifications(Some(channel.id), Some(10)).await.unwrap();
    assert_eq!(log.iter().map(|n| (n.id, n.kind)).collect::<Vec<_>>(), [(queued, NotificationKind::Test)]);
    assert_eq!(client.notifications(None, None).await.unwrap().len(), 1);

    // An admin does the same by naming the tenant.
    let admin = server.client(&server.admin_token().await).for_tenant("acme");
    assert_eq!(admin.alert_rules().await.unwrap().len(), 1);
    assert_eq!(admin.channels().await.unwrap().len(), 1);
    assert_eq!(admin.notifications(None, None).await.unwrap().len(), 1);

    client.delete_alert_rule(created.id).await.unwrap();
    assert_eq!(client.alert_rule(created.id).await.unwrap_err().status(), Some(404));
    client.delete_channel(channel.id).await.unwrap();
    assert!(client.channels().await.unwrap().is_empty());
    assert_eq!(client.delete_channel(channel.id).await.unwrap_err().status(), Some(404));
    server.stop().await;
}
