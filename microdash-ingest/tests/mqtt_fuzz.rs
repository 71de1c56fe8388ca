//! The embedded MQTT endpoint under arbitrary input over real TCP connections, built as the
//! binary builds it (`Runtime::builder`): arbitrary bytes and mutated valid packets are
//! answered or the connection is closed, nothing panics, a client signed in beside them is
//! served throughout, and a packet that declares a huge remaining length is refused without
//! the endpoint allocating for it.
//!
//! Cases per property: `PROPTEST_CASES` (default 128; each is a TCP connection). The tests in
//! this file hold `SERIAL` for their whole run, so what the allocator counts during the
//! huge-length test is the endpoint's (and the test's) own.
#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::System;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use bytes::BytesMut;
use common::{App, Tenant};
use microdash_ingest::mqtt::broker::{Broker, BrokerConfig};
use proptest::prelude::*;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{self, Packet};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

static SERIAL: Mutex<()> = Mutex::new(());

/// Panics raised outside the tests' own code (the endpoint's tasks run on the runtime's
/// threads, where a panic would otherwise only be printed).
static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Count panics from here on (from zero).
fn count_server_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.location().is_none_or(|l| !l.file().contains("tests/")) {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
    SERVER_PANICS.store(0, Ordering::SeqCst);
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(128);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Longest an answer (or the close) may take.
const DEADLINE: Duration = Duration::from_secs(10);

struct Endpoint {
    app: App,
    url: String,
    acme: Tenant,
}

async fn endpoint() -> Endpoint {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let broker = Broker::bind(BrokerConfig::new("127.0.0.1:0")).await.unwrap();
    let url = broker.local_addr().unwrap().to_string();
    let (runtime, shutdown) = (app.runtime.clone(), app.shutdown.clone());
    tokio::spawn(async move { runtime.run_endpoint(broker, shutdown).await });
    Endpoint { app, url, acme }
}

fn encode(packet: Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    packet.write(&mut out, None).unwrap();
    out.to_vec()
}

fn connect(token: &str) -> Vec<u8> {
    let connect = v5::Connect { keep_alive: 60, client_id: "fuzz".into(), clean_start: true, properties: None };
    let login = v5::Login::new(microdash_core::mqtt::token_username(token), token);
    encode(Packet::Connect(connect, None, Some(login)))
}

fn publish(topic: &str, payload: &[u8], pkid: u16) -> Vec<u8> {
    let mut publish = v5::Publish::new(topic, QoS::AtLeastOnce, payload.to_vec(), None);
    publish.pkid = pkid;
    encode(Packet::Publish(publish))
}

/// A signed-in MQTT 5 client that publishes and waits for its acknowledgement.
struct Good {
    stream: TcpStream,
    input: BytesMut,
    next_pkid: u16,
    /// Publishes acknowledged.
    acked: usize,
}

impl Good {
    async fn signed_in(url: &str, token: &str) -> Good {
        let mut good =
            Good { stream: TcpStream::connect(url).await.unwrap(), input: BytesMut::new(), next_pkid: 1, acked: 0 };
        good.stream.write_all(&connect(token)).await.unwrap();
        assert!(matches!(good.next().await, Packet::ConnAck(_)));
        good
    }

    async fn next(&mut self) -> Packet {
        tokio::time::timeout(DEADLINE, async {
            loop {
                match Packet::read(&mut self.input, None) {
                    Ok(packet) => return packet,
                    Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                    Err(err) => panic!("{err}"),
                }
                assert!(
                    self.stream.read_buf(&mut self.input).await.unwrap() > 0,
                    "the endpoint closed on a good client"
                );
            }
        })
        .await
        .expect("the endpoint did not answer a good client")
    }

    /// Publish one metric and see it acknowledged.
    async fn served(&mut self) {
        let pkid = self.next_pkid;
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.stream.write_all(&publish("metrics/acme/good/up", b"1", pkid)).await.unwrap();
        match self.next().await {
            Packet::PubAck(ack) => assert_eq!((ack.pkid, ack.reason), (pkid, v5::PubAckReason::Success)),
            other => panic!("{other:?}"),
        }
        self.acked += 1;
    }
}

/// Send `bytes` on a fresh connection, then (with `end`) end the sending side, and read
/// until the endpoint closes: what it answered (whole packets or not, as bytes).
async fn exchange(url: &str, bytes: &[u8], end: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(url).await.unwrap();
    // The endpoint may close before reading everything: a refused write is an answer too.
    if stream.write_all(bytes).await.is_ok() && end {
        let _ = stream.shutdown().await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the endpoint neither closed nor stopped answering after {} bytes", bytes.len());
    answer
}

/// Valid packets after a valid sign-in, then mangled: the way a broken or hostile client
/// talks once it is in.
fn session(token: String) -> impl Strategy<Value = Vec<u8>> {
    let one = (0u8..6, "[a-z/+#]{0,30}", proptest::collection::vec(any::<u8>(), 0..40), any::<u16>());
    let packets = proptest::collection::vec(one, 0..6).prop_map(|list| {
        let mut out = Vec::new();
        for (kind, topic, payload, pkid) in list {
            out.extend(match kind {
                0 | 1 => publish(&format!("metrics/acme/fuzz/{topic}"), &payload, pkid.max(1)),
                2 => publish(&topic, &payload, pkid.max(1)),
                3 => encode(Packet::PubRel(v5::PubRel::new(pkid, None))),
                4 => encode(Packet::Subscribe(v5::Subscribe::new(v5::Filter::new(topic, QoS::AtLeastOnce), None))),
                _ => encode(Packet::PingReq(v5::PingReq)),
            });
        }
        out
    });
    let edits = proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..6);
    (packets, edits).prop_map(move |(packets, edits)| {
        let signed_in = connect(&token);
        let mut bytes = packets;
        for (at, byte, how) in edits {
            let at = at % (bytes.len() + 1);
            match how {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 => bytes.truncate(at),
                _ => bytes.splice(at..at, [byte, 0xff, 0xff, 0xff, 0x7f]).for_each(drop),
            }
        }
        [signed_in, bytes].concat()
    })
}

#[test]
fn arbitrary_and_mutated_input_is_answered_and_others_are_served() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    count_server_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let endpoint = runtime.block_on(endpoint());
    let good =
        Arc::new(tokio::sync::Mutex::new(runtime.block_on(Good::signed_in(&endpoint.url, &endpoint.acme.token))));
    let raw = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1024),
        // The first byte of a CONNECT, then anything.
        proptest::collection::vec(any::<u8>(), 0..1024).prop_map(|rest| [vec![0x10], rest].concat()),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let input = prop_oneof![raw, session(endpoint.acme.token.clone())];
    runner
        .run(&input, |bytes| {
            runtime.block_on(async {
                exchange(&endpoint.url, &bytes, true).await;
                good.lock().await.served().await;
            });
            prop_assert_eq!(SERVER_PANICS.load(Ordering::SeqCst), 0, "a panic outside the test");
            Ok(())
        })
        .unwrap();
    runtime.block_on(async move {
        // Every metric the good client had acknowledged is stored.
        let acked = good.lock().await.acked;
        assert!(acked > 0);
        let query = "metric_name=up&agent_id=good&limit=10000";
        endpoint.app.wait_for_points(&endpoint.acme.token, query, acked).await;
        endpoint.app.stop().await;
    });
}

/// Headers that declare the largest remaining length MQTT can express (256 MiB), with a
/// little or a megabyte of the packet behind them: the endpoint refuses them from the header
/// (it closes the connection without waiting for the rest), before a CONNECT and after one,
/// and allocates nothing like what they declare.
#[test]
fn a_declared_huge_remaining_length_is_not_allocated() {
    on_endpoint(async |endpoint| {
        let mut good = Good::signed_in(&endpoint.url, &endpoint.acme.token).await;
        let huge = [0xff, 0xff, 0xff, 0x7f];
        let megabyte = vec![b'x'; 1 << 20];
        let mut connect_header = vec![0x10];
        connect_header.extend(huge);
        connect_header.extend(b"\0\x04MQTT\x05");
        let mut publish_header = connect(&endpoint.acme.token);
        publish_header.push(0x32);
        publish_header.extend(huge);
        publish_header.extend(b"\0\x0fmetrics/acme/h/x");
        for (header, body) in
            [connect_header, publish_header].into_iter().flat_map(|h| [(h.clone(), 100), (h, 1 << 20)])
        {
            let region = Region::new(ALLOCATOR);
            // The sending side stays open: the endpoint must close by itself.
            exchange(&endpoint.url, &[header, megabyte[..body].to_vec()].concat(), false).await;
            let allocated = region.change().bytes_allocated;
            // The test's own megabyte (and its copy) plus the endpoint's small buffers.
            assert!(allocated < 16 << 20, "{allocated} bytes allocated for a declared 256 MiB packet");
            good.served().await;
        }
    });
}

/// A packet whose fields run past its end (here a SUBSCRIBE of two bytes, with no room for
/// its properties), followed by a publish, ends the connection: the endpoint once took it
/// for an incomplete packet and waited, leaving the publish behind it unanswered.
#[test]
fn a_malformed_packet_ends_the_connection_rather_than_stalling_it() {
    on_endpoint(async |endpoint| {
        let bytes = [connect(&endpoint.acme.token), vec![0x82, 0x02, 0x00, 0x01], publish("metrics/acme/h/x", b"1", 9)];
        // The sending side stays open: the endpoint must answer or close by itself.
        let answer = exchange(&endpoint.url, &bytes.concat(), false).await;
        let mut answer = BytesMut::from(&answer[..]);
        assert!(matches!(Packet::read(&mut answer, None), Ok(Packet::ConnAck(_))));
        assert!(answer.is_empty(), "nothing after the malformed packet: {answer:?}");
    });
}

/// Run `test` against a fresh endpoint, holding `SERIAL`; any panic outside the tests' own
/// code fails it.
fn on_endpoint(test: impl AsyncFnOnce(&Endpoint)) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    count_server_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let endpoint = endpoint().await;
        test(&endpoint).await;
        assert_eq!(SERVER_PANICS.load(Ordering::SeqCst), 0, "a panic outside the tests");
        endpoint.app.stop().await;
    });
}
