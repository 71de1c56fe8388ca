//! The load generator's soak mode, for 20 s, against the all-in-one server (SQLite, the
//! queue's journal, the embedded MQTT endpoint): HTTP pushes, MQTT publishes, live streams
//! and history queries together, then every acknowledged point read back through the API.
//! The 600 s run's figures are in docs/benchmarks.md.
#![allow(clippy::unwrap_used)]

mod common;

use common::microdash;
use microdash_store::Backend;
use microdash_store::testing::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn a_short_soak_reads_back_every_acknowledged_point() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server =
        microdash(&["serve", "--demo", "--listen-addr", "127.0.0.1:0"], &[("MICRODASH_DATABASE_URL", &db.url)]);
    let url = server.url();
    let endpoint = server.line_with("MQTT endpoint").split(' ').nth(2).unwrap().to_owned();
    let token = server.demo_token();
    let args = [
        "soak",
        "--url",
        &url,
        "--token",
        &token,
        "--tenant",
        "demo",
        "--broker",
        &endpoint,
        "--duration-s",
        "20",
        "--http-rate",
        "2000",
        "--batch-size",
        "200",
        "--mqtt-rate",
        "400",
        "--window",
        "50",
        "--streams",
        "4",
        "--query-interval-ms",
        "250",
        "--drain-timeout-s",
        "60",
        "--json",
    ]
    .map(str::to_owned);
    let soak = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_microdash-loadgen")).args(args).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&soak.stdout);
    println!("{stdout}");
    assert!(soak.status.success(), "the soak failed: {}\n{stdout}", String::from_utf8_lossy(&soak.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();

    let sources = report["sources"].as_array().unwrap();
    assert_eq!(sources.iter().map(|s| s["source"].as_str().unwrap()).collect::<Vec<_>>(), ["http", "mqtt"]);
    for source in sources {
        let count = |field: &str| source[field].as_u64().unwrap();
        // Well under the offered rates still means every kind of point went through.
        assert!(count("acknowledged") >= count("sent") / 2, "{source}");
        assert!(count("acknowledged") >= 2_000, "{source}");
        assert_eq!((count("missing"), count("twice")), (0, 0), "{source}");
        assert!(count("stored") >= count("acknowledged"), "{source}");
        assert!(source["latency"]["samples"].as_u64().unwrap() > 0, "{source}");
    }
    let streams = &report["streams"];
    assert_eq!(streams["broken"], 0, "{streams}");
    assert!(streams["fewest_points"].as_u64().unwrap() > 0, "a stream saw nothing: {streams}");
    let queries = &report["queries"];
    assert_eq!(queries["failed"], 0, "{queries}");
    assert!(queries["count"].as_u64().unwrap() >= 20, "{queries}");
    assert!(server.terminate().success());
}
