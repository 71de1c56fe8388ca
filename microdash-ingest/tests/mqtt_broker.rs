//! The embedded MQTT endpoint with real paho clients (MQTT 5 and 3.1.1), a real SQLite store,
//! the in-process queue and workers.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{App, Tenant};
use microdash_core::mqtt::token_username;
use microdash_store::testing::unique_name;
use paho_mqtt as mqtt;

async fn endpoint(app: &App) -> String {
    app.mqtt_endpoint().await
}

async fn connect(
    url: &str,
    v5: bool,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<mqtt::AsyncClient, mqtt::Error> {
    let client = mqtt::CreateOptionsBuilder::new()
        .server_uri(url)
        .client_id(unique_name("md_embedded"))
        .persistence(mqtt::PersistenceType::None)
        .max_buffered_messages(10_000)
        .create_client()?;
    let mut options = if v5 { mqtt::ConnectOptionsBuilder::new_v5() } else { mqtt::ConnectOptionsBuilder::new_v3() };
    if let Some(user) = user {
        options.user_name(user);
    }
    if let Some(password) = password {
        options.password(password);
    }
    let connecting = client.connect(options.finalize());
    match connecting.await {
        Ok(_) => Ok(client),
        Err(err) => {
            microdash_ingest::mqtt::release(client).await;
            Err(err)
        }
    }
}

async fn signed_in(url: &str, v5: bool, tenant: &Tenant) -> mqtt::AsyncClient {
    connect(url, v5, Some(token_username(&tenant.token)), Some(&tenant.token)).await.unwrap()
}

async fn close(client: mqtt::AsyncClient) {
    let _ = client.disconnect(None).await;
    microdash_ingest::mqtt::release(client).await;
}

async fn publish(client: &mqtt::AsyncClient, topic: &str, payload: &str, qos: i32) -> Result<(), mqtt::Error> {
    client.publish(mqtt::Message::new(topic, payload, qos)).await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn only_ingest_tokens_under_their_own_prefix_sign_in() {
    let app = App::start().await;
    let url = endpoint(&app).await;
    let acme = app.tenant("acme", "ingest").await;
    let reader = app.tenant("reader", "read").await;
    let user = token_username(&acme.token);

    for v5 in [true, false] {
        assert!(connect(&url, v5, None, None).await.is_err(), "anonymous");
        assert!(connect(&url, v5, Some(user), Some("mdk_guess")).await.is_err(), "wrong password");
        assert!(connect(&url, v5, Some("someone"), Some(&acme.token)).await.is_err(), "another username");
        let reader_user = token_username(&reader.token);
        assert!(connect(&url, v5, Some(reader_user), Some(&reader.token)).await.is_err(), "a read-only token");
        close(signed_in(&url, v5, &acme).await).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_publishes_only_into_its_own_tenant() {
    let app = App::start().await;
    let url = endpoint(&app).await;
    let (acme, other) = (app.tenant("acme", "ingest,read").await, app.tenant("other", "ingest,read").await);

    let v5 = signed_in(&url, true, &acme).await;
    publish(&v5, "metrics/acme/box/temp", r#"{"value":21.5,"tags":{"room":"lab"}}"#, mqtt::QOS_1).await.unwrap();
    // MQTT 5 says why a publish is refused.
    let foreign = publish(&v5, "metrics/other/box/temp", "666", mqtt::QOS_1).await;
    assert!(foreign.is_err(), "a publish into another tenant was acknowledged: {foreign:?}");
    assert!(publish(&v5, "metrics/acme/box/temp", "not json", mqtt::QOS_1).await.is_err());
    assert!(publish(&v5, "elsewhere/acme/box/temp", "1", mqtt::QOS_1).await.is_err());
    publish(&v5, "metrics/acme/box/temp", "22.5", mqtt::QOS_2).await.unwrap();
    publish(&v5, "metrics/acme/box/temp", "23.5", mqtt::QOS_0).await.unwrap();

    // 3.1.1 cannot refuse a publish: the foreign one is acknowledged and dropped.
    let v3 = signed_in(&url, false, &acme).await;
    publish(&v3, "metrics/other/box/temp", "667", mqtt::QOS_1).await.unwrap();
    publish(&v3, "metrics/acme/box/temp", "24.5", mqtt::QOS_1).await.unwrap();
    // Nothing is delivered from here: subscriptions are refused.
    let subscribed = v3.subscribe("metrics/#", mqtt::QOS_1).await;
    assert!(subscribed.is_err(), "subscription accepted: {subscribed:?}");

    let stored = app.wait_for_points(&acme.token, "metric_name=temp", 4).await;
    let mut values: Vec<f64> =
        stored["data"].as_array().unwrap().iter().map(|p| p["value"].as_f64().unwrap()).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, [21.5, 22.5, 23.5, 24.5]);
    assert_eq!(stored["data"][0]["agent_id"], "box");
    // The foreign publishes came before the last stored ones, on the same connections.
    app.wait_for_points(&other.token, "metric_name=temp", 0).await;
    let counters = app.call("GET", "/metrics", None, None).await.text;
    assert!(counters.contains(r#"microdash_metrics_rejected_total{source="mqtt",reason="forbidden"} 2"#), "{counters}");
    close(v5).await;
    close(v3).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_disconnected() {
    let app = App::start().await;
    let url = endpoint(&app).await;
    let acme = app.tenant("acme", "ingest").await;
    let client = signed_in(&url, true, &acme).await;
    publish(&client, "metrics/acme/box/m", "1", mqtt::QOS_1).await.unwrap();

    let token = app.store.list_tokens(microdash_store::Reach::Tenant(acme.id)).await.unwrap().remove(0);
    app.store.revoke_token(microdash_store::Reach::Every, token.id, 0).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.is_connected() {
        assert!(Instant::now() < deadline, "still connected with a revoked token");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(connect(&url, true, Some(token_username(&acme.token)), Some(&acme.token)).await.is_err());
    microdash_ingest::mqtt::release(client).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_is_stored_whole() {
    let app = App::start().await;
    let url = endpoint(&app).await;
    let acme = app.tenant("acme", "ingest,read").await;
    let client = signed_in(&url, true, &acme).await;
    let sent: Vec<_> = (0..2_000)
        .map(|i| {
            client.publish(mqtt::Message::new("metrics/acme/box/n", format!(r#"{{"value":{i},"dedupe_id":"{i}"}}"#), 1))
        })
        .collect();
    for token in sent {
        token.await.unwrap();
    }
    let stored = app.wait_for_points(&acme.token, "metric_name=n&limit=5000", 2_000).await;
    assert_eq!(stored["count"], 2_000);
    close(client).await;
    app.stop().await;
}

/// A hand-driven MQTT 5 client, for what paho does not let a test choose (packet ids, how
/// bytes are split, a silent client).
mod raw {
    use bytes::BytesMut;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{self, Packet};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub struct Raw {
        pub stream: TcpStream,
        input: BytesMut,
    }

    pub fn bytes(packet: Packet) -> Vec<u8> {
        let mut out = BytesMut::new();
        packet.write(&mut out, None).unwrap();
        out.to_vec()
    }

    pub fn connect(token: &str, keep_alive_s: u16) -> Vec<u8> {
        let mut connect =
            v5::Connect { keep_alive: keep_alive_s, client_id: "raw".into(), clean_start: true, properties: None };
        connect.keep_alive = keep_alive_s;
        let login = v5::Login::new(microdash_core::mqtt::token_username(token), token);
        bytes(Packet::Connect(connect, None, Some(login)))
    }

    pub fn publish(topic: &str, payload: &str, qos: QoS, pkid: u16) -> Vec<u8> {
        let mut publish = v5::Publish::new(topic, qos, payload.to_owned(), None);
        publish.pkid = pkid;
        bytes(Packet::Publish(publish))
    }

    impl Raw {
        pub async fn open(url: &str) -> Raw {
            let stream = TcpStream::connect(url.trim_start_matches("tcp://")).await.unwrap();
            Raw { stream, input: BytesMut::new() }
        }

        pub async fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).await.unwrap();
        }

        /// The next packet, or `None` once the endpoint closed the connection.
        pub async fn next(&mut self) -> Option<Packet> {
            loop {
                match Packet::read(&mut self.input, None) {
                    Ok(packet) => return Some(packet),
                    Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                    Err(err) => panic!("{err}"),
                }
                if self.stream.read_buf(&mut self.input).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_qos2_id_is_free_again_and_a_short_disconnect_keeps_the_burst() {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PubRecReason, PubRel};
    let app = App::start().await;
    let url = endpoint(&app).await;
    let acme = app.tenant("acme", "ingest,read").await;
    let mut client = raw::Raw::open(&url).await;
    // The CONNECT arrives in two pieces.
    let connect = raw::connect(&acme.token, 60);
    client.send(&connect[..9]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.send(&connect[9..]).await;
    let Some(Packet::ConnAck(ack)) = client.next().await else { panic!("no CONNACK") };
    assert_eq!(ack.code, rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success);
    assert!(ack.properties.unwrap().max_packet_size.is_some());

    client.send(&raw::publish("metrics/acme/box/q2", "not json", QoS::ExactlyOnce, 7)).await;
    let Some(Packet::PubRec(rec)) = client.next().await else { panic!("no PUBREC") };
    assert_eq!((rec.pkid, rec.reason), (7, PubRecReason::PayloadFormatInvalid));
    // The refused exchange is over: id 7 carries a new message.
    client.send(&raw::publish("metrics/acme/box/q2", "2", QoS::ExactlyOnce, 7)).await;
    let Some(Packet::PubRec(rec)) = client.next().await else { panic!("no PUBREC") };
    assert_eq!((rec.pkid, rec.reason), (7, PubRecReason::Success));
    client.send(&raw::bytes(Packet::PubRel(PubRel::new(7, None)))).await;
    assert!(matches!(client.next().await, Some(Packet::PubComp(c)) if c.pkid == 7));

    // A QoS 0 publish and the short DISCONNECT in one write: the publish is still stored.
    let mut last = raw::publish("metrics/acme/box/q0", "0.5", QoS::AtMostOnce, 0);
    last.extend_from_slice(&[0xE0, 0x00]);
    client.send(&last).await;
    assert!(client.next().await.is_none(), "the endpoint closes after DISCONNECT");
    app.wait_for_points(&acme.token, "metric_name=q2", 1).await;
    app.wait_for_points(&acme.token, "metric_name=q0", 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_clients_and_other_protocols_are_turned_away() {
    let app = App::start().await;
    let url = endpoint(&app).await;
    let acme = app.tenant("acme", "ingest").await;

    // Keep-alive 1 s: silent for 1.5 s means gone.
    let mut silent = raw::Raw::open(&url).await;
    silent.send(&raw::connect(&acme.token, 1)).await;
    assert!(matches!(silent.next().await, Some(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(_))));
    let started = Instant::now();
    assert!(tokio::time::timeout(Duration::from_secs(5), silent.next()).await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_millis(1_400), "closed too early: {:?}", started.elapsed());

    // MQTT 3.1 ("MQIsdp", level 3) is answered "unacceptable protocol version".
    let mut old = raw::Raw::open(&url).await;
    let mut connect = vec![0x10, 14, 0, 6];
    connect.extend_from_slice(b"MQIsdp");
    connect.extend_from_slice(&[3, 0x02, 0, 60, 0, 0]);
    old.send(&connect).await;
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut old.stream, &mut answer).await.unwrap();
    assert_eq!(answer, [0x20, 0x02, 0x00, 0x01]);
    app.stop().await;
}

/// Connections that never sign in cannot lock publishers out: at the cap (here one address's,
/// all tests connecting from loopback; the total cap works the same way, see the unit tests
/// of `mqtt::admission`) a newcomer takes the place of the oldest one not signed in yet; once
/// every connection has signed in, a newcomer is closed on arrival and counted.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_make_room_for_publishers_and_signed_in_ones_keep_theirs() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let config = microdash_ingest::mqtt::broker::BrokerConfig {
        max_connections: 3,
        max_connections_per_ip: 3,
        ..microdash_ingest::mqtt::broker::BrokerConfig::new("127.0.0.1:0")
    };
    let url = app.mqtt_endpoint_with(config).await;
    let addr = url.trim_start_matches("tcp://").to_owned();
    // Three connections that say nothing hold every slot.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut publishers = Vec::new();
    for i in 0..3 {
        let client = signed_in(&url, true, &acme).await;
        publish(&client, "metrics/acme/h/cpu", &i.to_string(), 1).await.unwrap();
        publishers.push(client);
    }
    app.wait_for_points(&acme.token, "metric_name=cpu", 3).await;
    // The idle ones were closed to make room.
    for mut stream in idle {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(2), tokio::io::AsyncReadExt::read(&mut stream, &mut buf));
        assert!(matches!(read.await, Ok(Ok(0) | Err(_))), "an idle connection kept its slot");
    }
    // Every slot is a signed-in publisher's now: a newcomer is turned away, they stay.
    assert!(connect(&url, true, Some(token_username(&acme.token)), Some(&acme.token)).await.is_err());
    assert_eq!(
        app.counter(r#"microdash_mqtt_connections_refused_total{reason="mqtt_max_connections_per_ip"}"#).await,
        1.0
    );
    for client in &publishers {
        assert!(client.is_connected());
    }
    for client in publishers {
        close(client).await;
    }
    app.stop().await;
}
