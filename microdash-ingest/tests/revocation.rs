//! Revocation ends what a credential holds open (live streams, long polls, MQTT
//! connections) within a second: in one process through the in-process bus, across
//! processes through Redis, and by the periodic recheck when nobody announced it. Each bound
//! is measured from just before the revocation against a deadline.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{App, Reply, SseReader};
use microdash_core::mqtt::token_username;
use microdash_ingest::queue::{Queue, RedisQueue, RedisQueueConfig};
use microdash_ingest::revocation::RevocationConfig;
use microdash_store::testing::{TestDb, unique_name};
use microdash_store::{Backend, Store};
use paho_mqtt as mqtt;

/// The bound every revocation must meet.
const WITHIN: Duration = Duration::from_secs(1);
/// How long set-up steps may take.
const SETUP: Duration = Duration::from_secs(10);

/// A recheck too slow to matter: what ends in time was ended by the bus.
fn bus_only() -> RevocationConfig {
    RevocationConfig { recheck_interval: Duration::from_secs(600) }
}

/// Wait until `condition` holds, failing after `wait`.
async fn until(what: &str, wait: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An MQTT 5 client signed in with `token`.
async fn mqtt_client(url: &str, token: &str) -> mqtt::AsyncClient {
    let client = mqtt::CreateOptionsBuilder::new()
        .server_uri(url)
        .client_id(unique_name("md_revoked"))
        .persistence(mqtt::PersistenceType::None)
        .create_client()
        .unwrap();
    let options = mqtt::ConnectOptionsBuilder::new_v5().user_name(token_username(token)).password(token).finalize();
    client.connect(options).await.unwrap();
    client
}

/// Wait until the server has disconnected `client`, failing at `deadline`.
async fn disconnected_by(client: mqtt::AsyncClient, deadline: Instant) {
    while client.is_connected() {
        assert!(Instant::now() < deadline, "the MQTT connection outlived the revocation by more than a second");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    microdash_ingest::mqtt::release(client).await;
}

/// Wait until `stream` has ended, failing at `deadline`.
async fn ended_by(mut stream: SseReader, deadline: Instant) {
    stream.ended(deadline.saturating_duration_since(Instant::now())).await;
}

/// Run `revoke` (which returns when it began) while `poll` waits, and check that the poll
/// was answered `401` within a second of it. Returns the deadline for the rest.
async fn poll_ended_by(poll: impl Future<Output = Reply>, revoke: impl Future<Output = Instant>) -> Instant {
    let timed = async {
        let reply = poll.await;
        (reply, Instant::now())
    };
    let ((poll, polled_at), started) = tokio::join!(timed, revoke);
    let deadline = started + WITHIN;
    assert_eq!(poll.status, StatusCode::UNAUTHORIZED, "{}", poll.text);
    assert!(polled_at < deadline, "the poll outlived the revocation by {:?}", polled_at - started);
    deadline
}

/// Revoke token `id` through `app`'s API; returns when the request began.
async fn revoke_over_http(app: &App, id: i64, admin: &str) -> Instant {
    let started = Instant::now();
    let revoked = app.call("DELETE", &format!("/api/v1/tokens/{id}"), Some(admin), None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    started
}

/// Acme's stream opened on `app` with `header: value` as its credential, once its opening
/// event has arrived.
async fn ready_stream(app: &App, header: &str, value: &str) -> SseReader {
    let req = Request::get("/api/v1/stream/acme").header(header, value).body(Body::empty()).unwrap();
    let (status, stream) = app.open_stream_request(req).await;
    assert_eq!(status, StatusCode::OK);
    let mut stream = stream.unwrap();
    stream.next_event(SETUP).await;
    stream
}

/// [`ready_stream`] with a bearer token.
async fn token_stream(app: &App, token: &str) -> SseReader {
    ready_stream(app, "authorization", &format!("Bearer {token}")).await
}

/// [`ready_stream`] with a session cookie.
async fn cookie_stream(app: &App, cookie: &str) -> SseReader {
    ready_stream(app, "cookie", cookie).await
}

fn token_id(tokens: &[microdash_store::TokenInfo], name: &str) -> i64 {
    tokens.iter().find(|t| t.name == name).unwrap().id
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_token_ends_its_stream_poll_and_mqtt_connection_within_a_second() {
    let app = App::start_on(Backend::Sqlite, common::test_http(), bus_only()).await;
    let admin = app.admin_token().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let (_, kept_token) =
        app.store.create_token(Some(acme.id), "ingest,read".parse().unwrap(), "kept", 0).await.unwrap();
    let url = app.mqtt_endpoint().await;

    let stream = token_stream(&app, &acme.token).await;
    let mut kept = token_stream(&app, &kept_token).await;
    let client = mqtt_client(&url, &acme.token).await;
    let poll = app.call("GET", "/api/v1/stream/acme/latest?wait_ms=20000", Some(&acme.token), None);

    let id = token_id(&app.store.list_tokens(microdash_store::Reach::Tenant(acme.id)).await.unwrap(), "test");
    let revoke = async {
        // The stream, the MQTT connection and the waiting poll hold it; the other stream its own.
        until("the poll to wait", SETUP, || app.runtime.holds().len() == 4).await;
        revoke_over_http(&app, id, &admin).await
    };
    let deadline = poll_ended_by(poll, revoke).await;
    ended_by(stream, deadline).await;
    disconnected_by(client, deadline).await;

    // Nothing else ended, and the revoked token opens nothing new.
    assert!(kept.next(Duration::from_millis(300)).await.comment, "the other token's stream goes on");
    let (status, _) = app.open_stream("/api/v1/stream/acme", Some(&acme.token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    until("the ended holds to go", SETUP, || app.runtime.holds().len() == 1).await;
    app.stop().await;
}

/// The `Cookie` of a fresh session of `username`.
async fn session_cookie(app: &App, username: &str, password: &str) -> String {
    let body = format!(r#"{{"username":"{username}","password":"{password}"}}"#);
    let reply = app.call("POST", "/api/v1/session", None, Some(&body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

fn with_cookie(method: &str, uri: &str, cookie: &str) -> Request<Body> {
    Request::builder().method(method).uri(uri).header("cookie", cookie).body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_or_deleting_the_user_ends_the_sessions_streams_within_a_second() {
    let app = App::start_on(Backend::Sqlite, common::test_http(), bus_only()).await;
    let acme = app.tenant("acme", "ingest,read").await;
    app.store.create_user("alice", "alice's password", Some(acme.id), 0).await.unwrap();
    let first = session_cookie(&app, "alice", "alice's password").await;
    let second = session_cookie(&app, "alice", "alice's password").await;
    let (signed_out, other_session) = (cookie_stream(&app, &first).await, cookie_stream(&app, &second).await);

    // Signing out ends that session's stream, not the other session's.
    let started = Instant::now();
    let out = app.send(with_cookie("DELETE", "/api/v1/session", &first)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    ended_by(signed_out, started + WITHIN).await;
    let mut other_session = other_session;
    assert!(other_session.next(Duration::from_millis(300)).await.comment, "the other session's stream goes on");

    // Deleting the user ends every stream and poll of theirs.
    let poll = app.send(with_cookie("GET", "/api/v1/stream/acme/latest?wait_ms=20000", &second));
    let delete = async {
        until("the poll to wait", SETUP, || app.runtime.holds().len() == 2).await;
        let started = Instant::now();
        assert!(app.runtime.revoker().delete_user("alice").await.unwrap());
        started
    };
    let deadline = poll_ended_by(poll, delete).await;
    ended_by(other_session, deadline).await;
    app.stop().await;
}

/// What nobody announced (a revocation made straight in the database, by an older binary
/// or a script) is found by the recheck, still within the second.
#[tokio::test(flavor = "multi_thread")]
async fn the_recheck_ends_what_was_revoked_unannounced() {
    let app = App::start_on(Backend::Sqlite, common::test_http(), RevocationConfig::default()).await;
    let acme = app.tenant("acme", "ingest,read").await;
    app.store.create_user("alice", "alice's password", Some(acme.id), 0).await.unwrap();
    let cookie = session_cookie(&app, "alice", "alice's password").await;
    let url = app.mqtt_endpoint().await;
    let stream = token_stream(&app, &acme.token).await;
    let by_cookie = cookie_stream(&app, &cookie).await;
    let client = mqtt_client(&url, &acme.token).await;
    until("three holds", SETUP, || app.runtime.holds().len() == 3).await;

    let id = app.store.list_tokens(microdash_store::Reach::Tenant(acme.id)).await.unwrap()[0].id;
    let started = Instant::now();
    app.store.revoke_token(microdash_store::Reach::Every, id, 1).await.unwrap();
    app.store.delete_user("alice").await.unwrap();
    ended_by(stream, started + WITHIN).await;
    ended_by(by_cookie, started + WITHIN).await;
    disconnected_by(client, started + WITHIN).await;
    app.stop().await;
}

fn redis_config(prefix: &str) -> RedisQueueConfig {
    let url = std::env::var("MICRODASH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    RedisQueueConfig { key_prefix: prefix.to_owned(), ..RedisQueueConfig::new(url) }
}

/// Subscribers of the deployment's revocation channel.
async fn revocation_subscribers(config: &RedisQueueConfig) -> usize {
    let client = redis::Client::open(config.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let channel = format!("{}:revocations", config.key_prefix);
    let counts: Vec<(String, usize)> =
        redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut conn).await.unwrap();
    counts.first().map_or(0, |(_, n)| *n)
}

/// Two API processes of a split deployment (one MariaDB, one Redis): a token revoked and a
/// user deleted through one end the streams, polls and MQTT connections held in the other,
/// and the other way round.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_on_one_process_ends_what_another_holds_within_a_second() {
    let config = redis_config(&unique_name("md_revoke"));
    let db = TestDb::new(Backend::Mysql).await;
    let store: Store = db.store().await;
    let queue = || async { Queue::Redis(RedisQueue::connect(&config).await.unwrap()) };
    let holder = App::on(db, store.clone(), queue().await, true, bus_only());
    // The second process works on the shared database too (its own is only for the app).
    let revoking = App::on(TestDb::new(Backend::Sqlite).await, store.clone(), queue().await, false, bus_only());
    let admin = holder.admin_token().await;
    let acme = holder.tenant("acme", "ingest,read").await;
    let (_, second) = store.create_token(Some(acme.id), "read".parse().unwrap(), "second", 0).await.unwrap();
    store.create_user("alice", "alice's password", Some(acme.id), 0).await.unwrap();
    let cookie = session_cookie(&holder, "alice", "alice's password").await;
    let url = holder.mqtt_endpoint().await;

    let stream = token_stream(&holder, &acme.token).await;
    let by_cookie = cookie_stream(&holder, &cookie).await;
    let over_there = token_stream(&revoking, &second).await;
    let client = mqtt_client(&url, &acme.token).await;
    let poll = holder.call("GET", "/api/v1/stream/acme/latest?wait_ms=20000", Some(&acme.token), None);

    let tokens = store.list_tokens(microdash_store::Reach::Tenant(acme.id)).await.unwrap();
    let revoke = async {
        until("the poll to wait", SETUP, || holder.runtime.holds().len() == 4).await;
        // Both follow the bus once their watchers have subscribed.
        let deadline = Instant::now() + SETUP;
        while revocation_subscribers(&config).await < 2 {
            assert!(Instant::now() < deadline, "the processes never followed the revocation channel");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        revoke_over_http(&revoking, token_id(&tokens, "test"), &admin).await
    };
    let deadline = poll_ended_by(poll, revoke).await;
    ended_by(stream, deadline).await;
    disconnected_by(client, deadline).await;

    // A user deleted through the other process loses their session's stream here.
    let started = Instant::now();
    assert!(revoking.runtime.revoker().delete_user("alice").await.unwrap());
    ended_by(by_cookie, started + WITHIN).await;

    // And the other way round.
    let started = revoke_over_http(&holder, token_id(&tokens, "second"), &admin).await;
    ended_by(over_there, started + WITHIN).await;
    revoking.stop().await;
    holder.stop().await;
}

/// The stdio MCP server authenticates once and then answers for hours: every call checks
/// that its token still authenticates.
#[cfg(feature = "mcp")]
#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_source_stops_answering_once_its_token_is_revoked() {
    use microdash_ingest::mcp::Source;
    let app = App::start().await;
    let acme = app.tenant("acme", "read").await;
    let source = app.runtime.mcp_source(&acme.token).await.unwrap().unwrap();
    assert_eq!(source.whoami().await.unwrap().tenant.as_deref(), Some("acme"));
    let id = app.store.list_tokens(microdash_store::Reach::Tenant(acme.id)).await.unwrap()[0].id;
    app.store.revoke_token(microdash_store::Reach::Every, id, 1).await.unwrap();
    for refused in [source.whoami().await.unwrap_err(), source.tenants().await.unwrap_err()] {
        assert_eq!(refused.status, 401, "{refused:?}");
    }
    assert_eq!(source.health().await.unwrap_err().status, 401);
    app.stop().await;
}

/// An MQTT connection whose publishes wait for its tenant's rate (seconds at a time) is
/// still ended within a second of its token's revocation, and what waited is not stored.
#[tokio::test(flavor = "multi_thread")]
async fn an_mqtt_connection_held_for_its_tenants_rate_is_ended_within_a_second() {
    let limits = microdash_core::Limits { max_metrics_per_request: 5, ..microdash_core::Limits::default() };
    let quotas = microdash_ingest::quota::QuotaConfig {
        defaults: microdash_core::quota::Quota { max_ingest_metrics_per_s: 1, max_series: 1_000 },
        ..Default::default()
    };
    let app = App::start_with_quotas(limits, quotas).await;
    let admin = app.admin_token().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let url = app.mqtt_endpoint().await;
    let client = mqtt_client(&url, &acme.token).await;
    // Five use up the tenant's burst (acknowledged once queued); what follows waits for the
    // rate, a token a second, all of a burst at once.
    for i in 0..5 {
        client.publish(mqtt::Message::new("metrics/acme/h/cpu", i.to_string(), 1)).await.unwrap();
    }
    for i in 5..10 {
        drop(client.publish(mqtt::Message::new("metrics/acme/h/cpu", i.to_string(), 1)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let id = token_id(&app.store.list_tokens(microdash_store::Reach::Tenant(acme.id)).await.unwrap(), "test");
    let started = revoke_over_http(&app, id, &admin).await;
    disconnected_by(client, started + WITHIN).await;
    // What waited is not queued later: the count stays where the revocation left it, past
    // the five seconds the held burst would have waited.
    let (_, reader) = app.store.create_token(Some(acme.id), "read".parse().unwrap(), "reader", 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count = |reply: Reply| reply.json["count"].as_u64().unwrap();
    let at_revocation = count(app.call("GET", "/api/v1/metrics?metric_name=cpu", Some(&reader), None).await);
    assert!((5..10).contains(&at_revocation), "{at_revocation} stored");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = count(app.call("GET", "/api/v1/metrics?metric_name=cpu", Some(&reader), None).await);
    assert_eq!(later, at_revocation, "a publish held at the revocation was stored later");
    app.stop().await;
}
