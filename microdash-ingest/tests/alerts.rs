//! Alerting end to end on the real pipeline: rules and channels over the API, points through
//! the queue and workers, the evaluator, and webhooks delivered to a real HTTP receiver of
//! the test's own.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::{App, Tenant};
use microdash_ingest::alerting::AlertingConfig;
use microdash_store::Backend;
use microdash_store::testing::TestDb;
use serde_json::{Value, json};

/// What a webhook receiver got: headers and JSON body of each request.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    url: String,
}

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    /// `500` to the first n requests, then `200`.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

impl Receiver {
    /// A receiver on a free port answering `200`.
    async fn start() -> Receiver {
        Self::behaving(Behaviour::Ok).await
    }

    async fn behaving(behaviour: Behaviour) -> Receiver {
        let got: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
        let sink = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let n = {
                        let mut got = sink.lock().unwrap();
                        got.push((headers, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                        got.len()
                    };
                    match behaviour {
                        Behaviour::Ok => StatusCode::OK,
                        Behaviour::FailFirst(failures) if n <= failures => StatusCode::INTERNAL_SERVER_ERROR,
                        Behaviour::FailFirst(_) => StatusCode::OK,
                        Behaviour::Hang => std::future::pending().await,
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { got, url }
    }

    fn bodies(&self) -> Vec<Value> {
        self.got.lock().unwrap().iter().map(|(_, body)| body.clone()).collect()
    }

    /// Wait until `n` requests arrived (failing after 5 s); returns the bodies.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let bodies = self.bodies();
            if bodies.len() >= n {
                return bodies;
            }
            assert!(Instant::now() < deadline, "expected {n} webhooks, got {bodies:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn push(app: &App, t: &Tenant, agent: &str, value: f64) {
    let body = json!({"metric_name": "cpu.usage_percent", "value": value, "agent_id": agent}).to_string();
    let reply = app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&body)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
}

/// A webhook channel and the rule "cpu above 90, warn at 80" on it; returns the rule id.
async fn cpu_rule(app: &App, t: &Tenant, receiver: &Receiver) -> i64 {
    let channel = json!({"name": "ops hook", "kind": "webhook", "url": receiver.url, "secret": "s3cret"});
    let reply = app.call("POST", "/api/v1/channels", Some(&t.token), Some(&channel.to_string())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert!(reply.json.get("secret").is_none(), "answers never carry the secret: {}", reply.text);
    let channel_id = reply.json["id"].as_i64().unwrap();
    let rule = json!({
        "name": "cpu high", "metric_name": "cpu.usage_percent", "operator": ">", "critical": 90,
        "warning": 80, "channels": [channel_id], "summary": "{{agent_id}} cpu {{value}} %"
    });
    let reply = app.call("POST", "/api/v1/alert-rules", Some(&t.token), Some(&rule.to_string())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["aggregate"], "last");
    assert_eq!(reply.json["enabled"], true);
    reply.json["id"].as_i64().unwrap()
}

/// Poll the current alerts until one is in `state` (failing after 5 s).
async fn wait_for_state(app: &App, t: &Tenant, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = app.call("GET", "/api/v1/alerts", Some(&t.token), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        if let Some(alert) = reply.json.as_array().unwrap().iter().find(|a| a["state"] == state) {
            return alert.clone();
        }
        assert!(Instant::now() < deadline, "no alert {state}: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_breach_fires_once_and_resolves_once_on_sqlite() {
    fires_once_and_resolves_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_breach_fires_once_and_resolves_once_on_mariadb() {
    fires_once_and_resolves_once(Backend::Mysql).await;
}

async fn fires_once_and_resolves_once(backend: Backend) {
    let app = App::start_with_alerting_on(backend).await;
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let receiver = Receiver::start().await;
    let rule_id = cpu_rule(&app, &t, &receiver).await;
    // The evaluator picks the new rule up on its next tick.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, stream) = app.open_stream("/api/v1/stream/acme", Some(&t.token), None).await;
    assert_eq!(status, StatusCode::OK);
    let mut stream = stream.unwrap();

    push(&app, &t, "web-1", 95.0).await;
    // The tenant's live stream announces the transition too.
    let alert = loop {
        let event = stream.next_event(Duration::from_secs(5)).await;
        if event.event.as_deref() == Some("alert") {
            assert!(event.id.is_none(), "alert events leave the stream's position alone");
            break event.json();
        }
    };
    assert_eq!((alert["state"].as_str(), alert["from"].as_str()), (Some("firing"), Some("ok")));
    assert_eq!((alert["rule_id"].as_i64(), alert["agent_id"].as_str()), (Some(rule_id), Some("web-1")));
    let bodies = receiver.wait_for(1).await;
    let firing = &bodies[0];
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["tenant"], "acme");
    assert_eq!(firing["rule_id"], rule_id);
    assert_eq!(firing["rule_name"], "cpu high");
    assert_eq!(firing["agent_id"], "web-1");
    assert_eq!(firing["severity"], "critical");
    assert_eq!(firing["value"], 95.0);
    assert_eq!(firing["threshold"], 90.0);
    assert_eq!(firing["summary"], "web-1 cpu 95 %");
    assert_eq!(firing["ended_at"], Value::Null);
    let signature = receiver.got.lock().unwrap()[0].0["x-microdash-signature"].to_str().unwrap().to_owned();
    assert!(signature.starts_with("sha256="), "{signature}");
    let alert = wait_for_state(&app, &t, "firing").await;
    assert_eq!((alert["rule_id"].as_i64(), alert["agent_id"].as_str()), (Some(rule_id), Some("web-1")));
    assert_eq!(alert["severity"], "critical");
    let firing_now = app.call("GET", "/api/v1/alerts?state=firing", Some(&t.token), None).await;
    assert_eq!(firing_now.json.as_array().unwrap().len(), 1);

    // Still above: no repeat (repeat_interval_s is 0).
    push(&app, &t, "web-1", 97.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.bodies().len(), 1, "a second firing notification: {:?}", receiver.bodies());

    push(&app, &t, "web-1", 50.0).await;
    let bodies = receiver.wait_for(2).await;
    assert_eq!(bodies[1]["status"], "resolved");
    assert!(bodies[1]["ended_at"].is_string());
    wait_for_state(&app, &t, "ok").await;

    let history = app.call("GET", &format!("/api/v1/alerts/history?rule_id={rule_id}"), Some(&t.token), None).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    let moves: Vec<(String, String)> = history
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].as_str().unwrap().to_owned(), e["to"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(moves, [("firing".into(), "ok".into()), ("ok".into(), "firing".into())], "newest first");
    // The receiver has the body before the sender recorded the attempt: wait for the log.
    let log = log_until(&app, &t, "/api/v1/notifications", |log| {
        log.as_array().unwrap().iter().filter(|n| n["status"] == "sent").count() == 2
    })
    .await;
    assert_eq!(log.as_array().unwrap().len(), 2, "{log}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.bodies().len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_firing_before_a_restart_is_still_firing_after_it_without_a_second_notification() {
    let app = App::start_with_alerting().await;
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let receiver = Receiver::start().await;
    cpu_rule(&app, &t, &receiver).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    push(&app, &t, "web-1", 95.0).await;
    receiver.wait_for(1).await;

    let app = app.restart().await;
    push(&app, &t, "web-1", 96.0).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.bodies().len(), 1, "notified again after the restart: {:?}", receiver.bodies());
    assert_eq!(wait_for_state(&app, &t, "firing").await["severity"], "critical");
    push(&app, &t, "web-1", 10.0).await;
    let bodies = receiver.wait_for(2).await;
    assert_eq!(bodies[1]["status"], "resolved");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_are_validated_scoped_and_private_to_their_tenant() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read,alerts").await;
    let other = app.tenant("other", "ingest,read,alerts").await;
    let reader = app.tenant("readers", "read").await;

    let bad = json!({"name": "", "metric_name": "cpu", "operator": "~", "threshhold": 1});
    let reply = app.call("POST", "/api/v1/alert-rules", Some(&acme.token), Some(&bad.to_string())).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    let fields: Vec<&str> =
        reply.json["details"].as_array().unwrap().iter().filter_map(|d| d["field"].as_str()).collect();
    assert!(fields.contains(&"operator") && fields.contains(&"threshhold"), "{fields:?}");

    let missing = json!({"name": "r", "metric_name": "cpu", "operator": ">", "critical": 1, "channels": [999]});
    let reply = app.call("POST", "/api/v1/alert-rules", Some(&acme.token), Some(&missing.to_string())).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json["details"][0]["field"], "channels");

    let rule = json!({"name": "r", "metric_name": "cpu", "operator": ">", "critical": 1});
    let denied = app.call("POST", "/api/v1/alert-rules", Some(&reader.token), Some(&rule.to_string())).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let created = app.call("POST", "/api/v1/alert-rules", Some(&acme.token), Some(&rule.to_string())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["id"].as_i64().unwrap();

    let path = format!("/api/v1/alert-rules/{id}");
    assert_eq!(app.call("GET", &path, Some(&acme.token), None).await.json["name"], "r");
    assert_eq!(app.call("GET", &path, Some(&other.token), None).await.status, StatusCode::NOT_FOUND);
    let changed = json!({"name": "r2", "metric_name": "cpu", "operator": "<", "critical": 1});
    let put = app.call("PUT", &path, Some(&other.token), Some(&changed.to_string())).await;
    assert_eq!(put.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call("DELETE", &path, Some(&other.token), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call("GET", "/api/v1/alert-rules", Some(&other.token), None).await.json, json!([]));
    let put = app.call("PUT", &path, Some(&acme.token), Some(&changed.to_string())).await;
    assert_eq!((put.status, put.json["name"].as_str()), (StatusCode::OK, Some("r2")));
    assert_eq!(app.call("DELETE", &path, Some(&acme.token), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.call("GET", &path, Some(&acme.token), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call("GET", "/api/v1/alerts", None, None).await.status, StatusCode::UNAUTHORIZED);
    let not_an_id = app.call("GET", "/api/v1/alert-rules/abc", Some(&acme.token), None).await;
    assert_eq!((not_an_id.status, not_an_id.json["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_notification_reaches_the_channel_and_the_delivery_log() {
    let app = App::start_with_alerting().await;
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let receiver = Receiver::start().await;
    let channel = json!({"name": "hook", "kind": "webhook", "url": receiver.url, "format": "alertmanager"});
    let created = app.call("POST", "/api/v1/channels", Some(&t.token), Some(&channel.to_string())).await;
    let id = created.json["id"].as_i64().unwrap();
    let queued = app.call("POST", &format!("/api/v1/channels/{id}/test"), Some(&t.token), None).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text);
    let bodies = receiver.wait_for(1).await;
    assert_eq!(bodies[0]["version"], "4", "an Alertmanager body: {}", bodies[0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = app.call("GET", &format!("/api/v1/notifications?channel_id={id}"), Some(&t.token), None).await;
        if log.json[0]["status"] == "sent" {
            assert_eq!(log.json[0]["kind"], "test");
            assert_eq!(log.json[0]["attempts"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "{}", log.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_receivers_are_retried_and_a_hanging_one_delays_no_other() {
    let app = App::start_with_alerting().await;
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let flaky = Receiver::behaving(Behaviour::FailFirst(2)).await;
    let hanging = Receiver::behaving(Behaviour::Hang).await;
    let healthy = Receiver::start().await;
    let mut ids = Vec::new();
    for (name, receiver) in [("flaky", &flaky), ("hanging", &hanging), ("healthy", &healthy)] {
        let channel = json!({"name": name, "kind": "webhook", "url": receiver.url});
        let reply = app.call("POST", "/api/v1/channels", Some(&t.token), Some(&channel.to_string())).await;
        ids.push(reply.json["id"].as_i64().unwrap());
    }
    let rule = json!({"name": "cpu high", "metric_name": "cpu.usage_percent", "operator": ">", "critical": 90, "channels": ids});
    let reply = app.call("POST", "/api/v1/alert-rules", Some(&t.token), Some(&rule.to_string())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let breached = Instant::now();
    push(&app, &t, "web-1", 95.0).await;

    // The healthy receiver does not wait for the one that hangs (whose timeout is 2 s).
    healthy.wait_for(1).await;
    assert!(breached.elapsed() < Duration::from_millis(1_500), "waited {:?}", breached.elapsed());
    // The flaky one fails twice and gets it on the third attempt, 1 s and 2 s later.
    let deadline = Instant::now() + Duration::from_secs(10);
    let flaky_log = loop {
        let log = app.call("GET", &format!("/api/v1/notifications?channel_id={}", ids[0]), Some(&t.token), None).await;
        if log.json[0]["status"] == "sent" {
            break log.json[0].clone();
        }
        assert!(Instant::now() < deadline, "{}", log.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(flaky_log["attempts"], 3, "{flaky_log}");
    assert_eq!(flaky.bodies().len(), 3);
    assert!(flaky.bodies().iter().all(|b| b == &flaky.bodies()[0]), "every retry sends the same body");
    let path = format!("/api/v1/notifications?channel_id={}", ids[1]);
    let hung = log_until(&app, &t, &path, |log| log[0]["attempts"].as_u64().is_some_and(|n| n >= 1)).await;
    assert_eq!(hung[0]["status"], "pending", "{hung}");
    assert!(hung[0]["last_error"].as_str().unwrap().contains("time"), "{hung}");
    let metrics = app.call("GET", "/metrics", None, None).await.text;
    assert!(
        metrics.contains(r#"microdash_notification_attempts_total{channel="webhook",outcome="retry"}"#),
        "{metrics}"
    );
    assert_eq!(healthy.bodies().len(), 1);
    app.stop().await;
}

/// Poll a delivery log until `done` holds (failing after 10 s); returns it.
async fn log_until(app: &App, t: &Tenant, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = app.call("GET", path, Some(&t.token), None).await;
        if done(&log.json) {
            return log.json;
        }
        assert!(Instant::now() < deadline, "{path}: {}", log.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_point_delivered_twice_counts_once() {
    let app = App::start_with_alerting().await;
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let receiver = Receiver::start().await;
    let channel = json!({"name": "hook", "kind": "webhook", "url": receiver.url});
    let channel = app.call("POST", "/api/v1/channels", Some(&t.token), Some(&channel.to_string())).await;
    let rule = json!({"name": "two logins", "metric_name": "login", "aggregate": "count", "window_s": 600,
        "operator": ">=", "critical": 2, "channels": [channel.json["id"]]});
    assert_eq!(
        app.call("POST", "/api/v1/alert-rules", Some(&t.token), Some(&rule.to_string())).await.status,
        StatusCode::CREATED
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let login = |value: f64, id: &str| {
        json!({"metric_name": "login", "value": value, "agent_id": "web-1", "timestamp": now_s, "dedupe_id": id})
            .to_string()
    };
    // A retried push: stored once, so counted once.
    for _ in 0..2 {
        let reply = app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&login(1.0, "a"))).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(receiver.bodies().is_empty(), "a duplicate was counted: {:?}", receiver.bodies());
    app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&login(2.0, "b"))).await;
    assert_eq!(receiver.wait_for(1).await[0]["value"], 2.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_changed_to_watch_another_metric_resolves_what_it_reported() {
    let app = App::start_with_alerting().await;
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let receiver = Receiver::start().await;
    let rule_id = cpu_rule(&app, &t, &receiver).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    push(&app, &t, "web-1", 95.0).await;
    assert_eq!(receiver.wait_for(1).await[0]["status"], "firing");

    let channels = app.call("GET", "/api/v1/channels", Some(&t.token), None).await.json;
    let changed = json!({"name": "mem high", "metric_name": "mem.used_percent", "operator": ">", "critical": 90,
        "channels": [channels[0]["id"]]});
    let reply =
        app.call("PUT", &format!("/api/v1/alert-rules/{rule_id}"), Some(&t.token), Some(&changed.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let bodies = receiver.wait_for(2).await;
    assert_eq!(bodies[1]["status"], "resolved", "{bodies:?}");
    // Resolved as what it reported: the cpu rule, not the memory one it became.
    assert_eq!(bodies[1]["rule_name"], "cpu high", "{bodies:?}");
    assert_eq!(bodies[1]["summary"], bodies[0]["summary"], "{bodies:?}");
    let history = app.call("GET", "/api/v1/alerts/history", Some(&t.token), None).await;
    assert_eq!(history.json[0]["rule_name"], "cpu high", "{}", history.text);
    // The cpu series no longer belongs to the rule: more cpu breaches notify nothing.
    push(&app, &t, "web-1", 99.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.bodies().len(), 2, "{:?}", receiver.bodies());
    let firing = app.call("GET", "/api/v1/alerts?state=firing", Some(&t.token), None).await;
    assert_eq!(firing.json, json!([]), "{}", firing.text);
    // Nor does its resolved instance linger under the rule that no longer watches it.
    let listed = app.call("GET", "/api/v1/alerts", Some(&t.token), None).await;
    assert_eq!(listed.json, json!([]), "{}", listed.text);
    app.stop().await;
}

/// A point stamped far ahead of the server's clock is not evaluated, so it cannot hide the
/// real ones behind it; one a little ahead (an agent's clock running fast) is evaluated as of
/// now, at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_point_from_the_future_is_not_evaluated() {
    let app = App::start_with_alerting().await;
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let receiver = Receiver::start().await;
    cpu_rule(&app, &t, &receiver).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() + 600.0;
    let body = json!({"metric_name": "cpu.usage_percent", "value": 99.0, "agent_id": "web-1", "timestamp": later_s});
    let reply = app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&body.to_string())).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(receiver.bodies().is_empty(), "a point 10 minutes ahead fired: {:?}", receiver.bodies());
    // A real breach now still fires: the future point is not the window's "last".
    push(&app, &t, "web-1", 95.0).await;
    assert_eq!(receiver.wait_for(1).await[0]["value"], 95.0);
    // An agent 15 s ahead breaching: fires now, not once the server's clock catches up.
    let ahead_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() + 15.0;
    let body = json!({"metric_name": "cpu.usage_percent", "value": 97.0, "agent_id": "fast", "timestamp": ahead_s});
    app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&body.to_string())).await;
    let bodies = receiver.wait_for(2).await;
    assert_eq!((&bodies[1]["agent_id"], &bodies[1]["value"]), (&json!("fast"), &json!(97.0)), "{bodies:?}");
    app.stop().await;
}

/// An instance that is ok and whose series went silent is forgotten (in memory and in the
/// store) once its rule's lookback and the grace time passed; a firing one stays; the series'
/// next point brings its instance back.
#[tokio::test(flavor = "multi_thread")]
async fn silent_ok_instances_are_forgotten_and_firing_ones_kept() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let alerting = AlertingConfig { forget_idle_after: Duration::from_millis(400), ..common::test_alerting() };
    let app = App::with_alerting_config(db, store, alerting);
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let receiver = Receiver::start().await;
    cpu_rule(&app, &t, &receiver).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    push(&app, &t, "quiet", 10.0).await;
    push(&app, &t, "hot", 95.0).await;
    receiver.wait_for(1).await;
    let agents = async || {
        let reply = app.call("GET", "/api/v1/alerts", Some(&t.token), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let mut agents: Vec<(String, String)> = reply
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["agent_id"].as_str().unwrap().to_owned(), a["state"].as_str().unwrap().to_owned()))
            .collect();
        agents.sort();
        agents
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while agents().await.len() > 1 {
        assert!(Instant::now() < deadline, "the quiet instance was kept: {:?}", agents().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(agents().await, [("hot".to_owned(), "firing".to_owned())]);
    assert!(app.store.all_alert_instances().await.unwrap().iter().all(|i| i.agent_id.as_deref() == Some("hot")));
    push(&app, &t, "quiet", 20.0).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while agents().await.len() < 2 {
        assert!(Instant::now() < deadline, "the quiet instance did not come back: {:?}", agents().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.bodies().len(), 1, "forgetting notifies nobody");
    app.stop().await;
}

/// A `PUT` without `secret` keeps a channel's secret; `"secret": null` clears it, and the
/// deliveries after it are no longer signed.
#[tokio::test(flavor = "multi_thread")]
async fn a_channel_secret_is_kept_unless_cleared() {
    let app = App::start_with_alerting().await;
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let receiver = Receiver::start().await;
    let channel = json!({"name": "hook", "kind": "webhook", "url": receiver.url, "secret": "s3cret"});
    let created = app.call("POST", "/api/v1/channels", Some(&t.token), Some(&channel.to_string())).await;
    let path = format!("/api/v1/channels/{}", created.json["id"]);
    let signed = async |expected: usize| {
        let queued = app.call("POST", &format!("{path}/test"), Some(&t.token), None).await;
        assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text);
        let got = receiver.wait_for(expected).await;
        assert_eq!(got.len(), expected);
        receiver.got.lock().unwrap()[expected - 1].0.contains_key("x-microdash-signature")
    };

    let renamed = json!({"name": "renamed", "kind": "webhook", "url": receiver.url});
    let put = app.call("PUT", &path, Some(&t.token), Some(&renamed.to_string())).await;
    assert_eq!((put.status, &put.json["has_secret"]), (StatusCode::OK, &json!(true)), "{}", put.text);
    assert!(signed(1).await, "the kept secret still signs");

    let cleared = json!({"name": "renamed", "kind": "webhook", "url": receiver.url, "secret": null});
    let put = app.call("PUT", &path, Some(&t.token), Some(&cleared.to_string())).await;
    assert_eq!((put.status, &put.json["has_secret"]), (StatusCode::OK, &json!(false)), "{}", put.text);
    assert!(!signed(2).await, "no secret, no signature");

    // A secret set again is not carried to another host by a PUT that leaves it out.
    let resigned = json!({"name": "renamed", "kind": "webhook", "url": receiver.url, "secret": "again"});
    let put = app.call("PUT", &path, Some(&t.token), Some(&resigned.to_string())).await;
    assert_eq!(put.json["has_secret"], true, "{}", put.text);
    let moved = json!({"name": "renamed", "kind": "webhook", "url": receiver.url.replace("127.0.0.1", "localhost")});
    let put = app.call("PUT", &path, Some(&t.token), Some(&moved.to_string())).await;
    assert_eq!((put.status, &put.json["has_secret"]), (StatusCode::OK, &json!(false)), "{}", put.text);
    // An answer sent back as it was read is taken (its id, has_secret, created_at ignored).
    let answer = put.json.clone();
    let put = app.call("PUT", &path, Some(&t.token), Some(&answer.to_string())).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    app.stop().await;
}

/// While a channel's test notification is still being delivered, another is refused (`429`):
/// tests cannot pile up in the queue every tenant's notifications share.
#[tokio::test(flavor = "multi_thread")]
async fn one_test_notification_at_a_time_per_channel() {
    let app = App::start_with_alerting().await;
    let t = app.tenant("acme", "ingest,read,alerts").await;
    let hanging = Receiver::behaving(Behaviour::Hang).await;
    let channel = json!({"name": "slow", "kind": "webhook", "url": hanging.url});
    let created = app.call("POST", "/api/v1/channels", Some(&t.token), Some(&channel.to_string())).await;
    let test = format!("/api/v1/channels/{}/test", created.json["id"]);
    assert_eq!(app.call("POST", &test, Some(&t.token), None).await.status, StatusCode::ACCEPTED);
    let again = app.call("POST", &test, Some(&t.token), None).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS, "{}", again.text);
    assert_eq!(again.json["error"], "test_pending", "{}", again.text);
    app.stop().await;
}
