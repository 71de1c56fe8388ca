//! Revocation across the processes of a split deployment, with the real binary over real
//! sockets: a token revoked through one API process, and a user deleted with the admin
//! command, end the streams, polls and MQTT connections another process holds within a
//! second. The recheck is set far beyond the bound, so what ends in time was ended by the
//! Redis bus.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{RawStream, eventually, microdash, microdash_output, scrape, sign_in_cookie};
use microdash_store::Backend;
use microdash_store::testing::{TestDb, unique_name};
use paho_mqtt as mqtt;

const WITHIN: Duration = Duration::from_secs(1);

/// Subscribers of the deployment's revocation channel.
async fn revocation_subscribers(redis_url: &str, prefix: &str) -> usize {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let counts: Vec<(String, usize)> =
        redis::cmd("PUBSUB").arg("NUMSUB").arg(format!("{prefix}:revocations")).query_async(&mut conn).await.unwrap();
    counts.first().map_or(0, |(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread")]
async fn revocations_reach_every_process_within_a_second() {
    let db = TestDb::new(Backend::Mysql).await;
    let redis_url = std::env::var("MICRODASH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = unique_name("md_revoke");
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        ("MICRODASH_REDIS_URL", redis_url.as_str()),
        ("MICRODASH_REDIS_KEY_PREFIX", prefix.as_str()),
        ("MICRODASH_LISTEN_ADDR", "127.0.0.1:0"),
        ("MICRODASH_CREDENTIAL_RECHECK_MS", "60000"),
    ];
    microdash_output(&["tenant", "create", "acme"], &env);
    let created: serde_json::Value =
        serde_json::from_str(&microdash_output(&["token", "create", "--tenant", "acme", "--json"], &env)).unwrap();
    let (token, token_id) = (created["token"].as_str().unwrap().to_owned(), created["id"].to_string());
    let admin: serde_json::Value =
        serde_json::from_str(&microdash_output(&["token", "create", "--admin", "--json"], &env)).unwrap();
    let admin = admin["token"].as_str().unwrap().to_owned();
    let password = "alice's password";
    let mut create_user = std::process::Command::new(env!("CARGO_BIN_EXE_microdash"));
    create_user.args(["user", "create", "alice", "--tenant", "acme", "--password-stdin"]).envs(env);
    let mut child = create_user.stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{password}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());

    // The all-in-one process holds the connections (with its MQTT endpoint); the API-only
    // process revokes.
    let holder = microdash(&["serve"], &env);
    let holder_url = holder.url();
    let mqtt_url = holder.line_with("MQTT endpoint").split_whitespace().nth(2).unwrap().to_owned();
    let revoker = microdash(&["server"], &env);
    let revoker_url = revoker.url();

    let http = microdash_client::Client::default_http().unwrap();
    let cookie = sign_in_cookie(&holder_url, "alice", password).await;

    let mut stream = RawStream::open(&holder_url, "/api/v1/stream/acme", &token).await;
    stream.read_until("event: ready").await;
    let mut by_cookie = RawStream::open_with(&holder_url, "/api/v1/stream/acme", &format!("Cookie: {cookie}")).await;
    by_cookie.read_until("event: ready").await;
    let client = mqtt::CreateOptionsBuilder::new()
        .server_uri(&mqtt_url)
        .client_id(unique_name("md_revoked"))
        .persistence(mqtt::PersistenceType::None)
        .create_client()
        .unwrap();
    let login = microdash_core::mqtt::token_username(&token);
    client
        .connect(mqtt::ConnectOptionsBuilder::new_v5().user_name(login).password(token.as_str()).finalize())
        .await
        .unwrap();
    let poll = http.get(format!("{holder_url}/api/v1/stream/acme/latest?wait_ms=20000")).bearer_auth(&token).send();
    let poll = tokio::spawn(async move {
        let status = poll.await.unwrap().status();
        (status, Instant::now())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while revocation_subscribers(&redis_url, &prefix).await < 2 {
        assert!(Instant::now() < deadline, "the servers never followed the revocation channel");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two streams, the MQTT connection and the waiting poll.
    eventually(10, "the poll to wait", || async {
        (scrape(&holder_url, "microdash_connections_held").await == 4.0).then_some(())
    })
    .await;
    let started = Instant::now();
    let revoked =
        http.delete(format!("{revoker_url}/api/v1/tokens/{token_id}")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    let deadline = started + WITHIN;
    stream.ended_by(deadline).await;
    let (status, answered_at) = poll.await.unwrap();
    assert_eq!(status, 401);
    assert!(answered_at < deadline, "the poll outlived the revocation by {:?}", answered_at - started);
    while client.is_connected() {
        assert!(Instant::now() < deadline, "the MQTT connection outlived the revocation by more than a second");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    microdash_ingest::mqtt::release(client).await;

    // The admin command deletes a user in the database and announces it on Redis.
    microdash_output(&["user", "delete", "alice"], &env);
    by_cookie.ended_by(Instant::now() + WITHIN).await;
}
