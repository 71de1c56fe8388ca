//! MQTT through the real binary: `microdash serve` with a broker configured bridges metric
//! topics into storage, queryable over HTTP. Against the real Mosquitto on 127.0.0.1:1883.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::microdash;
use microdash_client::{Client, MetricsQuery};
use microdash_store::Backend;
use microdash_store::testing::{TestDb, unique_name};
use paho_mqtt as mqtt;

#[tokio::test(flavor = "multi_thread")]
async fn the_all_in_one_server_stores_what_is_published_over_mqtt() {
    let broker = std::env::var("MICRODASH_TEST_MQTT_URL").unwrap_or_else(|_| "tcp://127.0.0.1:1883".into());
    let db = TestDb::new(Backend::Sqlite).await;
    let root = format!("{}/metrics", unique_name("md_e2e"));
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        ("MICRODASH_MQTT_URL", broker.as_str()),
        ("MICRODASH_MQTT_TOPIC_ROOT", root.as_str()),
    ];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();
    let token = server.demo_token();
    let client = Client::new(&url, &token).unwrap();

    let publisher = mqtt::CreateOptionsBuilder::new()
        .server_uri(&broker)
        .client_id(unique_name("md_e2e_pub"))
        .persistence(mqtt::PersistenceType::None)
        .create_client()
        .unwrap();
    publisher.connect(mqtt::ConnectOptionsBuilder::new_v5().finalize()).await.unwrap();
    let topic = format!("{root}/demo/sensor-9/temp");
    let query = MetricsQuery { metric_name: Some("temp".into()), ..MetricsQuery::default() };
    // The bridge subscribes in the background: publish (idempotently) until it is stored.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let payload = r#"{"value":21.5,"dedupe_id":"first"}"#;
        publisher.publish(mqtt::Message::new(&topic, payload, mqtt::QOS_1)).await.unwrap();
        if client.query(&query).await.unwrap().count == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing published over MQTT was stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let points = client.query(&query).await.unwrap();
    assert_eq!((points.data[0].value, points.data[0].agent_id.as_deref()), (21.5, Some("sensor-9")));
    let _ = publisher.disconnect(None).await;
    microdash_ingest::mqtt::release(publisher).await;
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_all_in_one_server_takes_mqtt_with_no_broker() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [("MICRODASH_DATABASE_URL", db.url.as_str())];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();
    let endpoint = server.line_with("MQTT endpoint").split(' ').nth(2).unwrap().to_owned();
    let token = server.demo_token();

    let publisher = connect(&endpoint, Some(microdash_core::mqtt::token_username(&token)), Some(&token)).await.unwrap();
    let payload = r#"{"value":3.5,"tags":{"site":"roof"}}"#;
    publisher.publish(mqtt::Message::new("metrics/demo/probe-1/wind", payload, mqtt::QOS_1)).await.unwrap();
    // Acknowledged means queued: the worker stores it within moments.
    let client = Client::new(&url, &token).unwrap();
    let query = MetricsQuery { metric_name: Some("wind".into()), ..MetricsQuery::default() };
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.query(&query).await.unwrap().count == 0 {
        assert!(Instant::now() < deadline, "an acknowledged MQTT publish was not stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let point = client.query(&query).await.unwrap().data.remove(0);
    assert_eq!((point.value, point.agent_id.as_deref()), (3.5, Some("probe-1")));
    let _ = publisher.disconnect(None).await;
    microdash_ingest::mqtt::release(publisher).await;
    assert!(server.terminate().success());
}

/// A Mosquitto of the test's own that only lets in the accounts `microdash mqtt-auth` wrote.
fn locked_broker(dir: &std::path::Path, port: u16) -> std::process::Child {
    let conf = dir.join("mosquitto.conf");
    let text = format!(
        "user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {d}/passwords\nacl_file {d}/acl\npid_file {d}/mosquitto.pid\n",
        d = dir.display()
    );
    std::fs::write(&conf, text).unwrap();
    let child = std::process::Command::new("mosquitto").arg("-c").arg(&conf).spawn().expect("mosquitto is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

async fn connect(broker: &str, user: Option<&str>, password: Option<&str>) -> Result<mqtt::AsyncClient, mqtt::Error> {
    let client = mqtt::CreateOptionsBuilder::new()
        .server_uri(broker)
        .client_id(unique_name("md_acl"))
        .persistence(mqtt::PersistenceType::None)
        .create_client()?;
    let mut options = mqtt::ConnectOptionsBuilder::new_v5();
    if let Some(user) = user {
        options.user_name(user);
    }
    if let Some(password) = password {
        options.password(password);
    }
    let connecting = client.connect(options.finalize());
    let connected = connecting.await;
    if let Err(err) = connected {
        microdash_ingest::mqtt::release(client).await;
        return Err(err);
    }
    Ok(client)
}

async fn connects(broker: &str, user: &str, password: &str) -> bool {
    match connect(broker, Some(user), Some(password)).await {
        Ok(client) => {
            let _ = client.disconnect(None).await;
            microdash_ingest::mqtt::release(client).await;
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_publishes_only_into_its_own_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let broker = format!("tcp://127.0.0.1:{port}");
    let db = TestDb::new(Backend::Sqlite).await;
    let root = format!("{}/metrics", unique_name("md_acl"));
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        ("MICRODASH_MQTT_URL", broker.as_str()),
        ("MICRODASH_MQTT_TOPIC_ROOT", root.as_str()),
        ("MICRODASH_MQTT_USERNAME", "microdash-bridge"),
        ("MICRODASH_MQTT_PASSWORD", "bridge password"),
    ];
    let token = |tenant: &str| {
        common::microdash_output(&["tenant", "create", tenant], &env);
        let created = common::microdash_output(&["token", "create", "--tenant", tenant, "--json"], &env);
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        (created["token"].as_str().unwrap().to_owned(), created["id"].to_string())
    };
    let ((acme, acme_id), (other, _)) = (token("acme"), token("other"));
    let (passwords, acl) = (dir.path().join("passwords"), dir.path().join("acl"));
    let files = ["mqtt-auth", "--password-file", passwords.to_str().unwrap(), "--acl-file", acl.to_str().unwrap()];
    common::microdash_output(&files, &env);
    let mut mosquitto = locked_broker(dir.path(), port);
    let server = microdash(&["serve", "--listen-addr", "127.0.0.1:0"], &env);
    let url = server.url();

    // Strangers are turned away.
    assert!(connect(&broker, None, None).await.is_err(), "anonymous access");
    assert!(!connects(&broker, microdash_core::mqtt::token_username(&acme), "guess").await);

    let publisher = connect(&broker, Some(microdash_core::mqtt::token_username(&acme)), Some(&acme)).await.unwrap();
    let acme_client = Client::new(&url, &acme).unwrap();
    let other_client = Client::new(&url, &other).unwrap();
    let query = MetricsQuery { metric_name: Some("m".into()), ..MetricsQuery::default() };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let own = mqtt::Message::new(format!("{root}/acme/box/m"), r#"{"value":1,"dedupe_id":"own"}"#, mqtt::QOS_1);
        let _ = publisher.publish(own).await;
        // Into another tenant: the broker refuses it (MQTT 5 answers "not authorized").
        let foreign = mqtt::Message::new(format!("{root}/other/box/m"), "666", mqtt::QOS_1);
        let _ = publisher.publish(foreign).await;
        if acme_client.query(&query).await.unwrap().count == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing the acme token published was stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(other_client.query(&query).await.unwrap().count, 0, "the acme token wrote into another tenant");

    // mqtt-auth keeps the files current and reloads the broker, which then disconnects any
    // client whose password no longer checks out: a revoked token loses its open connection
    // within a second, and cannot connect again.
    let pid_file = dir.path().join("mosquitto.pid");
    let watch = [&files[..], &["--pid-file", pid_file.to_str().unwrap(), "--watch-ms", "200"]].concat();
    let watcher = microdash(&watch, &env);
    watcher.line_with("wrote");
    common::microdash_output(&["token", "revoke", &acme_id], &env);
    let deadline = Instant::now() + Duration::from_secs(1);
    while publisher.is_connected() {
        assert!(Instant::now() < deadline, "the revoked token kept its broker connection for over a second");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!connects(&broker, microdash_core::mqtt::token_username(&acme), &acme).await);
    assert!(connects(&broker, microdash_core::mqtt::token_username(&other), &other).await);
    let _ = publisher.disconnect(None).await;
    microdash_ingest::mqtt::release(publisher).await;

    assert!(server.terminate().success());
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
}
