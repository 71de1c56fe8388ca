//! What the dashboard needs beyond charts: the fleet overview, the saved layout, onboarding in
//! the browser (admins creating tenants and users) and where programs send metrics.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{App, Reply, session_cookie, sign_in, with_cookie};
use microdash_core::Limits;
use microdash_core::api::{ConnectInfo, MqttConnect};
use microdash_core::metric::parse_metrics;
use microdash_ingest::http::HttpConfig;
use serde_json::{Value, json};

/// Call `uri` until `done` accepts the answer, or fail after ten seconds.
async fn wait_until(app: &App, uri: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = app.call("GET", uri, Some(token), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        if done(&reply.json) {
            return reply.json;
        }
        assert!(Instant::now() < deadline, "{uri} never got there: {}", reply.json);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The field names of a `422`'s details.
fn fields(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    reply.json["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fleet_shows_each_host_with_its_latest_values_status_and_firing_alerts() {
    let app = App::start_with_alerting().await;
    let acme = app.tenant("acme", "ingest,read,alerts").await;
    let other = app.tenant("other", "ingest,read").await;
    let body = json!([
        {"metric_name": "cpu.usage_percent", "value": 20, "agent_id": "web-1", "timestamp": 1_000},
        {"metric_name": "cpu.usage_percent", "value": 42.5, "agent_id": "web-1"},
        {"metric_name": "mem.used_percent", "value": 61, "agent_id": "web-1"},
        {"metric_name": "disk.used_percent", "value": 40, "agent_id": "web-1", "tags": {"mount": "/"}},
        {"metric_name": "disk.used_percent", "value": 91, "agent_id": "web-1", "tags": {"mount": "/data"}},
        {"metric_name": "net.rx_bytes_per_s", "value": 1024, "agent_id": "web-1"},
        {"metric_name": "agent.interval_s", "value": 10, "agent_id": "web-1"},
        {"metric_name": "app.requests", "value": 7, "agent_id": "web-1"},
        {"metric_name": "cpu.usage_percent", "value": 95, "agent_id": "db-1"},
    ]);
    let rule = json!({"name": "cpu high", "metric_name": "cpu.usage_percent", "agent_id": "db-1", "operator": ">", "critical": 90});
    let created = app.call("POST", "/api/v1/alert-rules", Some(&acme.token), Some(&rule.to_string())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(app.call("POST", "/api/v1/metrics", Some(&acme.token), Some(&body.to_string())).await.status, 202);
    // A host whose last report was stored long ago.
    let old = parse_metrics(
        br#"{"metric_name":"cpu.usage_percent","value":3,"agent_id":"gone-1","timestamp":1000}"#,
        &Limits::default(),
        0,
    )
    .unwrap();
    app.store
        .insert_batches(
            &[microdash_core::Batch { tenant_id: acme.id, received_at_ms: 1_000_000, metrics: old }],
            1_000_000,
        )
        .await
        .unwrap();

    let fleet = wait_until(&app, "/api/v1/fleet", &acme.token, |f| {
        let hosts = f["hosts"].as_array().unwrap();
        hosts.len() == 3
            && hosts.iter().any(|h| h["agent_id"] == "db-1" && h["firing_alerts"] == 1)
            && hosts.iter().any(|h| h["agent_id"] == "web-1" && h["latest"].as_array().unwrap().len() == 6)
    })
    .await;
    assert_eq!(fleet["tenant"], "acme");
    assert!(fleet["server_time"].as_str().unwrap().ends_with('Z'));
    let hosts = fleet["hosts"].as_array().unwrap();
    let host = |id: &str| hosts.iter().find(|h| h["agent_id"] == id).unwrap().clone();
    let web = host("web-1");
    assert_eq!(
        (web["status"].clone(), web["interval_s"].clone(), web["firing_alerts"].clone()),
        (json!("online"), json!(10.0), json!(0))
    );
    let latest = |metric: &str, mount: Option<&str>| {
        web["latest"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["metric_name"] == metric && mount.is_none_or(|m| l["tags"]["mount"] == m))
            .map(|l| l["value"].as_f64().unwrap())
    };
    assert_eq!(latest("cpu.usage_percent", None), Some(42.5), "the latest point, not the first");
    assert_eq!(latest("mem.used_percent", None), Some(61.0));
    assert_eq!(
        (latest("disk.used_percent", Some("/")), latest("disk.used_percent", Some("/data"))),
        (Some(40.0), Some(91.0))
    );
    assert_eq!(latest("app.requests", None), None, "only the host agent's metrics");
    assert_eq!(host("gone-1")["status"], "offline");
    assert_eq!(host("db-1")["interval_s"], Value::Null);

    // Tenants see only their own fleet; admins name the tenant.
    assert_eq!(
        app.call("GET", "/api/v1/fleet?tenant=acme", Some(&other.token), None).await.status,
        StatusCode::FORBIDDEN
    );
    let own = app.call("GET", "/api/v1/fleet", Some(&other.token), None).await;
    assert_eq!((own.json["tenant"].clone(), own.json["hosts"].clone()), (json!("other"), json!([])));
    let admin = app.admin_token().await;
    assert_eq!(
        app.call("GET", "/api/v1/fleet?tenant=acme", Some(&admin), None).await.json["hosts"].as_array().unwrap().len(),
        3
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_layout_is_saved_per_tenant_by_its_signed_in_users() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let other = app.tenant("other", "ingest,read").await;
    app.store.create_user("alice", "alice's password", Some(acme.id), 0).await.unwrap();
    let cookie = session_cookie(&sign_in(&app, "alice", "alice's password").await);

    let empty = app.call("GET", "/api/v1/layout", Some(&acme.token), None).await;
    assert_eq!(empty.json, json!({"widgets": [], "updated_at": null}));
    let layout = json!({"widgets": [
        {"metric_name": "mem.used_percent", "pinned": true, "kind": "gauge"},
        {"metric_name": "cpu.usage_percent", "hidden": true},
        {"metric_name": "app.requests", "size": "large", "kind": "stat"},
    ]});
    let saved = with_cookie(&app, "PUT", "/api/v1/layout", &cookie, Some(&layout.to_string())).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    assert_eq!(
        saved.json["widgets"][0],
        json!({"metric_name": "mem.used_percent", "hidden": false, "pinned": true, "size": "small", "kind": "gauge"})
    );
    // Another browser (here: the tenant's read token) gets the same layout.
    let read = app.call("GET", "/api/v1/layout", Some(&acme.token), None).await;
    assert_eq!(read.json, saved.json);
    assert_eq!(read.json["widgets"][1]["hidden"], true);
    // Another tenant's layout is its own, and it cannot touch acme's.
    assert_eq!(app.call("GET", "/api/v1/layout", Some(&other.token), None).await.json["widgets"], json!([]));
    assert_eq!(
        app.call("GET", "/api/v1/layout?tenant=acme", Some(&other.token), None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        with_cookie(&app, "PUT", "/api/v1/layout?tenant=other", &cookie, Some(&layout.to_string())).await.status,
        StatusCode::FORBIDDEN
    );
    // API tokens do not arrange dashboards.
    assert_eq!(
        app.call("PUT", "/api/v1/layout", Some(&acme.token), Some(&layout.to_string())).await.status,
        StatusCode::FORBIDDEN
    );
    // Every wrong field is named, and nothing is saved.
    let bad = json!({"widgets": [{"metric_name": "a b", "size": "huge"}, {"metric_name": "x", "hidden": "yes"}]});
    let refused = with_cookie(&app, "PUT", "/api/v1/layout", &cookie, Some(&bad.to_string())).await;
    assert_eq!(fields(&refused), ["metric_name", "size", "hidden"]);
    assert_eq!(refused.json["details"][2]["index"], 1);
    assert_eq!(app.call("GET", "/api/v1/layout", Some(&acme.token), None).await.json, saved.json);
    // Admins arrange any tenant's, naming it.
    let admin = app.admin_token().await;
    let none = json!({"widgets": []}).to_string();
    assert_eq!(fields(&app.call("PUT", "/api/v1/layout", Some(&admin), Some(&none)).await), ["tenant"]);
    let cleared = app.call("PUT", "/api/v1/layout?tenant=acme", Some(&admin), Some(&none)).await;
    assert_eq!((cleared.status, cleared.json["widgets"].clone()), (StatusCode::OK, json!([])));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_create_tenants_and_users_in_the_browser() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    app.store.create_user("root", "root's password", None, 0).await.unwrap();
    app.store.create_user("alice", "alice's password", Some(acme.id), 0).await.unwrap();
    let admin = session_cookie(&sign_in(&app, "root", "root's password").await);
    let alice = session_cookie(&sign_in(&app, "alice", "alice's password").await);

    let refused = with_cookie(&app, "POST", "/api/v1/tenants", &admin, Some(r#"{"slug":"Bad Slug"}"#)).await;
    assert_eq!(fields(&refused), ["slug"]);
    let created =
        with_cookie(&app, "POST", "/api/v1/tenants", &admin, Some(r#"{"slug":"beta","name":"Beta Ltd"}"#)).await;
    assert_eq!((created.status, created.json["name"].clone()), (StatusCode::CREATED, json!("Beta Ltd")));
    let again = with_cookie(&app, "POST", "/api/v1/tenants", &admin, Some(r#"{"slug":"beta"}"#)).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        with_cookie(&app, "POST", "/api/v1/tenants", &alice, Some(r#"{"slug":"gamma"}"#)).await.status,
        StatusCode::FORBIDDEN
    );

    // Users: every missing or wrong field named at once.
    let refused =
        with_cookie(&app, "POST", "/api/v1/users", &admin, Some(r#"{"tenant":"nope","password":"short"}"#)).await;
    assert_eq!(fields(&refused), ["username", "password", "tenant"]);
    let body = json!({"username": "bob", "password": "bob's password", "tenant": "beta"}).to_string();
    let bob = with_cookie(&app, "POST", "/api/v1/users", &admin, Some(&body)).await;
    assert_eq!(bob.status, StatusCode::CREATED, "{}", bob.text);
    assert_eq!((bob.json["tenant"].clone(), bob.json["admin"].clone()), (json!("beta"), json!(false)));
    assert!(bob.json.get("password").is_none());
    assert_eq!(with_cookie(&app, "POST", "/api/v1/users", &admin, Some(&body)).await.status, StatusCode::CONFLICT);
    // Bob signs in and sees his tenant.
    let bobs = session_cookie(&sign_in(&app, "bob", "bob's password").await);
    assert_eq!(with_cookie(&app, "GET", "/api/v1/tenants", &bobs, None).await.json[0]["slug"], "beta");
    let listed = with_cookie(&app, "GET", "/api/v1/users", &admin, None).await;
    let names: Vec<&str> = listed.json.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["root", "alice", "bob"]);
    // Tenant users manage no users.
    assert_eq!(with_cookie(&app, "GET", "/api/v1/users", &alice, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(with_cookie(&app, "POST", "/api/v1/users", &alice, Some(&body)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call("GET", "/api/v1/users", Some(&acme.token), None).await.status, StatusCode::FORBIDDEN);
    // Deleting ends the user's session at once; an admin cannot delete themself.
    assert_eq!(with_cookie(&app, "DELETE", "/api/v1/users/bob", &admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(with_cookie(&app, "GET", "/api/v1/tenants", &bobs, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(with_cookie(&app, "DELETE", "/api/v1/users/bob", &admin, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(with_cookie(&app, "DELETE", "/api/v1/users/root", &admin, None).await.status, StatusCode::CONFLICT);
    assert_eq!(with_cookie(&app, "DELETE", "/api/v1/users/root", &alice, None).await.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connect_info_says_where_to_publish() {
    let connect = ConnectInfo {
        mqtt: Some(MqttConnect { host: Some("broker.example".into()), port: 8883, topic_root: "metrics".into() }),
    };
    let app = App::start_with_http(HttpConfig { connect, ..common::test_http() }).await;
    let acme = app.tenant("acme", "ingest").await;
    let reply = app.call("GET", "/api/v1/connect", Some(&acme.token), None).await;
    assert_eq!(reply.json, json!({"mqtt": {"host": "broker.example", "port": 8883, "topic_root": "metrics"}}));
    assert_eq!(app.call("GET", "/api/v1/connect", None, None).await.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}
