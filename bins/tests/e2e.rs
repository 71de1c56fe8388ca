//! The real `microdash` binary end to end: start, push, query, admin CLI, graceful stop.
#![allow(clippy::unwrap_used)]

mod common;

use common::{eventually, microdash, microdash_output};
use microdash_client::{Client, Error, MetricIn, MetricsQuery, RangeQuery, UpdateTenant};
use microdash_store::Backend;
use microdash_store::testing::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn all_in_one_serves_the_demo_tenant_and_stops_gracefully() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [("MICRODASH_DATABASE_URL", db.url.as_str())];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();
    assert!(server.line_with("No admin token").contains("token create --admin"));
    let token = server.demo_token();

    let client = Client::new(&url, &token).unwrap();
    assert_eq!(client.health().await.unwrap().status, microdash_client::HealthStatus::Ok);
    let metrics: Vec<MetricIn> =
        (0..100).map(|i| MetricIn::new("temp", f64::from(i)).agent("sensor-1").tag("room", "lab")).collect();
    assert_eq!(client.push(&metrics).await.unwrap().accepted, 100);
    let query =
        MetricsQuery { metric_name: Some("temp".into()), agent_id: Some("sensor-1".into()), ..MetricsQuery::default() };
    let points =
        eventually(5, "100 points", || async { client.query(&query).await.ok().filter(|r| r.count == 100) }).await;
    assert_eq!(points.data[0].tags["room"], "lab");

    let Err(Error::Api { status, code, details, .. }) = client.push(&[MetricIn::default()]).await else {
        panic!("invalid metric accepted")
    };
    assert_eq!((status, code.as_str(), details.len()), (422, "invalid_metrics", 2));

    // Admin CLI on the same database, while the server runs.
    let created = microdash_output(&["tenant", "create", "fleet", "--json"], &env);
    assert!(created.contains("\"slug\": \"fleet\""), "{created}");
    let token_json: serde_json::Value = serde_json::from_str(&microdash_output(
        &["token", "create", "--tenant", "fleet", "--scopes", "ingest", "--json"],
        &env,
    ))
    .unwrap();
    let fleet = Client::new(&url, token_json["token"].as_str().unwrap()).unwrap();
    assert_eq!(fleet.push(&[MetricIn::new("up", 1.0)]).await.unwrap().accepted, 1);
    let Err(Error::Api { status: 403, .. }) = fleet.query(&query).await else {
        panic!("an ingest-only token could read")
    };
    let listed = microdash_output(&["token", "list", "--tenant", "fleet"], &env);
    assert!(listed.contains("active") && !listed.contains(token_json["token"].as_str().unwrap()), "{listed}");
    // The server records the push above as the token's last use (written in the background).
    eventually(5, "the token's last use", || async {
        let tokens: serde_json::Value =
            serde_json::from_str(&microdash_output(&["token", "list", "--tenant", "fleet", "--json"], &env)).ok()?;
        tokens[0]["last_used_at"].as_str().map(str::to_owned)
    })
    .await;
    let tenants: serde_json::Value =
        serde_json::from_str(&microdash_output(&["tenant", "list", "--json"], &env)).unwrap();
    let slugs: Vec<&str> = tenants.as_array().unwrap().iter().filter_map(|t| t["slug"].as_str()).collect();
    assert_eq!(slugs, ["demo", "fleet"]);
    let id = token_json["id"].to_string();
    microdash_output(&["token", "revoke", &id], &env);
    let Err(Error::Api { status: 401, .. }) = fleet.push(&[MetricIn::new("up", 1.0)]).await else {
        panic!("a revoked token worked")
    };

    let admin = microdash_output(&["token", "create", "--admin"], &env);
    let admin_token = admin.lines().nth(1).unwrap().trim();
    let admin_client = Client::new(&url, admin_token).unwrap();
    assert!(admin_client.create_tenant("via-api", "Via API").await.is_ok());

    assert!(server.terminate().success(), "SIGTERM ends the server cleanly");
}

/// A tenant's quotas set from the CLI on the database reach the running server within its
/// refresh, refuse what exceeds them with `429` naming the limit, show in the listings and
/// `/metrics`, and return to the configured defaults.
#[tokio::test(flavor = "multi_thread")]
async fn tenant_quotas_from_the_cli_hold_in_the_running_server() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        ("MICRODASH_TENANT_QUOTA_REFRESH_MS", "200"),
        ("MICRODASH_TENANT_MAX_INGEST_METRICS_PER_S", "100000"),
    ];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();
    let token = server.demo_token();
    let client = Client::new(&url, &token).unwrap();
    assert_eq!(client.push(&[MetricIn::new("a", 1.0)]).await.unwrap().accepted, 1);

    let out = microdash_output(&["tenant", "quota", "demo", "--max-series", "2"], &env);
    assert!(out.contains("100000 metrics/s") && out.contains("2 series"), "{out}");
    let listed = microdash_output(&["tenant", "list"], &env);
    assert!(listed.lines().any(|l| l.contains("demo") && l.contains("100000") && l.contains(" 2 ")), "{listed}");
    // The server reads the new limit within its refresh; until then new series still come
    // in, after it none does.
    let mut next = 0;
    let refused = eventually(5, "the series limit in the server", || {
        next += 1;
        let name = format!("new{next}");
        let client = &client;
        async move {
            match client.push(&[MetricIn::new("a", 2.0), MetricIn::new(name, 1.0)]).await {
                Err(Error::Api { status: 429, code, message, retry_after, .. }) => Some((code, message, retry_after)),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(client.push(&[MetricIn::new("a", 3.0)]).await.unwrap().accepted, 1, "a known series flows");
    assert_eq!(refused.0, "quota_exceeded");
    assert!(refused.1.contains("max_series"), "{}", refused.1);
    assert!(refused.2.is_some(), "Retry-After");
    let demo = db.store().await.tenant_by_slug("demo").await.unwrap().unwrap();
    let series = format!(r#"microdash_quota_rejected_metrics_total{{tenant_id="{}",limit="max_series"}}"#, demo.id);
    let counted = common::scrape(&url, &series).await;
    assert!(counted >= 2.0, "{counted}");

    let cmd = std::process::Command::new(env!("CARGO_BIN_EXE_microdash"))
        .args(["tenant", "quota", "demo", "--max-ingest-metrics-per-s", "-5"])
        .envs(env)
        .output()
        .unwrap();
    assert!(!cmd.status.success() && String::from_utf8_lossy(&cmd.stderr).contains("max_ingest_metrics_per_s"));
    microdash_output(&["tenant", "quota", "demo", "--max-series", "default"], &env);
    let listed: serde_json::Value =
        serde_json::from_str(&microdash_output(&["tenant", "list", "--json"], &env)).unwrap();
    assert_eq!(
        (listed[0]["max_ingest_metrics_per_s"].as_u64(), listed[0]["max_series"].as_u64()),
        (Some(100_000), Some(100_000))
    );
    eventually(5, "the default series limit in the server", || async {
        client.push(&[MetricIn::new("after", 1.0)]).await.ok()
    })
    .await;
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_and_replayed_from_the_cli() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let tenant = store.create_tenant("dl", "", 0).await.unwrap();
    let metrics = microdash_core::metric::parse_metrics(
        br#"[{"metric_name":"late","value":1},{"metric_name":"late","value":2}]"#,
        &Default::default(),
        5,
    )
    .unwrap();
    let batch = microdash_core::Batch { tenant_id: tenant.id, received_at_ms: 5, metrics };
    store.add_dead_letter(&batch, "disk full", 5, 5, None).await.unwrap();
    let env = [("MICRODASH_DATABASE_URL", db.url.as_str())];

    let listed = microdash_output(&["dlq", "list"], &env);
    assert!(listed.contains("disk full"), "{listed}");
    let replayed = microdash_output(&["dlq", "replay"], &env);
    assert!(replayed.contains("1 replayed, 0 failed"), "{replayed}");
    let query = microdash_store::PointQuery { metric_name: Some("late".into()), limit: 10, ..Default::default() };
    assert_eq!(store.query_points(tenant.id, &query).await.unwrap().len(), 2);
    assert!(store.list_dead_letters().await.unwrap().is_empty());
}

#[test]
fn config_layers_reach_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("microdash.toml");
    std::fs::write(&file, "workers = 7\nmax_tags = 9\n").unwrap();
    let out = microdash_output(
        &["config", "--config", file.to_str().unwrap(), "--listen-addr", "0.0.0.0:1"],
        &[("MICRODASH_MAX_TAGS", "11")],
    );
    let config: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((config["workers"].as_u64(), config["max_tags"].as_u64()), (Some(7), Some(11)));
    assert_eq!(config["listen_addr"], "0.0.0.0:1");
}

/// The load generator against the real server: it pushes at the asked rate, waits until the
/// server has stored everything, probes ingest-to-queryable latency, and reports it all.
#[tokio::test(flavor = "multi_thread")]
async fn the_load_generator_pushes_measures_and_reports() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server =
        microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &[("MICRODASH_DATABASE_URL", &db.url)]);
    let url = server.url();
    let token = server.demo_token();
    let args = ["http", "--url", &url, "--token", &token, "--rate", "2000", "--batch-size", "100"];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_microdash-loadgen"))
        .args(args)
        .args(["--concurrency", "2", "--duration-s", "2", "--probe-interval-ms", "50", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accepted = report["accepted_metrics"].as_u64().unwrap();
    assert!((2_000..=4_200).contains(&accepted), "about 2,000/s for 2 s: {report}");
    assert_eq!(report["failed_requests"], 0, "{report}");
    assert!(report["drain_s"].is_number(), "it waited for the server to store everything: {report}");
    assert!(report["ingest_to_queryable"]["samples"].as_u64().unwrap() > 10, "{report}");

    // What it pushed is stored, stamped with the time it was sent (the last minute).
    let client = Client::new(&url, &token).unwrap();
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let query = MetricsQuery {
        metric_name: Some("load.metric0".into()),
        start_time: Some((now_s - 60).to_string()),
        ..MetricsQuery::default()
    };
    assert!(client.query(&query).await.unwrap().count > 0);
    assert!(server.terminate().success());
}

/// The load generator's seed mode leaves history a dashboard can read: rollups for the days
/// before the raw points (which the query API answers from), and raw points after, counted in
/// the rollups too. Its query mode times queries over them.
#[tokio::test(flavor = "multi_thread")]
async fn the_load_generator_seeds_history_and_times_queries() {
    let db = TestDb::new(Backend::Sqlite).await;
    let loadgen = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_microdash-loadgen"))
            .args(args)
            .env("MICRODASH_DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let seeded = loadgen(&["seed", "--series", "20", "--interval-s", "60", "--rollup-days", "2", "--raw-hours", "2"]);
    assert!(seeded.contains("20 series") && seeded.contains("2400 raw points"), "{seeded}");

    let server =
        microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &[("MICRODASH_DATABASE_URL", &db.url)]);
    let url = server.url();
    let token = server.demo_token();
    let client = Client::new(&url, &token).unwrap();
    // The client's typed range query.
    let now_ms = microdash_ingest::clock::now_ms();
    let query = RangeQuery::new(now_ms - 2 * 86_400_000 + 3_600_000, now_ms).agent("seed-0");
    let answer = client.query_range(&query).await.unwrap();
    assert_eq!(answer.resolution.to_string(), "5m", "two days: 5-minute buckets fit under 1,500 per series");
    let series: std::collections::BTreeSet<_> = answer.data.iter().map(|p| p.metric_name.clone()).collect();
    assert_eq!(series.len(), 20, "an agent has 20 metrics");
    // One point a minute: a whole 5-minute bucket holds five, imported or written.
    let whole = answer.data.iter().filter(|p| p.count == Some(5)).count();
    assert!(whole * 10 > answer.data.len() * 9, "{whole} of {} buckets whole", answer.data.len());

    // A tenant's own retention through the client, as the admin API and the CLI list show it.
    let env = [("MICRODASH_DATABASE_URL", db.url.as_str())];
    let created: serde_json::Value =
        serde_json::from_str(&microdash_output(&["token", "create", "--admin", "--json"], &env)).unwrap();
    let admin = Client::new(&url, created["token"].as_str().unwrap()).unwrap();
    let update = UpdateTenant { retention_raw_hours: Some(Some(48)), ..UpdateTenant::default() };
    let tenant = admin.update_tenant("demo", &update).await.unwrap();
    assert_eq!((tenant.retention_raw_hours, tenant.retention_5m_days), (48, 30));
    let refused = admin.update_tenant("demo", &UpdateTenant { retention_1m_days: Some(Some(0)), ..update }).await;
    assert!(matches!(refused, Err(Error::Api { status: 422, .. })), "{refused:?}");
    let listed = microdash_output(&["tenant", "list"], &env);
    assert!(listed.lines().any(|l| l.contains("demo") && l.contains("48h") && l.contains("7d")), "{listed}");
    microdash_output(&["tenant", "retention", "demo", "--raw-hours", "default", "--5m-days", "90"], &env);
    let listed: serde_json::Value =
        serde_json::from_str(&microdash_output(&["tenant", "list", "--json"], &env)).unwrap();
    assert_eq!(
        (listed[0]["retention_raw_hours"].as_u64(), listed[0]["retention_5m_days"].as_u64()),
        (Some(24), Some(90))
    );
    let cmd = std::process::Command::new(env!("CARGO_BIN_EXE_microdash"))
        .args(["tenant", "retention", "demo", "--1m-days", "-3"])
        .env("MICRODASH_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!cmd.status.success() && String::from_utf8_lossy(&cmd.stderr).contains("retention_1m_days"));

    let timed = loadgen(&[
        "query",
        "--url",
        &url,
        "--token",
        &token,
        "--agent-id",
        "seed-0",
        "--range-s",
        "86400",
        "--requests",
        "5",
    ]);
    assert!(
        timed.contains("resolution 1m") && timed.contains("over 20 series") && timed.contains("5 queries"),
        "{timed}"
    );
}

/// The server's own retention task runs: points older than the raw retention, pushed to the
/// real binary, are deleted within a pass, while their rollups stay, and `/metrics` counts it.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_expires_old_raw_points_by_itself() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [("MICRODASH_DATABASE_URL", db.url.as_str()), ("MICRODASH_RETENTION_INTERVAL_S", "1")];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();
    let token = server.demo_token();
    let client = Client::new(&url, &token).unwrap();
    let two_days_ago = microdash_ingest::clock::now_ms() - 2 * 86_400_000;
    let old: Vec<MetricIn> =
        (0..10).map(|i| MetricIn::new("old", f64::from(i)).at_millis(two_days_ago + i64::from(i))).collect();
    assert_eq!(client.push(&old).await.unwrap().accepted, 10);
    let raw = MetricsQuery { metric_name: Some("old".into()), ..MetricsQuery::default() };
    let http = Client::default_http().unwrap();
    eventually(10, "retention to delete the old points", || async {
        let text = http.get(format!("{url}/metrics")).send().await.ok()?.text().await.ok()?;
        let deleted =
            text.lines().find(|l| l.starts_with("microdash_retention_deleted_rows_total{table=\"points\"}"))?;
        (deleted.ends_with(" 10") && client.query(&raw).await.ok()?.count == 0).then_some(())
    })
    .await;
    let history = RangeQuery::new(two_days_ago - 60_000, two_days_ago + 60_000).metric("old");
    let buckets = client.query_range(&history).await.unwrap();
    assert_eq!(buckets.data.iter().map(|b| b.count.unwrap()).sum::<u64>(), 10, "{buckets:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_id_is_answered_and_names_the_requests_log_lines() {
    let db = TestDb::new(Backend::Sqlite).await;
    // tower_http logs every response at debug, inside the request's span, which is an info
    // span: under `warn` it is off, and lines carry no id (README, "log_filter").
    let filter = "info,tower_http=debug";
    let server = common::microdash_logging(
        &["serve", "--demo", "--listen-addr", "127.0.0.1:0"],
        &[("MICRODASH_DATABASE_URL", db.url.as_str()), ("MICRODASH_LOG_FILTER", filter), ("RUST_LOG", filter)],
    );
    let url = server.url();
    let token = server.demo_token();
    let http = Client::default_http().unwrap();

    // An id the server chose, on an authenticated push: the span names the tenant too.
    let pushed = http
        .post(format!("{url}/api/v1/metrics"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"metric_name": "up", "value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 202);
    let id = pushed.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!id.is_empty());
    // The answer's line: the tenant is known by then (the request's first line precedes
    // authentication).
    let line = eventually(5, "the push's log line", || async {
        server.log().lines().find(|l| l.contains(&format!("id={id} ")) && l.contains("status=")).map(str::to_owned)
    })
    .await;
    assert!(line.contains("method=POST") && line.contains("path=/api/v1/metrics"), "{line}");
    assert!(line.contains("tenant_id=") && line.contains("status=202"), "{line}");

    // An id the client sent is kept, so a caller can follow its own id into the log.
    let health =
        http.get(format!("{url}/api/v1/health")).header("x-request-id", "client-chosen-42").send().await.unwrap();
    assert_eq!(health.headers()["x-request-id"], "client-chosen-42");
    let line = eventually(5, "the health check's log line", || async {
        server.log().lines().find(|l| l.contains("id=client-chosen-42 ") && l.contains("status=")).map(str::to_owned)
    })
    .await;
    assert!(line.contains("path=/api/v1/health") && line.contains("status=200"), "{line}");
    assert!(server.terminate().success());
}
