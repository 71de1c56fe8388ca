//! The HTTP server under connections that hold it, through the real binary over real
//! sockets: a thousand idle connections and a hundred slowloris clients (re-opened as fast as
//! the server closes them), and a server limited to 256 open files under 300 idle
//! connections, must leave `/livez` and ingest answering; a declared body over the limit is
//! refused at once.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Proc, microdash, microdash_with_open_files};
use microdash_client::{Client, MetricIn, MetricsQuery};
use microdash_store::Backend;
use microdash_store::testing::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const IDLE: usize = 1_000;
const SLOWLORIS: usize = 100;
/// How long a probe may take: far below the request timeout, far above a loaded machine's
/// scheduling delays.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's address (`127.0.0.1:port`), URL and demo token.
fn addresses(server: &Proc) -> (String, String, String) {
    let url = server.url();
    let token = server.demo_token();
    (url.trim_start_matches("http://").to_owned(), url, token)
}

/// This test process holds well over a thousand sockets: raise its soft open-file limit to
/// the hard one (the server raises its own the same way).
fn raise_open_file_limit(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
    let now = getrlimit(Resource::Nofile).current;
    assert!(now.is_none_or(|n| n >= needed), "the test needs {needed} open files; the hard limit allows {now:?}");
}

/// Counts of the attack, for the assertions.
#[derive(Default)]
struct Attack {
    /// Connections opened.
    opened: AtomicUsize,
    /// Connections the server closed.
    closed: AtomicUsize,
    /// Slowloris connections the server closed.
    slowloris_closed: AtomicUsize,
    /// The longest a slowloris connection lived, in milliseconds.
    slowloris_longest_ms: AtomicUsize,
}

/// `count` connections that send nothing, each opened again as soon as the server closes
/// it, until `stop`.
fn hold_idle(addr: &str, count: usize, attack: &Arc<Attack>, stop: &CancellationToken) {
    for _ in 0..count {
        let (addr, attack, stop) = (addr.to_owned(), attack.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let Ok(mut conn) = TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                attack.opened.fetch_add(1, Ordering::Relaxed);
                let mut buf = [0u8; 256];
                tokio::select! {
                    _ = conn.read(&mut buf) => attack.closed.fetch_add(1, Ordering::Relaxed),
                    () = stop.cancelled() => return,
                };
            }
        });
    }
}

/// `count` slowloris clients: a request head sent a header line every 500 ms and never
/// finished, each opened again as soon as the server closes it, until `stop`.
fn slowloris(addr: &str, count: usize, attack: &Arc<Attack>, stop: &CancellationToken) {
    for _ in 0..count {
        let (addr, attack, stop) = (addr.to_owned(), attack.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let Ok(conn) = TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                attack.opened.fetch_add(1, Ordering::Relaxed);
                let opened = Instant::now();
                let (mut read, mut write) = conn.into_split();
                let drip = async {
                    let head = format!("POST /api/v1/metrics HTTP/1.1\r\nHost: {addr}\r\n");
                    write.write_all(head.as_bytes()).await?;
                    for line in 0.. {
                        // The pace of the attack, not a synchronisation.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        write.write_all(format!("X-Padding-{line}: a\r\n").as_bytes()).await?;
                    }
                    Ok::<(), std::io::Error>(())
                };
                let mut buf = [0u8; 256];
                tokio::select! {
                    _ = drip => {}
                    _ = read.read(&mut buf) => {}
                    () = stop.cancelled() => return,
                }
                let lived = opened.elapsed().as_millis() as usize;
                attack.closed.fetch_add(1, Ordering::Relaxed);
                attack.slowloris_closed.fetch_add(1, Ordering::Relaxed);
                attack.slowloris_longest_ms.fetch_max(lived, Ordering::Relaxed);
            }
        });
    }
}

/// `GET /livez` on a connection of its own, as a load balancer probes: the whole answer
/// within [`PROBE_TIMEOUT`], or a panic saying what happened.
async fn livez(addr: &str) {
    let probe = async {
        let mut conn = TcpStream::connect(addr).await?;
        conn.write_all(format!("GET /livez HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await?;
        Ok::<String, std::io::Error>(answer)
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(answer)) => assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"), "{answer:?}"),
        Ok(Err(err)) => panic!("/livez failed: {err}"),
        Err(_) => panic!("/livez did not answer within {PROBE_TIMEOUT:?}"),
    }
}

/// Push `n` points with dedupe ids (so the client may retry them) starting at `first`.
async fn push(client: &Client, first: usize, n: usize) {
    let points: Vec<MetricIn> =
        (first..first + n).map(|i| MetricIn::new("held", i as f64).agent("probe").dedupe_id(format!("p{i}"))).collect();
    let accepted = tokio::time::timeout(PROBE_TIMEOUT, client.push(&points)).await;
    assert_eq!(accepted.expect("ingest did not answer in time").expect("ingest failed").accepted, n);
}

/// Wait until every one of `n` pushed points is stored.
async fn stored(client: &Client, n: usize) {
    let query = MetricsQuery { metric_name: Some("held".into()), limit: Some(n), ..MetricsQuery::default() };
    common::eventually(20, "every pushed point to be stored", || async {
        client.query(&query).await.ok().filter(|r| r.count == n).map(|_| ())
    })
    .await;
}

/// A labelled counter in the server's `/metrics` (0 when absent).
async fn counter(url: &str, series: &str) -> f64 {
    let http = Client::default_http().unwrap();
    let text = http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_slowloris_connections_leave_livez_and_ingest_answering() {
    raise_open_file_limit((IDLE + SLOWLORIS + 200) as u64);
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [
        ("MICRODASH_DATABASE_URL", db.url.as_str()),
        // Fewer connections than the attack opens, so the cap is what holds; a header timeout
        // short enough that the slowloris clients meet it within the test.
        ("MICRODASH_HTTP_MAX_CONNECTIONS", "512"),
        ("MICRODASH_HTTP_HEADER_READ_TIMEOUT_MS", "2000"),
    ];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let (addr, url, token) = addresses(&server);
    let client = Client::builder(&url).token(&token).build().unwrap();
    let attack = Arc::new(Attack::default());
    let stop = CancellationToken::new();
    let (mut probes, mut pushed) = (0, 0);
    // Each probe must be answered, on the first try, within the probe timeout.
    let mut probe_until = async |done: &dyn Fn() -> bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        let first = probes;
        while !done() || probes - first < 20 {
            assert!(Instant::now() < deadline, "{what} within 60 s");
            livez(&addr).await;
            push(&client, pushed, 100).await;
            (probes, pushed) = (probes + 1, pushed + 100);
        }
    };

    // The slowloris clients alone, under the cap: the header timeout closes them.
    slowloris(&addr, SLOWLORIS, &attack, &stop);
    let slowloris_closed = || attack.slowloris_closed.load(Ordering::Relaxed) >= SLOWLORIS;
    probe_until(&slowloris_closed, "every slowloris client closed once").await;
    let header_timeouts = counter(&url, r#"microdash_http_connections_closed_total{reason="header_timeout"}"#).await;
    let longest_ms = attack.slowloris_longest_ms.load(Ordering::Relaxed);

    // With a thousand idle connections besides, over the cap: newcomers take their places.
    hold_idle(&addr, IDLE, &attack, &stop);
    let all_opened = || attack.opened.load(Ordering::Relaxed) >= 2 * (IDLE + SLOWLORIS);
    probe_until(&all_opened, "the attack's connections opened twice over").await;
    let evicted = counter(&url, r#"microdash_http_connections_closed_total{reason="evicted"}"#).await;
    let (opened, closed) = (attack.opened.load(Ordering::Relaxed), attack.closed.load(Ordering::Relaxed));
    stop.cancel();
    stored(&client, pushed).await;
    println!(
        "{probes} /livez probes and {pushed} points pushed and stored under {SLOWLORIS} slowloris connections, then \
         {IDLE} idle ones besides: {opened} opened, {closed} closed by the server ({header_timeouts} at the header \
         timeout before the idle ones came, the longest after {longest_ms} ms; {evicted} evicted)"
    );
    assert!(header_timeouts >= SLOWLORIS as f64, "only {header_timeouts} slowloris connections met the header timeout");
    // Two seconds of header timeout, with generous room for a loaded machine; without it they
    // would live for as long as they drip.
    assert!(longest_ms < 10_000, "a slowloris connection lived {longest_ms} ms");
    assert!(evicted >= IDLE as f64, "the connection cap made room only {evicted} times");
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_with_256_open_files_answers_livez_under_300_idle_connections() {
    const HELD: usize = 300;
    raise_open_file_limit((HELD + 200) as u64);
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [("MICRODASH_DATABASE_URL", db.url.as_str())];
    let server = microdash_with_open_files(256, &["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let (addr, url, token) = addresses(&server);
    let client = Client::builder(&url).token(&token).build().unwrap();

    let attack = Arc::new(Attack::default());
    let stop = CancellationToken::new();
    hold_idle(&addr, HELD, &attack, &stop);
    common::eventually(30, "the idle connections to be open", || async {
        (attack.opened.load(Ordering::Relaxed) >= HELD).then_some(())
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut probes, mut pushed) = (0, 0);
    // Until the server has closed connections to stay under its descriptors, and then some.
    while attack.closed.load(Ordering::Relaxed) < HELD || probes < 20 {
        assert!(Instant::now() < deadline, "the server closed fewer than {HELD} connections within 60 s");
        livez(&addr).await;
        push(&client, pushed, 100).await;
        (probes, pushed) = (probes + 1, pushed + 100);
    }
    let open = counter(&url, "microdash_http_connections_open").await;
    stop.cancel();
    stored(&client, pushed).await;
    let accept_errors = counter(&url, "microdash_http_accept_errors_total").await;
    println!(
        "{probes} /livez probes and {pushed} points under {HELD} idle connections with 256 open files: \
         {} opened, {} closed by the server, {open} open at the end, {accept_errors} failed accepts",
        attack.opened.load(Ordering::Relaxed),
        attack.closed.load(Ordering::Relaxed),
    );
    // Three quarters of 256 at most, so the process never ran out of descriptors.
    assert!(open <= 192.0, "{open} connections open");
    assert_eq!(accept_errors, 0.0, "the server ran out of file descriptors");
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_body_over_the_limit_is_refused_at_once() {
    let db = TestDb::new(Backend::Sqlite).await;
    // A request timeout far beyond the wait below: only an answer before the body is read passes.
    let env = [("MICRODASH_DATABASE_URL", db.url.as_str()), ("MICRODASH_REQUEST_TIMEOUT_MS", "120000")];
    let server = microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &env);
    let (addr, _, token) = addresses(&server);
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n["
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(&answer).contains("}") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer: {:?}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, read).await.expect("no answer before the body was sent");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error":"payload_too_large""#) && answer.contains("4194304"), "{answer}");
    assert!(server.terminate().success());
}
