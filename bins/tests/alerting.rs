//! Alerting with the real binaries: a split deployment over MariaDB and Redis whose
//! evaluating worker is killed (another takes over, nothing is notified twice), and email
//! from the all-in-one server to a real SMTP server.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Proc, RawStream, eventually, free_addr, microdash, microdash_output};
use microdash_store::Backend;
use microdash_store::testing::{TestDb, unique_name};
use serde_json::{Value, json};

/// A webhook receiver of the test's own: every body it was sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// The tenant's token with the alerts scope, made with the CLI.
fn alerts_token(env: &[(&str, &str)], tenant: &str) -> String {
    microdash_output(&["tenant", "create", tenant], env);
    let out =
        microdash_output(&["token", "create", "--tenant", tenant, "--scopes", "ingest,read,alerts", "--json"], env);
    serde_json::from_str::<Value>(&out).unwrap()["token"].as_str().unwrap().to_owned()
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Value {
        let response =
            self.http.post(format!("{}{path}", self.url)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await.unwrap();
        response.json().await.unwrap()
    }

    async fn cpu(&self, value: f64) {
        self.post("/api/v1/metrics", json!({"metric_name": "cpu", "value": value, "agent_id": "web-1"})).await;
    }
}

fn http() -> reqwest::Client {
    microdash_client::Client::default_http().unwrap()
}

/// Whether the process serving ops endpoints at `addr` evaluates alerts now.
async fn leads(addr: &str) -> bool {
    leader_gauge(addr).await == Some(true)
}

/// Whether the worker at `addr` says it evaluates; `None` while it does not answer.
async fn leader_gauge(addr: &str) -> Option<bool> {
    let response = http().get(format!("http://{addr}/metrics")).send().await.ok()?;
    let text = response.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("microdash_alert_evaluator_leader ")).map(|v| v == "1")
}

fn worker(env: &[(&str, &str)], addr: &str) -> Proc {
    let mut env = env.to_vec();
    env.retain(|(k, _)| *k != "MICRODASH_LISTEN_ADDR");
    env.push(("MICRODASH_LISTEN_ADDR", addr));
    microdash(&["worker"], &env)
}

#[tokio::test(flavor = "multi_thread")]
async fn another_worker_takes_over_evaluation_and_nothing_is_notified_twice() {
    let db = TestDb::new(Backend::Mysql).await;
    let redis_url = std::env::var("MICRODASH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = unique_name("md_alerts");
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        ("MICRODASH_REDIS_URL", redis_url.as_str()),
        ("MICRODASH_REDIS_KEY_PREFIX", prefix.as_str()),
        ("MICRODASH_ALERT_TICK_MS", "200"),
        ("MICRODASH_ALERT_LEASE_TTL_S", "3"),
        ("MICRODASH_LISTEN_ADDR", "127.0.0.1:0"),
    ];
    let token = alerts_token(&env, "fleet");
    let server = microdash(&["server"], &env);
    let url = server.url();
    let (first_addr, second_addr) = (free_addr(), free_addr());
    let first = worker(&env, &first_addr);
    eventually(15, "the first worker to lead", || async { leads(&first_addr).await.then_some(()) }).await;
    let second = worker(&env, &second_addr);

    let api = Api { http: http(), url, token };
    let (hook, got) = receiver().await;
    let channel = api.post("/api/v1/channels", json!({"name": "hook", "kind": "webhook", "url": hook})).await;
    let rule =
        json!({"name": "cpu high", "metric_name": "cpu", "operator": ">", "critical": 90, "channels": [channel["id"]]});
    api.post("/api/v1/alert-rules", rule).await;
    // The leader re-reads rules on its next tick.
    tokio::time::sleep(Duration::from_millis(600)).await;

    // The API process's stream hears the evaluating worker's transitions through Redis.
    let mut stream = RawStream::open(&api.url, "/api/v1/stream/fleet", &api.token).await;
    stream.read_until("event: ready").await;
    let breached = Instant::now();
    api.cpu(95.0).await;
    stream.read_until("event: alert").await;
    stream.read_until("\"state\":\"firing\"").await;
    let count = || got.lock().unwrap().len();
    eventually(10, "the firing webhook", || async { (count() >= 1).then_some(()) }).await;
    println!("breach to webhook through Redis and MariaDB: {:?}", breached.elapsed());
    assert_eq!(got.lock().unwrap()[0]["status"], "firing");
    // The second worker answers (so its "not leading" is a real answer), and does not lead.
    let second_leads = eventually(10, "the second worker's metrics", || leader_gauge(&second_addr)).await;
    assert!(!second_leads, "two evaluators at once");

    first.kill_hard();
    let killed = Instant::now();
    eventually(15, "the second worker to take over", || async { leads(&second_addr).await.then_some(()) }).await;
    println!("takeover after SIGKILL: {:?}", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(15));
    // Still above the threshold: the new evaluator resumed the firing state and stays quiet.
    api.cpu(96.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(), 1, "notified again after the takeover: {:?}", got.lock().unwrap());
    let firing = api.get("/api/v1/alerts?state=firing").await;
    assert_eq!(firing.as_array().unwrap().len(), 1, "{firing}");

    api.cpu(40.0).await;
    eventually(10, "the resolved webhook", || async { (count() >= 2).then_some(()) }).await;
    assert_eq!(got.lock().unwrap()[1]["status"], "resolved");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(count(), 2, "{:?}", got.lock().unwrap());
    assert!(second.terminate().success());
    assert!(server.terminate().success());
}

/// aiosmtpd (installed by scripts/test-servers.sh) writing what it receives into `dir`.
fn smtp_sink(dir: &Path) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let python = std::env::var_os("MICRODASH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/test-servers/python/bin/python"));
    assert!(python.exists(), "{} is missing: run scripts/test-servers.sh", python.display());
    let mut child = std::process::Command::new(&python)
        .arg(workspace.join("microdash-alert/tests/smtp_sink.py"))
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| panic!("the SMTP sink printed {line:?}"));
    (child, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_emails_a_firing_alert_through_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let mail = tempfile::tempdir().unwrap();
    let (mut sink, port) = smtp_sink(mail.path());
    let database = format!("sqlite://{}/m.db", dir.path().display());
    let smtp = format!("smtp://127.0.0.1:{port}");
    let env = [
        ("MICRODASH_DATABASE_URL", database.as_str()),
        ("MICRODASH_SMTP_URL", smtp.as_str()),
        ("MICRODASH_SMTP_FROM", "microdash@example.com"),
        ("MICRODASH_ALERT_TICK_MS", "200"),
        ("MICRODASH_LISTEN_ADDR", "127.0.0.1:0"),
    ];
    let token = alerts_token(&env, "acme");
    let server = microdash(&["serve"], &env);
    let url = server.url();
    let api = Api { http: http(), url, token };
    let channel =
        api.post("/api/v1/channels", json!({"name": "oncall", "kind": "email", "to": ["oncall@example.com"]})).await;
    let rule =
        json!({"name": "cpu high", "metric_name": "cpu", "operator": ">", "critical": 90, "channels": [channel["id"]]});
    api.post("/api/v1/alert-rules", rule).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    api.cpu(99.0).await;

    let messages = eventually(10, "the email", || async {
        let files: Vec<PathBuf> = std::fs::read_dir(mail.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        (!files.is_empty()).then(|| {
            files
                .iter()
                .map(|p| serde_json::from_str::<Value>(&std::fs::read_to_string(p).unwrap()).unwrap())
                .collect::<Vec<_>>()
        })
    })
    .await;
    let text = messages[0].to_string();
    assert!(text.contains("oncall@example.com") && text.contains("cpu high"), "{text}");
    // The sink has the message before the server hears its answer and records the attempt.
    eventually(10, "the attempt recorded as sent", || async {
        let log = api.get("/api/v1/notifications").await;
        (log[0]["status"] == "sent").then_some(())
    })
    .await;
    assert!(server.terminate().success());
    let _ = sink.kill();
}
