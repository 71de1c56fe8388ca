//! Delivery against real servers: a webhook receiver of the test's own (axum on a free port)
//! that answers as each case needs, and aiosmtpd, a real SMTP server
//! (`tests/smtp_sink.py`, installed by `scripts/test-servers.sh`), that writes what it
//! accepts to a directory. A missing server fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{KeyInit, Mac};
use microdash_alert::deliver::destination::Destinations;
use microdash_alert::deliver::{
    Attempt, Deliverer, DeliveryConfig, DeliveryError, EMAIL_NOT_CONFIGURED, Outcome, SIGNATURE_HEADER, SmtpConfig,
};
use microdash_alert::payload::{Alert, alertmanager_body, email, microdash_body};
use microdash_alert::{InstanceKey, Message, Notify};
use microdash_core::alert::{AlertRule, Channel, NamedChannel};
use microdash_core::api::alert::{AlertRuleIn, NotificationKind, Operator, Severity, WebhookFormat};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// How long a test waits for a server to start or a message to arrive.
const DEADLINE: Duration = Duration::from_secs(20);

// ---- what is sent -------------------------------------------------------------------------

fn rule() -> AlertRule {
    AlertRuleIn {
        name: Some("cpu high".into()),
        metric_name: Some("cpu.usage".into()),
        operator: Some(Operator::Gt),
        critical: Some(90.0),
        warning: Some(80.0),
        ..AlertRuleIn::default()
    }
    .validate()
    .unwrap()
}

fn instance() -> InstanceKey {
    InstanceKey { agent_id: Some("web-1".into()), tags: BTreeMap::from([("core".into(), "all".into())]) }
}

fn firing() -> Notify {
    Notify {
        kind: NotificationKind::Firing,
        severity: Severity::Critical,
        value: Some(95.5),
        started_at_ms: 1_700_000_000_000,
        ended_at_ms: None,
    }
}

fn alert<'a>(rule: &'a AlertRule, instance: &'a InstanceKey, notify: &'a Notify) -> Alert<'a> {
    Alert { tenant: "acme", rule_id: 7, rule, instance, notify, external_url: "https://dash.example.com" }
}

fn webhook(url: String, secret: Option<&str>) -> Channel {
    Channel::Webhook { url, secret: secret.map(str::to_owned), format: WebhookFormat::Microdash }
}

fn deliverer(timeout: Duration) -> Deliverer {
    Deliverer::new(DeliveryConfig { timeout, ..DeliveryConfig::default() }).unwrap()
}

fn json_message(body: &str) -> Message {
    Message::Webhook { body: body.to_owned() }
}

// ---- the webhook receiver -----------------------------------------------------------------

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn received(&self, path: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }
}

/// Start the receiver on a free port; its base URL. Each path answers one way:
/// `/ok` 200, `/flaky` 500 twice then 200, `/busy` 429 with `Retry-After: 3`, `/down` 503
/// with `Retry-After: 7200`, `/bad` 400 with a reason, `/moved` 301, `/hang` never.
async fn start_receiver() -> (String, Receiver) {
    async fn record(
        State(receiver): State<Receiver>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let path = uri.path().to_owned();
        let seen = {
            let mut received = receiver.received.lock().unwrap();
            received.push(Received { path: path.clone(), headers, body });
            received.iter().filter(|r| r.path == path).count()
        };
        match path.as_str() {
            "/ok" => StatusCode::OK.into_response(),
            "/flaky" if seen <= 2 => (StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response(),
            "/flaky" => StatusCode::NO_CONTENT.into_response(),
            "/busy" => (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "3")], "slow down").into_response(),
            "/down" => (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "7200")]).into_response(),
            "/bad" => (StatusCode::BAD_REQUEST, "unknown field \"kind\"\nat line 1").into_response(),
            "/moved" => {
                (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "https://elsewhere.example/hook")]).into_response()
            }
            "/hang" => std::future::pending().await,
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let receiver = Receiver::default();
    let app = Router::new().route("/{*path}", post(record)).with_state(receiver.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), receiver)
}

/// An address nothing listens on: bound, then released.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

fn hex_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

// ---- webhook tests ------------------------------------------------------------------------

#[tokio::test]
async fn webhooks_post_the_exact_body_signed_with_the_secret() {
    let (base, receiver) = start_receiver().await;
    let deliverer = deliverer(Duration::from_secs(5));
    let (rule, instance, notify) = (rule(), instance(), firing());
    let alert = alert(&rule, &instance, &notify);

    let channel = NamedChannel { name: "ops-hook".into(), channel: webhook(format!("{base}/ok"), Some("s3cret")) };
    let message = Message::for_channel(&channel, &alert);
    let Message::Webhook { body } = &message else { panic!("a webhook channel gets a webhook body: {message:?}") };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(body).unwrap(),
        serde_json::to_value(microdash_body(&alert)).unwrap()
    );

    let attempt = deliverer.send(&channel.channel, &message).await;
    assert_eq!(attempt, Attempt { outcome: Outcome::Sent, http_status: Some(200), error: None, retry_after: None });
    let received = receiver.received("/ok");
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.body, body.as_bytes(), "the body arrives byte for byte");
    assert_eq!(request.headers[header::CONTENT_TYPE], "application/json");
    assert!(request.headers[header::USER_AGENT].to_str().unwrap().starts_with("microdash/"));
    let signature = request.headers[SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(signature, format!("sha256={}", hex_hmac("s3cret", &request.body)));
    assert_ne!(signature, format!("sha256={}", hex_hmac("other", &request.body)));

    // Alertmanager's format, no secret: no signature; bytes that are not serde_json's own
    // output (spacing, key order) are still sent as they are.
    let channel = NamedChannel {
        name: "prom".into(),
        channel: Channel::Webhook { url: format!("{base}/ok"), secret: None, format: WebhookFormat::Alertmanager },
    };
    let message = Message::for_channel(&channel, &alert);
    let Message::Webhook { body } = &message else { panic!("{message:?}") };
    let expected = serde_json::to_value(alertmanager_body(&alert, "prom")).unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(body).unwrap(), expected);
    assert_eq!(deliverer.send(&channel.channel, &message).await.outcome, Outcome::Sent);
    let spaced = "{ \"b\": 1,\n  \"a\": \"é\" }";
    assert_eq!(deliverer.send(&channel.channel, &json_message(spaced)).await.outcome, Outcome::Sent);
    let received = receiver.received("/ok");
    assert_eq!(received.len(), 3);
    assert_eq!(received[1].body, body.as_bytes());
    assert_eq!(received[2].body, spaced.as_bytes());
    assert!(received[1].headers.get(SIGNATURE_HEADER).is_none());
}

#[tokio::test]
async fn server_errors_are_retried_until_the_receiver_recovers() {
    let (base, receiver) = start_receiver().await;
    let deliverer = deliverer(Duration::from_secs(5));
    let channel = webhook(format!("{base}/flaky"), None);
    let message = json_message(r#"{"status":"firing"}"#);
    let mut attempts = Vec::new();
    for _ in 0..3 {
        attempts.push(deliverer.send(&channel, &message).await);
    }
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.outcome, a.http_status)).collect();
    assert_eq!(outcomes, [(Outcome::Retry, Some(500)), (Outcome::Retry, Some(500)), (Outcome::Sent, Some(204))]);
    assert_eq!(attempts[0].error.as_deref(), Some("HTTP 500 Internal Server Error: database is down"));
    assert!(attempts[0].retry_in(1).is_some());
    assert_eq!(receiver.received("/flaky").len(), 3);
}

#[tokio::test]
async fn rate_limits_are_retried_after_what_the_receiver_asks() {
    let (base, _receiver) = start_receiver().await;
    let deliverer = deliverer(Duration::from_secs(5));
    let message = json_message("{}");
    let attempt = deliverer.send(&webhook(format!("{base}/busy"), None), &message).await;
    assert_eq!(
        attempt,
        Attempt {
            outcome: Outcome::Retry,
            http_status: Some(429),
            error: Some("HTTP 429 Too Many Requests: slow down".into()),
            retry_after: Some(Duration::from_secs(3)),
        }
    );
    assert_eq!(attempt.retry_in(1), Some(Duration::from_secs(3)));
    // A 503's Retry-After counts too, up to an hour.
    let attempt = deliverer.send(&webhook(format!("{base}/down"), None), &message).await;
    assert_eq!((attempt.outcome, attempt.http_status), (Outcome::Retry, Some(503)));
    assert_eq!(attempt.retry_after, Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn client_errors_and_redirects_fail_at_once() {
    let (base, receiver) = start_receiver().await;
    let deliverer = deliverer(Duration::from_secs(5));
    let message = json_message("{}");
    let attempt = deliverer.send(&webhook(format!("{base}/bad"), None), &message).await;
    assert_eq!(
        attempt,
        Attempt {
            outcome: Outcome::Failed,
            http_status: Some(400),
            error: Some("HTTP 400 Bad Request: unknown field \"kind\" at line 1".into()),
            retry_after: None,
        }
    );
    assert_eq!(attempt.retry_in(1), None);
    let attempt = deliverer.send(&webhook(format!("{base}/moved"), None), &message).await;
    assert_eq!((attempt.outcome, attempt.http_status), (Outcome::Failed, Some(301)));
    let error = attempt.error.unwrap();
    assert!(error.contains("redirects to https://elsewhere.example/hook") && error.contains("not followed"), "{error}");
    assert_eq!(receiver.received("/moved").len(), 1, "the redirect was not followed");
    let attempt = deliverer.send(&webhook(format!("{base}/missing"), None), &message).await;
    assert_eq!((attempt.outcome, attempt.http_status), (Outcome::Failed, Some(404)));
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_and_is_retried() {
    let (base, receiver) = start_receiver().await;
    let timeout = Duration::from_millis(300);
    let deliverer = deliverer(timeout);
    let started = Instant::now();
    let attempt = deliverer.send(&webhook(format!("{base}/hang"), None), &json_message("{}")).await;
    let took = started.elapsed();
    assert_eq!(
        attempt,
        Attempt {
            outcome: Outcome::Retry,
            http_status: None,
            error: Some("timed out after 300ms".into()),
            retry_after: None
        }
    );
    assert!(took >= timeout && took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(receiver.received("/hang").len(), 1, "the request did reach the receiver");
}

#[tokio::test]
async fn refused_connections_are_retried_without_the_url() {
    let deliverer = deliverer(Duration::from_secs(5));
    let url = closed_port().await.replace("/hook", "/hook/t0k3n");
    let attempt = deliverer.send(&webhook(url, None), &json_message("{}")).await;
    assert_eq!((attempt.outcome, attempt.http_status, attempt.retry_after), (Outcome::Retry, None, None));
    let error = attempt.error.unwrap();
    assert!(error.starts_with("connection failed: "), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
    assert!(!error.contains("t0k3n"), "the URL (which may hold a token) is left out: {error}");
}

/// Webhooks reach only the addresses `webhook_destinations` allows, whether the URL names
/// the address or a host that resolves to it; a refusal fails at once (it is the channel to
/// fix) and nothing reaches the receiver.
#[tokio::test]
async fn webhooks_reach_only_allowed_destinations() {
    let (base, receiver) = start_receiver().await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let with = |destinations| {
        Deliverer::new(DeliveryConfig { timeout: Duration::from_secs(5), destinations, ..DeliveryConfig::default() })
            .unwrap()
    };
    let message = json_message("{}");
    let send = async |deliverer: &Deliverer, url: String| deliverer.send(&webhook(url, None), &message).await;

    // The default lets a receiver on this host through, by address and by name.
    let private = with(Destinations::Private);
    assert_eq!(send(&private, format!("{base}/ok")).await.outcome, Outcome::Sent);
    assert_eq!(send(&private, format!("http://localhost:{port}/ok")).await.outcome, Outcome::Sent);
    // Not the metadata service's link-local address.
    let attempt = send(&private, "http://169.254.169.254/latest/meta-data/".into()).await;
    assert_eq!(attempt.outcome, Outcome::Failed, "{attempt:?}");
    assert!(attempt.error.as_deref().unwrap().contains("webhook_destinations = private"), "{attempt:?}");

    // `public` refuses this host, by address and by a name resolving to it.
    let public = with(Destinations::Public);
    for url in [format!("{base}/ok"), format!("http://localhost:{port}/ok"), format!("http://[::1]:{port}/ok")] {
        let attempt = send(&public, url.clone()).await;
        assert_eq!(attempt.outcome, Outcome::Failed, "{url}: {attempt:?}");
        assert!(attempt.error.as_deref().unwrap().contains("webhook_destinations = public"), "{url}: {attempt:?}");
    }
    assert_eq!(receiver.received("/ok").len(), 2, "only the allowed sends arrived");
    assert_eq!(send(&with(Destinations::Any), format!("{base}/ok")).await.outcome, Outcome::Sent);
}

#[tokio::test]
async fn tls_works_without_a_process_wide_crypto_provider() {
    // https to a plain HTTP port: the TLS handshake runs (on the deliverer's own ring
    // provider) and fails; nothing panics and nothing was installed for the process.
    let (base, _receiver) = start_receiver().await;
    let deliverer = deliverer(Duration::from_secs(5));
    let url = base.replace("http://", "https://") + "/ok";
    let attempt = deliverer.send(&webhook(url, None), &json_message("{}")).await;
    assert_eq!((attempt.outcome, attempt.http_status), (Outcome::Retry, None));
    assert!(attempt.error.as_deref().unwrap().starts_with("connection failed: "), "{attempt:?}");

    let smtps = Deliverer::new(DeliveryConfig {
        timeout: Duration::from_secs(5),
        smtp: Some(SmtpConfig {
            url: format!("smtps://{}", base.trim_start_matches("http://")),
            from: "a@localhost".into(),
        }),
        ..DeliveryConfig::default()
    })
    .unwrap();
    let message = Message::Email { subject: "s".into(), body: "b".into() };
    let attempt = smtps.send(&Channel::Email { to: vec!["ops@localhost".into()] }, &message).await;
    assert_eq!(attempt.outcome, Outcome::Retry, "{attempt:?}");
    assert!(rustls::crypto::CryptoProvider::get_default().is_none(), "no process-wide provider was installed");
}

// ---- email --------------------------------------------------------------------------------

/// aiosmtpd, started for one test and stopped when dropped (its standard input closes too,
/// which ends it should this process die first).
struct SmtpServer {
    port: u16,
    dir: tempfile::TempDir,
    _child: Child,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let python = std::env::var_os("MICRODASH_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target/test-servers/python/bin/python"));
        assert!(
            python.exists(),
            "{} does not exist: run scripts/test-servers.sh to install aiosmtpd for the email tests",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py"))
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", python.display()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let read = tokio::time::timeout(DEADLINE, stdout.read_line(&mut line)).await;
        let port = match read {
            Ok(Ok(_)) => line.trim().parse().ok(),
            _ => None,
        };
        let Some(port) = port else {
            panic!("aiosmtpd did not start within {DEADLINE:?} (printed {line:?}; its errors are above)")
        };
        SmtpServer { port, dir, _child: child }
    }

    fn deliverer(&self) -> Deliverer {
        Deliverer::new(DeliveryConfig {
            timeout: Duration::from_secs(5),
            smtp: Some(SmtpConfig {
                url: format!("smtp://127.0.0.1:{}", self.port),
                from: "Microdash <microdash@localhost>".into(),
            }),
            ..DeliveryConfig::default()
        })
        .unwrap()
    }

    /// The messages received so far, in no particular order.
    fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
            .collect()
    }

    /// Wait until `count` messages have arrived.
    async fn wait_for(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(Instant::now() < deadline, "{} of {count} messages arrived within {DEADLINE:?}", received.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The body received. lettre ends DATA with `CRLF . CRLF` after the body even when the body
/// ends with a line break, so the receiver sees one line break more than was sent.
fn body_of(message: &serde_json::Value) -> &str {
    let body = message["body"].as_str().unwrap();
    body.strip_suffix('\n').unwrap_or(body)
}

#[tokio::test]
async fn emails_reach_a_real_smtp_server_with_subject_recipients_and_body() {
    let server = SmtpServer::start().await;
    let deliverer = server.deliverer();
    let (rule, instance, notify) = (rule(), instance(), firing());
    let alert = alert(&rule, &instance, &notify);
    let channel = NamedChannel {
        name: "ops mail".into(),
        channel: Channel::Email { to: vec!["ops@example.com".into(), "Oncall <oncall@example.com>".into()] },
    };
    let message = Message::for_channel(&channel, &alert);
    let expected = email(&alert);
    assert_eq!(message, Message::Email { subject: expected.subject.clone(), body: expected.body.clone() });

    let attempt = deliverer.send(&channel.channel, &message).await;
    assert_eq!(attempt, Attempt { outcome: Outcome::Sent, http_status: None, error: None, retry_after: None });
    let received = server.wait_for(1).await;
    let got = &received[0];
    assert_eq!(got["mail_from"], "microdash@localhost");
    assert_eq!(got["rcpt_tos"], serde_json::json!(["ops@example.com", "oncall@example.com"]));
    assert_eq!(got["from"], "Microdash <microdash@localhost>");
    assert_eq!(got["to"], serde_json::json!(["ops@example.com", "Oncall <oncall@example.com>"]));
    assert_eq!(got["subject"], expected.subject);
    assert_eq!(got["content_type"], "text/plain");
    assert_eq!(got["charset"], "utf-8");
    assert_eq!(body_of(got), expected.body);

    // Beyond ASCII, through the same pooled transport.
    let utf8 = Message::Email {
        subject: "Température élevée — 95 °C".into(),
        body: "Capteur « salle 2 » : 95 °C\n".into(),
    };
    assert_eq!(deliverer.send(&channel.channel, &utf8).await.outcome, Outcome::Sent);
    let received = server.wait_for(2).await;
    let got = received.iter().find(|m| m["subject"] != expected.subject).unwrap();
    assert_eq!(got["subject"], "Température élevée — 95 °C");
    assert_eq!(body_of(got), "Capteur « salle 2 » : 95 °C\n");
}

#[tokio::test]
async fn smtp_refusals_fail_when_permanent_and_retry_when_transient() {
    let server = SmtpServer::start().await;
    let deliverer = server.deliverer();
    let message = Message::Email { subject: "s".into(), body: "b".into() };
    let attempt = deliverer.send(&Channel::Email { to: vec!["refuse-permanent@example.com".into()] }, &message).await;
    assert_eq!(attempt.outcome, Outcome::Failed, "{attempt:?}");
    assert!(attempt.error.as_deref().unwrap().contains("550"), "{attempt:?}");
    let attempt = deliverer.send(&Channel::Email { to: vec!["refuse-transient@example.com".into()] }, &message).await;
    assert_eq!(attempt.outcome, Outcome::Retry, "{attempt:?}");
    assert!(attempt.error.as_deref().unwrap().contains("451"), "{attempt:?}");
    // The pooled connection is still good for the next message.
    let attempt = deliverer.send(&Channel::Email { to: vec!["ops@example.com".into()] }, &message).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    assert_eq!(server.wait_for(1).await.len(), 1);
    // A recipient that is no address fails without being sent.
    let attempt = deliverer.send(&Channel::Email { to: vec!["not an address".into()] }, &message).await;
    assert_eq!(attempt.outcome, Outcome::Failed, "{attempt:?}");
}

#[tokio::test]
async fn an_smtp_server_that_is_down_is_retried() {
    let url = closed_port().await.replace("http://", "smtp://").replace("/hook", "");
    let deliverer = Deliverer::new(DeliveryConfig {
        timeout: Duration::from_secs(5),
        smtp: Some(SmtpConfig { url, from: "microdash@localhost".into() }),
        ..DeliveryConfig::default()
    })
    .unwrap();
    let message = Message::Email { subject: "s".into(), body: "b".into() };
    let attempt = deliverer.send(&Channel::Email { to: vec!["ops@example.com".into()] }, &message).await;
    assert_eq!(attempt.outcome, Outcome::Retry, "{attempt:?}");
}

#[tokio::test]
async fn email_without_smtp_fails_with_what_to_set() {
    let attempt = deliverer(Duration::from_secs(1))
        .send(
            &Channel::Email { to: vec!["ops@example.com".into()] },
            &Message::Email { subject: "s".into(), body: "b".into() },
        )
        .await;
    assert_eq!((attempt.outcome, attempt.error.as_deref()), (Outcome::Failed, Some(EMAIL_NOT_CONFIGURED)));
}

#[tokio::test]
async fn bad_smtp_settings_are_construction_errors() {
    fn check(url: &str, from: &str) -> DeliveryError {
        let config = DeliveryConfig {
            smtp: Some(SmtpConfig { url: url.into(), from: from.into() }),
            ..DeliveryConfig::default()
        };
        Deliverer::new(config).unwrap_err()
    }
    assert!(matches!(check("http://mail.example.com", "a@b.c"), DeliveryError::SmtpUrl(_)));
    assert!(matches!(check("not a url", "a@b.c"), DeliveryError::SmtpUrl(_)));
    let err = check("smtp://user:hunter2@mail.example.com?tls=sometimes", "a@b.c");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(matches!(check("smtp://localhost:25", "nobody"), DeliveryError::SmtpFrom { .. }));
}
