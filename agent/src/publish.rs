//! Where samples go: MQTT (QoS 1), HTTP, or standard output, through a bounded outbox that
//! holds samples while the destination is unreachable and sends them, oldest first, once it
//! is back.

use std::collections::VecDeque;
use std::time::Duration;

use microdash_client::{Client, MetricIn};
use paho_mqtt as mqtt;
use serde_json::json;

use crate::AgentError;
use crate::collect::Sample;

/// Who the samples are from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Tenant slug.
    pub tenant: String,
    /// Agent id.
    pub agent_id: String,
    /// First topic level.
    pub topic_root: String,
}

impl Origin {
    /// The MQTT topic and JSON payload of a sample: `agent_id` and `timestamp` are always in
    /// the payload, so a message means the same wherever it is relayed.
    pub fn message(&self, sample: &Sample) -> (String, String) {
        let topic = microdash_core::mqtt::topic(&self.topic_root, &self.tenant, &self.agent_id, sample.name);
        let mut payload = json!({
            "value": sample.value,
            "timestamp": sample.timestamp_ms as f64 / 1000.0,
            "agent_id": self.agent_id,
        });
        if !sample.tags.is_empty() {
            payload["tags"] = json!(sample.tags);
        }
        (topic, payload.to_string())
    }
}

/// Samples waiting to be sent; the oldest are dropped beyond the capacity.
#[derive(Debug)]
pub struct Outbox {
    samples: VecDeque<Sample>,
    capacity: usize,
    dropped: u64,
}

impl Outbox {
    /// An outbox holding at most `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        Self { samples: VecDeque::new(), capacity: capacity.max(1), dropped: 0 }
    }

    /// Add samples, dropping the oldest if full.
    pub fn push(&mut self, samples: impl IntoIterator<Item = Sample>) {
        for sample in samples {
            if self.samples.len() == self.capacity {
                self.samples.pop_front();
                self.dropped += 1;
            }
            self.samples.push_back(sample);
        }
    }

    /// Waiting samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Samples dropped because the outage outlasted the capacity.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Send what waits, oldest first; whatever was sent leaves the outbox even if a later
    /// send fails.
    pub async fn flush(&mut self, transport: &mut Transport, origin: &Origin) -> Result<(), AgentError> {
        while !self.samples.is_empty() {
            let chunk: Vec<Sample> = self.samples.iter().take(500).cloned().collect();
            transport.send(&chunk, origin).await?;
            self.samples.drain(..chunk.len());
        }
        Ok(())
    }
}

/// A destination.
pub enum Transport {
    /// An MQTT broker (QoS 1).
    Mqtt(Box<MqttTransport>),
    /// The HTTP API.
    Http(Client),
    /// Print what would be sent.
    Stdout,
}

/// An MQTT connection that reconnects when a send finds it down.
pub struct MqttTransport {
    client: mqtt::AsyncClient,
    username: Option<String>,
    password: Option<String>,
}

impl MqttTransport {
    /// A client for the broker at `url`; it connects on first send.
    pub fn new(
        url: &str,
        client_id: &str,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<Self, AgentError> {
        let client = mqtt::CreateOptionsBuilder::new()
            .server_uri(url)
            .client_id(client_id)
            // The agent's own outbox buffers; paho's only holds what is in flight.
            .persistence(mqtt::PersistenceType::None)
            .max_buffered_messages(1_000)
            .create_client()?;
        Ok(Self { client, username, password })
    }

    async fn ensure_connected(&self) -> Result<(), AgentError> {
        if self.client.is_connected() {
            return Ok(());
        }
        let mut options = mqtt::ConnectOptionsBuilder::new_v5();
        options.clean_start(true).connect_timeout(Duration::from_secs(5)).keep_alive_interval(Duration::from_secs(30));
        if let Some(user) = &self.username {
            options.user_name(user);
        }
        if let Some(password) = &self.password {
            options.password(password.as_str());
        }
        let connecting = self.client.connect(options.finalize());
        connecting.await?;
        tracing::info!("connected to the broker");
        Ok(())
    }

    async fn send(&self, samples: &[Sample], origin: &Origin) -> Result<(), AgentError> {
        self.ensure_connected().await?;
        // All of a chunk in flight at once, then wait for every acknowledgement.
        let tokens: Vec<mqtt::DeliveryToken> = samples
            .iter()
            .map(|sample| {
                let (topic, payload) = origin.message(sample);
                self.client.publish(mqtt::Message::new(topic, payload, mqtt::QOS_1))
            })
            .collect();
        for token in tokens {
            token.await?;
        }
        Ok(())
    }

    /// Disconnect cleanly, then let paho's callbacks finish before the client goes (dropping
    /// it while a callback holds the last reference deadlocks paho).
    pub async fn close(self) {
        if self.client.is_connected() {
            let _ = self.client.disconnect(None).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Transport {
    /// Send samples; an error leaves them for the next attempt.
    pub async fn send(&mut self, samples: &[Sample], origin: &Origin) -> Result<(), AgentError> {
        match self {
            Transport::Mqtt(mqtt) => mqtt.send(samples, origin).await,
            Transport::Http(client) => {
                let metrics: Vec<MetricIn> = samples
                    .iter()
                    .map(|s| {
                        let mut metric =
                            MetricIn::new(s.name, s.value).agent(&origin.agent_id).at_millis(s.timestamp_ms);
                        for (k, v) in &s.tags {
                            metric = metric.tag(k, v);
                        }
                        metric
                    })
                    .collect();
                client.push(&metrics).await?;
                Ok(())
            }
            Transport::Stdout => {
                for sample in samples {
                    let (topic, payload) = origin.message(sample);
                    println!("{topic} {payload}");
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn sample(value: f64) -> Sample {
        Sample { name: "cpu.usage_percent", value, tags: BTreeMap::new(), timestamp_ms: 1_700_000_000_500 }
    }

    #[test]
    fn messages_carry_agent_and_timestamp() {
        let origin = Origin { tenant: "acme".into(), agent_id: "web-1".into(), topic_root: "metrics".into() };
        let mut disk = sample(40.0);
        disk.tags.insert("mount".into(), "/".into());
        let (topic, payload) = origin.message(&disk);
        assert_eq!(topic, "metrics/acme/web-1/cpu.usage_percent");
        let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(
            payload,
            json!({"value": 40.0, "timestamp": 1_700_000_000.5, "agent_id": "web-1", "tags": {"mount": "/"}})
        );
        // What the agent sends is what the bridge accepts.
        let parsed = microdash_core::mqtt::parse_topic("metrics", &topic, &Default::default()).unwrap();
        let metric =
            microdash_core::mqtt::parse_payload(&parsed, payload.to_string().as_bytes(), &Default::default(), 0)
                .unwrap();
        assert_eq!((metric.timestamp_ms, metric.agent_id.as_deref()), (1_700_000_000_500, Some("web-1")));
    }

    #[test]
    fn the_outbox_keeps_the_newest_within_its_capacity() {
        let mut outbox = Outbox::new(3);
        outbox.push((0..5).map(|v| sample(f64::from(v))));
        assert_eq!((outbox.len(), outbox.dropped()), (3, 2));
        assert_eq!(outbox.samples.front().unwrap().value, 2.0);
    }
}
