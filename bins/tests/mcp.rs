//! The MCP server against clients no one here wrote: the official Python SDK (`mcp` from
//! PyPI, installed by scripts/test-servers.sh) drives the real binary over Streamable HTTP
//! (`/mcp`) and over stdio (`microdash mcp`), and every answer is checked against the HTTP
//! API's. Tenant isolation through every tool and argument, read-only tokens, bad input.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Proc, microdash, microdash_output};
use serde_json::{Value, json};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn python() -> PathBuf {
    let python = std::env::var_os("MICRODASH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/test-servers/python/bin/python"));
    assert!(python.exists(), "{} is missing: run scripts/test-servers.sh", python.display());
    python
}

/// Run `ops` through bins/tests/mcp/client.py with `transport` arguments; its JSON answer.
fn sdk(transport: &[&str], env: &[(&str, &str)], ops: &Value) -> Value {
    use std::io::Write;
    let mut cmd = Command::new(python());
    cmd.arg(workspace().join("bins/tests/mcp/client.py"))
        .args(transport)
        .env("MICRODASH_LOG_FILTER", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(ops.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "client.py {transport:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Over Streamable HTTP with `token`, in the SDK's `mode`.
fn over_http(url: &str, token: &str, mode: &str, ops: &Value) -> Value {
    sdk(&["http", &format!("{url}/mcp"), token, mode], &[], ops)
}

/// One operation's result; panics when it was a protocol error.
fn ok(answer: &Value, i: usize) -> &Value {
    let result = &answer["results"][i];
    assert_eq!(result["ok"], true, "operation {i} failed: {result}");
    &result["result"]
}

/// A tool call's structured answer; panics when it is a tool error.
fn structured(answer: &Value, i: usize) -> &Value {
    let result = ok(answer, i);
    assert_ne!(result["isError"], true, "tool call {i} failed: {result}");
    &result["structuredContent"]
}

/// A tool call's error text; panics unless it is a tool error.
fn tool_error(answer: &Value, i: usize) -> String {
    let result = ok(answer, i);
    assert_eq!(result["isError"], true, "tool call {i} did not fail: {result}");
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

fn call(name: &str, args: Value) -> Value {
    json!({"op": "call", "name": name, "args": args})
}

fn token(env: &[(&str, &str)], tenant: Option<&str>, scopes: &str) -> String {
    let mut args = vec!["token", "create", "--json"];
    match tenant {
        Some(tenant) => args.extend(["--tenant", tenant, "--scopes", scopes]),
        None => args.push("--admin"),
    }
    let out = microdash_output(&args, env);
    serde_json::from_str::<Value>(&out).unwrap()["token"].as_str().unwrap().to_owned()
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn get(&self, token: &str, path: &str) -> Value {
        let response = self.http.get(format!("{}{path}", self.url)).bearer_auth(token).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        let response =
            self.http.post(format!("{}{path}", self.url)).bearer_auth(token).json(&body).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }
}

/// A server with MCP on, two tenants with data, and their tokens.
struct Fleet {
    _dir: tempfile::TempDir,
    db_url: String,
    server: Proc,
    url: String,
    api: Api,
    /// acme: ingest, read, alerts.
    acme: String,
    /// acme: read only.
    acme_reader: String,
    /// beta: ingest, read, alerts.
    beta: String,
    admin: String,
    now_s: i64,
}

impl Fleet {
    async fn start() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("md.db").display());
        let env = [("MICRODASH_DATABASE_URL", db_url.as_str())];
        microdash_output(&["tenant", "create", "acme"], &env);
        microdash_output(&["tenant", "create", "beta"], &env);
        let acme = token(&env, Some("acme"), "ingest,read,alerts");
        let acme_reader = token(&env, Some("acme"), "read");
        let beta = token(&env, Some("beta"), "ingest,read,alerts");
        let admin = token(&env, None, "");
        let server = microdash(
            &["serve"],
            &[
                ("MICRODASH_DATABASE_URL", db_url.as_str()),
                ("MICRODASH_LISTEN_ADDR", "127.0.0.1:0"),
                ("MICRODASH_WEB_DIR", ""),
                ("USE_MCP", "true"),
                ("MICRODASH_MCP_ALLOW_WRITES", "true"),
            ],
        );
        let url = server.url();
        let api = Api { http: microdash_client::Client::default_http().unwrap(), url: url.clone() };
        let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        // acme: two hosts' CPU every minute for 30 minutes (web-1 rising), a disk per mount.
        let mut points = Vec::new();
        for i in 0..30 {
            let at = now_s - 1800 + i * 60;
            points.push(json!({"metric_name": "cpu.usage_percent", "agent_id": "web-1", "value": 10.0 + i as f64, "timestamp": at}));
            points
                .push(json!({"metric_name": "cpu.usage_percent", "agent_id": "web-2", "value": 50.0, "timestamp": at}));
        }
        points.push(json!({"metric_name": "disk.used_percent", "agent_id": "web-1", "tags": {"mount": "/"}, "value": 71.0, "timestamp": now_s - 60}));
        api.post(&acme, "/api/v1/metrics", Value::Array(points)).await;
        // beta: what acme must never see.
        let secret = [
            json!({"metric_name": "beta.secret", "agent_id": "beta-host-1", "value": 987.654, "timestamp": now_s - 120}),
            json!({"metric_name": "beta.hidden", "agent_id": "beta-hidden-2", "value": 987.654, "timestamp": now_s - 60}),
            json!({"metric_name": "cpu.usage_percent", "agent_id": "beta-hidden-2", "value": 987.654, "timestamp": now_s - 60}),
        ];
        api.post(&beta, "/api/v1/metrics", Value::Array(secret.to_vec())).await;
        api.post(
            &beta,
            "/api/v1/alert-rules",
            json!({"name": "beta-rule-hidden", "metric_name": "beta.hidden", "operator": ">", "critical": 1}),
        )
        .await;
        let fleet = Fleet { _dir: dir, db_url, server, url, api, acme, acme_reader, beta, admin, now_s };
        let since = format!("start_time={}", now_s - 7200);
        common::eventually(20, "the points to be stored", || async {
            let a = fleet.api.get(&fleet.acme, &format!("/api/v1/metrics?metric_name=cpu.usage_percent&{since}")).await;
            let b = fleet.api.get(&fleet.beta, &format!("/api/v1/metrics?{since}")).await;
            (a["count"] == 60 && b["count"] == 3).then_some(())
        })
        .await;
        fleet
    }
}

fn names(list: &Value, key: &str) -> Vec<String> {
    let mut names: Vec<String> = list.as_array().unwrap().iter().map(|t| t[key].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

const READ_TOOLS: [&str; 8] = [
    "get_alert_history",
    "get_alerts",
    "get_health",
    "list_agents",
    "list_alert_rules",
    "list_metrics",
    "list_tenants",
    "query_metrics",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_tool_answers_what_the_http_api_answers() {
    let fleet = Fleet::start().await;
    let (api, acme) = (&fleet.api, fleet.acme.as_str());
    let ops = json!([
        {"op": "list_tools"},
        call("list_tenants", json!({})),
        call("list_agents", json!({})),
        call("list_metrics", json!({})),
        call("get_health", json!({})),
        call("query_metrics", json!({"metric": "cpu.usage_percent", "range": "1h"})),
        call("query_metrics", json!({"metric": "cpu.usage_percent", "agents": ["web-1"], "range": "1h", "max_points": 10})),
        call("query_metrics", json!({"metric": "disk.used_percent", "tags": {"mount": "/"}, "range": "1h"})),
        call("create_alert_rule", json!({"rule": {"name": "cpu high", "metric_name": "cpu.usage_percent", "operator": ">", "critical": 30}})),
        call("list_alert_rules", json!({})),
        call("get_alerts", json!({"state": "all"})),
        call("get_alert_history", json!({"range": "24h"})),
        call("list_agents", json!({"status": "online"})),
        call("list_metrics", json!({"prefix": "disk"})),
        {"op": "list_resources"},
        {"op": "read_resource", "uri": "microdash://series"},
        {"op": "read_resource", "uri": "microdash://alerts"},
        {"op": "list_prompts"},
        {"op": "get_prompt", "name": "investigate_host", "args": {"agent_id": "web-1"}},
        {"op": "get_prompt", "name": "summarise_last_24h", "args": {}},
        {"op": "list_resource_templates"},
    ]);
    let answer = over_http(&fleet.url, acme, "auto", &ops);
    // The SDK's default negotiates the protocol's current revision.
    assert_eq!(answer["protocol_version"], "2026-07-28");
    assert_eq!(answer["server"], "microdash");
    let mut tools = names(&ok(&answer, 0)["tools"], "name");
    let mut all: Vec<String> = READ_TOOLS.iter().map(|s| s.to_string()).collect();
    all.extend(["create_alert_rule", "pause_alert_rule", "update_alert_rule"].map(String::from));
    all.sort();
    tools.sort();
    assert_eq!(tools, all, "an alerts token on a server allowing writes sees every tool");
    for tool in ok(&answer, 0)["tools"].as_array().unwrap() {
        assert!(tool["description"].as_str().unwrap().len() > 40, "{tool}");
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{tool}");
    }
    // The resolutions a query may ask for are listed, not left to a description.
    let query_tool = ok(&answer, 0)["tools"].as_array().unwrap().iter().find(|t| t["name"] == "query_metrics").unwrap();
    let schema = query_tool["inputSchema"].to_string();
    assert!(schema.contains(r#"["raw","1m","5m","auto"]"#), "{schema}");

    let tenants = structured(&answer, 1);
    assert_eq!(tenants["tenants"], api.get(acme, "/api/v1/tenants").await);
    let agents = structured(&answer, 2);
    assert_eq!(agents["agents"], api.get(acme, "/api/v1/agents").await);
    assert_eq!(agents["tenant"], "acme");
    let metrics = structured(&answer, 3);
    let series = api.get(acme, "/api/v1/series").await;
    let mut from_api: Vec<String> = names(&series, "metric_name");
    from_api.dedup();
    assert_eq!(names(&metrics["metrics"], "metric_name"), from_api);
    let health = structured(&answer, 4);
    assert_eq!(health["status"], api.get(acme, "/api/v1/health").await["status"]);
    assert_eq!(health["checks"], api.get(acme, "/api/v1/health").await["checks"]);

    // query_metrics: the summary counts every stored point, the points are the HTTP API's
    // `auto` answer at max_points 120.
    let q = structured(&answer, 5);
    assert_eq!(q["tenant"], "acme");
    let start = q["start"].as_str().unwrap();
    let end = q["end"].as_str().unwrap();
    let http = api
        .get(
            acme,
            &format!("/api/v1/metrics?metric_name=cpu.usage_percent&resolution=auto&max_points=120&start_time={start}&end_time={end}"),
        )
        .await;
    assert_eq!(q["resolution"], http["resolution"]);
    assert_eq!(q["total_series"], 2);
    for s in q["series"].as_array().unwrap() {
        let agent = s["agent_id"].as_str().unwrap();
        let mine: Vec<&Value> = http["data"].as_array().unwrap().iter().filter(|p| p["agent_id"] == agent).collect();
        assert_eq!(s["summary"]["count"], mine.len(), "{agent}");
        let points: Vec<Value> = mine.iter().map(|p| json!([p["timestamp"], p["value"]])).collect();
        assert_eq!(s["points"], Value::Array(points), "{agent}");
        let values: Vec<f64> = mine.iter().map(|p| p["value"].as_f64().unwrap()).collect();
        assert_eq!(s["summary"]["min"], values.iter().cloned().fold(f64::INFINITY, f64::min));
        assert_eq!(s["summary"]["max"], values.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        assert_eq!(s["summary"]["last"], *values.last().unwrap());
        assert_eq!(s["summary"]["trend"], if agent == "web-1" { "rising" } else { "flat" });
    }
    // At most max_points, the summary still over all 30 points.
    let q = structured(&answer, 6);
    let series = q["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert!(series[0]["points"].as_array().unwrap().len() <= 10, "{q}");
    assert_eq!(series[0]["summary"]["count"], 30);
    // With buckets, `first` is the first bucket's mean, `last` the latest point exactly.
    assert_eq!(series[0]["summary"]["first"], series[0]["points"][0][1]);
    assert_eq!(series[0]["summary"]["last"], 39.0);
    assert_eq!((series[0]["summary"]["min"].as_f64(), series[0]["summary"]["max"].as_f64()), (Some(10.0), Some(39.0)));
    let q = structured(&answer, 7);
    assert_eq!(q["series"][0]["tags"], json!({"mount": "/"}));
    assert_eq!(q["series"][0]["summary"]["last"], 71.0);

    // Writes, then reads of what was written, against the HTTP API.
    let created = structured(&answer, 8);
    let id = created["rule"]["id"].as_i64().unwrap();
    assert_eq!(created["rule"], api.get(acme, &format!("/api/v1/alert-rules/{id}")).await);
    assert_eq!(structured(&answer, 9)["rules"], api.get(acme, "/api/v1/alert-rules").await);
    assert!(structured(&answer, 10)["alerts"].is_array());
    // The new rule fires for both hosts (their CPU is over 30); get_alerts then says so.
    common::eventually(20, "the rule to fire", || async {
        (api.get(acme, "/api/v1/alerts?state=firing").await.as_array().unwrap().len() == 2).then_some(())
    })
    .await;
    let firing = over_http(&fleet.url, acme, "auto", &json!([call("get_alerts", json!({}))]));
    assert_eq!(structured(&firing, 0)["alerts"], api.get(acme, "/api/v1/alerts?state=firing").await);
    assert_eq!(structured(&firing, 0)["state"], "firing");
    assert!(structured(&answer, 11)["transitions"].is_array());
    assert_eq!(structured(&answer, 12)["agents"].as_array().unwrap().len(), 2);
    assert_eq!(names(&structured(&answer, 13)["metrics"], "metric_name"), ["disk.used_percent"]);

    // Resources and prompts.
    let uris = names(&ok(&answer, 14)["resources"], "uri");
    assert_eq!(uris, ["microdash://alerts", "microdash://series"]);
    let catalogue: Value = serde_json::from_str(ok(&answer, 15)["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(catalogue, *structured(&answer, 3));
    let current: Value = serde_json::from_str(ok(&answer, 16)["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert!(current["alerts"].is_array(), "{current}");
    assert_eq!(names(&ok(&answer, 17)["prompts"], "name"), ["investigate_host", "summarise_last_24h"]);
    let text = ok(&answer, 18)["messages"][0]["content"]["text"].as_str().unwrap();
    assert!(text.contains("web-1") && text.contains("cpu.usage_percent") && text.contains("online"), "{text}");
    let text = ok(&answer, 19)["messages"][0]["content"]["text"].as_str().unwrap();
    assert!(text.contains("2 agents") && text.contains("last 24 hours"), "{text}");
    assert_eq!(ok(&answer, 20)["resourceTemplates"].as_array().unwrap().len(), 2);

    // Named agents over a week: `auto` merges buckets coarser than any stored (90 minutes
    // for 120 points), and every agent is read at the first one's resolution (a coarse one
    // by asking `auto` again, as the API takes only raw, 1m, 5m and auto by name).
    let week = over_http(
        &fleet.url,
        acme,
        "auto",
        &json!([
            call("query_metrics", json!({"metric": "cpu.usage_percent", "agents": ["web-1", "web-2"], "range": "7d"})),
            call(
                "query_metrics",
                json!({"metric": "cpu.usage_percent", "agents": ["web-1", "web-2"], "resolution": "5m"})
            ),
            call("query_metrics", json!({"metric": "cpu.usage_percent", "resolution": "10m"})),
        ]),
    );
    let q = structured(&week, 0);
    let resolution = q["resolution"].as_str().unwrap();
    assert!(resolution.ends_with('m') && resolution.trim_end_matches('m').parse::<u32>().unwrap() > 5, "{q}");
    assert_eq!(q["total_series"], 2, "{q}");
    for s in q["series"].as_array().unwrap() {
        assert_eq!(s["summary"]["count"], 30, "{q}");
    }
    let q = structured(&week, 1);
    assert_eq!((q["resolution"].as_str(), q["total_series"].as_u64()), (Some("5m"), Some(2)), "{q}");
    let err = tool_error(&week, 2);
    assert!(err.contains(r#""10m" is not one of raw, 1m, 5m, auto"#), "{err}");

    // update and pause change only what they name.
    let answer = over_http(
        &fleet.url,
        acme,
        "auto",
        &json!([
            call("update_alert_rule", json!({"id": id, "changes": {"critical": 35, "warning": 25}})),
            call("pause_alert_rule", json!({"id": id})),
        ]),
    );
    let updated = &structured(&answer, 0)["rule"];
    assert_eq!((updated["critical"].as_f64(), updated["warning"].as_f64()), (Some(35.0), Some(25.0)));
    assert_eq!(updated["name"], "cpu high");
    let paused = api.get(acme, &format!("/api/v1/alert-rules/{id}")).await;
    assert_eq!(paused["enabled"], false);
    assert_eq!(paused["critical"], 35.0);
    assert_eq!(structured(&answer, 1)["rule"], paused);

    // The initialize handshake of earlier revisions works too, statelessly.
    let answer = over_http(&fleet.url, acme, "legacy", &json!([{"op": "list_tools"}, call("list_agents", json!({}))]));
    assert_eq!(answer["protocol_version"], "2025-11-25");
    assert_eq!(structured(&answer, 1)["agents"], api.get(acme, "/api/v1/agents").await);

    // Admins name the tenant; without one they are told which there are.
    let answer = over_http(
        &fleet.url,
        &fleet.admin,
        "auto",
        &json!([
            call("list_tenants", json!({})),
            call("list_agents", json!({})),
            call("list_agents", json!({"tenant": "acme"}))
        ]),
    );
    assert_eq!(names(&structured(&answer, 0)["tenants"], "slug"), ["acme", "beta"]);
    let err = tool_error(&answer, 1);
    assert!(err.contains("pass `tenant`") && err.contains("`acme`"), "{err}");
    assert_eq!(structured(&answer, 2)["agents"], api.get(acme, "/api/v1/agents").await);
    assert!(fleet.server.terminate().success());
}

/// Every tool, and every argument that names something, asked by acme for beta's things:
/// errors or acme's own data, never anything of beta's.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_token_never_reaches_another_tenant() {
    let fleet = Fleet::start().await;
    let beta_rule = fleet.api.get(&fleet.beta, "/api/v1/alert-rules").await[0]["id"].as_i64().unwrap();
    let b = json!("beta");
    let ops = json!([
        call("list_tenants", json!({})),
        call("list_agents", json!({"tenant": b})),
        call("list_metrics", json!({"tenant": b})),
        call("list_metrics", json!({"agent_id": "beta-host-1"})),
        call("query_metrics", json!({"metric": "beta.secret"})),
        call("query_metrics", json!({"metric": "beta.secret", "tenant": b})),
        call("query_metrics", json!({"metric": "cpu.usage_percent", "agents": ["beta-host-1"]})),
        call("query_metrics", json!({"metric": "cpu.usage_percent", "tenant": b, "range": "24h"})),
        call("get_alerts", json!({"tenant": b, "state": "all"})),
        call("get_alert_history", json!({"tenant": b})),
        call("list_alert_rules", json!({"tenant": b})),
        call("update_alert_rule", json!({"id": beta_rule, "changes": {"critical": 5}})),
        call("pause_alert_rule", json!({"id": beta_rule})),
        call("create_alert_rule", json!({"tenant": b, "rule": {"name": "x", "metric_name": "beta.secret", "operator": ">", "critical": 1}})),
        {"op": "read_resource", "uri": "microdash://tenants/beta/series"},
        {"op": "read_resource", "uri": "microdash://tenants/beta/alerts"},
        {"op": "get_prompt", "name": "investigate_host", "args": {"agent_id": "beta-host-1"}},
        {"op": "get_prompt", "name": "investigate_host", "args": {"agent_id": "beta-hidden-2", "tenant": "beta"}},
        {"op": "get_prompt", "name": "summarise_last_24h", "args": {"tenant": "beta"}},
        // acme's own answers must not mix beta in either.
        call("query_metrics", json!({"metric": "cpu.usage_percent", "range": "24h"})),
        call("list_metrics", json!({})),
        call("list_agents", json!({})),
        {"op": "read_resource", "uri": "microdash://series"},
    ]);
    let answer = over_http(&fleet.url, &fleet.acme, "auto", &ops);
    let text = answer.to_string();
    for secret in ["beta-hidden-2", "beta.hidden", "987.654", "beta-rule-hidden"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(names(&structured(&answer, 0)["tenants"], "slug"), ["acme"]);
    for i in [1, 2, 5, 7, 8, 9, 10, 13] {
        let err = tool_error(&answer, i);
        assert!(err.contains("tenant \\\"beta\\\"") || err.contains("tenant \"beta\""), "{i}: {err}");
    }
    assert!(tool_error(&answer, 3).starts_with("unknown agent `beta-host-1`"));
    assert!(tool_error(&answer, 4).starts_with("unknown metric `beta.secret`"));
    assert!(tool_error(&answer, 6).starts_with("no agent `beta-host-1` reports"));
    for i in [11, 12] {
        assert!(tool_error(&answer, i).contains(&format!("no alert rule {beta_rule}")), "{i}");
    }
    for i in 14..=18 {
        assert_eq!(answer["results"][i]["ok"], false, "{i}: {}", answer["results"][i]);
    }
    let own = structured(&answer, 19);
    let agents: Vec<&str> = own["series"].as_array().unwrap().iter().map(|s| s["agent_id"].as_str().unwrap()).collect();
    assert_eq!(agents, ["web-1", "web-2"]);
    // beta's rule is untouched.
    let rule = fleet.api.get(&fleet.beta, &format!("/api/v1/alert-rules/{beta_rule}")).await;
    assert_eq!((rule["critical"].as_f64(), rule["enabled"].as_bool()), (Some(1.0), Some(true)));

    // A read-only token sees no write tool and cannot call one.
    let rule = json!({"rule": {"name": "r", "metric_name": "cpu.usage_percent", "operator": ">", "critical": 1}});
    let answer = over_http(
        &fleet.url,
        &fleet.acme_reader,
        "auto",
        &json!([{"op": "list_tools"}, call("create_alert_rule", rule), call("pause_alert_rule", json!({"id": 1}))]),
    );
    assert_eq!(names(&ok(&answer, 0)["tools"], "name"), READ_TOOLS);
    for i in [1, 2] {
        let err = tool_error(&answer, i);
        assert!(err.contains("`alerts` scope"), "{err}");
    }
    assert_eq!(fleet.api.get(&fleet.acme, "/api/v1/alert-rules").await, json!([]));
    assert!(fleet.server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_tool_errors_and_the_server_carries_on() {
    let fleet = Fleet::start().await;
    let ops = json!([
        call("no_such_tool", json!({})),
        call("query_metric", json!({"metric": "cpu"})),
        call("query_metrics", json!({"metric": 42})),
        call("query_metrics", json!({})),
        call("query_metrics", json!({"metric": "cpu"})),
        call("query_metrics", json!({"metric": "cpu.usage_percent", "range": "100000d"})),
        call("query_metrics", json!({"metric": "cpu.usage_percent", "range": "last tuesday"})),
        call("query_metrics", json!({"metric": "cpu.usage_percent", "max_points": 1000000})),
        call("query_metrics", json!({"metric": "cpu.usage_percent", "range": -99999999999.0})),
        call("list_agents", json!({"status": 5})),
        call("list_agents", json!({"bogus": true})),
        call("get_alerts", json!({"state": "burning"})),
        call("create_alert_rule", json!({"rule": {"name": "x", "metric_name": "cpu.usage_percent", "operator": "~", "critical": 1}})),
        call("create_alert_rule", json!({"rule": {"name": "x", "metric_name": "cpu.usage_percent", "operator": ">"}})),
        {"op": "read_resource", "uri": "microdash://nothing"},
        {"op": "get_prompt", "name": "investigate_host", "args": {"agent_id": "web-9"}},
        call("get_health", json!({})),
    ]);
    let answer = over_http(&fleet.url, &fleet.acme, "auto", &ops);
    let expect = |i: usize, needle: &str| {
        let err = tool_error(&answer, i);
        assert!(err.contains(needle), "{i}: {err:?} lacks {needle:?}");
    };
    expect(0, "unknown tool `no_such_tool`");
    expect(1, "did you mean `query_metrics`?");
    expect(2, "expected a string");
    expect(3, "metric");
    expect(4, "unknown metric `cpu`; did you mean `cpu.usage_percent`?");
    expect(5, "at most 400 days");
    expect(6, "neither a duration");
    expect(7, "max_points must be from 1 to 1000");
    expect(8, "is not a time");
    expect(9, "expected a string");
    expect(10, "bogus");
    expect(11, "state `burning`");
    expect(12, "expected one of `>`");
    expect(13, "critical");
    assert_eq!(answer["results"][14]["ok"], false);
    let err = answer["results"][15]["error"].as_str().unwrap();
    assert!(err.contains("unknown agent `web-9`; did you mean `web-1`"), "{err}");
    assert_eq!(structured(&answer, 16)["status"], "ok");

    // Raw HTTP: no token, a token without read, a foreign Host or Origin.
    let http = &fleet.api.http;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let post = |token: Option<&str>| {
        let mut request =
            http.post(format!("{}/mcp", fleet.url)).header("Accept", "application/json, text/event-stream").json(&ping);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    };
    assert_eq!(post(None).send().await.unwrap().status(), 401);
    assert_eq!(post(Some("mdk_not_a_token")).send().await.unwrap().status(), 401);
    let ingest_only = token(&[("MICRODASH_DATABASE_URL", fleet.db_url.as_str())], Some("acme"), "ingest");
    assert_eq!(post(Some(&ingest_only)).send().await.unwrap().status(), 403);
    let evil_host = post(Some(&fleet.acme)).header("Host", "evil.example").send().await.unwrap();
    assert_eq!(evil_host.status(), 403);
    let evil_origin = post(Some(&fleet.acme)).header("Origin", "http://evil.example").send().await.unwrap();
    assert_eq!(evil_origin.status(), 403);
    let local_origin = post(Some(&fleet.acme)).header("Origin", "http://localhost:3000").send().await.unwrap();
    assert_eq!(local_origin.status(), 200);
    let huge = "x".repeat(2 << 20);
    let too_big =
        post(Some(&fleet.acme)).json(&json!({"jsonrpc": "2.0", "id": 1, "method": huge})).send().await.unwrap();
    assert_eq!(too_big.status(), 413);
    // Still serving.
    let answer = over_http(&fleet.url, &fleet.acme, "auto", &json!([call("list_agents", json!({}))]));
    assert_eq!(structured(&answer, 0)["total"], 2);
    assert!(fleet.server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_serves_the_same_tools_against_a_server_and_on_the_database() {
    let fleet = Fleet::start().await;
    let bin = env!("CARGO_BIN_EXE_microdash");
    let start = fleet.now_s - 3600;
    let ops = json!([
        {"op": "list_tools"},
        call("list_agents", json!({})),
        call("query_metrics", json!({"metric": "cpu.usage_percent", "range": start, "end": fleet.now_s})),
        call("list_tenants", json!({"tenant": "beta"})),
        call("list_agents", json!({"tenant": "beta"})),
        {"op": "read_resource", "uri": "microdash://series"},
    ]);
    let http = over_http(&fleet.url, &fleet.acme_reader, "auto", &ops);
    let remote =
        sdk(&["stdio", "auto", "--", bin, "mcp", "--url", &fleet.url, "--token", &fleet.acme_reader], &[], &ops);
    let local = sdk(
        &["stdio", "legacy", "--", bin, "mcp", "--database-url", &fleet.db_url, "--token", &fleet.acme_reader],
        &[],
        &ops,
    );
    assert_eq!(remote["protocol_version"], "2026-07-28");
    for answer in [&remote, &local] {
        assert_eq!(answer["server"], "microdash");
        assert_eq!(names(&ok(answer, 0)["tools"], "name"), READ_TOOLS);
        for i in [1, 2] {
            assert_eq!(structured(answer, i), structured(&http, i), "{i}");
        }
        assert_eq!(answer["results"][3]["ok"], true, "list_tenants takes no tenant: {}", answer["results"][3]);
        assert!(tool_error(answer, 4).contains("beta"));
        assert_eq!(ok(answer, 5), ok(&http, 5));
    }
    // Writes through stdio need mcp_allow_writes there too, and the alerts scope.
    let rule =
        json!({"rule": {"name": "via stdio", "metric_name": "cpu.usage_percent", "operator": ">", "critical": 90}});
    let ops = json!([call("create_alert_rule", rule)]);
    let denied = sdk(&["stdio", "auto", "--", bin, "mcp", "--url", &fleet.url, "--token", &fleet.acme], &[], &ops);
    assert!(tool_error(&denied, 0).contains("mcp_allow_writes"));
    let allowed = sdk(
        &["stdio", "auto", "--", bin, "mcp", "--url", &fleet.url, "--token", &fleet.acme],
        &[("MICRODASH_MCP_ALLOW_WRITES", "true")],
        &ops,
    );
    assert_eq!(structured(&allowed, 0)["rule"]["name"], "via stdio");
    // A wrong token is refused at start, with the reason.
    let out = Command::new(bin).args(["mcp", "--url", &fleet.url, "--token", "mdk_nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown or revoked token"), "{out:?}");
    assert!(fleet.server.terminate().success());
}

/// The MCP Inspector's command-line mode (installed by scripts/test-servers.sh).
fn inspector(args: &[&str]) -> Value {
    let bin = std::env::var_os("MICRODASH_TEST_MCP_INSPECTOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/test-servers/inspector/node_modules/.bin/mcp-inspector"));
    assert!(bin.exists(), "{} is missing: run scripts/test-servers.sh", bin.display());
    let out = Command::new(&bin).arg("--cli").args(args).env("MICRODASH_LOG_FILTER", "warn").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // It prints the result as JSON (and, for a tool error, an error line after it).
    let end = stdout.find("\n}\n").map_or(stdout.len(), |at| at + 2);
    serde_json::from_str(&stdout[..end])
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_inspector_cli_lists_and_calls_the_tools() {
    let fleet = Fleet::start().await;
    let url = format!("{}/mcp", fleet.url);
    let auth = format!("Authorization: Bearer {}", fleet.acme_reader);
    let http = ["--transport", "http", "--header", auth.as_str()];
    let listed = inspector(&[&[url.as_str()][..], &http[..], &["--method", "tools/list"][..]].concat());
    assert_eq!(names(&listed["tools"], "name"), READ_TOOLS);
    let called = inspector(
        &[&[url.as_str()][..], &http[..], &["--method", "tools/call", "--tool-name", "list_agents"][..]].concat(),
    );
    assert_eq!(called["structuredContent"]["agents"], fleet.api.get(&fleet.acme, "/api/v1/agents").await);
    let wrong = inspector(
        &[
            &[url.as_str()][..],
            &http[..],
            &["--method", "tools/call", "--tool-name", "query_metrics", "--tool-arg", "metric=cpu"][..],
        ]
        .concat(),
    );
    assert_eq!(wrong["isError"], true);
    assert!(wrong["content"][0]["text"].as_str().unwrap().contains("did you mean `cpu.usage_percent`?"));
    // And over stdio.
    let bin = env!("CARGO_BIN_EXE_microdash");
    let stdio = inspector(&[
        bin,
        "mcp",
        "--url",
        &fleet.url,
        "--token",
        &fleet.acme_reader,
        "--method",
        "tools/call",
        "--tool-name",
        "list_metrics",
    ]);
    assert_eq!(
        names(&stdio["structuredContent"]["metrics"], "metric_name"),
        ["cpu.usage_percent", "disk.used_percent"]
    );
    assert!(fleet.server.terminate().success());
}
