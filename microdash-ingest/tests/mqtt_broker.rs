//! The embedded MQTT endpoint with real paho clients (MQTT 5 and 3.1.1), a real SQLite store,
//! the in-process queue and workers.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{App, Tenant};
use microdash_core::mqtt::token_username;
use microdash_ingest::mqtt::broker::{Broker, BrokerConfig};
use microdash_store::testing::unique_name;
use paho_mqtt as mqtt;

async fn endpoint(app: &App) -> String {
    let config = BrokerConfig { credential_check: Duration::from_millis(200), ..BrokerConfig::new("127.0.0.1:0") };
    let broker = Broker::bind(config).await.unwrap();
    let url = format!("tcp://{}", broker.local_addr().unwrap());
    tokio::spawn(broker.run(app.store.clone(), app.state.ingestor.clone(), app.shutdown.clone()));
    url
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

    let token = app.store.list_tokens(Some(acme.id)).await.unwrap().remove(0);
    app.store.revoke_token(token.id, 0).await.unwrap();
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
