//! The HTTP API end to end in one process: router -> queue -> workers -> SQLite -> query.
#![allow(clippy::unwrap_used)]

mod common;

use microdash_ingest::http::HttpConfig;

use std::time::Duration;

use axum::http::StatusCode;
use common::App;
use microdash_core::Limits;
use microdash_core::metric::format_millis;
use microdash_ingest::queue::MemoryQueue;

#[tokio::test(flavor = "multi_thread")]
async fn pushed_metrics_can_be_queried_back() {
    let app = App::start().await;
    let t = app.tenant("acme", "ingest,read").await;
    // Recent timestamps: raw points are kept for a day, and a range older than that is
    // answered from rollups.
    let t0 = (microdash_ingest::clock::now_ms() / 1000 - 60) * 1000;
    let body = format!(
        r#"[{{"metric_name":"cpu","value":0.5,"agent_id":"h1","tags":{{"dc":"x"}},"timestamp":"{}"}},
            {{"metric_name":"cpu","value":0.7,"agent_id":"h1","tags":{{"dc":"x"}},"timestamp":{}}}]"#,
        format_millis(t0),
        t0 / 1000 + 1
    );
    let reply = app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&body)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.json, serde_json::json!({"accepted": 2}));

    let single = app.call("POST", "/api/v1/metrics", Some(&t.token), Some(r#"{"metric_name":"mem","value":3}"#)).await;
    assert_eq!((single.status, single.json["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(1)));

    let json = app.wait_for_points(&t.token, "metric_name=cpu", 2).await;
    assert_eq!(json["resolution"], "raw");
    assert_eq!(
        json["data"][0],
        serde_json::json!({"metric_name":"cpu","agent_id":"h1","tags":{"dc":"x"},"timestamp":format_millis(t0),"value":0.5})
    );
    let ranged = app
        .call(
            "GET",
            &format!(
                "/api/v1/metrics?metric_name=cpu&agent_id=h1&start_time={}&end_time={}",
                t0 / 1000 + 1,
                format_millis(t0 + 60_000)
            ),
            Some(&t.token),
            None,
        )
        .await;
    assert_eq!(
        (ranged.json["resolution"].as_str(), ranged.json["count"].as_u64()),
        (Some("raw"), Some(1)),
        "{}",
        ranged.text
    );
    app.wait_for_points(&t.token, "metric_name=mem", 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked_for_presence_scope_and_revocation() {
    let app = App::start().await;
    let writer = app.tenant("w", "ingest").await;
    let reader = app.tenant("r", "read").await;
    let admin = app.admin_token().await;
    let metric = Some(r#"{"metric_name":"m","value":1}"#);

    let none = app.call("POST", "/api/v1/metrics", None, metric).await;
    assert_eq!((none.status, none.json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    let bogus = app.call("POST", "/api/v1/metrics", Some("mdk_0000000000000000000000000000000000000000"), metric).await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.call("POST", "/api/v1/metrics", Some(&reader.token), metric).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call("GET", "/api/v1/metrics", Some(&writer.token), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call("POST", "/api/v1/metrics", Some(&admin), metric).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call("GET", "/api/v1/admin/tenants", Some(&writer.token), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call("POST", "/api/v1/metrics", Some(&writer.token), metric).await.status, StatusCode::ACCEPTED);

    let tokens = app.call("GET", "/api/v1/admin/tokens", Some(&admin), None).await;
    let id = tokens.json.as_array().unwrap().iter().find(|t| t["tenant"] == "w").unwrap()["id"].as_i64().unwrap();
    let revoked = app.call("DELETE", &format!("/api/v1/admin/tokens/{id}"), Some(&admin), None).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.json["revoked_at"].is_string());
    assert_eq!(app.call("POST", "/api/v1/metrics", Some(&writer.token), metric).await.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_see_each_other() {
    let app = App::start().await;
    let a = app.tenant("a", "ingest,read").await;
    let b = app.tenant("b", "ingest,read").await;
    for (t, v) in [(&a, 1), (&b, 2)] {
        let body = format!(r#"{{"metric_name":"shared","value":{v},"agent_id":"same"}}"#);
        assert_eq!(app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&body)).await.status, StatusCode::ACCEPTED);
    }
    let seen_by_a = app.wait_for_points(&a.token, "metric_name=shared", 1).await;
    let seen_by_b = app.wait_for_points(&b.token, "metric_name=shared&agent_id=same", 1).await;
    assert_eq!(
        (seen_by_a["data"][0]["value"].as_f64(), seen_by_b["data"][0]["value"].as_f64()),
        (Some(1.0), Some(2.0))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_precise_error_and_nothing_is_enqueued() {
    let limits = Limits { max_body_bytes: 2_000, max_metrics_per_request: 3, ..Limits::default() };
    // No workers: whatever was enqueued stays visible as queue depth.
    let app = App::build(limits, MemoryQueue::new(16, Duration::from_millis(10)), false).await;
    let t = app.tenant("t", "ingest,read").await;
    let post = |body: String| {
        let token = t.token.clone();
        let app = &app;
        async move { app.call("POST", "/api/v1/metrics", Some(&token), Some(&body)).await }
    };

    let invalid =
        post(r#"[{"metric_name":"ok","value":1},{"metric_name":"bad name","value":"x"},{"value":1}]"#.into()).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", invalid.text);
    assert_eq!(invalid.json["error"], "invalid_metrics");
    assert_eq!(invalid.json["details"], serde_json::json!([{"index":1,"field":"value","message":"must be a number"}]));
    let semantic =
        post(r#"[{"metric_name":"ok","value":1},{"metric_name":"bad name","value":2},{"value":1}]"#.into()).await;
    let details: Vec<_> = semantic.json["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["index"].as_u64(), d["field"].as_str().map(str::to_owned)))
        .collect();
    assert_eq!(details, [(Some(1), Some("metric_name".to_owned())), (Some(2), Some("metric_name".to_owned()))]);

    assert_eq!(post("{not json".into()).await.status, StatusCode::BAD_REQUEST);
    let too_many = post(format!("[{}]", [r#"{"metric_name":"m","value":1}"#; 4].join(","))).await;
    assert_eq!(
        (too_many.status, too_many.json["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_many_metrics"))
    );
    let huge = post(format!(r#"{{"metric_name":"m","value":1,"tags":{{"k":"{}"}}}}"#, "x".repeat(3_000))).await;
    assert_eq!((huge.status, huge.json["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));

    let form = axum::http::Request::builder()
        .method("POST")
        .uri("/api/v1/metrics")
        .header("authorization", format!("Bearer {}", t.token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(r#"{"metric_name":"m","value":1}"#))
        .unwrap();
    assert_eq!(app.send(form).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert_eq!(app.queue.depth().await.unwrap(), 0, "no rejected request enqueued anything");
    // Rejections count metrics (3 + 3 + 1 unreadable body; 4 over the limit), not requests.
    let counters = app.call("GET", "/metrics", None, None).await.text;
    assert!(counters.contains(r#"microdash_metrics_rejected_total{source="http",reason="invalid"} 7"#), "{counters}");
    assert!(counters.contains(r#"microdash_metrics_rejected_total{source="http",reason="too_large"} 4"#), "{counters}");

    let bad_query = app.call("GET", "/api/v1/metrics?limit=0&metric_name=m", Some(&t.token), None).await;
    assert_eq!(
        (bad_query.status, bad_query.json["details"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("limit"))
    );
    let bad_time = app.call("GET", "/api/v1/metrics?start_time=yesterday", Some(&t.token), None).await;
    assert_eq!(bad_time.json["details"][0]["field"], "start_time");
    let rollup = app.call("GET", "/api/v1/metrics?resolution=hourly", Some(&t.token), None).await;
    assert_eq!(rollup.json["details"][0]["field"], "resolution");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let app = App::start().await;
    let t = app.tenant("t", "ingest").await;
    // A body that never arrives: only an answer that does not wait for it can pass.
    for (uri, token) in [("/api/v1/metrics", Some(&t.token)), ("/api/v1/session", None)] {
        let mut request = axum::http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/json")
            .header("content-length", "100000000000");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let never = futures_util::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
        let request = request.body(axum::body::Body::from_stream(never)).unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), app.send(request)).await.expect("answered at once");
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}: {}", reply.text);
        assert_eq!(reply.json["error"], "payload_too_large");
        assert!(reply.json["message"].as_str().unwrap().contains("4194304"), "{}", reply.text);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_json_bodies_and_query_strings_are_answered_with_json_errors() {
    let app = App::build(Limits::default(), MemoryQueue::new(16, Duration::from_millis(10)), false).await;
    let admin = app.admin_token().await;
    let t = app.tenant("t", "ingest,read").await;
    let error = |reply: &common::Reply| (reply.status, reply.json["error"].as_str().map(str::to_owned));

    // A JSON body: malformed, of the wrong shape, or not said to be JSON.
    let malformed = app.call("POST", "/api/v1/tenants", Some(&admin), Some("{\"slug\": ")).await;
    assert_eq!(error(&malformed), (StatusCode::BAD_REQUEST, Some("bad_body".into())));
    let wrong_shape = app.call("POST", "/api/v1/tenants", Some(&admin), Some(r#"{"slug": 7}"#)).await;
    assert_eq!(error(&wrong_shape), (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_body".into())));
    let text = axum::http::Request::builder()
        .method("POST")
        .uri("/api/v1/tenants")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from(r#"{"slug": "x", "name": "X"}"#))
        .unwrap();
    let text = app.send(text).await;
    assert_eq!(error(&text), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type".into())));
    assert!(text.json["message"].as_str().is_some_and(|m| m.contains("application/json")), "{:?}", text.json);

    // A query string of the wrong type, on each kind of endpoint that reads one; a value
    // that does not parse is named in `details`.
    for (uri, field) in [
        ("/api/v1/metrics?metric_name=a&metric_name=b", None),
        ("/api/v1/agents?tenant=t&tenant=u", None),
        ("/api/v1/alerts/history?rule_id=first", Some("rule_id")),
        ("/api/v1/alerts?state=burning", Some("state")),
        ("/api/v1/notifications?channel_id=x", Some("channel_id")),
        ("/api/v1/stream/t/latest?wait_ms=soon", Some("wait_ms")),
    ] {
        let reply = app.call("GET", uri, Some(&t.token), None).await;
        assert_eq!(error(&reply), (StatusCode::BAD_REQUEST, Some("bad_query".into())), "{uri}: {:?}", reply.json);
        assert!(reply.json["message"].as_str().is_some_and(|m| !m.is_empty()), "{uri}");
        assert_eq!(reply.json["details"][0]["field"].as_str(), field, "{uri}: {:?}", reply.json);
    }
    // On `GET /api/v1/metrics` a value that does not parse is a 422 naming the field, as it
    // was when these parameters were text its handler parsed.
    for field in ["limit", "max_points", "resolution"] {
        let reply = app.call("GET", &format!("/api/v1/metrics?{field}=many"), Some(&t.token), None).await;
        assert_eq!(error(&reply), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request".into())), "{field}");
        assert_eq!(reply.json["details"][0]["field"], field, "{:?}", reply.json);
    }
    // Nothing was created by the refused bodies.
    let tenants = app.call("GET", "/api/v1/tenants", Some(&admin), None).await;
    assert_eq!(tenants.json.as_array().map(Vec::len), Some(1), "{:?}", tenants.json);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_503_with_retry_after() {
    let app = App::build(Limits::default(), MemoryQueue::new(1, Duration::from_millis(10)), false).await;
    let t = app.tenant("t", "ingest").await;
    let body = Some(r#"{"metric_name":"m","value":1}"#);
    assert_eq!(app.call("POST", "/api/v1/metrics", Some(&t.token), body).await.status, StatusCode::ACCEPTED);
    let full = app.call("POST", "/api/v1/metrics", Some(&t.token), body).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.headers["retry-after"], "1");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_by_dedupe_id_are_stored_once() {
    let app = App::start().await;
    let t = app.tenant("t", "ingest,read").await;
    let body = Some(r#"[{"metric_name":"m","value":1,"dedupe_id":"x"},{"metric_name":"m","value":1,"dedupe_id":"x"}]"#);
    for _ in 0..3 {
        assert_eq!(app.call("POST", "/api/v1/metrics", Some(&t.token), body).await.status, StatusCode::ACCEPTED);
    }
    let marker = Some(r#"{"metric_name":"done","value":1}"#);
    app.call("POST", "/api/v1/metrics", Some(&t.token), marker).await;
    app.wait_for_points(&t.token, "metric_name=done", 1).await;
    app.wait_for_points(&t.token, "metric_name=m", 1).await;
    // Counters are updated just after the commit that made the points visible.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = app.call("GET", "/metrics", None, None).await;
        if metrics.text.contains("microdash_metrics_duplicate_total 5") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", metrics.text);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_manages_tenants_and_tokens() {
    let app = App::start().await;
    let admin = app.admin_token().await;
    let created =
        app.call("POST", "/api/v1/admin/tenants", Some(&admin), Some(r#"{"slug":"fleet","name":"Fleet"}"#)).await;
    assert_eq!((created.status, created.json["slug"].as_str()), (StatusCode::CREATED, Some("fleet")));
    let dup = app.call("POST", "/api/v1/admin/tenants", Some(&admin), Some(r#"{"slug":"fleet"}"#)).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let bad =
        app.call("POST", "/api/v1/admin/tokens", Some(&admin), Some(r#"{"tenant":"fleet","scopes":"write"}"#)).await;
    assert_eq!(
        (bad.status, bad.json["details"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("scopes"))
    );
    let token = app
        .call(
            "POST",
            "/api/v1/admin/tokens",
            Some(&admin),
            Some(r#"{"tenant":"fleet","scopes":"ingest,read","name":"ci"}"#),
        )
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.text);
    let secret = token.json["token"].as_str().unwrap().to_owned();
    assert_eq!(token.json["scopes"], "ingest,read");
    let listed = app.call("GET", "/api/v1/admin/tokens", Some(&admin), None).await;
    assert!(!listed.text.contains(&secret), "listings never show secrets");
    let push = app.call("POST", "/api/v1/metrics", Some(&secret), Some(r#"{"metric_name":"m","value":1}"#)).await;
    assert_eq!(push.status, StatusCode::ACCEPTED);
    let tenants = app.call("GET", "/api/v1/admin/tenants", Some(&admin), None).await;
    assert_eq!(tenants.json.as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_liveness_and_prometheus() {
    let app = App::start().await;
    let health = app.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json["checks"]["database"]["status"], "up");
    assert_eq!(health.json["checks"]["queue"]["backend"], "in-process");
    assert_eq!(app.call("GET", "/livez", None, None).await.status, StatusCode::OK);
    let missing = app.call("GET", "/nope", None, None).await;
    assert_eq!((missing.status, missing.json["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let no_dashboard = app.call("GET", "/", None, None).await;
    assert_eq!(no_dashboard.json["error"], "dashboard_not_built");
    let text = app.call("GET", "/metrics", None, None).await.text;
    for name in
        ["microdash_http_requests_total{status=\"404\"}", "microdash_queue_depth", "microdash_store_insert_seconds"]
    {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_that_keeps_failing_is_dead_lettered_without_taking_others_down() {
    let app = App::start().await;
    let t = app.tenant("t", "ingest,read").await;
    // No tenant 9999 exists: its series violate the foreign key on every attempt. Queued
    // next to good batches, it must be isolated, not fail them.
    app.queue
        .enqueue(microdash_core::Batch {
            tenant_id: 9999,
            received_at_ms: 0,
            metrics: microdash_core::metric::parse_metrics(
                br#"{"metric_name":"orphan","value":1}"#,
                &Limits::default(),
                0,
            )
            .unwrap(),
        })
        .await
        .unwrap();
    let good = Some(r#"{"metric_name":"good","value":1}"#);
    assert_eq!(app.call("POST", "/api/v1/metrics", Some(&t.token), good).await.status, StatusCode::ACCEPTED);
    app.wait_for_points(&t.token, "metric_name=good", 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let letters = loop {
        let letters = app.store.list_dead_letters().await.unwrap();
        if !letters.is_empty() {
            break letters;
        }
        assert!(std::time::Instant::now() < deadline, "the poison batch was never dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((letters.len(), letters[0].batch.tenant_id, letters[0].attempts), (1, 9999, 5));
    assert!(app.call("GET", "/metrics", None, None).await.text.contains("microdash_dead_lettered_batches_total 1"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_stores_everything_already_accepted() {
    // Workers start only after the backlog is queued, then shutdown begins at once: the
    // in-process queue is closed and must still be drained into storage.
    let app = App::build(Limits::default(), MemoryQueue::new(100_000, Duration::from_secs(1)), false).await;
    let t = app.tenant("t", "ingest,read").await;
    for i in 0..50 {
        let body: Vec<String> =
            (0..100).map(|j| format!(r#"{{"metric_name":"m","value":{j},"dedupe_id":"{i}-{j}"}}"#)).collect();
        let reply = app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&format!("[{}]", body.join(",")))).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    shutdown.cancel();
    app.queue.close();
    app.runtime.spawn_workers(&shutdown).drain().await;
    let query = microdash_store::PointQuery { metric_name: Some("m".into()), limit: 10_000, ..Default::default() };
    assert_eq!(app.store.query_points(t.id, &query).await.unwrap().len(), 5_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_build_is_served_with_gzip_and_revalidation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>microdash</title>").unwrap();
    std::fs::write(dir.path().join("app.css"), "body{}").unwrap();
    let gz = std::process::Command::new("gzip").args(["-k", "-n"]).arg(dir.path().join("app.css")).status().unwrap();
    assert!(gz.success());
    let app = App::start_with_http(HttpConfig { web_dir: Some(dir.path().to_owned()), ..common::test_http() }).await;

    let index = app.call("GET", "/", None, None).await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.text.contains("<title>microdash</title>"));
    assert_eq!(index.headers["cache-control"], "no-cache");
    let req = axum::http::Request::get("/app.css").header("accept-encoding", "gzip").body(axum::body::Body::empty());
    let css = app.send(req.unwrap()).await;
    assert_eq!(css.headers["content-encoding"], "gzip");
    assert_eq!(css.headers["content-type"], "text/css");
    // Unknown files and API paths are JSON 404s, never the page.
    let missing = app.call("GET", "/missing.js", None, None).await;
    assert_eq!((missing.status, missing.json["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let api = app.call("GET", "/api/v1/nope", None, None).await;
    assert_eq!((api.status, api.json["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_and_series_of_a_tenant_are_listed() {
    let app = App::start().await;
    let t = app.tenant("t", "ingest,read").await;
    let other = app.tenant("o", "ingest,read").await;
    let body = r#"[{"metric_name":"cpu","value":1,"agent_id":"web-1"},
                   {"metric_name":"disk","value":2,"agent_id":"web-1","tags":{"mount":"/"}},
                   {"metric_name":"queue","value":3}]"#;
    app.call("POST", "/api/v1/metrics", Some(&t.token), Some(body)).await;
    app.call("POST", "/api/v1/metrics", Some(&other.token), Some(r#"{"metric_name":"x","value":1,"agent_id":"o-1"}"#))
        .await;
    app.wait_for_points(&t.token, "", 3).await;

    let agents = app.call("GET", "/api/v1/agents", Some(&t.token), None).await;
    assert_eq!(agents.json.as_array().unwrap().len(), 1, "{}", agents.text);
    assert_eq!(agents.json[0]["agent_id"], "web-1");
    assert_eq!(agents.json[0]["status"], "online");
    assert_eq!(agents.json[0]["interval_s"], serde_json::Value::Null);
    // Agents announce their interval; one whose last report is long past is offline (the
    // rule is core's `fleet::HostStatus::of`, tested there).
    let announce = r#"{"metric_name":"agent.interval_s","value":0.2,"agent_id":"web-1"}"#;
    app.call("POST", "/api/v1/metrics", Some(&t.token), Some(announce)).await;
    app.wait_for_points(&t.token, "metric_name=agent.interval_s", 1).await;
    let quiet = microdash_core::metric::parse_metrics(
        br#"{"metric_name":"agent.interval_s","value":1,"agent_id":"old-1","timestamp":1000}"#,
        &microdash_core::Limits::default(),
        0,
    )
    .unwrap();
    let long_ago = microdash_core::Batch { tenant_id: t.id, received_at_ms: 1_000_000, metrics: quiet };
    app.store.insert_batches(&[long_ago], 1_000_000).await.unwrap();
    let agents = app.call("GET", "/api/v1/agents", Some(&t.token), None).await;
    assert_eq!(agents.json[0]["agent_id"], "old-1");
    assert_eq!(agents.json[0]["status"], "offline", "{}", agents.text);
    assert_eq!(
        (agents.json[1]["interval_s"].clone(), agents.json[1]["status"].clone()),
        (serde_json::json!(0.2), serde_json::json!("online"))
    );
    let series = app.call("GET", "/api/v1/series?tenant=t", Some(&t.token), None).await;
    let names: Vec<&str> = series.json.as_array().unwrap().iter().map(|s| s["metric_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["agent.interval_s", "agent.interval_s", "cpu", "disk", "queue"]);
    assert_eq!(series.json[3]["tags"]["mount"], "/");
    assert_eq!(series.json[4]["agent_id"], serde_json::Value::Null);
    let foreign = app.call("GET", "/api/v1/series?tenant=o", Some(&t.token), None).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    app.stop().await;
}
