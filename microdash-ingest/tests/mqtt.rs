//! The MQTT bridge against the real Mosquitto on 127.0.0.1:1883 (or
//! `MICRODASH_TEST_MQTT_URL`). Each test uses its own topic root and client ids.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::App;
use microdash_ingest::mqtt::MqttConfig;
use microdash_store::testing::unique_name;
use paho_mqtt as mqtt;
use tokio_util::sync::CancellationToken;

fn broker() -> String {
    std::env::var("MICRODASH_TEST_MQTT_URL").unwrap_or_else(|_| "tcp://127.0.0.1:1883".into())
}

fn bridge_config(root: &str, group: Option<&str>) -> MqttConfig {
    MqttConfig {
        client_id: unique_name("md_bridge"),
        topic_root: root.to_owned(),
        shared_group: group.map(str::to_owned),
        ..MqttConfig::new(broker())
    }
}

async fn publisher() -> mqtt::AsyncClient {
    let client = mqtt::CreateOptionsBuilder::new()
        .server_uri(broker())
        .client_id(unique_name("md_pub"))
        .persistence(mqtt::PersistenceType::None)
        .max_buffered_messages(10_000)
        .create_client()
        .unwrap();
    let options = mqtt::ConnectOptionsBuilder::new_v5().clean_start(true).finalize();
    client
        .connect(options)
        .await
        .unwrap_or_else(|e| panic!("Mosquitto at {} is unreachable ({e}); tests need it", broker()));
    client
}

/// Disconnect, then drop safely (see `microdash_ingest::mqtt::release`).
async fn close(client: mqtt::AsyncClient) {
    let _ = client.disconnect(None).await;
    microdash_ingest::mqtt::release(client).await;
}

async fn publish(client: &mqtt::AsyncClient, topic: &str, payload: &str) {
    client.publish(mqtt::Message::new(topic, payload, mqtt::QOS_1)).await.unwrap();
}

/// A bridge for `root` running until the token is cancelled, and a publisher it has been
/// seen to take messages from (as `tenant`'s probe).
async fn bridge_for(
    app: &App,
    root: &str,
    tenant: &common::Tenant,
) -> (CancellationToken, tokio::task::JoinHandle<Result<(), microdash_ingest::mqtt::MqttError>>, mqtt::AsyncClient) {
    let shutdown = CancellationToken::new();
    let bridge = {
        let (runtime, shutdown, config) = (app.runtime.clone(), shutdown.clone(), bridge_config(root, None));
        tokio::spawn(async move { runtime.run_bridge(config, shutdown).await })
    };
    let client = publisher().await;
    let slug = app.store.tenant(tenant.id).await.unwrap().unwrap().slug;
    until_subscribed(app, &client, &tenant.token, &format!("{root}/{slug}/probe/ready")).await;
    (shutdown, bridge, client)
}

/// Publish `payload` until the bridge has stored it (it subscribes in the background).
async fn until_subscribed(app: &App, client: &mqtt::AsyncClient, token: &str, topic: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        publish(client, topic, r#"{"value":1,"dedupe_id":"subscribed"}"#).await;
        let reply = app.call("GET", "/api/v1/metrics?metric_name=ready", Some(token), None).await;
        if reply.json["count"] == 1 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the bridge never stored a message");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_become_metrics_and_bad_ones_are_counted_without_stopping_the_bridge() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let root = format!("{}/metrics", unique_name("md"));
    let (shutdown, bridge, client) = bridge_for(&app, &root, &acme).await;

    publish(&client, &format!("{root}/acme/web-1/cpu.usage_percent"), "42.5").await;
    publish(
        &client,
        &format!("{root}/acme/web-1/disk.used_percent"),
        r#"{"value":71,"timestamp":1795867200,"tags":{"mount":"/"},"agent_id":"web-1","tenant_id":"acme"}"#,
    )
    .await;
    // Bad: not JSON, a payload contradicting its topic, an unknown tenant, an invalid agent id.
    publish(&client, &format!("{root}/acme/web-1/cpu.usage_percent"), "not json").await;
    publish(&client, &format!("{root}/acme/web-1/mem"), r#"{"value":1,"tenant_id":"other"}"#).await;
    publish(&client, &format!("{root}/nobody/web-1/mem"), "1").await;
    publish(&client, &format!("{root}/acme/web 1/mem"), "1").await;
    publish(&client, &format!("{root}/acme/web-1/mem.used_percent"), "33").await;

    let cpu = app.wait_for_points(&acme.token, "metric_name=cpu.usage_percent", 1).await;
    assert_eq!((cpu["data"][0]["value"].as_f64(), cpu["data"][0]["agent_id"].as_str()), (Some(42.5), Some("web-1")));
    let disk = app.wait_for_points(&acme.token, "metric_name=disk.used_percent", 1).await;
    assert_eq!(disk["data"][0]["tags"]["mount"], "/");
    assert_eq!(disk["data"][0]["timestamp"], "2026-11-28T12:00:00.000Z");
    // The good message after the bad ones went through: nothing stopped the bridge.
    app.wait_for_points(&acme.token, "metric_name=mem.used_percent", 1).await;
    app.wait_for_points(&acme.token, "metric_name=mem", 0).await;
    let text = app.call("GET", "/metrics", None, None).await.text;
    let rejected =
        text.lines().find(|l| l.starts_with("microdash_metrics_rejected_total{source=\"mqtt\",reason=\"invalid\"}"));
    assert_eq!(rejected.and_then(|l| l.rsplit(' ').next()), Some("4"), "{text}");

    shutdown.cancel();
    bridge.await.unwrap().unwrap();
    close(client).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bridges_in_one_shared_group_split_the_messages_without_doubles() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let root = format!("{}/metrics", unique_name("md"));
    let group = unique_name("g");
    let shutdown = CancellationToken::new();
    let bridges: Vec<_> = (0..2)
        .map(|_| {
            let (runtime, shutdown, config) =
                (app.runtime.clone(), shutdown.clone(), bridge_config(&root, Some(&group)));
            tokio::spawn(async move { runtime.run_bridge(config, shutdown).await })
        })
        .collect();
    let client = publisher().await;
    until_subscribed(&app, &client, &acme.token, &format!("{root}/acme/probe/ready")).await;
    // Give the second bridge time to join the group too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // No dedupe ids: a message handled by both bridges would be stored twice.
    for i in 0..500 {
        publish(&client, &format!("{root}/acme/a{}/shared", i % 5), &i.to_string()).await;
    }
    app.wait_for_points(&acme.token, "metric_name=shared&limit=10000", 500).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.wait_for_points(&acme.token, "metric_name=shared&limit=10000", 500).await;
    shutdown.cancel();
    for bridge in bridges {
        bridge.await.unwrap().unwrap();
    }
    close(client).await;
    app.stop().await;
}

/// The broker has acknowledged what the bridge receives, so a tenant over its rate is held,
/// never dropped: the other tenants' messages flow meanwhile, and at shutdown what is held
/// is queued at once. A message of a new series beyond a tenant's limit is refused and
/// counted.
#[tokio::test(flavor = "multi_thread")]
async fn the_bridge_holds_a_tenant_over_its_rate_and_refuses_series_beyond_the_limit() {
    let limits = microdash_core::Limits { max_metrics_per_request: 50, ..Default::default() };
    let app = App::start_with_quotas(limits, Default::default()).await;
    let admin = app.admin_token().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let beta = app.tenant("beta", "ingest,read").await;
    let gamma = app.tenant("gamma", "ingest,read").await;
    for (slug, patch) in [("acme", r#"{"max_ingest_metrics_per_s": 1}"#), ("gamma", r#"{"max_series": 2}"#)] {
        let reply = app.call("PATCH", &format!("/api/v1/tenants/{slug}"), Some(&admin), Some(patch)).await;
        assert_eq!(reply.status, axum::http::StatusCode::OK, "{}", reply.text);
    }
    let root = format!("{}/metrics", unique_name("md"));
    // The probe is gamma's first series.
    let (shutdown, bridge, client) = bridge_for(&app, &root, &gamma).await;

    // acme's bucket holds 50 and refills at 1 a second: 60 at once do not all fit for 10 s.
    for i in 0..60 {
        publish(&client, &format!("{root}/acme/h/n"), &format!(r#"{{"value":{i},"dedupe_id":"{i}"}}"#)).await;
    }
    for i in 0..50 {
        publish(&client, &format!("{root}/beta/h/n"), &i.to_string()).await;
    }
    app.wait_for_points(&beta.token, "metric_name=n", 50).await;
    let acme_stored =
        app.call("GET", "/api/v1/metrics?metric_name=n", Some(&acme.token), None).await.json["count"].clone();
    assert!(acme_stored.as_u64().unwrap() < 60, "acme is held to its rate: {acme_stored}");

    // gamma has the probe's series; one more fits, a third does not.
    publish(&client, &format!("{root}/gamma/h/a"), "1").await;
    publish(&client, &format!("{root}/gamma/h/b"), "1").await;
    publish(&client, &format!("{root}/gamma/h/a"), "2").await;
    app.wait_for_points(&gamma.token, "metric_name=a", 2).await;
    app.wait_for_points(&gamma.token, "metric_name=b", 0).await;
    let refused = format!(r#"microdash_quota_rejected_metrics_total{{tenant_id="{}",limit="max_series"}}"#, gamma.id);
    assert_eq!(app.counter(&refused).await, 1.0);

    // At shutdown the bridge queues what it holds rather than wait out acme's rate.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), bridge)
        .await
        .expect("the bridge waited for the rate")
        .unwrap()
        .unwrap();
    app.wait_for_points(&acme.token, "metric_name=n", 60).await;
    close(client).await;
    app.stop().await;
}
