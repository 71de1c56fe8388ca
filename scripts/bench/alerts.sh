#!/usr/bin/env bash
# Breach-to-notification (MTTD): the all-in-one server on SQLite ingests 10,000 metrics/s over
# 1,000 agents, each one instance of the rule `bench.alert > 100` (for_s 0, a webhook to the
# load generator); every 200 ms one agent breaches, and the time from sending that point to its
# `firing` webhook arriving is one sample.
# usage: scripts/bench/alerts.sh PORT [SECONDS] [RATE] [INSTANCES]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin microdash --bin microdash-loadgen >&2
PORT=$1 SECONDS_=${2:-30} RATE=${3:-10000} INSTANCES=${4:-1000}
DIR=${TMPDIR:-/tmp}/microdash_bench_alerts_$PORT
rm -rf "$DIR" && mkdir -p "$DIR"
source scripts/bench/lib.sh
start_demo_server "$DIR" "$PORT" MICRODASH_MQTT_LISTEN_ADDR=off
ALERTS_TOKEN=$(./target/release/microdash token create --database-url "${BENCH_DATABASE_URL:-sqlite://$DIR/md.db}" \
  --tenant demo --scopes ingest,read,alerts --name bench --json | sed -nE 's/.*"token": *"([^"]+)".*/\1/p')
./target/release/microdash-loadgen alerts --url "$URL" --token "$ALERTS_TOKEN" --rate "$RATE" \
  --instances "$INSTANCES" --duration-s "$SECONDS_" --json
curl -sS "$URL/metrics" | grep -E '^microdash_(alert|notification)'
