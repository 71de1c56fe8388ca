//! Secrets stay secret: the real server, logging at `debug`, is driven through everything
//! that handles a token, a password or a channel secret, and then its log is searched for
//! each of them; `microdash config` hides the passwords it was given.
#![allow(clippy::unwrap_used)]

mod common;

use common::{eventually, microdash_logging, microdash_output};
use microdash_client::{Client, MetricIn};
use microdash_store::Backend;
use microdash_store::testing::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn no_token_password_or_secret_reaches_the_log() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        ("MICRODASH_LOG_FILTER", "debug"),
        ("MICRODASH_ALERT_TICK_MS", "100"),
        ("MICRODASH_NOTIFICATION_TIMEOUT_MS", "1000"),
    ];
    let server = microdash_logging(&["serve", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();

    microdash_output(&["tenant", "create", "acme"], &env);
    let token: serde_json::Value = serde_json::from_str(&microdash_output(
        &["token", "create", "--tenant", "acme", "--scopes", "ingest,read,alerts", "--json"],
        &env,
    ))
    .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let created = microdash_output(&["user", "create", "alice", "--tenant", "acme"], &env);
    let password = created.lines().find_map(|l| l.strip_prefix("password: ")).unwrap().trim().to_owned();

    let client = Client::new(&url, &token).unwrap();
    client.push(&[MetricIn::new("cpu", 1.0).agent("web-1")]).await.unwrap();
    let http = Client::default_http().unwrap();
    let sign_in = |username: &str, password: &str| {
        http.post(format!("{url}/api/v1/session"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
    };
    // A wrong password, a forged log line in the username, then the right password.
    let wrong = "wrong-pass-Xq81";
    assert_eq!(sign_in("alice", wrong).await.unwrap().status(), 401);
    let forged = "mallory\n2026-12-01T00:00:00Z  INFO forged: admin signed in\u{1b}[2J";
    assert_eq!(sign_in(forged, wrong).await.unwrap().status(), 401);
    assert_eq!(sign_in(&"x".repeat(100_000), wrong).await.unwrap().status(), 401);
    let signed_in = sign_in("alice", &password).await.unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let session = cookie.split_once('=').unwrap().1.to_owned();
    let me = http.get(format!("{url}/api/v1/session")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(me.status(), 200);

    // A channel with a secret, and a test notification signed with it.
    let channel_secret = "hook-secret-7Hq2";
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", receiver.local_addr().unwrap());
    let channel: serde_json::Value = http
        .post(format!("{url}/api/v1/channels"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "ops", "kind": "webhook", "url": hook, "secret": channel_secret}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let test = format!("{url}/api/v1/channels/{}/test", channel["id"]);
    assert_eq!(http.post(test).bearer_auth(&token).send().await.unwrap().status(), 202);
    // The receiver never answers: the attempt times out, and is logged as not delivered.
    let (_held, _) = receiver.accept().await.unwrap();
    // A bad token, too.
    let bad = http.get(format!("{url}/api/v1/metrics")).bearer_auth("mdk_not-a-real-token-Zk3").send().await.unwrap();
    assert_eq!(bad.status(), 401);
    eventually(5, "the failed sign-ins in the log", || async {
        let log = server.log();
        (log.matches("failed sign-in").count() >= 3).then_some(())
    })
    .await;
    let log = server.log();
    assert!(server.terminate().success());

    for secret in [token.as_str(), &password, wrong, session.as_str(), channel_secret, "not-a-real-token-Zk3"] {
        assert!(!log.contains(secret), "{secret:?} was logged:\n{log}");
    }
    // User-supplied text is escaped and cut: no forged line, no terminal escape, no 100 KB line.
    assert!(!log.lines().any(|l| l.contains("forged: admin") && !l.contains("failed sign-in")), "{log}");
    assert!(!log.contains('\u{1b}'), "an escape sequence reached the log");
    assert!(log.lines().all(|l| l.len() < 2_000), "a line of {} bytes", log.lines().map(str::len).max().unwrap());
}

#[test]
fn the_configuration_dump_hides_passwords() {
    let out = microdash_output(
        &["config"],
        &[
            ("MICRODASH_DATABASE_URL", "mysql://root:db-pass-31@db.internal:3306/microdash"),
            ("MICRODASH_REDIS_URL", "redis://:redis-pass-32@cache:6379/0"),
            ("MICRODASH_MQTT_URL", "tcp://bridge:mqtt-url-pass-33@broker:1883"),
            ("MICRODASH_MQTT_PASSWORD", "mqtt-pass-34"),
            ("MICRODASH_SMTP_URL", "smtp://mailer:smtp-pass-35@mail:587?tls=required"),
        ],
    );
    for secret in ["db-pass-31", "redis-pass-32", "mqtt-url-pass-33", "mqtt-pass-34", "smtp-pass-35"] {
        assert!(!out.contains(secret), "{secret} shown:\n{out}");
    }
    let config: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(config["database_url"], "mysql://root:***@db.internal:3306/microdash");
    assert_eq!(config["redis_url"], "redis://:***@cache:6379/0");
    assert_eq!(config["mqtt_password"], "***");
    assert_eq!(config["smtp_url"], "smtp://mailer:***@mail:587?tls=required");
}

/// A server that cannot reach its database or Redis says which URL it tried, without the
/// password in it.
#[test]
fn start_up_errors_name_the_url_without_its_password() {
    let db = tempfile::tempdir().unwrap();
    let sqlite = db.path().join("md.db");
    let sqlite = sqlite.to_str().unwrap();
    let cases = [
        ("MICRODASH_DATABASE_URL", "mysql://alice:db-pass-41@127.0.0.1:1/microdash", "alice:***@127.0.0.1:1"),
        ("MICRODASH_DATABASE_URL", "postgres://bob:db-pass-42@127.0.0.1:1/microdash", "bob:***@127.0.0.1:1"),
        ("MICRODASH_REDIS_URL", "redis://:redis-pass-43@127.0.0.1:1/", "redis://:***@127.0.0.1:1"),
    ];
    for (var, url, shown) in cases {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_microdash"));
        cmd.args(["serve", "--listen-addr", "127.0.0.1:0"])
            .env("MICRODASH_LOG_FILTER", "debug")
            .env("MICRODASH_MQTT_LISTEN_ADDR", "off")
            .env("MICRODASH_DATABASE_URL", sqlite)
            .env(var, url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{var}={url}: the server neither started nor gave up within 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{var}={url}: started");
        let log = String::from_utf8_lossy(&out.stderr);
        let password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
        assert!(!log.contains(password), "{var}: {password} in\n{log}");
        assert!(log.contains(shown), "{var}: the error does not name {shown}:\n{log}");
    }
}
