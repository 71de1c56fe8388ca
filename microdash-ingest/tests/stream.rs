//! The live stream and its polling fallback, driven through the router with real workers
//! persisting to SQLite.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::App;
use microdash_ingest::http::HttpConfig;

const WAIT: Duration = Duration::from_secs(5);

fn metrics(name: &str, agent: &str, values: &[f64]) -> String {
    let items: Vec<String> =
        values.iter().map(|v| format!(r#"{{"metric_name":"{name}","agent_id":"{agent}","value":{v}}}"#)).collect();
    format!("[{}]", items.join(","))
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_authenticated_and_tenant_isolated() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let other = app.tenant("other", "ingest,read").await;
    let ingest_only = app.tenant("writer", "ingest").await;
    let admin = app.admin_token().await;

    assert_eq!(app.open_stream("/api/v1/stream/acme", None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.open_stream("/api/v1/stream/acme", Some("mdk_nope"), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.open_stream("/api/v1/stream/acme", Some(&other.token), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.open_stream("/api/v1/stream/writer", Some(&ingest_only.token), None).await.0, StatusCode::FORBIDDEN);
    // A tenant token cannot tell a missing tenant from someone else's.
    assert_eq!(app.open_stream("/api/v1/stream/ghost", Some(&acme.token), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.open_stream("/api/v1/stream/ghost", Some(&admin), None).await.0, StatusCode::NOT_FOUND);
    let poll = app.call("GET", "/api/v1/stream/acme/latest", Some(&other.token), None).await;
    assert_eq!(poll.status, StatusCode::FORBIDDEN);

    let (_, mut mine) = app.open_stream("/api/v1/stream/acme", Some(&acme.token), None).await;
    let (_, mut theirs) = app.open_stream("/api/v1/stream/other", Some(&other.token), None).await;
    let (_, mut as_admin) = app.open_stream("/api/v1/stream/acme", Some(&admin), None).await;
    let (mine, theirs, as_admin) = (mine.as_mut().unwrap(), theirs.as_mut().unwrap(), as_admin.as_mut().unwrap());
    for stream in [&mut *mine, &mut *theirs, &mut *as_admin] {
        assert_eq!(stream.next_event(WAIT).await.event.as_deref(), Some("ready"));
    }

    let reply = app.call("POST", "/api/v1/metrics", Some(&acme.token), Some(&metrics("cpu", "web-1", &[1.0]))).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let reply = app.call("POST", "/api/v1/metrics", Some(&other.token), Some(&metrics("cpu", "x", &[2.0]))).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);

    let event = mine.next_event(WAIT).await;
    assert_eq!(event.values(), [1.0]);
    let point = &event.json()["points"][0];
    assert_eq!(point["metric_name"], "cpu");
    assert_eq!(point["agent_id"], "web-1");
    assert!(point["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(as_admin.next_event(WAIT).await.values(), [1.0]);
    // The other tenant's stream carries only its own point.
    assert_eq!(theirs.next_event(WAIT).await.values(), [2.0]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_select_agent_and_metric() {
    let app = App::start().await;
    let t = app.tenant("t", "ingest,read").await;
    let (_, stream) = app.open_stream("/api/v1/stream/t?agent_id=db&metric_name=mem", Some(&t.token), None).await;
    let mut stream = stream.unwrap();
    stream.next_event(WAIT).await;
    for (name, agent, value) in [("mem", "web", 1.0), ("cpu", "db", 2.0), ("mem", "db", 3.0)] {
        app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&metrics(name, agent, &[value]))).await;
    }
    assert_eq!(stream.next_event(WAIT).await.values(), [3.0]);
    let bad = app.open_stream("/api/v1/stream/t?agent_id=no%20spaces", Some(&t.token), None).await;
    assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reconnecting_client_resumes_from_last_event_id() {
    let app = App::start().await;
    let t = app.tenant("t", "ingest,read").await;
    let (_, stream) = app.open_stream("/api/v1/stream/t", Some(&t.token), None).await;
    let mut stream = stream.unwrap();
    stream.next_event(WAIT).await;
    app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&metrics("m", "a", &[1.0]))).await;
    let (_, last_id) = stream.values(1, WAIT).await;
    drop(stream);

    // Missed while disconnected.
    app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&metrics("m", "a", &[2.0, 3.0]))).await;
    app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&metrics("m", "a", &[4.0]))).await;
    app.wait_for_points(&t.token, "metric_name=m", 4).await;

    let (_, resumed) = app.open_stream("/api/v1/stream/t", Some(&t.token), Some(&last_id)).await;
    let mut resumed = resumed.unwrap();
    let ready = resumed.next_event(WAIT).await;
    assert_eq!(ready.event.as_deref(), Some("ready"));
    assert_eq!(ready.id.as_deref(), Some(last_id.as_str()), "resumes where the client stopped");
    assert_eq!(resumed.values(3, WAIT).await.0, [2.0, 3.0, 4.0]);

    // An id the server cannot resume (garbage, or from before a restart) says so.
    for stale in ["garbage", "1-0"] {
        let (_, reset) = app.open_stream("/api/v1/stream/t", Some(&t.token), Some(stale)).await;
        let event = reset.unwrap().next_event(WAIT).await;
        assert_eq!(event.event.as_deref(), Some("reset"), "{stale}");
        assert_eq!(event.json()["cursor"].as_str(), event.id.as_deref());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_streams_get_heartbeats_and_closed_streams_are_released() {
    let app = App::start().await;
    let t = app.tenant("t", "read").await;
    assert_eq!(app.gauge("microdash_streams_open").await, 0.0);
    let (_, first) = app.open_stream("/api/v1/stream/t", Some(&t.token), None).await;
    let (_, second) = app.open_stream("/api/v1/stream/t", Some(&t.token), None).await;
    let (mut first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(app.gauge("microdash_streams_open").await, 2.0);
    first.next_event(WAIT).await;
    // The test router beats every 200 ms.
    assert!(first.next(Duration::from_secs(2)).await.comment, "a heartbeat comment");
    drop(second);
    assert_eq!(app.gauge("microdash_streams_open").await, 1.0);
    drop(first);
    assert_eq!(app.gauge("microdash_streams_open").await, 0.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn polling_returns_exactly_what_the_stream_sends() {
    let app = App::start().await;
    let t = app.tenant("t", "ingest,read").await;
    let (_, stream) = app.open_stream("/api/v1/stream/t?agent_id=a", Some(&t.token), None).await;
    let mut stream = stream.unwrap();
    let start = stream.next_event(WAIT).await.id.unwrap();
    for batch in [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]] {
        app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&metrics("m", "a", &batch))).await;
        app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&metrics("m", "b", &batch))).await;
    }
    let (streamed, stream_cursor) = stream.values(6, WAIT).await;

    let poll =
        app.call("GET", &format!("/api/v1/stream/t/latest?agent_id=a&after={start}"), Some(&t.token), None).await;
    assert_eq!(poll.status, StatusCode::OK, "{}", poll.text);
    assert_eq!(poll.json["reset"], false);
    let polled: Vec<f64> =
        poll.json["points"].as_array().unwrap().iter().map(|p| p["value"].as_f64().unwrap()).collect();
    assert_eq!(polled, streamed);
    assert_eq!(poll.json["points"][0]["agent_id"], "a");
    // The stream's last event id and the poll's cursor name the same position.
    let cursor = poll.json["cursor"].as_str().unwrap().to_owned();
    let empty = app
        .call("GET", &format!("/api/v1/stream/t/latest?agent_id=a&after={stream_cursor}"), Some(&t.token), None)
        .await;
    assert_eq!(empty.json["points"], serde_json::json!([]));

    // A long poll answers as soon as a point arrives.
    let waiting = {
        let router = app.runtime.router();
        let (uri, token) = (format!("/api/v1/stream/t/latest?agent_id=a&after={cursor}&wait_ms=5000"), t.token.clone());
        tokio::spawn(async move {
            use axum::body::Body;
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let req = axum::http::Request::get(uri).header("authorization", format!("Bearer {token}"));
            let response = router.oneshot(req.body(Body::empty()).unwrap()).await;
            let bytes = response.unwrap().into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&metrics("m", "a", &[7.0]))).await;
    let answer = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(answer["points"][0]["value"], 7.0);

    let stale = app.call("GET", "/api/v1/stream/t/latest?after=1-5", Some(&t.token), None).await;
    assert_eq!(stale.json["reset"], true);
    assert_eq!(stale.json["points"], serde_json::json!([]));
    let bad = app.call("GET", "/api/v1/stream/t/latest?after=nope", Some(&t.token), None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json["details"][0]["field"], "after");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_waits_no_longer_than_the_server_allows() {
    let app =
        App::start_with_http(HttpConfig { max_poll_wait: Duration::from_millis(100), ..common::test_http() }).await;
    let t = app.tenant("t", "read").await;
    let started = std::time::Instant::now();
    let poll = app.call("GET", "/api/v1/stream/t/latest?wait_ms=999999", Some(&t.token), None).await;
    assert_eq!(poll.status, StatusCode::OK);
    assert_eq!(poll.json["points"], serde_json::json!([]));
    assert!(started.elapsed() < Duration::from_secs(5), "capped at max_poll_wait");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_the_token_or_signing_out_ends_open_streams() {
    let app = App::start().await;
    let t = app.tenant("t", "ingest,read").await;
    let (_, stream) = app.open_stream("/api/v1/stream/t", Some(&t.token), None).await;
    let mut stream = stream.unwrap();
    stream.next_event(WAIT).await;
    let id = app.store.list_tokens(microdash_store::Reach::Tenant(t.id)).await.unwrap()[0].id;
    app.store.revoke_token(microdash_store::Reach::Every, id, 1).await.unwrap();
    // The test router rechecks every 200 ms.
    stream.ended(Duration::from_secs(3)).await;
    assert_eq!(app.gauge("microdash_streams_open").await, 0.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_stream_is_told_when_its_position_moves() {
    let app = App::start().await;
    let t = app.tenant("t", "ingest,read").await;
    let (_, stream) = app.open_stream("/api/v1/stream/t?agent_id=quiet", Some(&t.token), None).await;
    let mut stream = stream.unwrap();
    let ready = stream.next_event(WAIT).await.id.unwrap();
    app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&metrics("m", "busy", &[1.0]))).await;
    let moved = stream.next_event(WAIT).await;
    assert_eq!(moved.event.as_deref(), Some("cursor"));
    assert_ne!(moved.id.as_deref(), Some(ready.as_str()));
    assert_eq!(moved.json()["cursor"].as_str(), moved.id.as_deref());
    // Resuming from it replays nothing the filter would have let through, and needs no reset.
    let (_, resumed) = app.open_stream("/api/v1/stream/t?agent_id=quiet", Some(&t.token), moved.id.as_deref()).await;
    assert_eq!(resumed.unwrap().next_event(WAIT).await.event.as_deref(), Some("ready"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_and_waiting_polls_are_capped_per_token_and_per_tenant() {
    let http = HttpConfig { max_streams_per_token: 2, max_streams_per_tenant: 3, ..common::test_http() };
    let app = App::start_with_http(http).await;
    let t = app.tenant("t", "read").await;
    let (_, other_token) = app.store.create_token(Some(t.id), "read".parse().unwrap(), "other", 0).await.unwrap();
    let (status, first) = app.open_stream("/api/v1/stream/t", Some(&t.token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _second) = app.open_stream("/api/v1/stream/t", Some(&t.token), None).await;
    assert_eq!(status, StatusCode::OK);

    // The token's third stream, and a poll of it that would wait: refused, naming the cap.
    for uri in ["/api/v1/stream/t", "/api/v1/stream/t/latest?wait_ms=1000"] {
        let refused = app.call("GET", uri, Some(&t.token), None).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{uri}: {}", refused.text);
        assert_eq!(refused.json["error"], "too_many_streams");
        assert_eq!(refused.json["details"][0]["field"], "max_streams_per_token");
        assert!(refused.json["message"].as_str().unwrap().contains("max_streams_per_token"));
        assert_eq!(refused.headers["retry-after"], "5");
    }
    // A poll that does not wait holds nothing, and is answered.
    assert_eq!(app.call("GET", "/api/v1/stream/t/latest", Some(&t.token), None).await.status, StatusCode::OK);

    // Another token of the tenant: the tenant's third stream fits, its fourth does not.
    let (status, _third) = app.open_stream("/api/v1/stream/t", Some(&other_token), None).await;
    assert_eq!(status, StatusCode::OK);
    let refused = app.call("GET", "/api/v1/stream/t", Some(&other_token), None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json["details"][0]["field"], "max_streams_per_tenant");

    // A closed stream gives its place back.
    drop(first);
    assert_eq!(app.open_stream("/api/v1/stream/t", Some(&other_token), None).await.0, StatusCode::OK);
    let counters = app.call("GET", "/metrics", None, None).await.text;
    assert!(counters.contains(r#"microdash_streams_rejected_total{limit="max_streams_per_token"} 2"#), "{counters}");
    assert!(counters.contains(r#"microdash_streams_rejected_total{limit="max_streams_per_tenant"} 1"#), "{counters}");
    app.stop().await;
}
