//! History through the HTTP API: rollup resolutions, `auto`, retention, and bad input.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{App, Tenant};
use microdash_core::metric::format_millis;
use microdash_core::rollup::{DAY_MS, HOUR_MS, MINUTE_MS, bucket_start};
use microdash_ingest::clock::now_ms;
use microdash_ingest::retention::{RetentionConfig, expire_once};
use serde_json::Value;

/// Push `count` points of `metric` for agent `h1`, one every `step_ms` ending at `end_ms`
/// (values 0, 1, 2, ... oldest first), and wait until all are stored.
async fn push_series(app: &App, t: &Tenant, metric: &str, end_ms: i64, step_ms: i64, count: i64) {
    let start = end_ms - (count - 1) * step_ms;
    let all: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"metric_name":"{metric}","value":{i},"agent_id":"h1","timestamp":{}}}"#,
                (start + i * step_ms) as f64 / 1000.0
            )
        })
        .collect();
    for chunk in all.chunks(1000) {
        let reply = app.call("POST", "/api/v1/metrics", Some(&t.token), Some(&format!("[{}]", chunk.join(",")))).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let query = format!(
        "metric_name={metric}&resolution=5m&start_time={}&end_time={}&limit=100000",
        start as f64 / 1000.0,
        (end_ms + 1) as f64 / 1000.0
    );
    loop {
        let json = get(app, t, &query).await;
        let stored: i64 = json["data"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).sum();
        if stored == count {
            return;
        }
        assert!(Instant::now() < deadline, "{stored} of {count} points stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(app: &App, t: &Tenant, query: &str) -> Value {
    let reply = app.call("GET", &format!("/api/v1/metrics?{query}"), Some(&t.token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
    reply.json
}

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn rollups_answer_with_aggregates_and_auto_picks_the_resolution() {
    let app = App::start().await;
    let t = app.tenant("acme", "ingest,read").await;
    let now = now_ms();
    // A day of one point every 30 s, ending half a minute into the previous minute.
    let end = bucket_start(now, MINUTE_MS) - 30_000;
    push_series(&app, &t, "temp", end, 30_000, 2 * 24 * 60).await;
    let day_ago = now - DAY_MS + MINUTE_MS;

    let minutes =
        get(&app, &t, &format!("metric_name=temp&resolution=1m&start_time={}&limit=5000", secs(day_ago))).await;
    assert_eq!(minutes["resolution"], "1m");
    let last = minutes["data"].as_array().unwrap().last().unwrap().clone();
    let n = 2 * 24 * 60 - 1;
    assert_eq!(last["timestamp"], format_millis(bucket_start(end, MINUTE_MS)));
    // The last minute holds the points n-1 and n (at :00 and :30 of it).
    assert_eq!(
        (
            last["count"].as_u64(),
            last["min"].as_f64(),
            last["max"].as_f64(),
            last["last"].as_f64(),
            last["value"].as_f64()
        ),
        (Some(2), Some(n as f64 - 1.0), Some(n as f64), Some(n as f64), Some(n as f64 - 0.5)),
        "{last}"
    );
    assert_eq!(last["agent_id"], "h1");

    // auto over the day: raw would be 2,880 points per series, over max_points; 1-minute
    // buckets fit (1,440).
    let auto = get(&app, &t, &format!("metric_name=temp&resolution=auto&start_time={}", secs(day_ago))).await;
    assert_eq!(auto["resolution"], "1m");
    assert!(auto["count"].as_u64().unwrap() <= 1_500);
    // Over the last ten minutes raw fits.
    let recent =
        get(&app, &t, &format!("metric_name=temp&resolution=auto&start_time={}", secs(now - 10 * MINUTE_MS))).await;
    assert_eq!(recent["resolution"], "raw");
    assert!(recent["data"][0].get("min").is_none(), "raw points carry no aggregates");
    // Fewer points allowed: buckets merged from the 5-minute rollups, exactly.
    let coarse = get(
        &app,
        &t,
        &format!(
            "metric_name=temp&resolution=auto&max_points=30&start_time={}&end_time={}",
            secs(end - 6 * HOUR_MS),
            secs(end)
        ),
    )
    .await;
    assert_eq!(coarse["resolution"], "15m");
    let buckets = coarse["data"].as_array().unwrap();
    assert!(buckets.len() <= 30 && buckets.len() >= 24, "{}", buckets.len());
    // Every bucket is whole, the first too, though the range starts inside it.
    for whole in &buckets[..buckets.len() - 1] {
        assert_eq!(whole["count"], 30, "a whole 15-minute bucket of 30 s points: {whole}");
        assert_eq!(whole["max"].as_f64().unwrap() - whole["min"].as_f64().unwrap(), 29.0);
        assert_eq!(whole["last"], whole["max"]);
    }
    // Without a start, auto answers the range it chose by (what raw points cover), not
    // every bucket ever stored.
    let unbounded = get(&app, &t, "metric_name=temp&resolution=auto").await;
    assert_eq!(unbounded["resolution"], "1m");
    assert!(unbounded["count"].as_u64().unwrap() <= 1_500, "{}", unbounded["count"]);
    // A week: 1-minute buckets would be too many.
    let week =
        get(&app, &t, &format!("metric_name=temp&resolution=auto&start_time={}", secs(now - 7 * DAY_MS + HOUR_MS)))
            .await;
    assert_eq!(week["resolution"], "10m");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_open_bucket_and_late_points_are_counted_at_once() {
    let app = App::start().await;
    let t = app.tenant("acme", "ingest,read").await;
    let now = now_ms();
    // Stored the way the workers store (not through the queue, so nothing is polled for):
    // the still-open minute answers with these points the moment the write returns.
    let points: Vec<String> = (0..3)
        .map(|i| format!(r#"{{"metric_name":"m","value":{i},"agent_id":"h1","timestamp":{}}}"#, secs(now - i * 1_000)))
        .collect();
    let metrics = microdash_core::metric::parse_metrics(
        format!("[{}]", points.join(",")).as_bytes(),
        &microdash_core::Limits::default(),
        now,
    )
    .unwrap();
    let batch = microdash_core::Batch { tenant_id: t.id, received_at_ms: now, metrics };
    app.store.insert_batches(&[batch], now).await.unwrap();
    let bucket = |json: &Value| json["data"].as_array().unwrap().last().cloned().unwrap();
    let open = bucket(&get(&app, &t, &format!("metric_name=m&resolution=1m&start_time={}", secs(now - 5_000))).await);
    let in_open: i64 =
        (0..3).filter(|i| bucket_start(now - i * 1_000, MINUTE_MS) == bucket_start(now, MINUTE_MS)).count() as i64;
    assert_eq!(open["timestamp"], format_millis(bucket_start(now, MINUTE_MS)));
    assert_eq!(open["count"].as_i64(), Some(in_open), "{open}");
    assert_eq!(open["last"].as_f64(), Some(0.0), "the newest point's value: {open}");
    // A late point, an hour old (an agent's outage buffer), lands in its own old bucket.
    push_series(&app, &t, "m", now - HOUR_MS, 1_000, 1).await;
    let old = get(
        &app,
        &t,
        &format!(
            "metric_name=m&resolution=5m&start_time={}&end_time={}",
            secs(now - HOUR_MS - 1),
            secs(now - HOUR_MS + 1)
        ),
    )
    .await;
    assert_eq!(old["data"][0]["count"], 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_past_its_retention_is_answered_from_rollups() {
    let app = App::start().await;
    let t = app.tenant("acme", "ingest,read").await;
    let admin = app.admin_token().await;
    let reply = app.call("PATCH", "/api/v1/tenants/acme", Some(&admin), Some(r#"{"retention_raw_hours":1}"#)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        (reply.json["retention_raw_hours"].as_u64(), reply.json["retention_1m_days"].as_u64()),
        (Some(1), Some(7))
    );
    let now = now_ms();
    push_series(&app, &t, "m", now - 2 * HOUR_MS, 10_000, 6).await;
    push_series(&app, &t, "m", now, 10_000, 6).await;
    // Retention removes the raw points older than an hour; their rollups stay.
    // The server's default is a day; the tenant's own hour is what counts.
    let expired =
        expire_once(&app.store, &RetentionConfig::default(), app.runtime.telemetry(), now_ms()).await.unwrap();
    assert_eq!((expired.points, expired.rollups_1m, expired.rollups_5m), (6, 0, 0));
    let counters = app.call("GET", "/metrics", None, None).await.text;
    assert!(counters.contains(r#"microdash_retention_deleted_rows_total{table="points"} 6"#), "{counters}");
    assert!(counters.contains("microdash_retention_last_run_timestamp_seconds "), "{counters}");

    let raw = get(&app, &t, &format!("metric_name=m&resolution=raw&start_time={}", secs(now - 3 * HOUR_MS))).await;
    assert_eq!(raw["resolution"], "1m", "raw no longer covers the range: {raw}");
    let counted: u64 = raw["data"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 12, "the expired points are still in their buckets");
    // Within raw retention, raw it is.
    let recent =
        get(&app, &t, &format!("metric_name=m&resolution=raw&start_time={}", secs(now - 30 * MINUTE_MS))).await;
    assert_eq!((recent["resolution"].as_str(), recent["count"].as_u64()), (Some("raw"), Some(6)));

    // Raising the retention again does not bring the deleted points back: until the longer
    // setting's horizon passes the last cutoff, older ranges are still answered from rollups.
    let reply = app.call("PATCH", "/api/v1/tenants/acme", Some(&admin), Some(r#"{"retention_raw_hours":null}"#)).await;
    assert_eq!(reply.json["retention_raw_hours"], 24, "{}", reply.text);
    let raw = get(&app, &t, &format!("metric_name=m&resolution=raw&start_time={}", secs(now - 3 * HOUR_MS))).await;
    let counted: u64 = raw["data"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!((raw["resolution"].as_str(), counted), (Some("1m"), 12), "{raw}");
    let auto = get(&app, &t, &format!("metric_name=m&resolution=auto&start_time={}", secs(now - 3 * HOUR_MS))).await;
    assert_eq!(auto["resolution"], "1m", "{auto}");
    // Only an end, before what raw covers: the range ends there rather than being empty.
    let ended = get(&app, &t, &format!("metric_name=m&resolution=auto&end_time={}", secs(now - 90 * MINUTE_MS))).await;
    let counted: u64 = ended["data"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!((ended["resolution"].as_str(), counted), (Some("1m"), 6), "{ended}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_history_input_is_refused_naming_the_field() {
    let app = App::start().await;
    let t = app.tenant("acme", "ingest,read").await;
    let admin = app.admin_token().await;
    let field = |reply: &common::Reply| (reply.status, reply.json["details"][0]["field"].as_str().map(str::to_owned));
    // Values that do not parse (refused by the typed query) and values out of range (refused
    // by the handler) are answered alike: 422 naming the field.
    for (query, name) in [
        ("resolution=10m", "resolution"),
        ("resolution=hourly", "resolution"),
        ("resolution=AUTO", "resolution"),
        ("resolution=", "resolution"),
        ("resolution=auto&max_points=0", "max_points"),
        ("resolution=auto&max_points=lots", "max_points"),
        ("max_points=-1", "max_points"),
        ("limit=0", "limit"),
        ("limit=100001", "limit"),
        ("limit=ten", "limit"),
        ("limit=2.5", "limit"),
        ("limit=", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("resolution=1m&start_time=1700000100&end_time=1700000000", "end_time"),
        ("resolution=auto&start_time=soon", "start_time"),
    ] {
        let reply = app.call("GET", &format!("/api/v1/metrics?{query}"), Some(&t.token), None).await;
        assert_eq!(field(&reply), (StatusCode::UNPROCESSABLE_ENTITY, Some(name.to_owned())), "{query}: {}", reply.text);
        assert_eq!(reply.json["error"], "invalid_request", "{query}");
        let message = reply.json["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(name), "{query}: {message}");
    }
    // The bounds and values accepted are those of the text parameters before them.
    for query in ["limit=100000", "limit=%2B5", "resolution=5m&limit=1", "resolution=auto&max_points=100000"] {
        let reply = app.call("GET", &format!("/api/v1/metrics?{query}"), Some(&t.token), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
    }
    for (body, name) in [
        (r#"{"retention_raw_hours":-1}"#, "retention_raw_hours"),
        (r#"{"retention_1m_days":0}"#, "retention_1m_days"),
        (r#"{"retention_5m_days":100000}"#, "retention_5m_days"),
        // Each level at least as long as the finer one (defaults: raw 24 h, 1m 7 d, 5m 30 d).
        (r#"{"retention_raw_hours":169}"#, "retention_raw_hours"),
        (r#"{"retention_1m_days":31}"#, "retention_1m_days"),
        (r#"{"retention_5m_days":6}"#, "retention_5m_days"),
        (r#"{"retention_raw_hours":48,"retention_1m_days":1}"#, "retention_raw_hours"),
    ] {
        let reply = app.call("PATCH", "/api/v1/tenants/acme", Some(&admin), Some(body)).await;
        assert_eq!(field(&reply), (StatusCode::UNPROCESSABLE_ENTITY, Some(name.to_owned())), "{body}: {}", reply.text);
    }
    assert_eq!(app.store.list_tenants().await.unwrap()[0].retention, Default::default(), "nothing changed");
    let not_admin =
        app.call("PATCH", "/api/v1/tenants/acme", Some(&t.token), Some(r#"{"retention_raw_hours":2}"#)).await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    let missing = app.call("PATCH", "/api/v1/tenants/nope", Some(&admin), Some(r#"{"retention_raw_hours":2}"#)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // null returns a setting to the default.
    app.call("PATCH", "/api/v1/tenants/acme", Some(&admin), Some(r#"{"retention_raw_hours":2}"#)).await;
    let reset = app.call("PATCH", "/api/v1/tenants/acme", Some(&admin), Some(r#"{"retention_raw_hours":null}"#)).await;
    assert_eq!(reset.json["retention_raw_hours"], 24);
    let listed = app.call("GET", "/api/v1/tenants", Some(&admin), None).await;
    assert_eq!(listed.json[0]["retention_5m_days"], 30);
    // A tenant already out of order (set before the check existed, say) can still have its
    // other settings changed: only a change that sets one of a misordered pair is refused.
    let acme = app.store.tenant_by_slug("acme").await.unwrap().unwrap();
    let raw_long = microdash_store::RetentionChange { raw_hours: Some(Some(200)), ..Default::default() };
    app.store.set_tenant_retention(acme.id, &raw_long).await.unwrap();
    for body in [r#"{"max_series":500}"#, r#"{"retention_5m_days":60}"#] {
        let reply = app.call("PATCH", "/api/v1/tenants/acme", Some(&admin), Some(body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.text);
    }
    let reply = app.call("PATCH", "/api/v1/tenants/acme", Some(&admin), Some(r#"{"retention_1m_days":8}"#)).await;
    assert_eq!(
        field(&reply),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("retention_1m_days".to_owned())),
        "{}",
        reply.text
    );
    let message = reply.json["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("retention_1m_days (8 d) must not be shorter than retention_raw_hours (200 h)"),
        "{message}"
    );
    app.stop().await;
}
