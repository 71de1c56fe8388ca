//! Per-tenant quotas end to end: the admin API sets them, HTTP and the embedded MQTT endpoint
//! are held to them, `/metrics` counts refusals per tenant, and processes that share a
//! database agree on the series limit within a refresh.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{App, Tenant};
use microdash_core::Limits;
use microdash_core::quota::Quota;
use microdash_ingest::mqtt::broker::{Broker, BrokerConfig};
use microdash_ingest::quota::QuotaConfig;
use microdash_store::Backend;
use microdash_store::testing::TestDb;

/// A JSON array of one point per `(metric, value)`, agent `h`.
fn body(points: &[(&str, f64)]) -> String {
    let metrics: Vec<String> =
        points.iter().map(|(m, v)| format!(r#"{{"metric_name":"{m}","value":{v},"agent_id":"h"}}"#)).collect();
    format!("[{}]", metrics.join(","))
}

async fn push(app: &App, tenant: &Tenant, points: &[(&str, f64)]) -> common::Reply {
    app.call("POST", "/api/v1/metrics", Some(&tenant.token), Some(&body(points))).await
}

async fn set_quota(app: &App, admin: &str, slug: &str, patch: &str) -> common::Reply {
    app.call("PATCH", &format!("/api/v1/tenants/{slug}"), Some(admin), Some(patch)).await
}

/// Stored values of `metric`, sorted.
async fn values(app: &App, tenant: &Tenant, metric: &str) -> Vec<f64> {
    let reply = app.call("GET", &format!("/api/v1/metrics?metric_name={metric}"), Some(&tenant.token), None).await;
    let mut values: Vec<f64> =
        reply.json["data"].as_array().unwrap().iter().map(|p| p["value"].as_f64().unwrap()).collect();
    values.sort_by(f64::total_cmp);
    values
}

/// Metrics of tenant `tenant_id` refused for its `limit`, as `/metrics` counts them.
async fn quota_rejected(app: &App, tenant_id: i64, limit: &str) -> f64 {
    app.counter(&format!(r#"microdash_quota_rejected_metrics_total{{tenant_id="{tenant_id}",limit="{limit}"}}"#)).await
}

/// Everything queued so far is stored (the in-process queue is empty and the persisted
/// counter has caught up), so what a query does not show was never accepted.
async fn drained(app: &App, accepted: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.counter("microdash_metrics_persisted_total").await < accepted {
        assert!(Instant::now() < deadline, "the workers did not store {accepted} metrics");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn small_requests() -> Limits {
    Limits { max_metrics_per_request: 100, ..Limits::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_over_its_rate_is_refused_whole_with_retry_after_and_others_are_not() {
    let app = App::start_with_quotas(small_requests(), QuotaConfig::default()).await;
    let admin = app.admin_token().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let beta = app.tenant("beta", "ingest,read").await;
    let reply = set_quota(&app, &admin, "acme", r#"{"max_ingest_metrics_per_s": 50}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["max_ingest_metrics_per_s"], 50);

    // The bucket holds a request's worth (100) and refills at 50 a second.
    let full: Vec<(&str, f64)> = (0..100).map(|i| ("cpu", f64::from(i))).collect();
    assert_eq!(push(&app, &acme, &full).await.status, StatusCode::ACCEPTED);
    let over: Vec<(&str, f64)> = (0..40).map(|i| ("cpu", 1000.0 + f64::from(i))).collect();
    let refused = push(&app, &acme, &over).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_eq!(refused.json["error"], "quota_exceeded");
    assert_eq!(refused.json["limit"], "max_ingest_metrics_per_s");
    assert!(refused.json["message"].as_str().unwrap().contains("acme"), "{}", refused.text);
    assert_eq!(refused.headers["retry-after"], "1", "40 metrics at 50/s: 0.8 s, rounded up");
    // Another tenant is not held to acme's rate.
    let beta_points: Vec<(&str, f64)> = (0..100).map(|i| ("cpu", f64::from(i))).collect();
    assert_eq!(push(&app, &beta, &beta_points).await.status, StatusCode::ACCEPTED);

    drained(&app, 200.0).await;
    assert_eq!(values(&app, &acme, "cpu").await.len(), 100, "nothing of the refused batch");
    assert_eq!(quota_rejected(&app, acme.id, "max_ingest_metrics_per_s").await, 40.0);
    assert_eq!(app.counter(r#"microdash_metrics_rejected_total{source="http",reason="over_quota"}"#).await, 40.0);
    let beta_label = format!(r#"microdash_quota_rejected_metrics_total{{tenant_id="{}","#, beta.id);
    assert!(!app.call("GET", "/metrics", None, None).await.text.contains(&beta_label), "beta was refused nothing");

    // Sent again once the bucket refilled, it is taken.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = push(&app, &acme, &over).await;
        if reply.status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(Instant::now() < deadline, "the bucket never refilled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drained(&app, 240.0).await;
    assert_eq!(values(&app, &acme, "cpu").await.len(), 140);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn new_series_beyond_the_limit_are_refused_while_existing_ones_flow() {
    let app = App::start().await;
    let admin = app.admin_token().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let reply = set_quota(&app, &admin, "acme", r#"{"max_series": 3}"#).await;
    assert_eq!((reply.status, reply.json["max_series"].as_u64()), (StatusCode::OK, Some(3)), "{}", reply.text);

    assert_eq!(push(&app, &acme, &[("a", 1.0), ("b", 1.0), ("a", 2.0)]).await.status, StatusCode::ACCEPTED);
    // c fits, d does not: the whole batch is refused, a's point with it.
    let refused = push(&app, &acme, &[("a", 3.0), ("c", 1.0), ("d", 1.0)]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_eq!(refused.json["limit"], "max_series");
    assert_eq!(refused.headers["retry-after"], "10", "the refresh interval");
    assert!(refused.json["message"].as_str().unwrap().contains("2 new series"), "{}", refused.text);
    assert_eq!(push(&app, &acme, &[("a", 4.0), ("c", 1.0)]).await.status, StatusCode::ACCEPTED);
    assert_eq!(push(&app, &acme, &[("d", 1.0)]).await.status, StatusCode::TOO_MANY_REQUESTS);
    // At the limit, points of the three series keep coming in.
    assert_eq!(push(&app, &acme, &[("a", 5.0), ("b", 2.0), ("c", 2.0)]).await.status, StatusCode::ACCEPTED);

    drained(&app, 8.0).await;
    assert_eq!(values(&app, &acme, "a").await, [1.0, 2.0, 4.0, 5.0]);
    assert!(values(&app, &acme, "d").await.is_empty());
    assert_eq!(quota_rejected(&app, acme.id, "max_series").await, 4.0);

    // Back to the server's default (100,000): d is welcome.
    let reply = set_quota(&app, &admin, "acme", r#"{"max_series": null}"#).await;
    assert_eq!(reply.json["max_series"], 100_000);
    assert_eq!(push(&app, &acme, &[("d", 1.0)]).await.status, StatusCode::ACCEPTED);
    app.wait_for_points(&acme.token, "metric_name=d", 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_are_set_listed_and_checked_by_name() {
    let quotas =
        QuotaConfig { defaults: Quota { max_ingest_metrics_per_s: 10_000, max_series: 500 }, ..QuotaConfig::default() };
    let app = App::start_with_quotas(Limits::default(), quotas).await;
    let admin = app.admin_token().await;
    app.tenant("acme", "ingest").await;
    app.tenant("beta", "ingest").await;

    for (patch, field) in [
        (r#"{"max_series": -1}"#, "max_series"),
        (r#"{"max_ingest_metrics_per_s": 1000000001}"#, "max_ingest_metrics_per_s"),
    ] {
        let reply = set_quota(&app, &admin, "acme", patch).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{patch}: {}", reply.text);
        assert_eq!(reply.json["details"][0]["field"], field, "{}", reply.text);
        let message = reply.json["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("{field} must be")), "the field named once: {message}");
    }
    let reply = set_quota(&app, &admin, "acme", r#"{"max_series": "many"}"#).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    assert!(reply.text.contains("max_series"), "{}", reply.text);
    let reply = set_quota(&app, &admin, "acme", r#"{"max_serie": 5}"#).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "a misspelt setting is refused: {}", reply.text);

    // 0 is the tenant's own "unlimited", not the default.
    let reply = set_quota(&app, &admin, "acme", r#"{"max_ingest_metrics_per_s": 0, "retention_raw_hours": 48}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let listed = app.call("GET", "/api/v1/tenants", Some(&admin), None).await.json;
    let by_slug = |slug: &str| listed.as_array().unwrap().iter().find(|t| t["slug"] == slug).unwrap().clone();
    let acme = by_slug("acme");
    assert_eq!((acme["max_ingest_metrics_per_s"].as_u64(), acme["max_series"].as_u64()), (Some(0), Some(500)));
    assert_eq!(acme["retention_raw_hours"], 48);
    let beta = by_slug("beta");
    assert_eq!((beta["max_ingest_metrics_per_s"].as_u64(), beta["max_series"].as_u64()), (Some(10_000), Some(500)));
    app.stop().await;
}

/// Two processes taking metrics for one tenant (each with its own queue and workers) on one
/// MariaDB database: each sees the series the other created once it reads the store, so the
/// limit holds across them up to what the other accepted within one refresh.
#[tokio::test(flavor = "multi_thread")]
async fn processes_sharing_a_database_count_each_others_series_after_a_refresh() {
    let db = TestDb::new(Backend::Mysql).await;
    let refresh = Duration::from_millis(300);
    let quotas = QuotaConfig { refresh, ..QuotaConfig::default() };
    let store_a = db.store().await;
    let store_b = microdash_store::Store::connect(&db.url, &Default::default()).await.unwrap();
    let a = App::with_quotas(db, store_a, Limits::default(), quotas.clone());
    // `App` owns a database it drops at the end; b's is an unused one, a owns the shared one.
    let b = App::with_quotas(TestDb::new(Backend::Sqlite).await, store_b, Limits::default(), quotas);
    let admin = a.admin_token().await;
    let acme = a.tenant("acme", "ingest,read").await;
    assert_eq!(set_quota(&a, &admin, "acme", r#"{"max_series": 4}"#).await.status, StatusCode::OK);

    // b has taken metrics for acme before a creates any series.
    assert_eq!(push(&b, &acme, &[("m0", 1.0)]).await.status, StatusCode::ACCEPTED);
    assert_eq!(push(&a, &acme, &[("m1", 1.0), ("m2", 1.0)]).await.status, StatusCode::ACCEPTED);
    a.wait_for_points(&acme.token, "metric_name=m2", 1).await;
    // Within b's refresh it may not know a's series yet (the documented bound); after it,
    // it does: m0, m1, m2 exist, so one more fits and a second does not.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let known = b.runtime.ingestor().series_counted(acme.id);
        if known == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "b never read a's series: {known:?}");
        // Each push makes b look at the tenant again once its refresh is due.
        assert_eq!(push(&b, &acme, &[("m0", 2.0)]).await.status, StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(push(&b, &acme, &[("m3", 1.0)]).await.status, StatusCode::ACCEPTED);
    let refused = push(&b, &acme, &[("m4", 1.0)]).await;
    assert_eq!((refused.status, refused.json["limit"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("max_series")));
    // a reads the series b created on its next refresh, and refuses m4 too.
    a.wait_for_points(&acme.token, "metric_name=m3", 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.runtime.ingestor().series_counted(acme.id) != Some(4) {
        assert!(Instant::now() < deadline, "a never read b's series");
        assert_eq!(push(&a, &acme, &[("m1", 2.0)]).await.status, StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(push(&a, &acme, &[("m4", 1.0)]).await.status, StatusCode::TOO_MANY_REQUESTS);
    b.stop().await;
    a.stop().await;
}

mod raw {
    //! Hand-driven MQTT clients, to see exactly which publishes are acknowledged.
    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4;
    use rumqttc::v5::mqttbytes::v5;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub struct Raw {
        stream: TcpStream,
        input: BytesMut,
        v5: bool,
    }

    /// A packet as the tests look at it.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Answer {
        ConnAck,
        /// Packet id and whether it was a success.
        PubAck(u16, bool),
        PubAckQuota(u16),
    }

    impl Raw {
        /// Connected and signed in with `token`.
        pub async fn signed_in(url: &str, token: &str, v5: bool) -> Raw {
            let stream = TcpStream::connect(url.trim_start_matches("tcp://")).await.unwrap();
            let mut raw = Raw { stream, input: BytesMut::new(), v5 };
            let user = microdash_core::mqtt::token_username(token);
            let mut out = BytesMut::new();
            if v5 {
                let connect =
                    v5::Connect { keep_alive: 60, client_id: "q".into(), clean_start: true, properties: None };
                v5::Packet::Connect(connect, None, Some(v5::Login::new(user, token))).write(&mut out, None).unwrap();
            } else {
                let mut connect = v4::Connect::new("q");
                connect.set_login(user, token);
                v4::Packet::Connect(connect).write(&mut out, usize::MAX).unwrap();
            }
            raw.stream.write_all(&out).await.unwrap();
            assert_eq!(raw.next().await, Some(Answer::ConnAck));
            raw
        }

        pub async fn publish(&mut self, topic: &str, payload: &str, pkid: u16) {
            let mut out = BytesMut::new();
            if self.v5 {
                let mut p = v5::Publish::new(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, payload.to_owned(), None);
                p.pkid = pkid;
                v5::Packet::Publish(p).write(&mut out, None).unwrap();
            } else {
                let mut p = v4::Publish::new(topic, rumqttc::mqttbytes::QoS::AtLeastOnce, payload.to_owned());
                p.pkid = pkid;
                v4::Packet::Publish(p).write(&mut out, usize::MAX).unwrap();
            }
            self.stream.write_all(&out).await.unwrap();
        }

        /// The next answer, or `None` once the endpoint closed the connection.
        pub async fn next(&mut self) -> Option<Answer> {
            loop {
                let parsed = if self.v5 {
                    match v5::Packet::read(&mut self.input, None) {
                        Ok(v5::Packet::ConnAck(_)) => Some(Answer::ConnAck),
                        Ok(v5::Packet::PubAck(a)) if a.reason == v5::PubAckReason::QuotaExceeded => {
                            Some(Answer::PubAckQuota(a.pkid))
                        }
                        Ok(v5::Packet::PubAck(a)) => {
                            Some(Answer::PubAck(a.pkid, a.reason == v5::PubAckReason::Success))
                        }
                        Ok(other) => panic!("unexpected {other:?}"),
                        Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => None,
                        Err(err) => panic!("{err}"),
                    }
                } else {
                    match v4::Packet::read(&mut self.input, usize::MAX) {
                        Ok(v4::Packet::ConnAck(_)) => Some(Answer::ConnAck),
                        Ok(v4::Packet::PubAck(a)) => Some(Answer::PubAck(a.pkid, true)),
                        Ok(other) => panic!("unexpected {other:?}"),
                        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => None,
                        Err(err) => panic!("{err}"),
                    }
                };
                if parsed.is_some() {
                    return parsed;
                }
                if self.stream.read_buf(&mut self.input).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        }
    }
}

async fn endpoint(app: &App) -> String {
    let broker = Broker::bind(BrokerConfig::new("127.0.0.1:0")).await.unwrap();
    let url = format!("tcp://{}", broker.local_addr().unwrap());
    let (runtime, shutdown) = (app.runtime.clone(), app.shutdown.clone());
    tokio::spawn(async move { runtime.run_endpoint(broker, shutdown).await });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_endpoint_refuses_publishes_of_new_series_beyond_the_limit_one_by_one() {
    use raw::Answer;
    let app = App::start().await;
    let admin = app.admin_token().await;
    let acme = app.tenant("acme", "ingest,read").await;
    assert_eq!(set_quota(&app, &admin, "acme", r#"{"max_series": 1}"#).await.status, StatusCode::OK);
    let url = endpoint(&app).await;

    // MQTT 5: a negative PUBACK for the publish over the limit, the others stored.
    let mut v5 = raw::Raw::signed_in(&url, &acme.token, true).await;
    v5.publish("metrics/acme/h/a", "1", 1).await;
    assert_eq!(v5.next().await, Some(Answer::PubAck(1, true)));
    v5.publish("metrics/acme/h/b", "1", 2).await;
    assert_eq!(v5.next().await, Some(Answer::PubAckQuota(2)));
    v5.publish("metrics/acme/h/a", "2", 3).await;
    assert_eq!(v5.next().await, Some(Answer::PubAck(3, true)));

    // MQTT 3.1.1 cannot refuse: what came before is acknowledged, the publish over the limit
    // is not, and the connection ends.
    let mut v4 = raw::Raw::signed_in(&url, &acme.token, false).await;
    v4.publish("metrics/acme/h/a", "3", 1).await;
    assert_eq!(v4.next().await, Some(Answer::PubAck(1, true)));
    v4.publish("metrics/acme/h/c", "1", 2).await;
    assert_eq!(v4.next().await, None, "no PUBACK, and closed");

    app.wait_for_points(&acme.token, "metric_name=a", 3).await;
    assert_eq!(quota_rejected(&app, acme.id, "max_series").await, 2.0);
    assert_eq!(app.counter(r#"microdash_metrics_rejected_total{source="mqtt",reason="over_quota"}"#).await, 2.0);
    drained(&app, 3.0).await;
    assert!(values(&app, &acme, "b").await.is_empty() && values(&app, &acme, "c").await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_endpoint_holds_a_tenant_to_its_rate_without_losing_a_publish() {
    use raw::Answer;
    let limits = Limits { max_metrics_per_request: 10, ..Limits::default() };
    let app = App::start_with_quotas(limits, QuotaConfig::default()).await;
    let admin = app.admin_token().await;
    let acme = app.tenant("acme", "ingest,read").await;
    assert_eq!(set_quota(&app, &admin, "acme", r#"{"max_ingest_metrics_per_s": 20}"#).await.status, StatusCode::OK);
    let url = endpoint(&app).await;

    // 60 publishes at once: the bucket holds 20, then refills at 20 a second. Every one is
    // acknowledged in the end, and none before it was queued.
    let mut client = raw::Raw::signed_in(&url, &acme.token, true).await;
    for i in 1..=60u16 {
        client.publish("metrics/acme/h/n", &format!(r#"{{"value":{i},"dedupe_id":"{i}"}}"#), i).await;
    }
    let mut acked = Vec::new();
    while acked.len() < 60 {
        match tokio::time::timeout(Duration::from_secs(10), client.next()).await.unwrap() {
            Some(Answer::PubAck(pkid, true)) => acked.push(pkid),
            other => panic!("{other:?} after {} acknowledgements", acked.len()),
        }
    }
    acked.sort_unstable();
    assert_eq!(acked, (1..=60).collect::<Vec<_>>());
    app.wait_for_points(&acme.token, "metric_name=n", 60).await;
    assert!(
        quota_rejected(&app, acme.id, "max_ingest_metrics_per_s").await > 0.0,
        "the connection was held at least once"
    );
    app.stop().await;
}
