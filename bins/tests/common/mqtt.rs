//! A QoS 1 publisher speaking MQTT 5 by hand over rumqttc's packet codec, for the fault
//! tests: it counts a point as acknowledged only when its `PUBACK` took the message, and it
//! survives the server dying under it (paho's C client, killed under by a server that died
//! mid-flight, once crashed a test process with a double free in its cleanup).

use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{self, ConnectReturnCode, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The connection is gone (closed, broken, or silent for 5 s).
#[derive(Debug)]
pub struct Gone;

/// One connection with its window of messages in flight, each carrying a point id.
pub struct Publisher {
    stream: TcpStream,
    input: BytesMut,
    in_flight: HashMap<u16, u64>,
    next_pkid: u16,
}

impl Publisher {
    /// Connect to `endpoint` (`tcp://host:port` or `host:port`) with a clean session, signing
    /// in with `login` (username, password) if given; `None` if the endpoint is not there or
    /// refuses.
    pub async fn connect(endpoint: &str, login: Option<(&str, &str)>) -> Option<Publisher> {
        let stream = TcpStream::connect(endpoint.trim_start_matches("tcp://")).await.ok()?;
        let mut client = Publisher { stream, input: BytesMut::new(), in_flight: HashMap::new(), next_pkid: 1 };
        let id = microdash_store::testing::unique_name("md_pub");
        let connect = v5::Connect { keep_alive: 30, client_id: id, clean_start: true, properties: None };
        let login = login.map(|(user, password)| v5::Login::new(user, password));
        client.send(Packet::Connect(connect, None, login)).await.ok()?;
        match tokio::time::timeout(Duration::from_secs(5), client.next()).await {
            Ok(Some(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => Some(client),
            _ => None,
        }
    }

    /// Sign in to the embedded endpoint with an ingest token.
    pub async fn connect_with_token(endpoint: &str, token: &str) -> Option<Publisher> {
        Publisher::connect(endpoint, Some((microdash_core::mqtt::token_username(token), token))).await
    }

    /// Messages sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Publish point `id` at QoS 1.
    pub async fn publish(&mut self, topic: &str, payload: &str, id: u64) -> Result<(), Gone> {
        let pkid = self.next_pkid;
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        let mut publish = v5::Publish::new(topic, QoS::AtLeastOnce, payload.to_owned(), None);
        publish.pkid = pkid;
        self.in_flight.insert(pkid, id);
        self.send(Packet::Publish(publish)).await
    }

    /// Wait (5 s at most) for the next `PUBACK`: the id of the point it took, or `None` if
    /// it refused the message (an MQTT 5 reason code).
    pub async fn acknowledged(&mut self) -> Result<Option<u64>, Gone> {
        let (pkid, taken) = tokio::time::timeout(Duration::from_secs(5), self.puback()).await.map_err(|_| Gone)??;
        Ok(self.in_flight.remove(&pkid).filter(|_| taken))
    }

    async fn puback(&mut self) -> Result<(u16, bool), Gone> {
        loop {
            if let Packet::PubAck(ack) = self.next().await.ok_or(Gone)? {
                return Ok((ack.pkid, ack.reason == v5::PubAckReason::Success));
            }
        }
    }

    async fn send(&mut self, packet: Packet) -> Result<(), Gone> {
        let mut out = BytesMut::new();
        packet.write(&mut out, None).map_err(|_| Gone)?;
        self.stream.write_all(&out).await.map_err(|_| Gone)
    }

    async fn next(&mut self) -> Option<Packet> {
        loop {
            match Packet::read(&mut self.input, None) {
                Ok(packet) => return Some(packet),
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(_) => return None,
            }
            if self.stream.read_buf(&mut self.input).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    }
}
