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
    let url = server.line_with("listening on").rsplit(' ').next().unwrap().to_owned();
    let token = server.line_with("demo token").rsplit(' ').next().unwrap().to_owned();
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
    assert!(server.terminate().success());
}
