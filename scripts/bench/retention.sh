#!/usr/bin/env bash
# Retention under load: a day of raw points for 1,000 series at 10 s (8.64 M rows), all just
# past the 24-hour raw retention, is deleted by the server's retention task while the load
# generator ingests at 10,000 metrics/s and probes ingest-to-queryable latency.
# usage: scripts/bench/retention.sh PORT [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin microdash --bin microdash-loadgen >&2
PORT=$1 SECONDS_=${2:-60}
DIR=${TMPDIR:-/tmp}/microdash_bench_retention_$PORT
rm -rf "$DIR" && mkdir -p "$DIR"
./target/release/microdash-loadgen seed --database-url "sqlite://$DIR/md.db" --series 1000 --interval-s 10 \
  --rollup-days 0 --raw-hours 24 --end-hours-ago 24
source scripts/bench/lib.sh
start_demo_server "$DIR" "$PORT" MICRODASH_MQTT_LISTEN_ADDR=off
./target/release/microdash-loadgen http --url "$URL" --token "$TOKEN" --rate 10000 --batch-size 100 --concurrency 4 \
  --duration-s "$SECONDS_" --probe-interval-ms 50
curl -sS "$URL/metrics" | grep -E '^microdash_retention'
