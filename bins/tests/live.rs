//! Live streams through the real binary over real sockets: delivery, release when a client
//! disconnects, shutdown with streams open, and a split deployment where the API process
//! streams what a separate worker process persisted.
#![allow(clippy::unwrap_used)]

mod common;

use common::{RawStream, eventually, microdash, microdash_output, scrape, sign_in_cookie};
use microdash_client::{Client, MetricIn};
use microdash_store::Backend;
use microdash_store::testing::{TestDb, unique_name};

#[tokio::test(flavor = "multi_thread")]
async fn streams_deliver_release_on_disconnect_and_end_at_shutdown() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [("MICRODASH_DATABASE_URL", db.url.as_str()), ("MICRODASH_SSE_HEARTBEAT_MS", "200")];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();
    let token = server.demo_token();
    let password = server.line_with("sign in as demo").rsplit(' ').next().unwrap().to_owned();

    // The demo user signs in, and the session cookie reads the demo tenant's feed.
    let http = microdash_client::Client::default_http().unwrap();
    let cookie = sign_in_cookie(&url, "demo", &password).await;
    let poll = http.get(format!("{url}/api/v1/stream/demo/latest")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(poll.status(), 200);

    // A user made with the CLI gets a generated password that works.
    let created = microdash_output(&["user", "create", "ops", "--tenant", "demo"], &env);
    let ops_password = created.lines().find_map(|l| l.strip_prefix("password: ")).unwrap().to_owned();
    let ops = http
        .post(format!("{url}/api/v1/session"))
        .json(&serde_json::json!({"username": "ops", "password": ops_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(ops.status(), 200);
    assert!(microdash_output(&["user", "list"], &env).contains("ops"));

    let mut kept = RawStream::open(&url, "/api/v1/stream/demo", &token).await;
    kept.read_until("event: ready").await;
    let mut dropped = RawStream::open(&url, "/api/v1/stream/demo", &token).await;
    dropped.read_until("event: ready").await;
    assert_eq!(scrape(&url, "microdash_streams_open").await, 2.0);

    let client = Client::new(&url, &token).unwrap();
    client.push(&[MetricIn::new("cpu.usage", 42.5).agent("web-1")]).await.unwrap();
    kept.read_until("event: points").await;
    kept.read_until(r#""value":42.5"#).await;
    kept.read_until("\n:").await; // a heartbeat comment

    // A closed tab: the server notices and releases the stream.
    drop(dropped);
    eventually(5, "the closed stream to be released", || async {
        (scrape(&url, "microdash_streams_open").await == 1.0).then_some(())
    })
    .await;

    // An open stream must not hold shutdown hostage.
    assert!(server.terminate().success());
    kept.closed().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_process_streams_what_a_separate_worker_persisted() {
    let db = TestDb::new(Backend::Mysql).await;
    let redis_url = std::env::var("MICRODASH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = unique_name("md_live");
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        ("MICRODASH_REDIS_URL", redis_url.as_str()),
        ("MICRODASH_REDIS_KEY_PREFIX", prefix.as_str()),
        ("MICRODASH_LISTEN_ADDR", "127.0.0.1:0"),
    ];
    microdash_output(&["tenant", "create", "split"], &env);
    let created: serde_json::Value =
        serde_json::from_str(&microdash_output(&["token", "create", "--tenant", "split", "--json"], &env)).unwrap();
    let token = created["token"].as_str().unwrap();
    let server = microdash(&["server"], &env);
    let url = server.url();
    let _worker = microdash(&["worker"], &env);

    let mut stream = RawStream::open(&url, "/api/v1/stream/split", token).await;
    stream.read_until("event: ready").await;
    let client = Client::new(&url, token).unwrap();
    // The server subscribes to the bus in the background; push until a point comes through.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        client.push(&[MetricIn::new("temp", 21.5)]).await.unwrap();
        let wait = std::time::Duration::from_millis(500);
        if tokio::time::timeout(wait, stream.read_until(r#""value":21.5"#)).await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no point from the worker on the server's stream");
    }

    // The same through the client SDK, streaming and polling.
    use futures_util::StreamExt;
    use microdash_client::{LiveEvent, StreamQuery};
    let mut live = std::pin::pin!(client.stream("split", &StreamQuery::default()).await.unwrap());
    let Some(Ok(LiveEvent::Ready { cursor })) = live.next().await else { panic!("no ready event") };
    client.push(&[MetricIn::new("temp", 33.5)]).await.unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), live.next()).await.unwrap();
    let Some(Ok(LiveEvent::Points { points, .. })) = next else { panic!("no points event: {next:?}") };
    assert_eq!(points[0].value, 33.5);
    let query = StreamQuery { after: Some(cursor), ..StreamQuery::default() };
    let polled = client.latest("split", &query).await.unwrap();
    assert_eq!((polled.reset, polled.points[0].value), (false, 33.5));
}
